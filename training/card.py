"""The model card, its tables and the machine-readable metrics, from one experiment's records.

Every figure in the card comes from :mod:`training.family_eval` (the plugin's own runs) on test events
that no training step, calibration or threshold choice saw.  The card states plainly what the data was:
simulated scenes and real Sentinel-1 backgrounds with SYNTHETIC slides imprinted; no real landslide event.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from pathlib import Path

import numpy as np

from landslide_sar_plugin.core.detect import DetectParams
from landslide_sar_plugin.core.model import file_sha256

FAMILY_TITLES = {
    "real_background": "real-background REPORT cases (real OPERA RTC-S1 backscatter, SYNTHETIC slides imprinted; "
                       "bursts and dates never used in training or for any choice)",
    "simulator": "the project's simulator (SYNTHETIC; seeds never used in training or validation)",
    "altgen": "the independent generator altgen (SYNTHETIC; a family never used in training or for any choice)",
}
REAL_WARNING = ("**No real landslide event was used to train, validate or test this model, and it has NOT been "
                "validated on a real landslide event** (none can be reached from the project's machines). It was "
                "trained on SYNTHETIC scenes of the project's simulator and on REAL Sentinel-1 backgrounds (NASA OPERA "
                "RTC-S1, no event) with SYNTHETIC landslides imprinted. Every figure below is measured on simulated "
                "events or on real backgrounds with imprinted slides ('real-background' cases), never on a real "
                "event. Treat its output as candidates for an analyst to review.")


def _f(v, nd=3) -> str:
    return "n/a" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:.{nd}f}"


def _pct(v) -> str:
    return "n/a" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{100 * v:.2f} %"


def a_ratio_defaults() -> dict:
    """The A_ratio settings the baseline ran with (``DetectParams()`` at evaluation time)."""
    keys = ("polarisation", "speckle_sigma_m", "slope_min_deg", "curv_min", "threshold_db", "percentile", "k_sigma",
            "detrend_radius_m", "ratio_sigma_m", "min_area_m2")
    # an instance, not the field defaults: the default threshold rule is applied when none is given
    params = DetectParams(event_time=dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc))
    return {f.name: getattr(params, f.name) for f in dataclasses.fields(DetectParams) if f.name in keys}


def a_ratio_rule_text(d: dict) -> str:
    if d.get("k_sigma") is not None:
        rule = f"k_sigma {d['k_sigma']:g}"
    elif d.get("percentile") is not None:
        rule = f"percentile {d['percentile']:g}"
    else:
        rule = f"fixed {d.get('threshold_db'):g} dB"
    return (f"{rule}, speckle sigma {d['speckle_sigma_m']:g} m, slope >= {d['slope_min_deg']} deg, detrend "
            f"{d.get('detrend_radius_m', 0):g} m, ratio smoothing {d.get('ratio_sigma_m', 0):g} m, min area "
            f"{d['min_area_m2']:g} m2, polarisation {d['polarisation']}")


# --------------------------------------------------------------------------- targets


def targets(summary: dict, records) -> list[dict]:
    """The issue's targets, each with the measured values and whether it is met."""
    fam = summary["families"]
    out = []
    rb = fam.get("real_background")
    if rb and "a_ratio" in rb:
        vh = [r for r in records if r["family"] == "real_background" and r["polarisations"] == ["VH"]]
        out.append({"target": "real-background report cases: model mean F1 >= A_ratio defaults + 0.05",
                    "model": rb["model"]["mean_f1"], "a_ratio": rb["a_ratio"]["mean_f1"],
                    "met": rb["model"]["mean_f1"] >= rb["a_ratio"]["mean_f1"] + 0.05,
                    "note": f"{rb['n_events']} imprinted cases, {len(vh)} of them VH-only"})
        if rb.get("n_no_change"):
            share = rb["model"].get("no_change_land_share_mean", math.nan)
            out.append({"target": "real no-change cases: model candidates cover <= 1 % of land (mean)",
                        "model": share, "a_ratio": rb["a_ratio"].get("no_change_land_share_mean"),
                        "met": share <= 0.01,
                        "note": f"{rb['n_no_change']} cases, max {_pct(rb['model']['no_change_land_share_max'])}"})
    ag = fam.get("altgen")
    if ag and "a_ratio" in ag:
        ev = [r for r in records if r["family"] == "altgen" and "f1" in r["model"]]
        wins = sum(r["model"]["auprc"] > r["a_ratio"]["auprc"] for r in ev)
        out.append({"target": "altgen (family never trained on): model mean F1 >= A_ratio + 0.05 at the shipped "
                              "threshold", "model": ag["model"]["mean_f1"], "a_ratio": ag["a_ratio"]["mean_f1"],
                    "met": ag["model"]["mean_f1"] >= ag["a_ratio"]["mean_f1"] + 0.05, "note": f"{len(ev)} events"})
        out.append({"target": "altgen: model AUPRC above A_ratio's on each event", "model": wins, "a_ratio": len(ev),
                    "met": wins == len(ev), "note": f"{wins} of {len(ev)} events"})
    sm = fam.get("simulator")
    if sm and "a_ratio" in sm:
        out.append({"target": "simulator's unseen events: model mean F1 no worse than A_ratio",
                    "model": sm["model"]["mean_f1"], "a_ratio": sm["a_ratio"]["mean_f1"],
                    "met": sm["model"]["mean_f1"] >= sm["a_ratio"]["mean_f1"], "note": f"{sm['n_events']} events"})
    return out


def targets_table(rows) -> str:
    lines = ["| target | model | A_ratio | met | note |", "|---|---|---|---|---|"]
    for t in rows:
        fmt = _pct if "1 %" in t["target"] else (lambda v: str(v) if isinstance(v, int) else _f(v))
        lines.append(f"| {t['target']} | {fmt(t['model'])} | {fmt(t['a_ratio'])} | {'yes' if t['met'] else 'NO'} | "
                     f"{t['note']} |")
    return "\n".join(lines)


# --------------------------------------------------------------------------- per-event tables


def event_table(records, family: str) -> str:
    rows = ["| event | passes | pol. | slide px | model F1 @thr | model best F1 | model AUPRC | A_ratio F1 | "
            "A_ratio best F1 | A_ratio AUPRC | no-skill AUPRC |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in records:
        if r["family"] != family or "f1" not in r["model"]:
            continue
        m, a = r["model"], r.get("a_ratio") or {}
        rows.append(f"| {r['event_id']} | {'+'.join(r['passes'])} | {'+'.join(r['polarisations'])} | "
                    f"{r['landslide_pixels']} | {_f(m['f1'])} | {_f(m['best_f1']['f1'])} | {_f(m['auprc'])} | "
                    f"{_f(a.get('f1'))} | {_f((a.get('best_f1') or {}).get('f1'))} | {_f(a.get('auprc'))} | "
                    f"{_f(m['no_skill_auprc'], 4)} |")
    return "\n".join(rows)


def no_change_table(records) -> str:
    rows = ["| case | model: land in candidates | A_ratio: land in candidates |", "|---|---|---|"]
    for r in records:
        if "land_share_in_candidates" in r["model"]:
            rows.append(f"| {r['event_id']} | {_pct(r['model']['land_share_in_candidates'])} | "
                        f"{_pct((r.get('a_ratio') or {}).get('land_share_in_candidates'))} |")
    return "\n".join(rows)


def one_pass_table(records) -> str:
    rows = ["| event | model F1 asc / desc / both | model AUPRC asc / desc / both | A_ratio F1 asc / desc / both | "
            "A_ratio AUPRC asc / desc / both |", "|---|---|---|---|---|"]
    for r in records:
        op = r.get("one_pass")
        if not op:
            continue
        cells = []
        for method in ("model", "a_ratio"):
            if method not in op:
                cells += ["-", "-"]
                continue
            for key in ("f1", "auprc"):
                vals = [op[method].get(p, {}).get(key) for p in ("asc", "desc")] + [r[method].get(key)]
                cells.append(" / ".join(_f(v) for v in vals))
        rows.append(f"| {r['family']}: {r['event_id']} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def one_pass_summary(records) -> dict:
    """Mean F1 of each method with the better single pass, the worse one, and both passes."""
    out = {}
    for method in ("model", "a_ratio"):
        best, worst, both = [], [], []
        for r in records:
            op = (r.get("one_pass") or {}).get(method)
            if not op:
                continue
            f = [op[p]["f1"] for p in op]
            best.append(max(f))
            worst.append(min(f))
            both.append(r[method]["f1"])
        if both:
            out[method] = {"better_pass": float(np.mean(best)), "worse_pass": float(np.mean(worst)),
                           "both_passes": float(np.mean(both)), "n_events": len(both)}
    return out


def calibration_table(calib: dict) -> str:
    rows = ["| family | pixels | landslide share | ECE | ECE (p >= 0.05) | reliability: mean p -> observed share "
            "(n) |", "|---|---|---|---|---|---|"]
    for fam, c in calib.items():
        bins = "; ".join(f"{b['mean_probability']:.2f}->{b['observed_share']:.2f} ({b['n']})" for b in c["bins"]
                         if b["n"])
        rows.append(f"| {fam} | {c['n_pixels']} | {_f(c['positive_share'], 4)} | {_f(c['ece'], 4)} | "
                    f"{_f(c['ece_p_ge_0.05'], 3)} | {bins} |")
    return "\n".join(rows)


def summary_table(summary: dict) -> str:
    rows = ["| family | events | model mean F1 @thr | A_ratio mean F1 | model mean best F1 | A_ratio mean best F1 | "
            "model mean AUPRC | A_ratio mean AUPRC | no-skill | model AUPRC > A_ratio | no-change land: model / "
            "A_ratio |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for fam, s in summary["families"].items():
        m, a = s.get("model", {}), s.get("a_ratio", {})
        nc = (f"{_pct(m.get('no_change_land_share_mean'))} / {_pct(a.get('no_change_land_share_mean'))}"
              if s.get("n_no_change") else "-")
        rows.append(f"| {fam} | {s['n_events']} | {_f(m.get('mean_f1'))} | {_f(a.get('mean_f1'))} | "
                    f"{_f(m.get('mean_best_f1'))} | {_f(a.get('mean_best_f1'))} | {_f(m.get('mean_auprc'))} | "
                    f"{_f(a.get('mean_auprc'))} | {_f(s.get('mean_no_skill_auprc'), 4)} | "
                    f"{s.get('model_auprc_above_a_ratio', '-')} | {nc} |")
    return "\n".join(rows)


# --------------------------------------------------------------------------- the card


def _n_val(ctx: dict, prefix: str) -> int:
    """Validation events with slides whose id starts with ``prefix``."""
    return sum(e.startswith(prefix) and "no_change" not in e for e in ctx.get("validation_events", []))


def _stopped(history: dict) -> str:
    if history.get("stopped") == "max_epochs":
        return f"stopped at the epoch limit ({len(history.get('epochs', []))} epochs)"
    return f"stopped by {history.get('stopped')}"


def model_card(*, info, context: dict, records, summary: dict, onnx_path: Path, command: str,
               design: dict | None = None) -> str:
    ctx, rec = context, context["recipe"]
    counts = ctx["counts"]
    kinds = counts["train_chips_by_kind"]
    cal, thr = ctx["calibration"], ctx["threshold"]
    cfg = ctx["train_config"]
    ard = context.get("a_ratio_defaults") or a_ratio_defaults()
    tg = targets(summary, records)
    lines = [
        f"# Model card: {info.model_name}", "", REAL_WARNING, "",
        "## What it is", "",
        f"- Architecture: {info.architecture} ({cfg['depth']} levels, {cfg['base_filters']} base filters, "
        f"{ctx['n_parameters']:,} parameters), Platt-calibrated sigmoid inside the graph; ONNX opset 17, dynamic "
        f"batch and tile size; file `{onnx_path.name}` ({onnx_path.stat().st_size / 1e6:.2f} MB, sha256 "
        f"`{file_sha256(onnx_path)[:16]}...`).",
        (f"- Input: composite **{info.composite}** ({len(info.band_names)} bands: {', '.join(info.band_names)})."
         if not (rec.get("joint_passes") and rec.get("detrend_radius_m")) else
         f"- Input: composite **{info.composite}** ({len(info.band_names)} bands): per orbit pass the log ratio of the "
         f"pre- and post-event medians minus its local median within {rec.get('detrend_radius_m', 0):g} m (VH and VV, "
         "dB: the change that stands out from the broad, date-specific background change), the pre-event median "
         "levels (dB, context) and a flag per polarisation (1 = present); the ascending and descending blocks side by "
         "side (**both passes seen jointly**; a missing pass is flagged, not averaged in), then the slope (deg)."),
        "- One model for dual-pol and single-pol stacks: the run uses both polarisations when the stacks hold them, "
        "else the one they hold (VH-only OPERA stacks run without any option); it says which in `run.json` "
        "(`model_choice`), on the command line and in the dock.",
        f"- Pixel sizes: trained on {info.pixel_size_range_m[0]:g} m and {info.pixel_size_range_m[1]:g} m grids "
        "(Sentinel-1 GRD at 10 m, OPERA RTC-S1 at 30 m); it runs on the finest input resolution without resampling "
        "when that lies in 7.5-37.5 m.",
        f"- Normalisation: per-band standardisation from the training chips (flags unscaled; the two pass blocks share "
        f"statistics); NaN -> 0 after normalisation. Tiles {info.tile_size} px, overlap {info.tile_overlap} px.",
        f"- Calibration: Platt scaling of the network's logit, `sigmoid({cal['a']:.3f} z {cal['b']:+.3f})`, fitted on "
        f"every pixel of the validation events ({cal.get('n_pixels', 0):,} pixels; each validation family weighted "
        "alike, so the 10 m simulated events do not outvote the 30 m real crops).",
        f"- Threshold **{info.threshold:.2f}**: the best mean pixel F1 ({_f(thr['validation_mean_f1'])}) over the "
        f"validation events with slides, among thresholds whose candidates cover at most "
        f"{100 * thr['max_false_alarm']:.1f} % of the land on the validation no-change cases (there: "
        f"{_pct(thr['validation_no_change_land_share'])}).", "",
        "## Data", "",
        f"- Training chips ({counts['train_chips']}, {counts['train_positive_chips']} with landslides; "
        f"{info.tile_size} px): {kinds['simulator_10m']} from {counts['train_sim_events']} SYNTHETIC events of the "
        f"calibrated simulator on a 10 m grid and {kinds['simulator_30m']} from the same events on a 30 m grid; "
        f"{kinds['real_background_imprinted']} real-background chips (REAL OPERA RTC-S1 backscatter of the tuning "
        "burst T137-292319-IW2, 2021 and 2022 dates only, with SYNTHETIC slides imprinted, both regimes, many windows "
        f"and seeds) and {kinds['real_background_no_change_ocean']} real no-change chips of the two ocean bursts.",
        f"- Validation (early stopping, calibration, threshold; {counts['val_chips']} chips): the real-background "
        "tuning cases of burst T137-292321-IW2 (a background never trained on; imprinted and no-change) and "
        f"simulated events of other seeds: {', '.join(ctx['validation_events'])}.",
        "- The validation families are also training families (other bursts, other seeds): no fourth generator "
        "was available for validation, and altgen is kept for testing only. What keeps the threshold and the "
        "calibration off training-like events: the validation real background is a burst the model never saw, the "
        "calibration weighs its family as much as the simulator's, and the threshold maximises the mean F1 over "
        f"events ({_n_val(ctx, 'tuning_')} real-background cases, {_n_val(ctx, 'sim_')} simulated).",
        "- Test (below): the real-background REPORT cases (bursts T137-292320-IW2 and -292322-IW2, the 2023 season and "
        "the windows a year apart, VH-only cases included), simulated events of other seeds, and events of altgen, an "
        "independent generator whose every modelling choice differs from the simulator's and which no training or "
        "choice ever saw. Nothing of a test event reached training, the calibration or the threshold.",
        f"- Training data sha256 `{ctx['training_data_sha256'][:16]}...`.", "",
        "## Training", "",
        f"- Loss {cfg['loss']}, Adam lr {cfg['lr']}, ReduceLROnPlateau, {_stopped(ctx['history'])} (best epoch "
        f"{ctx['history']['best_epoch']}), seed {cfg['seed']}; augmentation: flips (the left-right flip swaps the "
        "passes: a mirrored east-looking pass is a west-looking one), pass dropout, polarisation dropout, terrain "
        "dropout (slope is weak evidence), level offsets of +-2 dB, blur, noise in dB, motion blur, crop and resize; "
        "no rotation.",
        f"- Trained on CPU in {ctx['history']['train_seconds'] / 60:.1f} min (whole run "
        f"{ctx['timings_s']['total'] / 60:.1f} min); reproduce with `{command}`.", "",
        "## Results on held-out events", "",
        f"A_ratio beside it: `core.detect` with the defaults current at evaluation time ({a_ratio_rule_text(ard)}). "
        "'best F1' = the threshold chosen on that very event (an oracle no analyst has); 'F1 @thr' = the candidate "
        "polygons each method gives by default. AUPRC with its no-skill baseline (the landslide share).", "",
        "### Targets", "", targets_table(tg), "",
        "### Per family", "", summary_table(summary), "",
    ]
    for fam in ("real_background", "altgen", "simulator"):
        if any(r["family"] == fam for r in records):
            lines += [f"### {FAMILY_TITLES[fam]}", "", event_table(records, fam), ""]
            if fam == "real_background":
                lines += ["No-change cases (nothing imprinted: every candidate is a false alarm):", "",
                          no_change_table(records), ""]
    ops = one_pass_summary(records)
    lines += ["### One pass vs both passes", "",
              "Events with both orbit passes, run on each pass alone (its scenes only) and on both:", "",
              one_pass_table(records), ""]
    if ops:
        lines.append("Mean F1: " + "; ".join(
            f"{m} better pass {_f(v['better_pass'])}, worse pass {_f(v['worse_pass'])}, both {_f(v['both_passes'])}"
            for m, v in ops.items()) + ".")
        lines.append("")
    lines += ["### Calibration (test events)", "",
              "Reliability of the probability on the test events, per family (equal-width bins):", "",
              calibration_table(summary["calibration"]), ""]
    if design:
        lines += ["## Design choices (validation families only)", "", design.get("table", ""), "",
                  design.get("text", ""), ""]
    lines += [
        "## Intended use", "",
        "Rapid, analyst-reviewed mapping of candidate event landslides (earthquake or rainfall triggered) from "
        "Sentinel-1 pre/post stacks (GRD at 10 m, OPERA RTC-S1 at 30 m; dual- or single-pol) in the QGIS plugin, next "
        "to the A_ratio method; candidates go to review and corrected polygons back into the inventory "
        "(`python -m training finetune`).", "",
        "## Limitations", "",
        "- **No real landslide event**: the figures are simulated events and real backgrounds with synthetic slides; "
        "real scars may differ from both generators' (the imprinted change spread is an assumption). Expect lower "
        "skill on real events until fine-tuned on reviewed real inventories.",
        "- The real backgrounds come from one track (137 ascending) over one landscape (Santa Ynez Mountains); their "
        "DEM is synthetic, so slope there is no real evidence.",
        "- Landslides in radar shadow or layover, or with no backscatter change, are not detectable.",
        "- Slides smaller than about two pixels (200 m2 at 10 m, 1800 m2 at 30 m) are rarely resolved.", "",
    ]
    return "\n".join(lines)
