"""Compare the simulator's temporal statistics with real Sentinel-1 stacks (OPERA RTC-S1), one computation for both.

For each real burst folder (OPERA L2 RTC-S1 GeoTIFFs, linear gamma0, dates read
from the file names) and for SYNTHETIC no-change stacks simulated on the same
dates (the 'calibrated' values of the sample preset and the per-seed draws of
the 'default' preset, ascending pass, block-averaged from 10 m to 30 m), writes
OUT/calibration.json and OUT/calibration.md: the no-change A_ratio standard
deviation, robust sigma and tail shares, the correlation length of the
date-to-date change, the per-date AOI-wide offsets and the levels.  Without
--real, the dates and real rows come from the numbers shipped with the package
(core/simulate/real_calibration.json).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

NAME = "calibrate"
HELP = "calibration table of the simulator against real OPERA RTC-S1 stacks (JSON and Markdown)"


def _names(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _seeds(text: str) -> list[int]:
    try:
        return [int(t) for t in _names(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give whole numbers separated by commas, e.g. 1,2,3") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    s = argparse.SUPPRESS
    parser.add_argument("--out", required=True, default=s, metavar="DIR",
                        help="output folder for calibration.json and calibration.md; required, no default")
    parser.add_argument("--real", nargs="+", metavar="DIR", default=s,
                        help="burst folders of OPERA RTC-S1 files, or folders holding such burst folders; "
                             "default: none (use the real numbers shipped with the package)")
    parser.add_argument("--tuning", type=_names, default="T137-292319-IW2,T137-292321-IW2", metavar="NAMES",
                        help="comma-separated burst folder names the simulator is tuned on; the other land bursts "
                             "are reported as held out")
    parser.add_argument("--published", metavar="DIR", default=s,
                        help="folder of published dataset statistics (MM-LandslideNet JSON, Sen12Landslides CSV) "
                             "to quote as 10 m references; default: none")
    parser.add_argument("--seeds", type=_seeds, default="1,2,3,4", metavar="N,N",
                        help="simulation seeds per simulated group")
    parser.add_argument("--size", type=int, default=300,
                        help="simulated crop size (pixels of 10 m; 300 = 3 km, the real crops' size)")
    parser.add_argument("--n-pre", type=int, default=4, help="dates per pre window (count)")
    parser.add_argument("--n-post", type=int, default=2, help="dates per post window (count)")
    parser.add_argument("--reference-out", metavar="FILE", default=s,
                        help="also write the real numbers here (make calibration: "
                             "core/simulate/real_calibration.json); default: not written")


def _simulated_groups(dates, seeds, size, n_pre, n_post, log) -> list[dict]:
    from ..core import simulate as sim
    from ..core.simulate.calibration_report import simulated_statistics

    groups = []
    for group, factory in (("calibrated", sim.sample_config), ("randomised", sim.default_config)):
        runs = []
        for seed in seeds:
            cfg = factory(seed, rows=size, cols=size, max_z_error=None)
            runs.append(simulated_statistics(cfg, dates, n_pre, n_post, f"{group} seed {seed}"))
            log(f"  simulated {group} seed {seed}")
        groups.append({"group": group, "runs": runs})
    return groups


def _real_rows_from_reference(reference: dict) -> dict:
    table = {}
    for group, per_pol in reference["groups"].items():
        table[f"real_{group}"] = {pol: {"mean": {k: v for k, v in row.items() if k != "bursts"},
                                        "bursts": row["bursts"]} for pol, row in per_pol.items()}
    return table


def run(args: argparse.Namespace) -> int:
    from ..core.raster_io import atomic_output
    from ..core.simulate import calibration_report as cr

    if args.n_pre < 1 or args.n_post < 1 or not 64 <= args.size <= 2000:
        raise ValueError("--n-pre and --n-post must be at least 1 and --size 64..2000 pixels")
    log = lambda msg: print(msg, file=sys.stderr)  # noqa: E731
    real = []
    for folder in cr.burst_folders(getattr(args, "real", [])):
        real.append(cr.real_burst_statistics(cr.read_opera_burst(folder), args.n_pre, args.n_post))
        log(f"  read real burst {folder.name}")
    reference = None if real else cr.load_reference()
    land = [b for b in real if b["surface"] == "land"] or real
    dates = cr.reference_dates(reference or land[0])
    simulated = _simulated_groups(dates, args.seeds, args.size, args.n_pre, args.n_post, log)
    published = cr.published_statistics(args.published) if hasattr(args, "published") else {}
    report = cr.build_report(real, args.tuning, simulated, args.n_pre, args.n_post, published)
    if reference:
        report["table"] = {**_real_rows_from_reference(reference), **report["table"]}
        report["tuning_bursts"] = reference["tuning_bursts"]
    out = Path(args.out)
    with atomic_output(out / "calibration.json") as tmp:
        tmp.write_text(json.dumps(_finite(report), indent=1, sort_keys=True) + "\n", encoding="utf-8")
    with atomic_output(out / "calibration.md") as tmp:
        tmp.write_text(cr.to_markdown(report), encoding="utf-8")
    if hasattr(args, "reference_out") and real:
        with atomic_output(Path(args.reference_out)) as tmp:
            tmp.write_text(json.dumps(_finite(cr.reference_numbers(report)), indent=1, sort_keys=True) + "\n",
                           encoding="utf-8")
    print(f"calibration table written to {out / 'calibration.md'} and {out / 'calibration.json'}")
    return 0


def _finite(value):
    """JSON without NaN: non-finite floats become null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value
