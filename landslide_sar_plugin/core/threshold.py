"""Threshold step of the A_ratio method: exact percentile, exceedance, heatmap, candidates.

Pure numpy/scipy/rasterio functions (no QGIS).  The block pipeline calls them
window by window:

* :class:`ExactPercentile` / :func:`exact_percentile` -- the exact percentile
  of all finite values of a raster streamed as blocks, in bounded memory (the
  local answer to Earth Engine's ``bestEffort`` percentile, which may silently
  coarsen the scale).
* :func:`exceedance` -- ``ratio > threshold``.
* :func:`density_heatmap` -- fraction of exceedance pixels within a radius in
  metres (block halo: :func:`heatmap_halo_px`).
* :func:`candidate_features` -- polygons from ``rasterio.features.shapes`` ->
  :class:`~landslide_sar_plugin.core.gpkg.Feature` with area and zonal scores
  (:func:`zonal_stats_many`: one labelling pass over the score raster for all
  polygons, not one window read and rasterisation per polygon).

Coordinates and pixel sizes are in metres (projected CRS).
"""

from __future__ import annotations

import functools
import json
import math
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Union

import numpy as np
from affine import Affine
from rasterio import features as rio_features
from rasterio import windows as rio_windows
from scipy import ndimage

from .gpkg import Feature
from .terrain import PixelSize, gaussian_smooth, pixel_size_xy

__all__ = [
    "CANDIDATE_FIELDS",
    "ExactPercentile",
    "exact_percentile",
    "exceedance",
    "smooth_ratio",
    "disk_footprint",
    "disk_kernel",
    "heatmap_halo_px",
    "density_heatmap",
    "polygon_area_m2",
    "filter_min_area",
    "ZonalStats",
    "zonal_stats_for_polygon",
    "zonal_stats_many",
    "candidate_fields",
    "candidate_features",
]

CANDIDATE_FIELDS = [
    ("id", "INTEGER"),
    ("area_m2", "REAL"),
    ("mean_score", "REAL"),
    ("max_score", "REAL"),
    ("method", "TEXT"),
    ("threshold", "REAL"),
    ("event_id", "TEXT"),
    ("status", "TEXT"),
    ("uuid", "TEXT"),
]

# Namespace of candidate uuids: uuid5(namespace, event|method|threshold|geometry) is stable across
# identical runs, which makes inventory exports idempotent.
CANDIDATE_UUID_NAMESPACE = uuid.UUID("6f1c2d0e-5b8a-4f7e-9c3d-2a1b0e9f8d7c")


def candidate_uuid(event_id: str, method: str, threshold: float, geometry: Mapping) -> str:
    """Deterministic identifier of a candidate polygon (same run, same polygon -> same uuid)."""
    key = f"{event_id}|{method}|{float(threshold):.6f}|{json.dumps(geometry['coordinates'], default=float)}"
    return str(uuid.uuid5(CANDIDATE_UUID_NAMESPACE, key))


BlocksFactory = Union[Callable[[], Iterable], Sequence]


def map_over_blocks(source, fn: Callable[[np.ndarray], object]) -> Iterator:
    """``fn(block)`` for every block of ``source``, in any order.

    ``source`` is a zero-argument callable returning a fresh iterator of arrays,
    a re-iterable sequence of arrays, or an object with a ``map_blocks(fn)``
    method (e.g. :class:`~landslide_sar_plugin.core.candidates.RasterBlocks`)
    that computes ``fn`` on its blocks in parallel threads: the reductions below
    only combine what ``fn`` returns, so they run on every core when the source
    can.
    """
    if hasattr(source, "map_blocks"):
        return source.map_blocks(fn)
    blocks = source() if callable(source) else source
    return (fn(b) for b in blocks)


@dataclass
class TransformedBlocks:
    """The blocks of ``source`` passed through ``transform`` (elementwise), keeping its parallel map."""

    source: object
    transform: Callable[[np.ndarray], np.ndarray]

    def map_blocks(self, fn):
        return map_over_blocks(self.source, lambda b: fn(self.transform(b)))


def _finite64(block) -> np.ndarray:
    """The finite values of a block, flattened, as float64 (exact for float32 input)."""
    a = np.asarray(block).ravel()
    if a.dtype.kind != "f":
        a = a.astype(np.float64)
    finite = np.isfinite(a)
    if not finite.all():  # a boolean gather costs more than the test: skip it for blocks without NaN
        a = a[finite]
    return a.astype(np.float64, copy=False)


# --------------------------------------------------------------------------- percentile


@dataclass
class _Task:
    """Finite values ``v`` with ``lo <= v <= hi`` (bounds; the first task's may be wider than the data).

    ``offset`` = number of finite values ``< lo``; ``count`` = number in
    ``[lo, hi]``; ``ranks`` = the global 0-based order statistics wanted,
    all in ``[offset, offset + count)``.
    """

    lo: float
    hi: float
    offset: int
    count: int
    ranks: list
    # set by a histogram pass, consumed by the following min/max pass
    bins: int = 0
    bin_index: int = -1


def _bin_of(v: np.ndarray, lo: float, hi: float, bins: int) -> np.ndarray:
    """Bin index in ``0..bins-1``, monotone non-decreasing in ``v`` (overflow-safe)."""
    half_lo, half_hi = np.float64(0.5) * lo, np.float64(0.5) * hi
    width = half_hi - half_lo
    with np.errstate(over="ignore", divide="ignore"):
        scale = np.float64(bins) / width if width > 0 else np.float64(np.inf)
    if not np.isfinite(scale):
        # Range too narrow to scale (subnormals): still monotone, and it
        # separates lo from the larger values, so refinement makes progress.
        return np.where(v > lo, bins - 1, 0).astype(np.intp)
    idx = np.multiply(v, 0.5, dtype=np.float64)  # in place from here: one temporary, the same arithmetic
    idx -= half_lo
    idx *= scale
    np.floor(idx, out=idx)
    np.clip(idx, 0, bins - 1, out=idx)
    return idx.astype(np.intp)


def _lerp(a: float, b: float, t: float) -> float:
    """numpy 1.24's ``_lerp`` (the 'linear' interpolation), to match it bit for bit."""
    a, b, t = np.float64(a), np.float64(b), np.float64(t)
    diff = b - a
    if t >= 0.5:
        return float(b - diff * (1 - t))
    return float(a + diff * t)


def _in_range(a: np.ndarray, lo: float, hi: float) -> np.ndarray:
    inside = (a >= lo) & (a <= hi)
    return a if inside.all() else a[inside]  # the first passes' range holds every value: no gather


def _count_min_max(block) -> tuple[int, float, float]:
    a = _finite64(block)
    if not a.size:
        return 0, math.inf, -math.inf
    return a.size, float(a.min()), float(a.max())


def _collect_or_histogram(block, collect: list[_Task], hist: list[_Task], bins: int):
    """One block of a pass: its values inside each ``collect`` task, the bin counts of each ``hist`` task."""
    a = _finite64(block)
    gathered = [_in_range(a, t.lo, t.hi) for t in collect]
    counts = [np.bincount(_bin_of(sel, t.lo, t.hi, bins), minlength=bins)
              for t in hist for sel in (_in_range(a, t.lo, t.hi),)]
    return gathered, counts


def _in_bins(block, groups: list[tuple[float, float, int, np.ndarray]], large: frozenset):
    """One block of a pass: per sub-task, its values, or for the sub-tasks in ``large`` their (min, max).

    ``groups``: ``(lo, hi, bins, lut)`` of each histogrammed parent, ``lut``
    mapping a bin to the index of the sub-task that wants it (-1: none), so
    the bin index of a value is computed once whatever the number of ranks.
    """
    a = _finite64(block)
    per_sub: dict[int, object] = {}
    for lo, hi, bins, lut in groups:
        sel = _in_range(a, lo, hi)
        which = lut[_bin_of(sel, lo, hi, bins)]
        keep = which >= 0
        sel, which = sel[keep], which[keep]
        for k in np.unique(which).tolist():
            mine = sel[which == k]
            per_sub[k] = (float(mine.min()), float(mine.max())) if k in large else mine
    return per_sub


class ExactPercentile:
    """Exact percentile(s) of the finite values of a stream of blocks, bounded memory.

    Definition: identical to ``numpy.percentile(values, q, method="linear")``
    (numpy's default, Hyndman & Fan type 7) over the finite values: with the
    ``n`` finite values sorted as ``v[0] <= ... <= v[n-1]``,
    ``h = (n - 1) * q / 100``, ``i = floor(h)``, the result is
    ``v[i] + (v[i+1] - v[i]) * (h - i)`` (``v[n-1]`` when ``h = n - 1``).
    NaN and +-inf are ignored.  Values are handled in float64 (float32 input is
    converted exactly), and the interpolation reproduces numpy's arithmetic.

    Algorithm (each "pass" maps over the blocks once, see :func:`map_over_blocks`;
    a source with ``map_blocks`` computes each pass on every core):

    1. count, min and max of the finite values (skipped when ``bounds`` gives them);
    2. a histogram of ``bins`` equal-width bins between min and max; the
       cumulative counts locate the bin holding each needed order statistic;
    3. values falling in those bins are collected and the order statistics
       are selected exactly (``np.partition``).

    When all finite values fit in ``max_values``, step 2 is skipped (they are
    collected directly: 2 passes).  Otherwise the usual cost is 3 passes and memory ``O(bins + values in the selected
    bins)``.  If a selected bin holds more than ``max_values`` values (heavy
    ties or extreme clustering), it is refined instead of collected: one pass
    for that bin's exact min/max (equal min and max is the answer), then a
    new histogram inside it, and so on; every refinement strictly shrinks the
    candidate set, so it terminates, and memory never exceeds ``max_values``
    floats plus the histograms.

    Parameters
    ----------
    bins : int
        Histogram bins per refinement (>= 2).  Default 65536 (0.5 MiB).
    max_values : int
        Largest number of values collected in memory at once (>= 1).
        Default 4,000,000 (32 MiB of float64).

    After a call, ``count`` holds the number of finite values, ``min`` and
    ``max`` their bounds (the data's extremes unless ``bounds`` were given) and
    ``passes`` the number of passes made over the blocks.
    """

    def __init__(self, *, bins: int = 65536, max_values: int = 4_000_000):
        if bins < 2:
            raise ValueError("bins must be >= 2")
        if max_values < 1:
            raise ValueError("max_values must be >= 1")
        self.bins = int(bins)
        self.max_values = int(max_values)
        self.count = 0
        self.min, self.max = math.inf, -math.inf
        self.passes = 0

    def _map(self, source, fn) -> Iterator:
        self.passes += 1
        return map_over_blocks(source, fn)

    def __call__(self, blocks_factory: BlocksFactory, q, *, bounds: tuple[int, float, float] | None = None):
        """Percentile(s) ``q`` (0..100, scalar or sequence) of the block stream.

        ``blocks_factory`` is a zero-argument callable returning a *fresh*
        iterator of arrays (any shape, NaN allowed) each time it is called; a
        re-iterable sequence (e.g. a list of arrays) or a source with
        ``map_blocks`` (see :func:`map_over_blocks`) is accepted too.
        ``bounds = (count, lo, hi)``: the number of finite values and bounds
        ``lo <= every value <= hi`` when the caller knows them (pass 1 is then
        skipped).  Returns a float for scalar ``q``, else a float64 array shaped
        like ``q``.  Raises ValueError if ``q`` is outside [0, 100] or NaN, or if
        the stream holds no finite value.
        """
        qs = np.asarray(q, dtype=np.float64)
        if qs.size == 0:
            raise ValueError("q is empty")
        if np.any(np.isnan(qs)) or np.any(qs < 0) or np.any(qs > 100):
            raise ValueError(f"percentiles must be in the range [0, 100], got {q!r}")
        self.passes = 0
        if bounds is None:
            n, vmin, vmax = 0, math.inf, -math.inf
            for k, lo, hi in self._map(blocks_factory, _count_min_max):
                n, vmin, vmax = n + k, min(vmin, lo), max(vmax, hi)
        else:
            n, vmin, vmax = int(bounds[0]), float(bounds[1]), float(bounds[2])
        self.count, self.min, self.max = n, vmin, vmax
        if n == 0:
            raise ValueError("no finite value in the blocks: the percentile is undefined")

        # numpy's virtual index for method='linear': (n - 1) * (q / 100).
        quant = np.true_divide(qs.ravel(), 100)
        h = (n - 1) * quant
        lo_idx = np.floor(h)
        above = h >= n - 1
        lo_idx[above] = n - 1
        hi_idx = np.where(above, n - 1, lo_idx + 1).astype(np.int64)
        gamma = h - np.floor(h)
        lo_idx = lo_idx.astype(np.int64)
        ranks = sorted(set(lo_idx.tolist()) | set(hi_idx.tolist()))

        values = self._select(blocks_factory, ranks, vmin, vmax, n)

        out = np.array(
            [
                values[int(i)] if above_k else _lerp(values[int(i)], values[int(j)], g)
                for i, j, g, above_k in zip(lo_idx, hi_idx, gamma, above)
            ],
            dtype=np.float64,
        )
        if qs.ndim == 0:
            return float(out[0])
        return out.reshape(qs.shape)

    def _select(self, blocks_factory, ranks, vmin, vmax, n) -> dict:
        """Exact order statistics ``{rank: value}`` for the 0-based ``ranks``."""
        result: dict[int, float] = {}
        tasks = [_Task(vmin, vmax, 0, n, list(ranks))]
        while tasks:
            pending = []
            for t in tasks:  # trivial tasks: a single distinct value
                if t.lo == t.hi:
                    result.update({k: t.lo for k in t.ranks})
                else:
                    pending.append(t)
            if not pending:
                break
            collect = [t for t in pending if t.count <= self.max_values]
            hist = [t for t in pending if t.count > self.max_values]
            gathered: list[list] = [[] for _ in collect]
            counts = [np.zeros(self.bins, dtype=np.int64) for _ in hist]
            one_block = functools.partial(_collect_or_histogram, collect=collect, hist=hist, bins=self.bins)
            for block_gathered, block_counts in self._map(blocks_factory, one_block):
                for store, sel in zip(gathered, block_gathered):
                    if sel.size:
                        store.append(sel)
                for c, bc in zip(counts, block_counts):
                    c += bc
            for t, store in zip(collect, gathered):
                self._settle(t, store, result)
            sub = self._sub_tasks(hist, counts)
            if not sub:
                break
            tasks = self._bin_pass(blocks_factory, sub, result)
        return result

    @staticmethod
    def _settle(t: _Task, store: list, result: dict) -> None:
        """Select the ranks of ``t`` from its collected values."""
        vals = np.concatenate(store) if store else np.empty(0)
        if vals.size != t.count:  # the factory must give the same data every time
            raise RuntimeError(
                f"blocks_factory returned different data on a later pass ({vals.size} != {t.count} values)"
            )
        vals.partition([k - t.offset for k in t.ranks])
        result.update({k: float(vals[k - t.offset]) for k in t.ranks})

    def _sub_tasks(self, hist: list[_Task], counts: list[np.ndarray]) -> list[_Task]:
        """Split each histogrammed task into the bins holding its ranks."""
        sub: list[_Task] = []
        for t, c in zip(hist, counts):
            if int(c.sum()) != t.count:
                raise RuntimeError("blocks_factory returned different data on a later pass")
            cum = np.cumsum(c)
            by_bin: dict[int, list] = {}
            for k in t.ranks:
                b = int(np.searchsorted(cum, k - t.offset, side="right"))
                by_bin.setdefault(b, []).append(k)
            for b, ks in by_bin.items():
                before = int(cum[b - 1]) if b > 0 else 0
                sub.append(_Task(t.lo, t.hi, t.offset + before, int(c[b]), ks, self.bins, b))
        return sub

    def _bin_pass(self, blocks_factory, sub: list[_Task], result: dict) -> list[_Task]:
        """One pass over the sub-tasks' bins: small ones are collected and settled, large ones get their
        exact min/max and come back as range tasks (the values of one bin form a contiguous value
        interval, the bin index being monotone in v, so [min, max] describes them exactly)."""
        groups: dict[tuple, np.ndarray] = {}
        for k, s in enumerate(sub):
            lut = groups.setdefault((s.lo, s.hi, s.bins), np.full(s.bins, -1, np.intp))
            lut[s.bin_index] = k
        spec = [(lo, hi, bins, lut) for (lo, hi, bins), lut in groups.items()]
        large = frozenset(k for k, s in enumerate(sub) if s.count > self.max_values)
        stores: list[list] = [[] for _ in sub]
        for per_sub in self._map(blocks_factory, lambda b: _in_bins(b, spec, large)):
            for k, got in per_sub.items():
                stores[k].append(got)
        tasks = []
        for k, (s, store) in enumerate(zip(sub, stores)):
            if k not in large:
                self._settle(s, store, result)
                continue
            lo = min((m for m, _ in store), default=math.inf)
            hi = max((m for _, m in store), default=-math.inf)
            tasks.append(_Task(lo, hi, s.offset, s.count, s.ranks))
        return tasks


def exact_percentile(blocks_factory: BlocksFactory, q, *, bins: int = 65536, max_values: int = 4_000_000,
                     bounds: tuple[int, float, float] | None = None):
    """Exact ``numpy.percentile(finite_values, q, method="linear")`` over a block stream.

    Convenience wrapper around :class:`ExactPercentile` (see there for the
    definition, the passes and the memory bound).  ``blocks_factory``: a
    zero-argument callable returning a fresh iterator of float arrays (or a
    re-iterable sequence of arrays).  Raises ValueError when no value is finite.
    """
    return ExactPercentile(bins=bins, max_values=max_values)(blocks_factory, q, bounds=bounds)


# --------------------------------------------------------------------------- per-pixel


def exceedance(ratio, threshold: float) -> np.ndarray:
    """Boolean ``ratio > threshold`` (strict; a pixel equal to the threshold is not an exceedance).

    ``ratio`` in dB (A_ratio, positive = backscatter dropped) or any score;
    NaN -> False.  Strict ``>`` follows Handwerger et al. 2022
    (``I_ratio_masked.gt(p99)``); note their displayed percentile maps used ``>=``.
    """
    with np.errstate(invalid="ignore"):
        return np.greater(np.asarray(ratio, dtype=np.float64), float(threshold))


def smooth_ratio(ratio, sigma_m: float, radius_m: float, pixel_size_m: PixelSize) -> np.ndarray:
    """Optional Gaussian smoothing of the ratio: :func:`terrain.gaussian_smooth` (same kernel, NaN-aware).

    Handwerger et al. have a radius 50 m / sigma 20 m smoothing commented out.
    Block halo: ``terrain.halo_px(sigma_m, radius_m, pixel_size_m, op="smooth")``.
    """
    return gaussian_smooth(ratio, sigma_m, radius_m, pixel_size_m)


# --------------------------------------------------------------------------- heatmap


def disk_footprint(radius_m: float, pixel_size_m: PixelSize) -> np.ndarray:
    """Boolean disk: pixel offsets ``(i, j)`` with ``(i dy)^2 + (j dx)^2 <= radius_m^2``.

    Distances are between pixel centres, in metres.  Shape
    ``(2 ry + 1, 2 rx + 1)`` with ``rx = floor(radius_m / dx)``,
    ``ry = floor(radius_m / dy)``; a radius under one pixel gives the centre
    pixel alone.  (A relative tolerance of 1e-9 keeps exact-distance pixels in.)
    """
    if not (math.isfinite(radius_m) and radius_m >= 0):
        raise ValueError(f"radius_m must be finite and >= 0, got {radius_m!r}")
    dx, dy = pixel_size_xy(pixel_size_m)
    tol = 1 + 1e-9
    rx = int(math.floor(radius_m / dx * tol))
    ry = int(math.floor(radius_m / dy * tol))
    i = np.arange(-ry, ry + 1)[:, None] * dy
    j = np.arange(-rx, rx + 1)[None, :] * dx
    return i * i + j * j <= (radius_m * radius_m) * tol * tol


def disk_kernel(radius_m: float, pixel_size_m: PixelSize) -> np.ndarray:
    """Normalised disk kernel (float64, sums to 1) over :func:`disk_footprint`.

    Convolving a 0/1 exceedance image with it gives Earth Engine's
    ``ee.Kernel.circle(r, 'meters', normalize=True)`` heatmap (denominator =
    all disk pixels); :func:`density_heatmap` uses the footprint directly.
    """
    fp = disk_footprint(radius_m, pixel_size_m).astype(np.float64)
    return fp / fp.sum()


def heatmap_halo_px(radius_m: float, pixel_size_m: PixelSize) -> int:
    """Halo (pixels, every side) for block-wise :func:`density_heatmap` == whole-array result."""
    fp = disk_footprint(radius_m, pixel_size_m)
    return max(fp.shape) // 2


def _as_bool(arr) -> np.ndarray:
    """Boolean view of a mask; for float input NaN/inf count as False (not as non-zero)."""
    a = np.asarray(arr)
    if np.issubdtype(a.dtype, np.floating):
        return np.isfinite(a) & (a != 0)
    return a.astype(bool)


def _disk_counts(img: np.ndarray, fp: np.ndarray) -> np.ndarray:
    """Exact integer count of ``img`` (0/1) over the footprint around each pixel (zero outside)."""
    if fp.size <= 49:
        return ndimage.correlate(img, fp.astype(np.float64), mode="constant", cval=0.0)
    from scipy import signal  # imported here: scipy.signal costs 0.3 s of start-up (detect --help)

    # FFT convolution; the counts are integers so rounding makes them exact.
    out = signal.fftconvolve(img, fp.astype(np.float64), mode="same")
    return np.rint(out)


def density_heatmap(
    exceed,
    valid,
    radius_m: float,
    pixel_size_m: PixelSize,
    *,
    normalize: str = "valid",
) -> np.ndarray:
    """Fraction of exceedance pixels within ``radius_m`` metres of each pixel.

    Parameters
    ----------
    exceed : array_like of bool, shape (rows, cols)
        Exceedance pixels (:func:`exceedance`); only ``exceed & valid`` count.
    valid : array_like of bool or None
        Pixels where the ratio was evaluated (finite and inside the terrain
        mask).  None = all pixels.  For float masks NaN counts as False.
    radius_m : float
        Disk radius in metres (:func:`disk_footprint`; centre-to-centre
        distance ``<=`` radius).  Independent of zoom or display scale.
    pixel_size_m : float or (dx, dy)
        Pixel size in metres.
    normalize : {"valid", "disk"}
        Denominator.  ``"valid"`` (default): the number of *valid* pixels inside
        the disk and inside the image, so masked areas and the image border do
        not dilute the density (value = share of the evaluated neighbourhood
        that exceeds).  ``"disk"``: the number of pixels of the full disk, as
        Handwerger et al.'s Earth Engine ``unmask(0).convolve(ee.Kernel.circle)``
        (masked and off-image pixels count as non-exceedance).

    Returns
    -------
    ndarray of float64 in [0, 1], same shape.  NaN where the denominator is 0
    (no valid pixel within the radius, ``"valid"`` only).  Pixels that are
    themselves invalid still get the density of their neighbourhood.  Counts
    are exact integers, so block-wise results (halo :func:`heatmap_halo_px`,
    no padding at the image border) equal the whole-array result exactly.
    """
    e = _as_bool(exceed)
    if e.ndim != 2:
        raise ValueError(f"exceed must be 2-D, got shape {e.shape}")
    v = np.ones(e.shape, dtype=bool) if valid is None else _as_bool(valid)
    if v.shape != e.shape:
        raise ValueError(f"valid {v.shape} and exceed {e.shape} shapes differ")
    fp = disk_footprint(radius_m, pixel_size_m)
    num = _disk_counts((e & v).astype(np.float64), fp)
    if normalize == "disk":
        return num / float(fp.sum())
    if normalize != "valid":
        raise ValueError(f"normalize must be 'valid' or 'disk', not {normalize!r}")
    den = _disk_counts(v.astype(np.float64), fp)
    out = np.full(e.shape, np.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out


# --------------------------------------------------------------------------- polygons


def _polygons(geometry: Mapping) -> list:
    gtype = geometry["type"]
    if gtype == "Polygon":
        return [geometry["coordinates"]]
    if gtype == "MultiPolygon":
        return list(geometry["coordinates"])
    raise ValueError(f"only Polygon and MultiPolygon geometries are supported, not {gtype}")


def _ring_area(ring) -> float:
    """Unsigned shoelace area of one ring (closed or not)."""
    pts = np.asarray(ring, dtype=np.float64)
    if pts.shape[0] < 3:
        return 0.0
    x, y = pts[:, 0], pts[:, 1]
    # Shift to the first vertex for numerical accuracy with large coordinates; the shifted first vertex is
    # (0, 0), so the closing term x[-1] * y[0] - x[0] * y[-1] of the shoelace vanishes and slices suffice.
    x = x - x[0]
    y = y - y[0]
    return abs(float(np.dot(x[:-1], y[1:]) - np.dot(x[1:], y[:-1]))) / 2.0


def polygon_area_m2(geometry: Mapping) -> float:
    """Area of a GeoJSON-like Polygon/MultiPolygon: outer rings minus holes (shoelace).

    Coordinates must be in a projected CRS in metres (the result is in the
    CRS's square units).  Ring orientation does not matter; rings may be closed
    or not.  A MultiPolygon's parts are summed (assumed not to overlap).
    """
    total = 0.0
    for poly in _polygons(geometry):
        if not poly:
            continue
        total += _ring_area(poly[0]) - sum(_ring_area(h) for h in poly[1:])
    return total


def _geometry_of(item):
    if isinstance(item, Feature):
        return item.geometry
    if isinstance(item, Mapping) and "type" in item and "coordinates" in item:
        return item
    if isinstance(item, Mapping) and "geometry" in item:
        return item["geometry"]
    if isinstance(item, tuple) and item and isinstance(item[0], Mapping):
        return item[0]  # (geometry, value) pairs from rasterio.features.shapes
    raise TypeError(f"cannot find a geometry in {type(item).__name__}")


def filter_min_area(features: Iterable, min_area_m2: float) -> list:
    """The items whose geometry area (:func:`polygon_area_m2`) is ``>= min_area_m2``.

    Items may be :class:`Feature` objects, GeoJSON-like geometry mappings,
    GeoJSON features (``{"geometry": ...}``) or ``(geometry, value)`` pairs
    as yielded by ``rasterio.features.shapes``; they are returned unchanged,
    in input order.  Items with no geometry are dropped.
    """
    keep = []
    for item in features:
        geom = _geometry_of(item)
        if geom is not None and polygon_area_m2(geom) >= min_area_m2:
            keep.append(item)
    return keep


@dataclass(frozen=True)
class ZonalStats:
    """Statistics of the finite values inside a polygon: NaN mean/max when ``count`` is 0."""

    mean: float
    max: float
    count: int


def _bounds(geometry: Mapping) -> tuple[float, float, float, float]:
    xs, ys = [], []
    for poly in _polygons(geometry):
        for ring in poly[:1]:  # holes lie inside the outer ring
            for p in ring:
                xs.append(float(p[0]))
                ys.append(float(p[1]))
    return min(xs), min(ys), max(xs), max(ys)


def _pixel_box(geometry: Mapping, transform) -> tuple[int, int, int, int]:
    """``(row0, col0, row1, col1)`` of the pixels covering the polygon's bounds, rounded outwards.

    A spare row or column is harmless: rasterize will not burn it.
    """
    minx, miny, maxx, maxy = _bounds(geometry)
    if transform.b == 0 and transform.d == 0:  # north-up: the inverse affine directly (from_bounds is slow)
        t = transform
        ca, cb = (minx - t.c) / t.a, (maxx - t.c) / t.a
        ra, rb = (miny - t.f) / t.e, (maxy - t.f) / t.e
        row_off, col_off, height, width = min(ra, rb), min(ca, cb), abs(rb - ra), abs(cb - ca)
    else:
        win = rio_windows.from_bounds(minx, miny, maxx, maxy, transform)
        row_off, col_off, height, width = win.row_off, win.col_off, win.height, win.width
    r0 = int(math.floor(row_off + 1e-9))
    c0 = int(math.floor(col_off + 1e-9))
    r1 = int(math.ceil(row_off + height - 1e-9))
    c1 = int(math.ceil(col_off + width - 1e-9))
    return r0, c0, r1, c1


def zonal_stats_for_polygon(
    geometry: Mapping,
    values: Union[np.ndarray, Callable],
    transform,
    *,
    shape: tuple[int, int] | None = None,
    all_touched: bool = False,
) -> ZonalStats:
    """Mean and max of a float raster inside a polygon (NaN ignored).

    Parameters
    ----------
    geometry : mapping
        GeoJSON-like Polygon/MultiPolygon in the raster's CRS.
    values : ndarray (rows, cols) or callable
        Either the whole raster as an array whose top-left pixel is at
        ``transform``, or a reader ``read_window(window) -> 2-D array`` taking a
        ``rasterio.windows.Window`` (e.g. ``lambda w: ds.read(1, window=w)``,
        ``masked=False``; nodata should already be NaN, or pass a reader that
        converts it).  Only the window covering the polygon's bounds is read.
    transform : affine.Affine
        The raster's (north-up) geotransform.
    shape : (rows, cols), optional
        Raster size used to clip the window; taken from ``values.shape`` for an
        array.  For a reader without ``shape`` the window is not clipped (fine
        for polygons made from the same raster).
    all_touched : bool
        Rasterisation rule; default False = pixels whose centre is inside the
        polygon, which for polygons from ``rasterio.features.shapes`` on the
        same grid selects exactly the pixels they were made from.

    Returns
    -------
    :class:`ZonalStats` ``(mean, max, count)``, count = finite pixels inside.
    """
    if callable(values):
        reader = values
    else:
        arr = np.asarray(values)
        if arr.ndim != 2:
            raise ValueError(f"values must be 2-D, got shape {arr.shape}")
        shape = arr.shape if shape is None else shape

        def reader(win):
            r0, c0 = int(win.row_off), int(win.col_off)
            return arr[r0:r0 + int(win.height), c0:c0 + int(win.width)]

    r0, c0, r1, c1 = _pixel_box(geometry, transform)
    if shape is not None:
        r0, c0 = max(r0, 0), max(c0, 0)
        r1, c1 = min(r1, int(shape[0])), min(c1, int(shape[1]))
    if r1 <= r0 or c1 <= c0:
        return ZonalStats(math.nan, math.nan, 0)
    win = rio_windows.Window(c0, r0, c1 - c0, r1 - r0)
    data = np.asarray(reader(win), dtype=np.float64)
    if data.shape != (r1 - r0, c1 - c0):
        raise ValueError(f"reader returned shape {data.shape} for window {win}, expected {(r1 - r0, c1 - c0)}")
    inside = rio_features.rasterize(
        [(geometry, 1)],
        out_shape=data.shape,
        transform=transform @ Affine.translation(c0, r0),  # not windows.transform: it warns per call
        fill=0,
        all_touched=all_touched,
        dtype="uint8",
    ).astype(bool)
    sel = data[inside]
    sel = sel[np.isfinite(sel)]
    if sel.size == 0:
        return ZonalStats(math.nan, math.nan, 0)
    return ZonalStats(float(sel.mean()), float(sel.max()), int(sel.size))


ZONAL_BLOCK = 1024


def zonal_stats_many(
    geometries: Sequence[Mapping],
    values: Union[np.ndarray, Callable],
    transform,
    *,
    shape: tuple[int, int] | None = None,
    block_size: int = ZONAL_BLOCK,
    areas: Sequence[float] | None = None,
) -> list[ZonalStats]:
    """:func:`zonal_stats_for_polygon` of every polygon at once, in one labelling pass over the raster.

    The raster is visited in blocks of ``block_size`` px; a block is read only
    if a polygon reaches into it, all those polygons are rasterised together
    as labels (one GDAL call) and their finite values summed, counted and
    maximised with ``np.bincount`` / ``np.maximum.at``.  Pixels are selected by
    the same rule (pixel centre inside), so the statistics are those of the
    per-polygon function (the mean up to float64 summation order).

    Labels assume polygons do not overlap, as the regions of one raster never
    do.  That is checked: a polygon whose labelled pixel count differs from
    its area in pixels (one that lost pixels to an overlapping polygon, or
    one not drawn on the pixel lattice) is computed one by one instead, so the
    result is exact either way.  ``values`` and ``shape`` as in
    :func:`zonal_stats_for_polygon`; ``areas``: the polygons' :func:`polygon_area_m2` when the caller has
    them already.
    """
    n = len(geometries)
    if n == 0:
        return []
    if not callable(values):
        arr = np.asarray(values)
        if arr.ndim != 2:
            raise ValueError(f"values must be 2-D, got shape {arr.shape}")
        shape = arr.shape if shape is None else shape
    boxes = np.array([_pixel_box(g, transform) for g in geometries], dtype=np.int64).reshape(n, 4)
    lo = boxes[:, :2].min(axis=0) if shape is None else np.maximum(boxes[:, :2].min(axis=0), 0)
    hi = boxes[:, 2:].max(axis=0) if shape is None else np.minimum(boxes[:, 2:].max(axis=0), shape)
    sums, counts, labelled = np.zeros(n), np.zeros(n, np.int64), np.zeros(n, np.int64)
    maxes = np.full(n, -np.inf)
    # Blocks on the raster's own lattice (multiples of block_size), covering the polygons' extent only.
    for r in range(int(lo[0]) // block_size * block_size, int(hi[0]), block_size):
        for c in range(int(lo[1]) // block_size * block_size, int(hi[1]), block_size):
            r0, c0 = max(r, int(lo[0])), max(c, int(lo[1]))
            r1, c1 = min(r + block_size, int(hi[0])), min(c + block_size, int(hi[1]))
            inside = np.flatnonzero((boxes[:, 0] < r1) & (boxes[:, 2] > r0) & (boxes[:, 1] < c1)
                                    & (boxes[:, 3] > c0))
            if inside.size:
                _zonal_block(geometries, inside, values, transform, (r0, c0, r1, c1), sums, counts, maxes,
                             labelled)
    pixel_area = abs(transform.a * transform.e - transform.b * transform.d)
    areas = [polygon_area_m2(g) for g in geometries] if areas is None else areas
    expected = np.asarray(areas, dtype=np.float64) / pixel_area
    alone = np.abs(labelled - expected) > 1e-6 * np.maximum(expected, 1.0)
    out = []
    for i in range(n):
        if alone[i]:
            out.append(zonal_stats_for_polygon(geometries[i], values, transform, shape=shape))
        elif counts[i]:
            out.append(ZonalStats(float(sums[i] / counts[i]), float(maxes[i]), int(counts[i])))
        else:
            out.append(ZonalStats(math.nan, math.nan, 0))
    return out


def _zonal_block(geometries, inside, values, transform, box, sums, counts, maxes, labelled) -> None:
    """Accumulate the statistics of polygons ``inside`` over one block ``box`` = (r0, c0, r1, c1)."""
    r0, c0, r1, c1 = box
    win = rio_windows.Window(c0, r0, c1 - c0, r1 - r0)
    data = values(win) if callable(values) else np.asarray(values)[r0:r1, c0:c1]
    data = np.asarray(data, dtype=np.float64)
    if data.shape != (r1 - r0, c1 - c0):
        raise ValueError(f"reader returned shape {data.shape} for window {win}, expected {(r1 - r0, c1 - c0)}")
    labels = rio_features.rasterize([(geometries[i], k + 1) for k, i in enumerate(inside)], out_shape=data.shape,
                                    transform=transform @ Affine.translation(c0, r0), fill=0, dtype="int32")
    n = len(sums)
    burnt = labels > 0
    labelled += np.bincount(inside[labels[burnt] - 1], minlength=n)
    sel = burnt & np.isfinite(data)
    idx = inside[labels[sel] - 1]
    vals = data[sel]
    sums += np.bincount(idx, weights=vals, minlength=n)
    counts += np.bincount(idx, minlength=n)
    np.maximum.at(maxes, idx, vals)


def candidate_fields(score_name: str = "score") -> list[tuple[str, str]]:
    """The candidate layer schema; equals :data:`CANDIDATE_FIELDS` for ``score_name="score"``."""
    return [
        (f"{k.split('_')[0]}_{score_name}" if k in ("mean_score", "max_score") else k, t) for k, t in CANDIDATE_FIELDS
    ]


def candidate_features(
    shapes_iter: Iterable,
    *,
    transform,
    read_values: Union[np.ndarray, Callable],
    min_area_m2: float,
    method: str,
    threshold: float,
    event_id: str,
    score_name: str = "score",
    shape: tuple[int, int] | None = None,
) -> list[Feature]:
    """Candidate polygons with area and zonal score, ready for :func:`gpkg.write_features`.

    Parameters
    ----------
    shapes_iter : iterable of (geometry, value)
        Typically ``rasterio.features.shapes(band, mask=band, transform=transform)``
        (map coordinates, so pass the transform).  Pairs whose value is 0 (the
        background) are skipped.  A bare geometry mapping is accepted as an
        item too.
    transform : affine.Affine
        Geotransform of ``read_values`` (the score raster).
    read_values : ndarray or callable
        The score raster (A_ratio dB or probability), as an array or a
        ``read_window(window) -> array`` reader; see :func:`zonal_stats_for_polygon`.
    min_area_m2 : float
        Polygons with area ``< min_area_m2`` are dropped (``>=`` kept).
    method, threshold, event_id : str, float, str
        Copied into each feature's properties.
    score_name : str
        Suffix of the two score properties: ``mean_<score_name>`` and
        ``max_<score_name>``.  The default ``"score"`` gives ``mean_score`` /
        ``max_score`` as in :data:`CANDIDATE_FIELDS`; any other value must be
        paired with :func:`candidate_fields` when creating the layer.
    shape : (rows, cols), optional
        Raster size for window clipping when ``read_values`` is a reader.

    Returns
    -------
    list of :class:`Feature`, ids ``1..n`` by descending area, ties broken by
    position (north-most top edge first, then west-most left edge), so the
    numbering does not depend on the order ``shapes`` yields polygons.
    Properties: id, area_m2, mean_<score>, max_<score>, method, threshold,
    event_id, status="proposed".
    """
    rows = []
    for item in shapes_iter:
        if isinstance(item, tuple):
            geom, value = item[0], item[1]
            if value == 0:
                continue
        else:
            geom = _geometry_of(item)
        if geom is None:
            continue
        area = polygon_area_m2(geom)
        if area < min_area_m2:
            continue
        minx, miny, maxx, maxy = _bounds(geom)
        rows.append((area, geom, (-round(area, 6), -maxy, minx, -miny, maxx)))
    rows.sort(key=lambda r: r[2])
    all_stats = zonal_stats_many([geom for _, geom, _ in rows], read_values, transform, shape=shape,
                                 areas=[area for area, _, _ in rows])
    out = []
    for i, ((area, geom, _), stats) in enumerate(zip(rows, all_stats), start=1):
        out.append(
            Feature(
                geometry=dict(geom),
                properties={
                    "id": i,
                    "area_m2": float(area),
                    f"mean_{score_name}": stats.mean,
                    f"max_{score_name}": stats.max,
                    "method": str(method),
                    "threshold": float(threshold),
                    "event_id": str(event_id),
                    "status": "proposed",
                    "uuid": candidate_uuid(str(event_id), str(method), threshold, geom),
                },
            )
        )
    return out
