"""Benchmark: the shipped U-Net end to end (scenes -> composites -> inference -> polygons) on 2346 x 3842 px.

2346 x 3842 px at 10 m is the Iburi study area of seed_004.  The event is
SIMULATED (``core.simulate``, seed 2346, earthquake regime, 5 pre + 2 post
dates per pass, both passes, VV+VH) and generated once under ``bench/``.

Cases, interleaved over ``--repeats`` (each in a fresh process):

* ``unet``: :func:`core.detect_model.run_model_detection` of this tree with the
  shipped model, as ``detect --method model`` runs it;
* ``unet_baseline`` (with ``--baseline-root DIR``): the same call from another
  checkout of the plugin (``make bench-unet BASELINE=<commit>`` exports one),
  on the same scenes and with ONE model file for both, so the speed-up does not
  depend on the weights: the baseline's own shipped model (a newer model's
  composite may be unknown to the baseline; ``--model`` overrides).  The
  shipped model's own cost against the model it replaced is ``make bench-model``.

The report holds per-case medians/min/max of seconds, cores used and peak
RSS, the per-stage timings, the paired speed-up (baseline / this tree, within
each repeat) and, from the last repeat, the agreement of the two probability
rasters and both runs' pixel F1 against the simulated truth.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402

HERE = Path(__file__).resolve()
SHAPE = (2346, 3842)
SEED = 2346
MODEL = benchlib.ROOT / "landslide_sar_plugin" / "models" / "landslide_unet.onnx"


def make_event(folder: Path, rows: int, cols: int) -> Path:
    """Simulate the benchmark event once (SYNTHETIC)."""
    if (folder / "event.json").is_file():
        return folder
    benchlib.use_engine_root(None)
    from landslide_sar_plugin.core import simulate as sim

    cfg = sim.preset_config("default", SEED, rows=rows, cols=cols)
    sim.simulate_event(folder, cfg)
    return folder


def child(args) -> int:
    benchlib.use_engine_root(args.root)

    def work():
        from landslide_sar_plugin.core.catalog import parse_time
        from landslide_sar_plugin.core.detect import DetectParams
        from landslide_sar_plugin.core.detect_model import run_model_detection

        event = json.loads((args.data / "event.json").read_text())
        params = DetectParams(event_time=parse_time(event["event_time"]))
        if args.workers and "workers" in DetectParams.__dataclass_fields__:
            params.workers = args.workers
        shutil.rmtree(args.out, ignore_errors=True)
        res = run_model_detection(args.data / "scenes", args.data / "dem.tif", args.out, params, args.model,
                                  prefer_gpu=False)
        return {"n_candidates": res.n_candidates, "threshold": round(res.threshold, 4),
                "timings_s": {k: round(v, 3) for k, v in res.timings_s.items()}}

    return benchlib.child_main(work)


def compare_outputs(data: Path, out_new: Path, out_base: Path | None) -> dict:
    """Pixel F1 of each run against the truth and the largest probability difference between them."""
    import numpy as np
    import rasterio

    from landslide_sar_plugin.core.metrics import evaluate_files

    truth = data / "truth" / "truth_mask.tif"
    res = {"f1_this_tree": round(evaluate_files(out_new / "candidates.gpkg", truth)["pixel"]["f1"], 4)}
    if out_base is None:
        return res
    res["f1_baseline"] = round(evaluate_files(out_base / "candidates.gpkg", truth)["pixel"]["f1"], 4)
    worst, same_nan = 0.0, True
    with rasterio.open(out_new / "probability.tif") as a, rasterio.open(out_base / "probability.tif") as b:
        for _, win in a.block_windows(1):
            pa, pb = a.read(1, window=win), b.read(1, window=win)
            same_nan &= bool(np.array_equal(np.isnan(pa), np.isnan(pb)))
            both = np.isfinite(pa) & np.isfinite(pb)
            if both.any():
                worst = max(worst, float(np.abs(pa[both] - pb[both]).max()))
    res.update(probability_max_abs_diff=round(worst, 5), same_nodata=same_nan)
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=benchlib.ROOT / "bench" / "unet.json", help="JSON report")
    ap.add_argument("--work", type=Path, default=benchlib.ROOT / "bench", help="folder for data and outputs")
    ap.add_argument("--shape", type=int, nargs=2, default=SHAPE, metavar=("ROWS", "COLS"))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--model", type=Path, help="ONNX model (default: the shipped one; with --baseline-root the "
                    "baseline's shipped one, for both cases)")
    ap.add_argument("--baseline-root", type=Path, help="another checkout of the plugin to compare against")
    ap.add_argument("--workers", type=int, default=0, help="DetectParams.workers (0 = the default)")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--root", help=argparse.SUPPRESS)
    ap.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        return child(args)
    if args.model is None:
        args.model = MODEL if not args.baseline_root else \
            args.baseline_root / "landslide_sar_plugin" / "models" / "landslide_unet.onnx"

    benchlib.use_engine_root(None)  # the parent (data, comparisons) always uses this tree
    rows, cols = args.shape
    data = make_event(args.work / f"unet_event_{rows}x{cols}", rows, cols)
    machine = benchlib.machine_info()
    outs = {"unet": args.work / "out_unet"}
    roots = {"unet": None}
    if args.baseline_root:
        outs["unet_baseline"] = args.work / "out_unet_baseline"
        roots["unet_baseline"] = str(args.baseline_root)

    def case(name):
        extra = ["--root", roots[name]] if roots[name] else []
        return lambda: benchlib.run_child(HERE, ["--child", "--data", str(data), "--out", str(outs[name]),
                                                 "--model", str(args.model), "--workers", str(args.workers),
                                                 *extra])

    runs = benchlib.interleave({name: case(name) for name in outs}, args.repeats)
    report = {
        "what": f"shipped U-Net end to end (composites to polygons) on a SIMULATED {rows} x {cols} px event "
                "(10 m, 2 passes x 7 dates, VV+VH)",
        "machine": machine,
        "model": {"file": str(args.model), "bytes": args.model.stat().st_size},
        "baseline_root": str(args.baseline_root) if args.baseline_root else None,
        "summary": benchlib.summarise_runs(runs),
        "runs": runs,
    }
    if args.baseline_root:
        report["speedup_baseline_over_this_tree"] = benchlib.paired_ratio(runs, "unet_baseline", "unet")
        report["goal"] = "speed-up >= 2.0 over the baseline commit"
    report["outputs"] = compare_outputs(data, outs["unet"], outs.get("unet_baseline"))
    benchlib.write_report(args.out, report)
    print(json.dumps({k: report[k] for k in ("summary", "outputs") if k in report}
                     | {"speedup": report.get("speedup_baseline_over_this_tree")}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
