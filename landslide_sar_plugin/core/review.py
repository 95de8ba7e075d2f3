"""The analyst's review of candidate polygons: the queue order and the threshold a review suggests.

Pure functions (no QGIS): the dock's review queue and *Suggest threshold* call
them, and so does the loop benchmark's scripted analyst.

Queue order
    Candidates closest to the decision come first: the polygon's mean score
    minus the run's threshold, in the score's own units (dB for A_ratio, a
    probability for a model), smallest magnitude first; a reviewer's verdict on
    those teaches most (uncertainty sampling).  Larger polygons first among
    equals: they weigh most in the map.

Suggested threshold
    From the reviewed polygons (accepted, edited and hand-drawn ones are
    landslides, rejected ones are not) and the score raster: each polygon's mean
    score is read from the raster (so edited outlines and polygons drawn by hand
    count with what lies inside them), and the suggested threshold is the value
    that best separates the two groups, area-weighted (the F1 of "mean score
    above the threshold = landslide" with each polygon weighted by its area, the
    polygon analogue of the map's pixel F1).  Ties go to the value closest to
    the current threshold.  It needs at least one polygon of each kind.

Passes that fired
    For the queue's attribute panel: a polygon's mean score on each orbit
    pass's own raster (``a_ratio_<pass>.tif``; for a model run
    ``probability_<pass>.tif`` when the run wrote them), minus the run's local
    background (``background_change.tif``) when the A_ratio was detrended, so
    each pass is compared with the threshold on the same footing as the map.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

POSITIVE_STATUSES = ("accepted", "edited")
NEGATIVE_STATUSES = ("rejected",)


class ReviewError(ValueError):
    """The review cannot give an answer yet; the message says what is missing."""


def _number(value) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def review_order(candidates: Sequence[Mapping], threshold: float) -> list[int]:
    """Indices of ``candidates`` (dicts with ``mean_score`` and ``area_m2``) in review order.

    Candidates without a finite mean score go last, largest first.
    """
    def key(i: int):
        c = candidates[i]
        score = _number(c.get("mean_score"))
        area = _number(c.get("area_m2")) or 0.0
        # rounded so that equal distances in decimal (1.4 and 1.6 around 1.5) tie, and area decides
        return (score is None, round(abs(score - threshold), 9) if score is not None else 0.0, -area, i)

    return sorted(range(len(candidates)), key=key)


@dataclass
class Reviewed:
    """One reviewed polygon: GeoJSON geometry in the score raster's CRS, and whether it is a landslide."""

    geometry: Mapping
    landslide: bool


def reviewed_from_features(features: Sequence[Mapping]) -> list[Reviewed]:
    """Reviewed polygons from candidate features (``geometry``, ``status``, optional ``source``/``method``).

    Accepted and edited polygons, and hand-drawn ones (source or method
    ``manual``) are landslides; rejected ones are not; proposed ones are skipped.
    """
    out = []
    for f in features:
        status = str(f.get("status") or "").lower()
        manual = "manual" in (str(f.get("source") or "").lower(), str(f.get("method") or "").lower())
        if not f.get("geometry"):
            continue
        if status in POSITIVE_STATUSES or (manual and status != "rejected"):
            out.append(Reviewed(f["geometry"], True))
        elif status in NEGATIVE_STATUSES:
            out.append(Reviewed(f["geometry"], False))
    return out


def polygon_mean_scores(score_path: str | Path, polygons: Sequence[Mapping]) -> list[tuple[float, float]]:
    """(mean score, area in m^2 of valid pixels) of each polygon on the score raster; (nan, 0) when empty.

    Reads only each polygon's window, so the cost follows the polygons, not the scene.
    """
    import rasterio

    out = []
    with rasterio.open(score_path) as src:
        px_area = abs(src.transform.a * src.transform.e)
        for geom in polygons:
            vals = _values_inside(src, geom)
            vals = vals[np.isfinite(vals)]
            out.append((float(vals.mean()), float(vals.size * px_area)) if vals.size else (math.nan, 0.0))
    return out


def _values_inside(src, geom: Mapping) -> np.ndarray:
    """The pixel values of band 1 of the open raster ``src`` inside ``geom`` (float64, NaN = nodata)."""
    import rasterio
    from rasterio.features import geometry_mask
    from rasterio.windows import Window, from_bounds

    xs, ys = _coords(geom)
    if not xs:
        return np.empty(0)
    win = from_bounds(min(xs), min(ys), max(xs), max(ys), src.transform)
    win = win.round_offsets(op="floor").round_lengths(op="ceil")
    try:
        win = win.intersection(Window(0, 0, src.width, src.height))
    except rasterio.errors.WindowError:
        return np.empty(0)
    values = src.read(1, window=win, masked=True).filled(np.nan).astype(np.float64)
    inside = ~geometry_mask([geom], out_shape=values.shape, transform=src.window_transform(win))
    return values[inside]


def per_pass_rasters(files: Mapping[str, str | Path], score_key: str) -> dict[str, Path]:
    """``{orbit pass: raster}`` of a run's per-pass scores (``<score_key>_<pass>``), e.g. a_ratio_ascending."""
    prefix = f"{score_key}_"
    return {key[len(prefix):].upper(): Path(path) for key, path in sorted(files.items())
            if key.startswith(prefix) and key[len(prefix):] in ("ascending", "descending")}


def pass_scores(pass_rasters: Mapping[str, str | Path], geometry: Mapping,
                background: str | Path | None = None) -> dict[str, float]:
    """Mean score of one polygon on each pass's raster (NaN where it has no valid pixel), less ``background``.

    ``background`` (the A_ratio run's ``background_change.tif``) is subtracted pixel by pixel, as the run
    subtracted it from the averaged ratio.
    """
    import rasterio

    bg = None
    if background is not None and Path(background).is_file():
        with rasterio.open(background) as src:
            bg = _values_inside(src, geometry)
    out = {}
    for orbit_pass, path in pass_rasters.items():
        with rasterio.open(path) as src:
            vals = _values_inside(src, geometry)
        if bg is not None and bg.shape == vals.shape:
            vals = vals - bg
        vals = vals[np.isfinite(vals)]
        out[orbit_pass] = float(vals.mean()) if vals.size else math.nan
    return out


def passes_fired(scores: Mapping[str, float], threshold: float) -> list[str]:
    """The passes whose polygon mean exceeds ``threshold`` (the map's rule: above the threshold = candidate)."""
    return [p for p, v in scores.items() if math.isfinite(v) and v > threshold]


def _coords(geom: Mapping) -> tuple[list[float], list[float]]:
    xs, ys = [], []

    def walk(c):
        if isinstance(c, (list, tuple)) and c and isinstance(c[0], (int, float)):
            xs.append(float(c[0]))
            ys.append(float(c[1]))
        elif isinstance(c, (list, tuple)):
            for part in c:
                walk(part)

    walk(geom.get("coordinates", []))
    return xs, ys


@dataclass
class Suggestion:
    """A threshold suggested by a review, with the evidence behind it."""

    threshold: float
    f1: float  # area-weighted F1 of the reviewed polygons at that threshold
    current_f1: float  # the same at the run's threshold
    n_landslides: int
    n_rejected: int
    curve: list[tuple[float, float]] = field(default_factory=list)  # (threshold, F1) tried


def _weighted_f1(scores: np.ndarray, areas: np.ndarray, labels: np.ndarray, t: float) -> float:
    above = scores > t
    tp = float(areas[above & labels].sum())
    fp = float(areas[above & ~labels].sum())
    fn = float(areas[~above & labels].sum())
    return 2 * tp / (2 * tp + fp + fn) if tp > 0 else 0.0


def suggest_threshold(score_path: str | Path, reviewed: Sequence[Reviewed], current: float) -> Suggestion:
    """The threshold that best separates the reviewed landslides from the rejected polygons (module docstring)."""
    stats = polygon_mean_scores(score_path, [r.geometry for r in reviewed])
    keep = [i for i, (m, a) in enumerate(stats) if math.isfinite(m) and a > 0]
    scores = np.array([stats[i][0] for i in keep])
    areas = np.array([stats[i][1] for i in keep])
    labels = np.array([reviewed[i].landslide for i in keep], bool)
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        raise ReviewError(f"a threshold needs reviewed landslides and rejected polygons on the score raster "
                          f"({n_pos} landslides, {n_neg} rejected so far): accept or draw at least one and reject "
                          "at least one")
    uniq = np.unique(scores)
    candidates = np.concatenate([[uniq[0] - 1e-6], (uniq[:-1] + uniq[1:]) / 2, [float(current)]])
    curve = sorted((float(t), _weighted_f1(scores, areas, labels, float(t))) for t in candidates)
    best_f1 = max(f for _, f in curve)
    best = min((t for t, f in curve if f >= best_f1 - 1e-12), key=lambda t: abs(t - current))
    return Suggestion(best, best_f1, _weighted_f1(scores, areas, labels, float(current)), n_pos, n_neg, curve)
