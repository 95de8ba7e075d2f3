"""The km-scale local median of a change band, computed on a window so that any block gives the same pixels.

Real Sentinel-1 change carries broad, date-specific components (rain, soil
moisture, vegetation) that raise or lower whole hillsides; a landslide is at
most a few hundred metres across.  The model's detrended change bands
(``dratio_<pol>`` in :mod:`.recipes`) are the log ratio minus its local median
within ``radius_m``, the same construction as :mod:`.detrend` (which works on
a whole raster in two streamed passes for the A_ratio method):

1. **cells**: the median of the finite values of each square cell of
   ``cell_px`` pixels (a quarter of the radius); cells with fewer than 10 %
   valid pixels have no value.  Cells lie on ONE lattice anchored at the grid's
   top-left pixel (cell ``i`` holds grid rows ``i*cell_px .. (i+1)*cell_px-1``),
   whatever window is read;
2. **trend**: per cell, the median of the cell medians whose centres lie within
   ``radius_m`` (a median of medians: it ignores slides as long as they cover
   less than about half of the disk); a cell whose disk holds no value gets 0
   (no correction), a local rule, unlike :mod:`.detrend`'s scene-wide fill;
3. the trend is interpolated bilinearly at the pixel centres.

Because every cell that can reach a pixel lies wholly inside a window grown by
:func:`halo_px` pixels, a pixel's value depends only on the data within that
halo: reading a block with the halo (no data beyond the grid, as
:class:`.grid.RasterOnGrid` reads it) gives exactly the values of the whole
raster surrounded by no data (tested), so training chips and tiled inference
see identical inputs whatever the block size.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from .detrend import MIN_VALID_FRACTION, disk_median
from .detrend import cell_size_px as cell_px  # one cell rule for both detrends


def halo_px(radius_m: float, pixel_size: float) -> int:
    """Pixels a window must be grown by on each side for exact local medians inside it."""
    if radius_m <= 0:
        return 0
    c = cell_px(radius_m, pixel_size)
    radius_cells = radius_m / (c * pixel_size)
    # the disk (radius), the bilinear neighbour (1 cell), the cell itself (1), lattice alignment (1)
    return int(math.ceil((radius_cells + 3) * c))


def _cell_medians(values: np.ndarray, cell: int) -> np.ndarray:
    rows, cols = values.shape
    n_r, n_c = rows // cell, cols // cell
    out = np.full((n_r, n_c), np.nan, np.float32)
    if n_r == 0 or n_c == 0:
        return out
    blocks = values[:n_r * cell, :n_c * cell].reshape(n_r, cell, n_c, cell).transpose(0, 2, 1, 3)
    blocks = blocks.reshape(n_r, n_c, cell * cell)
    enough = np.isfinite(blocks).sum(axis=2) >= max(1, MIN_VALID_FRACTION * cell * cell)
    if enough.any():
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            out[enough] = np.nanmedian(blocks[enough], axis=1)
    return out


def _disk_median(cells: np.ndarray, radius_cells: float) -> np.ndarray:
    return disk_median(cells, radius_cells, empty_fill=0.0).astype(np.float32)


def local_median(values: np.ndarray, origin: tuple[int, int], radius_m: float, pixel_size: float) -> np.ndarray:
    """The local median (``rows, cols``) of ``values`` read on a window whose top-left is grid pixel ``origin``.

    Exact (block-independent) at pixels at least :func:`halo_px` from the window's edges.  ``origin`` may be
    negative (a window grown past the grid's border, filled with NaN there).
    """
    values = np.asarray(values, np.float32)
    rows, cols = values.shape
    if radius_m <= 0:
        return np.zeros_like(values)
    cell = cell_px(radius_m, pixel_size)
    r0, c0 = int(origin[0]), int(origin[1])
    i0, j0 = -(-r0 // cell), -(-c0 // cell)  # first cells wholly inside the window (ceil division)
    sub = values[i0 * cell - r0:, j0 * cell - c0:]
    cells = _cell_medians(sub, cell)
    if cells.size == 0:
        return np.zeros_like(values)
    trend = _disk_median(cells, radius_m / (cell * pixel_size)).astype(np.float64)
    (ya, yb, fy), (xa, xb, fx) = _bilinear_axis(r0, rows, cell, i0, trend.shape[0]), \
        _bilinear_axis(c0, cols, cell, j0, trend.shape[1])
    top = trend[ya][:, xa] * (1 - fx) + trend[ya][:, xb] * fx
    bottom = trend[yb][:, xa] * (1 - fx) + trend[yb][:, xb] * fx
    return (top * (1 - fy)[:, None] + bottom * fy[:, None]).astype(np.float32)


def _bilinear_axis(start: int, n: int, cell: int, first_cell: int, n_cells: int):
    """Neighbouring cell indices and weights along one axis, from GLOBAL pixel coordinates only, so that the
    weights are bit-identical whatever window the pixel is read in (edges clamped, as mode 'nearest')."""
    pos = (np.arange(start, start + n, dtype=np.float64) + 0.5) / cell - 0.5  # in global cell units
    base = np.floor(pos)
    frac = pos - base
    lo = base.astype(np.int64) - first_cell
    return np.clip(lo, 0, n_cells - 1), np.clip(lo + 1, 0, n_cells - 1), frac


def detrended(values: np.ndarray, origin: tuple[int, int], radius_m: float, pixel_size: float) -> np.ndarray:
    """``values`` minus :func:`local_median`; NaN stays NaN."""
    values = np.asarray(values, np.float32)
    return (values - local_median(values, origin, radius_m, pixel_size)).astype(np.float32)
