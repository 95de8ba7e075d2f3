"""The calibration table: real OPERA RTC-S1 bursts and simulated stacks through one computation.

Reads real bursts (one folder of OPERA L2 RTC-S1 GeoTIFFs per burst, linear
gamma0, dates in the file names), simulates no-change stacks on the same
dates with :func:`..simulate.simulate_stack`, runs
:func:`.calibration.stack_statistics` on both, and writes the report as JSON
and Markdown.  ``python -m landslide_sar_plugin calibrate`` (``make
calibration``) is the command line over it.

Real RTC vs simulated GRD
    The real products are terrain-flattened gamma0; the simulator writes
    ellipsoid-normalised sigma0 with the terrain modulation in it.  Every
    temporal statistic here is a difference of dates of one track (A_ratio,
    offsets, deviations from the temporal median), in which a static,
    per-pixel radiometric factor cancels exactly, so both are compared as
    they are.  Only the *levels* differ by that factor; they are reported
    side by side, not fitted (the simulator's levels are set by its
    calibration sites and :func:`..simulate.drawn_world`).

Masks
    Real: land = temporal median VH above ``WATER_VH_DB`` (-24 dB; open
    water in these bursts sits at the -28 dB noise floor), water the rest.
    Simulated: land = every class but water, per class from the land-cover
    truth; at 30 m a block belongs to a class only when all its 10 m pixels do.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from . import LANDCOVER_CLASSES, SimulationConfig, simulate_stack
from .calibration import block_average_db, block_mask, nanmean, stack_statistics

WATER_VH_DB = -24.0
TARGET_PIXEL_M = 30.0
REFERENCE_FILE = Path(__file__).with_name("real_calibration.json")


def _opera_layer(name: str) -> tuple[str, str] | None:
    """(start, polarisation) of an OPERA RTC-S1 backscatter file name, else None (one parser: sources.opera)."""
    from ..sources import opera

    try:
        parsed = opera.parse_name(name)
    except opera.OperaNameError:
        return None
    if parsed is None or parsed.polarisation is None:
        return None
    return f"{parsed.start:%Y%m%dT%H%M%S}", parsed.polarisation


# --------------------------------------------------------------------------- real bursts


def read_opera_burst(folder: str | Path) -> dict:
    """One burst's VV and VH stacks in dB from OPERA RTC-S1 files named as OPERA names them.

    Returns ``name``, ``dates`` (aware UTC), ``VV``, ``VH`` (float64 dB,
    dates x rows x cols; non-positive power is NaN) and ``pixel_size_m``.
    Raises ValueError, naming the folder, when it holds no OPERA file or a
    date lacks one of the two polarisations.
    """
    import rasterio

    folder = Path(folder)
    found: dict[tuple[str, str], Path] = {}
    for path in sorted(folder.glob("*.tif")):
        layer = _opera_layer(path.name)
        if layer:
            found[layer] = path
    starts = sorted({start for start, _ in found})
    if not starts:
        raise ValueError(f"{folder} holds no OPERA L2 RTC-S1 GeoTIFF (OPERA_L2_RTC-S1_T..._VV.tif / _VH.tif)")
    stacks, pixel = {}, None
    for pol in ("VV", "VH"):
        layers = []
        for start in starts:
            if (start, pol) not in found:
                raise ValueError(f"{folder}: the acquisition {start} has no {pol} file; give both polarisations")
            with rasterio.open(found[(start, pol)]) as ds:
                power = ds.read(1).astype(np.float64)
                pixel = abs(ds.transform.a)
            with np.errstate(divide="ignore", invalid="ignore"):
                layers.append(np.where(power > 0, 10.0 * np.log10(power), np.nan))
        stacks[pol] = np.stack(layers)
    dates = [_dt.datetime.strptime(s, "%Y%m%dT%H%M%S").replace(tzinfo=_dt.timezone.utc) for s in starts]
    return {"name": folder.name, "dates": dates, "VV": stacks["VV"], "VH": stacks["VH"], "pixel_size_m": pixel}


def burst_folders(paths: Sequence[str | Path]) -> list[Path]:
    """Burst folders from folders given: a folder with OPERA files is a burst, else its sub-folders are."""
    out = []
    for p in map(Path, paths):
        if not p.is_dir():
            raise ValueError(f"{p} is not a folder of OPERA RTC-S1 bursts")
        if any(_opera_layer(f.name) for f in p.glob("*.tif")):
            out.append(p)
        else:
            subs = sorted(d for d in p.iterdir()
                          if d.is_dir() and any(_opera_layer(f.name) for f in d.glob("*.tif")))
            if not subs:
                raise ValueError(f"{p} holds no OPERA RTC-S1 burst (no OPERA_L2_RTC-S1_*.tif in it or below it)")
            out.extend(subs)
    return out


def real_burst_statistics(burst: dict, n_pre: int, n_post: int) -> dict:
    """Statistics of a real burst: per polarisation, over land (or over water for a mostly-water burst)."""
    with np.errstate(all="ignore"):
        median_vh = np.nanmedian(burst["VH"], axis=0)
    land = median_vh > WATER_VH_DB
    surface = "land" if land.mean() >= 0.5 else "water"
    mask = land if surface == "land" else ~land
    classes = {"land": land, "water": ~land}
    out = {"name": burst["name"], "surface": surface, "pixel_size_m": burst["pixel_size_m"],
           "dates": [d.strftime("%Y-%m-%dT%H:%M:%SZ") for d in burst["dates"]],
           "land_fraction": float(land.mean()), "polarisations": {}}
    for pol in ("VV", "VH"):
        out["polarisations"][pol] = stack_statistics(burst[pol], burst["dates"], burst["pixel_size_m"], mask,
                                                     classes, n_pre, n_post)
    return out


# --------------------------------------------------------------------------- simulated stacks


def simulated_statistics(config: SimulationConfig, dates: Sequence[_dt.datetime], n_pre: int, n_post: int,
                         label: str) -> dict:
    """Statistics of a simulated no-change stack on ``dates`` (ascending), at 10 m and block-averaged to 30 m."""
    stack = simulate_stack(config, dates, "ASCENDING")
    px = stack["pixel_size_m"]
    factor = max(int(round(TARGET_PIXEL_M / px)), 1)
    lc = stack["landcover"]
    classes = {LANDCOVER_CLASSES[c]: lc == c for c in sorted(set(np.unique(lc).tolist()) - {0})}
    land = lc != 5
    times = stack["times"]
    out = {"name": label, "surface": "land", "config": _config_summary(config.resolved()),
           "land_fraction": float(land.mean()), "resolutions": {}}
    for res_m, f in ((px, 1), (px * factor, factor)):
        res = {}
        cls = {k: block_mask(v, f) for k, v in classes.items()}
        for pol in ("VV", "VH"):
            db = block_average_db(stack[pol], f)
            stats = stack_statistics(db, times, res_m, block_mask(land, f), cls, n_pre, n_post)
            stats["by_class"] = {k: stack_statistics(db, times, res_m, m, None, n_pre, n_post)["summary"]
                                 for k, m in cls.items() if m.sum() >= 200 and k != "water"}
            res[pol] = stats
        out["resolutions"][f"{res_m:g}m"] = res
    return out


def _config_summary(cfg: SimulationConfig) -> dict:
    keys = ("seed", "rows", "cols", "pixel_size", "calibration", "relief_m", "speckle_resolution_m", "wet_gain",
            "wet_pattern_sd", "wet_pattern_persistence", "change_corr_m", "change_sd_db", "calibration_jitter_db",
            "rain_interval_days")
    d = {k: getattr(cfg, k) for k in keys}
    d["forest_vv_db"], d["forest_vh_db"] = cfg.forest_level_db("VV"), cfg.forest_level_db("VH")
    return d


# --------------------------------------------------------------------------- the table


HEADLINE = (("std_db", "A_ratio std (dB)"), ("robust_sigma_db", "robust sigma (dB)"),
            ("share_gt_1_db", "> 1 dB"), ("share_gt_1p25_db", "> 1.25 dB"), ("share_gt_2_db", "> 2 dB"),
            ("share_gt_3_db", "> 3 dB"))


def headline(stats: dict) -> dict:
    """The numbers of one row of the table from one polarisation's :func:`stack_statistics`."""
    allp = stats["summary"].get("all", {})
    row = {k: allp.get(k, float("nan")) for k, _ in HEADLINE}
    row["consecutive_std_db"] = stats["summary"].get("consecutive", {}).get("std_db", float("nan"))
    row["year_apart_std_db"] = stats["summary"].get("year_apart", {}).get("std_db", float("nan"))
    corr = stats["correlation"]
    row.update(e_folding_m=corr["e_folding_m"], e_folding_lower_bound=corr["lower_bound"],
               correlated_sd_db=corr["correlated_sd_db"], white_variance_db2=corr["white_variance_db2"],
               offsets_std_db=stats["offsets"]["std_db"], offsets_robust_sigma_db=stats["offsets"]["robust_sigma_db"],
               offsets_max_abs_db=stats["offsets"]["max_abs_db"],
               single_date_iqr_sigma_db=stats["single_date_difference"]["iqr_sigma_db"])
    return row


def mean_rows(rows: Sequence[dict]) -> dict:
    """Mean of each numeric field of several rows (a group of bursts or of simulated seeds)."""
    keys = [k for k, v in rows[0].items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    out = {k: float(nanmean([r[k] for r in rows])) for k in keys}
    out["e_folding_lower_bound"] = any(r.get("e_folding_lower_bound") for r in rows)
    out["n"] = len(rows)
    return out


def build_report(real: Sequence[dict], tuning: Sequence[str], simulated: Sequence[dict], n_pre: int,
                 n_post: int, published: dict | None = None) -> dict:
    """Group the real bursts (tuning / report land / water) and simulated groups, with headline rows at 30 m."""
    groups: dict[str, list] = {}
    for b in real:
        key = "water" if b["surface"] == "water" else ("tuning" if b["name"] in tuning else "report")
        groups.setdefault(key, []).append(b)
    table = {}
    for key, bursts in groups.items():
        for pol in ("VV", "VH"):
            rows = {b["name"]: headline(b["polarisations"][pol]) for b in bursts}
            table.setdefault(f"real_{key}", {})[pol] = {"mean": mean_rows(list(rows.values())), "bursts": rows}
    for sim in simulated:
        for res in sim["runs"][0]["resolutions"]:
            for pol in ("VV", "VH"):
                rows = {r["name"]: headline(r["resolutions"][res][pol]) for r in sim["runs"]}
                table.setdefault(f"sim_{sim['group']}_{res}", {})[pol] = {"mean": mean_rows(list(rows.values())),
                                                                          "runs": rows}
    return {"synthetic_rows_are_simulated": True, "layout": {"n_pre": n_pre, "n_post": n_post},
            "tuning_bursts": list(tuning), "table": table, "published_10m": published or {},
            "real": list(real), "simulated": list(simulated)}


def reference_numbers(report: dict) -> dict:
    """The real-data numbers the tests and the docstring table quote (no pixels; ships with the package)."""
    ref = {"source": "OPERA L2 RTC-S1, Sentinel-1 track 137 ascending, 100 x 100 px crops at 30 m (real data; "
                     "credit: NASA/JPL OPERA, contains modified Copernicus Sentinel data; crops from the "
                     "opera-adt/dist-s1 test data, Apache-2.0)",
           "layout": report["layout"], "tuning_bursts": report["tuning_bursts"], "groups": {}}
    for key, value in report["table"].items():
        if key.startswith("real_"):
            ref["groups"][key[5:]] = {pol: {**v["mean"], "bursts": v["bursts"]} for pol, v in value.items()}
    first = next((b for b in report["real"] if b["surface"] == "land"), None)
    ref["dates"] = first["dates"] if first else []
    return ref


def load_reference(path: str | Path = REFERENCE_FILE) -> dict:
    """The shipped real-data reference numbers (written by ``make calibration``)."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


def reference_dates(reference: dict) -> list[_dt.datetime]:
    return [_dt.datetime.strptime(d, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=_dt.timezone.utc)
            for d in reference["dates"]]


# --------------------------------------------------------------------------- published 10 m figures


def published_statistics(stats_dir: str | Path) -> dict:
    """10 m reference figures from real labelled datasets, each said exactly what it is (missing files: skipped)."""
    stats_dir = Path(stats_dir)
    out = {}
    zindi = stats_dir / "zindi_landslide_S1S2_channel_stats_MM-LandslideNet.json"
    if zindi.is_file():
        out["mm_landslidenet"] = _zindi_figures(json.loads(zindi.read_text(encoding="utf-8")))
    sen12 = stats_dir / "tests_stats_s1dsc_raw_stats.csv"
    if sen12.is_file():
        out["sen12landslides_descending"] = _sen12_figures(sen12)
    return out


def _zindi_figures(doc: dict) -> dict:
    out = {"what": ("MM-LandslideNet (Zindi): statistics over all pixels of 6,289 quality-filtered 64 x 64 "
                    "patches at 10 m (20 % labelled landslide), Sentinel-1 in dB; 'Diff' channels are the "
                    "post-minus-pre difference as the dataset supplies it (single dates or composites: not "
                    "documented in the file); iqr_sigma = (q75 - q25) / 1.349"), "channels": {}}
    for group in doc["channel_statistics_by_group"].values():
        for ch in group["channels"].values():
            if "Sentinel-1" in ch["name"] or "Diff" in ch["name"]:
                out["channels"][ch["name"]] = {
                    "median_db": ch["median"], "std_db": ch["std"], "q25_db": ch["q25"], "q75_db": ch["q75"],
                    "iqr_sigma_db": (ch["q75"] - ch["q25"]) / 1.349}
    return out


def _sen12_figures(path: Path) -> dict:
    import csv

    means: dict[tuple[str, str], list[float]] = {}
    with path.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if row["variable"] in ("VV", "VH") and float(row["mean"]) > 0:
                site = row["file"].split("_s1")[0]
                means.setdefault((site, row["variable"]), []).append(10.0 * math.log10(float(row["mean"])))
    sites = sorted({s for s, _ in means})
    per_site = {s: {pol: float(np.median(means[(s, pol)])) for pol in ("VV", "VH") if (s, pol) in means}
                for s in sites}
    return {"what": ("Sen12Landslides, descending: per inventory, the median over its patches of 10 log10 of the "
                     "patch's mean linear backscatter (10 m, all land covers, all dates of the patch)"),
            "median_patch_level_db": per_site}


# --------------------------------------------------------------------------- Markdown


def _fmt(v, digits=2) -> str:
    if isinstance(v, bool):
        return str(v)
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    return f"{v:.{digits}f}"


_ROW_LABELS = {
    "real_tuning": "real, tuning bursts (land)", "real_report": "real, report bursts (land, held out)",
    "real_water": "real, ocean bursts (water)",
}


def _label(key: str) -> str:
    if key in _ROW_LABELS:
        return _ROW_LABELS[key]
    group, res = key[4:].rsplit("_", 1)
    return f"SYNTHETIC {group} ({res}, land)"


def to_markdown(report: dict) -> str:
    """The table of the report (VH and VV, group means, then each burst and run), as Markdown."""
    lay = report["layout"]
    lines = [
        "# Simulator calibration against real Sentinel-1 (OPERA RTC-S1) stacks", "",
        f"No-change A_ratio = median of {lay['n_pre']} pre dates - median of {lay['n_post']} post dates (dB, no "
        "speckle filter), consecutive and year-apart window pairs on the real stacks' dates; the same code for "
        "real and SYNTHETIC (simulated) stacks. Tuning bursts: " + ", ".join(report["tuning_bursts"]) + ".", "",
    ]
    head = ("| rows | pol | A_ratio std | robust sigma | consecutive / year apart | > 1 dB | > 1.25 dB | > 2 dB | "
            "> 3 dB | e-folding (m) | correlated sd | white var (dB2) | offsets std / max | 1-date diff sigma |")
    lines += [head, "|" + "---|" * 14]
    for key, per_pol in report["table"].items():
        for pol in ("VH", "VV"):
            lines.append(_table_line(_label(key), pol, per_pol[pol]["mean"]))
    lines += ["", "## Per burst / per simulated run", "", head, "|" + "---|" * 14]
    for key, per_pol in report["table"].items():
        suffix = "" if key.startswith("real_") else f" ({key.rsplit('_', 1)[1]})"
        for pol in ("VH", "VV"):
            for name, row in (per_pol[pol].get("bursts") or per_pol[pol].get("runs")).items():
                lines.append(_table_line(name + suffix, pol, row))
    lines += _levels_markdown(report)
    lines += _published_markdown(report.get("published_10m") or {})
    return "\n".join(lines) + "\n"


def _table_line(label: str, pol: str, r: dict) -> str:
    efold = _fmt(r["e_folding_m"], 0) + ("+" if r.get("e_folding_lower_bound") else "")
    return (f"| {label} | {pol} | {_fmt(r['std_db'])} | {_fmt(r['robust_sigma_db'])} | "
            f"{_fmt(r['consecutive_std_db'])} / {_fmt(r['year_apart_std_db'])} | {_fmt(r['share_gt_1_db'], 3)} | "
            f"{_fmt(r['share_gt_1p25_db'], 3)} | {_fmt(r['share_gt_2_db'], 3)} | {_fmt(r['share_gt_3_db'], 3)} | "
            f"{efold} | {_fmt(r['correlated_sd_db'])} | {_fmt(r['white_variance_db2'])} | "
            f"{_fmt(r['offsets_std_db'])} / {_fmt(r['offsets_max_abs_db'])} | {_fmt(r['single_date_iqr_sigma_db'])} |")


def _levels_markdown(report: dict) -> list[str]:
    lines = ["", "## Levels (median over pixel-dates; spread = std of single-date values; static = std of the "
             "temporal median)", "", "| stack | class | VV median | VV spread / static | VH median | "
             "VH spread / static |", "|---|---|---|---|---|---|"]
    entries = [(b["name"] + " (real gamma0)", b["polarisations"]) for b in report["real"]]
    for sim in report["simulated"]:
        for run in sim["runs"]:
            res = next(iter(run["resolutions"]))
            entries.append((f"{run['name']} ({res}, SYNTHETIC sigma0)", run["resolutions"][res]))
    for name, per_pol in entries:
        for cls in per_pol["VV"]["levels"]:
            vv, vh = per_pol["VV"]["levels"][cls], per_pol["VH"]["levels"].get(cls)
            if vh is None:
                continue
            lines.append(f"| {name} | {cls} | {_fmt(vv['median_db'])} | {_fmt(vv['spread_db'])} / "
                         f"{_fmt(vv['median_image_spread_db'])} | {_fmt(vh['median_db'])} | "
                         f"{_fmt(vh['spread_db'])} / {_fmt(vh['median_image_spread_db'])} |")
    return lines


def _published_markdown(pub: dict) -> list[str]:
    lines = []
    if "mm_landslidenet" in pub:
        z = pub["mm_landslidenet"]
        lines += ["", "## 10 m references from real labelled datasets", "", z["what"], "",
                  "| channel | median | std | q25 | q75 | iqr sigma |", "|---|---|---|---|---|---|"]
        for name, c in z["channels"].items():
            lines.append(f"| {name} | {_fmt(c['median_db'])} | {_fmt(c['std_db'])} | {_fmt(c['q25_db'])} | "
                         f"{_fmt(c['q75_db'])} | {_fmt(c['iqr_sigma_db'])} |")
    if "sen12landslides_descending" in pub:
        s = pub["sen12landslides_descending"]
        lines += ["", s["what"], "", "| inventory | VV (dB) | VH (dB) |", "|---|---|---|"]
        for site, v in s["median_patch_level_db"].items():
            lines.append(f"| {site} | {_fmt(v.get('VV'))} | {_fmt(v.get('VH'))} |")
    return lines
