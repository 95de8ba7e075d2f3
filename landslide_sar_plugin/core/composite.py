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

from collections.abc import Sequence

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


def nan_median(stack: np.ndarray) -> np.ndarray:
    """Median over axis 0 ignoring NaN; NaN where a pixel has no finite value.

    Equal to ``np.nanmedian(stack, axis=0)`` (without its all-NaN warning) but
    several times faster for the short stacks of Sentinel-1 (a few to a few
    dozen dates): one sort along the date axis puts NaN last, and the median
    is read at the per-pixel valid count.
    """
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
    stack = np.stack([np.asarray(r, np.float32) for r in ratios])
    finite = np.isfinite(stack)
    n = finite.sum(axis=0)
    total = np.where(finite, stack, 0).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (total / n).astype(np.float32)
    out[n == 0] = np.nan
    return out
