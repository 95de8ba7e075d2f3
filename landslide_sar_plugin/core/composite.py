"""Temporal composites and the log amplitude ratio (A_ratio), on blocks of a stack.

Conventions (Handwerger et al. 2022; Machielse 2021, seed_000):

* backscatter is handled in dB; linear power becomes ``10 log10(x)`` and linear
  amplitude ``20 log10(x)`` (non-positive values become NaN);
* values ``<= -30 dB`` are border/edge noise of GRD frames and are masked
  (NaN), as Earth Engine's Sentinel-1 guide recommends;
* a composite is the per-pixel **median** over the dates of a stack, ignoring
  NaN; a pixel with no valid date is NaN;
* ``A_ratio = pre_dB - post_dB``: **positive when backscatter dropped**, which is
  what a fresh scar in forest does.  In dB the amplitude and intensity ratios are
  the same number;
* ascending and descending ratios are averaged, ``(asc + desc) / 2``, where both
  exist; where only one pass has data, that one is used.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

EDGE_NOISE_DB = -30.0


def to_db(values: np.ndarray, units: str) -> np.ndarray:
    """Convert ``values`` in ``units`` ('dB', 'linear' power or 'amplitude') to float32 dB."""
    arr = np.asarray(values, dtype=np.float32)
    if units == "dB":
        return arr
    factor = {"linear": 10.0, "amplitude": 20.0}.get(units)
    if factor is None:
        raise ValueError(f"unknown units {units!r}; expected dB, linear or amplitude")
    out = np.full(arr.shape, np.nan, dtype=np.float32)
    positive = arr > 0
    out[positive] = factor * np.log10(arr[positive])
    return out


def mask_edge_noise(db: np.ndarray, floor_db: float = EDGE_NOISE_DB) -> np.ndarray:
    """Return a copy of ``db`` with values ``<= floor_db`` (and +-inf) set to NaN."""
    out = np.array(db, dtype=np.float32, copy=True)
    with np.errstate(invalid="ignore"):
        out[~np.isfinite(out) | (out <= floor_db)] = np.nan
    return out


def _to_db_inplace(row: np.ndarray, units: str) -> None:
    if units == "dB":
        return
    factor = {"linear": 10.0, "amplitude": 20.0}.get(units)
    if factor is None:
        raise ValueError(f"unknown units {units!r}; expected dB, linear or amplitude")
    positive = row > 0
    np.log10(row, out=row, where=positive)
    row *= np.float32(factor)
    row[~positive] = np.nan


def stack_db_into(out: np.ndarray, readings: Iterable[tuple[np.ndarray, str]],
                  floor_db: float = EDGE_NOISE_DB) -> np.ndarray:
    """Fill the preallocated ``out`` (``(dates, rows, cols)`` float32) with one reading per date, in dB.

    ``readings`` yields ``(values, units)`` per date (best lazily, so only one
    reading exists at a time); each becomes dB (:func:`to_db`) with frame-edge
    noise masked (:func:`mask_edge_noise`) inside ``out``, so a stack costs
    its own size and one reading, however many dates it has.
    """
    k = -1
    for k, (values, units) in enumerate(readings):
        row = out[k]
        row[...] = values
        _to_db_inplace(row, units)
        with np.errstate(invalid="ignore"):
            np.copyto(row, np.float32(np.nan), where=~((row > floor_db) & (row < np.inf)))
    if k + 1 != out.shape[0]:
        raise ValueError(f"{k + 1} readings for a stack of {out.shape[0]} dates")
    return out


def _batcher_network(n: int) -> tuple[tuple[int, int], ...]:
    """Comparators ``(i, j)``, ``i < j``, of Batcher's odd-even merge sort for ``n`` inputs.

    Built for the next power of two and pruned of every comparator that
    touches an index ``>= n`` (those inputs act as +inf, which stay last, so
    the pruned network still sorts ``n`` values).  Sizes: 3 -> 3, 5 -> 9,
    8 -> 19, 16 -> 63 comparators.
    """
    size = 1
    while size < n:
        size *= 2
    pairs = []
    p = 1
    while p < size:
        k = p
        while k >= 1:
            for j in range(k % p, size - k, 2 * k):
                for i in range(min(k, size - j - k)):
                    a, b = i + j, i + j + k
                    if a // (2 * p) == b // (2 * p) and b < n:
                        pairs.append((a, b))
            k //= 2
        p *= 2
    return tuple(pairs)


_NETWORKS: dict[int, tuple[tuple[int, int], ...]] = {}
# Beyond this many dates a sort costs about what the network does (measured: 2.7x faster at 5 dates,
# 1.4x at 16, equal at 33); longer stacks are sorted.
NETWORK_MAX_DATES = 24


def sorting_network(n: int) -> tuple[tuple[int, int], ...]:
    """The (cached) compare-swap network that :func:`nan_median` applies to ``n`` dates."""
    if n not in _NETWORKS:
        _NETWORKS[n] = _batcher_network(n)
    return _NETWORKS[n]


def _network_sort(stack: np.ndarray) -> list[np.ndarray]:
    """Sort ``stack`` (``(n, rows, cols)`` float32, writable) along the dates, NaN last; returns the rows in order.

    One compare-swap is ``lo = fmin(a, b)`` (ignores NaN) and ``hi = maximum(a, b)``
    (propagates NaN), so NaN sinks to the end like +inf.  Rows are swapped by
    reference through one spare buffer: the stack's memory is reused, nothing
    the size of the stack is allocated.
    """
    n = stack.shape[0]
    rows = [stack[k] for k in range(n)] + [np.empty_like(stack[0])]
    slot, spare = list(range(n)), n
    for i, j in sorting_network(n):
        a, b = rows[slot[i]], rows[slot[j]]
        np.fmin(a, b, out=rows[spare])
        np.maximum(a, b, out=b)
        slot[i], spare = spare, slot[i]
    return [rows[slot[k]] for k in range(n)]


def median_and_count(stack: np.ndarray, *, overwrite_input: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Median over axis 0 ignoring NaN and +-inf, and the number of finite values per pixel (uint16).

    The median is NaN where a pixel has no finite value; with an even count
    it is the mean of the two middle values, computed in float32 as
    ``(a + b) / 2``.  Equal to ``np.nanmedian(stack, axis=0)`` (without its
    all-NaN warning).  For up to :data:`NETWORK_MAX_DATES` dates (Sentinel-1
    stacks: a few to a few dozen) the dates are ordered by a NaN-aware
    sorting network, several times faster than ``np.sort`` along the short,
    strided date axis; longer stacks are sorted.  ``overwrite_input=True``
    lets it reorder a float32 ``stack`` in place instead of copying it.
    """
    s = np.asarray(stack)
    if s.ndim != 3:
        raise ValueError(f"expected a (dates, rows, cols) stack, got shape {s.shape}")
    n = s.shape[0]
    if n == 0:
        raise ValueError("the stack has no date")
    reuse = overwrite_input and s.dtype == np.float32 and s.flags.writeable and s.flags.c_contiguous
    s = s if reuse else np.array(s, dtype=np.float32, copy=True, order="C")
    for row in s:  # infinite = not a value, like NaN (row by row: no temporary the size of the stack)
        np.copyto(row, np.float32(np.nan), where=np.isinf(row))
    if n > NETWORK_MAX_DATES:
        s.sort(axis=0)  # in place; NaN sorts to the end
        ordered = [s[k] for k in range(n)]
    else:
        ordered = _network_sort(s)
    count = np.zeros(s.shape[1:], np.uint16)
    for row in ordered:  # NaN is last, so the count is also the index past the last value
        count += ~np.isnan(row)
    return _median_at_count(ordered, count), count


def _median_at_count(ordered: list[np.ndarray], count: np.ndarray) -> np.ndarray:
    n = len(ordered)
    half = np.float32(2)
    # Every pixel as if all dates were valid (the usual case), then the pixels that miss dates, gathered.
    med = ordered[n // 2].copy() if n % 2 else (ordered[n // 2 - 1] + ordered[n // 2]) / half
    short = np.flatnonzero(count.ravel() < n)
    if short.size == 0:
        return med
    c = count.ravel()[short].astype(np.int32)
    lo, hi = np.maximum((c - 1) // 2, 0), np.minimum(c // 2, n - 1)
    a, b = np.empty(short.size, np.float32), np.empty(short.size, np.float32)
    for k, row in enumerate(ordered):  # date by date: no (dates x pixels) temporary
        flat = row.ravel()
        take = lo == k
        a[take] = flat[short[take]]
        take = hi == k
        b[take] = flat[short[take]]
    fixed = (a + b) / half
    fixed[c == 0] = np.nan
    med.ravel()[short] = fixed
    return med


def nan_median(stack: np.ndarray, *, overwrite_input: bool = False) -> np.ndarray:
    """Median over axis 0 ignoring NaN; NaN where a pixel has no finite value (see :func:`median_and_count`)."""
    return median_and_count(stack, overwrite_input=overwrite_input)[0]


def sort_nan_median(stack: np.ndarray) -> np.ndarray:
    """The previous sort-based :func:`nan_median` (one ``np.sort`` along the dates), kept as the reference
    that the benchmarks' read+median floor and the equality tests use."""
    s = np.asarray(stack, dtype=np.float32)
    if s.ndim != 3:
        raise ValueError(f"expected a (dates, rows, cols) stack, got shape {s.shape}")
    if s.shape[0] == 1:
        return s[0].copy()
    finite = np.isfinite(s)
    if finite.all():
        return np.median(s, axis=0).astype(np.float32)
    ordered = np.sort(np.where(finite, s, np.nan), axis=0)  # NaN sort to the end
    n = finite.sum(axis=0)
    lo = np.clip((n - 1) // 2, 0, None)[np.newaxis]
    hi = np.clip(n // 2, 0, None)[np.newaxis]
    a = np.take_along_axis(ordered, lo, axis=0)[0]
    b = np.take_along_axis(ordered, hi, axis=0)[0]
    med = (a + b) / np.float32(2)
    med[n == 0] = np.nan
    return med.astype(np.float32)


def valid_count(stack: np.ndarray) -> np.ndarray:
    """Number of finite dates per pixel (uint16)."""
    return np.isfinite(stack).sum(axis=0).astype(np.uint16)


def log_ratio(pre_db: np.ndarray, post_db: np.ndarray) -> np.ndarray:
    """``A_ratio = pre - post`` in dB (positive = backscatter dropped after the event)."""
    return (np.asarray(pre_db, np.float32) - np.asarray(post_db, np.float32)).astype(np.float32)


def mean_of_available(ratios: Sequence[np.ndarray]) -> np.ndarray:
    """Per-pixel mean of the finite values among ``ratios`` (NaN where none is finite).

    Used to average relative orbits within a pass, the two passes, and the VV
    and VH ratios when both polarisations are asked for.
    """
    if not ratios:
        raise ValueError("no ratio to average")
    first = np.asarray(ratios[0], np.float32)
    if len(ratios) == 1:  # the usual case (one track per pass, one polarisation): no arithmetic at all
        return first.copy()
    # Accumulated array by array: no (n, rows, cols) temporary.
    total = np.zeros(first.shape, np.float32)
    n = np.zeros(first.shape, np.uint8)
    for r in ratios:
        r = np.asarray(r, np.float32)
        finite = np.isfinite(r)
        np.add(total, r, out=total, where=finite)
        n += finite
    with np.errstate(invalid="ignore", divide="ignore"):
        out = total / n  # 0 / 0 = NaN where none is finite
    return out.astype(np.float32, copy=False)
