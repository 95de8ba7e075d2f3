"""The A_ratio landslide detection run: scenes + DEM + event -> ratio, masks, candidates, heatmap.

One function, :func:`run_detection`, used by the command line, the QGIS dock
(inside a ``QgsTask``) and the Processing algorithm.  It streams the grid in
blocks, so memory is set by ``block_size`` and the stack depth, not by the
scene size:

1. catalogue the scene folder, pick pre/post stacks per track (:mod:`.catalog`);
2. build the output grid from the AOI (:mod:`.grid`);
3. pass 1, per block: DEM -> slope and curvature -> terrain mask
   (:mod:`.terrain`); per track: pre and post median composites -> ratio
   (:mod:`.composite`); average tracks and passes; mask; write;
4. threshold: a fixed value in dB or an exact percentile of the masked ratio
   (:mod:`.threshold`), optionally after smoothing the ratio;
5. pass 2, per block: exceedance mask and density heatmap;
6. candidate polygons (GDAL polygonize, streamed) with zonal statistics;
7. every raster becomes a compressed cloud-optimised GeoTIFF; all files are
   staged in a hidden folder and moved into the output folder only when the
   whole run has succeeded, so a failed or cancelled run leaves nothing that
   looks complete.  ``run.json`` records inputs, parameters, versions, timings.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.windows import Window

from . import catalog as cat
from . import composite
from .blocks import map_blocks, resolve_workers
from .grid import (
    Aoi,
    Grid,
    GridError,
    MosaicOnGrid,
    RasterOnGrid,
    check_dem,
    footprint,
    grid_from_bounds,
    overlap_fraction,
    pixel_size_m,
)
from .staging import (  # noqa: F401 (Cancelled and DetectionError are part of this module's API)
    CancelFn,
    Cancelled,
    DetectionError,
    Finalize,
    Progress,
    ProgressFn,
    StagedRaster,
    cogs_in_background,
    crop,
    finish_staged,
    run_staged,
    versions,
)
from .version import __version__

log = logging.getLogger(__name__)

# Terrain-mask reason codes written to mask.tif (bit flags; 0 = kept).
MASK_KEPT, MASK_NODATA, MASK_SLOPE, MASK_CURVATURE, MASK_WATER, MASK_OUTSIDE_AOI = 0, 1, 2, 4, 8, 16
POLARISATION_CHOICES = ("auto", "VH", "VV", "both")


@dataclass
class DetectParams:
    """Every parameter of an A_ratio run, with the product's defaults (see README, "Defaults").

    Distances are in metres, angles in degrees, backscatter in dB.
    """

    event_time: dt.datetime
    pre_days: float = 90.0
    post_days: float = 30.0
    pre_range: tuple[dt.datetime, dt.datetime] | None = None
    post_range: tuple[dt.datetime, dt.datetime] | None = None
    polarisation: str = "auto"
    per_orbit: bool = True
    pixel_size: float | None = None  # metres; None = the finest resolution among the input scenes
    aoi: Aoi | None = None
    crs: str | None = None
    edge_noise_db: float = composite.EDGE_NOISE_DB
    speckle_sigma_m: float = 0.0
    speckle_radius_m: float = 0.0
    slope_min_deg: float | None = 10.0
    curv_min: float | None = None
    curv_sigma_m: float = 30.0
    curv_radius_m: float = 60.0
    water_mask: str | None = None
    # The threshold rule: exactly one of the three; none given = DEFAULT_RULE (see __post_init__).
    threshold_db: float | None = None
    percentile: float | None = None
    k_sigma: float | None = None
    detrend_radius_m: float = 500.0
    ratio_sigma_m: float = 15.0
    ratio_radius_m: float = 0.0  # 0 = twice the sigma (also for speckle_radius_m)
    min_area_m2: float = 2000.0
    heatmap_radius_m: float = 100.0
    event_id: str = ""
    block_size: int = 1024
    workers: int = 0  # worker threads over the blocks; 0 = every available core (a QGIS user may keep one free)
    pass_rasters: bool = True  # also write a_ratio_<pass>.tif and counts.tif

    def __post_init__(self) -> None:
        for sigma, radius in (("speckle_sigma_m", "speckle_radius_m"), ("ratio_sigma_m", "ratio_radius_m")):
            if not getattr(self, radius):
                setattr(self, radius, 2.0 * getattr(self, sigma))
        if self.threshold_db is None and self.percentile is None and self.k_sigma is None:
            for name, value in DEFAULT_RULE.items():
                setattr(self, name, value)

    def validate(self) -> None:
        if self.event_time.tzinfo is None:
            raise DetectionError("the event time needs a time zone; give it in UTC, e.g. 2018-09-06T03:08Z")
        if self.polarisation not in POLARISATION_CHOICES:
            raise DetectionError(f"polarisation must be one of {', '.join(POLARISATION_CHOICES)}")
        rules = [v for v in (self.threshold_db, self.percentile, self.k_sigma) if v is not None]
        if len(rules) != 1:
            raise DetectionError("give exactly one threshold rule: a fixed threshold (dB), a percentile, "
                                 "or a multiple k of the scene's noise level")
        for f in dataclasses.fields(self):  # NaN passes every comparison below: refuse it first
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise DetectionError(f"{f.name.replace('_', '-')} must be a finite number, not {value}")
        if self.percentile is not None and not 0 < self.percentile < 100:
            raise DetectionError(f"the percentile must lie strictly between 0 and 100, not {self.percentile}")
        if self.k_sigma is not None and not 0 < self.k_sigma <= 20:
            raise DetectionError(f"k-sigma must lie in (0, 20] robust standard deviations, not {self.k_sigma}")
        for name in ("pre_days", "post_days", "pixel_size", "block_size"):
            if getattr(self, name) is not None and getattr(self, name) <= 0:
                raise DetectionError(f"{name.replace('_', '-')} must be positive, not {getattr(self, name)}")
        for name in ("speckle_sigma_m", "ratio_sigma_m", "min_area_m2", "heatmap_radius_m", "detrend_radius_m"):
            if getattr(self, name) < 0:
                raise DetectionError(f"{name.replace('_', '-')} must not be negative")
        if self.block_size < 64:
            raise DetectionError("the block size must be at least 64 pixels")
        if self.workers < 0:
            raise DetectionError(f"workers must be 0 (every core) or a positive number of threads, not {self.workers}")

    def polarisations(self) -> tuple[str, ...]:
        """The polarisations the ratio uses (``auto`` asks for both; :func:`resolve_polarisation` settles it)."""
        return ("VV", "VH") if self.polarisation in ("both", "auto") else (self.polarisation,)

    def to_dict(self) -> dict:
        out = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, dt.datetime):
                v = cat.iso_utc(v)
            elif isinstance(v, tuple) and v and isinstance(v[0], dt.datetime):
                v = [cat.iso_utc(t) for t in v]
            elif isinstance(v, Aoi):
                v = {"bounds": list(v.bounds), "crs": v.crs.to_string(), "source": v.source,
                     "polygon": v.geometries is not None}
            out[f.name] = v
        return out


RULE_FIELDS = ("threshold_db", "percentile", "k_sigma")
# The default threshold rule (README, "Defaults, and why"): median + 2.25 robust sigma of the ratio.
DEFAULT_RULE = {"k_sigma": 2.25}


def threshold_rule_fields(threshold_db: float | None = None, percentile: float | None = None,
                          k_sigma: float | None = None) -> dict:
    """The threshold-rule fields of :class:`DetectParams`: the rule given, or the default rule if none is.

    Exactly one of the three may be given (the command line, Processing and the
    dock offer them as alternatives); the others become None.
    """
    given = {k: v for k, v in zip(RULE_FIELDS, (threshold_db, percentile, k_sigma)) if v is not None}
    if len(given) > 1:
        raise DetectionError("give only one threshold rule: a fixed threshold, a percentile or k sigma")
    if given:
        return {k: given.get(k) for k in RULE_FIELDS}
    return {k: DEFAULT_RULE.get(k) for k in RULE_FIELDS}


def default_rule_text() -> str:
    """The default threshold rule in words (for help texts)."""
    d = threshold_rule_fields()
    if d["k_sigma"] is not None:
        return f"median + {d['k_sigma']:g} x robust sigma of the masked ratio"
    if d["percentile"] is not None:
        return f"percentile p{d['percentile']:g} of the masked ratio"
    return f"fixed {d['threshold_db']:g} dB"


@dataclass
class DetectResult:
    """What a detection run wrote and decided; ``threshold`` is in the score's units (dB or probability)."""

    out_dir: Path
    files: dict[str, Path]
    threshold: float
    n_candidates: int
    percentiles: dict[str, float]
    grid: Grid
    selection: cat.StackSelection
    warnings: list[str]
    timings_s: dict[str, float]
    synthetic: bool
    run_info: dict = field(default_factory=dict)

    @property
    def threshold_db(self) -> float:
        """The A_ratio threshold in dB (the A_ratio run's name for :attr:`threshold`)."""
        return self.threshold


# --------------------------------------------------------------------------- helpers


def _sel_scenes(selection: cat.StackSelection) -> list[cat.Scene]:
    seen = {}
    for stacks in (selection.pre, selection.post):
        for track in selection.tracks():
            for s in stacks[track]:
                seen[s.scene_id] = s
    return list(seen.values())


def _output_grid(params: DetectParams, scenes: list[cat.Scene], dem_path: Path) -> tuple[Grid, list[str]]:
    """The grid: the AOI if given, else the scenes' union clipped to the DEM. Returns (grid, warnings).

    The pixel size is ``params.pixel_size`` when given, else the finest
    resolution among the scenes' files (a 30 m product stays 30 m); the grid's
    ``pixel_size_reason`` says which, and files of another resolution are
    named in a warning (they are resampled onto the grid).
    """
    import dataclasses as dc
    from collections import Counter

    lattices = {}
    for path in {p for s in scenes for p in s.file_paths()}:
        with rasterio.open(path) as src:
            t = src.transform
            lattices[path] = (src.crs, abs(t.a), abs(t.e), t.c, t.f, pixel_size_m(src))
    px, reason = _pixel_size(params, lattices)
    # The most common projection among the scenes; a stray scene in another CRS is warped onto it.
    scene_crs = Counter(lat[0] for lat in lattices.values() if lat[0] is not None).most_common(1)[0][0]
    crs = params.crs
    if crs is None and scene_crs.is_projected and params.aoi is None:
        crs = scene_crs
    anchor = (0.0, 0.0)
    if crs is not None:
        target_crs = rasterio.crs.CRS.from_user_input(crs)
        for lat_crs, ax, ay, x0, y0, _ in lattices.values():
            if lat_crs == target_crs and math.isclose(ax, px) and math.isclose(ay, px):
                anchor = (x0 % px, y0 % px)  # share the scenes' pixel lattice
                break
    warnings = _resolution_warnings(lattices, px)
    if params.aoi is not None:
        grid = grid_from_bounds(params.aoi.bounds, params.aoi.crs, px, crs, anchor)
        return dc.replace(grid, pixel_size_reason=reason), warnings
    target = crs or scene_crs
    boxes = [footprint(path, target) for path in lattices]
    union = (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))
    dem_box = footprint(dem_path, target)
    clipped = (max(union[0], dem_box[0]), max(union[1], dem_box[1]), min(union[2], dem_box[2]),
               min(union[3], dem_box[3]))
    if clipped[0] >= clipped[2] or clipped[1] >= clipped[3]:
        raise DetectionError(f"the DEM {dem_path.name} does not overlap the scenes; give a DEM of the same area")
    kept = overlap_fraction(union, clipped)
    if kept < 0.99:
        warnings.append(f"the DEM covers {kept:.0%} of the scenes' extent; the output is limited to the DEM "
                        "(give --aoi to choose the area explicitly)")
    grid = grid_from_bounds(clipped, target, px, crs, anchor)
    return dc.replace(grid, pixel_size_reason=reason), warnings


def _pixel_size(params: DetectParams, lattices: dict) -> tuple[float, str]:
    """The output pixel size in metres and why: given, or the finest input resolution."""
    if params.pixel_size is not None:
        return float(params.pixel_size), "given by the user"
    finest_path = min(lattices, key=lambda p: (lattices[p][5], p.name))
    finest = lattices[finest_path][5]
    if finest <= 0 or not math.isfinite(finest):
        raise DetectionError(f"{finest_path.name} has no usable pixel size; give the output pixel size explicitly")
    return finest, f"not given: the finest input resolution ({finest:g} m, {finest_path.name})"


def _resolution_warnings(lattices: dict, px: float) -> list[str]:
    """One line per input resolution other than the grid's, naming its files (they are resampled)."""
    by_size: dict[float, list[Path]] = {}
    for path, lat in lattices.items():
        if not math.isclose(lat[5], px, rel_tol=1e-3):
            by_size.setdefault(lat[5], []).append(path)
    lines = []
    for size, paths in sorted(by_size.items()):
        names = sorted(p.name for p in paths)
        more = f" and {len(names) - 3} more" if len(names) > 3 else ""
        lines.append(f"{', '.join(names[:3])}{more}: {size:g} m pixels, not the grid's {px:g} m; resampled "
                     "(bilinear) onto the grid")
    return lines


def _check_coverage(grid: Grid, scenes: list[cat.Scene], dem_path: Path) -> list[str]:
    warnings = []
    covered = [overlap_fraction(grid.bounds, _scene_footprint(s, grid.crs)) for s in scenes]
    if max(covered) <= 0:
        raise DetectionError("the AOI lies outside every scene; check --aoi (and its CRS) against the scenes")
    dem_cover = overlap_fraction(grid.bounds, footprint(dem_path, grid.crs))
    if dem_cover < 0.999:
        raise DetectionError(
            f"the DEM {dem_path.name} covers only {dem_cover:.0%} of the AOI; give a DEM that covers it "
            "(e.g. Copernicus GLO-30) or a smaller --aoi"
        )
    if min(covered) < 0.5:
        warnings.append(f"some scenes cover less than half of the AOI (minimum {min(covered):.0%}); "
                        "the per-pixel count layers show where the stacks are thin")
    return warnings


def _scene_footprint(scene: cat.Scene, crs) -> tuple[float, float, float, float]:
    """The bounding box of all a scene's files (bursts of one acquisition together) in ``crs``."""
    boxes = [footprint(p, crs) for p in scene.file_paths()]
    return (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))


def _aoi_mask(params: DetectParams, grid: Grid, window: Window) -> np.ndarray | None:
    """True inside the AOI polygon (None when the AOI is a plain box)."""
    if params.aoi is None or params.aoi.geometries is None:
        return None
    from rasterio.features import geometry_mask
    from rasterio.warp import transform_geom

    geoms = [transform_geom(params.aoi.crs, grid.crs, g) for g in params.aoi.geometries]
    return ~geometry_mask(geoms, out_shape=(int(window.height), int(window.width)),
                          transform=grid.window_transform(window))


# --------------------------------------------------------------------------- the run


@dataclass
class PreparedRun:
    """What every detection method needs before the first pixel: scenes, stacks, grid, warnings."""

    catalog: cat.Catalog
    selection: cat.StackSelection
    scenes: list[cat.Scene]
    grid: Grid
    warnings: list[str]
    polarisation: str | None = None  # the concrete choice when the parameters say "auto"
    polarisation_reason: str = ""


def resolve_polarisation(params: DetectParams, scenes: list[cat.Scene]) -> tuple[str, str]:
    """The polarisation choice of a run, and why.

    ``auto`` (the default) averages the VV and VH ratios where the stacks hold
    both (on the real-background tuning cases that beat VH alone by about 0.02
    F1 at the same false-alarm share), and falls back to the one polarisation a
    single-pol stack (a VH-only OPERA download, say) holds.
    """
    if params.polarisation != "auto":
        return params.polarisation, "given"
    for choice, pols in (("both", ("VV", "VH")), ("VH", ("VH",)), ("VV", ("VV",))):
        try:
            selection = cat.select_stacks(scenes, params.event_time, pre_days=params.pre_days,
                                          post_days=params.post_days, pre_range=params.pre_range,
                                          post_range=params.post_range, polarisations=pols)
        except cat.CatalogError:
            continue
        if selection.tracks():
            reason = ("auto: the stacks hold VV and VH; their ratios are averaged" if choice == "both" else
                      f"auto: the stacks hold no {'VV' if choice == 'VH' else 'VH'} on both sides of the event; "
                      f"the ratio uses {choice} only")
            return choice, reason
    return "VH", "auto: no polarisation gives both stacks (the stack selection below says why)"


def prepare_run(
    scenes_dir: str | os.PathLike,
    dem: Path,
    params: DetectParams,
    prog: Progress,
    *,
    polarisations: tuple[str, ...] | None = None,
    check_catalog=None,
) -> PreparedRun:
    """Catalogue the scenes, select the stacks, build the grid and check coverage (shared by every method).

    ``polarisations`` defaults to the parameters' (the model run passes its
    recipe's, or a function of the catalogue that chooses them); ``check_catalog(catalog)``
    may raise before the stacks are selected (the model run checks that the scenes can feed the model).
    """
    if not Path(dem).is_file():
        raise DetectionError(f"DEM file {dem} does not exist")
    try:
        check_dem(dem)  # a raster, georeferenced, heights in metres
    except GridError as exc:
        raise DetectionError(str(exc)) from None
    prog(0.0, "reading the scene catalogue")
    try:
        catalog = cat.read_catalog(scenes_dir)
        warnings = list(catalog.warnings) + [f"skipped {p.name}: {why}" for p, why in catalog.skipped]
        if not catalog.scenes:
            reasons = "; ".join(f"{p.name}: {why}" for p, why in catalog.skipped[:5])
            raise DetectionError(f"no usable scene in {scenes_dir} ({reasons})")
        if check_catalog is not None:
            check_catalog(catalog)
        if callable(polarisations):
            polarisations = polarisations(catalog)
        pol_choice, pol_reason = (None, "") if polarisations else resolve_polarisation(params, catalog.scenes)
        selection = cat.select_stacks(
            catalog.scenes, params.event_time, pre_days=params.pre_days, post_days=params.post_days,
            pre_range=params.pre_range, post_range=params.post_range,
            polarisations=polarisations or dataclasses.replace(params, polarisation=pol_choice).polarisations(),
        )
        scenes = _sel_scenes(selection)
        grid, grid_warnings = _output_grid(params, scenes, dem)
        warnings += grid_warnings + _check_coverage(grid, scenes, dem)
    except (cat.CatalogError, GridError) as exc:
        raise DetectionError(str(exc)) from None
    for line in selection.summary_lines():
        log.info("%s", line)
    for w in warnings:  # read_catalog does not log; each warning is printed once, here
        log.warning("%s", w)
    if pol_reason:
        log.info("polarisation %s", pol_reason)
    return PreparedRun(catalog, selection, scenes, grid, warnings, pol_choice, pol_reason)


StackRefs = dict  # {track: {"pre"|"post": {pol: [(RasterOnGrid | MosaicOnGrid, units), ...]}}}


def open_stack_readers(selection: cat.StackSelection, tracks, polarisations, grid: Grid, readers: dict, *,
                       halo: int = 0) -> StackRefs:
    """Readers of every pre/post scene of ``tracks`` onto ``grid``, in time order, with their units.

    A polarisation stored in one file is read by a :class:`RasterOnGrid` in the
    file's units; one stored in several pieces (bursts, frames) by a
    :class:`MosaicOnGrid`, in linear power.  Readers shared by several tracks or
    polarisations are opened once; ``readers`` collects them so the caller can
    close them all (the A_ratio run, the model run and training's dataset
    builder read their stacks through this).
    """
    refs: StackRefs = {}
    for track in tracks:
        for role, stacks in (("pre", selection.pre), ("post", selection.post)):
            for pol in polarisations:
                refs.setdefault(track, {}).setdefault(role, {})[pol] = [
                    _band_reader(s, s.bands[pol], grid, readers, halo) for s in stacks[track]]
    return refs


def _band_reader(scene: cat.Scene, ref: cat.BandRef, grid: Grid, readers: dict, halo: int) -> tuple:
    """(reader, units) of one polarisation of one scene, opened once per set of pieces."""
    pieces = ref.pieces()
    key = "|".join(f"{p.path}#{p.band}" for p in pieces)
    if key not in readers:
        if len(pieces) == 1:
            readers[key] = RasterOnGrid(ref.path, ref.band, grid, halo=halo)
        else:
            readers[key] = MosaicOnGrid([(p.path, p.band, cat.scene_file_units(scene, p.path)) for p in pieces],
                                        grid, halo=halo)
    units = MosaicOnGrid.units if len(pieces) > 1 else cat.scene_file_units(scene, ref.path)
    return readers[key], units


def run_provenance(method: str, event_id: str, synthetic: bool, scenes_dir, dem: Path, catalog: cat.Catalog,
                   selection: cat.StackSelection, params: DetectParams, grid: Grid) -> dict:
    """The part of ``run.json`` every method shares: what went in, which stacks, which parameters and grid."""
    return {
        "software": "landslide_sar_plugin",
        "method": method,
        "synthetic_input": synthetic,
        "event_id": event_id,
        "inputs": {
            "scenes_dir": str(Path(scenes_dir).resolve()),
            "dem": str(Path(dem).resolve()),
            "scenes": [s.to_dict() for s in catalog.scenes],
            "skipped": [{"file": str(p), "reason": why} for p, why in catalog.skipped],
        },
        "stacks": selection.to_dict(),
        "stack_summary": selection.summary_lines(),
        "parameters": params.to_dict(),
        "grid": grid.to_dict(),
        "created_utc": cat.iso_utc(dt.datetime.now(dt.timezone.utc)),
    }


def run_detection(
    scenes_dir: str | os.PathLike,
    dem_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    params: DetectParams,
    *,
    progress: ProgressFn | None = None,
    is_cancelled: CancelFn | None = None,
    finalize: Finalize | None = None,
) -> DetectResult:
    """Run the A_ratio detection and write its outputs into ``out_dir`` (see the module docstring).

    ``progress(fraction, message)`` is called often with a fraction in 0..1;
    ``is_cancelled()`` is polled at every block, and a True answer raises
    :class:`Cancelled` after removing the staged files.  ``finalize(staging,
    result)`` may stage more outputs (preview, evaluation) that are published
    with the run (see :func:`.staging.run_staged`).
    """
    params.validate()
    t_start = time.perf_counter()
    timings: dict[str, float] = {}
    prog = Progress(progress, is_cancelled)
    out = Path(out_dir)
    dem = Path(dem_path)

    prog.stage(0.0, 0.02)
    prep = prepare_run(scenes_dir, dem, params, prog)
    catalog, selection, grid, warnings = prep.catalog, prep.selection, prep.grid, prep.warnings
    params = dataclasses.replace(params, polarisation=prep.polarisation or params.polarisation)
    timings["catalogue_s"] = time.perf_counter() - t_start

    def body(staging):
        result = _run_staged(scenes_dir, dem, out, staging, params, catalog, selection, grid, warnings, timings, prog)
        result.run_info["polarisation_choice"] = prep.polarisation_reason or "given"
        return result

    return run_staged(out, body, timings, t_start, finalize=finalize)


def _run_staged(scenes_dir, dem: Path, out: Path, staging: Path, params: DetectParams, catalog: cat.Catalog,
                selection: cat.StackSelection, grid: Grid, warnings: list[str], timings: dict,
                prog: Progress) -> DetectResult:
    # Imported here, not at the top: DetectParams (the CLI's --help, Processing's parameter declarations at
    # plugin start-up) then loads no scipy.
    from . import terrain
    from .candidates import ThresholdSpec, threshold_and_vectorise

    px = grid.pixel_size
    tracks = selection.tracks()
    passes = selection.passes()
    group_of = {t: (t if params.per_orbit else (t[0], None)) for t in tracks}
    synthetic = any(s.synthetic for s in _sel_scenes(selection))
    tags = {"SOFTWARE": f"landslide_sar_plugin {__version__}", "EVENT_TIME": cat.iso_utc(params.event_time)}
    if synthetic:
        tags["SYNTHETIC"] = "computed from SYNTHETIC (simulated) Sentinel-1 scenes"

    # ---------------------------------------------------------------- pass 1: composites, ratio, masks
    t0 = time.perf_counter()
    curv_halo = terrain.halo_px(params.curv_sigma_m, params.curv_radius_m, px) if params.curv_min is not None else 1
    dem_halo = max(curv_halo, 1)
    speckle_halo = (terrain.halo_px(params.speckle_sigma_m, params.speckle_radius_m, px, op="smooth")
                    if params.speckle_sigma_m > 0 else 0)
    ctx = _Pass1(grid, params, tracks, passes, group_of, dem, dem_halo, speckle_halo, selection)
    staged = _pass1_rasters(staging, grid, params, passes, tags)
    n_blocks = grid.n_blocks(params.block_size)
    prog.stage(0.02, 0.70)
    blocks = map_blocks(grid.blocks(params.block_size), ctx.compute, workers=resolve_workers(params.workers),
                        open_state=ctx.open_readers, close_state=_Pass1Readers.close)
    try:
        with contextlib.closing(blocks):
            for i, (window, layers) in enumerate(blocks):
                prog(i / n_blocks, f"composites and ratio: block {i + 1} of {n_blocks}")
                for key, data in layers.items():
                    if key in staged:
                        staged[key].write(window, data)
        prog(1.0, "composites and ratio done")
    finally:
        for raster in staged.values():
            raster.close()
    timings["composites_ratio_s"] = time.perf_counter() - t0

    if params.detrend_radius_m > 0:
        t0 = time.perf_counter()
        prog.stage(0.70, 0.74)
        _detrend_a_ratio(staged, staging, grid, params, tags, prog)
        timings["detrend_s"] = time.perf_counter() - t0

    # ---------------------------------------------------------------- threshold, exceedance, candidates
    event_id = params.event_id or f"event_{params.event_time:%Y%m%dT%H%M}"
    spec = ThresholdSpec(
        threshold=params.threshold_db, percentile=params.percentile, k_sigma=params.k_sigma,
        smooth_sigma_m=params.ratio_sigma_m,
        smooth_radius_m=params.ratio_radius_m, min_area_m2=params.min_area_m2,
        heatmap_radius_m=params.heatmap_radius_m, method="a_ratio", units="dB", event_id=event_id,
        block_size=params.block_size)
    prog.stage(0.74, 0.93)
    # The rasters of pass 1 become COGs meanwhile, on the core the next stages leave idle: those read the
    # ratio's uncompressed twin.
    with cogs_in_background(staged, staging, list(staged)) as early_cogs:
        stage = threshold_and_vectorise(
            staged["a_ratio"].raw_path, staging, grid, spec, prog, tags=tags, synthetic=synthetic,
            empty_message="no valid A_ratio pixel is left after masking: the scenes may hold no data over the "
                          "AOI, or the slope/curvature masks remove everything (try a lower --slope-min)",
            workers=params.workers)
        timings.update(stage.timings_s)
        thr, percentiles, features = stage.threshold, stage.percentiles, stage.features

        # ------------------------------------------------------------ COGs and publication
        t0 = time.perf_counter()
        prog.stage(0.93, 1.0)
        files = {**finish_staged(stage.rasters, staging, out, prog, {"candidates": stage.gpkg}), **early_cogs()}
    staged["a_ratio"].drop_raw()
    final_files = {key: files[key] for key in (*staged, *stage.rasters, "candidates")}
    timings["cog_publish_s"] = time.perf_counter() - t0

    run_info = {
        **run_provenance("a_ratio", event_id, synthetic, scenes_dir, dem, catalog, selection, params, grid),
        "threshold_db": thr,
        "threshold_rule": spec.rule(),
        "noise": ({"center_db": stage.noise["center"], "sigma_db": stage.noise["sigma"]} if stage.noise else None),
        "percentiles_db": percentiles,
        "n_candidates": len(features),
        "outputs": {k: p.name for k, p in final_files.items()},
        "versions": versions(),
        "warnings": warnings,
    }
    return DetectResult(out, final_files, thr, len(features), percentiles, grid, selection, warnings, {}, synthetic,
                        run_info)


def _detrend_a_ratio(staged: dict, staging: Path, grid: Grid, params: DetectParams, tags: dict,
                     prog: Progress) -> None:
    """Replace the staged A_ratio by itself minus its local median; keep the median as background_change."""
    from . import detrend

    detrended, background = detrend.detrend_raster(
        staged["a_ratio"].raw_path, staging, grid, params.detrend_radius_m, prog, block_size=params.block_size,
        workers=params.workers, raw_copy=True,
        tags={**tags, "UNITS": "dB", "DEFINITION": "A_ratio minus its local median within "
              f"{params.detrend_radius_m:g} m (broad background change removed), terrain-masked; "
              "positive = backscatter dropped more than around it"},
        description=f"A_ratio {params.polarisation} dB minus its {params.detrend_radius_m:g} m local median")
    staged["a_ratio"].path.unlink()
    staged["a_ratio"].drop_raw()
    detrended.name = "a_ratio"
    staged["a_ratio"] = detrended
    if params.pass_rasters:  # a diagnostic like the per-pass ratios: kept with them
        staged["background_change"] = background
    else:
        background.close()  # its staged files go with the staging folder


def _pass1_rasters(staging: Path, grid: Grid, params: DetectParams, passes, tags: dict) -> dict[str, StagedRaster]:
    """The rasters pass 1 writes (the per-pass ratios and counts only with ``params.pass_rasters``)."""
    # GDAL compresses the tiles in as many threads as the run has workers, overlapping the next blocks.
    threads = resolve_workers(params.workers)
    staged = {"a_ratio": StagedRaster(
        staging, "a_ratio", grid, threads=threads, raw_copy=True, count=1, dtype="float32",
        nodata=float("nan"),
        descriptions=[f"A_ratio {params.polarisation} dB (pre - post), masked"],
        tags={**tags, "UNITS": "dB", "DEFINITION": "pre-event median minus post-event median, "
              "passes averaged, terrain-masked; positive = backscatter dropped"})}
    if params.pass_rasters:
        for p in passes:
            staged[f"a_ratio_{p.lower()}"] = StagedRaster(
                staging, f"a_ratio_{p.lower()}", grid, threads=threads, count=1, dtype="float32",
                nodata=float("nan"),
                descriptions=[f"A_ratio {p.lower()} {params.polarisation} dB (pre - post), unmasked"],
                tags={**tags, "UNITS": "dB", "ORBIT_PASS": p})
        count_bands = [f"{p.lower()}_{role}" for p in passes for role in ("pre", "post")]
        pol = evidence_polarisation(params)
        for p in passes:
            staged[f"evidence_{p.lower()}"] = StagedRaster(
                staging, f"evidence_{p.lower()}", grid, threads=threads, predictor=3, count=2, dtype="float32",
                nodata=float("nan"),
                descriptions=[f"{pol} pre-event median (dB)", f"{pol} post-event median (dB)"],
                tags={**tags, "UNITS": "dB", "ORBIT_PASS": p, "POLARISATION": pol,
                      "DEFINITION": "the radar evidence of the change: pre- and post-event temporal medians, tracks "
                                    "of this pass averaged, unmasked; shown as R = pre, G = post, B = pre, a drop "
                                    "(fresh scar) reads magenta, a rise green"})
        staged["counts"] = StagedRaster(staging, "counts", grid, threads=threads, count=len(count_bands),
                                        dtype="uint16",
                                        nodata=None, descriptions=count_bands,
                                        tags={**tags, "DEFINITION": "valid images per pixel in each stack"},
                                        resampling="nearest")
    staged["mask"] = StagedRaster(
        staging, "mask", grid, threads=threads, count=1, dtype="uint8", nodata=None, descriptions=["terrain mask code"],
        tags={**tags, "CODES": "0 kept; bit flags: 1 no data, 2 slope below minimum, 4 curvature below "
              "minimum (convex), 8 water, 16 outside AOI"}, resampling="nearest")
    return staged


@dataclass
class _Pass1Readers:
    """One worker's open readers and its reusable stack buffer (a GDAL dataset serves one thread only)."""

    dem: RasterOnGrid
    water: RasterOnGrid | None
    stacks: StackRefs
    opened: list
    scratch: np.ndarray = field(default_factory=lambda: np.empty(0, np.float32))

    def stack_buffer(self, dates: int, rows: int, cols: int) -> np.ndarray:
        """A ``(dates, rows, cols)`` float32 view of this worker's buffer, grown on demand and reused."""
        need = dates * rows * cols
        if self.scratch.size < need:
            self.scratch = np.empty(need, np.float32)
        return self.scratch[:need].reshape(dates, rows, cols)

    def close(self) -> None:
        for reader in self.opened:
            reader.close()


@dataclass
class _Pass1:
    """What every block of pass 1 shares; :meth:`compute` is one block, run by any worker."""

    grid: Grid
    params: DetectParams
    tracks: list
    passes: list
    group_of: dict
    dem_path: Path
    dem_halo: int
    speckle_halo: int
    selection: cat.StackSelection

    def open_readers(self) -> _Pass1Readers:
        readers: dict[str, RasterOnGrid] = {}
        opened: list = []
        try:
            dem = RasterOnGrid(self.dem_path, 1, self.grid, halo=self.dem_halo)
            opened.append(dem)
            water = (RasterOnGrid(self.params.water_mask, 1, self.grid, resampling=Resampling.nearest)
                     if self.params.water_mask else None)
            if water is not None:
                opened.append(water)
            stacks = open_stack_readers(self.selection, self.tracks, self.params.polarisations(), self.grid,
                                        readers, halo=self.speckle_halo)
        except BaseException:
            for reader in (*opened, *readers.values()):
                reader.close()
            raise
        return _Pass1Readers(dem, water, stacks, opened + list(readers.values()))

    def compute(self, readers: _Pass1Readers, window: Window) -> tuple[Window, dict[str, np.ndarray]]:
        return window, _pass1_block(window, self, readers)


EVIDENCE_POLARISATIONS = ("VH", "VV")  # the evidence layer shows the first of these the run uses


def evidence_polarisation(params: DetectParams) -> str:
    """The polarisation the evidence layer shows: VH where the run uses it (it drops most over a fresh scar)."""
    return next(p for p in EVIDENCE_POLARISATIONS if p in params.polarisations())


def _track_composites(ctx: _Pass1, readers: _Pass1Readers, window: Window,
                      track) -> tuple[np.ndarray, dict, dict]:
    """The ratio of one track (polarisations averaged), its per-role valid-image counts, and the pre/post
    medians (dB) of the evidence polarisation, on ``window``."""
    from . import terrain

    params, px, halo = ctx.params, ctx.grid.pixel_size, ctx.speckle_halo
    rows, cols = int(window.height) + 2 * halo, int(window.width) + 2 * halo
    pol_ratios, counts = [], {}
    for pol in params.polarisations():
        comps = {}
        for role in ("pre", "post"):
            refs = readers.stacks[track][role][pol]
            stack = composite.stack_db_into(readers.stack_buffer(len(refs), rows, cols),
                                            ((reader.read(window), units) for reader, units in refs),
                                            params.edge_noise_db)
            med, n = composite.median_and_count(stack, overwrite_input=True)
            if params.speckle_sigma_m > 0:
                med = terrain.gaussian_smooth(med, params.speckle_sigma_m, params.speckle_radius_m, px)
            comps[role] = crop(med, halo)
            counts[role] = counts.get(role, 0) + crop(n, halo)
        pol_ratios.append(composite.log_ratio(comps["pre"], comps["post"]))
        if pol == evidence_polarisation(params):
            evidence = dict(comps)
    return composite.mean_of_available(pol_ratios), counts, evidence


def _pass1_block(window: Window, ctx: _Pass1, readers: _Pass1Readers) -> dict[str, np.ndarray]:
    """Composites, ratios, counts and the terrain mask of one block: ``{raster key: array}``."""
    from . import terrain

    params, grid = ctx.params, ctx.grid
    rows, cols = int(window.height), int(window.width)
    dem_block = readers.dem.read(window)
    slope = crop(terrain.slope_deg(dem_block, grid.pixel_size), ctx.dem_halo)
    curv = (crop(terrain.curvature(dem_block, grid.pixel_size, params.curv_sigma_m, params.curv_radius_m),
                 ctx.dem_halo) if params.curv_min is not None else None)

    ratios_by_group: dict[tuple, list[np.ndarray]] = {}
    counts: dict[tuple[str, str], np.ndarray] = {}
    evidence: dict[str, list[dict]] = {}
    for track in ctx.tracks:
        ratio, track_counts, track_evidence = _track_composites(ctx, readers, window, track)
        evidence.setdefault(track[0], []).append(track_evidence)
        ratios_by_group.setdefault(ctx.group_of[track], []).append(ratio)
        for role, n in track_counts.items():
            key = (track[0], role)
            counts[key] = counts.get(key, np.zeros((rows, cols), np.uint16)) + n

    by_pass: dict[str, list[np.ndarray]] = {}
    for group, ratios in ratios_by_group.items():
        by_pass.setdefault(group[0], []).append(composite.mean_of_available(ratios))
    pass_ratio = {p: composite.mean_of_available(v) for p, v in by_pass.items()}
    ratio = composite.mean_of_available(list(pass_ratio.values()))
    code = _mask_code(ratio, slope, curv, params, grid, window, readers.water)
    out = {"a_ratio": np.where(code == 0, ratio, np.nan).astype(np.float32), "mask": code}
    if params.pass_rasters:
        for p in ctx.passes:
            out[f"a_ratio_{p.lower()}"] = pass_ratio.get(p, np.full((rows, cols), np.nan, np.float32))
        out["counts"] = np.stack([counts.get((p, role), np.zeros((rows, cols), np.uint16))
                                  for p in ctx.passes for role in ("pre", "post")])
        for p in ctx.passes:
            out[f"evidence_{p.lower()}"] = _evidence_bands(evidence.get(p, []), rows, cols)
    return out


def _evidence_bands(per_track: list[dict], rows: int, cols: int) -> np.ndarray:
    """(pre, post) medians in dB of one pass, tracks averaged: the two bands of ``evidence_<pass>.tif``."""
    if not per_track:
        return np.full((2, rows, cols), np.nan, np.float32)
    return np.stack([composite.mean_of_available([t[role] for t in per_track])
                     for role in ("pre", "post")]).astype(np.float32)


def _mask_code(ratio, slope, curv, params: DetectParams, grid: Grid, window: Window, water_reader) -> np.ndarray:
    """The bit-flag reason code of ``mask.tif`` for one block (0 = kept)."""
    code = np.zeros(ratio.shape, np.uint8)
    code[~np.isfinite(ratio)] |= MASK_NODATA
    if params.slope_min_deg is not None:
        with np.errstate(invalid="ignore"):
            code[~(slope >= params.slope_min_deg)] |= MASK_SLOPE
    if curv is not None:
        with np.errstate(invalid="ignore"):
            code[~(curv >= params.curv_min)] |= MASK_CURVATURE
    if water_reader is not None:
        water = water_reader.read(window)
        code[np.isfinite(water) & (water != 0)] |= MASK_WATER
    inside = _aoi_mask(params, grid, window)
    if inside is not None:
        code[~inside] |= MASK_OUTSIDE_AOI
    return code
