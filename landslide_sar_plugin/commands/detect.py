"""Detect candidate landslides from Sentinel-1 backscatter change (the A_ratio method).

Reads a folder of Sentinel-1 GeoTIFFs (one per acquisition, in dB or linear),
takes the per-pixel median of the pre-event and of the post-event stack per
orbit track, computes A_ratio = pre - post in dB (positive = backscatter
dropped, typical of a fresh scar in vegetation), averages the orbit passes,
masks flat and convex terrain with the DEM, thresholds, and writes
candidate polygons. All outputs land in --out: a_ratio.tif (masked),
a_ratio_<pass>.tif, counts.tif, mask.tif, exceedance.tif, heatmap.tif,
candidates.gpkg and run.json (plus preview.png with --preview).

--method model runs an ONNX U-Net on the composite its metadata names
(tiled, blended inference; probability.tif, candidates at the model's
threshold); --method both runs both into --out/a_ratio and --out/model and
writes --out/agreement.tif (0 neither, 1 A_ratio only, 2 model only, 3 both).
"""

from __future__ import annotations

import argparse
import sys
import time

NAME = "detect"
HELP = "detect candidate landslides (A_ratio change detection and/or an ONNX model)"
METHODS = ("a_ratio", "model", "both")


def shipped_model_path():
    from pathlib import Path

    return Path(__file__).resolve().parent.parent / "models" / "landslide_unet.onnx"


def _none_or_float(text: str):
    return None if str(text).lower() in ("none", "off") else float(text)


def _range(text: str):
    from ..core.catalog import parse_time

    parts = text.split("/")
    if len(parts) != 2:
        raise argparse.ArgumentTypeError(f"{text!r}: give START/END, e.g. 2018-06-01/2018-09-05")
    return parse_time(parts[0]), parse_time(parts[1])


def _default_rule() -> str:
    from ..core.detect import default_rule_text

    return default_rule_text()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..core.detect import DetectParams

    d = DetectParams.__dataclass_fields__  # the single source of the defaults

    def default(name):
        return d[name].default

    io = parser.add_argument_group("inputs and outputs")
    io.add_argument("--source", choices=("local", "earthengine"), default="local",
                    help="where the scenes come from: a local folder (--scenes, --dem) or Google Earth Engine "
                         "(needs --aoi and --project)")
    io.add_argument("--scenes", metavar="DIR",
                    help="folder of Sentinel-1 GeoTIFFs: tagged, ESA GRD, ASF HyP3 RTC or OPERA RTC-S1 "
                         "names, or a scenes.csv; bursts/frames of one acquisition are one scene")
    io.add_argument("--dem", metavar="FILE", help="DEM GeoTIFF (metres, any CRS) covering the AOI (local source)")
    io.add_argument("--event", required=True, metavar="ISO8601",
                    help="event time in UTC, e.g. 2018-09-06T03:08Z (a date alone means 00:00 UTC)")
    io.add_argument("--out", required=True, metavar="DIR", help="output folder (created if missing)")
    io.add_argument("--aoi", metavar="BOX|FILE",
                    help="area of interest: xmin,ymin,xmax,ymax[,CRS] (CRS default EPSG:4326) or a polygon file "
                         "(.gpkg/.geojson); default: the union of the scenes")
    io.add_argument("--event-id", default="", help="event identifier stored with every polygon "
                                                   "(default: event_<YYYYmmddTHHMM>)")
    io.add_argument("--truth", metavar="FILE",
                    help="reference landslides (mask raster or polygons): print precision, recall, F1 against them")
    io.add_argument("--preview", action="store_true", help="also write preview.png (ratio, candidates, truth)")

    eeg = parser.add_argument_group("Google Earth Engine (--source earthengine)")
    eeg.add_argument("--project", metavar="ID", help="Google Cloud project id registered for Earth Engine")
    eeg.add_argument("--ee-mode", choices=("download", "server"), default="download",
                     help="download: fetch per-track median composites and the GLO-30 DEM, run locally; server: "
                          "compute ratio and masks on Earth Engine and download only those (large AOIs)")
    eeg.add_argument("--orbit-pass", choices=("ASCENDING", "DESCENDING"), help="use only this orbit direction")
    eeg.add_argument("--service-account-key", metavar="FILE",
                     help="service-account JSON key instead of the user's Earth Engine sign-in")
    eeg.add_argument("--ee-cache", metavar="DIR",
                     help="download cache (default: ~/.cache/landslide_sar_plugin/earthengine)")
    eeg.add_argument("--no-ee-cache", action="store_true", help="do not cache Earth Engine downloads")

    me = parser.add_argument_group("method")
    me.add_argument("--method", choices=METHODS, default="a_ratio",
                    help="a_ratio: backscatter-change threshold; model: ONNX U-Net on SAR composites; both: run "
                         "both into --out/a_ratio and --out/model and write --out/agreement.tif")
    me.add_argument("--model", metavar="FILE",
                    help="ONNX model for --method model/both (default: the shipped "
                         "landslide_sar_plugin/models/landslide_unet.onnx)")
    me.add_argument("--model-threshold", type=float, metavar="P",
                    help="probability threshold for the model's candidates (default: the model's own)")
    me.add_argument("--cpu", action="store_true", help="run the model on the CPU even when a GPU provider exists")

    st = parser.add_argument_group("stacks")
    st.add_argument("--pre-days", type=float, default=default("pre_days"),
                    help="pre-event window in days before the event")
    st.add_argument("--post-days", type=float, default=default("post_days"),
                    help="post-event window in days after the event")
    st.add_argument("--pre-range", type=_range, metavar="START/END",
                    help="explicit pre-event date range (inclusive, UTC), replaces --pre-days")
    st.add_argument("--post-range", type=_range, metavar="START/END",
                    help="explicit post-event date range (inclusive, UTC), replaces --post-days")
    st.add_argument("--polarisation", choices=("VH", "VV", "both"), default=default("polarisation"),
                    help="polarisation of the ratio; 'both' averages the VV and VH ratios")
    st.add_argument("--merge-orbits", action="store_true",
                    help="one median per pass over all relative orbits (Handwerger's scripts) instead of one "
                         "median per relative orbit, averaged")
    st.add_argument("--edge-noise-db", type=float, default=default("edge_noise_db"),
                    help="backscatter at or below this (dB) is frame-edge noise and ignored")
    st.add_argument("--speckle-sigma", type=float, default=default("speckle_sigma_m"), metavar="M",
                    help="Gaussian speckle smoothing of each composite, sigma in metres (0 = off); "
                         "kernel radius is twice sigma")

    gr = parser.add_argument_group("grid")
    gr.add_argument("--pixel-size", type=float, default=default("pixel_size"), metavar="M",
                    help="output pixel size in metres (default: the finest resolution of the input scenes, e.g. "
                         "30 for OPERA RTC-S1, 10 for GRD; Earth Engine: 10)")
    gr.add_argument("--crs", help="output CRS (default: the scenes' projected CRS, else the UTM zone of the AOI)")
    gr.add_argument("--block-size", type=int, default=default("block_size"), metavar="PX",
                    help="processing block edge in pixels (memory grows with its square and the stack depth)")

    te = parser.add_argument_group("terrain masks")
    te.add_argument("--slope-min", type=_none_or_float, default=default("slope_min_deg"), metavar="DEG",
                    help="keep pixels with slope >= DEG degrees ('none' = no slope mask)")
    te.add_argument("--curv-min", type=_none_or_float, default=default("curv_min"), metavar="1/M",
                    help="keep pixels with Laplacian curvature >= this, in 1/m (negative = convex; "
                         "Handwerger et al. used -0.005, which removes ridge crests; 'none' = no curvature mask)")
    te.add_argument("--curv-sigma", type=float, default=default("curv_sigma_m"), metavar="M",
                    help="sigma of the Gaussian DEM smoothing before curvature, metres")
    te.add_argument("--curv-radius", type=float, default=default("curv_radius_m"), metavar="M",
                    help="radius of that Gaussian kernel, metres")
    te.add_argument("--water-mask", metavar="FILE", help="raster, non-zero = water (excluded)")

    th = parser.add_argument_group("threshold and candidates")
    ex = th.add_mutually_exclusive_group()
    ex.add_argument("--threshold", type=float, metavar="DB",
                    help=f"fixed A_ratio threshold in dB, exceedance is ratio > DB "
                         f"(default rule: {_default_rule()})")
    ex.add_argument("--percentile", type=float, metavar="P",
                    help="threshold at the exact P-th percentile of the masked ratio instead "
                         "(Handwerger et al. 2022 used 99)")
    ex.add_argument("--k-sigma", type=float, metavar="K",
                    help="threshold at the median of the masked ratio plus K robust standard deviations "
                         "(1.4826 x MAD) of it: scaled to the scene's own noise level")
    th.add_argument("--detrend", type=float, default=default("detrend_radius_m"), metavar="M",
                    help="remove the broad background change before thresholding: subtract the ratio's local "
                         "median within M metres (0 = off)")
    th.add_argument("--smooth-ratio", type=float, default=default("ratio_sigma_m"), metavar="M",
                    help="Gaussian smoothing of the ratio before thresholding, sigma in metres (0 = off)")
    th.add_argument("--min-area", type=float, default=default("min_area_m2"), metavar="M2",
                    help="drop candidate polygons smaller than this, square metres")
    th.add_argument("--heatmap-radius", type=float, default=default("heatmap_radius_m"), metavar="M",
                    help="radius of the landslide-density heatmap, metres")


class _ProgressBar:
    """One line on a terminal, a line per 10 % when piped (CI logs stay short)."""

    def __init__(self, stream=None):
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty()
        self.last_decile = -1
        self.last_draw = 0.0

    def __call__(self, fraction: float, message: str) -> None:
        pct = int(fraction * 100)
        if self.tty:
            now = time.monotonic()
            if now - self.last_draw > 0.1 or fraction >= 1:
                bar = "#" * (pct // 4) + "." * (25 - pct // 4)
                self.stream.write(f"\r[{bar}] {pct:3d}% {message[:60]:<60}")
                self.stream.flush()
                self.last_draw = now
        elif pct // 10 > self.last_decile:
            self.last_decile = pct // 10
            self.stream.write(f"[{pct:3d}%] {message}\n")
            self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")


def params_from_args(args):
    from ..core.catalog import parse_time
    from ..core.detect import DetectParams, threshold_rule_fields
    from ..core.grid import parse_aoi

    return DetectParams(
        event_time=parse_time(args.event),
        pre_days=args.pre_days,
        post_days=args.post_days,
        pre_range=args.pre_range,
        post_range=args.post_range,
        polarisation=args.polarisation,
        per_orbit=not args.merge_orbits,
        pixel_size=args.pixel_size,
        aoi=parse_aoi(args.aoi) if args.aoi else None,
        crs=args.crs,
        edge_noise_db=args.edge_noise_db,
        speckle_sigma_m=args.speckle_sigma,
        speckle_radius_m=2 * args.speckle_sigma,
        slope_min_deg=args.slope_min,
        curv_min=args.curv_min,
        curv_sigma_m=args.curv_sigma,
        curv_radius_m=args.curv_radius,
        water_mask=args.water_mask,
        **threshold_rule_fields(args.threshold, args.percentile, args.k_sigma),
        detrend_radius_m=args.detrend,
        ratio_sigma_m=args.smooth_ratio,
        ratio_radius_m=2 * args.smooth_ratio,
        min_area_m2=args.min_area,
        heatmap_radius_m=args.heatmap_radius,
        event_id=args.event_id,
        block_size=args.block_size,
    )


def resolve_model(args):
    """The model file to use: --model, else the shipped model; a clear error when neither exists."""
    from pathlib import Path

    from ..cli import CommandError

    if args.model:
        path = Path(args.model)
        if not path.is_file():
            raise CommandError(f"model file {path} does not exist")
        return path
    path = shipped_model_path()
    if not path.is_file():
        raise CommandError("no model given and no shipped model at landslide_sar_plugin/models/landslide_unet.onnx; "
                           "pass --model FILE or train one with `make train-demo`")
    return path


def run(args) -> int:
    from pathlib import Path

    from ..cli import CommandError
    from ..core.detect import DetectionError, run_detection

    method = getattr(args, "method", "a_ratio")
    try:
        params = params_from_args(args)
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    if args.source == "earthengine":
        return _run_earthengine(args, params, method)
    if not args.scenes or not args.dem:
        raise CommandError("--scenes DIR and --dem FILE are needed with the local source "
                           "(or use --source earthengine --aoi ... --project ID)")
    model_path = None
    if method in ("model", "both"):
        from ..core.model import ModelError, require_onnxruntime

        model_path = resolve_model(args)
        try:
            require_onnxruntime()
        except ModelError as exc:
            raise CommandError(str(exc)) from None
    out = Path(args.out)
    results = []
    bar = _ProgressBar()
    try:
        if method in ("a_ratio", "both"):
            results.append(("a_ratio", run_detection(args.scenes, args.dem, out / "a_ratio" if method == "both"
                                                     else out, params, progress=bar)))
        if method in ("model", "both"):
            from ..core.detect_model import run_model_detection

            results.append(("model", run_model_detection(
                args.scenes, args.dem, out / "model" if method == "both" else out, params, model_path,
                progress=bar, threshold=args.model_threshold, prefer_gpu=not args.cpu)))
        agreement = None
        if method == "both":
            from ..core.detect_model import write_agreement

            agreement = write_agreement(out / "a_ratio", out / "model", out / "agreement.tif",
                                        block_size=params.block_size, progress=bar)
    except (DetectionError, ValueError) as exc:  # ModelError is a ValueError
        bar.close()
        raise CommandError(str(exc)) from None
    bar.close()
    if results[0][1].synthetic:
        print("NOTE: the input scenes are SYNTHETIC (simulated); these results are for trying the tool only.")
    print("stacks used:")
    for line in results[0][1].selection.summary_lines():
        print(f"  {line}")
    grid = results[0][1].grid
    print(f"grid: {grid.width} x {grid.height} px at {grid.pixel_size:g} m ({grid.pixel_size_reason or 'given'})")
    for name, result in results:
        _report(name, result, args, method == "both")
    if agreement is not None:
        print(f"agreement (0 neither, 1 A_ratio only, 2 model only, 3 both): {agreement}")
    return 0


def _run_earthengine(args, params, method: str) -> int:
    from ..cli import CommandError
    from ..core.detect import DetectionError

    if method != "a_ratio":
        raise CommandError("--source earthengine runs the A_ratio method; run --method model on the downloaded "
                           "scenes (OUT/ee_inputs) with --source local")
    if params.aoi is None:
        raise CommandError("--source earthengine needs --aoi (a box xmin,ymin,xmax,ymax[,CRS] or a polygon file)")
    if not args.project:
        raise CommandError("--source earthengine needs --project ID (a Google Cloud project registered for Earth "
                           "Engine)")
    from ..core.earthengine import run_earthengine_detection

    bar = _ProgressBar()
    try:
        result = run_earthengine_detection(
            None, None, args.out, params, project=args.project, mode=args.ee_mode, orbit_pass=args.orbit_pass,
            service_account_key=args.service_account_key, cache_dir=False if args.no_ee_cache else args.ee_cache,
            progress=bar)
    except DetectionError as exc:  # EarthEngineError is one, with a message saying what to do
        bar.close()
        raise CommandError(str(exc)) from None
    bar.close()
    print("stacks used (Google Earth Engine, COPERNICUS/S1_GRD):")
    for line in result.selection.summary_lines():
        print(f"  {line}")
    _report("a_ratio", result, args, False)
    return 0


def _report(name, result, args, both: bool) -> None:
    import json

    prefix = f"[{name}] " if both else ""
    rule = result.run_info["threshold_rule"]
    if name == "model":
        m = result.model
        print(f"{prefix}model {m.model_name} ({m.path.name}, sha256 {m.sha256[:16]}...), composite {m.composite}, "
              f"passes {', '.join(result.passes_used)}, onnxruntime provider {result.provider}")
        reason = result.run_info.get("model_choice", {}).get("reason")
        if reason:
            print(f"{prefix}model choice: {reason}")
        print(f"{prefix}threshold: {result.threshold:.3f} probability ({rule}); {result.n_candidates} candidate "
              "polygons")
        score_key, vmin, vmax = "probability", -1.0, 1.0
    else:
        print(f"{prefix}threshold: {result.threshold_db:.3f} dB ({rule}); {result.n_candidates} candidate polygons")
        score_key, vmin, vmax = "a_ratio", -5.0, 5.0
    for key, path in sorted(result.files.items()):
        print(f"  {key:<22} {path}")
    if args.preview:
        from ..core.preview import render_preview

        png = render_preview(result.files[score_key], result.out_dir / "preview.png",
                             candidates_path=result.files["candidates"], truth_path=args.truth, vmin=vmin, vmax=vmax)
        print(f"  {'preview':<22} {png}")
    if args.truth:
        from ..core.metrics import evaluate_files

        report = evaluate_files(result.files["candidates"], args.truth)
        px = report["pixel"]
        obj = report["objects"]
        print(f"{prefix}against {args.truth}: precision {px['precision']:.3f}, recall {px['recall']:.3f}, "
              f"F1 {px['f1']:.3f}, IoU {px['iou']:.3f}; slides detected {obj['n_detected']}/{obj['n_truth']} "
              f"({obj['detection_rate']:.1%}), false alarms {obj['n_false_alarms']}")
        from ..core.raster_io import atomic_output

        with atomic_output(result.out_dir / "evaluation.json") as tmp:
            tmp.write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")
    print(f"{prefix}done in {result.timings_s['total_s']:.1f} s; outputs in {result.out_dir}")
