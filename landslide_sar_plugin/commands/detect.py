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


def _default_rule() -> str:
    from ..core.detect import default_rule_text

    return default_rule_text()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..core.detect import DetectParams
    from ..core.params import CANDIDATE_PARAMS, GRID_PARAMS, STACK_PARAMS, TERRAIN_PARAMS, add_cli_arguments

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
    me.add_argument("--model-tiles", choices=("large", "model"), default="large",
                    help="large: 256 px inference tiles for a fully convolutional model (faster; matches untiled "
                         "inference at tile borders); model: the tile size the model declares")
    me.add_argument("--write-composite", action="store_true",
                    help="also write the model's input stack on the run grid (composite.tif, one per track), without "
                         "NaN, to run the model in other tools such as the Deepness QGIS plugin")

    st = parser.add_argument_group("stacks")
    add_cli_arguments(st, *STACK_PARAMS)

    gr = parser.add_argument_group("grid")
    add_cli_arguments(gr, *GRID_PARAMS)

    te = parser.add_argument_group("terrain masks")
    add_cli_arguments(te, *TERRAIN_PARAMS)

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
    add_cli_arguments(th, *CANDIDATE_PARAMS)


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
    from ..core.params import detect_fields, values_from_namespace

    return DetectParams(
        event_time=parse_time(args.event),
        aoi=parse_aoi(args.aoi) if args.aoi else None,
        **threshold_rule_fields(args.threshold, args.percentile, args.k_sigma),
        event_id=args.event_id,
        **detect_fields(values_from_namespace(args)),
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


def _check_inputs_early(args, params) -> None:
    """Everything that can be refused before a pixel is computed: parameters and the --truth file."""
    from ..cli import CommandError
    from ..core.detect import DetectionError

    try:
        params.validate()
    except DetectionError as exc:
        raise CommandError(str(exc)) from None
    if args.truth:
        from ..core.metrics import check_readable

        try:
            check_readable(args.truth, "--truth")
        except ValueError as exc:
            raise CommandError(str(exc)) from None


def _extras(args, name: str):
    """The run's ``finalize``: stage preview.png and evaluation.json so they are published with the run."""
    score_key, vmin, vmax = ("probability", -1.0, 1.0) if name == "model" else ("a_ratio", -5.0, 5.0)

    def finalize(staging, result):
        from ..core.staging import write_json

        files = {}
        if args.preview:
            from ..core.preview import render_preview

            files["preview"] = render_preview(result.files[score_key], staging / "preview.png",
                                              candidates_path=result.files["candidates"], truth_path=args.truth,
                                              vmin=vmin, vmax=vmax)
        if args.truth:
            from ..core.metrics import evaluate_files

            report = evaluate_files(result.files["candidates"], args.truth)
            write_json(staging / "evaluation.json", report)
            files["evaluation"] = staging / "evaluation.json"
            result.run_info["evaluation"] = {"truth": str(args.truth), "pixel": report["pixel"],
                                             "objects": report["objects"]}
        return files

    return finalize


def run(args) -> int:
    from pathlib import Path

    from ..cli import CommandError
    from ..core.detect import DetectionError, run_detection

    method = getattr(args, "method", "a_ratio")
    try:
        params = params_from_args(args)
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    _check_inputs_early(args, params)
    if args.source == "earthengine":
        return _run_earthengine(args, params, method)
    if not args.scenes or not args.dem:
        raise CommandError("--scenes DIR and --dem FILE are needed with the local source "
                           "(or use --source earthengine --aoi ... --project ID)")
    model_path = None
    if method in ("model", "both"):
        from ..core.model import ModelError, read_model_info, require_onnxruntime

        model_path = resolve_model(args)
        try:
            require_onnxruntime()
            read_model_info(model_path)  # every metadata field checked before anything is read or written
        except ModelError as exc:
            raise CommandError(str(exc)) from None
    out = Path(args.out)
    bar = _ProgressBar()
    agreement = None
    try:
        if method == "a_ratio":
            results = [("a_ratio", run_detection(args.scenes, args.dem, out, params, progress=bar,
                                                 finalize=_extras(args, "a_ratio")))]
        elif method == "model":
            from ..core.detect_model import run_model_detection

            results = [("model", run_model_detection(
                args.scenes, args.dem, out, params, model_path, progress=bar, threshold=args.model_threshold,
                prefer_gpu=not args.cpu, tiling=args.model_tiles, finalize=_extras(args, "model"),
                write_composite=args.write_composite))]
        else:
            from ..core.detect_model import run_both_detection

            a_res, m_res, agreement = run_both_detection(
                args.scenes, args.dem, out, params, model_path, progress=bar, threshold=args.model_threshold,
                prefer_gpu=not args.cpu, tiling=args.model_tiles, finalize_a_ratio=_extras(args, "a_ratio"),
                finalize_model=_extras(args, "model"))
            results = [("a_ratio", a_res), ("model", m_res)]
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
            progress=bar, finalize=_extras(args, "a_ratio"))
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
    else:
        print(f"{prefix}threshold: {result.threshold_db:.3f} dB ({rule}); {result.n_candidates} candidate polygons")
    for key, path in sorted(result.files.items()):
        print(f"  {key:<22} {path}")
    evaluation = result.run_info.get("evaluation")
    if evaluation:
        px, obj = evaluation["pixel"], evaluation["objects"]
        print(f"{prefix}against {args.truth}: precision {_num(px['precision'])}, recall {_num(px['recall'])}, "
              f"F1 {_num(px['f1'])}, IoU {_num(px['iou'])}; slides detected {obj['n_detected']}/{obj['n_truth']} "
              f"({_pct(obj['detection_rate'])}), false alarms {obj['n_false_alarms']}")
    print(f"{prefix}done in {result.timings_s['total_s']:.1f} s; outputs in {result.out_dir}")


def _num(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _pct(value) -> str:
    return "n/a" if value is None else f"{value:.1%}"
