"""Real-background benchmark of the MODEL beside A_ratio, on the cases of ``make bench-real`` (same code).

The cases are :func:`core.simulate.imprint.benchmark_cases` (real NASA OPERA RTC-S1 bursts; imprinted
slides are SYNTHETIC).  Per case both methods run through the plugin's own engine: A_ratio with the
current :class:`~core.detect.DetectParams` defaults (scored exactly as ``bench_real.py`` scores them) and
the model (``--model``, default the shipped one) at its own threshold, scored by the same functions:
pixel F1 of the candidate polygons against the truth on imprinted cases, the share of land inside
candidates on no-change cases, and each method's oracle (its best threshold on that very case).
Writes ``bench/real_model.json`` and a Markdown table beside it.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "bench"))

import bench_real  # noqa: E402

from landslide_sar_plugin.core import metrics  # noqa: E402
from landslide_sar_plugin.core.detect import DetectParams, run_detection  # noqa: E402
from landslide_sar_plugin.core.detect_model import run_model_detection  # noqa: E402
from landslide_sar_plugin.core.simulate import imprint  # noqa: E402

MODEL = ROOT / "landslide_sar_plugin" / "models" / "landslide_unet.onnx"
PROB_THRESHOLDS = np.round(np.arange(0.05, 0.951, 0.025), 3)


def model_oracle(prob_path: Path, truth_path: Path, min_area_m2: float) -> dict:
    """Best pixel F1 of the model's candidates rule over probability thresholds, on this case itself."""
    import rasterio
    from scipy import ndimage

    with rasterio.open(prob_path) as src:
        prob = src.read(1).astype(np.float64)
        px = abs(src.transform.a)
    with rasterio.open(truth_path) as src:
        truth = src.read(1) > 0
    min_px = min_area_m2 / (px * px)
    best = {"f1": 0.0, "threshold": None}
    for t in PROB_THRESHOLDS:
        pred = np.nan_to_num(prob, nan=-1.0) >= t
        lab, n = ndimage.label(pred)
        if n:
            pred = (np.bincount(lab.ravel()) >= min_px)[lab] & pred
        f1 = metrics.pixel_metrics(pred, truth)["f1"]
        if f1 > best["f1"]:
            best = {"f1": float(f1), "threshold": float(t)}
    return best


def run_case(spec, real_root: Path, work: Path, model: Path) -> dict:
    stack = imprint.read_opera_burst(real_root / spec.burst)
    case = imprint.write_case(spec, stack, work / spec.name / "case")
    params = DetectParams(event_time=case.event_time, pre_range=case.pre_range, post_range=case.post_range)
    land = case.land_mask if spec.kind == "no_change" else None
    out = {"case": spec.name, "kind": spec.kind, "role": spec.role, "burst": spec.burst,
           "polarisations": list(spec.polarisations), "n_slides": case.n_slides}
    t0 = time.perf_counter()
    res = run_detection(case.scenes_dir, case.dem, work / spec.name / "a_ratio", params)
    out["a_ratio"] = bench_real.score_run(res, spec.kind, case.truth_mask, land, params)
    res = run_model_detection(case.scenes_dir, case.dem, work / spec.name / "model", params, model)
    row = {"threshold": res.threshold, "n_candidates": res.n_candidates, "pixel_size_m": res.grid.pixel_size,
           "model_choice": res.run_info.get("model_choice", {}).get("reason", "")}
    if land is not None:
        row["land_share_in_candidates"] = bench_real.land_share_in_candidates(res.files["candidates"], land)
    if case.truth_mask is not None:
        report = metrics.evaluate_files(res.files["candidates"], case.truth_mask)
        row.update(f1=report["pixel"]["f1"], precision=report["pixel"]["precision"],
                   recall=report["pixel"]["recall"], detection_rate=report["objects"]["detection_rate"])
        oracle = model_oracle(res.files["probability"], case.truth_mask, params.min_area_m2)
        row.update(oracle_f1=oracle["f1"], oracle_threshold=oracle["threshold"])
    out["model"] = row
    out["seconds"] = round(time.perf_counter() - t0, 2)
    return out


def summarise(rows) -> dict:
    out = {}
    for role in ("tuning", "report"):
        for method in ("model", "a_ratio"):
            imp = [r[method] for r in rows if r["role"] == role and r["kind"] == "imprinted"]
            nc = [r[method] for r in rows if r["role"] == role and r["kind"] == "no_change"]
            vh = [r[method] for r in rows if r["role"] == role and r["polarisations"] == ["VH"]]
            if imp:
                out[f"{role}_{method}_f1_mean"] = float(np.mean([x["f1"] for x in imp]))
                out[f"{role}_{method}_oracle_f1_mean"] = float(np.mean([x["oracle_f1"] for x in imp]))
            if nc:
                out[f"{role}_{method}_no_change_land_share_mean"] = float(
                    np.mean([x["land_share_in_candidates"] for x in nc]))
                out[f"{role}_{method}_no_change_land_share_max"] = float(
                    np.max([x["land_share_in_candidates"] for x in nc]))
            if vh:
                out[f"{role}_{method}_vh_only_f1_mean"] = float(np.mean([x["f1"] for x in vh]))
        if f"{role}_model_f1_mean" in out:
            out[f"{role}_model_minus_a_ratio_f1"] = out[f"{role}_model_f1_mean"] - out[f"{role}_a_ratio_f1_mean"]
    return out


def markdown(report) -> str:
    lines = ["| case | role | kind | model | A_ratio (defaults) | model oracle | A_ratio oracle |",
             "|---|---|---|---|---|---|---|"]
    for r in report["cases"]:
        if r["kind"] == "no_change":
            lines.append(f"| {r['case']} | {r['role']} | no change | {r['model']['land_share_in_candidates']:.2%} | "
                         f"{r['a_ratio']['land_share_in_candidates']:.2%} | | |")
        else:
            m, a = r["model"], r["a_ratio"]
            lines.append(f"| {r['case']} | {r['role']} | imprinted | {m['f1']:.3f} | {a['f1']:.3f} | "
                         f"{m['oracle_f1']:.3f} | {a['oracle_f1']:.3f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--real", type=Path, default=bench_real.DEFAULT_REAL, help="folder of the OPERA burst folders")
    ap.add_argument("--model", type=Path, default=MODEL)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "real_model.json")
    ap.add_argument("--roles", default="report", help="tuning,report (default: the held-out report cases)")
    ap.add_argument("--cases", default="", help="only cases whose name contains this text")
    args = ap.parse_args(argv)
    if not args.real.is_dir():
        print(f"error: the real stacks folder {args.real} does not exist; give --real DIR", file=sys.stderr)
        return 1
    import logging

    logging.getLogger("landslide_sar_plugin").setLevel(logging.ERROR)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-real-model-") as tmp:
        rows = [run_case(spec, args.real, Path(tmp), args.model) for spec in imprint.benchmark_cases(
            args.roles.split(",")) if args.cases in spec.name]
    report = {"benchmark": "real-background cases (real OPERA RTC-S1; imprinted slides SYNTHETIC): model vs A_ratio",
              "model": str(args.model), "a_ratio_defaults": {k: v for k, v in DetectParams(
                  event_time=__import__("datetime").datetime.now(__import__("datetime").timezone.utc)).to_dict().items()
                  if k in ("threshold_db", "percentile", "k_sigma", "detrend_radius_m", "ratio_sigma_m",
                           "speckle_sigma_m", "slope_min_deg", "min_area_m2", "polarisation")},
              "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "cases": rows,
              "summary": summarise(rows), "seconds": round(time.perf_counter() - t0, 1)}
    return bench_real.write_report(args.out, report, markdown)


if __name__ == "__main__":
    sys.exit(main())
