"""Composite recipes for deep learning: named band stacks built from pre/post stacks and terrain.

A recipe is data: a tuple of band tokens plus how the pre- and post-event
stacks are reduced.  Adding a recipe is one entry in :data:`RECIPES`.

Band tokens (SAR bands in dB, terrain in the units of :mod:`.terrain`):

======================  ======================================================
``VV_pre``, ``VH_pre``  the pre-event stack reduced by ``pre`` (median, mean, or
                        the last pre-event image)
``VV_post``, ``VH_post`` the post-event stack reduced by ``post`` (first image,
                        median or mean)
``VV_post1``/``VV_post2`` the first / second post-event image (also VH)
``VV_diff``, ``VH_diff``  ``<pol>_post - <pol>_pre`` in dB
``ratio_VV``, ``ratio_VH`` A_ratio ``<pol>_pre - <pol>_post`` in dB (unmasked)
``dratio_VV``, ``dratio_VH`` the A_ratio minus its local median within the
                        recipe's ``detrend_radius_m`` (:mod:`.local_median`):
                        the change that stands out from the km-scale,
                        date-specific background change (rain, moisture)
``avail_VV``, ``avail_VH`` 1 where that polarisation has data, 0 where it has
                        none (a recipe with these tokens runs on single-pol
                        stacks: the missing polarisation's bands are NaN and
                        its ``avail`` band 0)
``slope``               slope in degrees
``aspect``              downslope direction, degrees clockwise from north
``curvature``           Laplacian of the Gaussian-smoothed DEM, 1/m, with the
                        smoothing fixed here (:data:`CURVATURE_SIGMA_M`,
                        :data:`CURVATURE_RADIUS_M`): a band's definition must
                        not change with the A_ratio mask settings, or a model
                        would see other inputs than it was trained on
======================  ======================================================

Orbit passes.  Most recipes describe ONE orbit pass (one viewing geometry), as
the papers do: one composite per pass, and the run combines the passes'
probabilities.  A **joint** recipe (``joint_passes=True``) is one composite of
both passes: its SAR tokens carry a pass prefix (``ASC.dratio_VH``,
``DSC.dratio_VH``), each pass block is built by :func:`build_pass_bands`, a
pass without data is NaN with its ``avail`` bands 0, and the terrain bands
follow once (:func:`assemble_joint`).  The network then sees where the passes
agree instead of the run averaging two near-binary probabilities.

Sources: BAA, BAH, BAC (seed_002: Sentinel-1 composites for VHR-style CNNs);
BA_S, BAA_S (seed_004: Attention U-Net on Iburi, best F1 0.61 with A_BAA_S);
ampslope, ratioslope (seed_000: Machielse 2021, VH); SAR4 and SAR4+terrain
(seed_001: pre-event means and post-event images of both polarisations);
DCHANGE2P (this project, issue 11: detrended change of both passes).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from . import local_median
from .composite import nan_median

PRE_REDUCERS = ("median", "mean", "last")
POST_REDUCERS = ("first", "median", "mean")
TERRAIN_TOKENS = ("slope", "aspect", "curvature")
POLARISATIONS = ("VV", "VH")
PASS_PREFIXES = {"ASCENDING": "ASC", "DESCENDING": "DSC"}
CURVATURE_SIGMA_M = 60.0  # the defaults of core.terrain.curvature (Handwerger et al. 2021)
CURVATURE_RADIUS_M = 120.0


class RecipeError(ValueError):
    """A recipe is unknown, malformed, or the data cannot feed it."""


def split_token(token: str) -> tuple[str | None, str]:
    """``"ASC.dratio_VH"`` -> ``("ASCENDING", "dratio_VH")``; an unprefixed token -> ``(None, token)``."""
    prefix, dot, rest = token.partition(".")
    if not dot:
        return None, token
    for orbit_pass, short in PASS_PREFIXES.items():
        if prefix == short:
            return orbit_pass, rest
    raise RecipeError(f"unknown orbit-pass prefix {prefix!r} in band {token!r} (use ASC or DSC)")


def token_polarisation(token: str) -> str | None:
    """The polarisation a SAR token reads (None for terrain)."""
    _, t = split_token(token)
    if t in TERRAIN_TOKENS:
        return None
    head, _, tail = t.partition("_")
    return tail if head in ("ratio", "dratio", "avail") else head


@dataclass(frozen=True)
class Recipe:
    """A named composite: band tokens and the reductions of the pre and post stacks."""

    name: str
    bands: tuple[str, ...]
    pre: str = "median"
    post: str = "first"
    description: str = ""
    detrend_radius_m: float = 0.0
    joint_passes: bool = False

    def polarisations(self) -> tuple[str, ...]:
        """Polarisations the SAR bands read, in a stable order."""
        pols = []
        for token in self.bands:
            pol = token_polarisation(token)
            if pol is not None and pol not in pols:
                pols.append(pol)
        return tuple(pols)

    def optional_polarisations(self) -> bool:
        """True when the recipe runs on any one of its polarisations (it carries ``avail_<pol>`` bands)."""
        return any(split_token(t)[1].startswith("avail_") for t in self.bands)

    def terrain(self) -> tuple[str, ...]:
        return tuple(t for t in self.bands if t in TERRAIN_TOKENS)

    def pass_tokens(self) -> tuple[str, ...]:
        """The SAR tokens of one pass block, without prefix, in band order (a pass recipe: its SAR bands)."""
        out = []
        for token in self.bands:
            _, t = split_token(token)
            if t not in TERRAIN_TOKENS and t not in out:
                out.append(t)
        return tuple(out)

    def min_post_scenes(self) -> int:
        return 2 if any(t.endswith("_post2") for t in self.bands) else 1

    def sar_halo_px(self, pixel_size: float) -> int:
        """Pixels the SAR stacks must be read beyond a window for exact detrended bands (0 without them)."""
        if not any(split_token(t)[1].startswith("dratio_") for t in self.bands):
            return 0
        return local_median.halo_px(self.detrend_radius_m, pixel_size)

    def units(self) -> list[str]:
        def unit(token):
            t = split_token(token)[1]
            if t.startswith("avail_"):
                return "1"
            return {"slope": "deg", "aspect": "deg", "curvature": "1/m"}.get(t, "dB")
        return [unit(t) for t in self.bands]

    def to_dict(self) -> dict:
        out = {"name": self.name, "bands": list(self.bands), "pre": self.pre, "post": self.post,
               "units": self.units()}
        if self.detrend_radius_m:
            out["detrend_radius_m"] = float(self.detrend_radius_m)
        if self.joint_passes:
            out["joint_passes"] = True
        return out


def joint_bands(pass_tokens: tuple[str, ...], terrain: tuple[str, ...]) -> tuple[str, ...]:
    """Band names of a joint recipe: the pass block for ASC, then for DSC, then the terrain."""
    return tuple(f"{short}.{t}" for short in PASS_PREFIXES.values() for t in pass_tokens) + tuple(terrain)


# The shipped model's recipe (issue 11): per pass the detrended VH and VV change, the pre-event levels
# (context: water, layover, land cover) and which polarisation exists; slope once, as weak evidence.
DCHANGE_TOKENS = ("dratio_VH", "dratio_VV", "VH_pre", "VV_pre", "avail_VH", "avail_VV")
DETREND_RADIUS_M = 600.0

RECIPES: dict[str, Recipe] = {
    r.name: r
    for r in (
        Recipe("BAA", ("VV_pre", "VV_post1", "VV_post2"), description="before, after, after (seed_002)"),
        Recipe("BAH", ("VV_pre", "VV_post", "VH_post"), description="before VV, after VV, after VH (seed_002)"),
        Recipe("BAC", ("VV_pre", "VV_post", "VV_diff"), description="before, after, after - before (seed_002)"),
        Recipe("BA_S", ("VV_pre", "VV_post", "slope"), description="bi-temporal VV + slope (seed_004)"),
        Recipe("BAA_S", ("VV_pre", "VV_post1", "VV_post2", "slope"),
               description="tri-temporal VV + slope (seed_004, best F1 0.61)"),
        Recipe("ampslope", ("VH_pre", "VH_post", "slope"), pre="last", post="first",
               description="last pre and first post VH image + slope (seed_000)"),
        Recipe("ratioslope", ("ratio_VH", "slope"), description="A_ratio VH + slope (seed_000)"),
        Recipe("SAR4", ("VV_pre", "VH_pre", "VV_post", "VH_post"), pre="mean",
               description="pre-event means and post-event VV, VH (seed_001)"),
        Recipe("SAR4+terrain", ("VV_pre", "VH_pre", "VV_post", "VH_post", *TERRAIN_TOKENS), pre="mean",
               description="SAR4 + slope, aspect, curvature (seed_001)"),
        Recipe("DCHANGE2P", joint_bands(DCHANGE_TOKENS, ("slope",)), pre="median", post="median",
               detrend_radius_m=DETREND_RADIUS_M, joint_passes=True,
               description="both passes jointly: detrended VH/VV change, pre levels, polarisation flags; slope"),
        Recipe("DCHANGE", (*DCHANGE_TOKENS, "slope"), pre="median", post="median",
               detrend_radius_m=DETREND_RADIUS_M,
               description="one pass: detrended VH/VV change, pre levels, polarisation flags; slope"),
        Recipe("RCHANGE2P", joint_bands(("ratio_VH", "ratio_VV", "VH_pre", "VV_pre", "avail_VH", "avail_VV"),
                                        ("slope",)), pre="median", post="median", joint_passes=True,
               description="as DCHANGE2P without the detrend (ablation)"),
    )
}


def get_recipe(name: str, *, pre: str | None = None, post: str | None = None,
               detrend_radius_m: float | None = None) -> Recipe:
    """The registered recipe ``name``, optionally with other pre/post reductions or detrend radius."""
    if name not in RECIPES:
        raise RecipeError(f"unknown composite recipe {name!r}; known: {', '.join(RECIPES)}")
    base = RECIPES[name]
    radius = base.detrend_radius_m if detrend_radius_m is None else float(detrend_radius_m)
    recipe = Recipe(base.name, base.bands, pre or base.pre, post or base.post, base.description, radius,
                    base.joint_passes)
    validate_recipe(recipe)
    return recipe


def _token_ok(t: str) -> bool:
    if t in TERRAIN_TOKENS:
        return True
    parts = t.split("_")
    if len(parts) != 2:
        return False
    if parts[0] in ("ratio", "dratio", "avail"):
        return parts[1] in POLARISATIONS
    return parts[0] in POLARISATIONS and parts[1] in ("pre", "post", "post1", "post2", "diff")


def validate_recipe(recipe: Recipe) -> None:
    if recipe.pre not in PRE_REDUCERS:
        raise RecipeError(f"recipe {recipe.name}: pre reduction must be one of {PRE_REDUCERS}")
    if recipe.post not in POST_REDUCERS:
        raise RecipeError(f"recipe {recipe.name}: post reduction must be one of {POST_REDUCERS}")
    for token in recipe.bands:
        orbit_pass, t = split_token(token)
        if not _token_ok(t) or (orbit_pass is not None and t in TERRAIN_TOKENS):
            raise RecipeError(f"recipe {recipe.name}: unknown band token {token!r}")
        if (orbit_pass is not None) != (recipe.joint_passes and t not in TERRAIN_TOKENS):
            raise RecipeError(f"recipe {recipe.name}: band {token!r} needs a pass prefix exactly when the recipe "
                              "is joint")
    if recipe.joint_passes and recipe.bands != joint_bands(recipe.pass_tokens(), recipe.terrain()):
        raise RecipeError(f"recipe {recipe.name}: a joint recipe lists the ASC block, the DSC block, then terrain")
    if any(split_token(t)[1].startswith("dratio_") for t in recipe.bands) and recipe.detrend_radius_m <= 0:
        raise RecipeError(f"recipe {recipe.name}: detrended bands need a positive detrend radius")


def _reduce(stack: np.ndarray, how: str) -> np.ndarray:
    if how == "median":
        return nan_median(stack)
    if how == "mean":
        with warnings.catch_warnings():  # all-NaN pixels stay NaN without a warning
            warnings.simplefilter("ignore", RuntimeWarning)
            return np.nanmean(stack, axis=0).astype(np.float32)
    if how == "first":
        return stack[0].astype(np.float32)
    if how == "last":
        return stack[-1].astype(np.float32)
    raise RecipeError(f"unknown reduction {how!r}")


def _check_stacks(recipe: Recipe, pre, post) -> tuple[str, ...]:
    """The polarisations present; RecipeError naming what is missing."""
    held = tuple(p for p in recipe.polarisations() if p in pre and p in post and len(pre[p]) and len(post[p]))
    if recipe.optional_polarisations():
        if not held:
            raise RecipeError(f"composite {recipe.name} needs {' or '.join(recipe.polarisations())} before and "
                              "after the event")
    else:
        for pol in recipe.polarisations():
            if pol not in pre or pol not in post:
                raise RecipeError(f"composite {recipe.name} needs {pol} before and after the event")
            if len(pre[pol]) == 0 or len(post[pol]) == 0:
                raise RecipeError(f"composite {recipe.name}: the {pol} pre or post stack is empty")
    for pol in held:
        if len(post[pol]) < recipe.min_post_scenes():
            raise RecipeError(f"composite {recipe.name} needs {recipe.min_post_scenes()} post-event scenes, "
                              f"this pass has {len(post[pol])}")
    return held


def build_pass_bands(recipe: Recipe, pre: Mapping[str, np.ndarray], post: Mapping[str, np.ndarray], *,
                     origin: tuple[int, int] = (0, 0), pixel_size: float | None = None) -> np.ndarray:
    """The ``(len(pass_tokens), rows, cols)`` SAR bands of ONE pass, in :meth:`Recipe.pass_tokens` order.

    ``pre``/``post`` map a polarisation to its ``(dates, rows, cols)`` stack in dB, dates in time order.
    A polarisation a pol-optional recipe lacks gives NaN bands and ``avail`` 0.  ``origin`` (grid row,
    col of the arrays' top-left pixel) and ``pixel_size`` are needed by detrended bands, whose lattice of
    cells is anchored to the grid (read the stacks with :meth:`Recipe.sar_halo_px` around the window).
    """
    held = _check_stacks(recipe, pre, post)
    shape = pre[held[0]].shape[1:]
    cache: dict[str, np.ndarray] = {}

    def sar(pol: str, when: str) -> np.ndarray:
        key = f"{pol}_{when}"
        if key not in cache:
            if pol not in held:
                cache[key] = np.full(shape, np.nan, np.float32)
            elif when == "pre":
                cache[key] = _reduce(pre[pol], recipe.pre)
            elif when == "post":
                cache[key] = _reduce(post[pol], recipe.post)
            elif when == "post1":
                cache[key] = post[pol][0].astype(np.float32)
            elif when == "post2":
                cache[key] = post[pol][1].astype(np.float32)
        return cache[key]

    bands = []
    for t in recipe.pass_tokens():
        head, _, tail = t.partition("_")
        if head == "avail":
            bands.append(np.isfinite(sar(tail, "pre") - sar(tail, "post")).astype(np.float32))
        elif head in ("ratio", "dratio"):
            ratio = sar(tail, "pre") - sar(tail, "post")
            if head == "dratio":
                if pixel_size is None:
                    raise RecipeError(f"composite {recipe.name}: detrended bands need the pixel size")
                ratio = local_median.detrended(ratio, origin, recipe.detrend_radius_m, pixel_size)
            bands.append(ratio)
        elif tail == "diff":
            bands.append(sar(head, "post") - sar(head, "pre"))
        else:
            bands.append(sar(head, tail))
    return np.stack(bands).astype(np.float32)


def _terrain_bands(recipe: Recipe, terrain) -> list[np.ndarray]:
    terrain = terrain or {}
    missing = [t for t in recipe.terrain() if t not in terrain]
    if missing:
        raise RecipeError(f"composite {recipe.name} needs terrain layer(s) {', '.join(missing)}")
    return [np.asarray(terrain[t], np.float32) for t in recipe.terrain()]


def build_composite(
    recipe: Recipe,
    pre: Mapping[str, np.ndarray],
    post: Mapping[str, np.ndarray],
    terrain: Mapping[str, np.ndarray] | None = None,
    *,
    origin: tuple[int, int] = (0, 0),
    pixel_size: float | None = None,
) -> np.ndarray:
    """Build the ``(bands, rows, cols)`` float32 composite of one pass.

    ``pre`` and ``post`` map a polarisation to its ``(dates, rows, cols)``
    stack in dB, dates in time order; ``terrain`` maps ``slope``/``aspect``/
    ``curvature`` to ``(rows, cols)`` arrays.  Raises :class:`RecipeError`
    naming what is missing (a polarisation, a second post-event scene, a
    terrain layer).  A joint recipe is built per pass with
    :func:`build_pass_bands` and put together by :func:`assemble_joint`.
    """
    if recipe.joint_passes:
        raise RecipeError(f"composite {recipe.name} joins both orbit passes; build it with assemble_joint")
    sar = build_pass_bands(recipe, pre, post, origin=origin, pixel_size=pixel_size)
    terr = iter(_terrain_bands(recipe, terrain))
    sar_iter = iter(sar)
    return np.stack([next(terr) if t in TERRAIN_TOKENS else next(sar_iter) for t in recipe.bands]).astype(
        np.float32)


def assemble_joint(recipe: Recipe, passes: Mapping[str, np.ndarray | None],
                   terrain: Mapping[str, np.ndarray] | None, shape: tuple[int, int]) -> np.ndarray:
    """The joint composite from the pass blocks (:func:`build_pass_bands`; None or absent = no such pass).

    A missing pass is NaN with ``avail`` bands 0, so the network knows it is missing rather than unchanged.
    """
    if not recipe.joint_passes:
        raise RecipeError(f"composite {recipe.name} is built per pass (build_composite)")
    tokens = recipe.pass_tokens()
    blocks = []
    for orbit_pass in PASS_PREFIXES:
        block = passes.get(orbit_pass)
        if block is None:
            block = np.full((len(tokens), *shape), np.nan, np.float32)
            for i, t in enumerate(tokens):
                if t.startswith("avail_"):
                    block[i] = 0.0
        blocks.append(np.asarray(block, np.float32))
    return np.concatenate([*blocks, np.stack(_terrain_bands(recipe, terrain))
                           if recipe.terrain() else np.zeros((0, *shape), np.float32)]).astype(np.float32)


def composite_valid(recipe: Recipe, composite: np.ndarray) -> np.ndarray:
    """Where the model may predict: every band finite, or for pol-optional/joint recipes: at least one pass
    and polarisation has data and every terrain band is finite."""
    comp = np.asarray(composite)
    if not (recipe.joint_passes or recipe.optional_polarisations()):
        return np.all(np.isfinite(comp), axis=0)
    avail = [i for i, t in enumerate(recipe.bands) if split_token(t)[1].startswith("avail_")]
    terr = [i for i, t in enumerate(recipe.bands) if t in TERRAIN_TOKENS]
    ok = np.any(comp[avail] > 0.5, axis=0) if avail else np.ones(comp.shape[1:], bool)
    if terr:
        ok &= np.all(np.isfinite(comp[terr]), axis=0)
    return ok


def mean_over_tracks(blocks: list[np.ndarray], recipe: Recipe) -> np.ndarray:
    """Pass block of several tracks of one pass: NaN-mean of the bands, ``avail`` the maximum."""
    if len(blocks) == 1:
        return blocks[0]
    stack = np.stack(blocks)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        out = np.nanmean(stack, axis=0)
    for i, t in enumerate(recipe.pass_tokens()):
        if t.startswith("avail_"):
            out[i] = stack[:, i].max(axis=0)
    return out.astype(np.float32)
