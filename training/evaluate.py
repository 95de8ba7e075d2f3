"""Scoring helpers and the precision-recall plot (numpy only) used by fine-tuning and the model card.

The evaluation of a model across events runs through the plugin's own engine: see
:mod:`training.family_eval` (per family, A_ratio beside it, one pass vs both passes).
"""

from __future__ import annotations

import numpy as np

from landslide_sar_plugin.core import metrics as M  # noqa: N812

# --------------------------------------------------------------------------- scoring


def _filled(scores: np.ndarray) -> np.ndarray:
    """Non-finite scores (masked pixels) become lower than any finite score: never predicted, still counted."""
    s = scores.astype(np.float64)
    fin = np.isfinite(s)
    low = (s[fin].min() - 1.0) if fin.any() else 0.0
    return np.where(fin, s, low)


def score_summary(scores: np.ndarray, truth: np.ndarray, valid: np.ndarray, threshold: float | None) -> dict:
    s = _filled(scores)
    out = {"auprc": M.average_precision(s, truth, valid), "no_skill_auprc": M.no_skill_baseline(truth, valid),
           "best_f1": M.best_f1_threshold(s, truth, valid)}
    if threshold is not None:
        pred = s >= threshold
        out["threshold"] = float(threshold)
        out["pixel"] = M.pixel_metrics(pred, truth, valid)
        if pred.ndim == 2:
            out["objects"] = M.object_metrics(pred & valid, truth & valid)
    return out


# --------------------------------------------------------------------------- PR plot (numpy only)

_COLOURS = {"model": (200, 30, 30), "a_ratio": (30, 80, 200), "no_skill": (120, 120, 120)}


def _line(img, x0, y0, x1, y1, colour, width=2):
    n = int(max(abs(x1 - x0), abs(y1 - y0))) + 1
    xs = np.linspace(x0, x1, n).round().astype(int)
    ys = np.linspace(y0, y1, n).round().astype(int)
    h, w, _ = img.shape
    for dx in range(-(width // 2), width - width // 2):
        for dy in range(-(width // 2), width - width // 2):
            ok = (xs + dx >= 0) & (xs + dx < w) & (ys + dy >= 0) & (ys + dy < h)
            img[ys[ok] + dy, xs[ok] + dx] = colour


def draw_pr_plot(curves: dict, no_skill: float | None, size: tuple[int, int] = (420, 520)) -> np.ndarray:
    """RGB uint8 image: recall on x, precision on y, both 0..1; gridlines every 0.1; legend colours:
    model red, A_ratio blue, no-skill grey (dashed)."""
    h, w = size
    img = np.full((h, w, 3), 255, np.uint8)
    m = 30
    x0, y0, x1, y1 = m, h - m, w - m, m

    def px(r, p):
        return x0 + r * (x1 - x0), y0 - p * (y0 - y1)

    for k in range(11):
        gx, _ = px(k / 10, 0)
        _, gy = px(0, k / 10)
        _line(img, gx, y0, gx, y1, (225, 225, 225), 1)
        _line(img, x0, gy, x1, gy, (225, 225, 225), 1)
    _line(img, x0, y0, x1, y0, (0, 0, 0), 2)
    _line(img, x0, y0, x0, y1, (0, 0, 0), 2)
    if no_skill is not None and np.isfinite(no_skill):
        _, ny = px(0, no_skill)
        for k in range(0, int(x1 - x0), 12):
            _line(img, x0 + k, ny, min(x0 + k + 6, x1), ny, _COLOURS["no_skill"], 2)
    for name, (prec, rec, _) in curves.items():
        colour = _COLOURS.get(name, (30, 160, 60))
        ok = np.isfinite(prec) & np.isfinite(rec)
        prec, rec = prec[ok], rec[ok]
        if prec.size < 2:
            continue
        step = max(1, prec.size // 600)
        pts = [px(r, p) for r, p in zip(rec[::step], prec[::step])]
        for (ax, ay), (bx, by) in zip(pts[:-1], pts[1:]):
            _line(img, ax, ay, bx, by, colour, 2)
    for i, name in enumerate(("model", "a_ratio", "no_skill")):  # legend swatches, top right
        img[y1 + 6 + 12 * i:y1 + 14 + 12 * i, x1 - 40:x1 - 10] = _COLOURS[name]
    return img


# --------------------------------------------------------------------------- reports


def _clean(obj):
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items() if not str(k).startswith("_")}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        return None if not np.isfinite(obj) else round(float(obj), 6)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj


def _f(v, nd=3):
    return "n/a" if v is None or (isinstance(v, float) and not np.isfinite(v)) else f"{v:.{nd}f}"
