"""Temporal statistics of a backscatter stack, the same for real and simulated stacks.

Pure functions on arrays: a stack is ``db[dates, rows, cols]`` (backscatter in
dB, NaN = no data) with its acquisition ``dates``; masks are boolean
``[rows, cols]`` arrays (True = use the pixel).  Nothing here reads a file or
knows whether a stack is real: the calibration of the simulator (see
:mod:`.calibration_report`) runs exactly these functions on OPERA RTC-S1 stacks
and on simulated stacks, so the two columns of its table are one computation.

Definitions (units: dB, metres, days)
=====================================

No-change A_ratio
    For a :class:`WindowPair` of pre and post dates, ``A_ratio = median(pre) -
    median(post)`` per pixel (the detector's own kernels,
    :func:`..composite.nan_median` and :func:`..composite.log_ratio`), with no
    speckle filter.  Its statistics over the masked pixels
    (:func:`ratio_statistics`): standard deviation, robust sigma (``1.4826 x``
    the median absolute deviation from the median), median, and the tail: the
    share of pixels with ``A_ratio > 1, 1.25, 2, 3`` dB (the detector flags
    positive ratios; 1.25 dB is its fixed default threshold).

Window pairs (:func:`window_pairs`)
    *consecutive*: ``n_pre`` consecutive dates then the next ``n_post`` dates,
    all within one season (a run of dates without a gap over ``max_gap_days``);
    every such split of every season.  *year_apart*: the first ``n_pre`` dates
    of a season as pre, and as post the first ``n_post`` dates of a season that
    starts 300-430 days later, taken from ``365 - 15`` days after the last pre
    date on.

30 m
    :func:`block_average_db`: the mean of ``factor x factor`` blocks in linear
    power, then dB (a simulated 10 m stack with ``factor = 3``), which is how a
    coarser product averages looks.  Masks are reduced with
    :func:`block_mask` (a block counts when all its pixels do).

Per-date offsets (:func:`date_offsets`)
    Each date's AOI-wide median of ``db[t] - median_t(db)``: how much the whole
    area brightened or darkened on that date (rain, soil moisture, a
    calibration shift).  :func:`offset_statistics` gives their standard
    deviation, robust sigma and largest absolute value.

Correlation length of the date-to-date change (:func:`correlation_length`)
    The deviation of each date from the temporal median, minus that date's
    offset (:func:`date_deviations`), has a spatial autocovariance ``C(r)``
    (:func:`radial_autocovariance`, averaged over the dates).  Its value at
    lag 0 is dominated by speckle, which is uncorrelated beyond a resolution
    cell; ``r0`` is the first lag at or beyond ``min_lag_m`` (60 m by default,
    two 30 m pixels).  ``white_variance_db2 = C(0) - C(r0)`` is the
    speckle-scale part, ``correlated_sd_db = sqrt(C(r0))`` the amplitude of the
    broader change, and the **e-folding distance** is ``r_e - r0`` where
    ``r_e`` is the first lag beyond ``r0`` with ``C(r_e) <= C(r0) / e`` (linear
    interpolation between lags): for an exponential covariance
    ``a exp(-r / L)`` it is ``L``.  When ``C`` stays above ``C(r0) / e`` up to
    ``max_lag_m``, the result is that bound, flagged ``lower_bound``.  On a
    finite crop the removal of each date's offset biases ``C`` low at lags
    comparable to the crop: compare crops of the same size.

Single-date differences (:func:`single_date_differences`)
    ``db[t1] - db[t0]`` of consecutive dates, no compositing: its standard
    deviation and interquartile sigma, the figure per-date difference products
    (and the 10 m MM-LandslideNet statistics) describe.

Levels (:func:`levels`)
    Per class of pixels: the median over all pixel-dates (dB), the spread of
    single-date values (standard deviation over pixel-dates: texture, speckle
    and change) and the spread of the temporal-median image (static texture).
"""

from __future__ import annotations

import datetime as _dt
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from ..composite import log_ratio, nan_median

MAD_TO_SIGMA = 1.4826
TAIL_THRESHOLDS_DB = (1.0, 1.25, 2.0, 3.0)
SEASON_GAP_DAYS = 45.0
MIN_PIXELS = 50


@dataclass(frozen=True)
class WindowPair:
    """Indices (into the stack's dates) of the pre and the post window of one no-change A_ratio."""

    name: str
    kind: str  # "consecutive" or "year_apart"
    pre: tuple[int, ...]
    post: tuple[int, ...]

    def to_dict(self) -> dict:
        return asdict(self)


# --------------------------------------------------------------------------- dates and windows


def _days(a: _dt.datetime, b: _dt.datetime) -> float:
    return (b - a).total_seconds() / 86400.0


def seasons(dates: Sequence[_dt.datetime], max_gap_days: float = SEASON_GAP_DAYS) -> list[list[int]]:
    """Runs of date indices (in time order) without a gap longer than ``max_gap_days``."""
    order = sorted(range(len(dates)), key=lambda i: dates[i])
    runs: list[list[int]] = []
    for i in order:
        if runs and _days(dates[runs[-1][-1]], dates[i]) <= max_gap_days:
            runs[-1].append(i)
        else:
            runs.append([i])
    return runs


def window_pairs(dates: Sequence[_dt.datetime], n_pre: int = 4, n_post: int = 2,
                 max_gap_days: float = SEASON_GAP_DAYS) -> list[WindowPair]:
    """The consecutive and year-apart window pairs of a date list (definitions in the module docstring)."""
    if n_pre < 1 or n_post < 1:
        raise ValueError("n_pre and n_post must be at least 1 date")
    runs = seasons(dates, max_gap_days)
    label = lambda i: dates[i].strftime("%Y-%m-%d")  # noqa: E731
    pairs = []
    for run in runs:
        for split in range(n_pre, len(run) - n_post + 1):
            pre, post = tuple(run[split - n_pre:split]), tuple(run[split:split + n_post])
            pairs.append(WindowPair(f"consecutive {label(pre[0])}..{label(post[-1])}", "consecutive", pre, post))
    for a, run_a in enumerate(runs):
        if len(run_a) < n_pre:
            continue
        pre = tuple(run_a[:n_pre])
        start = dates[pre[-1]] + _dt.timedelta(days=365 - 15)
        for run_b in runs[a + 1:]:
            if not 300.0 <= _days(dates[run_a[0]], dates[run_b[0]]) <= 430.0:
                continue
            post = tuple(i for i in run_b if dates[i] >= start)[:n_post]
            if len(post) == n_post:
                name = f"year_apart {label(pre[0])}..{label(pre[-1])} vs {label(post[0])}..{label(post[-1])}"
                pairs.append(WindowPair(name, "year_apart", pre, post))
    return pairs


# --------------------------------------------------------------------------- resolution


def block_average_db(db: np.ndarray, factor: int) -> np.ndarray:
    """Average ``factor x factor`` blocks of the last two axes in linear power, then back to dB.

    Rows and columns beyond a whole number of blocks are dropped.  NaN pixels
    are left out of a block's mean; a block with no finite pixel is NaN.
    """
    factor = int(factor)
    if factor < 1:
        raise ValueError("factor must be a positive whole number of pixels")
    arr = np.asarray(db, dtype=np.float64)
    if factor == 1:
        return arr.copy()
    ny, nx = arr.shape[-2] // factor, arr.shape[-1] // factor
    if ny == 0 or nx == 0:
        raise ValueError(f"a {arr.shape[-2]} x {arr.shape[-1]} grid has no whole {factor} x {factor} block")
    arr = arr[..., :ny * factor, :nx * factor]
    lin = 10.0 ** (arr / 10.0)
    finite = np.isfinite(lin)
    shape = arr.shape[:-2] + (ny, factor, nx, factor)
    total = np.where(finite, lin, 0.0).reshape(shape).sum(axis=(-3, -1))
    count = finite.reshape(shape).sum(axis=(-3, -1))
    with np.errstate(divide="ignore", invalid="ignore"):
        out = 10.0 * np.log10(total / count)
    out[count == 0] = np.nan
    return out


def block_mask(mask: np.ndarray, factor: int, min_fraction: float = 1.0) -> np.ndarray:
    """A block is True when at least ``min_fraction`` of its pixels are (default: all of them)."""
    m = np.asarray(mask, dtype=bool)
    factor = int(factor)
    if factor == 1:
        return m.copy()
    ny, nx = m.shape[0] // factor, m.shape[1] // factor
    frac = m[:ny * factor, :nx * factor].reshape(ny, factor, nx, factor).mean(axis=(1, 3))
    return frac >= min_fraction - 1e-12


# --------------------------------------------------------------------------- A_ratio statistics


def nanmean(values, axis=None):
    """``numpy.nanmean`` that returns NaN for all-NaN input without a warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(np.asarray(values, dtype=np.float64), axis=axis)


def robust_sigma(values: np.ndarray) -> float:
    """``1.4826 x`` the median absolute deviation from the median (the standard deviation for normal data)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return float("nan")
    return float(MAD_TO_SIGMA * np.median(np.abs(v - np.median(v))))


def a_ratio(db: np.ndarray, pair: WindowPair) -> np.ndarray:
    """``median(pre) - median(post)`` per pixel (dB), with the detector's own kernels."""
    stack = np.asarray(db, dtype=np.float32)
    return log_ratio(nan_median(stack[list(pair.pre)]), nan_median(stack[list(pair.post)]))


def _masked_values(field: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    v = np.asarray(field, dtype=np.float64)
    if mask is not None:
        v = v[np.asarray(mask, dtype=bool)]
    v = v.ravel()
    return v[np.isfinite(v)]


def ratio_statistics(ratio: np.ndarray, mask: np.ndarray | None = None,
                     thresholds: Sequence[float] = TAIL_THRESHOLDS_DB) -> dict:
    """Standard deviation, robust sigma, median and tail shares of an A_ratio over ``mask`` (dB, fractions)."""
    v = _masked_values(ratio, mask)
    out = {"n_pixels": int(v.size)}
    if v.size < MIN_PIXELS:
        out.update(std_db=float("nan"), robust_sigma_db=float("nan"), median_db=float("nan"))
        out.update({_tail_key(t): float("nan") for t in thresholds})
        return out
    out.update(std_db=float(v.std()), robust_sigma_db=robust_sigma(v), median_db=float(np.median(v)))
    out.update({_tail_key(t): float((v > t).mean()) for t in thresholds})
    return out


def _tail_key(threshold: float) -> str:
    return f"share_gt_{threshold:g}_db".replace(".", "p")


def pair_statistics(db: np.ndarray, pairs: Sequence[WindowPair], mask: np.ndarray | None = None) -> list[dict]:
    """:func:`ratio_statistics` of the A_ratio of each pair, with the pair's name, kind and windows."""
    return [{"pair": p.to_dict(), **ratio_statistics(a_ratio(db, p), mask)} for p in pairs]


def summarize_pairs(rows: Sequence[dict]) -> dict:
    """Mean of each statistic over the pairs of each kind and over all pairs: ``{kind: {stat: mean}}``."""
    out = {}
    kinds = sorted({r["pair"]["kind"] for r in rows})
    for kind in (*kinds, "all"):
        sel = [r for r in rows if kind in ("all", r["pair"]["kind"])]
        keys = [k for k in sel[0] if k not in ("pair", "n_pixels")] if sel else []
        out[kind] = {k: float(nanmean([r[k] for r in sel])) for k in keys}
        out[kind]["n_pairs"] = len(sel)
    return out


def single_date_differences(db: np.ndarray, dates: Sequence[_dt.datetime], mask: np.ndarray | None = None,
                            max_gap_days: float = SEASON_GAP_DAYS) -> dict:
    """Statistics of ``db[t1] - db[t0]`` for consecutive dates of a season, averaged over the date pairs.

    ``std_db``, ``iqr_sigma_db`` (interquartile range / 1.349, the standard
    deviation for normal data), ``q25_db``, ``q75_db``: the no-compositing
    change that per-date difference products (e.g. the MM-LandslideNet
    "Diff" channels) show.
    """
    stack = np.asarray(db, dtype=np.float64)
    rows = []
    for run in seasons(dates, max_gap_days):
        for a, b in zip(run, run[1:]):
            v = _masked_values(stack[b] - stack[a], mask)
            if v.size >= MIN_PIXELS:
                q25, q75 = np.percentile(v, [25.0, 75.0])
                rows.append((v.std(), (q75 - q25) / 1.349, q25, q75))
    if not rows:
        return {"std_db": float("nan"), "iqr_sigma_db": float("nan"), "q25_db": float("nan"),
                "q75_db": float("nan"), "n_pairs": 0}
    m = np.mean(np.array(rows), axis=0)
    return {"std_db": float(m[0]), "iqr_sigma_db": float(m[1]), "q25_db": float(m[2]), "q75_db": float(m[3]),
            "n_pairs": len(rows)}


# --------------------------------------------------------------------------- offsets and deviations


def date_offsets(db: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Per date: the median over the masked pixels of ``db[t] - median_t(db)`` (dB)."""
    stack = np.asarray(db, dtype=np.float32)
    dev = stack - nan_median(stack)[np.newaxis]
    return np.array([np.median(v) if (v := _masked_values(d, mask)).size else np.nan for d in dev])


def offset_statistics(offsets: np.ndarray) -> dict:
    """Standard deviation, robust sigma and largest absolute value of per-date offsets (dB)."""
    o = np.asarray(offsets, dtype=np.float64)
    o = o[np.isfinite(o)]
    if o.size < 2:
        return {"std_db": float("nan"), "robust_sigma_db": float("nan"), "max_abs_db": float("nan"), "n_dates": 0}
    return {"std_db": float(o.std()), "robust_sigma_db": robust_sigma(o), "max_abs_db": float(np.abs(o).max()),
            "n_dates": int(o.size)}


def date_deviations(db: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """``db[t] - median_t(db) - offset[t]`` per date, NaN outside ``mask``: the local date-to-date change."""
    stack = np.asarray(db, dtype=np.float64)
    dev = stack - nan_median(stack)[np.newaxis].astype(np.float64)
    dev -= date_offsets(stack, mask)[:, None, None]
    if mask is not None:
        dev[:, ~np.asarray(mask, dtype=bool)] = np.nan
    return dev


# --------------------------------------------------------------------------- spatial correlation


def radial_autocovariance(field: np.ndarray, max_lag_px: int, min_pairs: int = 200) -> np.ndarray:
    """Autocovariance of a 2-D field at integer lags ``0..max_lag_px`` (pixels), NaN-aware.

    The field's mean over its finite pixels is removed; the covariance at a lag
    is the mean product over all pixel pairs at that distance (rounded to the
    nearest whole pixel), computed with zero-padded FFTs and normalised by the
    number of valid pairs, so masked pixels do not bias it.  Lags with fewer
    than ``min_pairs`` pairs are NaN.
    """
    f = np.asarray(field, dtype=np.float64)
    valid = np.isfinite(f)
    if valid.sum() < 2:
        return np.full(max_lag_px + 1, np.nan)
    f = np.where(valid, f - f[valid].mean(), 0.0)
    ny, nx = f.shape
    shape = (2 * ny, 2 * nx)
    spec = np.fft.rfft2(f, s=shape)
    mspec = np.fft.rfft2(valid.astype(np.float64), s=shape)
    prod = np.fft.irfft2(spec * np.conj(spec), s=shape)
    pairs = np.rint(np.fft.irfft2(mspec * np.conj(mspec), s=shape))
    dy = np.fft.fftfreq(shape[0]) * shape[0]
    dx = np.fft.fftfreq(shape[1]) * shape[1]
    lag = np.rint(np.hypot(dy[:, None], dx[None, :])).astype(np.int64)
    keep = (lag <= max_lag_px) & (pairs > 0)
    num = np.bincount(lag[keep], weights=prod[keep], minlength=max_lag_px + 1)
    den = np.bincount(lag[keep], weights=pairs[keep], minlength=max_lag_px + 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cov = num / den
    cov[den < min_pairs] = np.nan
    return cov[:max_lag_px + 1]


def correlation_length(db: np.ndarray, pixel_size_m: float, mask: np.ndarray | None = None,
                       min_lag_m: float = 60.0, max_lag_m: float = 1500.0) -> dict:
    """E-folding distance of the date-to-date change beyond speckle scale (definition in the module docstring).

    Returns ``e_folding_m``, ``lower_bound`` (True when not reached by
    ``max_lag_m``), ``white_variance_db2``, ``correlated_sd_db``, and the
    pooled autocovariance ``covariance_db2`` at ``lags_m``.
    """
    px = float(pixel_size_m)
    r0 = int(math.ceil(min_lag_m / px - 1e-9))
    max_lag = max(int(math.floor(max_lag_m / px + 1e-9)), r0 + 1)
    dev = date_deviations(db, mask)
    covs = np.array([radial_autocovariance(d, max_lag) for d in dev])
    cov = nanmean(covs, axis=0)
    lags_m = np.arange(max_lag + 1) * px
    out = {"e_folding_m": float("nan"), "lower_bound": False, "min_lag_m": r0 * px,
           "white_variance_db2": float(cov[0] - cov[r0]), "correlated_sd_db": float("nan"),
           "lags_m": lags_m.tolist(), "covariance_db2": cov.tolist()}
    c0 = cov[r0]
    if not np.isfinite(c0) or c0 <= 0:
        return out
    out["correlated_sd_db"] = float(math.sqrt(c0))
    target = c0 / math.e
    for k in range(r0 + 1, max_lag + 1):
        if np.isfinite(cov[k]) and cov[k] <= target:
            frac = (cov[k - 1] - target) / (cov[k - 1] - cov[k]) if cov[k - 1] != cov[k] else 1.0
            out["e_folding_m"] = float((k - 1 + frac - r0) * px)
            return out
    out["e_folding_m"] = float((max_lag - r0) * px)
    out["lower_bound"] = True
    return out


# --------------------------------------------------------------------------- levels


def levels(db: np.ndarray, classes: Mapping[str, np.ndarray]) -> dict:
    """Per class: median over pixel-dates, single-date spread and temporal-median spread (dB)."""
    stack = np.asarray(db, dtype=np.float64)
    med = nan_median(stack.astype(np.float32)).astype(np.float64)
    out = {}
    for name, mask in classes.items():
        m = np.asarray(mask, dtype=bool)
        values = stack[:, m].ravel()
        values = values[np.isfinite(values)]
        static = med[m]
        static = static[np.isfinite(static)]
        if values.size < MIN_PIXELS:
            continue
        out[name] = {"median_db": float(np.median(values)), "spread_db": float(values.std()),
                     "median_image_spread_db": float(static.std()), "n_pixels": int(m.sum())}
    return out


# --------------------------------------------------------------------------- everything for one stack


def stack_statistics(db: np.ndarray, dates: Sequence[_dt.datetime], pixel_size_m: float,
                     mask: np.ndarray | None = None, classes: Mapping[str, np.ndarray] | None = None,
                     n_pre: int = 4, n_post: int = 2, pairs: Sequence[WindowPair] | None = None) -> dict:
    """All calibration statistics of one polarisation's stack at its own resolution.

    ``mask`` selects the pixels of the A_ratio, offset and correlation
    statistics (e.g. land); ``classes`` the pixels of each level.  ``pairs``
    default to :func:`window_pairs` of ``dates``.
    """
    stack = np.asarray(db, dtype=np.float64)
    if stack.ndim != 3 or stack.shape[0] != len(dates):
        raise ValueError(f"expected a (dates, rows, cols) stack with {len(dates)} dates, got shape {stack.shape}")
    pairs = list(window_pairs(dates, n_pre, n_post) if pairs is None else pairs)
    rows = pair_statistics(stack, pairs, mask)
    offsets = date_offsets(stack, mask)
    return {
        "pixel_size_m": float(pixel_size_m),
        "pairs": rows,
        "summary": summarize_pairs(rows) if rows else {},
        "single_date_difference": single_date_differences(stack, dates, mask),
        "offsets_db": offsets.tolist(),
        "offsets": offset_statistics(offsets),
        "correlation": correlation_length(stack, pixel_size_m, mask),
        "levels": levels(stack, classes or ({"all": mask} if mask is not None else {})),
    }
