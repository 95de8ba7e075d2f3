"""Benchmark: the size/time trade of the published rasters' compression (how core.cog's settings were chosen).

Runs the A_ratio engine on the shipped sample scene (SYNTHETIC, realistic
masks) and on the 2048^2 engine-benchmark stacks, then rewrites every output
raster block by block with DEFLATE levels 1, 3, 6 and 9 (and ZSTD 1 and 9 for
comparison; QGIS builds read both), each with the engine's predictor and 512 px
tiles (and without predictor), and records the compressed size and the CPU time of compression (one
thread, median of ``--repeats``).  JSON report.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402

# (codec, level, predictor): "p" = the engine's predictor (3 floating point for floats, 2 for integers), "n" = none
CODECS = [("deflate", 1, "p"), ("deflate", 1, "n"), ("deflate", 3, "p"), ("deflate", 6, "p"), ("deflate", 6, "n"),
          ("deflate", 9, "p"), ("zstd", 1, "p"), ("zstd", 1, "n"), ("zstd", 9, "p")]


def engine_outputs(work: Path) -> dict[str, Path]:
    import bench_engine

    from landslide_sar_plugin.core.catalog import parse_time
    from landslide_sar_plugin.core.detect import DetectParams, run_detection

    sample = benchlib.ROOT / "landslide_sar_plugin" / "sample_data"
    event = parse_time(json.loads((sample / "event.json").read_text())["event_time"])
    out = {"sample": work / "compression_sample"}
    run_detection(sample / "scenes", sample / "dem.tif", out["sample"], DetectParams(event_time=event))
    data = bench_engine.make_data(work / "data_2048", 2048)
    out["bench2048"] = work / "compression_2048"
    run_detection(data / "scenes", data / "dem.tif", out["bench2048"], bench_engine.params())
    return out


def rewrite(src_path: Path, dst_path: Path, codec: str, level: int, predictor: str) -> float:
    """CPU seconds to write ``src_path``'s full-resolution data with ``codec``/``level`` (one thread)."""
    import numpy as np
    import rasterio

    with rasterio.open(src_path) as src:
        data = src.read()
        profile = src.profile
    engine_predictor = 3 if np.dtype(profile["dtype"]).kind == "f" else 2
    profile.update(driver="GTiff", tiled=True, blockxsize=512, blockysize=512, compress=codec,
                   predictor=engine_predictor if predictor == "p" else 1, interleave="pixel")
    profile["zlevel" if codec == "deflate" else "zstd_level"] = level
    t0 = time.process_time()
    with rasterio.Env(GDAL_NUM_THREADS="1"), rasterio.open(dst_path, "w", **profile) as dst:
        dst.write(data)
    return time.process_time() - t0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=benchlib.ROOT / "bench" / "compression.json")
    ap.add_argument("--work", type=Path, default=benchlib.ROOT / "bench")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    benchlib.use_engine_root(None)
    report = {"what": "compressed size and compression CPU time of the engine's outputs per codec and level",
              "machine": benchlib.machine_info(), "cases": {}}
    tmp = args.work / "compression_tmp.tif"
    for case, folder in engine_outputs(args.work).items():
        totals = {f"{c}{lv}{pr}": {"bytes": 0, "cpu_s": 0.0} for c, lv, pr in CODECS}
        for raster in sorted(folder.glob("*.tif")):
            for codec, level, pred in CODECS:
                times = [rewrite(raster, tmp, codec, level, pred) for _ in range(args.repeats)]
                key = f"{codec}{level}{pred}"
                totals[key]["bytes"] += tmp.stat().st_size
                totals[key]["cpu_s"] += statistics.median(times)
                report["cases"].setdefault(case, {}).setdefault(raster.name, {})[key] = {
                    "bytes": tmp.stat().st_size, "cpu_s": round(statistics.median(times), 4)}
        ref = totals["deflate6p"]
        report["cases"][case]["total"] = {
            k: {"mb": round(v["bytes"] / 1e6, 2), "cpu_s": round(v["cpu_s"], 3),
                "size_vs_deflate6p": round(v["bytes"] / ref["bytes"], 3),
                "time_vs_deflate6p": round(v["cpu_s"] / ref["cpu_s"], 3)} for k, v in totals.items()}
        for k, v in report["cases"][case]["total"].items():
            print(case, k, v)
    tmp.unlink(missing_ok=True)
    benchlib.write_report(args.out, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
