"""Evaluation metrics for landslide maps: pixel scores, ranking (AUPRC) and object counts.

One implementation shared by the CLI (``evaluate``), the QGIS plugin and
``training/``.  Pure functions on numpy arrays first; file loading
(:func:`evaluate_files`) at the end.  No qgis or Qt import.

Conventions (apply to every function below)
-------------------------------------------
* ``pred`` and ``truth`` are arrays of the same shape (2-D rasters; pixel and
  ranking metrics accept any shape, object metrics need 2-D); non-zero =
  landslide.
* ``valid`` (optional, same shape, non-zero = evaluate) removes pixels from
  every count.  ``None`` means all pixels are valid.
* Counts are Python ``int`` (summed in int64), so 10^8 pixels cannot overflow.
* Undefined pixel ratios (0/0) follow the segmentation convention:

  - nothing predicted **and** no truth in the valid area -> a perfect result:
    precision = recall = F1 = IoU = 1.0;
  - otherwise a 0/0 ratio is 0.0 (e.g. precision when nothing was predicted
    but landslides exist, recall when something was predicted but no
    landslide exists);
  - MCC is 0.0 whenever it is undefined (a row or column of the confusion
    matrix is empty), including the both-empty case, as in scikit-learn.

  With these rules F1 is always the harmonic mean of precision and recall
  (0 when both are 0), and ``F1 == 2 IoU / (1 + IoU)`` holds exactly.
* Ranking metrics (average precision, best-F1 threshold) and object detection
  rate are ``nan`` when undefined (no positive valid pixel / no truth object);
  :func:`evaluate_files` reports them as JSON ``null``.
* Scores: larger = more landslide-like; a pixel is predicted positive when
  ``score >= threshold``.  Non-finite scores (NaN, +-inf) are invalid pixels.
* Objects: connected components with 8-connectivity (diagonal neighbours
  join), or one object per polygon when polygons are given.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "KINDS",
    "average_precision",
    "best_f1_threshold",
    "confusion_counts",
    "detect_kind",
    "evaluate_files",
    "label_objects",
    "no_skill_baseline",
    "object_metrics",
    "object_metrics_from_labels",
    "pixel_metrics",
    "precision_recall_curve",
    "scores_from_counts",
]

KINDS = ("mask", "score", "polygons")
_SQLITE_MAGIC = b"SQLite format 3\x00"


# --------------------------------------------------------------------------- helpers


def _as_bool(name: str, arr, shape=None, ndim=None) -> np.ndarray:
    out = np.asarray(arr)
    if out.dtype != bool:
        out = out != 0
    if ndim is not None and out.ndim != ndim:
        raise ValueError(f"{name} must be a {ndim}-D array, got shape {out.shape}")
    if shape is not None and out.shape != shape:
        raise ValueError(f"{name} has shape {out.shape} but the prediction has shape {shape}")
    return out


def _valid_or_none(valid, shape) -> np.ndarray | None:
    if valid is None:
        return None
    return _as_bool("valid", valid, shape)


def _ratio(num: int, den: int, both_empty: bool) -> float:
    if den == 0:
        return 1.0 if both_empty else 0.0
    return num / den


# --------------------------------------------------------------------------- pixel metrics


def confusion_counts(pred, truth, valid=None) -> dict[str, int]:
    """Confusion-matrix counts of a binary prediction against binary truth.

    Parameters
    ----------
    pred, truth : (M, N) array_like
        Non-zero = landslide.
    valid : (M, N) array_like, optional
        Non-zero = pixel is evaluated; other pixels are ignored.

    Returns
    -------
    dict
        ``{"tp", "fp", "fn", "tn"}`` as Python ints.
    """
    pred = _as_bool("pred", pred)
    truth = _as_bool("truth", truth, pred.shape)
    valid = _valid_or_none(valid, pred.shape)
    if valid is None:
        n = int(pred.size)
        p = int(np.count_nonzero(pred))
        t = int(np.count_nonzero(truth))
        tp = int(np.count_nonzero(pred & truth))
    else:
        n = int(np.count_nonzero(valid))
        p = int(np.count_nonzero(pred & valid))
        t = int(np.count_nonzero(truth & valid))
        tp = int(np.count_nonzero(pred & truth & valid))
    fp = p - tp
    fn = t - tp
    return {"tp": tp, "fp": fp, "fn": fn, "tn": n - tp - fp - fn}


def scores_from_counts(tp: int, fp: int, fn: int, tn: int) -> dict[str, float]:
    """Precision, recall, F1, IoU and MCC from confusion counts.

    See the module docstring for the values chosen when a ratio is 0/0.

    Returns
    -------
    dict
        ``{"precision", "recall", "f1", "iou", "mcc"}`` as floats in
        [0, 1] (MCC in [-1, 1]).
    """
    tp, fp, fn, tn = (int(v) for v in (tp, fp, fn, tn))
    if min(tp, fp, fn, tn) < 0:
        raise ValueError("confusion counts must be non-negative")
    both_empty = tp + fp + fn == 0
    precision = _ratio(tp, tp + fp, both_empty)
    recall = _ratio(tp, tp + fn, both_empty)
    f1 = _ratio(2 * tp, 2 * tp + fp + fn, both_empty)
    iou = _ratio(tp, tp + fp + fn, both_empty)
    marg = [tp + fp, tp + fn, tn + fp, tn + fn]
    if 0 in marg:
        mcc = 0.0
    else:
        # Python ints: numerator and product of the marginals are exact (no int64
        # overflow, even for 10^10 pixels); one rounding in the float sqrt.
        mcc = (tp * tn - fp * fn) / math.sqrt(math.prod(marg))
        mcc = max(-1.0, min(1.0, mcc))
    return {"precision": precision, "recall": recall, "f1": f1, "iou": iou, "mcc": mcc}


def pixel_metrics(pred, truth, valid=None) -> dict:
    """Counts and scores of a binary prediction; see :func:`confusion_counts`.

    Returns
    -------
    dict
        ``tp, fp, fn, tn, n_valid`` (ints) and ``precision, recall, f1, iou,
        mcc`` (floats), with the 0/0 conventions of the module docstring.

    Examples
    --------
    >>> pixel_metrics([[1, 1], [0, 0]], [[1, 0], [1, 0]])["f1"]
    0.5
    """
    counts = confusion_counts(pred, truth, valid)
    out: dict = dict(counts)
    out["n_valid"] = sum(counts.values())
    out.update(scores_from_counts(**counts))
    return out


def no_skill_baseline(truth, valid=None) -> float:
    """Average precision of a random (no-skill) score: the share of valid pixels that are positive.

    ``nan`` when there is no valid pixel.
    """
    truth = _as_bool("truth", truth)
    valid = _valid_or_none(valid, truth.shape)
    n = truth.size if valid is None else int(np.count_nonzero(valid))
    if n == 0:
        return float("nan")
    pos = np.count_nonzero(truth if valid is None else truth & valid)
    return int(pos) / int(n)


# --------------------------------------------------------------------------- ranking metrics


def _score_valid(scores, truth, valid):
    """Flattened (scores, truth) restricted to valid pixels with a finite score."""
    scores = np.asarray(scores)
    if scores.dtype.kind not in "fiub":
        raise ValueError(f"scores must be numeric, got dtype {scores.dtype}")
    truth = np.asarray(truth)
    if truth.shape != scores.shape:
        raise ValueError(f"truth has shape {truth.shape} but scores have shape {scores.shape}")
    keep = np.isfinite(scores) if scores.dtype.kind == "f" else np.ones(scores.shape, bool)
    if valid is not None:
        valid = np.asarray(valid)
        if valid.shape != scores.shape:
            raise ValueError(f"valid has shape {valid.shape} but scores have shape {scores.shape}")
        keep &= valid != 0
    if keep.all():
        return scores.ravel(), (truth != 0).ravel()
    return scores[keep], truth[keep] != 0


def _curve_counts(scores, truth, valid, bins):
    """Distinct thresholds (descending) with cumulative TP and predicted counts at ``score >= t``."""
    s, t = _score_valid(scores, truth, valid)
    n_pos = int(np.count_nonzero(t))
    if s.size == 0:
        empty = np.zeros(0, np.int64)
        return np.zeros(0, float), empty, empty, n_pos
    if bins is None:
        # Exact: sort once; tied scores form one threshold (one step of the curve).
        s_sorted = np.sort(s)
        starts = np.flatnonzero(np.r_[True, s_sorted[1:] != s_sorted[:-1]])
        thresholds = s_sorted[starts]
        n_pred = s.size - starts
        pos_sorted = np.sort(s[t])
        tp = n_pos - np.searchsorted(pos_sorted, thresholds, side="left")
    else:
        # Binned: scores in one equal-width bin count as tied (approximate AP).
        bins = int(bins)
        if bins < 1:
            raise ValueError("bins must be a positive integer (or None for the exact curve)")
        lo, hi = float(s.min()), float(s.max())
        width = (hi - lo) / bins if hi > lo else 1.0
        idx = np.clip(((s - lo) / width).astype(np.int64), 0, bins - 1)
        total = np.bincount(idx, minlength=bins)
        pos = np.bincount(idx[t], minlength=bins)
        used = np.flatnonzero(total)
        thresholds = lo + used * width
        thresholds[0] = lo  # exact lower end for the lowest occupied bin
        n_pred = np.cumsum(total[::-1])[::-1][used]
        tp = np.cumsum(pos[::-1])[::-1][used]
    order = slice(None, None, -1)  # to descending thresholds
    return (
        thresholds[order].astype(float),
        tp[order].astype(np.int64),
        n_pred[order].astype(np.int64),
        n_pos,
    )


def precision_recall_curve(scores, truth, valid=None, *, bins: int | None = None):
    """Precision and recall of ``scores >= t`` for every distinct score ``t``.

    Parameters
    ----------
    scores : (M, N) array_like of float
        Larger = more landslide-like (probability, A_ratio in dB, ...).
        Non-finite values are ignored.
    truth : (M, N) array_like
        Non-zero = landslide.
    valid : (M, N) array_like, optional
        Non-zero = pixel is evaluated.
    bins : int, optional
        ``None`` (default): exact, one point per distinct score (one sort,
        O(n log n); about a second for 10^7 pixels).  An integer groups the
        scores into that many equal-width bins between their minimum and
        maximum (O(n), approximate; for huge rasters).

    Returns
    -------
    precision, recall, thresholds : ndarray
        One entry per threshold, thresholds in **decreasing** order (unlike
        scikit-learn, no extra (recall 0, precision 1) point is appended).
        Recall is ``nan`` when ``truth`` has no valid positive pixel.
    """
    thresholds, tp, n_pred, n_pos = _curve_counts(scores, truth, valid, bins)
    precision = tp / np.maximum(n_pred, 1)
    recall = tp / n_pos if n_pos else np.full(tp.shape, np.nan)
    return precision, recall, thresholds


def average_precision(scores, truth, valid=None, *, bins: int | None = None) -> float:
    """Area under the precision-recall curve as step-wise average precision.

    ``AP = sum_k (R_k - R_{k-1}) * P_k`` over thresholds in decreasing order
    with ``R_0 = 0`` (scikit-learn's ``average_precision_score``; no
    interpolation).  Tied scores form one step.  Compare it with
    :func:`no_skill_baseline`, the AP of a random score.

    Parameters are those of :func:`precision_recall_curve`.

    Returns
    -------
    float
        In [0, 1]; ``nan`` when there is no valid positive pixel.

    Examples
    --------
    >>> average_precision([0.9, 0.8, 0.7, 0.6], [1, 0, 1, 0])  # 0.5*1 + 0.5*2/3
    0.8333333333333333
    """
    scores = np.atleast_1d(np.asarray(scores))
    truth = np.atleast_1d(np.asarray(truth))
    precision, recall, _ = precision_recall_curve(scores, truth, valid, bins=bins)
    return _ap_from_curve(precision, recall)


def _ap_from_curve(precision, recall) -> float:
    if recall.size == 0 or np.isnan(recall[0]):
        return float("nan")
    steps = np.diff(recall, prepend=0.0)
    return float(min(1.0, np.sum(steps * precision)))


def best_f1_threshold(scores, truth, valid=None, *, bins: int | None = None) -> dict:
    """The threshold ``t`` maximising F1 of ``scores >= t``.

    Ties go to the highest threshold (fewest predicted pixels).  Returns
    ``{"threshold", "f1", "precision", "recall"}``; all ``nan`` when there is
    no valid positive pixel (then predicting nothing is best).
    """
    return _best_f1_from_curve(*precision_recall_curve(scores, truth, valid, bins=bins))


def _best_f1_from_curve(precision, recall, thresholds) -> dict:
    nan = float("nan")
    if thresholds.size == 0 or np.isnan(recall[0]):
        return {"threshold": nan, "f1": nan, "precision": nan, "recall": nan}
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(denom), where=denom > 0)
    k = int(np.argmax(f1))
    return {
        "threshold": float(thresholds[k]),
        "f1": float(f1[k]),
        "precision": float(precision[k]),
        "recall": float(recall[k]),
    }


# --------------------------------------------------------------------------- objects


def label_objects(mask, connectivity: int = 8) -> tuple[np.ndarray, int]:
    """Connected components of a binary mask.

    Parameters
    ----------
    mask : (M, N) array_like
        Non-zero = foreground.
    connectivity : {8, 4}
        8 (default) joins diagonal neighbours.

    Returns
    -------
    labels : (M, N) ndarray of int32
        0 = background, objects numbered 1..n.
    n : int
    """
    from scipy import ndimage

    if connectivity not in (4, 8):
        raise ValueError("connectivity must be 4 or 8")
    structure = np.ones((3, 3), bool) if connectivity == 8 else None
    labels, n = ndimage.label(_as_bool("mask", mask, ndim=2), structure=structure)
    return labels.astype(np.int32, copy=False), int(n)


def _object_overlap(labels, other_fg, valid):
    """Per label (index 0 unused): number of valid pixels, and of those also foreground in ``other_fg``."""
    n = int(labels.max()) if labels.size else 0
    lab = labels if valid is None else np.where(valid, labels, 0)
    size = np.bincount(lab.ravel(), minlength=n + 1)
    hit = np.bincount(lab[other_fg].ravel(), minlength=n + 1)
    size[0] = hit[0] = 0
    return size, hit


def _matched(size, hit, min_overlap):
    present = size > 0
    frac = np.divide(hit, size, out=np.zeros(size.shape, float), where=present)
    return present, present & (hit > 0) & (frac >= min_overlap)


def object_metrics_from_labels(pred_labels, truth_labels, valid=None, *, min_overlap: float = 0.0) -> dict:
    """Object-level detection counts from label images (0 = background, 1..n = objects).

    Use this when objects are polygons rasterized with one value each; use
    :func:`object_metrics` for binary masks.  Only valid pixels count; an object
    with no valid pixel is ignored (not counted at all).

    A truth object is **detected** when at least one of its valid pixels is
    predicted and the predicted share of its valid pixels is ``>= min_overlap``.
    A predicted object is a **false alarm** when it touches no truth pixel or
    the share of its valid pixels on truth is ``< min_overlap``.  The default
    ``min_overlap=0`` means "any overlap".

    Returns
    -------
    dict
        ``n_truth, n_detected, detection_rate`` (``nan`` when ``n_truth == 0``),
        ``n_pred_objects, n_false_alarms, false_alarm_fraction`` (``nan`` when no
        predicted object) and ``min_overlap``.
    """
    pred_labels = np.asarray(pred_labels)
    truth_labels = np.asarray(truth_labels)
    if pred_labels.shape != truth_labels.shape:
        raise ValueError(f"label images differ in shape: {pred_labels.shape} vs {truth_labels.shape}")
    if not 0.0 <= float(min_overlap) <= 1.0:
        raise ValueError(f"min_overlap must lie in [0, 1], got {min_overlap}")
    for name, lab in (("pred_labels", pred_labels), ("truth_labels", truth_labels)):
        if lab.dtype.kind not in "iub" or (lab.size and lab.min() < 0):
            raise ValueError(f"{name} must hold non-negative integer labels")
    valid = _valid_or_none(valid, pred_labels.shape)
    pred_fg = pred_labels > 0
    truth_fg = truth_labels > 0
    if valid is not None:
        pred_fg &= valid
        truth_fg &= valid
    t_size, t_hit = _object_overlap(truth_labels.astype(np.int64, copy=False), pred_fg, valid)
    p_size, p_hit = _object_overlap(pred_labels.astype(np.int64, copy=False), truth_fg, valid)
    t_present, t_detected = _matched(t_size, t_hit, float(min_overlap))
    p_present, p_true = _matched(p_size, p_hit, float(min_overlap))
    n_truth = int(t_present.sum())
    n_detected = int(t_detected.sum())
    n_pred = int(p_present.sum())
    n_false = n_pred - int(p_true.sum())
    return {
        "n_truth": n_truth,
        "n_detected": n_detected,
        "detection_rate": n_detected / n_truth if n_truth else float("nan"),
        "n_pred_objects": n_pred,
        "n_false_alarms": n_false,
        "false_alarm_fraction": n_false / n_pred if n_pred else float("nan"),
        "min_overlap": float(min_overlap),
    }


def object_metrics(pred, truth, valid=None, *, min_overlap: float = 0.0, connectivity: int = 8) -> dict:
    """Object-level detection rate and false alarms of binary masks.

    Objects are the connected components (8-connectivity by default) of the
    **whole** masks, so a slide crossed by an invalid stripe stays one object;
    see :func:`object_metrics_from_labels` for the matching rules and the
    returned keys.

    Examples
    --------
    >>> truth = [[1, 0, 0, 1], [0, 0, 0, 0], [1, 0, 0, 0]]
    >>> pred = [[1, 0, 0, 0], [0, 0, 0, 0], [0, 0, 1, 0]]
    >>> m = object_metrics(pred, truth)
    >>> m["n_detected"], m["n_truth"], m["n_false_alarms"]
    (1, 3, 1)
    """
    pred_labels, _ = label_objects(pred, connectivity)
    truth_labels, _ = label_objects(truth, connectivity)
    return object_metrics_from_labels(pred_labels, truth_labels, valid, min_overlap=min_overlap)


# --------------------------------------------------------------------------- files


@dataclass(frozen=True)
class _Grid:
    crs: object  # rasterio CRS or None
    transform: object  # affine.Affine
    width: int
    height: int
    source: str

    @classmethod
    def of(cls, ds, source) -> _Grid:
        return cls(ds.crs, ds.transform, int(ds.width), int(ds.height), str(source))

    @property
    def bounds(self):
        from rasterio.transform import array_bounds

        return array_bounds(self.height, self.width, self.transform)  # (west, south, east, north)

    def same_as(self, other: _Grid) -> bool:
        if (self.width, self.height) != (other.width, other.height):
            return False
        if not self.transform.almost_equals(other.transform, precision=1e-9 * max(1.0, abs(self.transform.a))):
            return False
        return self.crs is None or other.crs is None or self.crs == other.crs

    def describe(self) -> dict:
        return {
            "source": self.source,
            "crs": self.crs.to_string() if self.crs else None,
            "transform": [float(v) for v in tuple(self.transform)[:6]],
            "width": self.width,
            "height": self.height,
        }


def _require_file(path, role: str) -> Path:
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"{role} file {p} does not exist; check the path")
    return p


def check_readable(path: str | os.PathLike, role: str = "reference") -> Path:
    """Read ``path`` (a GeoPackage of polygons or a raster) completely once; ValueError naming it if it cannot.

    Meant to run before a long computation that ends with an evaluation, so an
    unreadable reference fails first.  Rasters are read block by block.
    """
    import rasterio

    from .gpkg import GeoPackageError, read_features

    p = _require_file(path, role)
    try:
        if _is_geopackage(p):
            read_features(p)
            return p
        with _open_raster(p, role) as ds:
            for _, window in ds.block_windows(1):
                ds.read(1, window=window)
    except GeoPackageError as exc:
        raise ValueError(f"{role} file {p} cannot be read: {exc}") from None
    except (rasterio.errors.RasterioError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"{role} file {p} cannot be read ({first}); check the file or give another one") from None
    return p


def _is_geopackage(path: Path) -> bool:
    if path.suffix.lower() == ".gpkg":
        return True
    with open(path, "rb") as fh:
        head = fh.read(72)
    return head[:16] == _SQLITE_MAGIC and head[68:72] == b"GPKG"


def _open_raster(path: Path, role: str):
    import rasterio
    from rasterio.errors import RasterioIOError

    try:
        return rasterio.open(path)
    except RasterioIOError as exc:
        raise ValueError(f"{role} file {path} is neither a GeoPackage nor a readable raster ({exc})") from None


def _raster_kind(values: np.ndarray, ok: np.ndarray) -> str:
    if values.dtype.kind != "f":
        return "mask"
    v = values[ok & np.isfinite(values)]
    return "mask" if np.isin(v, (0.0, 1.0)).all() else "score"


def detect_kind(path: str | os.PathLike) -> str:
    """``"polygons"`` (GeoPackage, by extension or SQLite/GPKG magic), else ``"score"`` or ``"mask"``.

    A raster is a score when its dtype is floating point and its valid finite
    values include anything other than 0 and 1; otherwise it is a mask
    (non-zero = landslide).
    """
    p = _require_file(path, "input")
    if _is_geopackage(p):
        return "polygons"
    with _open_raster(p, "input") as ds:
        m = ds.read(1, masked=True)
    return _raster_kind(np.asarray(m.data), ~np.ma.getmaskarray(m))


def _check_overlap(src: _Grid, dst: _Grid, role: str) -> None:
    from rasterio.warp import transform_bounds

    if (src.crs is None) != (dst.crs is None):
        raise ValueError(
            f"{role} raster {src.source} and the evaluation grid {dst.source} differ in grid and one has no CRS; "
            "assign a CRS to both rasters"
        )
    b = src.bounds
    if src.crs is not None and src.crs != dst.crs:
        b = transform_bounds(src.crs, dst.crs, *b)
    g = dst.bounds
    if b[0] >= g[2] or b[2] <= g[0] or b[1] >= g[3] or b[3] <= g[1]:
        raise ValueError(
            f"{role} raster {src.source} does not overlap the evaluation grid {dst.source}; "
            "check that both cover the same area and carry the right CRS"
        )


def _read_on_grid(path: Path, role: str, grid: _Grid | None, resampling: str):
    """Band 1 of a raster as (values, ok, grid); reprojected onto ``grid`` when it differs."""
    from rasterio.enums import Resampling
    from rasterio.warp import reproject

    with _open_raster(path, role) as ds:
        src_grid = _Grid.of(ds, path)
        if grid is None or src_grid.same_as(grid):
            m = ds.read(1, masked=True)
            return np.asarray(m.data), ~np.ma.getmaskarray(m), src_grid
        _check_overlap(src_grid, grid, role)
        src = ds.read(1, masked=True).astype(np.float32).filled(np.nan)
        dst = np.full((grid.height, grid.width), np.nan, np.float32)
        reproject(
            src,
            dst,
            src_transform=ds.transform,
            src_crs=ds.crs,
            src_nodata=np.nan,
            dst_transform=grid.transform,
            dst_crs=grid.crs,
            dst_nodata=np.nan,
            resampling=getattr(Resampling, resampling),
        )
        return dst, np.isfinite(dst), grid


def _grid_of(path: Path, role: str) -> _Grid:
    with _open_raster(path, role) as ds:
        return _Grid.of(ds, path)


def _rasterize_polygons(path: Path, role: str, grid: _Grid) -> tuple[np.ndarray, int, int]:
    """Label image (feature i -> i+1; later features win overlaps), n polygons, n without any pixel."""
    from rasterio.crs import CRS
    from rasterio.features import rasterize
    from rasterio.warp import transform_geom

    from .gpkg import read_features

    features, crs = read_features(path)
    geoms = [f.geometry for f in features if f.geometry is not None]
    labels = np.zeros((grid.height, grid.width), np.int32)
    if not geoms:
        return labels, 0, 0
    if crs is not None and grid.crs is not None and CRS.from_user_input(crs) != grid.crs:
        geoms = [transform_geom(CRS.from_user_input(crs), grid.crs, g) for g in geoms]
    rasterize(
        ((g, i + 1) for i, g in enumerate(geoms)),
        out=labels,
        transform=grid.transform,
        all_touched=False,
        dtype="int32",
    )
    present = np.bincount(labels.ravel(), minlength=len(geoms) + 1)[1:] > 0
    n_on_grid = int(present.sum())
    if n_on_grid == 0:
        raise ValueError(
            f"none of the {len(geoms)} polygons of {role} file {path} covers a pixel centre of the evaluation grid "
            f"{grid.source}; check that they cover the same area and carry the right CRS"
        )
    return labels, len(geoms), len(geoms) - n_on_grid


def _json_float(v):
    return None if isinstance(v, float) and not math.isfinite(v) else v


def _clean(obj):
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    return _json_float(obj)


def evaluate_files(
    pred: str | os.PathLike,
    truth: str | os.PathLike,
    *,
    kind: str = "auto",
    threshold: float | None = None,
    valid: str | os.PathLike | None = None,
    grid: str | os.PathLike | None = None,
    min_overlap: float = 0.0,
    auprc_bins: int | None = None,
) -> dict:
    """Evaluate a landslide map file against a truth file; return a JSON-serialisable report.

    Parameters
    ----------
    pred : path
        One of: a **mask** raster (non-zero = landslide, nodata pixels are
        ignored), a **score** raster (float; predicted where
        ``score >= threshold``; AUPRC is computed from the scores), or
        **polygons** in a GeoPackage (first layer; one object per polygon).
    truth : path
        A mask raster (uint8 0/1, nodata ignored) or a GeoPackage of polygons.
    kind : {"auto", "mask", "score", "polygons"}
        Kind of ``pred``; ``"auto"`` uses :func:`detect_kind`.
    threshold : float, optional
        Score threshold in the score's own units (probability, dB).  Default:
        0.5 when all valid scores lie in [0, 1]; otherwise it is required.
        Not allowed for masks and polygons.
    valid : path, optional
        Raster (non-zero = evaluate) or GeoPackage (inside polygons =
        evaluate) restricting the evaluated area.
    grid : path, optional
        Raster whose grid everything is evaluated on.  Required when both
        inputs are polygons.  Default: the truth raster's grid, else the
        prediction raster's grid.
    min_overlap : float
        See :func:`object_metrics_from_labels`.
    auprc_bins : int, optional
        Histogram-binned AUPRC for huge rasters (default exact).

    Returns
    -------
    dict
        ``inputs`` (paths, kinds, threshold and its origin), ``grid``,
        ``n_pixels``, ``n_valid``, ``pixel`` (see :func:`pixel_metrics`),
        ``ranking`` (``average_precision``, ``no_skill``, ``best_f1``; ``None``
        unless ``pred`` is a score), ``objects`` (see
        :func:`object_metrics_from_labels`, plus ``truth_polygons_without_pixel``).
        Undefined values are ``None``.

    Notes
    -----
    When raster grids differ, the prediction (and the valid raster) are
    reprojected onto the evaluation grid with ``rasterio.warp.reproject``:
    nearest for masks, bilinear for scores; pixels it does not cover are
    invalid.  Polygons are rasterized with ``all_touched=False`` (a pixel is
    inside when its centre is), after reprojection to the grid's CRS.  The
    whole grid is held in memory (float32 scores + int32 labels: about 10
    bytes per pixel).

    Raises
    ------
    ValueError
        With one sentence saying what to do: missing or unreadable file, grids
        that do not overlap, empty valid area, missing threshold, ...
    """
    pred_p = _require_file(pred, "prediction")
    truth_p = _require_file(truth, "truth")
    valid_p = _require_file(valid, "valid-area") if valid is not None else None
    grid_p = _require_file(grid, "grid") if grid is not None else None
    if kind not in ("auto", *KINDS):
        raise ValueError(f"kind must be one of auto, {', '.join(KINDS)}; got {kind!r}")

    truth_is_poly = _is_geopackage(truth_p)
    pred_is_poly = kind == "polygons" or (kind == "auto" and _is_geopackage(pred_p))
    if kind in ("mask", "score") and _is_geopackage(pred_p):
        raise ValueError(f"prediction {pred_p} is a GeoPackage; use kind 'polygons' or 'auto'")
    if kind == "polygons" and not _is_geopackage(pred_p):
        raise ValueError(f"prediction {pred_p} is not a GeoPackage; use kind 'mask', 'score' or 'auto'")

    # Evaluation grid.
    if grid_p is not None:
        eval_grid = _grid_of(grid_p, "grid")
    elif not truth_is_poly:
        eval_grid = _grid_of(truth_p, "truth")
    elif not pred_is_poly:
        eval_grid = _grid_of(pred_p, "prediction")
    else:
        raise ValueError("both prediction and truth are polygons; give a reference raster with grid= (--grid)")
    shape = (eval_grid.height, eval_grid.width)
    valid_mask = np.ones(shape, bool)

    # Truth.
    truth_info: dict = {"path": str(truth_p)}
    lost = 0
    if truth_is_poly:
        truth_labels, n_poly, lost = _rasterize_polygons(truth_p, "truth", eval_grid)
        truth_mask = truth_labels > 0
        truth_info.update(kind="polygons", n_polygons=n_poly)
    else:
        values, ok, _ = _read_on_grid(truth_p, "truth", eval_grid, "nearest")
        if _raster_kind(values, ok) == "score":
            raise ValueError(f"truth raster {truth_p} holds values other than 0 and 1; give a 0/1 landslide mask")
        if values.dtype.kind == "f":
            ok &= ~np.isnan(values)
        truth_mask = (values != 0) & ok
        valid_mask &= ok
        truth_labels = None
        truth_info.update(kind="mask")

    # Prediction.
    pred_info: dict = {"path": str(pred_p)}
    scores = None
    pred_labels = None
    if pred_is_poly:
        if threshold is not None:
            raise ValueError("a threshold applies only to score rasters; leave it out for polygons")
        pred_labels, n_poly, _ = _rasterize_polygons(pred_p, "prediction", eval_grid)
        pred_mask = pred_labels > 0
        pred_info.update(
            kind="polygons",
            kind_source="given" if kind != "auto" else "auto",
            n_polygons=n_poly,
        )
    else:
        pkind = kind if kind != "auto" else detect_kind(pred_p)
        values, ok, _ = _read_on_grid(
            pred_p,
            "prediction",
            eval_grid,
            "bilinear" if pkind == "score" else "nearest",
        )
        if values.dtype.kind == "f":
            ok &= np.isfinite(values)
        valid_mask &= ok
        pred_info.update(kind=pkind, kind_source="given" if kind != "auto" else "auto")
        if pkind == "score":
            scores = values
        else:
            if threshold is not None:
                raise ValueError(
                    f"prediction {pred_p} is a mask raster and a threshold applies only to scores; "
                    "leave it out or pass kind 'score'"
                )
            pred_mask = (values != 0) & ok

    # Valid area.
    if valid_p is not None:
        if _is_geopackage(valid_p):
            vlab, _, _ = _rasterize_polygons(valid_p, "valid-area", eval_grid)
            valid_mask &= vlab > 0
        else:
            vvals, vok, _ = _read_on_grid(valid_p, "valid-area", eval_grid, "nearest")
            valid_mask &= vok & (vvals != 0)
            if vvals.dtype.kind == "f":
                valid_mask &= ~np.isnan(vvals)
    n_valid = int(np.count_nonzero(valid_mask))
    if n_valid == 0:
        raise ValueError(
            "no pixel is valid in prediction, truth and valid area together; check nodata values, "
            "the valid-area file and that the inputs cover the same area"
        )

    ranking = None
    if scores is not None:
        if threshold is None:
            v = scores[valid_mask]
            lo, hi = float(v.min()), float(v.max())
            if lo < 0.0 or hi > 1.0:
                raise ValueError(
                    f"score raster {pred_p} has values from {lo:.4g} to {hi:.4g}, not a probability; "
                    "give a threshold in its units (e.g. --threshold 2.5 for an A_ratio in dB)"
                )
            threshold, origin = 0.5, "default for probabilities"
        else:
            origin = "given"
        threshold = float(threshold)
        pred_mask = scores >= threshold
        pred_info.update(threshold=threshold, threshold_source=origin)
        curve = precision_recall_curve(scores, truth_mask, valid_mask, bins=auprc_bins)  # one sort
        ranking = {
            "average_precision": _ap_from_curve(curve[0], curve[1]),
            "no_skill": no_skill_baseline(truth_mask, valid_mask),
            "best_f1": _best_f1_from_curve(*curve),
            "bins": auprc_bins,
        }
        del curve

    pixel = pixel_metrics(pred_mask, truth_mask, valid_mask)
    if pred_labels is None:
        pred_labels, _ = label_objects(pred_mask)
    if truth_labels is None:
        truth_labels, _ = label_objects(truth_mask)
    objects = object_metrics_from_labels(pred_labels, truth_labels, valid_mask, min_overlap=min_overlap)
    objects["truth_polygons_without_pixel"] = lost
    objects["object_definition"] = {
        "truth": "polygon" if truth_is_poly else "8-connected component",
        "pred": "polygon" if pred_is_poly else "8-connected component",
    }

    report = {
        "inputs": {
            "pred": pred_info,
            "truth": truth_info,
            "valid": str(valid_p) if valid_p else None,
            "grid": str(grid_p) if grid_p else None,
        },
        "grid": eval_grid.describe(),
        "n_pixels": int(shape[0] * shape[1]),
        "n_valid": n_valid,
        "pixel": pixel,
        "ranking": ranking,
        "objects": objects,
    }
    return _clean(report)
