"""Choose the A_ratio defaults on the real-background TUNING cases and simulated tuning events together.

The engine computes the masked A_ratio of each case once per (polarisation, speckle smoothing); the
rest of the threshold step (background detrend, ratio smoothing, threshold rule, minimum area) is
replayed in memory with the same core functions, over a grid of settings.  Only tuning cases are read
(``imprint.benchmark_cases(["tuning"])`` and the tuning events of ``bench_real.SIMULATED``); the report
cases are never looked at here.  The chosen setting is then checked end to end by ``make bench-real``.

Writes a JSON of every setting's scores and prints the best ones under the false-alarm constraint.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import Resampling
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "bench"))

import bench_real  # noqa: E402

from landslide_sar_plugin.core import detrend, metrics, simulate, threshold  # noqa: E402
from landslide_sar_plugin.core.candidates import ROBUST_SIGMA_PER_MAD  # noqa: E402
from landslide_sar_plugin.core.catalog import parse_time  # noqa: E402
from landslide_sar_plugin.core.detect import DetectParams, run_detection  # noqa: E402
from landslide_sar_plugin.core.simulate import imprint  # noqa: E402

POLS = ("VH", "both")
SPECKLE_M = (0.0, 10.0)
DETREND_M = (0.0, 500.0, 1000.0, 2000.0)
SMOOTH_M = (0.0, 15.0, 30.0, 45.0, 60.0)
MIN_AREA_M2 = (500.0, 1000.0, 2000.0, 3000.0)
RULES = ([("fixed", v) for v in np.round(np.arange(1.0, 5.01, 0.25), 2)]
         + [("percentile", v) for v in (95.0, 97.0, 98.0, 99.0, 99.5)]
         + [("k_sigma", v) for v in np.round(np.arange(1.5, 5.01, 0.25), 2)])


def _read(path: Path, shape=None) -> np.ndarray:
    with rasterio.open(path) as src:
        if shape is None:
            return src.read(1).astype(np.float64)
        return src.read(1, out_shape=shape, resampling=Resampling.nearest)


def score_arrays(work: Path, real_root: Path) -> list[dict]:
    """Masked A_ratio per case and (polarisation, speckle), with truth or land mask on the score grid."""
    items = []
    for spec in imprint.benchmark_cases(["tuning"]):
        stack = imprint.read_opera_burst(real_root / spec.burst)
        case = imprint.write_case(spec, stack, work / spec.name / "case")
        for pol, spk in itertools.product(POLS, SPECKLE_M):
            params = DetectParams(event_time=case.event_time, pre_range=case.pre_range, post_range=case.post_range,
                                  polarisation=pol, speckle_sigma_m=spk,
                                  speckle_radius_m=2 * spk, detrend_radius_m=0.0)
            res = run_detection(case.scenes_dir, case.dem, work / spec.name / f"{pol}_{spk:g}", params)
            score = _read(res.files["a_ratio"])
            ref = case.truth_mask if spec.kind == "imprinted" else case.land_mask
            items.append(dict(case=spec.name, kind=spec.kind, pol=pol, speckle=spk, px=stack.pixel_size,
                              score=score, ref=_read(ref, score.shape) > 0))
    for name, (role, overrides) in bench_real.SIMULATED.items():
        if role != "tuning":
            continue
        sim = simulate.simulate_event(work / name / "event", simulate.random_event_config(**overrides))
        event = parse_time(json.loads(sim.event_json_path.read_text())["event_time"])
        for pol, spk in itertools.product(POLS, SPECKLE_M):
            params = DetectParams(event_time=event, polarisation=pol, speckle_sigma_m=spk,
                                  speckle_radius_m=2 * spk, detrend_radius_m=0.0)
            res = run_detection(sim.out_dir / "scenes", sim.dem_path, work / name / f"{pol}_{spk:g}", params)
            score = _read(res.files["a_ratio"])
            items.append(dict(case=name, kind="simulated", pol=pol, speckle=spk, px=res.grid.pixel_size,
                              score=score, ref=_read(sim.truth_mask_path, score.shape) > 0))
    return items


def _detrended(score: np.ndarray, radius_m: float, px: float) -> np.ndarray:
    if radius_m <= 0:
        return score
    cell = detrend.cell_size_px(radius_m, px)
    cells = detrend.cell_medians(lambda _, r0, n: score[r0:r0 + n], *score.shape, cell)
    trend = detrend.disk_median(cells, radius_m / (cell * px))
    from rasterio.windows import Window

    return score - detrend.trend_block(trend, cell, Window(0, 0, score.shape[1], score.shape[0]))


def _smoothed(score: np.ndarray, sigma_m: float, px: float) -> np.ndarray:
    if sigma_m <= 0:
        return score
    out = threshold.smooth_ratio(score, sigma_m, 2 * sigma_m, px)
    out[~np.isfinite(score)] = np.nan
    return out


def _threshold(values: np.ndarray, rule: str, v: float) -> float:
    if rule == "fixed":
        return v
    if rule == "percentile":
        return float(np.percentile(values, v))
    center = float(np.median(values))
    return center + v * ROBUST_SIGMA_PER_MAD * float(np.median(np.abs(values - center)))


def evaluate_item(item: dict, det_m: float, smooth_m: float) -> dict:
    """Scores of every (rule, min area) for one case at one detrend and smoothing."""
    px = item["px"]
    work = _smoothed(_detrended(item["score"], det_m, px), smooth_m, px)
    valid = np.isfinite(work)
    values = work[valid]
    out = {}
    for rule, v in RULES:
        thr = _threshold(values, rule, v)
        exceed = valid & (np.nan_to_num(work, nan=-np.inf) > thr)
        labels, n = ndimage.label(exceed)
        sizes = np.bincount(labels.ravel()) * px * px
        for min_area in MIN_AREA_M2:
            kept = exceed & (sizes >= min_area)[labels] if n else exceed
            if item["kind"] == "no_change":
                land = item["ref"]
                out[(rule, v, min_area)] = float((kept & land).sum() / max(land.sum(), 1))
            else:
                out[(rule, v, min_area)] = float(metrics.pixel_metrics(kept, item["ref"])["f1"])
    return out


def sweep(items: list[dict]) -> list[dict]:
    results: dict[tuple, dict] = {}
    for item in items:
        for det_m, smooth_m in itertools.product(DETREND_M, SMOOTH_M):
            for (rule, v, min_area), value in evaluate_item(item, det_m, smooth_m).items():
                key = (item["pol"], item["speckle"], det_m, smooth_m, rule, v, min_area)
                results.setdefault(key, {"no_change": [], "imprinted": [], "simulated": []})[item["kind"]].append(
                    value)
    rows = []
    for key, vals in results.items():
        pol, spk, det_m, smooth_m, rule, v, min_area = key
        rows.append(dict(polarisation=pol, speckle_sigma_m=spk, detrend_radius_m=det_m, ratio_sigma_m=smooth_m,
                         rule=rule, value=float(v), min_area_m2=min_area,
                         fa_mean=float(np.mean(vals["no_change"])), fa_max=float(np.max(vals["no_change"])),
                         real_f1=float(np.mean(vals["imprinted"])), sim_f1=float(np.mean(vals["simulated"]))))
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--real", type=Path, default=bench_real.DEFAULT_REAL)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "tune_defaults.json")
    ap.add_argument("--max-fa", type=float, default=0.01, help="mean no-change land share allowed")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="tune-") as tmp:
        items = score_arrays(Path(tmp), args.real)
    rows = sweep(items)
    for r in rows:
        r["joint_f1"] = 0.5 * (r["real_f1"] + r["sim_f1"])
    ok = sorted((r for r in rows if r["fa_mean"] <= args.max_fa), key=lambda r: -r["joint_f1"])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"rows": rows, "max_fa": args.max_fa}, indent=0), encoding="utf-8")
    for r in ok[:25]:
        print(json.dumps(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
