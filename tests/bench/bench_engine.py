"""Benchmark of the A_ratio engine against its floors and against the script an analyst would write.

Data: SYNTHETIC speckled VH stacks in dB (2 passes x 8 dates: 5 pre, 3 post, one
relative orbit each), 10 m, square 8 x 8 px scars every 1 km after the event,
a 30 m DEM; generated once under ``bench/``.  Every case runs in a fresh
process, the cases interleaved over ``--repeats`` (:mod:`benchlib`):

* ``read_floor``: read every input pixel once (blocks of 1024^2, one thread);
* ``median_floor_sort``: that, plus the per-pixel median of every stack with
  the sort median the engine used before (``composite.sort_nan_median``): the
  "read+median floor" of issue 15;
* ``median_floor``: the same with the engine's current median;
* ``engine``: :func:`core.detect.run_detection` as users run it (every
  output, cloud-optimised), with the default workers (all cores);
* ``engine_1worker``: the same with ``workers=1`` (the parallel speed-up);
* ``baseline``: ``run_detection`` of another checkout (``--baseline-root``);
* ``plain``: the plain script a competent analyst would write: whole arrays,
  ``np.nanmedian``, the same speckle filter, slope mask, threshold, heatmap
  and 4-connected polygons of at least the minimum area with their mean/max
  (``scipy.ndimage.label``), written as GeoTIFFs and a GeoPackage.  It must
  find the same candidates as the engine (checked: ``n_candidates``).

``--depths`` adds a memory-per-date measurement: the engine at 2048^2 with
few and with many dates per stack (peak RSS slope in MB per extra date).

The JSON report holds, per case and grid size, medians/min/max of seconds,
cores used and peak RSS, the per-stage timings of the engine, and paired
ratios within each repeat: engine / floors, plain / engine, baseline / engine,
1 worker / all workers, peak RSS of the largest over the smallest grid.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402

HERE = Path(__file__).resolve()
EVENT = dt.datetime(2020, 6, 1, tzinfo=dt.timezone.utc)
DATES = {"pre": 5, "post": 3}
PX = 10.0
X0, Y0 = 400000.0, 5000000.0
BLOCK = 1024


# --------------------------------------------------------------------------- data


def make_data(folder: Path, size: int, dates: dict | None = None) -> Path:
    """Write the benchmark scenes and DEM for a ``size`` x ``size`` grid (once).  SYNTHETIC."""
    import rasterio
    from rasterio.transform import from_origin

    dates = dates or DATES
    if (folder / "complete").exists():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    scenes = folder / "scenes"
    scenes.mkdir(parents=True)
    rng = np.random.default_rng(size)
    base = (-14 + 2 * np.sin(np.arange(size) / 97.0))[np.newaxis, :].astype(np.float32)
    profile = dict(driver="GTiff", width=size, height=size, count=1, dtype="float32", crs="EPSG:32633",
                   transform=from_origin(X0, Y0, PX, PX), nodata=float("nan"), tiled=True, blockxsize=512,
                   blockysize=512, compress="zstd")
    for p_i, orbit_pass in enumerate(("ASCENDING", "DESCENDING")):
        for role, n in dates.items():
            for k in range(n):
                sign = -1 if role == "pre" else 1
                when = EVENT + dt.timedelta(days=sign * (90 if role == "pre" else 60) * (k + 1) / (n + 1),
                                            hours=6 + 12 * p_i)
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
    (folder / "complete").write_text("ok")
    return folder


# The computation this benchmark times, pinned (version 0.1's settings, which the baseline commit and the
# plain script compute): VH, a 10 m speckle filter, a fixed 1.25 dB threshold, no detrend, no ratio smoothing.
# Today's defaults add a detrend pass and the ratio smoothing and drop the speckle filter (not timed here).
PINNED = {"polarisation": "VH", "speckle_sigma_m": 10.0, "speckle_radius_m": 20.0, "threshold_db": 1.25,
          "detrend_radius_m": 0.0, "ratio_sigma_m": 0.0, "min_area_m2": 500.0}


def params(*, defaults: bool = False, **kw):
    """The pinned settings (``defaults``: today's defaults instead); fields a checkout lacks are left out."""
    from landslide_sar_plugin.core.detect import DetectParams

    fields = DetectParams.__dataclass_fields__
    settings = {**({} if defaults else PINNED), **kw}
    return DetectParams(event_time=EVENT, pre_days=90, post_days=60,
                        **{k: v for k, v in settings.items() if k in fields})


def _stacks(data: Path):
    from landslide_sar_plugin.core import catalog

    p = params()
    cat = catalog.read_catalog(data / "scenes")
    sel = catalog.select_stacks(cat.scenes, p.event_time, pre_days=p.pre_days, post_days=p.post_days)
    return [[s.bands["VH"].path for s in stacks[t]] for t in sel.tracks() for stacks in (sel.pre, sel.post)]


# --------------------------------------------------------------------------- cases (run in a child)


def case_floor(data: Path, median: str | None) -> dict:
    """Read every input pixel once, block by block (optionally with the median of each stack)."""
    import rasterio
    from rasterio.windows import Window

    from landslide_sar_plugin.core import composite

    reduce = {None: None, "sort": composite.sort_nan_median, "current": composite.nan_median}[median]
    stacks = _stacks(data)
    sources = [[rasterio.open(p) for p in paths] for paths in stacks]
    size = sources[0][0].width
    n_px = 0
    for row in range(0, size, BLOCK):
        for col in range(0, size, BLOCK):
            win = Window(col, row, min(BLOCK, size - col), min(BLOCK, size - row))
            for srcs in sources:
                arrays = [s.read(1, window=win) for s in srcs]
                n_px += sum(a.size for a in arrays)
                if reduce is not None:
                    reduce(np.stack(arrays))
    for srcs in sources:
        for s in srcs:
            s.close()
    return {"input_mpx": round(n_px / 1e6, 1)}


def case_engine(data: Path, out: Path, workers: int | None) -> dict:
    from landslide_sar_plugin.core.detect import run_detection

    shutil.rmtree(out, ignore_errors=True)
    kw = {} if workers is None else {"workers": workers}
    res = run_detection(data / "scenes", data / "dem.tif", out, params(**kw))
    return {"timings_s": {k: round(v, 3) for k, v in res.timings_s.items()}, "n_candidates": res.n_candidates,
            "threshold_db": res.threshold_db}


def case_plain(data: Path, out: Path) -> dict:
    """The analyst's script: whole arrays, np.nanmedian, the same masks and polygons."""
    import warnings

    import rasterio
    from rasterio.features import shapes
    from rasterio.vrt import WarpedVRT
    from scipy import ndimage

    from landslide_sar_plugin.core import gpkg, terrain, threshold

    p = params()
    ratios = []
    for pre_paths, post_paths in zip(*[iter(_stacks(data))] * 2):
        comp = []
        for paths in (pre_paths, post_paths):
            arrays = []
            for path in paths:
                with rasterio.open(path) as src:
                    a = src.read(1)
                    profile = src.profile
                a[~(a > p.edge_noise_db)] = np.nan
                arrays.append(a)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                med = np.nanmedian(np.stack(arrays), axis=0)
            del arrays
            comp.append(terrain.gaussian_smooth(med, p.speckle_sigma_m, p.speckle_radius_m, PX))
        ratios.append(comp[0] - comp[1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ratio = np.nanmean(np.stack(ratios), axis=0).astype(np.float32)
    del ratios
    with rasterio.open(data / "dem.tif") as src, WarpedVRT(src, crs=profile["crs"], transform=profile["transform"],
                                                          width=profile["width"], height=profile["height"],
                                                          resampling=rasterio.enums.Resampling.bilinear) as vrt:
        dem = vrt.read(1)
    ratio[~(terrain.slope_deg(dem, PX) >= p.slope_min_deg)] = np.nan
    del dem
    valid = np.isfinite(ratio)
    exceed = threshold.exceedance(ratio, p.threshold_db)
    heat = threshold.density_heatmap(exceed, valid, p.heatmap_radius_m, PX).astype(np.float32)
    labels, n = ndimage.label(exceed, structure=[[0, 1, 0], [1, 1, 1], [0, 1, 0]])
    index = np.arange(1, n + 1)
    means, maxes = ndimage.mean(ratio, labels, index), ndimage.maximum(ratio, labels, index)
    features = []
    for geom, value in shapes(labels.astype(np.int32), mask=labels > 0, connectivity=4,
                              transform=profile["transform"]):
        area = threshold.polygon_area_m2(geom)
        if area >= p.min_area_m2:
            k = int(value) - 1
            features.append(gpkg.Feature(geometry=geom, properties={
                "id": len(features) + 1, "area_m2": area, "mean_score": float(means[k]),
                "max_score": float(maxes[k]), "method": "a_ratio", "threshold": p.threshold_db,
                "event_id": "bench", "status": "proposed", "uuid": str(k)}))
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    profile.update(compress="deflate", predictor=3, tiled=True, blockxsize=512, blockysize=512, nodata=float("nan"))
    for name, arr in (("a_ratio", ratio), ("heatmap", heat)):
        with rasterio.open(out / f"{name}.tif", "w", **profile) as dst:
            dst.write(arr, 1)
    profile.update(dtype="uint8", predictor=2, nodata=255)
    with rasterio.open(out / "exceedance.tif", "w", **profile) as dst:
        dst.write(np.where(valid, exceed, 255).astype(np.uint8), 1)
    gpkg.write_features(out / "candidates.gpkg", "candidates", features, crs=profile["crs"],
                        fields=threshold.CANDIDATE_FIELDS)
    return {"n_candidates": len(features)}


def child(args) -> int:
    benchlib.use_engine_root(args.root)
    kind = args.kind
    if kind == "read_floor":
        work = lambda: case_floor(args.data, None)  # noqa: E731
    elif kind in ("median_floor_sort", "median_floor"):
        work = lambda: case_floor(args.data, "sort" if kind.endswith("sort") else "current")  # noqa: E731
    elif kind in ("engine", "baseline", "engine_1worker"):
        work = lambda: case_engine(args.data, args.outdir, 1 if kind == "engine_1worker" else None)  # noqa: E731
    elif kind == "plain":
        work = lambda: case_plain(args.data, args.outdir)  # noqa: E731
    else:
        raise SystemExit(f"unknown case {kind}")
    return benchlib.child_main(work)


# --------------------------------------------------------------------------- the parent


def _case_fn(kind: str, data: Path, work: Path, size: int, root: str | None):
    extra = ["--root", root] if root else []
    out = work / f"out_{kind}_{size}"
    return lambda: {**benchlib.run_child(HERE, ["--child", kind, "--data", str(data), "--outdir", str(out),
                                                *extra]), "size": size}


def run_size(size: int, cases: list[str], args) -> dict:
    data = make_data(args.work / f"data_{size}", size)
    root = str(args.baseline_root) if args.baseline_root else None
    fns = {k: _case_fn(k, data, args.work, size, root if k == "baseline" else None) for k in cases}
    runs = benchlib.interleave(fns, args.repeats)
    res = {"size": size, "summary": benchlib.summarise_runs(runs), "runs": runs, "ratios": {}}
    pairs = {"engine_over_median_floor_sort": ("engine", "median_floor_sort"),
             "engine_over_median_floor": ("engine", "median_floor"),
             "engine_over_read_floor": ("engine", "read_floor"),
             "plain_over_engine": ("plain", "engine"),
             "baseline_over_engine": ("baseline", "engine"),
             "one_worker_over_all_workers": ("engine_1worker", "engine")}
    for name, (num, den) in pairs.items():
        r = benchlib.paired_ratio(runs, num, den)
        if r:
            res["ratios"][name] = r
    if "engine" in runs and "plain" in runs:
        res["same_candidates_as_plain"] = runs["engine"][0]["n_candidates"] == runs["plain"][0]["n_candidates"]
    return res


def run_depths(args) -> dict:
    """Peak RSS of the engine at 2048^2 with few and many dates per stack: MB per extra date."""
    size, out = 2048, {}
    for n in args.depths:
        data = make_data(args.work / f"data_{size}_depth{n}", size, {"pre": n, "post": n})
        fns = {f"engine_{n}_dates": _case_fn("engine", data, args.work, size, None)}
        out[n] = benchlib.interleave(fns, 1)[f"engine_{n}_dates"][0]
    lo, hi = min(args.depths), max(args.depths)
    dates = 4 * (hi - lo)  # 2 passes x (pre + post) stacks
    slope = (out[hi]["peak_rss_mb"] - out[lo]["peak_rss_mb"]) / dates
    return {"grid": size, "block": BLOCK, "dates_per_stack": args.depths,
            "peak_rss_mb": {n: out[n]["peak_rss_mb"] for n in args.depths},
            "mb_per_extra_date": round(slope, 2), "goal_mb_per_date": 10.0, "goal_met": slope < 10.0}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=benchlib.ROOT / "bench" / "report.json", help="JSON report path")
    ap.add_argument("--work", type=Path, default=benchlib.ROOT / "bench", help="folder for data and outputs")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--floor-sizes", type=int, nargs="*", default=[8192],
                    help="grid sizes of the engine-vs-floor comparison")
    ap.add_argument("--plain-sizes", type=int, nargs="*", default=[4096],
                    help="grid sizes of the engine-vs-plain-script comparison (the script needs ~GBs)")
    ap.add_argument("--memory-sizes", type=int, nargs="*", default=[2048],
                    help="small grid size(s) whose peak RSS is compared with the largest")
    ap.add_argument("--depths", type=int, nargs="*", default=[4, 16],
                    help="dates per stack for the memory-per-date measurement (none: skip)")
    ap.add_argument("--baseline-root", type=Path, help="another checkout of the plugin to compare against")
    ap.add_argument("--child", metavar="CASE", dest="kind", help=argparse.SUPPRESS)
    ap.add_argument("--root", help=argparse.SUPPRESS)
    ap.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--outdir", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.kind:
        return child(args)

    benchlib.use_engine_root(None)
    report = {"what": "A_ratio engine on SYNTHETIC stacks (2 passes x 8 dates, VH dB, 10 m), cases interleaved",
              "machine": benchlib.machine_info(), "block": BLOCK,
              "baseline_root": str(args.baseline_root) if args.baseline_root else None, "sizes": {}}
    extra = ["baseline"] if args.baseline_root else []
    plan: dict[int, list[str]] = {}
    for size in args.memory_sizes:
        plan.setdefault(size, []).append("engine")
    for size in args.plain_sizes:
        plan.setdefault(size, []).extend(["engine", "plain", *extra])
    for size in args.floor_sizes:
        plan.setdefault(size, []).extend(["read_floor", "median_floor_sort", "median_floor", "engine",
                                          "engine_1worker", *extra])
    for size in sorted(plan):
        cases = list(dict.fromkeys(plan[size]))
        report["sizes"][str(size)] = run_size(size, cases, args)
    sizes = sorted(plan)
    if len(sizes) > 1:
        small, large = report["sizes"][str(sizes[0])], report["sizes"][str(sizes[-1])]
        ratio = (large["summary"]["engine"]["peak_rss_mb"]["median"]
                 / small["summary"]["engine"]["peak_rss_mb"]["median"])
        report["peak_rss_ratio_largest_over_smallest"] = round(ratio, 3)
    if args.depths and len(args.depths) > 1:
        report["memory_per_date"] = run_depths(args)
    report["goals"] = {"engine_over_median_floor_sort_at_8192": "<= 2.0", "plain_over_engine_at_4096": ">= 2.0",
                       "engine_cores_used": ">= 1.7", "peak_rss_ratio": "<= 1.3 (flat in grid size)",
                       "mb_per_extra_date": "< 10"}
    benchlib.write_report(args.out, report)
    for size, res in report["sizes"].items():
        print(size, json.dumps(res["ratios"]), json.dumps({k: v["seconds"]["median"]
                                                          for k, v in res["summary"].items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
