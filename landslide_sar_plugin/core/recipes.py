"""Composite recipes for deep learning: named band stacks built from pre/post stacks and terrain.

A recipe is data: a tuple of band tokens plus how the pre- and post-event
stacks are reduced.  Adding a recipe is one entry in :data:`RECIPES`.  One
composite is built per orbit pass (a single viewing geometry), as the papers do.

Band tokens (SAR bands in dB, terrain in the units of :mod:`.terrain`):

======================  ======================================================
``VV_pre``, ``VH_pre``  the pre-event stack reduced by ``pre`` (median, mean, or
                        the last pre-event image)
``VV_post``, ``VH_post`` the post-event stack reduced by ``post`` (first image,
                        median or mean)
``VV_post1``/``VV_post2`` the first / second post-event image (also VH)
``VV_diff``, ``VH_diff``  ``<pol>_post - <pol>_pre`` in dB
``ratio_VV``, ``ratio_VH`` A_ratio ``<pol>_pre - <pol>_post`` in dB (unmasked)
``slope``               slope in degrees
``aspect``              downslope direction, degrees clockwise from north
``curvature``           Laplacian of the Gaussian-smoothed DEM, 1/m, with the
                        smoothing fixed here (:data:`CURVATURE_SIGMA_M`,
                        :data:`CURVATURE_RADIUS_M`): a band's definition must
                        not change with the A_ratio mask settings, or a model
                        would see other inputs than it was trained on
======================  ======================================================

Sources: BAA, BAH, BAC (seed_002: Sentinel-1 composites for VHR-style CNNs);
BA_S, BAA_S (seed_004: Attention U-Net on Iburi, best F1 0.61 with A_BAA_S);
ampslope, ratioslope (seed_000: Machielse 2021, VH); SAR4 and SAR4+terrain
(seed_001: pre-event means and post-event images of both polarisations).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from .composite import nan_median

PRE_REDUCERS = ("median", "mean", "last")
POST_REDUCERS = ("first", "median", "mean")
TERRAIN_TOKENS = ("slope", "aspect", "curvature")
CURVATURE_SIGMA_M = 60.0  # the defaults of core.terrain.curvature (Handwerger et al. 2021)
CURVATURE_RADIUS_M = 120.0


class RecipeError(ValueError):
    """A recipe is unknown, malformed, or the data cannot feed it."""


@dataclass(frozen=True)
class Recipe:
    """A named composite: band tokens and the reductions of the pre and post stacks."""

    name: str
    bands: tuple[str, ...]
    pre: str = "median"
    post: str = "first"
    description: str = ""

    def polarisations(self) -> tuple[str, ...]:
        """Polarisations the SAR bands need, in a stable order."""
        pols = []
        for token in self.bands:
            if token in TERRAIN_TOKENS:
                continue
            pol = token.split("_")[1] if token.startswith("ratio_") else token.split("_")[0]
            if pol not in pols:
                pols.append(pol)
        return tuple(pols)

    def terrain(self) -> tuple[str, ...]:
        return tuple(t for t in self.bands if t in TERRAIN_TOKENS)

    def min_post_scenes(self) -> int:
        return 2 if any(t.endswith("_post2") for t in self.bands) else 1

    def units(self) -> list[str]:
        return [{"slope": "deg", "aspect": "deg", "curvature": "1/m"}.get(t, "dB") for t in self.bands]

    def to_dict(self) -> dict:
        return {"name": self.name, "bands": list(self.bands), "pre": self.pre, "post": self.post,
                "units": self.units()}


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
    )
}


def get_recipe(name: str, *, pre: str | None = None, post: str | None = None) -> Recipe:
    """The registered recipe ``name``, optionally with other pre/post reductions."""
    if name not in RECIPES:
        raise RecipeError(f"unknown composite recipe {name!r}; known: {', '.join(RECIPES)}")
    base = RECIPES[name]
    recipe = Recipe(base.name, base.bands, pre or base.pre, post or base.post, base.description)
    validate_recipe(recipe)
    return recipe


def validate_recipe(recipe: Recipe) -> None:
    if recipe.pre not in PRE_REDUCERS:
        raise RecipeError(f"recipe {recipe.name}: pre reduction must be one of {PRE_REDUCERS}")
    if recipe.post not in POST_REDUCERS:
        raise RecipeError(f"recipe {recipe.name}: post reduction must be one of {POST_REDUCERS}")
    for token in recipe.bands:
        if token in TERRAIN_TOKENS:
            continue
        parts = token.split("_")
        if token.startswith("ratio_"):
            ok = len(parts) == 2 and parts[1] in ("VV", "VH")
        else:
            roles = ("pre", "post", "post1", "post2", "diff")
            ok = len(parts) == 2 and parts[0] in ("VV", "VH") and parts[1] in roles
        if not ok:
            raise RecipeError(f"recipe {recipe.name}: unknown band token {token!r}")


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


def build_composite(
    recipe: Recipe,
    pre: Mapping[str, np.ndarray],
    post: Mapping[str, np.ndarray],
    terrain: Mapping[str, np.ndarray] | None = None,
) -> np.ndarray:
    """Build the ``(bands, rows, cols)`` float32 composite of one pass.

    ``pre`` and ``post`` map a polarisation to its ``(dates, rows, cols)``
    stack in dB, dates in time order; ``terrain`` maps ``slope``/``aspect``/
    ``curvature`` to ``(rows, cols)`` arrays.  Raises :class:`RecipeError`
    naming what is missing (a polarisation, a second post-event scene, a
    terrain layer).
    """
    terrain = terrain or {}
    for pol in recipe.polarisations():
        if pol not in pre or pol not in post:
            raise RecipeError(f"composite {recipe.name} needs {pol} before and after the event")
        if len(pre[pol]) == 0 or len(post[pol]) == 0:
            raise RecipeError(f"composite {recipe.name}: the {pol} pre or post stack is empty")
        if len(post[pol]) < recipe.min_post_scenes():
            raise RecipeError(f"composite {recipe.name} needs {recipe.min_post_scenes()} post-event scenes, "
                              f"this pass has {len(post[pol])}")
    missing = [t for t in recipe.terrain() if t not in terrain]
    if missing:
        raise RecipeError(f"composite {recipe.name} needs terrain layer(s) {', '.join(missing)}")
    cache: dict[str, np.ndarray] = {}

    def sar(pol: str, when: str) -> np.ndarray:
        key = f"{pol}_{when}"
        if key not in cache:
            if when == "pre":
                cache[key] = _reduce(pre[pol], recipe.pre)
            elif when == "post":
                cache[key] = _reduce(post[pol], recipe.post)
            elif when == "post1":
                cache[key] = post[pol][0].astype(np.float32)
            elif when == "post2":
                cache[key] = post[pol][1].astype(np.float32)
        return cache[key]

    bands = []
    for token in recipe.bands:
        if token in TERRAIN_TOKENS:
            bands.append(np.asarray(terrain[token], np.float32))
        elif token.startswith("ratio_"):
            pol = token.split("_")[1]
            bands.append(sar(pol, "pre") - sar(pol, "post"))
        else:
            pol, when = token.split("_")
            bands.append(sar(pol, "post") - sar(pol, "pre") if when == "diff" else sar(pol, when))
    return np.stack(bands).astype(np.float32)
