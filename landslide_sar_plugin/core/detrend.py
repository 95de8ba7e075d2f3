"""Background-change removal: a score raster minus its km-scale local median.

Real Sentinel-1 change maps carry broad, date-specific change that no
landslide makes: rain, soil moisture and vegetation raise or lower whole
hillsides or the whole scene by 0.5-2 dB between two windows (on the real
OPERA stacks in ``../shared/realdata`` the per-date scene-wide offsets alone
reach 1 dB).  A slide is at most a few hundred metres across, so the median
of the score over a disk of about a kilometre is the background, and the score
minus that median is the change that stands out locally.

The local median is computed in bounded memory, in three steps:

1. **cells**: the median of the finite values of each square cell of
   ``cell_px`` pixels (a quarter of the radius), read in strips of cell rows;
   cells with fewer than 10 % valid pixels have no value;
2. **trend**: per cell, the median of the cell medians whose centres lie within
   ``radius_m`` (a median of medians: robust, and it ignores the slides as
   long as they cover less than about half of the disk); cells whose disk holds
   no value take the median of all cells;
3. **detrended score**: per block, the trend is interpolated bilinearly at the
   pixel centres and subtracted; invalid pixels stay NaN.

The coarse grid has ``(rows / cell_px) x (cols / cell_px)`` cells, tiny next to
the score (a 100 km x 100 km AOI at 10 m with a 1 km radius: 400 x 400 cells).
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import rasterio
from rasterio.windows import Window
from scipy import ndimage

from .grid import Grid
from .staging import Progress, StagedRaster

MIN_VALID_FRACTION = 0.10
_CHUNK_CELLS = 256  # coarse rows per step of the disk median (bounds its memory)


def cell_size_px(radius_m: float, pixel_size: float) -> int:
    """Pixels per side of a coarse cell: a quarter of the radius, at least one pixel."""
    return max(1, int(round(radius_m / 4.0 / pixel_size)))


def cell_medians(read_rows, height: int, width: int, cell: int) -> np.ndarray:
    """Median of the finite values of every ``cell`` x ``cell`` cell (NaN where < 10 % valid).

    ``read_rows(row_off, n_rows)`` returns the score rows ``[row_off, row_off + n_rows)``.
    """
    n_rows, n_cols = math.ceil(height / cell), math.ceil(width / cell)
    out = np.full((n_rows, n_cols), np.nan, np.float32)
    for i in range(n_rows):
        strip = np.asarray(read_rows(i * cell, min(cell, height - i * cell)), np.float32)
        pad = n_cols * cell - width
        if pad:
            strip = np.pad(strip, ((0, 0), (0, pad)), constant_values=np.nan)
        cells = strip.reshape(strip.shape[0], n_cols, cell).transpose(1, 0, 2).reshape(n_cols, -1)
        valid = np.isfinite(cells)
        enough = valid.sum(axis=1) >= max(1, MIN_VALID_FRACTION * cells.shape[1])
        if enough.any():
            with np.errstate(all="ignore"):
                out[i, enough] = np.nanmedian(np.where(valid[enough], cells[enough], np.nan), axis=1)
    return out


def _disk_offsets(radius_cells: float) -> list[tuple[int, int]]:
    r = int(math.floor(radius_cells))
    return [(dy, dx) for dy in range(-r, r + 1) for dx in range(-r, r + 1) if dy * dy + dx * dx <= radius_cells ** 2]


def disk_median(cells: np.ndarray, radius_cells: float, *, empty_fill: float | None = None) -> np.ndarray:
    """NaN-aware median of ``cells`` over a disk of ``radius_cells``; empty disks get ``empty_fill``, by default
    the global median (a scene-wide rule; :mod:`.local_median` uses 0, a local one)."""
    offsets = _disk_offsets(radius_cells)
    r = max(max(abs(dy), abs(dx)) for dy, dx in offsets)
    padded = np.pad(cells, r, constant_values=np.nan)
    out = np.empty_like(cells)
    for lo in range(0, cells.shape[0], _CHUNK_CELLS):
        hi = min(lo + _CHUNK_CELLS, cells.shape[0])
        stack = np.stack([padded[lo + r + dy:hi + r + dy, r + dx:r + dx + cells.shape[1]] for dy, dx in offsets])
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN disks are expected (no data there)
            out[lo:hi] = np.nanmedian(stack, axis=0)
    if empty_fill is None:
        empty_fill = np.nanmedian(cells) if np.isfinite(cells).any() else 0.0
    out[~np.isfinite(out)] = empty_fill
    return out


def trend_block(trend_cells: np.ndarray, cell: int, window: Window) -> np.ndarray:
    """The coarse trend interpolated bilinearly at the pixel centres of ``window``."""
    rows = (np.arange(int(window.row_off), int(window.row_off + window.height)) + 0.5) / cell - 0.5
    cols = (np.arange(int(window.col_off), int(window.col_off + window.width)) + 0.5) / cell - 0.5
    rr, cc = np.meshgrid(rows, cols, indexing="ij")
    return ndimage.map_coordinates(trend_cells.astype(np.float64), [rr, cc], order=1, mode="nearest").astype(
        np.float32)


def detrend_raster(score_path: Path, staging: Path, grid: Grid, radius_m: float, prog: Progress, *,
                   block_size: int = 1024, tags: dict | None = None,
                   description: str = "score minus its local median") -> tuple[StagedRaster, StagedRaster]:
    """Write ``score - local median`` and the local median (the background change) as staged rasters.

    Progress: 0-0.4 cell medians, 0.4-1 subtraction.
    """
    if radius_m <= 0:
        raise ValueError("the detrend radius must be positive (metres)")
    cell = cell_size_px(radius_m, grid.pixel_size)
    with rasterio.open(score_path) as src:

        def read_rows(row_off, n_rows):
            prog(0.4 * row_off / max(grid.height, 1), "background change: local medians")
            return src.read(1, window=Window(0, row_off, grid.width, n_rows))

        cells = cell_medians(read_rows, grid.height, grid.width, cell)
    trend_cells = disk_median(cells, radius_m / (cell * grid.pixel_size))
    tags = dict(tags or {})
    detrended = StagedRaster(staging, "detrended", grid, count=1, dtype="float32", nodata=float("nan"),
                             descriptions=[description], tags={**tags, "DETREND_RADIUS_M": radius_m},
                             raw_copy=True)
    trend = StagedRaster(staging, "background_change", grid, count=1, dtype="float32", nodata=float("nan"),
                         predictor=3,
                         descriptions=[f"local median of the score within {radius_m:g} m (background change)"],
                         tags={**tags, "DETREND_RADIUS_M": radius_m, "UNITS": tags.get("UNITS", "dB")})
    try:
        with rasterio.open(score_path) as src:
            n_blocks = grid.n_blocks(block_size)
            for i, window in enumerate(grid.blocks(block_size)):
                prog(0.4 + 0.6 * i / n_blocks, f"removing the background change: block {i + 1} of {n_blocks}")
                score = src.read(1, window=window)
                background = trend_block(trend_cells, cell, window)
                detrended.write(window, (score - background).astype(np.float32))
                trend.write(window, np.where(np.isfinite(score), background, np.nan).astype(np.float32))
    finally:
        detrended.close()
        trend.close()
    return detrended, trend
