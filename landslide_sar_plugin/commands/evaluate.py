"""Score a landslide map against a reference inventory.

The prediction is a 0/1 mask raster, a score raster (probability 0..1 or
A_ratio in dB, thresholded at --threshold) or a GeoPackage of polygons; the
truth is a 0/1 mask raster or a GeoPackage of polygons.  Reports pixel
precision, recall, F1, IoU and MCC, AUPRC against the no-skill baseline (score
rasters only), the share of truth landslides detected and the number of false
alarms (predicted objects touching no truth pixel).  Everything is computed by
``landslide_sar_plugin.core.metrics.evaluate_files``.
"""

from __future__ import annotations

import argparse
import json
import math

from ..core.metrics import KINDS, evaluate_files
from ..core.raster_io import atomic_output

NAME = "evaluate"
HELP = "score a landslide map (mask, score raster or polygons) against reference landslides"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--pred",
        required=True,
        default=argparse.SUPPRESS,
        metavar="FILE",
        help="prediction: mask GeoTIFF (non-zero = landslide), score GeoTIFF, or GeoPackage of polygons",
    )
    parser.add_argument(
        "--truth",
        required=True,
        default=argparse.SUPPRESS,
        metavar="FILE",
        help="reference landslides: 0/1 mask GeoTIFF or GeoPackage of polygons",
    )
    parser.add_argument(
        "--json",
        metavar="OUT",
        default=argparse.SUPPRESS,
        help="write the full report as JSON to this file (written atomically); default: no file",
    )
    parser.add_argument(
        "--threshold",
        type=float,
        default=argparse.SUPPRESS,
        metavar="T",
        help="score threshold in the score's units (probability or dB); a pixel is predicted when "
        "score >= T; default: 0.5 for scores within [0, 1], otherwise required",
    )
    parser.add_argument(
        "--valid",
        metavar="FILE",
        default=argparse.SUPPRESS,
        help="raster (non-zero = evaluate) or GeoPackage (inside = evaluate) limiting the evaluated area; "
        "default: every pixel with data in both inputs",
    )
    parser.add_argument(
        "--grid",
        metavar="FILE",
        default=argparse.SUPPRESS,
        help="reference raster whose grid is used (required when both inputs are polygons); "
        "default: the truth raster, else the prediction raster",
    )
    parser.add_argument(
        "--kind",
        choices=("auto", *KINDS),
        default="auto",
        help="kind of --pred; auto: GeoPackage = polygons, float raster with values other than 0/1 = score, else mask",
    )
    parser.add_argument(
        "--min-overlap",
        type=float,
        default=0.0,
        metavar="FRACTION",
        help="object matching: minimum share (0..1) of an object's pixels that must overlap the other map; "
        "0 means any overlap",
    )
    parser.add_argument(
        "--auprc-bins",
        type=int,
        default=argparse.SUPPRESS,
        metavar="N",
        help="compute AUPRC from an N-bin score histogram (fast, approximate, for huge rasters); default: exact",
    )


def _fmt(value, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.{digits}f}"


def summary(report: dict) -> str:
    """A compact human-readable summary of an :func:`evaluate_files` report."""
    pred = report["inputs"]["pred"]
    px = report["pixel"]
    ob = report["objects"]
    lines = [
        f"prediction: {pred['path']} ({pred['kind']}"
        + (f", threshold {pred['threshold']:g} [{pred['threshold_source']}]" if "threshold" in pred else "")
        + ")",
        f"truth:      {report['inputs']['truth']['path']} ({report['inputs']['truth']['kind']})",
        f"valid pixels: {report['n_valid']} of {report['n_pixels']}",
        f"pixels: TP {px['tp']}  FP {px['fp']}  FN {px['fn']}  TN {px['tn']}",
        (
            f"  precision {_fmt(px['precision'])}  recall {_fmt(px['recall'])}  F1 {_fmt(px['f1'])}  "
            f"IoU {_fmt(px['iou'])}  MCC {_fmt(px['mcc'])}"
        ),
    ]
    rk = report.get("ranking")
    if rk:
        best = rk["best_f1"]
        lines.append(
            f"  AUPRC {_fmt(rk['average_precision'])} (no-skill {_fmt(rk['no_skill'], 4)}); "
            f"best F1 {_fmt(best['f1'])} at threshold {_fmt(best['threshold'], 4)}"
        )
    else:
        lines.append("  AUPRC n/a (the prediction has no scores)")
    lines.append(
        f"objects: detected {ob['n_detected']} of {ob['n_truth']} landslides "
        f"(rate {_fmt(ob['detection_rate'])}); false alarms {ob['n_false_alarms']} "
        f"of {ob['n_pred_objects']} predicted objects"
    )
    if ob.get("truth_polygons_without_pixel"):
        lines.append(f"  note: {ob['truth_polygons_without_pixel']} truth polygon(s) cover no pixel centre")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    # Options left out are absent from ``args``: default=SUPPRESS keeps
    # "(default: None)" out of --help.
    def opt(name, default=None):
        return getattr(args, name, default)

    report = evaluate_files(
        args.pred,
        args.truth,
        kind=opt("kind", "auto"),
        threshold=opt("threshold"),
        valid=opt("valid"),
        grid=opt("grid"),
        min_overlap=opt("min_overlap", 0.0),
        auprc_bins=opt("auprc_bins"),
    )
    print(summary(report))
    out = opt("json")
    if out:
        with atomic_output(out) as tmp:
            tmp.write_text(json.dumps(report, indent=2, allow_nan=False) + "\n", encoding="utf-8")
        print(f"report written to {out}")
    return 0
