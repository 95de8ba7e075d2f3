"""altgen, the independent evaluation generator, and the families API (event k of family f).  SYNTHETIC data."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio

from landslide_sar_plugin.core import catalog as cat
from landslide_sar_plugin.core.simulate import altgen, families


@pytest.fixture(scope="module")
def event(tmp_path_factory):
    root = tmp_path_factory.mktemp("alt")
    return altgen.generate_event(root / "a", altgen.AltConfig(seed=7003, rows=160, cols=160))


def test_same_seed_same_files_other_seed_other_event(event, tmp_path):
    again = altgen.generate_event(tmp_path / "b", altgen.AltConfig(seed=7003, rows=160, cols=160))
    assert [p.name for p in again.scene_paths] == [p.name for p in event.scene_paths]
    for a, b in zip(event.scene_paths, again.scene_paths):
        with rasterio.open(a) as sa, rasterio.open(b) as sb:
            np.testing.assert_array_equal(sa.read(), sb.read())
    other = altgen.generate_event(tmp_path / "c", altgen.AltConfig(seed=7004, rows=160, cols=160))
    assert json.loads(other.event_json_path.read_text())["world"] != json.loads(event.event_json_path.read_text())[
        "world"]


def test_files_are_labelled_synthetic_and_read_by_the_catalogue(event):
    catalog = cat.read_catalog(event.out_dir / "scenes")
    assert len(catalog.scenes) == len(event.scene_paths) and not catalog.skipped
    assert all(s.synthetic and set(s.bands) == {"VV", "VH"} for s in catalog.scenes)
    doc = json.loads(event.event_json_path.read_text())
    assert doc["synthetic"] is True and doc["generator"].startswith("altgen")
    with rasterio.open(event.scene_paths[0]) as src:
        tags = src.tags()
        assert "SYNTHETIC" in tags and tags["PLATFORM"] == "ALTGEN" and tags["UNITS"] == "linear"
        vh = src.read(2)
    db = 10 * np.log10(vh[np.isfinite(vh) & (vh > 0)])
    assert -30 < np.median(db) < -8  # C-band cross-pol levels
    with rasterio.open(event.dem_path) as src:
        assert abs(src.transform.a) == 20.0  # a 20 m DEM, not the simulator's 30 m


def test_slides_change_post_event_backscatter_inside_the_truth(event):
    with rasterio.open(event.truth_mask_path) as src:
        truth = src.read(1) > 0
    assert event.n_slides > 0 and truth.any()
    doc = json.loads(event.event_json_path.read_text())
    assert {"source_db", "runout_db", "runout_kind", "cover"} <= set(doc["slides"][0])
    t_event = cat.parse_time(doc["event_time"])
    catalog = cat.read_catalog(event.out_dir / "scenes")
    first = sorted(catalog.scenes, key=lambda s: s.acquisition_start)
    pre = [s for s in first if s.acquisition_start < t_event]
    post = [s for s in first if s.acquisition_start > t_event]
    assert pre and post


def test_areas_are_log_normal_not_inverse_gamma():
    w = altgen.draw_world(7001)
    assert 600 <= w["slide_median_m2"] <= 6000 and 0.8 <= w["slide_sigma_ln"] <= 1.2


def test_family_api_gives_event_k_of_each_family(tmp_path):
    sim = families.family_event("simulator", 0, tmp_path, split="test", size=96)
    assert sim.family == "simulator" and sim.truth_mask.is_file() and sim.scenes_dir.is_dir() and sim.synthetic
    assert families.family_event("simulator", 0, tmp_path, split="test", size=96).scenes_dir == sim.scenes_dir
    alt = families.family_event("altgen", 1, tmp_path, split="test", size=96)
    assert alt.family == "altgen" and alt.dem.is_file() and alt.event_time.tzinfo is not None
    real = families.family_event("real_background", 0, tmp_path, split="test")
    assert not real.synthetic and real.pre_range[1] < real.event_time < real.post_range[0]
    assert real.event_id.startswith("report_") and real.truth_mask.is_file()
    with pytest.raises(families.FamilyError, match="evaluation only"):
        families.family_event("altgen", 0, tmp_path, split="train")
    with pytest.raises(families.FamilyError, match="family must be one of"):
        families.family_event("other", 0, tmp_path)


def test_training_cases_never_touch_report_bursts_or_dates():
    from landslide_sar_plugin.core.simulate import imprint

    report = imprint.benchmark_cases(["report"])
    report_bursts = {c.burst for c in report}
    report_days = {d for c in report for d in c.pre + c.post if d.startswith(("2023-1", "2024", "2025"))}
    train = families.training_real_cases()
    assert train and not {c.burst for c in train} & report_bursts
    assert not {d for c in train for d in c.pre + c.post} & report_days
    val = families.real_cases("val", "all")
    assert {c.burst for c in val} == {"T137-292321-IW2"} and {c.role for c in val} == {"tuning"}
