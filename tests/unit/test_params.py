"""The one declaration of the detection parameters (core/params.py) and the command line built from it."""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt

import pytest

from landslide_sar_plugin.commands import detect as detect_cmd
from landslide_sar_plugin.core import params as shared
from landslide_sar_plugin.core.detect import DetectParams

# DetectParams fields that are not user settings of their own: set by the front ends from other inputs.
# The threshold rule (threshold_db, percentile, k_sigma) stays with the CLI's and Processing's own rule options.
NOT_SETTINGS = {"event_time", "aoi", "threshold_db", "percentile", "k_sigma", "event_id", "speckle_radius_m",
                "ratio_radius_m"}


def parse(*argv):
    parser = argparse.ArgumentParser(formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    detect_cmd.add_arguments(parser)
    return parser.parse_args(["--event", "2018-09-05T18:08Z", "--out", "x", *argv])


def test_every_detection_setting_is_declared_once():
    fields = {f.name for f in dataclasses.fields(DetectParams)} - NOT_SETTINGS
    declared = {spec.field for spec in shared.SPECS.values()}
    # New DetectParams fields must be declared here (or listed as not a setting), so all front ends get them.
    assert fields - declared <= {"workers"}, fields - declared
    groups = shared.STACK_PARAMS + shared.GRID_PARAMS + shared.TERRAIN_PARAMS + shared.CANDIDATE_PARAMS
    assert set(shared.SPECS) <= set(shared._DECLARED)
    assert sorted(groups) == sorted(shared.SPECS) and len(set(groups)) == len(groups)
    assert len({s.cli for s in shared.SPECS.values()}) == len({s.processing for s in shared.SPECS.values()}) \
        == len(shared.SPECS)


def test_cli_defaults_are_read_from_detect_params_not_copied(monkeypatch):
    field = DetectParams.__dataclass_fields__["speckle_sigma_m"]
    monkeypatch.setattr(field, "default", 7.5)
    args = parse()
    params = detect_cmd.params_from_args(args)
    assert args.speckle_sigma_m == 7.5
    assert (params.speckle_sigma_m, params.speckle_radius_m) == (7.5, 15.0)


def test_cli_defaults_give_the_detect_params_defaults():
    params = detect_cmd.params_from_args(parse())
    default = DetectParams(event_time=params.event_time)
    assert params.to_dict() == {**default.to_dict(), "event_time": params.to_dict()["event_time"]}


def test_cli_options_reach_detect_params(tmp_path):
    water = tmp_path / "water.tif"
    params = detect_cmd.params_from_args(parse(
        "--merge-orbits", "--pre-range", "2018-06-01/2018-09-01", "--post-range", "2018-09-06/2018-09-30",
        "--curv-min", "-0.005", "--slope-min", "none", "--water-mask", str(water), "--speckle-sigma", "0",
        "--heatmap-radius", "50", "--smooth-ratio", "5", "--block-size", "256", "--crs", "EPSG:32654"))
    assert params.per_orbit is False
    assert params.pre_range == (dt.datetime(2018, 6, 1, tzinfo=dt.timezone.utc),
                                dt.datetime(2018, 9, 1, tzinfo=dt.timezone.utc))
    assert params.post_range[1] == dt.datetime(2018, 9, 30, tzinfo=dt.timezone.utc)
    assert params.curv_min == -0.005 and params.slope_min_deg is None
    assert params.water_mask == str(water) and params.crs == "EPSG:32654"
    assert (params.speckle_sigma_m, params.speckle_radius_m) == (0.0, 0.0)
    assert (params.ratio_sigma_m, params.ratio_radius_m) == (5.0, 10.0)
    assert params.heatmap_radius_m == 50.0 and params.block_size == 256


@pytest.mark.parametrize("text", ["2018-06-01", "2018-06-01/", "/2018-06-01", "2018-09-01/2018-06-01", "a/b"])
def test_a_bad_date_range_says_what_to_give(text, capsys):
    with pytest.raises(SystemExit):
        parse("--pre-range", text)
    err = capsys.readouterr().err
    assert "--pre-range" in err and ("START/END" in err or "before its start" in err or "time" in err)


def test_detect_fields_fills_the_derived_fields():
    fields = shared.detect_fields({"speckle_sigma_m": 12.0, "merge_orbits": False, "slope_min_deg": 0.0,
                                   "curv_min": None, "water_mask": ""})
    assert fields == {"speckle_sigma_m": 12.0, "speckle_radius_m": 24.0, "per_orbit": True, "slope_min_deg": None,
                      "curv_min": None, "water_mask": None}


def test_a_none_default_is_explained_not_shown_as_a_number(monkeypatch):
    field = DetectParams.__dataclass_fields__["pixel_size"]
    monkeypatch.setattr(field, "default", None)
    spec = shared.SPECS["pixel_size"]
    assert spec.optional() and spec.described_default() == "the finest resolution of the input scenes"
    assert parse().pixel_size is None


def test_a_setting_declared_ahead_of_its_field_is_offered_exactly_when_detect_params_has_it():
    fields = {f.name for f in dataclasses.fields(DetectParams)}
    assert ("detrend_radius_m" in shared.SPECS) == ("detrend_radius_m" in fields)
    assert shared.SPECS["polarisation"].options() == tuple(__import__(
        "landslide_sar_plugin.core.detect", fromlist=["x"]).POLARISATION_CHOICES)
