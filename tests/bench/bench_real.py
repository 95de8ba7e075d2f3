"""Real-background benchmark: the A_ratio engine on real Sentinel-1 stacks (``make bench-real``).

Cases come from :func:`landslide_sar_plugin.core.simulate.imprint.benchmark_cases`: real NASA OPERA
RTC-S1 bursts (``../shared/realdata/opera_rtc_s1_california_t137`` or ``--real DIR``) split into pre and
post windows, either left as they are (**no-change** cases: every candidate is a false alarm; the score is
the share of land inside candidate polygons) or with SYNTHETIC landslides imprinted into the real
post-event scenes (**imprinted** cases: pixel F1 against the imprinted truth, next to the oracle, the best
threshold chosen on that case itself).  Cases are *tuning* (defaults may be chosen on them) or *report*
(held out).  Simulated events (SYNTHETIC, the project's simulator) are reported beside them.

Each setting is a set of A_ratio parameters: ``defaults`` (what a user gets), ``v0.1`` (the defaults of
version 0.1, tuned on the simulator alone).  Writes a JSON report and a Markdown table.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from landslide_sar_plugin.core import gpkg, metrics, simulate  # noqa: E402
from landslide_sar_plugin.core.catalog import parse_time  # noqa: E402
from landslide_sar_plugin.core.detect import DetectParams, run_detection  # noqa: E402
from landslide_sar_plugin.core.simulate import imprint  # noqa: E402

DEFAULT_REAL = ROOT.parent / "shared" / "realdata" / "opera_rtc_s1_california_t137"

# The A_ratio defaults of version 0.1 (chosen on four simulated events only).
V01 = dict(pixel_size=10.0, polarisation="VH", speckle_sigma_m=10.0, speckle_radius_m=20.0, slope_min_deg=10.0,
           threshold_db=1.25, percentile=None, k_sigma=None, detrend_radius_m=0.0, ratio_sigma_m=0.0,
           ratio_radius_m=0.0, min_area_m2=500.0)
SETTINGS = {"defaults": {}, "v0.1": V01}
ORACLE_THRESHOLDS = np.round(np.arange(0.25, 10.01, 0.25), 2)

# Simulated events beside the real cases: the two the end-to-end tests pin (report) and two others (tuning).
SIMULATED = {
    "sample": ("report", None),
    "rain_seed12_400px": ("report", dict(seed=12, regime="rain", rows=400, cols=400)),
    "earthquake_seed21_400px": ("tuning", dict(seed=21, regime="earthquake", rows=400, cols=400)),
    "rain_seed22_400px": ("tuning", dict(seed=22, regime="rain", rows=400, cols=400)),
}


def params_for(setting: dict, event, pre_range=None, post_range=None) -> DetectParams:
    return DetectParams(event_time=event, pre_range=pre_range, post_range=post_range, **setting)


# --------------------------------------------------------------------------- scoring


def land_share_in_candidates(candidates: Path, land_mask: Path, upsample: int = 3) -> float:
    """Share of land pixels inside candidate polygons, on the land grid refined ``upsample`` times."""
    import rasterio
    from rasterio.features import rasterize

    with rasterio.open(land_mask) as src:
        land = src.read(1) > 0
        t = src.transform
    fine = np.kron(land, np.ones((upsample, upsample), bool))
    feats, _ = gpkg.read_features(candidates)
    geoms = [f.geometry for f in feats if f.geometry]
    if not geoms:
        return 0.0
    covered = rasterize(((g, 1) for g in geoms), out_shape=fine.shape,
                        transform=t * t.scale(1 / upsample), fill=0, dtype="uint8") > 0
    return float((covered & fine).sum() / max(fine.sum(), 1))


def oracle_f1(score_path: Path, truth_path: Path, params: DetectParams) -> dict:
    """Best pixel F1 over fixed thresholds on this case's own score (same smoothing and minimum area)."""
    import rasterio
    from rasterio.enums import Resampling
    from scipy import ndimage

    from landslide_sar_plugin.core import threshold

    with rasterio.open(score_path) as src:
        score = src.read(1).astype(np.float64)
        shape, px = score.shape, abs(src.transform.a)
    with rasterio.open(truth_path) as src:
        truth = src.read(1, out_shape=shape, resampling=Resampling.nearest) > 0
    if params.ratio_sigma_m > 0:
        smoothed = threshold.smooth_ratio(score, params.ratio_sigma_m, params.ratio_radius_m or
                                          2 * params.ratio_sigma_m, px)
        smoothed[~np.isfinite(score)] = np.nan
        score = smoothed
    valid = np.isfinite(score)
    min_px = params.min_area_m2 / (px * px)
    best = {"f1": 0.0, "threshold": None}
    for t in ORACLE_THRESHOLDS:
        exceed = valid & (np.nan_to_num(score, nan=-np.inf) > t)
        labels, n = ndimage.label(exceed)  # 4-connected, as the engine's polygons
        if n:
            sizes = np.bincount(labels.ravel())
            exceed = (sizes >= min_px)[labels] & exceed
        f1 = metrics.pixel_metrics(exceed, truth)["f1"]
        if f1 > best["f1"]:
            best = {"f1": float(f1), "threshold": float(t)}
    return best


def score_run(res, kind: str, truth: Path | None, land: Path | None, params: DetectParams) -> dict:
    row = {"threshold_db": res.threshold, "n_candidates": res.n_candidates,
           "noise_sigma_db": (res.run_info.get("noise") or {}).get("sigma_db"),
           "pixel_size_m": res.grid.pixel_size}
    if land is not None:
        row["land_share_in_candidates"] = land_share_in_candidates(res.files["candidates"], land)
    if truth is not None:
        report = metrics.evaluate_files(res.files["candidates"], truth)
        row.update(f1=report["pixel"]["f1"], precision=report["pixel"]["precision"],
                   recall=report["pixel"]["recall"], detection_rate=report["objects"]["detection_rate"])
        oracle = oracle_f1(res.files["a_ratio"], truth, params)
        row.update(oracle_f1=oracle["f1"], oracle_threshold_db=oracle["threshold"])
    return row


# --------------------------------------------------------------------------- cases


def run_real_case(spec, real_root: Path, work: Path, settings: dict) -> dict:
    stack = imprint.read_opera_burst(real_root / spec.burst)
    case = imprint.write_case(spec, stack, work / spec.name / "case")
    out = {"case": spec.name, "kind": spec.kind, "role": spec.role, "burst": spec.burst, "regime": spec.regime,
           "polarisations": list(spec.polarisations), "pre": list(spec.pre), "post": list(spec.post),
           "n_slides": case.n_slides, "slide_area_m2": case.slide_area_m2, "settings": {}}
    for name, setting in settings.items():
        params = params_for(setting, case.event_time, case.pre_range, case.post_range)
        t0 = time.perf_counter()
        res = run_detection(case.scenes_dir, case.dem, work / spec.name / name, params)
        row = score_run(res, spec.kind, case.truth_mask, case.land_mask if spec.kind == "no_change" else None,
                        params)
        row["seconds"] = round(time.perf_counter() - t0, 2)
        out["settings"][name] = row
    return out


def run_simulated_event(name: str, role: str, overrides: dict | None, work: Path, settings: dict) -> dict:
    if overrides is None:
        scenes = ROOT / "landslide_sar_plugin" / "sample_data"
        event = json.loads((scenes / "event.json").read_text())["event_time"]
        scenes_dir, dem, truth = scenes / "scenes", scenes / "dem.tif", scenes / "truth" / "truth_mask.tif"
    else:
        cfg = simulate.random_event_config(**overrides)
        sim = simulate.simulate_event(work / name / "event", cfg)
        event = json.loads(sim.event_json_path.read_text())["event_time"]
        scenes_dir, dem, truth = sim.out_dir / "scenes", sim.dem_path, sim.truth_mask_path
    out = {"case": name, "kind": "simulated", "role": role, "settings": {}}
    for sname, setting in settings.items():
        params = params_for(setting, parse_time(event))
        t0 = time.perf_counter()
        res = run_detection(scenes_dir, dem, work / name / sname, params)
        row = score_run(res, "simulated", truth, None, params)
        row["seconds"] = round(time.perf_counter() - t0, 2)
        out["settings"][sname] = row
    return out


# --------------------------------------------------------------------------- summary


def summarise(rows: list[dict], settings) -> dict:
    summary = {}
    for name in settings:
        s = {}
        for role in ("tuning", "report"):
            for kind, key in (("no_change", "land_share_in_candidates"), ("imprinted", "f1"),
                              ("imprinted", "oracle_f1"), ("simulated", "f1"), ("simulated", "oracle_f1")):
                vals = [r["settings"][name][key] for r in rows if r["role"] == role and r["kind"] == kind
                        and name in r["settings"]]
                if vals:
                    s[f"{role}_{kind}_{key}_mean"] = float(np.mean(vals))
                    s[f"{role}_{kind}_{key}_max" if kind == "no_change" else f"{role}_{kind}_{key}_min"] = float(
                        np.max(vals) if kind == "no_change" else np.min(vals))
        summary[name] = s
    return summary


def markdown(report: dict) -> str:
    names = list(report["settings"])
    lines = ["| case | role | kind | " + " | ".join(names) + " | oracle (defaults) |",
             "|---|---|---|" + "---|" * len(names) + "---|"]
    for r in report["cases"]:
        key = "land_share_in_candidates" if r["kind"] == "no_change" else "f1"
        fmt = "{:.1%}" if key == "land_share_in_candidates" else "{:.3f}"
        vals = [fmt.format(r["settings"][n][key]) if n in r["settings"] else "-" for n in names]
        oracle = r["settings"].get("defaults", {}).get("oracle_f1")
        lines.append(f"| {r['case']} | {r['role']} | {r['kind']} | " + " | ".join(vals)
                     + f" | {'' if oracle is None else f'{oracle:.3f}'} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--real", type=Path, default=DEFAULT_REAL, help="folder of the OPERA burst folders")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "real.json")
    ap.add_argument("--roles", default="tuning,report")
    ap.add_argument("--settings", default=",".join(SETTINGS))
    ap.add_argument("--no-simulated", action="store_true", help="skip the simulated events")
    ap.add_argument("--cases", default="", help="only cases whose name contains this text")
    ap.add_argument("--work", type=Path, help="keep the cases and runs here (default: a temporary folder)")
    args = ap.parse_args(argv)
    if not args.real.is_dir():
        print(f"error: the real stacks folder {args.real} does not exist; give --real DIR", file=sys.stderr)
        return 1
    settings = {k: SETTINGS[k] for k in args.settings.split(",")}
    roles = args.roles.split(",")
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-real-") as tmp:
        work = args.work or Path(tmp)
        rows = [run_real_case(spec, args.real, work, settings) for spec in imprint.benchmark_cases(roles)
                if args.cases in spec.name]
        if not args.no_simulated:
            rows += [run_simulated_event(n, role, ov, work, settings) for n, (role, ov) in SIMULATED.items()
                     if role in roles and args.cases in n]
    report = {
        "benchmark": "real-background (real OPERA RTC-S1 stacks; imprinted slides are SYNTHETIC) and simulated",
        "machine": {"python": platform.python_version(), "node": platform.node(), "cpus": __import__("os").cpu_count()},
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "settings": {k: {f: v for f, v in dataclasses.asdict(params_for(s, parse_time("2020-01-01"))).items()
                         if f in DetectParams.__dataclass_fields__ and not f.endswith(("_range", "time", "aoi"))}
                     for k, s in settings.items()},
        "cases": rows,
        "summary": summarise(rows, settings),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    return write_report(args.out, report, markdown)


def write_report(out: Path, report: dict, markdown) -> int:
    """``out`` (JSON) and ``out.md`` (``markdown(report)``); the summary printed."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1, default=str), encoding="utf-8")
    out.with_suffix(".md").write_text(markdown(report), encoding="utf-8")
    print(json.dumps(report["summary"], indent=1))
    print(f"wrote {out} and {out.with_suffix('.md')} in {report['seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
