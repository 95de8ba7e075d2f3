"""The A_ratio defaults on REAL-BACKGROUND cases built from the shipped real OPERA RTC-S1 fixture.

The fixture holds real backscatter of report burst T137-292320-IW2 (held out when the defaults were chosen,
see README "Defaults, and why").  No-change cases have no event at all: every candidate is a false alarm.
Imprinted cases carry SYNTHETIC slides multiplied into the real post-event scenes.  Bounds are the values
``make bench-real`` measured for these exact cases (2026-12-01), with a margin; v0.1's defaults measured
11.7 %, 2.7 %, 20.1 % and 18.5 % of the land for the four no-change splits.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from landslide_sar_plugin.core.detect import run_detection
from landslide_sar_plugin.core.simulate import imprint
from tests.real_fixture import real_burst_dir

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import bench_real  # noqa: E402

pytestmark = pytest.mark.slow
BURST = "T137-292320-IW2"
CASES = {c.name: c for c in imprint.benchmark_cases(["report"]) if c.burst == BURST}


def _run(name, tmp_path, setting=None):
    spec = CASES[f"report_{BURST}_{name}"]
    case = imprint.write_case(spec, imprint.read_opera_burst(real_burst_dir(BURST)), tmp_path / "case")
    params = bench_real.params_for(setting or {}, case.event_time, case.pre_range, case.post_range)
    return case, params, run_detection(case.scenes_dir, case.dem, tmp_path / "out", params)


@pytest.mark.parametrize("split, measured", [("2023_early", 0.0053), ("2023_late", 0.0026),
                                             ("2022_to_2023", 0.0072), ("2023_to_2025", 0.0088)])
def test_defaults_flag_under_one_percent_of_real_no_change_land(tmp_path, split, measured):
    case, _, res = _run(f"{split}_no_change", tmp_path)
    share = bench_real.land_share_in_candidates(res.files["candidates"], case.land_mask)
    assert share <= min(0.01, measured + 0.002), share
    assert res.grid.pixel_size == 30.0  # the OPERA product's own resolution, not upsampled
    assert res.run_info["polarisation_choice"].startswith("auto: the stacks hold VV and VH")
    assert res.run_info["noise"]["sigma_db"] > 0.5  # real noise, several times the old simulator's


def test_version_0_1_defaults_flagged_a_tenth_of_the_same_land(tmp_path):
    case, _, res = _run("2023_early_no_change", tmp_path, bench_real.V01)
    assert bench_real.land_share_in_candidates(res.files["candidates"], case.land_mask) > 0.08


def test_vh_only_real_background_case_runs_with_the_defaults(tmp_path):
    case, params, res = _run("2023_early_earthquake_vh_only", tmp_path)
    assert res.run_info["polarisation_choice"].startswith("auto: the stacks hold no VV")
    row = bench_real.score_run(res, "imprinted", case.truth_mask, None, params)
    assert row["f1"] >= 0.50, row  # measured 0.600 (v0.1 defaults: 0.239)
    assert row["precision"] >= 0.5
