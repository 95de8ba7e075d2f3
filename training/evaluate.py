"""Evaluation across events: the ONNX model vs the A_ratio baseline on whole simulated scenes.

Per event and pooled: precision, recall, F1, IoU, MCC (at the model's declared
threshold), AUPRC with its no-skill baseline, best-F1 threshold, object
detection rate.  The model runs per orbit pass (tiled, overlapping tiles
blended) and the passes' probabilities are averaged, as the A_ratio method
averages ascending and descending ratios.  The A_ratio method (core.detect with
its defaults) is scored on the same events twice: its candidate polygons at the
default threshold, and its ratio raster at the threshold that maximises F1 on
that very event (an optimistic, oracle baseline).  Pixels the A_ratio method
masks (slope, nodata) count as "not landslide" for it, never as skipped.

Writes ``report.json``, ``report.md`` and ``pr_curve.png`` (drawn with numpy).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from landslide_sar_plugin.core import metrics as M  # noqa: N812
from landslide_sar_plugin.core.png import write_png

from .dataset import IGNORE, EventSource, load_event_composites, normalise, rasterize_labels

# --------------------------------------------------------------------------- inference on a scene


def _blend_window(tile: int, overlap: int) -> np.ndarray:
    ramp = np.ones(tile, np.float32)
    if overlap > 0:
        r = (np.arange(overlap, dtype=np.float32) + 0.5) / overlap
        ramp[:overlap] = r
        ramp[-overlap:] = r[::-1]
    return np.outer(ramp, ramp).astype(np.float32)


def predict_array(run, x: np.ndarray, tile: int, overlap: int, batch: int = 8) -> np.ndarray:
    """Probability (rows, cols) of a normalised composite ``x`` (bands, rows, cols) with ``run(batch) -> probs``."""
    _, h, w = x.shape
    stride = max(1, tile - overlap)
    ph = max(tile, math.ceil(max(h - tile, 0) / stride) * stride + tile)
    pw = max(tile, math.ceil(max(w - tile, 0) / stride) * stride + tile)
    xp = np.pad(x, ((0, 0), (0, ph - h), (0, pw - w)), mode="reflect" if min(h, w) > 1 else "constant")
    acc = np.zeros((ph, pw), np.float32)
    wsum = np.zeros((ph, pw), np.float32)
    win = _blend_window(tile, overlap)
    offs = [(r, c) for r in range(0, ph - tile + 1, stride) for c in range(0, pw - tile + 1, stride)]
    for i in range(0, len(offs), batch):
        part = offs[i:i + batch]
        probs = run(np.stack([xp[:, r:r + tile, c:c + tile] for r, c in part]).astype(np.float32))
        for (r, c), p in zip(part, probs):
            acc[r:r + tile, c:c + tile] += p[0] * win
            wsum[r:r + tile, c:c + tile] += win
    return (acc / np.maximum(wsum, 1e-6))[:h, :w]


def onnx_runner(session):
    name_in = session.get_inputs()[0].name
    return lambda xb: session.run(None, {name_in: xb})[0]


def torch_runner(model):
    import torch

    def run(xb):
        with torch.no_grad():
            return torch.sigmoid(model.eval()(torch.from_numpy(xb))).numpy()
    return run


def scene_probability(run, composites: dict, norm: dict, tile: int, overlap: int, fill: float = 0.0) -> np.ndarray:
    """Per-pass probabilities averaged over the passes (NaN where no pass has data)."""
    probs = []
    for p in sorted(composites):
        comp = composites[p]
        pr = predict_array(run, normalise(comp, norm, fill), tile, overlap)
        pr[~np.isfinite(comp).all(axis=0)] = np.nan
        probs.append(pr)
    with np.errstate(invalid="ignore"):
        stack = np.stack(probs)
        n = np.isfinite(stack).sum(0)
        return np.where(n > 0, np.nansum(stack, 0) / np.maximum(n, 1), np.nan).astype(np.float32)


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


def a_ratio_baseline(src: EventSource, grid, truth, valid, workdir: Path) -> tuple[dict, np.ndarray]:
    """The A_ratio method with its defaults on the event: candidates at the default threshold, ratio raster at
    its best-F1 threshold.  Returns (summary, ratio raster on ``grid``)."""
    from rasterio.features import rasterize
    from rasterio.warp import transform_geom

    from landslide_sar_plugin.core.catalog import parse_time
    from landslide_sar_plugin.core.detect import DetectParams, run_detection
    from landslide_sar_plugin.core.gpkg import read_features
    from landslide_sar_plugin.core.grid import RasterOnGrid

    params = DetectParams(event_time=parse_time(src.event_time), event_id=src.event_id)
    res = run_detection(src.scenes_dir, src.dem_path, workdir, params)
    with RasterOnGrid(res.files["a_ratio"], 1, grid) as rd:
        from rasterio.windows import Window
        ratio = rd.read(Window(0, 0, grid.width, grid.height))
    feats, crs = read_features(res.files["candidates"])
    geoms = [f.geometry for f in feats if f.geometry]
    if geoms and crs and grid.crs != crs:
        geoms = [transform_geom(crs, grid.crs, g) for g in geoms]
    cand = (rasterize([(g, 1) for g in geoms], out_shape=(grid.height, grid.width), transform=grid.transform,
                      fill=0, dtype="uint8") > 0) if geoms else np.zeros((grid.height, grid.width), bool)
    summary = score_summary(ratio, truth, valid, None)
    summary["threshold_db"] = res.threshold_db
    summary["default"] = {"pixel": M.pixel_metrics(cand, truth, valid),
                          "objects": M.object_metrics(cand & valid, truth & valid)}
    min_px = max(1, int(math.ceil(params.min_area_m2 / grid.pixel_size ** 2)))
    sweep = a_ratio_sweep(ratio, truth, valid, min_px)
    summary["best_with_min_area"] = sweep
    # the stronger of: the raw ratio at its best threshold, or the method (ratio >= t, small objects removed)
    # at its best threshold; both chosen on the evaluated event itself
    summary["best"] = dict(summary["best_f1"], rule="ratio >= t")
    if np.isfinite(sweep["f1"]) and sweep["f1"] > (summary["best"]["f1"] or 0):
        summary["best"] = dict(sweep, rule=f"ratio >= t, objects < {min_px} px removed")
    return summary, ratio


SWEEP_DB = np.arange(0.25, 6.01, 0.125)


def _sweep_counts(ratio, truth, valid, min_px: int, thresholds) -> list[dict]:
    from scipy import ndimage

    fin = np.isfinite(ratio)
    out = []
    for t in thresholds:
        pred = fin & (np.where(fin, ratio, -np.inf) >= t)
        if min_px > 1 and pred.any():
            lab, _ = ndimage.label(pred, structure=np.ones((3, 3), bool))
            pred = (np.bincount(lab.ravel()) >= min_px)[lab] & pred
        out.append(M.confusion_counts(pred, truth, valid))
    return out


def _best_of_counts(counts: list[dict], thresholds) -> dict:
    best = {"threshold": math.nan, "f1": math.nan, "precision": math.nan, "recall": math.nan}
    for t, c in zip(thresholds, counts):
        m = M.scores_from_counts(**c)
        if not np.isfinite(best["f1"]) or m["f1"] > best["f1"]:
            best = {"threshold": float(t), "f1": m["f1"], "precision": m["precision"], "recall": m["recall"]}
    return best


def a_ratio_sweep(ratio, truth, valid, min_px: int, thresholds=None) -> dict:
    """Best F1 of the A_ratio method's own rule (exceedance, objects smaller than the minimum area removed)
    over a threshold sweep (dB)."""
    thresholds = SWEEP_DB if thresholds is None else thresholds
    return _best_of_counts(_sweep_counts(ratio, truth, valid, min_px, thresholds), thresholds)


def evaluate_events(run, sources: Sequence[EventSource], recipe, norm: dict, *, tile: int, overlap: int,
                    threshold: float, workdir: Path, baseline: bool = True, log=print,
                    pixel_size: float = 10.0) -> dict:
    """Model (and A_ratio) metrics per event and pooled; keeps PR curves for plotting under ``_curves``."""
    workdir = Path(workdir)
    per_event, pooled = {}, {"model": [], "a_ratio": [], "truth": [], "valid": []}
    curves = {}
    for src in sources:
        ev = load_event_composites(src.scenes_dir, src.dem_path, src.event_time, recipe, event_id=src.event_id,
                                   pixel_size=pixel_size)
        labels, _ = rasterize_labels(src.labels_path, ev.grid, event_id=src.label_event_id)
        truth, valid = labels == 1, labels != IGNORE
        prob = scene_probability(run, ev.composites, norm, tile, overlap)
        rec = {"regime": src.regime, "passes": sorted(ev.composites), "n_pixels": int(valid.sum()),
               "landslide_pixels": int(truth.sum()), "model": score_summary(prob, truth, valid, threshold)}
        pooled["model"].append(_filled(prob).ravel())
        pooled["truth"].append(truth.ravel())
        pooled["valid"].append(valid.ravel())
        if baseline:
            rec["a_ratio"], ratio = a_ratio_baseline(src, ev.grid, truth, valid, workdir / f"a_ratio_{src.event_id}")
            pooled["a_ratio"].append(ratio.ravel())
            min_px = max(1, int(math.ceil(500.0 / ev.grid.pixel_size ** 2)))
            pooled.setdefault("sweep", []).append(_sweep_counts(ratio, truth, valid, min_px, SWEEP_DB))
        per_event[src.event_id] = rec
        m = rec["model"]
        line = (f"  {src.event_id}: model F1 {m['pixel']['f1']:.3f} (best {m['best_f1']['f1']:.3f}) "
                f"AUPRC {m['auprc']:.3f}")
        if baseline:
            a = rec["a_ratio"]
            line += (f" | A_ratio F1 default {a['default']['pixel']['f1']:.3f} best {a['best']['f1']:.3f} "
                     f"AUPRC {a['auprc']:.3f}")
        log(line + f" | no-skill {m['no_skill_auprc']:.4f}")
    truth = np.concatenate(pooled["truth"])
    valid = np.concatenate(pooled["valid"])
    pm = np.concatenate(pooled["model"])
    out = {"events": per_event, "pooled": {"model": score_summary(pm, truth, valid, threshold)}}
    curves["model"] = M.precision_recall_curve(pm, truth, valid, bins=2000)
    if baseline:
        # each event's ratio is filled separately (masked = below its own minimum) before pooling
        pr = np.concatenate([_filled(r) for r in pooled["a_ratio"]])
        pa = score_summary(pr, truth, valid, None)
        agg = {k: sum(e["a_ratio"]["default"]["pixel"][k] for e in per_event.values())
               for k in ("tp", "fp", "fn", "tn")}
        pa["default"] = {"pixel": {**agg, **M.scores_from_counts(**agg)}}
        pa["best"] = dict(pa["best_f1"], rule="ratio >= t (one threshold for all events)")
        summed = [{k: sum(ev_counts[i][k] for ev_counts in pooled["sweep"]) for k in ("tp", "fp", "fn", "tn")}
                  for i in range(len(SWEEP_DB))]
        sweep = _best_of_counts(summed, SWEEP_DB)
        pa["best_with_min_area"] = sweep
        if np.isfinite(sweep["f1"]) and sweep["f1"] > (pa["best"]["f1"] or 0):
            pa["best"] = dict(sweep, rule="ratio >= t, small objects removed (one threshold for all events)")
        out["pooled"]["a_ratio"] = pa
        curves["a_ratio"] = M.precision_recall_curve(pr, truth, valid, bins=2000)
    nt = sum(e["model"]["objects"]["n_truth"] for e in per_event.values())
    nd = sum(e["model"]["objects"]["n_detected"] for e in per_event.values())
    out["pooled"]["model"]["objects"] = {"n_truth": nt, "n_detected": nd, "detection_rate": nd / nt if nt else math.nan}
    out["_curves"] = curves
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


def results_table(results: dict) -> str:
    rows = ["| event | regime | landslide px | model F1 @thr | model best F1 | A_ratio F1 default | "
            "A_ratio best F1 | model AUPRC | A_ratio AUPRC | no-skill AUPRC | model objects detected |",
            "|---|---|---|---|---|---|---|---|---|---|---|"]
    items = list(results["events"].items()) + [("**pooled**", results["pooled"])]
    for eid, e in items:
        m = e["model"]
        a = e.get("a_ratio")
        obj = m.get("objects", {})
        rows.append("| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |".format(
            eid, e.get("regime", ""), e.get("landslide_pixels", ""), _f(m["pixel"]["f1"]), _f(m["best_f1"]["f1"]),
            _f(a["default"]["pixel"]["f1"]) if a else "-", _f(a["best"]["f1"]) if a else "-", _f(m["auprc"]),
            _f(a["auprc"]) if a else "-", _f(m["no_skill_auprc"], 4),
            f"{obj.get('n_detected', '')}/{obj.get('n_truth', '')} ({_f(obj.get('detection_rate'), 2)})"))
    return "\n".join(rows)


def write_report(results: dict, out_dir: str | Path, *, title: str, context: dict) -> dict:
    """``report.json``, ``report.md`` and ``pr_curve.png`` into ``out_dir``; returns the JSON document."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    no_skill = results["pooled"]["model"]["no_skill_auprc"]
    write_png(out / "pr_curve.png", draw_pr_plot(results.get("_curves", {}), no_skill))
    doc = _clean({**context, "results": results})
    (out / "report.json").write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    pm = results["pooled"]["model"]
    md = [f"# {title}", "", "ALL DATA SYNTHETIC (simulated Sentinel-1 scenes).", "",
          f"Split: {context.get('split', 'n/a')}", "",
          f"Model threshold {_f(pm.get('threshold'))} (best F1 on the validation events, never the test events). "
          "A_ratio: core.detect defaults; 'best' = the ratio threshold maximising F1 on that very event (oracle).",
          "", results_table(results), "", "![precision-recall](pr_curve.png)",
          "", "PR plot: red = model, blue = A_ratio, grey dashed = no-skill (pooled over the test events).", ""]
    (out / "report.md").write_text("\n".join(md), encoding="utf-8")
    return doc
