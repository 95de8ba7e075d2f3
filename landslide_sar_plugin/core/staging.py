"""Plumbing shared by every run that writes rasters: progress and cancel, staged outputs, publication.

A run writes into a hidden staging folder inside its output folder; rasters
are written block by block, compressed once in their final layout, and
assembled into cloud-optimised GeoTIFFs at the end (:mod:`.cog`); :func:`publish` then moves the finished
files into the output folder.  A failure or a cancel removes the staging
folder, so nothing half-written is ever left where a user would find it.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
import rasterio
from rasterio.windows import Window

from .cog import CogWriter
from .grid import Grid

ProgressFn = Callable[[float, str], None]
CancelFn = Callable[[], bool]

# GDAL's block cache would otherwise grow to 5 % of RAM; memory is meant to follow the block size.
GDAL_CACHE_MB = 256


class DetectionError(ValueError):
    """The inputs or parameters cannot give a result; the message says what to change."""


class Cancelled(Exception):
    """The user cancelled the run; no output was kept."""


class Progress:
    """Maps stage-local fractions onto one 0..1 bar and checks for cancel at every step."""

    def __init__(self, progress: ProgressFn | None = None, is_cancelled: CancelFn | None = None):
        self._progress = progress
        self._is_cancelled = is_cancelled
        self._lo, self._hi = 0.0, 1.0

    def stage(self, lo: float, hi: float) -> None:
        self._lo, self._hi = lo, hi

    def __call__(self, fraction: float, message: str) -> None:
        if self._is_cancelled is not None and self._is_cancelled():
            raise Cancelled("cancelled by the user")
        if self._progress is not None:
            self._progress(self._lo + (self._hi - self._lo) * min(max(fraction, 0.0), 1.0), message)


def check_writable(out_dir: Path) -> None:
    """Create ``out_dir`` if needed and prove a file can be written there."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = out_dir / f".write-test-{uuid.uuid4().hex[:8]}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise DetectionError(f"cannot write to the output folder {out_dir}: {exc.strerror or exc}; "
                             "choose another output folder") from None


def new_staging(out_dir: Path) -> Path:
    check_writable(out_dir)
    staging = out_dir / f".partial-run-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    return staging


def publish(staging: Path, out_dir: Path, files: dict[str, Path]) -> dict[str, Path]:
    """Move finished files from ``staging`` into ``out_dir`` (same file system: atomic renames)."""
    final = {}
    for key, path in files.items():
        target = out_dir / path.name
        os.replace(path, target)
        final[key] = target
    shutil.rmtree(staging, ignore_errors=True)
    return final


def finish_staged(staged: dict[str, StagedRaster], staging: Path, out_dir: Path, prog: Progress,
                  extra_files: dict[str, Path] | None = None) -> dict[str, Path]:
    """Convert every staged raster to a COG, then publish them (and ``extra_files``) into ``out_dir``."""
    files: dict[str, Path] = {}
    for j, (key, raster) in enumerate(staged.items()):
        prog(j / max(len(staged), 1), f"writing cloud-optimised {raster.name}.tif")
        files[key] = raster.to_cog(staging / f"{raster.name}.tif")
    files.update(extra_files or {})
    final = publish(staging, out_dir, files)
    prog(1.0, "done")
    return final


def run_staged(out_dir: Path, body: Callable[[Path], object], timings: dict[str, float], t_start: float):
    """Run ``body(staging)`` inside a fresh staging folder of ``out_dir`` and finish the run.

    ``body`` converts and publishes its own outputs and returns a result with
    ``timings_s``, ``run_info`` and ``files``.  GDAL's block cache is capped
    meanwhile, so memory follows the block size; on any failure (or cancel)
    the staging folder is removed.  On success the total time is recorded and
    ``run.json`` is written last, so its presence marks a complete run.
    """
    import time

    staging = new_staging(out_dir)
    try:
        with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB):
            result = body(staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    timings["total_s"] = time.perf_counter() - t_start
    result.timings_s = timings
    result.run_info["timings_s"] = {k: round(v, 3) for k, v in timings.items()}
    write_json(out_dir / "run.json", result.run_info)
    result.files["run"] = out_dir / "run.json"
    return result


def write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.partial-{uuid.uuid4().hex[:8]}")
    tmp.write_text(json.dumps(data, indent=2, default=str), encoding="utf-8")
    os.replace(tmp, path)


def crop(arr: np.ndarray, halo: int) -> np.ndarray:
    """Remove ``halo`` pixels from each side of the last two axes."""
    return arr[..., halo:arr.shape[-2] - halo, halo:arr.shape[-1] - halo] if halo else arr


class StagedRaster:
    """A raster written block by block in the staging folder, published as a cloud-optimised GeoTIFF.

    Blocks are compressed once, as published (:mod:`.cog`: DEFLATE, 512 px
    tiles, overviews streamed alongside); :meth:`to_cog` assembles the final
    file without recompressing.  :attr:`path` is the full-resolution staged
    GeoTIFF, readable by later passes once :meth:`close` d.

    ``intermediate=True`` is for a raster that a later step reads and then
    deletes (the 0/1 raster GDAL polygonises, a smoothed score): uncompressed
    tiles and no overviews, since GDAL's polygonize reads it row by row and
    decompressing a tile per row made tracing 10-100x slower than the raw file.
    """

    def __init__(self, staging: Path, name: str, grid: Grid, *, count: int, dtype: str, nodata,
                 descriptions: list[str] | None = None, tags: dict | None = None, resampling: str = "average",
                 intermediate: bool = False):
        self.name = name
        self.path = staging / f"{name}.stage.tif"
        self.resampling = resampling
        self._writer = CogWriter(self.path, grid, count=count, dtype=dtype, nodata=nodata, resampling=resampling,
                                 descriptions=descriptions, tags=tags, compress=not intermediate)

    def write(self, window: Window, data: np.ndarray) -> None:
        self._writer.write(window, data)

    def close(self) -> None:
        self._writer.close()

    def to_cog(self, final: Path | None = None) -> Path:
        """The cloud-optimised GeoTIFF (default: ``<name>.tif`` beside the staged file); staged files go."""
        return self._writer.assemble(final or self.path.with_name(f"{self.name}.tif"))


def versions() -> dict:
    import platform

    import scipy

    from .version import __version__

    return {
        "landslide_sar_plugin": __version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "rasterio": rasterio.__version__,
        "gdal": rasterio.__gdal_version__,
    }
