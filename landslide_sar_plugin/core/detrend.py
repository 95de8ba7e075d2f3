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

import contextlib
import math
import warnings
from pathlib import Path

import numpy as np
from rasterio.windows import Window
from scipy import ndimage

from .grid import Grid
from .staging import Progress, StagedRaster

MIN_VALID_FRACTION = 0.10
_CHUNK_CELLS = 256  # coarse rows per step of the disk median (bounds its memory)
_GROUP_ROWS = 512  # image rows read at once for the cell medians (a tile row of the staged rasters)


def cell_size_px(radius_m: float, pixel_size: float) -> int:
    """Pixels per side of a coarse cell: a quarter of the radius, at least one pixel."""
    return max(1, int(round(radius_m / 4.0 / pixel_size)))


def cell_medians(read_rows, height: int, width: int, cell: int, *, workers: int = 1,
                 open_state=lambda: None, close_state=lambda state: None, on_row=None) -> np.ndarray:
    """Median of the finite values of every ``cell`` x ``cell`` cell (NaN where < 10 % valid).

    ``read_rows(state, row_off, n_rows)`` returns the score rows ``[row_off, row_off + n_rows)``, ``state``
    being what ``open_state()`` opened in the calling thread (a reader: with ``workers`` > 1 the rows are
    read in that many threads, see :func:`.blocks.map_blocks`).  ``on_row(i, n)`` is called in the calling
    thread as cell row ``i`` of ``n`` is done (progress, cancel).
    """
    from .blocks import map_blocks

    n_rows, n_cols = math.ceil(height / cell), math.ceil(width / cell)
    out = np.full((n_rows, n_cols), np.nan, np.float32)
    # Cell rows in groups of about 512 image rows, one read each: a worker then decodes each tile row once.
    group = max(1, _GROUP_ROWS // cell)

    def some_rows(state, first: int) -> tuple[int, list[np.ndarray]]:
        last = min(first + group, n_rows)
        rows = read_rows(state, first * cell, min(last * cell, height) - first * cell)
        return first, [_cell_row(rows[(i - first) * cell:(i - first + 1) * cell], n_cols, cell, width)
                       for i in range(first, last)]

    groups = map_blocks(range(0, n_rows, group), some_rows, workers=workers, open_state=open_state,
                        close_state=close_state)
    with contextlib.closing(groups):
        for first, values in groups:
            if on_row is not None:
                on_row(first, n_rows)
            out[first:first + len(values)] = values
    return out


def _cell_row(strip, n_cols: int, cell: int, width: int) -> np.ndarray:
    """The cell medians of one strip of ``cell`` rows (NaN where < 10 % valid)."""
    strip = np.asarray(strip, np.float32)
    out = np.full(n_cols, np.nan, np.float32)
    pad = n_cols * cell - width
    if pad:
        strip = np.pad(strip, ((0, 0), (0, pad)), constant_values=np.nan)
    cells = strip.reshape(strip.shape[0], n_cols, cell).transpose(1, 0, 2).reshape(n_cols, -1)
    valid = np.isfinite(cells)
    enough = valid.sum(axis=1) >= max(1, MIN_VALID_FRACTION * cells.shape[1])
    if enough.any():
        with np.errstate(all="ignore"):
            out[enough] = np.nanmedian(np.where(valid[enough], cells[enough], np.nan), axis=1)
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
                   description: str = "score minus its local median",
                   workers: int | None = None, raw_copy: bool = False) -> tuple[StagedRaster, StagedRaster]:
    """Write ``score - local median`` and the local median (the background change) as staged rasters.

    The cell medians and the subtraction run on ``workers`` threads (default every core), each with its own
    reader of ``score_path``; ``raw_copy``: the detrended score also gets an uncompressed twin (see
    :class:`.staging.StagedRaster`) for the passes that read it next.  Progress: 0-0.4 cell medians, 0.4-1
    subtraction.
    """
    from .blocks import map_blocks, resolve_workers
    from .grid import RasterOnGrid

    if radius_m <= 0:
        raise ValueError("the detrend radius must be positive (metres)")
    threads = resolve_workers(workers)
    cell = cell_size_px(radius_m, grid.pixel_size)
    cells = cell_medians(lambda reader, row_off, n_rows: reader.read(Window(0, row_off, grid.width, n_rows)),
                         grid.height, grid.width, cell, workers=threads,
                         open_state=lambda: RasterOnGrid(score_path, 1, grid), close_state=lambda r: r.close(),
                         on_row=lambda i, n: prog(0.4 * i / n, "background change: local medians"))
    trend_cells = disk_median(cells, radius_m / (cell * grid.pixel_size))
    tags = dict(tags or {})
    detrended = StagedRaster(staging, "detrended", grid, count=1, dtype="float32", nodata=float("nan"),
                             descriptions=[description], tags={**tags, "DETREND_RADIUS_M": radius_m},
                             raw_copy=raw_copy, threads=threads)
    trend = StagedRaster(staging, "background_change", grid, count=1, dtype="float32", nodata=float("nan"),
                         predictor=3, threads=threads,
                         descriptions=[f"local median of the score within {radius_m:g} m (background change)"],
                         tags={**tags, "DETREND_RADIUS_M": radius_m, "UNITS": tags.get("UNITS", "dB")})

    def subtract(reader: RasterOnGrid, window: Window):
        score = reader.read(window)
        background = trend_block(trend_cells, cell, window)
        return (window, (score - background).astype(np.float32),
                np.where(np.isfinite(score), background, np.nan).astype(np.float32))

    blocks = map_blocks(grid.blocks(block_size), subtract, workers=threads,
                        open_state=lambda: RasterOnGrid(score_path, 1, grid), close_state=lambda r: r.close())
    try:
        with contextlib.closing(blocks):
            n_blocks = grid.n_blocks(block_size)
            for i, (window, detrended_block, background_block) in enumerate(blocks):
                prog(0.4 + 0.6 * i / n_blocks, f"removing the background change: block {i + 1} of {n_blocks}")
                detrended.write(window, detrended_block)
                trend.write(window, background_block)
    finally:
        detrended.close()
        trend.close()
    return detrended, trend
