"""From a score raster (A_ratio in dB, or a model probability) to exceedance, heatmap and candidate polygons.

One implementation used by the A_ratio run, the model run, the dock's
"Update polygons", the Processing algorithm "Candidates from a ratio raster"
and the Earth Engine server-side mode.  Block-streamed: the score raster is
read window by window (with the heatmap's halo), the exact percentile is
computed in bounded memory, and the polygons are traced by GDAL from a staged
0/1 raster.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import rasterio

from . import terrain, threshold
from .blocks import map_blocks, resolve_workers
from .gpkg import write_features
from .grid import Grid, RasterOnGrid
from .staging import (
    GDAL_CACHE_BYTES,
    DetectionError,
    Progress,
    StagedRaster,
    crop,
    discard,
    new_staging,
    publish,
    versions,
    write_json,
)

REPORT_PERCENTILES = (80.0, 90.0, 95.0, 99.0)


@dataclass
class ThresholdSpec:
    """How a score raster becomes candidates.  Exactly one of ``threshold``/``percentile``/``k_sigma``.

    ``threshold`` is in the score's units (dB for A_ratio, 0..1 for a
    probability); ``percentile`` takes the exact percentile of the valid
    scores; ``k_sigma`` scales the threshold to the scene's own noise:
    ``center + k_sigma * sigma`` with ``center`` the median of the valid scores
    and ``sigma = 1.4826 * MAD`` (the robust standard deviation), so a dry and a
    wet season, a 10 m and a 30 m product get the same false-alarm share.
    Exceedance is ``score > threshold``.  Distances in metres.
    """

    threshold: float | None = None
    percentile: float | None = None
    k_sigma: float | None = None
    smooth_sigma_m: float = 0.0
    smooth_radius_m: float = 0.0
    min_area_m2: float = 500.0
    heatmap_radius_m: float = 100.0
    method: str = "a_ratio"
    units: str = "dB"
    event_id: str = ""
    block_size: int = 1024

    def validate(self) -> None:
        given = [v for v in (self.threshold, self.percentile, self.k_sigma) if v is not None]
        if len(given) != 1:
            raise DetectionError("give exactly one of a fixed threshold, a percentile or a noise multiple (k sigma)")
        if not math.isfinite(given[0]):
            raise DetectionError(f"the threshold must be a finite number, not {given[0]}")
        if self.percentile is not None and not 0 < self.percentile < 100:
            raise DetectionError(f"the percentile must lie strictly between 0 and 100, not {self.percentile}")
        if self.k_sigma is not None and not 0 < self.k_sigma <= 20:
            raise DetectionError(f"the noise multiple k must lie in (0, 20] (robust standard deviations), "
                                 f"not {self.k_sigma}")
        if self.min_area_m2 < 0 or self.heatmap_radius_m < 0 or self.smooth_sigma_m < 0:
            raise DetectionError("areas, radii and smoothing must not be negative")

    def rule(self) -> str:
        if self.threshold is not None:
            return f"fixed {self.threshold:g} {self.units}"
        if self.percentile is not None:
            return f"percentile p{self.percentile:g} of the valid scores (exact)"
        return f"noise-scaled: median + {self.k_sigma:g} x robust sigma (1.4826 MAD) of the valid scores"


ROBUST_SIGMA_PER_MAD = 1.4826  # sigma of a normal distribution per unit of median absolute deviation


def noise_level(blocks, center: float | None = None, *, extent: tuple[int, float, float] | None = None
                ) -> dict[str, float]:
    """Median and robust sigma (1.4826 x MAD) of the finite values of a block stream (exact).

    ``blocks``: a zero-argument callable returning a fresh iterator of arrays,
    or any source :func:`.threshold.map_over_blocks` takes (a
    :class:`FiniteValues` computes on every core); ``center``: their median
    when already known; ``extent``: their ``(count, min, max)`` when known,
    which bounds the absolute deviations by ``[0, max(max - center, center - min)]``
    and saves a pass.  Raises ValueError when no value is finite.
    """
    engine = threshold.ExactPercentile()
    if center is None:
        center = float(engine(blocks, 50.0))
        extent = (engine.count, engine.min, engine.max)
    bounds = None
    if extent is not None:
        n, lo, hi = extent
        bounds = (n, 0.0, max(abs(hi - center), abs(lo - center)))
    deviations = threshold.TransformedBlocks(blocks, lambda b: np.abs(np.asarray(b, np.float64) - center))
    mad = float(threshold.exact_percentile(deviations, 50.0, bounds=bounds))
    return {"center": center, "sigma": ROBUST_SIGMA_PER_MAD * mad}


class FiniteValues:
    """The finite values of band 1 of a raster, gathered once into a raw float32 file, as a block source.

    The percentile passes (:class:`.threshold.ExactPercentile`: up to five over
    the scores) then read plain chunks of that file instead of decoding the
    compressed raster and dropping its NaN each time; ``count``, ``min`` and
    ``max`` come from the gathering pass, which saves the percentile's first
    pass.  The order of the values is that of the blocks, which percentiles do
    not see.  Memory: one block per worker; disk: 4 bytes per valid pixel, in
    the staging folder.  Both the gathering and the later passes run on
    ``workers`` threads; ``on_block`` is called once per block gathered.
    """

    CHUNK = 1 << 20  # values per chunk of a later pass (4 MiB)

    def __init__(self, raster: Path, grid: Grid, values_path: Path, *, block_size: int = 1024,
                 workers: int | None = None, on_block=None):
        self.path = Path(values_path)
        self.workers = resolve_workers(workers)
        self.count, self.min, self.max = 0, math.inf, -math.inf

        def finite(reader: RasterOnGrid, window) -> np.ndarray:
            block = reader.read(window).ravel()
            return block[np.isfinite(block)]

        blocks = map_blocks(grid.blocks(block_size), finite, workers=self.workers,
                            open_state=lambda: RasterOnGrid(raster, 1, grid), close_state=lambda r: r.close())
        with contextlib.closing(blocks), open(self.path, "wb") as dst:
            for values in blocks:
                if on_block is not None:
                    on_block()
                if values.size:
                    values.tofile(dst)
                    self.count += values.size
                    self.min, self.max = min(self.min, float(values.min())), max(self.max, float(values.max()))

    @property
    def extent(self) -> tuple[int, float, float]:
        """``(count, min, max)`` of the values (``bounds`` of :class:`.threshold.ExactPercentile`)."""
        return self.count, self.min, self.max

    def _read(self, start: int) -> np.ndarray:
        n = min(self.CHUNK, self.count - start)
        return np.fromfile(self.path, np.float32, count=n, offset=4 * start)

    def __call__(self):
        for start in range(0, self.count, self.CHUNK):
            yield self._read(start)

    def map_blocks(self, fn):
        chunks = map_blocks(range(0, self.count, self.CHUNK), lambda _, start: fn(self._read(start)),
                            workers=self.workers)
        with contextlib.closing(chunks):
            yield from chunks

    def close(self) -> None:
        self.path.unlink(missing_ok=True)


@dataclass
class CandidateStage:
    """What :func:`threshold_and_vectorise` produced in the staging folder."""

    threshold: float
    percentiles: dict[str, float]
    rasters: dict[str, StagedRaster]
    features: list
    gpkg: Path
    timings_s: dict[str, float] = field(default_factory=dict)
    noise: dict[str, float] | None = None  # {"center", "sigma"} in score units (k_sigma rule)


def grid_of(path: str | Path) -> Grid:
    with rasterio.open(path) as src:
        if src.crs is None:
            raise DetectionError(f"{Path(path).name} has no coordinate reference system")
        return Grid(src.crs, src.transform, src.width, src.height)


def threshold_and_vectorise(score_path: Path, staging: Path, grid: Grid, spec: ThresholdSpec, prog: Progress, *,
                            tags: dict | None = None, synthetic: bool = False,
                            empty_message: str = "the score raster holds no valid pixel",
                            workers: int | None = None) -> CandidateStage:
    """Threshold ``score_path`` (on ``grid``) and write exceedance, heatmap and candidates into ``staging``.

    ``workers`` threads compute every pass (smoothing, percentiles, exceedance/heatmap; default: every
    core; see :mod:`.blocks`) and compress the published rasters.

    The returned rasters are still staged (convert them with ``to_cog``).
    Progress: 0-0.3 threshold, 0.3-0.8 exceedance/heatmap, 0.8-1 polygons.
    """
    spec.validate()
    tags = dict(tags or {})
    px = grid.pixel_size
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    work_path = score_path
    smoothed = None
    if spec.smooth_sigma_m > 0:
        smoothed = _smoothed(score_path, staging, grid, spec, prog, workers)
        work_path = smoothed.path
    report_q = list(REPORT_PERCENTILES)
    for q in (spec.percentile, 50.0 if spec.units == "dB" or spec.k_sigma is not None else None):
        if q is not None and q not in report_q:
            report_q.append(q)

    values = FiniteValues(work_path, grid, staging / "score_values.f32", block_size=spec.block_size,
                          workers=workers, on_block=lambda: prog(0.2, "exact percentiles of the scores"))
    try:
        if values.count == 0:
            raise DetectionError(empty_message)
        found = threshold.exact_percentile(values, report_q, bounds=values.extent)
        percentiles = {f"p{q:g}": float(v) for q, v in zip(report_q, np.atleast_1d(found))}
        # The noise level is recorded for every dB score, whatever the rule, so the dock can show any
        # threshold as a multiple of it.
        noise = noise_level(values, percentiles["p50"], extent=values.extent) if "p50" in percentiles else None
    finally:
        values.close()
    if spec.k_sigma is not None:
        thr = noise["center"] + spec.k_sigma * noise["sigma"]
    else:
        thr = spec.threshold if spec.threshold is not None else percentiles[f"p{spec.percentile:g}"]
    timings["threshold_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    unit = spec.units
    threads = resolve_workers(workers)
    rasters = {
        "exceedance": StagedRaster(staging, "exceedance", grid, threads=threads, count=1, dtype="uint8", nodata=255,
                                   descriptions=[f"score > {thr:.4g} {unit}"],
                                   tags={**tags, "THRESHOLD": f"{thr:.6f}", "THRESHOLD_UNITS": unit},
                                   resampling="nearest"),
        "heatmap": StagedRaster(staging, "heatmap", grid, threads=threads, count=1, dtype="float32",
                                nodata=float("nan"),
                                descriptions=[f"fraction of exceedance pixels within {spec.heatmap_radius_m:g} m"],
                                tags={**tags, "RADIUS_M": spec.heatmap_radius_m, "THRESHOLD": f"{thr:.6f}"}),
    }
    # A 0/1 copy without nodata for polygonising: GDAL then traces only the exceedance regions.
    binary = StagedRaster(staging, "exceed_binary", grid, count=1, dtype="uint8", nodata=None, intermediate=True)
    halo = threshold.heatmap_halo_px(spec.heatmap_radius_m, px)
    n_blocks = grid.n_blocks(spec.block_size)
    blocks = map_blocks(grid.blocks(spec.block_size),
                        lambda reader, window: (window, _exceedance_block(reader, window, thr, spec, px, halo)),
                        workers=threads, close_state=lambda reader: reader.close(),
                        open_state=lambda: RasterOnGrid(work_path, 1, grid, halo=halo))
    try:
        with contextlib.closing(blocks):
            for i, (window, (code, exceed, heat)) in enumerate(blocks):
                prog(0.3 + 0.5 * i / n_blocks, f"exceedance and heatmap: block {i + 1} of {n_blocks}")
                rasters["exceedance"].write(window, code)
                binary.write(window, exceed)
                rasters["heatmap"].write(window, heat)
    finally:
        for r in (*rasters.values(), binary):
            r.close()
    timings["exceedance_heatmap_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    prog(0.8, "candidate polygons")
    features = _polygons(binary.path, score_path, grid, spec, thr)
    binary.path.unlink()
    if smoothed is not None:
        smoothed.path.unlink(missing_ok=True)
    gpkg_path = staging / "candidates.gpkg"
    write_features(gpkg_path, "candidates", features, crs=grid.crs, fields=threshold.CANDIDATE_FIELDS,
                   description=("SYNTHETIC input. " if synthetic else "")
                   + f"{spec.method} candidates, threshold {thr:.4g} {unit}, event {spec.event_id}")
    timings["candidates_s"] = time.perf_counter() - t0
    prog(1.0, f"{len(features)} candidate polygons")
    return CandidateStage(thr, percentiles, rasters, features, gpkg_path, timings, noise)


def _smoothed(score_path: Path, staging: Path, grid: Grid, spec: ThresholdSpec, prog: Progress,
              workers: int | None) -> StagedRaster:
    """Gaussian-smoothed copy of the scores (NaN-aware; invalid pixels stay NaN), on ``workers`` threads."""
    px = grid.pixel_size
    radius = spec.smooth_radius_m or 2 * spec.smooth_sigma_m
    halo = terrain.halo_px(spec.smooth_sigma_m, radius, px, op="smooth")
    out = StagedRaster(staging, "score_smoothed", grid, count=1, dtype="float32", nodata=float("nan"),
                       intermediate=True)

    def smooth(reader: RasterOnGrid, window):
        block = reader.read(window)
        sm = crop(threshold.smooth_ratio(block, spec.smooth_sigma_m, radius, px), halo)
        sm[~np.isfinite(crop(block, halo))] = np.nan
        return window, sm.astype(np.float32)

    blocks = map_blocks(grid.blocks(spec.block_size), smooth, workers=resolve_workers(workers),
                        open_state=lambda: RasterOnGrid(score_path, 1, grid, halo=halo),
                        close_state=lambda reader: reader.close())
    try:
        with contextlib.closing(blocks):
            n_blocks = grid.n_blocks(spec.block_size)
            for i, (window, sm) in enumerate(blocks):
                prog(0.1 * i / n_blocks, f"smoothing the scores: block {i + 1} of {n_blocks}")
                out.write(window, sm)
    finally:
        out.close()
    return out


def _exceedance_block(reader: RasterOnGrid, window, thr: float, spec: ThresholdSpec, px: float, halo: int):
    """One block of pass 2: (exceedance code 0/1/255, the 0/1 raster to polygonise, the heatmap)."""
    score = reader.read(window)
    valid = np.isfinite(score)
    exceed = threshold.exceedance(score, thr)
    heat = threshold.density_heatmap(exceed, valid, spec.heatmap_radius_m, px)
    core_exceed, core_valid = crop(exceed, halo), crop(valid, halo)
    code = np.where(core_valid, core_exceed.astype(np.uint8), np.uint8(255)).astype(np.uint8)
    return code, (core_exceed & core_valid).astype(np.uint8), crop(heat, halo).astype(np.float32)


def _polygons(binary_path: Path, score_path: Path, grid: Grid, spec: ThresholdSpec, thr: float) -> list:
    """Polygonise the 0/1 raster (streamed by GDAL) and attach area and zonal score statistics."""
    from rasterio.features import shapes

    with rasterio.open(binary_path) as ex, rasterio.open(score_path) as score_src:

        def read_window(win):
            return score_src.read(1, window=win)

        band = rasterio.band(ex, 1)
        # 4-connected regions, as Handwerger et al.'s reduceToVectors (eightConnected: false).
        return threshold.candidate_features(
            shapes(band, mask=band, connectivity=4, transform=grid.transform), transform=grid.transform,
            read_values=read_window, min_area_m2=spec.min_area_m2, method=spec.method, threshold=thr,
            event_id=spec.event_id, shape=(grid.height, grid.width),
        )


@dataclass
class CandidatesResult:
    out_dir: Path
    files: dict[str, Path]
    threshold: float
    n_candidates: int
    percentiles: dict[str, float]
    timings_s: dict[str, float]
    noise: dict[str, float] | None = None  # {"center", "sigma"} of the scores (dB scores)


def candidates_from_score(score_path: str | Path, out_dir: str | Path, spec: ThresholdSpec, *,
                          progress=None, is_cancelled=None, prefix: str = "") -> CandidatesResult:
    """Standalone: threshold an existing score raster into ``out_dir`` (exceedance, heatmap, candidates, json).

    ``prefix`` names the outputs (e.g. ``"update_"`` so an interactive update
    does not replace the files of the original run).  Writes
    ``<prefix>candidates.json`` with the threshold rule, percentiles and counts.
    """
    score = Path(score_path)
    if not score.is_file():
        raise DetectionError(f"score raster {score} does not exist")
    out = Path(out_dir)
    grid = grid_of(score)
    with rasterio.open(score) as src:
        synthetic = "SYNTHETIC" in src.tags()
    prog = Progress(progress, is_cancelled)
    staging = new_staging(out)
    try:
        with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_BYTES):
            stage = threshold_and_vectorise(score, staging, grid, spec, prog, synthetic=synthetic,
                                            tags={"SYNTHETIC": "derived from SYNTHETIC data"} if synthetic else {})
            files = {}
            for key, raster in stage.rasters.items():
                files[key] = raster.to_cog(staging / f"{prefix}{raster.name}.tif")
            cand = staging / f"{prefix}candidates.gpkg"
            stage.gpkg.rename(cand)
            files["candidates"] = cand
            info = {"score": str(score.resolve()), "spec": asdict(spec), "threshold": stage.threshold,
                    "threshold_rule": spec.rule(), "percentiles": stage.percentiles, "noise": stage.noise,
                    "n_candidates": len(stage.features), "synthetic_input": synthetic, "versions": versions(),
                    "created_utc": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
            write_json(staging / f"{prefix}candidates.json", info)
            files["json"] = staging / f"{prefix}candidates.json"
            # An addition to the run in ``out``: its other files stay, same-name ones are replaced as a whole.
            final = publish(staging, out, files, replace=False)
    except BaseException:
        discard(staging)
        raise
    return CandidatesResult(out, final, stage.threshold, len(stage.features), stage.percentiles, stage.timings_s,
                            stage.noise)
