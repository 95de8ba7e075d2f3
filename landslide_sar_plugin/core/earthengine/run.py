"""Earth Engine as a scene source: list the Sentinel-1 stacks, then run the A_ratio in one of two modes.

* ``download``: per track (pass x relative orbit) the pre and post median
  composites (and per-pixel counts) and the GLO-30 DEM are downloaded on the
  output grid and written as a local scene folder (one GeoTIFF per track x
  role, tagged, plus ``scenes.json``; the median of one composite is itself),
  which :func:`..detect.run_detection` then processes unchanged.
* ``server``: the ratio, the per-pass ratios, the terrain mask and the counts
  are computed by Earth Engine with the same parameters; only they are
  downloaded, then thresholded locally by :func:`..candidates.candidates_from_score`.

Both write ``run.json`` with an ``earthengine`` section holding the request
(collection, every filter, the image ids of every stack, the serialized
expressions) so the run can be repeated.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rasterio
from rasterio.warp import transform_bounds

from .. import catalog as cat
from .. import terrain
from ..candidates import ThresholdSpec, candidates_from_score
from ..detect import (
    MASK_NODATA,
    MASK_OUTSIDE_AOI,
    MASK_WATER,
    DetectParams,
    DetectResult,
    _aoi_mask,
    run_detection,
)
from ..grid import Aoi, Grid, GridError, RasterOnGrid, grid_from_bounds, parse_aoi
from ..staging import (
    GDAL_CACHE_BYTES,
    CancelFn,
    DetectionError,
    Finalize,
    Progress,
    ProgressFn,
    StagedRaster,
    publish_as_one,
    run_staged,
    versions,
    write_json,
)
from ..version import __version__
from . import graph
from .auth import import_ee, initialize
from .download import (
    REQUEST_LIMIT_BYTES,
    DownloadStats,
    EarthEngineTransport,
    Fetcher,
    RetryPolicy,
    TileCache,
    cached_get_info,
    serialize,
)

log = logging.getLogger(__name__)

MODES = ("download", "server")
LISTING_CACHE_AFTER_DAYS = 14  # a window that ended this long ago no longer gains newly ingested scenes


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(base) / "landslide_sar_plugin" / "earthengine"


# --------------------------------------------------------------------------- listing


@dataclass
class EEListing:
    """The Earth Engine scene catalogue of one AOI and event, grouped as the local one."""

    query: graph.S1Query
    window: tuple[dt.datetime, dt.datetime]
    scenes: list[cat.Scene]
    selection: cat.StackSelection
    grid: Grid
    warnings: list[str] = field(default_factory=list)

    def table_rows(self) -> list[dict]:
        """One row per scene for the dock's table: id, date, pass, relative orbit, role, used."""
        used = set(self.selection.tracks())
        rows = []
        for role, stacks in (("pre", self.selection.pre), ("post", self.selection.post)):
            for track, scenes in stacks.items():
                for s in scenes:
                    rows.append({"scene_id": s.scene_id, "acquisition_start": cat.iso_utc(s.acquisition_start),
                                 "orbit_pass": s.orbit_pass, "relative_orbit": s.relative_orbit, "role": role,
                                 "used": track in used, "source": "earthengine"})
        return sorted(rows, key=lambda r: (r["acquisition_start"], r["scene_id"]))

    def counts(self) -> list[dict]:
        """Per track: number of pre and post scenes and whether the track is used."""
        tracks = sorted(set(self.selection.pre) | set(self.selection.post), key=lambda t: (t[0], t[1] or 0))
        used = set(self.selection.tracks())
        return [{"orbit_pass": t[0], "relative_orbit": t[1], "pre": len(self.selection.pre.get(t, [])),
                 "post": len(self.selection.post.get(t, [])), "used": t in used} for t in tracks]

    def summary_lines(self) -> list[str]:
        return self.selection.summary_lines()

    def request(self) -> dict:
        return {"collection": self.query.collection, "filters": self.query.filters(*self.window),
                "list_columns": graph.LIST_COLUMNS,
                "stacks": [{"orbit_pass": s.track[0], "relative_orbit": s.track[1], "role": s.role,
                            "date_start_utc": cat.iso_utc(s.start), "date_end_utc_inclusive": cat.iso_utc(s.end),
                            "n_images": len(s.ids), "image_ids": s.ids}
                           for s in graph.stack_specs(self.selection)]}


EE_PIXEL_SIZE_M = 10.0  # COPERNICUS/S1_GRD's pixel spacing: the finest input of an Earth Engine run


def output_grid(params: DetectParams) -> Grid:
    if params.aoi is None:
        raise DetectionError("Earth Engine needs an area of interest (--aoi: a box or a polygon file)")
    px = params.pixel_size if params.pixel_size is not None else EE_PIXEL_SIZE_M
    reason = "given by the user" if params.pixel_size is not None else "not given: COPERNICUS/S1_GRD's 10 m spacing"
    try:
        grid = grid_from_bounds(params.aoi.bounds, params.aoi.crs, px, params.crs)
    except GridError as exc:
        raise DetectionError(str(exc)) from None
    return dataclasses.replace(grid, pixel_size_reason=reason)


def _windows(params: DetectParams) -> tuple[tuple, tuple]:
    t = params.event_time
    pre = params.pre_range or (t - dt.timedelta(days=params.pre_days), t - dt.timedelta(microseconds=1))
    post = params.post_range or (t + dt.timedelta(microseconds=1), t + dt.timedelta(days=params.post_days))
    return pre, post


def ee_params(params: DetectParams) -> DetectParams:
    """``auto`` polarisation on Earth Engine means VV+VH: COPERNICUS/S1_GRD IW over land is dual-pol."""
    return dataclasses.replace(params, polarisation="both") if params.polarisation == "auto" else params


def list_scenes(params: DetectParams, *, transport, orbit_pass: str | None = None, cache: TileCache | None = None,
                now: dt.datetime | None = None) -> EEListing:
    """List ``COPERNICUS/S1_GRD`` for the AOI and event and split it into stacks like the local catalogue.

    Raises :class:`DetectionError` with the local path's refusals (no track
    with both stacks, a pre range reaching past the event, no scene at all).
    ``ee`` must be initialised (:func:`.auth.initialize`).
    """
    params = ee_params(params)
    params.validate()
    ee = import_ee()
    grid = output_grid(params)
    lonlat = transform_bounds(grid.crs, "EPSG:4326", *grid.bounds, densify_pts=21)
    q = graph.S1Query(tuple(round(v, 7) for v in lonlat), params.polarisations(),
                      cat._norm_pass(orbit_pass) if orbit_pass else None)
    pre, post = _windows(params)
    if params.pre_range is not None and pre[1] >= params.event_time:
        raise DetectionError(f"the pre-event range ends {cat.iso_utc(pre[1])}, at or after the event "
                             f"({cat.iso_utc(params.event_time)}): pre-event scenes must predate the event")
    start, end = min(pre[0], post[0]), max(pre[1], post[1])
    now = now or dt.datetime.now(dt.timezone.utc)
    cacheable = end < now - dt.timedelta(days=LISTING_CACHE_AFTER_DAYS)
    answer = cached_get_info(transport, cache or TileCache(None), graph.listing(ee, q, start, end),
                             cacheable=cacheable)
    rows = (answer or {}).get("list", []) if isinstance(answer, dict) else (answer or [])
    scenes = []
    for row in rows:
        sid, ms, opass, rel = row[0], row[1], row[2], row[3]
        t = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(milliseconds=int(ms))
        scenes.append(cat.Scene(
            scene_id=str(sid), acquisition_start=t, orbit_pass=cat._norm_pass(opass),
            relative_orbit=int(rel) if rel is not None else None, units="dB",
            bands={p: cat.BandRef(Path(f"ee://{q.collection}/{sid}"), i + 1) for i, p in enumerate(q.polarisations)},
            file_products={str(Path(f"ee://{q.collection}/{sid}")): f"ESA GRD (Earth Engine {q.collection})"}))
    scenes.sort(key=lambda s: (s.acquisition_start, s.scene_id))
    if not scenes:
        raise DetectionError(
            f"Earth Engine has no {'+'.join(q.polarisations)} IW scene of {q.collection} over the AOI between "
            f"{start:%Y-%m-%d} and {end:%Y-%m-%d}"
            + (f" on {q.orbit_pass} passes" if q.orbit_pass else "")
            + ": widen --pre-days/--post-days, check the AOI and the event date, or try another polarisation")
    try:
        selection = cat.select_stacks(scenes, params.event_time, pre_days=params.pre_days,
                                      post_days=params.post_days, pre_range=params.pre_range,
                                      post_range=params.post_range, polarisations=params.polarisations())
    except cat.CatalogError as exc:
        raise DetectionError(str(exc).replace("add post-event scenes", "no post-event scene is in Earth Engine "
                                              "yet (Sentinel-1 revisits every 6-12 days)")) from None
    return EEListing(q, (start, end), scenes, selection, grid)


# --------------------------------------------------------------------------- the run


def _sub_progress(progress: ProgressFn | None, lo: float, hi: float) -> ProgressFn | None:
    if progress is None:
        return None
    return lambda f, m: progress(lo + (hi - lo) * min(max(f, 0.0), 1.0), m)


def run_earthengine_detection(
    aoi: Aoi | str | None,
    event_time: dt.datetime | str | None,
    out_dir: str | os.PathLike,
    params: DetectParams,
    *,
    project: str | None,
    mode: str = "download",
    orbit_pass: str | None = None,
    service_account_key: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None | bool = None,
    transport=None,
    budget_bytes: int = REQUEST_LIMIT_BYTES,
    retry: RetryPolicy | None = None,
    progress: ProgressFn | None = None,
    is_cancelled: CancelFn | None = None,
    finalize: Finalize | None = None,
) -> DetectResult:
    """The A_ratio run on Earth Engine's Sentinel-1 archive (CLI, dock and Processing entry point).

    ``aoi``/``event_time`` override ``params.aoi``/``params.event_time`` when
    given (strings are parsed as on the command line).  ``mode`` is
    ``"download"`` or ``"server"`` (see the module docstring).  With
    ``transport=None`` Earth Engine is initialised with existing credentials
    and ``project`` (never interactively); a given ``transport`` (tests, or a
    caller that initialised ``ee`` itself) is used as is.  ``cache_dir``:
    ``None`` = the user cache folder, ``False`` = no cache.  ``finalize`` as in
    :func:`..detect.run_detection` (extra outputs published with the run).
    """
    if mode not in MODES:
        raise DetectionError(f"--ee-mode must be one of {', '.join(MODES)}, not {mode!r}")
    changes = {}
    if aoi is not None:
        try:
            changes["aoi"] = parse_aoi(aoi) if isinstance(aoi, str) else aoi
        except GridError as exc:
            raise DetectionError(str(exc)) from None
    if event_time is not None:
        try:
            changes["event_time"] = cat.parse_time(event_time) if isinstance(event_time, str) else event_time
        except cat.CatalogError as exc:
            raise DetectionError(str(exc)) from None
    params = ee_params(dataclasses.replace(params, **changes))
    params.validate()
    if mode == "server" and params.water_mask and not Path(params.water_mask).is_file():
        raise DetectionError(f"water mask {params.water_mask} does not exist")
    t_start = time.perf_counter()
    out = Path(out_dir)  # created (and, after a failure, removed again) by the publication
    prog = Progress(progress, is_cancelled)

    prog(0.0, "connecting to Earth Engine")
    cred_kind = "supplied transport"
    if transport is None:
        cred_kind = initialize(project, service_account_key=service_account_key).kind
        transport = EarthEngineTransport()
    else:
        import_ee()
    cache = TileCache(None if cache_dir is False else (cache_dir or default_cache_dir()))
    fetcher = Fetcher(transport, cache, budget=budget_bytes, retry=retry)

    prog(0.01, "listing Sentinel-1 scenes on Earth Engine")
    listing = list_scenes(params, transport=transport, orbit_pass=orbit_pass, cache=cache)
    for line in listing.summary_lines():
        log.info("%s", line)
    timings = {"listing_s": time.perf_counter() - t_start}
    ee_info = {"mode": mode, "project": project, "credentials": cred_kind, **listing.request(),
               "dem": {"collection": graph.DEM_COLLECTION, "band": graph.DEM_BAND, "mosaic": True,
                       "resampling": "bilinear"},
               "per_image": f"band <pol>, bilinear, masked where <= {params.edge_noise_db} dB, then median/count",
               "request_limit_bytes": REQUEST_LIMIT_BYTES, "tile_budget_bytes": budget_bytes,
               "file_format": fetcher.file_format, "expressions": {}, "downloads": {}}
    run = _run_download if mode == "download" else _run_server
    return run(listing, out, params, fetcher, prog, progress, is_cancelled, ee_info, timings, t_start, finalize)


def _repath(obj, old: str, new: str):
    """``obj`` with every string starting with ``old`` (a staging folder) re-rooted at ``new``."""
    if isinstance(obj, str):
        return new + obj[len(old):] if obj.startswith(old) else obj
    if isinstance(obj, dict):
        return {k: _repath(v, old, new) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_repath(v, old, new) for v in obj]
    return obj


def _record(ee_info: dict, label: str, image, stats: DownloadStats) -> None:
    ee_info["expressions"][label] = {"sha256": stats.expression_sha256, "json": json.loads(serialize(image))}
    ee_info["downloads"][label] = dataclasses.asdict(stats)


def _track_tag(track) -> str:
    return f"{track[0][:3]}_R{track[1] if track[1] is not None else 'xxx'}"


def _run_download(listing: EEListing, out: Path, params: DetectParams, fetcher: Fetcher, prog: Progress,
                  progress, is_cancelled, ee_info: dict, timings: dict, t_start: float,
                  user_finalize: Finalize | None) -> DetectResult:
    """Download the inputs and run the local engine on them; inputs and outputs are published as one run."""
    held = {}

    def build(staging: Path) -> dict[str, Path]:
        inputs = staging / "ee_inputs"
        _download_inputs(listing, inputs, params, fetcher, prog, ee_info, timings)
        tracks, pols = listing.selection.tracks(), list(params.polarisations())

        def finalize(run_staging: Path, result):
            prog.stage(0.97, 1.0)
            prog(0.0, "per-pixel image counts from Earth Engine")
            _replace_counts(result.files["counts"], listing.grid, tracks, pols, inputs / "counts",
                            params.block_size)
            result.run_info = _repath(result.run_info, str(staging.resolve()), str(out.resolve()))
            result.run_info["inputs"]["earthengine_inputs"] = str((out / "ee_inputs").resolve())
            result.run_info["earthengine"] = ee_info
            result.timings_s = {**timings, "total_s": time.perf_counter() - t_start}
            return user_finalize(run_staging, result) if user_finalize is not None else None

        result = run_detection(inputs / "scenes", inputs / "dem.tif", staging / "run", params,
                               progress=_sub_progress(progress, 0.5, 0.97), is_cancelled=is_cancelled,
                               finalize=finalize)
        held.update(result=result)
        return {**result.files, "ee_inputs": inputs}

    final = publish_as_one(out, build)
    result = held["result"]
    result.files = {k: v for k, v in final.items() if k != "ee_inputs"}
    result.out_dir = out
    return result


def _download_inputs(listing: EEListing, inputs: Path, params: DetectParams, fetcher: Fetcher, prog: Progress,
                     ee_info: dict, timings: dict) -> None:
    """The per-track composites, counts and DEM as a local scene folder ``inputs`` (scenes/, counts/, dem.tif)."""
    ee = import_ee()
    grid = listing.grid
    pols = list(params.polarisations())
    specs = graph.stack_specs(listing.selection)
    tracks = listing.selection.tracks()
    px = grid.pixel_size
    # Pad the downloads so the local engine's neighbourhood operations see real data at the AOI edges.
    scene_halo = (terrain.halo_px(params.speckle_sigma_m, params.speckle_radius_m, px, op="smooth")
                  if params.speckle_sigma_m > 0 else 0)
    dem_halo = max(terrain.halo_px(params.curv_sigma_m, params.curv_radius_m, px)
                   if params.curv_min is not None else 1, 1) + 1
    scene_grid, dem_grid = grid.padded(scene_halo), grid.padded(dem_halo)
    t0 = time.perf_counter()
    (inputs / "scenes").mkdir(parents=True)
    (inputs / "counts").mkdir()
    jobs = []
    sidecar = []
    for track in tracks:
        image = graph.for_download(graph.track_composites(ee, listing.query, specs, track, pols,
                                                          params.edge_noise_db))
        tag = _track_tag(track)
        for role in ("pre", "post"):
            spec = next(s for s in specs if s.track == track and s.role == role)
            stack = (listing.selection.pre if role == "pre" else listing.selection.post)[track]
            when = stack[-1].acquisition_start if role == "pre" else stack[0].acquisition_start
            name = f"{tag}_{role}.tif"
            tags = {"ACQUISITION_START": cat.iso_utc(when), "ORBIT_PASS": track[0],
                    "RELATIVE_ORBIT": "" if track[1] is None else str(track[1]), "UNITS": "dB",
                    "POLARISATIONS": ",".join(pols), "SOURCE": f"Earth Engine {graph.S1_COLLECTION} median of "
                    f"{len(spec.ids)} images", "EE_IMAGE_IDS": ",".join(spec.ids),
                    "SOFTWARE": f"landslide_sar_plugin {__version__}"}
            bands = [f"{p}_{role}" for p in pols]
            jobs.append((f"{tag}_{role}", image.select(bands), bands, scene_grid, inputs / "scenes" / name, pols,
                         tags, "float32"))
            sidecar.append({"file": name, "acquisition_start": cat.iso_utc(when), "orbit_pass": track[0],
                            "relative_orbit": track[1], "units": "dB", "polarisations": pols,
                            "composite_of": len(spec.ids), "ee_image_ids": spec.ids})
        cbands = [f"{p}_{r}_count" for r in ("pre", "post") for p in pols]
        jobs.append((f"{tag}_counts", image.select(cbands), cbands, grid, inputs / "counts" / f"{tag}.tif", cbands,
                     {"ORBIT_PASS": track[0]}, "float32"))
    dem = graph.for_download(graph.dem_image(ee).resample("bilinear"))
    jobs.append(("dem", dem, [graph.DEM_BAND], dem_grid, inputs / "dem.tif", ["DEM (m)"],
                 {"SOURCE": f"Earth Engine {graph.DEM_COLLECTION} mosaic"}, "float32"))
    for i, (label, img, bands, g, path, desc, tags, dtype) in enumerate(jobs):
        prog.stage(0.02 + 0.48 * i / len(jobs), 0.02 + 0.48 * (i + 1) / len(jobs))
        stats = fetcher.fetch(img, bands, g, path, prog, label=label, descriptions=desc, tags=tags, dtype=dtype)
        _record(ee_info, label, img, stats)
    write_json(inputs / "scenes" / "scenes.json", {"scenes": sidecar})
    timings["download_s"] = time.perf_counter() - t0


def _replace_counts(target: Path, grid: Grid, tracks, pols, counts_dir: Path, block_size: int) -> None:
    """Replace the staged ``counts.tif`` with Earth Engine's per-pixel counts (the local run saw one composite)."""
    with rasterio.open(target) as src:
        descriptions = list(src.descriptions)
        tags = src.tags()
    tags["DEFINITION"] = "valid images per pixel in each stack (Earth Engine count(), summed over tracks)"
    raster = StagedRaster(target.parent, "ee_counts", grid, count=len(descriptions), dtype="uint16", nodata=None,
                          descriptions=descriptions, tags=tags, resampling="nearest")
    readers = {}
    try:
        for track in tracks:
            for j in range(2 * len(pols)):
                readers[(track, j)] = RasterOnGrid(counts_dir / f"{_track_tag(track)}.tif", j + 1, grid)
        for window in grid.blocks(block_size):
            rows, cols = int(window.height), int(window.width)
            layers = []
            for desc in descriptions:
                p, role = desc.rsplit("_", 1)
                total = np.zeros((rows, cols), np.float32)
                for track in tracks:
                    if track[0].lower() != p:
                        continue
                    for k in range(len(pols)):
                        j = (0 if role == "pre" else len(pols)) + k
                        total += np.nan_to_num(readers[(track, j)].read(window))
                layers.append(np.clip(np.rint(total), 0, 65535).astype(np.uint16))
            raster.write(window, np.stack(layers))
    finally:
        for r in readers.values():
            r.close()
        raster.close()
    os.replace(raster.to_cog(target.parent / "ee_counts.tif"), target)


def _detrended_server_ratio(a_ratio: Path, staging: Path, grid, params: DetectParams) -> dict[str, Path]:
    """The downloaded A_ratio minus its local median, and that median, as COGs in ``staging``."""
    from .. import detrend

    with rasterio.open(a_ratio) as src:
        tags = src.tags()
    detrended, background = detrend.detrend_raster(
        a_ratio, staging, grid, params.detrend_radius_m, Progress(), block_size=params.block_size,
        workers=params.workers,
        tags={**tags, "DEFINITION": f"A_ratio minus its local median within {params.detrend_radius_m:g} m"},
        description=f"A_ratio {params.polarisation} dB minus its {params.detrend_radius_m:g} m local median")
    a_ratio.unlink()
    return {"a_ratio": detrended.to_cog(staging / "a_ratio.tif"),
            "background_change": background.to_cog(staging / "background_change.tif")}


def _run_server(listing: EEListing, out: Path, params: DetectParams, fetcher: Fetcher, prog: Progress,
                progress, is_cancelled, ee_info: dict, timings: dict, t_start: float,
                finalize: Finalize | None) -> DetectResult:
    grid = listing.grid
    event_id = params.event_id or f"event_{params.event_time:%Y%m%dT%H%M}"
    spec = ThresholdSpec(threshold=params.threshold_db, percentile=params.percentile, k_sigma=params.k_sigma,
                         smooth_sigma_m=params.ratio_sigma_m, smooth_radius_m=params.ratio_radius_m,
                         min_area_m2=params.min_area_m2, heatmap_radius_m=params.heatmap_radius_m, method="a_ratio",
                         units="dB", event_id=event_id, block_size=params.block_size)

    def body(staging: Path) -> DetectResult:
        files = _server_rasters(listing, staging, params, fetcher, prog, ee_info, timings)
        if params.detrend_radius_m > 0:  # as the local run does: the broad background change removed
            files.update(_detrended_server_ratio(files["a_ratio"], staging, grid, params))
        t0 = time.perf_counter()
        try:
            cres = candidates_from_score(files["a_ratio"], staging, spec, progress=_sub_progress(progress, 0.85, 1.0),
                                         is_cancelled=is_cancelled)
        except DetectionError as exc:
            if "no valid pixel" in str(exc):
                raise DetectionError("no valid A_ratio pixel is left after masking: Earth Engine returned no data "
                                     "over the AOI, or the slope/curvature masks remove everything (try a lower "
                                     "--slope-min)") from None
            raise
        timings["candidates_s"] = time.perf_counter() - t0
        files.update(cres.files)
        run_info = {
            "software": "landslide_sar_plugin", "method": "a_ratio", "synthetic_input": False, "event_id": event_id,
            "inputs": {"source": "earthengine", "scenes": [s.to_dict() for s in listing.scenes]},
            "stacks": listing.selection.to_dict(), "stack_summary": listing.summary_lines(),
            "parameters": params.to_dict(), "grid": grid.to_dict(), "threshold_db": cres.threshold,
            "threshold_rule": spec.rule(), "percentiles_db": cres.percentiles, "n_candidates": cres.n_candidates,
            "noise": ({"center_db": cres.noise["center"], "sigma_db": cres.noise["sigma"]} if cres.noise else None),
            "outputs": {k: p.name for k, p in files.items()}, "versions": versions(), "warnings": listing.warnings,
            "created_utc": cat.iso_utc(dt.datetime.now(dt.timezone.utc)), "earthengine": ee_info,
        }
        return DetectResult(out, files, cres.threshold, cres.n_candidates, cres.percentiles, grid, listing.selection,
                            listing.warnings, dict(cres.timings_s), False, run_info)

    return run_staged(out, body, timings, t_start, finalize=finalize)


def _server_rasters(listing: EEListing, staging: Path, params: DetectParams, fetcher: Fetcher, prog: Progress,
                    ee_info: dict, timings: dict) -> dict[str, Path]:
    """Download the server-side products into ``staging`` and split them into the local run's rasters."""
    ee = import_ee()
    grid = listing.grid
    specs = graph.stack_specs(listing.selection)
    passes = listing.selection.passes()
    image, names = graph.server_products(ee, listing.query, specs, params, grid)
    image = graph.for_download(image)
    tags = {"SOFTWARE": f"landslide_sar_plugin {__version__}", "EVENT_TIME": cat.iso_utc(params.event_time),
            "SOURCE": "Earth Engine server-side A_ratio"}
    t0 = time.perf_counter()
    prog.stage(0.02, 0.75)
    products = staging / "ee_products.tif"
    stats = fetcher.fetch(image, names, grid, products, prog, label="server products")
    _record(ee_info, "server_products", image, stats)
    timings["download_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    prog.stage(0.75, 0.85)
    files = _finish_server_rasters(products, staging, grid, params, passes, names, tags, prog)
    products.unlink()
    timings["masks_s"] = time.perf_counter() - t0
    return files


def _finish_server_rasters(products: Path, staging: Path, grid: Grid, params: DetectParams, passes, names, tags,
                           prog: Progress) -> dict[str, Path]:
    """Split the downloaded bands into the local run's files; add the AOI-polygon and water flags."""
    idx = {n: i + 1 for i, n in enumerate(names)}
    count_bands = [f"{p.lower()}_{role}" for p in passes for role in ("pre", "post")]
    staged = {
        "a_ratio": StagedRaster(staging, "a_ratio", grid, count=1, dtype="float32", nodata=float("nan"),
                                descriptions=[f"A_ratio {params.polarisation} dB (pre - post), masked"],
                                tags={**tags, "UNITS": "dB", "DEFINITION": "pre-event median minus post-event "
                                      "median, passes averaged, terrain-masked; positive = backscatter dropped"}),
    }
    for p in passes:
        staged[f"a_ratio_{p.lower()}"] = StagedRaster(
            staging, f"a_ratio_{p.lower()}", grid, count=1, dtype="float32", nodata=float("nan"),
            descriptions=[f"A_ratio {p.lower()} {params.polarisation} dB (pre - post), unmasked"],
            tags={**tags, "UNITS": "dB", "ORBIT_PASS": p})
    staged["counts"] = StagedRaster(staging, "counts", grid, count=len(count_bands), dtype="uint16", nodata=None,
                                    descriptions=count_bands, resampling="nearest",
                                    tags={**tags, "DEFINITION": "valid images per pixel in each stack"})
    staged["mask"] = StagedRaster(
        staging, "mask", grid, count=1, dtype="uint8", nodata=None, descriptions=["terrain mask code"],
        tags={**tags, "CODES": "0 kept; bit flags: 1 no data, 2 slope below minimum, 4 curvature below minimum "
              "(convex), 8 water, 16 outside AOI"}, resampling="nearest")
    water = RasterOnGrid(params.water_mask, 1, grid, resampling=rasterio.enums.Resampling.nearest) \
        if params.water_mask else None
    try:
        with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_BYTES), rasterio.open(products) as src:
            n = grid.n_blocks(params.block_size)
            for i, window in enumerate(grid.blocks(params.block_size)):
                prog(i / n, f"masks: block {i + 1} of {n}")
                ratio = src.read(idx["a_ratio"], window=window)
                code_f = src.read(idx["mask_code"], window=window)
                code = np.where(np.isfinite(code_f), code_f, MASK_NODATA).astype(np.uint8)
                code[~np.isfinite(ratio)] |= MASK_NODATA
                if water is not None:
                    w = water.read(window)
                    code[np.isfinite(w) & (w != 0)] |= MASK_WATER
                inside = _aoi_mask(params, grid, window)
                if inside is not None:
                    code[~inside] |= MASK_OUTSIDE_AOI
                staged["a_ratio"].write(window, np.where(code == 0, ratio, np.nan).astype(np.float32))
                staged["mask"].write(window, code)
                for p in passes:
                    staged[f"a_ratio_{p.lower()}"].write(window, src.read(idx[f"a_ratio_{p.lower()}"], window=window))
                counts = np.stack([np.clip(np.nan_to_num(src.read(idx[f"count_{b}"], window=window)), 0, 65535)
                                   for b in count_bands]).astype(np.uint16)
                staged["counts"].write(window, counts)
    finally:
        if water is not None:
            water.close()
        for s in staged.values():
            s.close()
    return {k: s.to_cog(staging / f"{s.name}.tif") for k, s in staged.items()}
