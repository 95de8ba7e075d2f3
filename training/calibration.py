"""Calibrated probabilities and the shipped threshold, both fitted on validation events (never test events).

* **Platt scaling** (Platt 1999): the network's logit ``z`` becomes ``a z + b``, with ``a`` and ``b``
  minimising the log-loss on every valid pixel of the validation events, each validation family weighted
  alike (bounded L-BFGS on the two parameters).  ``a < 1`` tempers an over-confident network; ``b`` moves
  the base rate.  The exported graph computes ``sigmoid(a z + b)``
  (:class:`training.models.CalibratedLogits`), so the plugin's probability is the calibrated one.
* **Reliability** (:func:`reliability`): predicted probability in bins against the observed landslide
  share of the pixels in each bin; the expected calibration error ``ECE = sum_k n_k/N |p_k - o_k|``.
  With about 1 % landslide pixels most pixels sit in the lowest bin, so the table also reports the ECE
  over pixels predicted at 0.05 or more, where the decisions are.
* **Threshold** (:func:`choose_threshold`): the probability that maximises the mean pixel F1 over the
  validation events with slides (candidates as the plugin makes them: objects below the minimum area
  removed), among thresholds whose candidates cover at most ``max_false_alarm`` of the land on the
  validation no-change cases.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from landslide_sar_plugin.core import metrics as M  # noqa: N812

THRESHOLDS = np.round(np.concatenate([np.arange(0.01, 0.05, 0.0025), np.arange(0.05, 0.951, 0.01)]), 4)
EPS = 1e-6


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, np.float64), EPS, 1 - EPS)
    return np.log(p) - np.log1p(-p)


def fit_platt(probs: np.ndarray, truth: np.ndarray, *, weights: np.ndarray | None = None,
              max_pixels: int = 2_000_000, seed: int = 0) -> dict:
    """``{"kind": "platt", "a": .., "b": ..}`` fitted on finite ``probs`` against boolean ``truth`` (1-D).

    Minimises the (``weights``-weighted) mean log-loss of ``sigmoid(a z + b)`` (``z`` the logit of
    ``probs``, clipped to +-16) with L-BFGS-B, ``a`` in [0.02, 5] and ``b`` in [-20, 20]: bounded, so a
    network that saturates its output on some pixels cannot make the fit diverge.  Weighting each event's
    pixels by 1 / its pixel count gives every validation event the same say (a 30 m real-background crop
    holds 10,000 pixels, a simulated 10 m event 150,000).
    """
    from scipy.optimize import minimize

    p = np.asarray(probs, np.float64).ravel()
    t = np.asarray(truth, bool).ravel()
    w = np.ones(p.shape) if weights is None else np.asarray(weights, np.float64).ravel()
    ok = np.isfinite(p)
    p, t, w = p[ok], t[ok].astype(np.float64), w[ok]
    if p.size > max_pixels:
        idx = np.random.default_rng(seed).choice(p.size, max_pixels, replace=False)
        p, t, w = p[idx], t[idx], w[idx]
    if p.size == 0 or t.min() == t.max():
        return {"kind": "platt", "a": 1.0, "b": 0.0, "n_pixels": int(p.size), "note": "one class only: identity"}
    z = np.clip(logit(p), -16.0, 16.0)
    w = w / w.sum()

    def loss(ab):
        s = ab[0] * z + ab[1]
        # log(1 + e^s) - t s, its gradient (sigmoid(s) - t) * (z, 1)
        val = np.sum(w * (np.logaddexp(0.0, s) - t * s))
        g = w * (1.0 / (1.0 + np.exp(-s)) - t)
        return val, np.array([np.sum(g * z), np.sum(g)])

    res = minimize(loss, np.array([1.0, 0.0]), jac=True, method="L-BFGS-B", bounds=[(0.02, 5.0), (-20.0, 20.0)])
    before = loss(np.array([1.0, 0.0]))[0]
    return {"kind": "platt", "a": float(res.x[0]), "b": float(res.x[1]), "n_pixels": int(p.size),
            "positive_share": float(t.mean()), "weighted": weights is not None, "log_loss_before": float(before),
            "log_loss_after": float(res.fun)}


def apply_platt(probs: np.ndarray, cal: dict | None) -> np.ndarray:
    """The calibrated probability for uncalibrated ``probs`` (NaN stays NaN)."""
    p = np.asarray(probs, np.float64)
    if not cal:
        return p.astype(np.float32)
    out = 1.0 / (1.0 + np.exp(-(cal["a"] * logit(p) + cal["b"])))
    return np.where(np.isfinite(p), out, np.nan).astype(np.float32)


def reliability(probs: np.ndarray, truth: np.ndarray, *, bins: int = 10) -> dict:
    """Reliability table (equal-width bins) and expected calibration errors over finite ``probs``."""
    p = np.asarray(probs, np.float64).ravel()
    t = np.asarray(truth, bool).ravel()
    ok = np.isfinite(p)
    p, t = p[ok], t[ok]
    edges = np.linspace(0.0, 1.0, bins + 1)
    k = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    rows, ece, n = [], 0.0, p.size
    for i in range(bins):
        sel = k == i
        m = int(sel.sum())
        if m == 0:
            rows.append({"lo": float(edges[i]), "hi": float(edges[i + 1]), "n": 0})
            continue
        mp, fo = float(p[sel].mean()), float(t[sel].mean())
        ece += m / n * abs(mp - fo)
        rows.append({"lo": float(edges[i]), "hi": float(edges[i + 1]), "n": m, "mean_probability": mp,
                     "observed_share": fo})
    hi = p >= 0.05
    ece_hi = math.nan
    if hi.any():
        kh = k[hi]
        ece_hi = 0.0
        for i in np.unique(kh):
            sel = kh == i
            ece_hi += sel.sum() / hi.sum() * abs(p[hi][sel].mean() - t[hi][sel].mean())
    return {"bins": rows, "ece": float(ece) if n else math.nan, "ece_p_ge_0.05": float(ece_hi),
            "n_pixels": int(n), "positive_share": float(t.mean()) if n else math.nan}


def candidates_mask(score: np.ndarray, threshold: float, min_px: int) -> np.ndarray:
    """``score >= threshold`` with 4-connected objects smaller than ``min_px`` removed (as the plugin)."""
    pred = np.nan_to_num(np.asarray(score, np.float64), nan=-np.inf) >= threshold
    if min_px > 1 and pred.any():
        lab, _ = ndimage.label(pred)
        pred = (np.bincount(lab.ravel()) >= min_px)[lab] & pred
    return pred


def sweep_case(score: np.ndarray, truth: np.ndarray | None, land: np.ndarray | None, min_px: int,
               thresholds: Sequence[float] = THRESHOLDS) -> dict:
    """Per threshold: pixel F1 (cases with truth) and the share of land covered (no-change cases)."""
    f1, share = [], []
    for thr in thresholds:
        pred = candidates_mask(score, thr, min_px)
        if truth is not None:
            f1.append(M.pixel_metrics(pred, truth)["f1"])
        if land is not None:
            share.append(float((pred & land).sum() / max(land.sum(), 1)))
    return {"thresholds": list(map(float, thresholds)), "f1": f1, "land_share": share}


def choose_threshold(sweeps: Sequence[dict], *, max_false_alarm: float = 0.008) -> dict:
    """The threshold with the best mean F1 over the sweeps with truth, among those whose mean land share on
    the no-change sweeps is at most ``max_false_alarm`` (all thresholds when there is no no-change case)."""
    thresholds = np.asarray(sweeps[0]["thresholds"])
    f1 = np.array([s["f1"] for s in sweeps if s["f1"]], np.float64)
    share = np.array([s["land_share"] for s in sweeps if s["land_share"] and not s["f1"]], np.float64)
    mean_f1 = np.nanmean(f1, axis=0) if f1.size else np.zeros(len(thresholds))
    mean_share = share.mean(axis=0) if share.size else np.zeros(len(thresholds))
    ok = mean_share <= max_false_alarm
    if not ok.any():
        ok = mean_share <= mean_share.min()
    best = int(np.nanargmax(np.where(ok, mean_f1, -1.0)))
    return {"threshold": float(thresholds[best]), "validation_mean_f1": float(mean_f1[best]),
            "validation_no_change_land_share": float(mean_share[best]), "max_false_alarm": max_false_alarm,
            "n_cases_with_truth": int(f1.shape[0]) if f1.size else 0,
            "n_no_change_cases": int(share.shape[0]) if share.size else 0,
            "curve": {"thresholds": thresholds.tolist(), "mean_f1": mean_f1.tolist(),
                      "mean_land_share": mean_share.tolist()}}
