"""The deep-learning run: scenes + DEM + an ONNX model -> probability, candidates, run.json; and "agreement".

:func:`run_model_detection` shares the A_ratio run's preamble
(:func:`.detect.prepare_run`: catalogue, stacks with the recipe's
polarisations, grid, coverage).  Before any pixel it reads and checks the
model (:mod:`.model`: metadata, composite, polarisations, post-event scene
count, pixel size; :mod:`.inference`: channel count against the ONNX input,
IR version/opset against the installed onnxruntime).  Then, per block and per
orbit track, it builds the recipe's composite (:mod:`.recipes`) on the block
extent that the model's tiles need, runs the tiled, blended inference
(:mod:`.inference`) and combines tracks and passes:

* a model that declares ``orbit_pass`` ``ASCENDING`` or ``DESCENDING`` runs on
  that pass's tracks only; a model for ``any`` pass runs on every track;
* a per-pass recipe: probabilities are averaged over the tracks of a pass, then
  over the passes (NaN only where no track has data), as the A_ratio run
  averages ratios;
* a joint recipe (:mod:`.recipes`, ``joint_passes``): the tracks of each pass
  are averaged into one pass block, and the network sees both passes at once
  (a pass without data is flagged as missing, not averaged in), so a change
  seen in one pass only is weighed by the network, not halved by a mean.

Which model runs, on what, and why (:func:`model_choice`): a model whose recipe
carries polarisation flags (``avail_VV``/``avail_VH``) runs on dual-pol stacks
and on single-pol ones (the missing polarisation is flagged); the run uses
both polarisations when the stacks hold them, else the one they hold.  A model
trained on a range of pixel sizes runs on any grid within it; when no pixel
size is given and the finest input lies outside it, the grid takes the nearest
size the model knows.  ``run.json`` (``model_choice``), the command line and the
dock say which model ran on which polarisations and passes, and why.


The composites are the recipe's bands exactly (dB after frame-edge-noise
masking, no speckle filter; terrain from the DEM), so training can build the
same inputs with :func:`read_track_composite`.  The A_ratio terrain masks
(slope, curvature) are not applied to the probability: the model learned the
terrain; water, the AOI polygon, nodata and an optional layover/shadow mask
are (NaN = not predicted).

Outputs: ``probability.tif`` (float32 0..1, NaN nodata, COG), ``exceedance.tif``,
``heatmap.tif``, ``candidates.gpkg`` (the A_ratio fields, method ``model``,
plus ``model_name`` and ``model_sha256``) and ``run.json`` (with the model's
sha256 and metadata).  With ``params.pass_rasters`` (the default) also the
radar evidence the analyst reviews against, ``evidence_<pass>.tif``: the pre-
and post-event medians (dB) of VH where every scene holds it, else VV, exactly
as the A_ratio run writes them (same readers, medians and speckle filter), so
a model-only run can be reviewed the same way.  :func:`write_agreement` compares an A_ratio run with a
model run on one grid.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import Resampling

from . import catalog as cat
from . import composite, terrain
from .blocks import map_blocks, resolve_workers
from .candidates import ThresholdSpec, threshold_and_vectorise
from .detect import (
    EVIDENCE_POLARISATIONS,
    DetectParams,
    DetectResult,
    _aoi_mask,
    _evidence_bands,
    _sel_scenes,
    open_stack_readers,
    prepare_run,
    run_provenance,
)
from .grid import Grid, RasterOnGrid
from .inference import BlockPlan, TileCache, TiledModel, block_plans, combine_passes, n_block_plans, predict_plan
from .model import ModelError, ModelInfo, check_model_fits, pixel_size_range, read_model_info, require_onnxruntime
from .recipes import (
    CURVATURE_RADIUS_M,
    CURVATURE_SIGMA_M,
    PASS_PREFIXES,
    Recipe,
    RecipeError,
    assemble_joint,
    build_composite,
    build_pass_bands,
    composite_valid,
    mean_over_tracks,
)
from .staging import (
    CancelFn,
    DetectionError,
    Finalize,
    Progress,
    ProgressFn,
    StagedRaster,
    cogs_in_background,
    crop,
    discard,
    finish_staged,
    new_staging,
    publish,
    publish_as_one,
    relocate,
    run_staged,
    versions,
)
from .version import __version__

log = logging.getLogger(__name__)

MODEL_CANDIDATE_FIELDS = [("model_name", "TEXT"), ("model_sha256", "TEXT")]
JOINT_INPUT = "both (one network input)"  # the orbit pass of a joint composite
AGREEMENT_CODES = {0: "neither", 1: "A_ratio only", 2: "model only", 3: "both", 255: "nodata"}


@dataclass
class ModelDetectResult(DetectResult):
    """A :class:`.detect.DetectResult` (threshold = probability) plus the model, provider and passes used."""

    model: ModelInfo | None = None
    provider: str = ""
    passes_used: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- model checks


def load_model(model_path: str | os.PathLike, *, prefer_gpu: bool = True, threads: int | None = None,
               batch_size: int = 8, tiling: str = "large", tile: int | None = None,
               overlap: int | None = None) -> TiledModel:
    """Read the model's contract and open a tuned onnxruntime session; :class:`ModelError` if it cannot run here."""
    require_onnxruntime()
    info = read_model_info(model_path)
    info.get_recipe()  # unknown composite / reductions -> ModelError
    if info.ir_version is not None or info.opset is not None:
        log.debug("model %s: IR version %s, opset %s", info.path.name, info.ir_version, info.opset)
    return TiledModel.load(info, threads=threads, prefer_gpu=prefer_gpu, batch_size=batch_size, tiling=tiling,
                           tile=tile, overlap=overlap)


def _check_catalog(info: ModelInfo, recipe: Recipe):
    def check(catalog: cat.Catalog) -> None:
        held = {p for s in catalog.scenes for p in s.bands}
        missing = [p for p in recipe.polarisations() if p not in held]
        if recipe.optional_polarisations() and len(missing) < len(recipe.polarisations()):
            return
        if missing:
            raise ModelError(f"the model's composite {info.composite} needs {'+'.join(missing)}, which the scenes "
                             "do not hold")
    return check


def choose_polarisations(recipe: Recipe, params: DetectParams):
    """``catalog -> polarisations`` for :func:`.detect.prepare_run`: every polarisation the recipe reads,
    or, for a recipe with polarisation flags, the set that keeps the most scenes in the windows (both when
    the stacks hold both; VH before VV on a tie)."""
    needed = recipe.polarisations()

    def choose(catalog: cat.Catalog) -> tuple[str, ...]:
        if not recipe.optional_polarisations():
            return needed
        best, best_n = needed, -1
        for cand in (needed, *[(p,) for p in ("VH", "VV") if p in needed]):
            try:
                sel = cat.select_stacks(catalog.scenes, params.event_time, pre_days=params.pre_days,
                                        post_days=params.post_days, pre_range=params.pre_range,
                                        post_range=params.post_range, polarisations=cand)
            except cat.CatalogError:
                continue
            n = sum(len(sel.pre[t]) + len(sel.post[t]) for t in sel.tracks())
            if n > best_n:
                best, best_n = cand, n
        return best
    return choose


def model_choice(info: ModelInfo, recipe: Recipe, polarisations, tracks, pixel_size: float,
                 pixel_note: str = "") -> dict:
    """Which model runs on what, and why, in words (``run.json``, the command line, the dock)."""
    pols = [p for p in recipe.polarisations() if p in polarisations]
    passes = sorted({t[0] for t in tracks})
    missing = [p for p in recipe.polarisations() if p not in pols]
    why = []
    if missing and recipe.optional_polarisations():
        why.append(f"the stacks hold no {'/'.join(missing)}, so the model runs on {'+'.join(pols)} only (it takes "
                   "a polarisation mask)")
    else:
        why.append(f"the stacks hold {'+'.join(pols)}")
    if recipe.joint_passes:
        why.append("both orbit passes seen jointly" if len(passes) > 1 else
                   f"only the {passes[0].lower()} pass has pre- and post-event scenes (the model flags the other "
                   "as missing)")
    else:
        why.append(f"{' and '.join(p.lower() for p in passes)} pass(es), probabilities averaged")
    why.append(f"{pixel_size:g} m grid" + (f" ({pixel_note})" if pixel_note else ""))
    name = info.model_name
    text = f"{name} on {'+'.join(pols)}, {'+'.join(p.lower() for p in passes)}: {'; '.join(why)}"
    return {"model_name": name, "model_file": info.path.name if info.path else None,
            "polarisations": pols, "orbit_passes": passes, "pixel_size_m": pixel_size,
            "joint_passes": recipe.joint_passes, "reason": text}


def _tracks_for_model(info: ModelInfo, recipe: Recipe, selection: cat.StackSelection, pixel_size: float,
                      warnings: list[str], polarisations) -> list[tuple]:
    tracks = selection.tracks()
    if info.orbit_pass in ("ASCENDING", "DESCENDING"):
        tracks = [t for t in tracks if t[0] == info.orbit_pass]
        if not tracks:
            raise DetectionError(f"the model was trained on {info.orbit_pass.lower()} scenes only, and no "
                                 f"{info.orbit_pass.lower()} track has both pre- and post-event scenes")
    enough = [t for t in tracks if len(selection.post[t]) >= recipe.min_post_scenes()]
    n_post = max(len(selection.post[t]) for t in tracks)
    check_model_fits(info, available_polarisations=polarisations, n_post_scenes=n_post, pixel_size_m=pixel_size)
    for t in tracks:
        if t not in enough:
            warnings.append(f"track {t[0].lower()} {t[1]} has only {len(selection.post[t])} post-event scene(s); "
                            f"composite {info.composite} needs {recipe.min_post_scenes()}, so it is not used")
    return enough


# --------------------------------------------------------------------------- composites on a window


def composite_dem_halo(recipe: Recipe, pixel_size: float) -> int:
    """DEM halo (pixels) the recipe's terrain bands need for exact block-wise values."""
    if "curvature" in recipe.terrain():
        return terrain.halo_px(CURVATURE_SIGMA_M, CURVATURE_RADIUS_M, pixel_size)
    return 1


def _read_stacks(stack_refs: Mapping[str, Mapping[str, list]], window, edge_noise_db: float) -> dict:
    return {role: {pol: np.stack([composite.mask_edge_noise(composite.to_db(reader.read(window), units),
                                                            edge_noise_db) for reader, units in refs])
                   for pol, refs in stack_refs[role].items()}
            for role in ("pre", "post")}


def read_track_composite(recipe: Recipe, stack_refs: Mapping[str, Mapping[str, list]], window, dem_reader,
                         dem_halo: int, pixel_size: float, *, edge_noise_db: float = composite.EDGE_NOISE_DB,
                         sar_halo: int = 0) -> np.ndarray:
    """The recipe's ``(bands, rows, cols)`` composite of one track on ``window`` of the grid (a per-pass recipe).

    ``stack_refs[role][pol]`` lists ``(RasterOnGrid, units)`` per scene in
    time order (``role`` is ``pre``/``post``), opened with ``sar_halo`` (at
    least :meth:`.recipes.Recipe.sar_halo_px`); ``dem_reader`` reads with
    ``dem_halo`` (at least :func:`composite_dem_halo`).  SAR values become dB
    and frame-edge noise is masked.  Training builds its chips with this
    function; the run builds the same bands from the same stacks with
    :func:`track_composite_of`, so a model sees exactly the inputs it was trained on.
    """
    if recipe.joint_passes:
        raise DetectionError(f"composite {recipe.name} joins both passes; read it with read_joint_composite")
    stacks = _read_stacks(stack_refs, window, edge_noise_db)
    layers = terrain_layers(recipe, dem_reader.read(window) if recipe.terrain() else None, pixel_size, dem_halo)
    return track_composite_of(recipe, stacks["pre"], stacks["post"], layers, window, pixel_size, sar_halo)


def read_joint_composite(recipe: Recipe, refs_by_track: Mapping[tuple, Mapping], window, dem_reader,
                         dem_halo: int, pixel_size: float, *, sar_halo: int = 0,
                         edge_noise_db: float = composite.EDGE_NOISE_DB,
                         pass_flags: Mapping[str, np.ndarray] | None = None) -> np.ndarray:
    """The joint composite (both passes, :func:`.recipes.assemble_joint`) on ``window``: :func:`joint_composite_of`."""
    bands = {}
    for track, refs in refs_by_track.items():
        stacks = _read_stacks(refs, window, edge_noise_db)
        bands[track] = pass_bands_of(recipe, stacks["pre"], stacks["post"], window, pixel_size, sar_halo)
    layers = terrain_layers(recipe, dem_reader.read(window) if recipe.terrain() else None, pixel_size, dem_halo)
    return joint_composite_of(recipe, bands, layers, (int(window.height), int(window.width)), pass_flags)


def terrain_layers(recipe: Recipe, dem_block: np.ndarray | None, pixel_size: float, dem_halo: int) -> dict:
    """The terrain bands the recipe needs, from a DEM block read with ``dem_halo``."""
    layers = {}
    needs = recipe.terrain()
    if "slope" in needs:
        layers["slope"] = crop(terrain.slope_deg(dem_block, pixel_size), dem_halo)
    if "aspect" in needs:
        layers["aspect"] = crop(terrain.aspect_deg(dem_block, pixel_size), dem_halo)
    if "curvature" in needs:
        layers["curvature"] = crop(terrain.curvature(dem_block, pixel_size, CURVATURE_SIGMA_M, CURVATURE_RADIUS_M),
                                   dem_halo)
    return layers


def _origin(window, sar_halo: int) -> tuple[int, int]:
    """Grid row/col of the first pixel of a stack read on ``window`` with ``sar_halo`` (the local median's
    weights come from global coordinates, so a block's bands do not depend on where the block starts)."""
    return int(window.row_off) - sar_halo, int(window.col_off) - sar_halo


def pass_bands_of(recipe: Recipe, pre: Mapping, post: Mapping, window, pixel_size: float,
                  sar_halo: int = 0) -> np.ndarray:
    """The SAR bands of one track (:func:`.recipes.build_pass_bands`) on ``window``, from dB stacks read with
    ``sar_halo`` pixels beyond it (exact detrended bands), cropped to the window."""
    try:
        bands = build_pass_bands(recipe, pre, post, origin=_origin(window, sar_halo), pixel_size=pixel_size)
    except RecipeError as exc:
        raise DetectionError(str(exc)) from None
    return crop(bands, sar_halo) if sar_halo else bands


def track_composite_of(recipe: Recipe, pre: Mapping, post: Mapping, layers: Mapping, window, pixel_size: float,
                       sar_halo: int = 0) -> np.ndarray:
    """A per-pass recipe's composite on ``window`` from dB stacks read with ``sar_halo`` and terrain ``layers``
    on the window itself."""
    if sar_halo:
        layers = {k: np.pad(v, sar_halo, constant_values=np.nan) for k, v in layers.items()}
    try:
        comp = build_composite(recipe, pre, post, layers, origin=_origin(window, sar_halo), pixel_size=pixel_size)
    except RecipeError as exc:
        raise DetectionError(str(exc)) from None
    return crop(comp, sar_halo) if sar_halo else comp


def joint_composite_of(recipe: Recipe, bands_by_track: Mapping[tuple, np.ndarray], layers: Mapping, shape,
                       pass_flags: Mapping[str, np.ndarray] | None = None) -> np.ndarray:
    """The joint composite from each track's pass bands (:func:`pass_bands_of`) and the terrain ``layers``.

    Tracks of one pass are averaged into its block (:func:`.recipes.mean_over_tracks`).
    ``pass_flags[pass]`` (True = layover/shadow in that geometry) removes that pass's data there, so the
    network sees the other pass alone rather than a masked output.
    """
    blocks = {}
    for orbit_pass in PASS_PREFIXES:
        per_track = [b for track, b in bands_by_track.items() if track[0] == orbit_pass]
        if not per_track:
            continue
        block = mean_over_tracks(per_track, recipe)
        flags = (pass_flags or {}).get(orbit_pass)
        if flags is not None:
            for i, t in enumerate(recipe.pass_tokens()):
                block[i][flags] = 0.0 if t.startswith("avail_") else np.nan
        blocks[orbit_pass] = block
    try:
        return assemble_joint(recipe, blocks, layers, shape)
    except RecipeError as exc:
        raise DetectionError(str(exc)) from None


# --------------------------------------------------------------------------- reading for the run

FileRefs = dict  # {track: {"pre"|"post": [ {file key: [(pol, band position, units)]} per date, in time order ]}}


def open_file_readers(selection: cat.StackSelection, tracks, polarisations, grid: Grid, *,
                      halo: int = 0) -> tuple[dict, FileRefs]:
    """One multi-band reader per scene FILE (not per band) and, per date, which band of which file is which pol.

    A file holding VV and VH (pixel-interleaved, as most products are) is then
    read and decompressed once per block for both polarisations.  ``halo``:
    every read returns that many pixels beyond the window on each side.
    """
    bands: dict[str, list[int]] = {}
    paths: dict[str, Path] = {}
    for track in tracks:
        for stacks in (selection.pre, selection.post):
            for s in stacks[track]:
                for pol in polarisations:
                    ref = s.bands[pol]
                    paths[str(ref.path)] = ref.path
                    bands.setdefault(str(ref.path), [])
                    if ref.band not in bands[str(ref.path)]:
                        bands[str(ref.path)].append(ref.band)
    refs: FileRefs = {}
    for track in tracks:
        for role, stacks in (("pre", selection.pre), ("post", selection.post)):
            dates = []
            for s in stacks[track]:
                by_file: dict[str, list] = {}
                for pol in polarisations:
                    ref = s.bands[pol]
                    key = str(ref.path)
                    by_file.setdefault(key, []).append((pol, bands[key].index(ref.band),
                                                        cat.scene_file_units(s, ref.path)))
                dates.append(by_file)
            refs.setdefault(track, {})[role] = dates
    readers = {}
    try:
        for key, path in paths.items():
            readers[key] = RasterOnGrid(path, list(bands[key]), grid, halo=halo)
    except BaseException:
        for r in readers.values():
            r.close()
        raise
    return readers, refs


def read_role_stacks(readers: dict, dates: list, window, polarisations, edge_noise_db: float, *,
                     halo: int = 0) -> dict:
    """``{pol: (dates, rows, cols)}`` dB stacks of one track and role, each file read once for all its pols
    (``halo``: the readers' halo, so each stack is ``2 * halo`` larger than the window)."""
    rows, cols = int(window.height) + 2 * halo, int(window.width) + 2 * halo
    out = {pol: np.empty((len(dates), rows, cols), np.float32) for pol in polarisations}
    for k, by_file in enumerate(dates):
        for key, members in by_file.items():
            data = readers[key].read(window)
            for pol, position, units in members:
                composite.stack_db_into(out[pol][k:k + 1], [(data[position], units)], edge_noise_db)
    return out


# --------------------------------------------------------------------------- the run


def run_model_detection(
    scenes_dir: str | os.PathLike,
    dem_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    params: DetectParams,
    model_path: str | os.PathLike,
    *,
    progress: ProgressFn | None = None,
    is_cancelled: CancelFn | None = None,
    layover_masks: Mapping[str, str | os.PathLike] | None = None,
    prefer_gpu: bool = True,
    threads: int | None = None,
    batch_size: int = 8,
    threshold: float | None = None,
    finalize: Finalize | None = None,
    tiling: str = "large",
    tile_size: int | None = None,
    tile_overlap: int | None = None,
    write_composite: bool = False,
) -> ModelDetectResult:
    """Run the ONNX model over the event and write its outputs into ``out_dir`` (see the module docstring).

    ``params`` supplies the event, stack windows, AOI/grid, block size,
    min-area, heatmap radius, water mask and event id; the threshold is the
    model's.  ``layover_masks`` maps an orbit pass (or ``"any"``) to a raster
    whose non-zero pixels are layover/shadow in that geometry (masked, not
    predicted).  ``threshold`` replaces the model's probability threshold
    (the dock's slider).  A cancel (``is_cancelled()``, polled per batch of tiles)
    raises :class:`~.staging.Cancelled` and leaves no output.  ``finalize`` as in
    :func:`.detect.run_detection`.  ``tiling``: ``"large"`` (default) runs a fully
    convolutional model on large tiles (:class:`.inference.TiledModel`; its output
    agrees with the model's own tiling within the tolerance tested at tile
    borders), ``"model"`` on the tiles its metadata declares;
    ``tile_size``/``tile_overlap`` override both.  ``write_composite`` also writes
    the model's input stack on the run grid, per track (``composite.tif``, or
    ``composite_<pass>_r<orbit>.tif`` when several tracks are used), with the
    network's neutral value instead of NaN, so other tools (the Deepness plugin)
    can run the model on it.
    """
    params.validate()
    t_start = time.perf_counter()
    timings: dict[str, float] = {}
    prog = Progress(progress, is_cancelled)
    out = Path(out_dir)
    dem = Path(dem_path)

    prog.stage(0.0, 0.02)
    prog(0.0, "checking the model")
    model = load_model(model_path, prefer_gpu=prefer_gpu, threads=threads, batch_size=batch_size, tiling=tiling,
                       tile=tile_size, overlap=tile_overlap)
    info = model.info
    if threshold is not None:
        if not 0.0 < threshold < 1.0:  # also refuses NaN
            raise DetectionError(f"the probability threshold must lie strictly between 0 and 1, not {threshold}")
    recipe = info.get_recipe()
    log.info("model %s (%s, composite %s, sha256 %s...) on %s", info.model_name, info.path.name, info.composite,
             info.sha256[:12], model.provider)
    prep, pols, pixel_note = _prepare_for_model(scenes_dir, dem, params, prog, info, recipe)
    warnings = prep.warnings
    tracks = _tracks_for_model(info, recipe, prep.selection, prep.grid.pixel_size, warnings, pols)
    choice = model_choice(info, recipe, pols, tracks, prep.grid.pixel_size, pixel_note)
    log.info("%s", choice["reason"])
    timings["catalogue_s"] = time.perf_counter() - t_start

    run_threshold = info.threshold if threshold is None else float(threshold)

    def body(staging):
        return _run_staged(scenes_dir, dem, out, staging, params, prep, tracks, model, recipe, layover_masks or {},
                           run_threshold, timings, prog, write_composite, choice)

    return run_staged(out, body, timings, t_start, finalize=finalize)


def _prepare_for_model(scenes_dir, dem: Path, params: DetectParams, prog: Progress, info: ModelInfo,
                       recipe: Recipe):
    """:func:`.detect.prepare_run` with the model's polarisations; a grid outside the pixel sizes the model
    knows is rebuilt at the nearest one when no pixel size was given.  Returns (prep, polarisations, note)."""
    chosen: dict = {}
    choose = choose_polarisations(recipe, params)

    def pols(catalog):
        chosen["pols"] = choose(catalog)
        return chosen["pols"]

    prep = prepare_run(scenes_dir, dem, params, prog, polarisations=pols, check_catalog=_check_catalog(info, recipe))
    lo, hi = pixel_size_range(info)
    px, note = prep.grid.pixel_size, ""
    if params.pixel_size is None and not lo <= px <= hi:
        lo_t, hi_t = info.pixel_size_range_m or (info.pixel_size_m, info.pixel_size_m)
        target = float(min(max(px, lo_t), hi_t))
        note = (f"the finest input is {px:g} m, outside the {lo_t:g}-{hi_t:g} m the model was trained on, so the "
                f"scenes are resampled to {target:g} m")
        prep = prepare_run(scenes_dir, dem, dataclasses.replace(params, pixel_size=target), prog,
                           polarisations=pols, check_catalog=_check_catalog(info, recipe))
        prep.warnings.append(note)
    elif params.pixel_size is None:
        note = "the finest input resolution"
    return prep, chosen.get("pols", recipe.polarisations()), note


def _run_staged(scenes_dir, dem: Path, out: Path, staging: Path, params: DetectParams, prep, tracks, model,
                recipe: Recipe, layover_masks, threshold: float, timings: dict, prog: Progress,
                write_composite: bool = False, choice: dict | None = None) -> ModelDetectResult:
    info: ModelInfo = model.info
    grid, selection = prep.grid, prep.selection
    px = grid.pixel_size
    passes = sorted({t[0] for t in tracks})
    synthetic = any(s.synthetic for s in _sel_scenes(selection))
    tags = {"SOFTWARE": f"landslide_sar_plugin {__version__}", "EVENT_TIME": cat.iso_utc(params.event_time),
            "MODEL_NAME": info.model_name, "MODEL_SHA256": info.sha256}
    if synthetic:
        tags["SYNTHETIC"] = "computed from SYNTHETIC (simulated) Sentinel-1 scenes"

    t0 = time.perf_counter()
    pols = tuple((choice or {}).get("polarisations") or recipe.polarisations())
    ctx = _ModelPass(grid, params, tracks, recipe, dem, composite_dem_halo(recipe, px), dict(layover_masks),
                     selection, pols, recipe.sar_halo_px(px))
    combination = ("both orbit passes in one network input (joint recipe)" if recipe.joint_passes else
                   "tracks then passes averaged")
    threads = resolve_workers(params.workers)  # GDAL's compression threads follow the user's cap too
    staged: dict[str, StagedRaster] = {"probability": StagedRaster(
        staging, "probability", grid, count=1, dtype="float32", nodata=float("nan"), threads=threads,
        raw_copy=True,
        descriptions=[f"landslide probability ({info.model_name}, composite {info.composite})"],
        tags={**tags, "UNITS": "probability 0..1", "COMPOSITE": info.composite,
              "ORBIT_PASSES": ",".join(passes),
              "DEFINITION": f"tiled ONNX inference with cosine-blended overlaps; {combination}; "
                            "NaN = no data, layover/shadow, water or outside the AOI"})}
    prog.stage(0.02, 0.75)
    try:
        _infer_blocks(ctx, model, staged["probability"], prog)
        if write_composite:
            composites = _composite_rasters(staging, grid, info, ctx.composite_keys(), tags, threads)
            staged.update({c.name: c for c in composites.values()})
            _write_composites(ctx, composites, info, prog)
        if params.pass_rasters:
            pol = evidence_polarisation_of(selection, tracks)
            evidence = _evidence_rasters(staging, grid, pol, tracks, tags, threads) if pol else {}
            staged.update(evidence)
            _write_evidence(ctx, evidence, pol, prog)
    finally:
        for raster in staged.values():
            raster.close()
    timings["inference_s"] = time.perf_counter() - t0

    event_id = params.event_id or f"event_{params.event_time:%Y%m%dT%H%M}"
    spec = ThresholdSpec(threshold=threshold, min_area_m2=params.min_area_m2,
                         heatmap_radius_m=params.heatmap_radius_m, method="model", units="probability",
                         event_id=event_id, block_size=params.block_size)
    prog.stage(0.75, 0.93)
    # As in the A_ratio run: the COGs of the first pass are assembled while the candidates are computed from
    # the probability's uncompressed twin.
    with cogs_in_background(staged, staging, list(staged)) as early_cogs:
        stage = threshold_and_vectorise(
            staged["probability"].raw_path, staging, grid, spec, prog, tags=tags, synthetic=synthetic,
            empty_message="the model gave no valid probability: the scenes may hold no data over the AOI, or "
                          "everything is masked (layover/shadow, water, outside the AOI)", workers=params.workers)
        timings.update(stage.timings_s)
        add_model_fields(stage.gpkg, info, synthetic=synthetic, threshold=stage.threshold, event_id=event_id)

        t0 = time.perf_counter()
        prog.stage(0.93, 1.0)
        files = {**finish_staged(stage.rasters, staging, out, prog, {"candidates": stage.gpkg}), **early_cogs()}
    staged["probability"].drop_raw()
    final_files = {key: files[key] for key in (*staged, *stage.rasters, "candidates")}
    timings["cog_publish_s"] = time.perf_counter() - t0

    run_info = {
        **run_provenance("model", event_id, synthetic, scenes_dir, dem, prep.catalog, selection, params, grid),
        "model": {**info.to_dict(), "file": info.path.name if info.path else None},
        "model_sha256": info.sha256,
        "execution_provider": model.provider,
        "orbit_passes_used": passes,
        "tracks_used": [{"orbit_pass": t[0], "relative_orbit": t[1]} for t in tracks],
        "orbit_combination": ("the tracks of each orbit direction averaged into one pass block; both directions "
                              "in one network input (a missing direction is flagged, not averaged in)"
                              if recipe.joint_passes else
                              "mean of the tracks within each orbit direction, then of the directions (NaN-aware)"),
        "model_choice": choice or {},
        "blending": {"tile_size": model.tile, "tile_overlap": model.overlap,
                     "model_tile_size": info.tile_size, "model_tile_overlap": info.tile_overlap,
                     "window": "cosine taper over the overlap, clamped at the grid border; grid-wide tile lattice"},
        "layover_masks": {k: str(Path(v).resolve()) for k, v in layover_masks.items()},
        "threshold": stage.threshold,
        "threshold_units": "probability",
        "threshold_source": "model metadata" if threshold == info.threshold else "user",
        "threshold_rule": spec.rule(),
        "percentiles": stage.percentiles,
        "n_candidates": len(stage.features),
        "outputs": {k: p.name for k, p in final_files.items()},
        "versions": {**versions(), "onnxruntime": require_onnxruntime().__version__},
        "warnings": prep.warnings,
    }
    return ModelDetectResult(out, final_files, stage.threshold, len(stage.features), stage.percentiles, grid,
                             selection, prep.warnings, {}, synthetic, run_info, model=info, provider=model.provider,
                             passes_used=passes)


def _infer_blocks(ctx: _ModelPass, model: TiledModel, out: StagedRaster, prog: Progress) -> None:
    """The model over every block, its probabilities written into ``out`` in block order.

    The composites of the next block are built in worker threads while this
    thread runs the model on the current one.  onnxruntime already uses every
    core, so half of them build composites, each one block ahead (memory: a
    few blocks' composites, whatever the grid size).
    """
    grid, params = ctx.grid, ctx.params
    n_blocks = n_block_plans(grid.height, grid.width, params.block_size)
    caches = {key: TileCache() for key in ctx.composite_keys()}
    cores = resolve_workers(params.workers)
    builders = max(1, cores // 2)
    inputs = map_blocks(block_plans(grid.height, grid.width, model.tile, model.overlap, params.block_size),
                        ctx.compute, workers=builders, open_state=ctx.open_readers, close_state=_ModelReaders.close,
                        in_flight=builders, threaded=cores > 1)
    with contextlib.closing(inputs):
        for i, (plan, block_inputs) in enumerate(inputs):
            prog(i / n_blocks, f"model inference: block {i + 1} of {n_blocks}")
            out.write(plan.core, _model_block(plan, grid, ctx.composite_keys(), block_inputs, model, caches, prog,
                                              i, n_blocks))
    prog(1.0, "model inference done")


@dataclass
class _ModelReaders:
    """One worker's readers: DEM, water and layover masks, and one multi-band reader per scene file."""

    dem: RasterOnGrid
    water: RasterOnGrid | None
    masks: dict
    files: dict
    refs: FileRefs

    def close(self) -> None:
        for reader in (self.dem, self.water, *self.masks.values(), *self.files.values()):
            if reader is not None:
                reader.close()


@dataclass
class _BlockInputs:
    """What the model needs for one block: per composite (a track, or ``"joint"``) the composite, its layover
    flags and where the network may predict, on the plan's owned window; the water / outside-AOI masks of
    its core."""

    composites: dict
    flagged: dict
    valid: dict
    water: np.ndarray | None
    inside: np.ndarray | None


@dataclass
class _ModelPass:
    grid: Grid
    params: DetectParams
    tracks: list
    recipe: Recipe
    dem_path: Path
    dem_halo: int
    layover_masks: dict
    selection: cat.StackSelection
    polarisations: tuple
    sar_halo: int = 0

    def composite_keys(self) -> list:
        """One composite per track for a per-pass recipe; one for both passes (``"joint"``) for a joint one."""
        return ["joint"] if self.recipe.joint_passes else list(self.tracks)

    def open_readers(self) -> _ModelReaders:
        opened = []
        try:
            dem = RasterOnGrid(self.dem_path, 1, self.grid, halo=self.dem_halo)
            opened.append(dem)
            water = (RasterOnGrid(self.params.water_mask, 1, self.grid, resampling=Resampling.nearest)
                     if self.params.water_mask else None)
            opened.append(water)
            masks = {}
            for key, path in self.layover_masks.items():
                masks[key] = RasterOnGrid(path, 1, self.grid, resampling=Resampling.nearest)
                opened.append(masks[key])
            files, refs = open_file_readers(self.selection, self.tracks, self.polarisations, self.grid,
                                            halo=self.sar_halo)
        except BaseException:
            for reader in opened:
                if reader is not None:
                    reader.close()
            raise
        return _ModelReaders(dem, water, masks, files, refs)

    def compute(self, readers: _ModelReaders, plan: BlockPlan) -> tuple[BlockPlan, _BlockInputs]:
        """The composites where this block's own tiles lie (``plan.owned``: the tile cache holds the others)."""
        win = plan.owned
        composites, flagged, valid = {}, {}, {}
        if win.height and win.width:
            composites = self.composites_on(readers, win)
            valid = {key: composite_valid(self.recipe, comp) for key, comp in composites.items()}
            flagged = self._flags(readers, win)
        else:
            composites = {key: np.zeros((len(self.recipe.bands), 0, 0), np.float32) for key in self.composite_keys()}
        water = readers.water.read(plan.core) if readers.water is not None else None
        return plan, _BlockInputs(composites, flagged, valid, water, _aoi_mask(self.params, self.grid, plan.core))

    def composites_on(self, readers: _ModelReaders, win) -> dict:
        """``{composite key: (bands, rows, cols)}`` on ``win``; the terrain is derived once for all tracks."""
        recipe, px = self.recipe, self.grid.pixel_size
        dem = readers.dem.read(win) if recipe.terrain() else None
        layers = terrain_layers(recipe, dem, px, self.dem_halo)
        if recipe.joint_passes:
            bands = {t: pass_bands_of(recipe, *self._stacks(readers, t, win), win, px, self.sar_halo)
                     for t in self.tracks}
            return {"joint": joint_composite_of(recipe, bands, layers, (int(win.height), int(win.width)),
                                                self._pass_flags(readers, win))}
        return {t: track_composite_of(recipe, *self._stacks(readers, t, win), layers, win, px, self.sar_halo)
                for t in self.tracks}

    def _stacks(self, readers: _ModelReaders, track, win) -> tuple[dict, dict]:
        return tuple(read_role_stacks(readers.files, readers.refs[track][role], win, self.polarisations,
                                      self.params.edge_noise_db, halo=self.sar_halo) for role in ("pre", "post"))

    def _pass_flags(self, readers: _ModelReaders, win) -> dict:
        """Layover/shadow per orbit pass, for a joint recipe (that pass's data is removed there)."""
        return {p: _mask_on(readers.masks[p], win) for p in PASS_PREFIXES if p in readers.masks}

    def _flags(self, readers: _ModelReaders, win) -> dict:
        """Pixels not to predict per composite: the pass's (or ``any``) layover/shadow mask of a track; the
        ``any`` mask of a joint composite (its per-pass masks went into the composite)."""
        if self.recipe.joint_passes:
            return {"joint": _mask_on(readers.masks["any"], win)} if "any" in readers.masks else {}
        out = {}
        for track in self.tracks:
            reader = readers.masks.get(track[0]) or readers.masks.get("any")
            if reader is not None:
                out[track] = _mask_on(reader, win)
        return out


def _mask_on(reader: RasterOnGrid, win) -> np.ndarray:
    m = reader.read(win)
    return np.isfinite(m) & (m != 0)


def _model_block(plan: BlockPlan, grid: Grid, keys, inputs: _BlockInputs, model: TiledModel, caches,
                 prog: Progress, i: int, n_blocks: int) -> np.ndarray:
    """Probabilities on ``plan.core``: tiled inference per composite, tracks then passes averaged (one joint
    composite: its probability as is), masks applied."""
    by_pass: dict[str, list[np.ndarray]] = {}
    for k, key in enumerate(keys):
        def step(frac, k=k):
            prog((i + (k + frac) / len(keys)) / n_blocks, f"model inference: block {i + 1} of {n_blocks}")

        p = predict_plan(model, inputs.composites[key], plan, grid.height, grid.width,
                         flagged=inputs.flagged.get(key), cache=caches[key], progress=step,
                         valid=inputs.valid.get(key))
        by_pass.setdefault("joint" if key == "joint" else key[0], []).append(p)
    prob = combine_passes(by_pass)
    if inputs.water is not None:
        prob[np.isfinite(inputs.water) & (inputs.water != 0)] = np.nan
    if inputs.inside is not None:
        prob[~inputs.inside] = np.nan
    return np.clip(prob, 0.0, 1.0).astype(np.float32)


def _composite_rasters(staging: Path, grid: Grid, info: ModelInfo, keys, tags: dict, threads: int | None = None
                       ) -> dict:
    """One staged raster per composite key (a track, or ``"joint"``) for the model's input (``write_composite``)."""
    out = {}
    for key in keys:
        if key == "joint":
            name, where = "composite", {"ORBIT_PASS": JOINT_INPUT}
        else:
            name = "composite" if len(keys) == 1 else f"composite_{key[0].lower()}_r{int(key[1] or 0):03d}"
            where = {"ORBIT_PASS": key[0], "RELATIVE_ORBIT": str(key[1])}
        out[key] = StagedRaster(
            staging, name, grid, count=info.n_bands, dtype="float32", nodata=None, threads=threads,
            descriptions=[f"{b} ({u})" for b, u in zip(info.band_names, info.units or [""] * info.n_bands)],
            tags={**tags, "COMPOSITE": info.composite, **where,
                  "DEFINITION": f"the model's input bands ({', '.join(info.band_names)}) before normalisation; "
                                "missing values hold the value the network sees there (no NaN)"})
    return out


def _write_composites(ctx: _ModelPass, composites: dict, info: ModelInfo, prog: Progress) -> None:
    """A pass over the blocks writing each composite (only when asked: it re-reads the stacks).

    NaN is replaced by the network's neutral input, so a tool reading the file sees what our network sees.
    """
    from .model import neutral_inputs

    fills = np.array(neutral_inputs(info), np.float32)[:, None, None]
    readers = ctx.open_readers()
    try:
        n_blocks = ctx.grid.n_blocks(ctx.params.block_size)
        for i, window in enumerate(ctx.grid.blocks(ctx.params.block_size)):
            prog(1.0, f"writing the model's input composite: block {i + 1} of {n_blocks}")
            for key, comp in ctx.composites_on(readers, window).items():
                comp = np.asarray(comp, np.float32)
                composites[key].write(window, np.where(np.isfinite(comp), comp, fills).astype(np.float32))
    finally:
        readers.close()


# --------------------------------------------------------------------------- the radar evidence


def evidence_polarisation_of(selection: cat.StackSelection, tracks) -> str | None:
    """VH where every scene of ``tracks`` holds it (it drops most over a fresh scar), else VV; None if neither."""
    scenes = [s for t in tracks for stacks in (selection.pre, selection.post) for s in stacks[t]]
    return next((p for p in EVIDENCE_POLARISATIONS if scenes and all(p in s.bands for s in scenes)), None)


def _evidence_rasters(staging: Path, grid: Grid, pol: str, tracks, tags: dict, threads: int | None = None
                      ) -> dict[str, StagedRaster]:
    """One staged 2-band raster per orbit pass (``evidence_<pass>``), as the A_ratio run declares them."""
    out = {}
    for p in sorted({t[0] for t in tracks}):
        key = f"evidence_{p.lower()}"
        out[key] = StagedRaster(
            staging, key, grid, count=2, dtype="float32", nodata=float("nan"), threads=threads, predictor=3,
            descriptions=[f"{pol} pre-event median (dB)", f"{pol} post-event median (dB)"],
            tags={**tags, "UNITS": "dB", "ORBIT_PASS": p, "POLARISATION": pol,
                  "DEFINITION": "the radar evidence of the change: pre- and post-event temporal medians, tracks "
                                "of this pass averaged, unmasked; shown as R = pre, G = post, B = pre, a drop "
                                "(fresh scar) reads magenta, a rise green"})
    return out


@dataclass
class _EvidencePass:
    """Per block, the pre/post medians of the evidence polarisation per pass (the A_ratio run's pass 1 values)."""

    ctx: _ModelPass
    pol: str
    halo: int

    def open_readers(self) -> tuple[dict, dict]:
        readers: dict = {}
        try:
            refs = open_stack_readers(self.ctx.selection, self.ctx.tracks, (self.pol,), self.ctx.grid, readers,
                                      halo=self.halo)
        except BaseException:
            for reader in readers.values():
                reader.close()
            raise
        return readers, refs

    @staticmethod
    def close(state) -> None:
        for reader in state[0].values():
            reader.close()

    def compute(self, state, window) -> tuple:
        params, px = self.ctx.params, self.ctx.grid.pixel_size
        by_pass: dict[str, list[dict]] = {}
        for track in self.ctx.tracks:
            medians = {}
            for role in ("pre", "post"):
                refs = state[1][track][role][self.pol]
                shape = (len(refs), int(window.height) + 2 * self.halo, int(window.width) + 2 * self.halo)
                stack = composite.stack_db_into(np.empty(shape, np.float32),
                                                ((reader.read(window), units) for reader, units in refs),
                                                params.edge_noise_db)
                med = composite.median_and_count(stack, overwrite_input=True)[0]
                if params.speckle_sigma_m > 0:
                    med = terrain.gaussian_smooth(med, params.speckle_sigma_m, params.speckle_radius_m, px)
                medians[role] = crop(med, self.halo)
            by_pass.setdefault(track[0], []).append(medians)
        rows, cols = int(window.height), int(window.width)
        return window, {f"evidence_{p.lower()}": _evidence_bands(v, rows, cols) for p, v in by_pass.items()}


def _write_evidence(ctx: _ModelPass, evidence: dict[str, StagedRaster], pol: str | None, prog: Progress) -> None:
    """A pass over the blocks writing ``evidence_<pass>.tif`` (it re-reads the stacks of one polarisation)."""
    if not evidence:
        return
    params, px = ctx.params, ctx.grid.pixel_size
    halo = (terrain.halo_px(params.speckle_sigma_m, params.speckle_radius_m, px, op="smooth")
            if params.speckle_sigma_m > 0 else 0)
    job = _EvidencePass(ctx, pol, halo)
    n_blocks = ctx.grid.n_blocks(params.block_size)
    blocks = map_blocks(ctx.grid.blocks(params.block_size), job.compute, workers=resolve_workers(params.workers),
                        open_state=job.open_readers, close_state=_EvidencePass.close)
    with contextlib.closing(blocks):
        for i, (window, layers) in enumerate(blocks):
            prog(1.0, f"writing the radar evidence: block {i + 1} of {n_blocks}")
            for key, data in layers.items():
                evidence[key].write(window, data)


def add_model_fields(gpkg_path: Path, info: ModelInfo, *, synthetic: bool, threshold: float, event_id: str,
                     layer: str = "candidates") -> None:
    """Add ``model_name`` and ``model_sha256`` columns (filled) and a model-naming layer description."""
    from .gpkg import _sql, connect

    conn = connect(gpkg_path)
    try:
        conn.execute("BEGIN")
        for name, ftype in MODEL_CANDIDATE_FIELDS:
            conn.execute(_sql("ALTER TABLE {layer} ADD COLUMN {col} ", layer=layer, col=name) + ftype)
        conn.execute(_sql("UPDATE {layer} SET {a} = ?, {b} = ?", layer=layer, a="model_name", b="model_sha256"),
                     (info.model_name, info.sha256))
        desc = (("SYNTHETIC input. " if synthetic else "")
                + f"model candidates, threshold {threshold:.4g} probability, event {event_id}, model "
                f"{info.model_name} sha256 {info.sha256}")
        conn.execute("UPDATE gpkg_contents SET description = ? WHERE table_name = ?", (desc, layer))
        conn.execute("COMMIT")
    finally:
        conn.close()


# --------------------------------------------------------------------------- agreement


def write_agreement(a_ratio_dir: str | os.PathLike, model_dir: str | os.PathLike, out_path: str | os.PathLike, *,
                    block_size: int = 1024, progress: ProgressFn | None = None,
                    is_cancelled: CancelFn | None = None) -> Path:
    """``agreement.tif`` (uint8): 0 neither, 1 A_ratio only, 2 model only, 3 both, 255 nodata.

    Reads each run's ``exceedance.tif`` (0/1, 255 = nodata) block by block;
    the two runs must share one grid.  Written as a COG via a staging folder.
    """
    a_path, m_path = Path(a_ratio_dir) / "exceedance.tif", Path(model_dir) / "exceedance.tif"
    for p in (a_path, m_path):
        if not p.is_file():
            raise DetectionError(f"{p} does not exist; agreement needs the exceedance.tif of both runs")
    out = Path(out_path)
    with rasterio.open(a_path) as a, rasterio.open(m_path) as m:
        same = (a.crs == m.crs and a.width == m.width and a.height == m.height
                and all(abs(x - y) < 1e-6 * max(1.0, abs(x)) for x, y in zip(a.transform, m.transform)))
        if not same:
            raise DetectionError("the A_ratio run and the model run are not on the same grid; run both with the "
                                 "same --aoi, --crs and --pixel-size (or use --method both)")
        grid = Grid(a.crs, a.transform, a.width, a.height)
        synthetic = "SYNTHETIC" in a.tags() or "SYNTHETIC" in m.tags()
    prog = Progress(progress, is_cancelled)
    staging = new_staging(out.parent)
    try:
        tags = {"SOFTWARE": f"landslide_sar_plugin {__version__}",
                "CODES": "; ".join(f"{k} {v}" for k, v in AGREEMENT_CODES.items()),
                "A_RATIO_RUN": _run_ref(a_ratio_dir, out), "MODEL_RUN": _run_ref(model_dir, out)}
        if synthetic:
            tags["SYNTHETIC"] = "derived from SYNTHETIC data"
        st = StagedRaster(staging, out.stem, grid, count=1, dtype="uint8", nodata=255,
                          descriptions=["agreement: 0 neither, 1 A_ratio only, 2 model only, 3 both"], tags=tags,
                          resampling="nearest")
        try:
            with rasterio.open(a_path) as a, rasterio.open(m_path) as m:
                n = grid.n_blocks(block_size)
                for i, win in enumerate(grid.blocks(block_size)):
                    prog(i / n, f"agreement: block {i + 1} of {n}")
                    st.write(win, agreement_codes(a.read(1, window=win), m.read(1, window=win)))
        finally:
            st.close()
        cog = st.to_cog(staging / out.name)
        final = publish(staging, out.parent, {"agreement": cog}, replace=False)
    except BaseException:
        discard(staging)
        raise
    prog(1.0, "agreement done")
    return final["agreement"]


def _run_ref(run_dir, agreement_path: Path) -> str:
    """A run folder as recorded in agreement.tif: relative when it sits beside it (stays right once published)."""
    run = Path(run_dir).resolve()
    return run.name if run.parent == agreement_path.resolve().parent else str(run)


def run_both_detection(scenes_dir, dem_path, out_dir, params: DetectParams, model_path, *,
                       progress: ProgressFn | None = None, is_cancelled: CancelFn | None = None,
                       threshold: float | None = None, prefer_gpu: bool = True, tiling: str = "large",
                       finalize_a_ratio: Finalize | None = None, finalize_model: Finalize | None = None
                       ) -> tuple[DetectResult, ModelDetectResult, Path]:
    """A_ratio and model runs into ``out_dir/a_ratio`` and ``out_dir/model`` plus ``agreement.tif``, as one run.

    All three are staged together and published at once (a kill leaves the
    previous trio or the new one, never a new ``a_ratio/`` beside an old
    ``model/``).  Returns both results (paths in ``out_dir``) and the
    agreement raster.
    """
    from .detect import run_detection

    out = Path(out_dir)
    held = {}

    def part(lo, hi):
        return None if progress is None else (lambda f, m: progress(lo + (hi - lo) * f, m))

    def build(staging: Path) -> dict[str, Path]:
        held["a"] = run_detection(scenes_dir, dem_path, staging / "a_ratio", params, progress=part(0.0, 0.45),
                                  is_cancelled=is_cancelled, finalize=finalize_a_ratio)
        held["m"] = run_model_detection(scenes_dir, dem_path, staging / "model", params, model_path,
                                        progress=part(0.45, 0.9), is_cancelled=is_cancelled, threshold=threshold,
                                        prefer_gpu=prefer_gpu, tiling=tiling, finalize=finalize_model)
        held["agreement"] = write_agreement(staging / "a_ratio", staging / "model", staging / "agreement.tif",
                                            block_size=params.block_size, progress=part(0.9, 1.0),
                                            is_cancelled=is_cancelled)
        held["staging"] = staging
        return {"a_ratio": staging / "a_ratio", "model": staging / "model", "agreement": held["agreement"]}

    final = publish_as_one(out, build)
    for key in ("a", "m"):
        res = held[key]
        res.files = relocate(res.files, held["staging"], out)
        res.out_dir = out / res.out_dir.name
    return held["a"], held["m"], final["agreement"]


def agreement_codes(a_exceed: np.ndarray, m_exceed: np.ndarray) -> np.ndarray:
    """Per-pixel codes from two exceedance arrays (0/1, 255 = nodata)."""
    a, m = np.asarray(a_exceed), np.asarray(m_exceed)
    code = (a == 1).astype(np.uint8) + 2 * (m == 1).astype(np.uint8)
    code[(a == 255) | (m == 255)] = 255
    return code.astype(np.uint8)
