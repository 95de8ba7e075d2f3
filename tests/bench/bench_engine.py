"""Benchmark of the A_ratio engine: memory bound and streaming overhead (``make bench``).

For each grid size (2048^2 and 8192^2 output pixels, 2 passes x 8 dates of
speckled VH in dB, 10 m, plus a 30 m DEM) it runs, each in a fresh Python
process so that peak RSS belongs to one run:

* ``streamed``: :func:`run_detection` as users run it (blocks, COG outputs);
* ``inmemory``: a plain numpy implementation of the same math over the same
  files (whole arrays: read, median per pass, ratio, slope mask, threshold,
  heatmap), writing the ratio as a plain GeoTIFF.

The JSON report holds seconds, output megapixels per second, peak RSS, the
8192/2048 peak-RSS ratio (goal <= 1.3) and the streamed/in-memory throughput
ratio (goal >= 0.8), with the streamed run's per-stage timings.  The data are
SYNTHETIC and generated on first use under ``bench/data``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

EVENT = dt.datetime(2020, 6, 1, tzinfo=dt.timezone.utc)
DATES_PER_PASS = {"pre": 5, "post": 3}
PX = 10.0
X0, Y0 = 400000.0, 5000000.0


def make_data(folder: Path, size: int) -> Path:
    """Write the benchmark scenes and DEM for a ``size`` x ``size`` grid (once)."""
    import rasterio
    from rasterio.transform import from_origin

    done = folder / "complete"
    if done.exists():
        return folder
    scenes = folder / "scenes"
    scenes.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(size)
    base = (-14 + 2 * np.sin(np.arange(size) / 97.0))[np.newaxis, :].astype(np.float32)
    profile = dict(driver="GTiff", width=size, height=size, count=1, dtype="float32", crs="EPSG:32633",
                   transform=from_origin(X0, Y0, PX, PX), nodata=float("nan"), tiled=True, blockxsize=512,
                   blockysize=512, compress="zstd")
    for p_i, orbit_pass in enumerate(("ASCENDING", "DESCENDING")):
        for role, n in DATES_PER_PASS.items():
            for k in range(n):
                sign = -1 if role == "pre" else 1
                when = EVENT + dt.timedelta(days=sign * 12 * (k + 1), hours=6 + 12 * p_i)
                path = scenes / f"bench_{orbit_pass[:3]}_{when:%Y%m%dT%H%M%S}.tif"
                with rasterio.open(path, "w", **profile) as dst:
                    for row in range(0, size, 512):
                        h = min(512, size - row)
                        speckle = rng.gamma(4.4, 1 / 4.4, (h, size)).astype(np.float32)
                        db = base + 10 * np.log10(speckle)
                        if role == "post":  # square scars every 1 km
                            rr, cc = np.meshgrid(np.arange(row, row + h), np.arange(size), indexing="ij")
                            db[((rr % 100) < 8) & ((cc % 100) < 8)] -= 4.0
                        dst.write(db, 1, window=rasterio.windows.Window(0, row, size, h))
                    dst.set_band_description(1, "VH")
                    dst.update_tags(ACQUISITION_START=when.strftime("%Y-%m-%dT%H:%M:%SZ"), ORBIT_PASS=orbit_pass,
                                    RELATIVE_ORBIT="22" if p_i == 0 else "124", UNITS="dB",
                                    SYNTHETIC="benchmark data, not real Sentinel-1")
    n_dem = size // 3 + 4
    cols = np.arange(n_dem) * 30.0
    dem = (2000 - 0.4 * cols)[np.newaxis, :].repeat(n_dem, 0) + 40 * np.sin(np.arange(n_dem) / 7.0)[:, None]
    with rasterio.open(folder / "dem.tif", "w", driver="GTiff", width=n_dem, height=n_dem, count=1,
                       dtype="float32", crs="EPSG:32633", transform=from_origin(X0 - 60, Y0 + 60, 30, 30),
                       tiled=True, compress="zstd") as dst:
        dst.write(dem.astype(np.float32), 1)
    done.write_text("ok")
    return folder


def params():
    from landslide_sar_plugin.core.detect import DetectParams

    return DetectParams(event_time=EVENT, pre_days=90, post_days=60)


def run_streamed(data: Path, out: Path) -> dict:
    from landslide_sar_plugin.core.detect import run_detection

    res = run_detection(data / "scenes", data / "dem.tif", out, params())
    return {"timings_s": {k: round(v, 2) for k, v in res.timings_s.items()}, "n_candidates": res.n_candidates,
            "threshold_db": res.threshold_db}


def run_inmemory(data: Path, out: Path) -> dict:
    """The same math on whole arrays: the reference a streaming engine is measured against."""
    import rasterio
    from rasterio.vrt import WarpedVRT

    from landslide_sar_plugin.core import catalog, composite, terrain, threshold

    p = params()
    cat = catalog.read_catalog(data / "scenes")
    sel = catalog.select_stacks(cat.scenes, p.event_time, pre_days=p.pre_days, post_days=p.post_days)
    ratios = []
    for track in sel.tracks():
        comp = {}
        for role, stacks in (("pre", sel.pre), ("post", sel.post)):
            arrays = []
            for s in stacks[track]:
                with rasterio.open(s.bands["VH"].path) as src:
                    arrays.append(composite.mask_edge_noise(src.read(1)))
                    profile = src.profile
            med = composite.nan_median(np.stack(arrays))
            del arrays
            comp[role] = terrain.gaussian_smooth(med, p.speckle_sigma_m, p.speckle_radius_m, PX)
        ratios.append(comp["pre"] - comp["post"])
    ratio = composite.mean_of_available(ratios)
    with rasterio.open(data / "dem.tif") as src, WarpedVRT(src, crs=profile["crs"], transform=profile["transform"],
                                                          width=profile["width"], height=profile["height"],
                                                          resampling=rasterio.enums.Resampling.bilinear) as vrt:
        dem = vrt.read(1)
    slope = terrain.slope_deg(dem, PX)
    ratio[~(slope >= p.slope_min_deg)] = np.nan
    exceed = threshold.exceedance(ratio, p.threshold_db)
    heat = threshold.density_heatmap(exceed, np.isfinite(ratio), p.heatmap_radius_m, PX)
    out.mkdir(parents=True, exist_ok=True)
    profile.update(compress="deflate", predictor=3, tiled=True)
    with rasterio.open(out / "a_ratio.tif", "w", **profile) as dst:
        dst.write(ratio.astype(np.float32), 1)
    with rasterio.open(out / "heatmap.tif", "w", **profile) as dst:
        dst.write(heat.astype(np.float32), 1)
    return {"n_exceedance_px": int(exceed.sum())}


def child(kind: str, size: int, work: Path) -> None:
    data = make_data(work / f"data_{size}", size)
    out = work / f"out_{kind}_{size}"
    t0 = time.perf_counter()
    info = run_streamed(data, out) if kind == "streamed" else run_inmemory(data, out)
    seconds = time.perf_counter() - t0
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(json.dumps({"kind": kind, "size": size, "seconds": round(seconds, 2), "peak_rss_mb": round(peak_mb, 1),
                      "output_mpx_per_s": round(size * size / 1e6 / seconds, 3), **info}))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "report.json", help="JSON report path")
    parser.add_argument("--sizes", type=int, nargs="+", default=[2048, 8192], help="grid edge sizes in pixels")
    parser.add_argument("--work", type=Path, default=ROOT / "bench", help="folder for data and outputs")
    parser.add_argument("--child", nargs=2, metavar=("KIND", "SIZE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child[0], int(args.child[1]), args.work)
        return 0
    args.work.mkdir(parents=True, exist_ok=True)
    results = []
    for size in args.sizes:
        make_data(args.work / f"data_{size}", size)  # outside the timed children
        for kind in ("streamed", "inmemory"):
            proc = subprocess.run([sys.executable, __file__, "--work", str(args.work), "--child", kind, str(size)],
                                  capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                print(proc.stderr, file=sys.stderr)
                return proc.returncode
            results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            print(json.dumps(results[-1]), flush=True)
    by = {(r["kind"], r["size"]): r for r in results}
    report = {
        "what": "A_ratio engine benchmark on SYNTHETIC stacks (2 passes x 8 dates, VH dB, 10 m)",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "runs": results,
    }
    small, large = min(args.sizes), max(args.sizes)
    if ("streamed", small) in by and ("streamed", large) in by and small != large:
        ratio = by[("streamed", large)]["peak_rss_mb"] / by[("streamed", small)]["peak_rss_mb"]
        report["peak_rss_ratio_large_over_small"] = round(ratio, 3)
        report["peak_rss_goal_met"] = ratio <= 1.3
    for size in args.sizes:
        if ("streamed", size) in by and ("inmemory", size) in by:
            r = by[("streamed", size)]["output_mpx_per_s"] / by[("inmemory", size)]["output_mpx_per_s"]
            report[f"throughput_ratio_streamed_over_inmemory_{size}"] = round(r, 3)
    if ("streamed", large) in by and ("inmemory", large) in by:
        report["throughput_goal_met"] = report[f"throughput_ratio_streamed_over_inmemory_{large}"] >= 0.8
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".partial")
    tmp.write_text(json.dumps(report, indent=2))
    tmp.replace(args.out)
    print(f"report: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
