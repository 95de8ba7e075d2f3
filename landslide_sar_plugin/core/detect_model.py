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
sha256 and metadata).  :func:`write_agreement` compares an A_ratio run with a
model run on one grid.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import Resampling

from . import catalog as cat
from . import composite, terrain
from .candidates import ThresholdSpec, threshold_and_vectorise
from .detect import DetectParams, DetectResult, _aoi_mask, _sel_scenes, open_stack_readers, prepare_run, run_provenance
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
    Progress,
    ProgressFn,
    StagedRaster,
    crop,
    finish_staged,
    new_staging,
    publish,
    run_staged,
    versions,
)
from .version import __version__

log = logging.getLogger(__name__)

MODEL_CANDIDATE_FIELDS = [("model_name", "TEXT"), ("model_sha256", "TEXT")]
AGREEMENT_CODES = {0: "neither", 1: "A_ratio only", 2: "model only", 3: "both", 255: "nodata"}


@dataclass
class ModelDetectResult(DetectResult):
    """A :class:`.detect.DetectResult` (threshold = probability) plus the model, provider and passes used."""

    model: ModelInfo | None = None
    provider: str = ""
    passes_used: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- model checks


def load_model(model_path: str | os.PathLike, *, prefer_gpu: bool = True, threads: int | None = None,
               batch_size: int = 8) -> TiledModel:
    """Read the model's contract and open a tuned onnxruntime session; :class:`ModelError` if it cannot run here."""
    require_onnxruntime()
    info = read_model_info(model_path)
    info.get_recipe()  # unknown composite / reductions -> ModelError
    if info.ir_version is not None or info.opset is not None:
        log.debug("model %s: IR version %s, opset %s", info.path.name, info.ir_version, info.opset)
    return TiledModel.load(info, threads=threads, prefer_gpu=prefer_gpu, batch_size=batch_size)


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


def read_terrain(recipe: Recipe, window, dem_reader, dem_halo: int, pixel_size: float) -> dict[str, np.ndarray]:
    """The recipe's terrain layers on ``window`` (the DEM read with ``dem_halo``, cropped)."""
    layers = {}
    needs = recipe.terrain()
    if needs:
        dem = dem_reader.read(window)
        if "slope" in needs:
            layers["slope"] = crop(terrain.slope_deg(dem, pixel_size), dem_halo)
        if "aspect" in needs:
            layers["aspect"] = crop(terrain.aspect_deg(dem, pixel_size), dem_halo)
        if "curvature" in needs:
            layers["curvature"] = crop(terrain.curvature(dem, pixel_size, CURVATURE_SIGMA_M, CURVATURE_RADIUS_M),
                                       dem_halo)
    return layers


def read_pass_block(recipe: Recipe, stack_refs: Mapping[str, Mapping[str, list]], window, pixel_size: float, *,
                    sar_halo: int = 0, edge_noise_db: float = composite.EDGE_NOISE_DB) -> np.ndarray:
    """The SAR bands of one track on ``window`` (:func:`.recipes.build_pass_bands`), stacks read ``sar_halo``
    pixels beyond the window (the readers were opened with that halo) for exact detrended bands."""
    stacks = _read_stacks(stack_refs, window, edge_noise_db)
    origin = (int(window.row_off) - sar_halo, int(window.col_off) - sar_halo)
    try:
        bands = build_pass_bands(recipe, stacks["pre"], stacks["post"], origin=origin, pixel_size=pixel_size)
    except RecipeError as exc:
        raise DetectionError(str(exc)) from None
    return crop(bands, sar_halo) if sar_halo else bands


def read_track_composite(recipe: Recipe, stack_refs: Mapping[str, Mapping[str, list]], window, dem_reader,
                         dem_halo: int, pixel_size: float, *, edge_noise_db: float = composite.EDGE_NOISE_DB,
                         sar_halo: int = 0) -> np.ndarray:
    """The recipe's ``(bands, rows, cols)`` composite of one track on ``window`` of the grid (a per-pass recipe).

    ``stack_refs[role][pol]`` lists ``(RasterOnGrid, units)`` per scene in
    time order (``role`` is ``pre``/``post``), opened with ``sar_halo`` (at
    least :meth:`.recipes.Recipe.sar_halo_px`); ``dem_reader`` reads with
    ``dem_halo`` (at least :func:`composite_dem_halo`).  SAR values become dB
    and frame-edge noise is masked.  Training builds its chips with this same
    function, so a model sees exactly the inputs it was trained on.
    """
    if recipe.joint_passes:
        raise DetectionError(f"composite {recipe.name} joins both passes; read it with read_joint_composite")
    stacks = _read_stacks(stack_refs, window, edge_noise_db)
    layers = read_terrain(recipe, window, dem_reader, dem_halo, pixel_size)
    origin = (int(window.row_off) - sar_halo, int(window.col_off) - sar_halo)
    if sar_halo:
        layers = {k: np.pad(v, sar_halo, constant_values=np.nan) for k, v in layers.items()}
    try:
        comp = build_composite(recipe, stacks["pre"], stacks["post"], layers, origin=origin, pixel_size=pixel_size)
    except RecipeError as exc:
        raise DetectionError(str(exc)) from None
    return crop(comp, sar_halo) if sar_halo else comp


def read_joint_composite(recipe: Recipe, refs_by_track: Mapping[tuple, Mapping], window, dem_reader,
                         dem_halo: int, pixel_size: float, *, sar_halo: int = 0,
                         edge_noise_db: float = composite.EDGE_NOISE_DB,
                         pass_flags: Mapping[str, np.ndarray] | None = None) -> np.ndarray:
    """The joint composite (both passes, :func:`.recipes.assemble_joint`) on ``window``.

    Tracks of one pass are averaged into its block (:func:`.recipes.mean_over_tracks`).
    ``pass_flags[pass]`` (True = layover/shadow in that geometry) removes that pass's data there, so the
    network sees the other pass alone rather than a masked output.
    """
    shape = (int(window.height), int(window.width))
    blocks = {}
    for orbit_pass in PASS_PREFIXES:
        per_track = [read_pass_block(recipe, refs, window, pixel_size, sar_halo=sar_halo,
                                     edge_noise_db=edge_noise_db)
                     for track, refs in refs_by_track.items() if track[0] == orbit_pass]
        if not per_track:
            continue
        block = mean_over_tracks(per_track, recipe)
        flags = (pass_flags or {}).get(orbit_pass)
        if flags is not None:
            for i, t in enumerate(recipe.pass_tokens()):
                block[i][flags] = 0.0 if t.startswith("avail_") else np.nan
        blocks[orbit_pass] = block
    layers = read_terrain(recipe, window, dem_reader, dem_halo, pixel_size)
    try:
        return assemble_joint(recipe, blocks, layers, shape)
    except RecipeError as exc:
        raise DetectionError(str(exc)) from None


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
) -> ModelDetectResult:
    """Run the ONNX model over the event and write its outputs into ``out_dir`` (see the module docstring).

    ``params`` supplies the event, stack windows, AOI/grid, block size,
    min-area, heatmap radius, water mask and event id; the threshold is the
    model's.  ``layover_masks`` maps an orbit pass (or ``"any"``) to a raster
    whose non-zero pixels are layover/shadow in that geometry (masked, not
    predicted).  ``threshold`` replaces the model's probability threshold
    (the dock's slider).  A cancel (``is_cancelled()``, polled per batch of tiles)
    raises :class:`~.staging.Cancelled` and leaves no output.
    """
    params.validate()
    t_start = time.perf_counter()
    timings: dict[str, float] = {}
    prog = Progress(progress, is_cancelled)
    out = Path(out_dir)
    dem = Path(dem_path)

    prog.stage(0.0, 0.02)
    prog(0.0, "checking the model")
    model = load_model(model_path, prefer_gpu=prefer_gpu, threads=threads, batch_size=batch_size)
    info = model.info
    if threshold is not None:
        if not 0.0 < threshold < 1.0:
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
    return run_staged(out, lambda staging: _run_staged(scenes_dir, dem, out, staging, params, prep, tracks, model,
                                                      recipe, layover_masks or {}, run_threshold, timings, prog,
                                                      choice=choice),
                      timings, t_start)


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
                recipe: Recipe, layover_masks, threshold: float, timings: dict, prog: Progress, *,
                choice: dict | None = None) -> ModelDetectResult:
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
    dem_halo = composite_dem_halo(recipe, px)
    readers: dict[str, RasterOnGrid] = {}
    extra: list[RasterOnGrid] = []
    staged: dict[str, StagedRaster] = {}
    try:
        dem_reader = RasterOnGrid(dem, 1, grid, halo=dem_halo)
        extra.append(dem_reader)
        water_reader = (RasterOnGrid(params.water_mask, 1, grid, resampling=Resampling.nearest)
                        if params.water_mask else None)
        if water_reader is not None:
            extra.append(water_reader)
        mask_readers = {}
        for key, path in layover_masks.items():
            mask_readers[key] = RasterOnGrid(path, 1, grid, resampling=Resampling.nearest)
            extra.append(mask_readers[key])
        pols = (choice or {}).get("polarisations") or list(recipe.polarisations())
        sar_halo = recipe.sar_halo_px(px)
        refs = open_stack_readers(selection, tracks, pols, grid, readers, halo=sar_halo)
        combination = ("both orbit passes in one network input (joint recipe)" if recipe.joint_passes else
                       "tracks then passes averaged")
        staged["probability"] = StagedRaster(
            staging, "probability", grid, count=1, dtype="float32", nodata=float("nan"),
            descriptions=[f"landslide probability ({info.model_name}, composite {info.composite})"],
            tags={**tags, "UNITS": "probability 0..1", "COMPOSITE": info.composite,
                  "ORBIT_PASSES": ",".join(passes),
                  "DEFINITION": f"tiled ONNX inference with cosine-blended overlaps; {combination}; "
                                "NaN = no data, layover/shadow, water or outside the AOI"})

        block = params.block_size
        n_blocks = n_block_plans(grid.height, grid.width, block)
        caches = {t: TileCache() for t in (["joint"] if recipe.joint_passes else tracks)}
        block_fn = _joint_block if recipe.joint_passes else _model_block
        prog.stage(0.02, 0.75)
        for i, plan in enumerate(block_plans(grid.height, grid.width, info.tile_size, info.tile_overlap, block)):
            prog(i / n_blocks, f"model inference: block {i + 1} of {n_blocks}")
            prob = block_fn(plan, grid, params, tracks, refs, dem_reader, dem_halo, recipe, model, caches,
                            water_reader, mask_readers, prog, i, n_blocks, sar_halo=sar_halo)
            staged["probability"].write(plan.core, prob)
        prog(1.0, "model inference done")
    finally:
        for r in (*readers.values(), *extra):
            r.close()
        for s in staged.values():
            s.close()
    timings["inference_s"] = time.perf_counter() - t0

    event_id = params.event_id or f"event_{params.event_time:%Y%m%dT%H%M}"
    spec = ThresholdSpec(threshold=threshold, min_area_m2=params.min_area_m2,
                         heatmap_radius_m=params.heatmap_radius_m, method="model", units="probability",
                         event_id=event_id, block_size=params.block_size)
    prog.stage(0.75, 0.93)
    stage = threshold_and_vectorise(
        staged["probability"].path, staging, grid, spec, prog, tags=tags, synthetic=synthetic,
        empty_message="the model gave no valid probability: the scenes may hold no data over the AOI, or "
                      "everything is masked (layover/shadow, water, outside the AOI)")
    timings.update(stage.timings_s)
    staged.update(stage.rasters)
    add_model_fields(stage.gpkg, info, synthetic=synthetic, threshold=stage.threshold, event_id=event_id)

    t0 = time.perf_counter()
    prog.stage(0.93, 1.0)
    final_files = finish_staged(staged, staging, out, prog, {"candidates": stage.gpkg})
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
        "blending": {"tile_size": info.tile_size, "tile_overlap": info.tile_overlap,
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


def _model_block(plan: BlockPlan, grid: Grid, params: DetectParams, tracks, refs, dem_reader, dem_halo, recipe,
                 model: TiledModel, caches, water_reader, mask_readers, prog: Progress, i: int,
                 n_blocks: int, *, sar_halo: int = 0) -> np.ndarray:
    """A per-pass recipe: one network run per track, probabilities averaged over tracks then passes."""
    px = grid.pixel_size
    by_pass: dict[str, list[np.ndarray]] = {}
    for k, track in enumerate(tracks):
        comp = read_track_composite(recipe, refs[track], plan.extent, dem_reader, dem_halo, px,
                                    edge_noise_db=params.edge_noise_db, sar_halo=sar_halo)
        reader = mask_readers.get(track[0]) or mask_readers.get("any")
        flagged = None
        if reader is not None:
            m = reader.read(plan.extent)
            flagged = np.isfinite(m) & (m != 0)

        def step(frac, k=k):
            prog((i + (k + frac) / len(tracks)) / n_blocks, f"model inference: block {i + 1} of {n_blocks}")

        p = predict_plan(model, comp, plan, grid.height, grid.width, flagged=flagged, cache=caches[track],
                         progress=step, valid=composite_valid(recipe, comp))
        by_pass.setdefault(track[0], []).append(p)
    return _finish_block(combine_passes(by_pass), plan, grid, params, water_reader)


def _joint_block(plan: BlockPlan, grid: Grid, params: DetectParams, tracks, refs, dem_reader, dem_halo, recipe,
                 model: TiledModel, caches, water_reader, mask_readers, prog: Progress, i: int,
                 n_blocks: int, *, sar_halo: int = 0) -> np.ndarray:
    """A joint recipe: both passes in one network input, one network run per tile."""
    flags = {}
    for orbit_pass in PASS_PREFIXES:
        reader = mask_readers.get(orbit_pass)
        if reader is not None:
            m = reader.read(plan.extent)
            flags[orbit_pass] = np.isfinite(m) & (m != 0)
    comp = read_joint_composite(recipe, {t: refs[t] for t in tracks}, plan.extent, dem_reader, dem_halo,
                                grid.pixel_size, sar_halo=sar_halo, edge_noise_db=params.edge_noise_db,
                                pass_flags=flags)
    flagged = None
    if mask_readers.get("any") is not None:
        m = mask_readers["any"].read(plan.extent)
        flagged = np.isfinite(m) & (m != 0)
    prob = predict_plan(model, comp, plan, grid.height, grid.width, flagged=flagged, cache=caches["joint"],
                        progress=lambda f: prog((i + f) / n_blocks, f"model inference: block {i + 1} of {n_blocks}"),
                        valid=composite_valid(recipe, comp))
    return _finish_block(prob, plan, grid, params, water_reader)


def _finish_block(prob: np.ndarray, plan: BlockPlan, grid: Grid, params: DetectParams, water_reader) -> np.ndarray:
    if water_reader is not None:
        water = water_reader.read(plan.core)
        prob[np.isfinite(water) & (water != 0)] = np.nan
    inside = _aoi_mask(params, grid, plan.core)
    if inside is not None:
        prob[~inside] = np.nan
    return np.clip(prob, 0.0, 1.0).astype(np.float32)


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
                "A_RATIO_RUN": str(Path(a_ratio_dir).resolve()), "MODEL_RUN": str(Path(model_dir).resolve())}
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
        final = publish(staging, out.parent, {"agreement": cog})
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    prog(1.0, "agreement done")
    return final["agreement"]


def agreement_codes(a_exceed: np.ndarray, m_exceed: np.ndarray) -> np.ndarray:
    """Per-pixel codes from two exceedance arrays (0/1, 255 = nodata)."""
    a, m = np.asarray(a_exceed), np.asarray(m_exceed)
    code = (a == 1).astype(np.uint8) + 2 * (m == 1).astype(np.uint8)
    code[(a == 255) | (m == 255)] = 255
    return code.astype(np.uint8)
