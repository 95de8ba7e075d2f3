"""Score a model and the A_ratio method per event of each generator family, through the plugin's own runs.

Every number here comes from the engine a user runs: :func:`core.detect_model.run_model_detection` (tiled,
blended inference, candidates at the model's threshold) and :func:`core.detect.run_detection` (A_ratio
with whatever :class:`~core.detect.DetectParams` defaults are current), on the event's scenes, DEM and
windows, at the pixel size a user gets (the finest input).  Per event with slides:

* ``f1``: pixel F1 of the candidate polygons against the truth (:func:`core.metrics.evaluate_files`,
  the computation of ``make bench-real``), for the model at its shipped threshold and for A_ratio at its
  defaults;
* ``best_f1``, ``auprc``, ``no_skill_auprc``: from the probability / ratio raster on the truth grid
  (pixels the method does not score count as "not landslide");
* ``one_pass``: on events with both orbit passes, the same for each pass alone (the scenes of one pass
  linked into a folder of their own), so the effect of the second pass shows: a good combination gains
  from it, the old mean of two near-binary probabilities lost.

Per no-change case (real backgrounds, nothing imprinted): the share of land inside candidate polygons.
"""

from __future__ import annotations

import math
import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from landslide_sar_plugin.core import catalog as cat
from landslide_sar_plugin.core import metrics as M  # noqa: N812
from landslide_sar_plugin.core.detect import DetectParams, run_detection
from landslide_sar_plugin.core.detect_model import run_model_detection
from landslide_sar_plugin.core.grid import Grid, RasterOnGrid

from .calibration import candidates_mask, reliability, sweep_case

PASS_SHORT = {"ASCENDING": "asc", "DESCENDING": "desc"}


def _grid_of(path: Path) -> Grid:
    import rasterio

    with rasterio.open(path) as src:
        return Grid(src.crs, src.transform, src.width, src.height)


def read_on(path: Path, grid: Grid) -> np.ndarray:
    from rasterio.windows import Window

    with RasterOnGrid(path, 1, grid) as rd:
        return rd.read(Window(0, 0, grid.width, grid.height)).astype(np.float64)


def reference(ev) -> tuple[Grid, np.ndarray | None, np.ndarray | None]:
    """(grid, truth, land) of an event: the truth's grid, or the land mask's for a no-change case."""
    if ev.truth_mask is not None and Path(ev.truth_mask).is_file():
        grid = _grid_of(Path(ev.truth_mask))
        truth = read_on(Path(ev.truth_mask), grid) > 0.5
    else:
        grid, truth = _grid_of(Path(ev.land_mask)), None
    land = read_on(Path(ev.land_mask), grid) > 0.5 if ev.land_mask else None
    return grid, truth, land


def params_for(ev, **overrides) -> DetectParams:
    return DetectParams(event_time=ev.event_time, pre_range=ev.pre_range, post_range=ev.post_range,
                        pixel_size=ev.pixel_size, event_id=ev.event_id, **overrides)


def pass_view(scenes_dir: Path, orbit_pass: str, out: Path) -> Path:
    """A folder with links to the scenes of one orbit pass (a one-pass stack of the same event)."""
    if out.is_dir():
        return out
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for scene in cat.read_catalog(scenes_dir).scenes:
        if scene.orbit_pass == orbit_pass:
            for p in scene.file_paths():
                os.symlink(Path(p).resolve(), tmp / Path(p).name)
    for side in ("scenes.csv", "scenes.json"):
        if (Path(scenes_dir) / side).is_file():
            shutil.copy(Path(scenes_dir) / side, tmp / side)
    os.replace(tmp, out)
    return out


def event_passes(ev) -> list[str]:
    return sorted({s.orbit_pass for s in cat.read_catalog(ev.scenes_dir).scenes})


def _min_px(grid: Grid, min_area_m2: float) -> int:
    return max(1, int(math.ceil(min_area_m2 / grid.pixel_size ** 2 - 1e-9)))


def score_raster(score: np.ndarray, truth: np.ndarray) -> dict:
    s = np.where(np.isfinite(score), score, np.nanmin(score) - 1.0 if np.isfinite(score).any() else 0.0)
    return {"auprc": M.average_precision(s, truth), "no_skill_auprc": M.no_skill_baseline(truth),
            "best_f1": M.best_f1_threshold(s, truth)}


def land_share(candidates: Path, land: np.ndarray, grid: Grid) -> float:
    from rasterio.features import rasterize

    from landslide_sar_plugin.core.gpkg import read_features

    feats, _ = read_features(candidates)
    geoms = [f.geometry for f in feats if f.geometry]
    if not geoms:
        return 0.0
    covered = rasterize(((g, 1) for g in geoms), out_shape=(grid.height, grid.width), transform=grid.transform,
                        fill=0, dtype="uint8") > 0
    return float((covered & land).sum() / max(land.sum(), 1))


def run_method(method: str, ev, scenes_dir: Path, out: Path, model_path: Path | None = None,
               threshold: float | None = None):
    """One run of ``method`` (``model`` / ``a_ratio``) on the event; returns the engine's result."""
    shutil.rmtree(out, ignore_errors=True)
    params = params_for(ev)
    if method == "model":
        return run_model_detection(scenes_dir, ev.dem, out, params, model_path, threshold=threshold)
    return run_detection(scenes_dir, ev.dem, out, params)


def score_run(res, method: str, ev, grid: Grid, truth, land) -> dict:
    key = "probability" if method == "model" else "a_ratio"
    row = {"threshold": float(res.threshold), "n_candidates": int(res.n_candidates),
           "pixel_size_m": float(res.grid.pixel_size)}
    score = read_on(res.files[key], grid)
    if truth is not None:
        rep = M.evaluate_files(res.files["candidates"], ev.truth_mask)
        row.update(f1=rep["pixel"]["f1"], precision=rep["pixel"]["precision"], recall=rep["pixel"]["recall"],
                   detection_rate=rep["objects"]["detection_rate"], **score_raster(score, truth))
    if land is not None and truth is None:
        row["land_share_in_candidates"] = land_share(res.files["candidates"], land, grid)
    if method == "model":
        row["_score"] = score.astype(np.float32)
    return row


def evaluate_event(ev, model_path: Path, work: Path, *, threshold: float | None = None, baseline: bool = True,
                   one_pass: bool = True, keep_scores: bool = False) -> dict:
    """Both methods on one event (and on each pass alone when it has two); see the module docstring."""
    grid, truth, land = reference(ev)
    rec = {"family": ev.family, "event_id": ev.event_id, "kind": ev.kind, "regime": ev.regime,
           "synthetic": ev.synthetic, "polarisations": list(ev.polarisations),
           "landslide_pixels": int(truth.sum()) if truth is not None else 0, "n_pixels": grid.width * grid.height}
    passes = event_passes(ev)
    rec["passes"] = [PASS_SHORT[p] for p in passes]
    methods = ["model"] + (["a_ratio"] if baseline else [])
    t0 = time.perf_counter()
    for method in methods:
        res = run_method(method, ev, ev.scenes_dir, work / ev.event_id / method, model_path, threshold)
        rec[method] = score_run(res, method, ev, grid, truth, land)
        if method == "model":
            rec["model_choice"] = res.run_info.get("model_choice", {}).get("reason", "")
    if one_pass and len(passes) > 1 and truth is not None:
        rec["one_pass"] = {}
        for p in passes:
            view = pass_view(ev.scenes_dir, p, work / ev.event_id / f"scenes_{PASS_SHORT[p]}")
            for method in methods:
                res = run_method(method, ev, view, work / ev.event_id / f"{method}_{PASS_SHORT[p]}", model_path,
                                 threshold)
                row = score_run(res, method, ev, grid, truth, land)
                row.pop("_score", None)
                rec["one_pass"].setdefault(method, {})[PASS_SHORT[p]] = row
    score = rec["model"].pop("_score")
    if keep_scores:
        rec["_score"], rec["_truth"], rec["_land"] = score, truth, land
        rec["_min_px"] = _min_px(grid, DetectParams.__dataclass_fields__["min_area_m2"].default)
    rec["seconds"] = round(time.perf_counter() - t0, 1)
    shutil.rmtree(work / ev.event_id, ignore_errors=True)
    return rec


def evaluate_events(events: Sequence, model_path: Path, work: Path, *, threshold: float | None = None,
                    baseline: bool = True, one_pass: bool = True, keep_scores: bool = False, log=print) -> list[dict]:
    out = []
    for ev in events:
        rec = evaluate_event(ev, model_path, work, threshold=threshold, baseline=baseline, one_pass=one_pass,
                             keep_scores=keep_scores)
        log("  " + case_line(rec))
        out.append(rec)
    return out


def case_line(rec: dict) -> str:
    m, a = rec["model"], rec.get("a_ratio")
    if rec["kind"] == "no_change" or "f1" not in m:
        text = f"{rec['event_id']}: no change, land in candidates model {m.get('land_share_in_candidates', 0):.2%}"
        return text + (f", A_ratio {a.get('land_share_in_candidates', 0):.2%}" if a else "")
    text = (f"{rec['event_id']}: model F1 {m['f1']:.3f} (best {m['best_f1']['f1']:.3f}, AUPRC {m['auprc']:.3f})")
    if a:
        text += f" | A_ratio F1 {a['f1']:.3f} (best {a['best_f1']['f1']:.3f}, AUPRC {a['auprc']:.3f})"
    return text + f" | no-skill {m['no_skill_auprc']:.4f} | {rec['seconds']} s"


# --------------------------------------------------------------------------- summaries


def _mean(vals):
    vals = [v for v in vals if v is not None and np.isfinite(v)]
    return float(np.mean(vals)) if vals else math.nan


def summarise(records: Sequence[dict]) -> dict:
    """Per family: mean F1 / best F1 / AUPRC of both methods, wins, the no-change false-alarm shares."""
    out = {}
    for fam in sorted({r["family"] for r in records}):
        rs = [r for r in records if r["family"] == fam]
        ev = [r for r in rs if "f1" in r["model"]]
        nc = [r for r in rs if "land_share_in_candidates" in r["model"]]
        s = {"n_events": len(ev), "n_no_change": len(nc)}
        for method in ("model", "a_ratio"):
            if not ev or method not in ev[0]:
                continue
            s[method] = {"mean_f1": _mean([r[method]["f1"] for r in ev]),
                         "mean_best_f1": _mean([r[method]["best_f1"]["f1"] for r in ev]),
                         "mean_auprc": _mean([r[method]["auprc"] for r in ev])}
            if nc:
                s[method]["no_change_land_share_mean"] = _mean([r[method]["land_share_in_candidates"] for r in nc])
                s[method]["no_change_land_share_max"] = float(max(r[method]["land_share_in_candidates"] for r in nc))
        if ev and "a_ratio" in ev[0]:
            s["mean_no_skill_auprc"] = _mean([r["model"]["no_skill_auprc"] for r in ev])
            s["model_auprc_above_a_ratio"] = f"{sum(r['model']['auprc'] > r['a_ratio']['auprc'] for r in ev)}/{len(ev)}"
            s["model_f1_minus_a_ratio"] = s["model"]["mean_f1"] - s["a_ratio"]["mean_f1"]
        out[fam] = s
    return out


def calibration_by_family(records: Sequence[dict]) -> dict:
    """Reliability of the model's probability per family, pooled over the events with truth."""
    out = {}
    for fam in sorted({r["family"] for r in records}):
        rs = [r for r in records if r["family"] == fam and r.get("_truth") is not None]
        if rs:
            out[fam] = reliability(np.concatenate([r["_score"].ravel() for r in rs]),
                                   np.concatenate([r["_truth"].ravel() for r in rs]))
    return out


def sweeps(records: Sequence[dict]) -> list[dict]:
    """Threshold sweeps of the kept probability rasters (:func:`.calibration.sweep_case`)."""
    return [sweep_case(r["_score"], r["_truth"], r["_land"] if r["_truth"] is None else None, r["_min_px"])
            for r in records]


def f1_at(records: Sequence[dict], threshold: float) -> list[float]:
    """Pixel F1 of every kept probability raster with truth at ``threshold`` (candidates rule)."""
    return [M.pixel_metrics(candidates_mask(r["_score"], threshold, r["_min_px"]), r["_truth"])["f1"]
            for r in records if r.get("_truth") is not None]
