"""Tests of the synthetic Sentinel-1 event simulator (core/simulate/__init__.py and the ``simulate`` command)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio import features as rfeatures

from landslide_sar_plugin.core import gpkg
from landslide_sar_plugin.core import simulate as sim
from landslide_sar_plugin.core.simulate import calibration as cal
from landslide_sar_plugin.core.simulate import calibration_report as cr

SCENE_NAME = re.compile(r"^S1SIM_IW_(ASC|DSC)_R(\d{3})_(\d{8}T\d{6})\.tif$")
SMALL = dict(rows=240, cols=240)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): _sha(p) for p in sorted(root.rglob("*")) if p.is_file()}


def _read(path) -> np.ndarray:
    with rasterio.open(path) as ds:
        return ds.read()


def _stacks(result):
    """{pass: {role: [array(2, rows, cols), ...]}} from event.json."""
    event = json.loads(result.event_json_path.read_text())
    out = {"ASCENDING": {"pre": [], "post": []}, "DESCENDING": {"pre": [], "post": []}}
    for sc in event["scenes"]:
        out[sc["orbit_pass"]][sc["role"]].append(_read(result.out_dir / sc["file"]))
    return out


@pytest.fixture(scope="module")
def event(tmp_path_factory):
    """A 240 x 240 earthquake event, Hokkaido calibration, 5 pre + 2 post per pass."""
    cfg = sim.default_config(7, **SMALL)
    return sim.simulate_event(tmp_path_factory.mktemp("event"), cfg)


@pytest.fixture(scope="module")
def steep_event(tmp_path_factory):
    """Rugged terrain, so that layover and shadow are common enough to test."""
    cfg = sim.default_config(11, rows=240, cols=240, relief_m=900.0, ridge_weight=0.7, n_pre=2, n_post=1)
    return sim.simulate_event(tmp_path_factory.mktemp("steep"), cfg)


def _geometry(result):
    return (_read(result.geometry_paths["asc"])[0], _read(result.geometry_paths["desc"])[0])


# --------------------------------------------------------------------------- calibration and speckle


def _forest_medians(result):
    lc = _read(result.landcover_path)[0]
    g_asc, g_desc = _geometry(result)
    event = json.loads(result.event_json_path.read_text())
    vv, vh = [], []
    for sc in event["scenes"]:
        data = _read(result.out_dir / sc["file"])
        geo = g_asc if sc["orbit_pass"] == "ASCENDING" else g_desc
        m = (lc == 1) & (geo != 1) & (geo != 2)
        vv.append(data[0][m])
        vh.append(data[1][m])
    return float(np.median(np.concatenate(vv))), float(np.median(np.concatenate(vh)))


def test_forest_median_matches_the_drawn_levels(event):
    """The default preset draws the forest levels from the seed; the simulated median hits them."""
    cfg = event.config
    assert (cfg.forest_vv_db, cfg.forest_vh_db) == (sim.drawn_world(7)["forest_vv_db"],
                                                    sim.drawn_world(7)["forest_vh_db"])
    vv, vh = _forest_medians(event)
    assert abs(vv - cfg.forest_level_db("VV")) < 1.0, vv
    assert abs(vh - cfg.forest_level_db("VH")) < 1.0, vh


def test_forest_median_matches_kaikoura_calibration(tmp_path):
    """Without drawn levels (forest_*_db None) the site's published medians are the target."""
    cfg = sim.default_config(3, rows=160, cols=160, calibration="kaikoura", n_pre=3, n_post=1, forest_vv_db=None,
                             forest_vh_db=None)
    res = sim.simulate_event(tmp_path, cfg)
    cal = sim.CALIBRATIONS["kaikoura"]
    vv, vh = _forest_medians(res)
    assert abs(vv - cal.vv_db) < 1.0, vv
    assert abs(vh - cal.vh_db) < 1.0, vh
    assert rasterio.open(res.dem_path).crs.to_epsg() == 32759  # southern UTM zone of the site


def test_levels_are_drawn_per_seed_and_the_sample_keeps_hokkaido():
    draws = [sim.default_config(s) for s in range(20)]
    vv = np.array([c.forest_vv_db for c in draws])
    assert len(set(vv)) >= 18 and vv.min() >= -10.5 and vv.max() <= -6.5 and vv.max() - vv.min() > 2.0
    assert all(5.5 <= c.forest_vv_db - c.forest_vh_db <= 7.5 for c in draws)
    assert len({c.change_corr_m for c in draws}) == 20 and len({c.wet_gain for c in draws}) == 20
    assert sim.random_event_config(4).forest_vv_db == sim.drawn_world(4)["forest_vv_db"]
    sample = sim.sample_config()
    assert sample.forest_level_db("VV") == sim.CALIBRATIONS["hokkaido"].vv_db
    assert sample.change_sd_db == sim.SimulationConfig().change_sd_db  # the calibrated values


def test_speckle_enl_over_homogeneous_water(event):
    """Calm water in one acquisition is homogeneous: mean^2/var of linear intensity estimates the ENL."""
    lc = _read(event.landcover_path)[0]
    g_asc, g_desc = _geometry(event)
    event_doc = json.loads(event.event_json_path.read_text())
    enls = []
    for sc in event_doc["scenes"]:
        geo = g_asc if sc["orbit_pass"] == "ASCENDING" else g_desc
        m = (lc == 5) & (geo == 0)
        assert m.sum() > 300
        for band in _read(event.out_dir / sc["file"]):
            lin = 10.0 ** (band[m].astype(np.float64) / 10.0)
            enls.append(lin.mean() ** 2 / lin.var())
    enl = float(np.mean(enls))
    assert abs(enl - event.config.enl) / event.config.enl < 0.15, enl


def test_enl_setting_changes_speckle(tmp_path):
    cfg = sim.default_config(7, rows=160, cols=160, n_pre=1, n_post=1, enl=1.0)
    res = sim.simulate_event(tmp_path, cfg)
    lc = _read(res.landcover_path)[0]
    data = _read(res.scene_paths[0])[1]
    lin = 10.0 ** (data[lc == 5].astype(np.float64) / 10.0)
    assert 0.8 < lin.mean() ** 2 / lin.var() < 1.2


def test_speckle_is_correlated_over_the_grdh_resolution_cell(event):
    """ENL 4.4 per 10 m pixel, but neighbours share speckle: a 30 m block of calm water has ENL near 8, not 40."""
    lc = _read(event.landcover_path)[0]
    g_asc, g_desc = _geometry(event)
    doc = json.loads(event.event_json_path.read_text())
    enls = []
    for sc in doc["scenes"]:
        geo = g_asc if sc["orbit_pass"] == "ASCENDING" else g_desc
        water = cal.block_mask((lc == 5) & (geo == 0), 3)
        lin = 10.0 ** (cal.block_average_db(_read(event.out_dir / sc["file"])[1], 3) / 10.0)
        enls.append(lin[water].mean() ** 2 / lin[water].var())
    assert 5.5 < float(np.mean(enls)) < 11.0, np.mean(enls)


# --------------------------------------------------------------------------- date-specific change

REAL_LIKE_DATES = [sim.parse_time(d) for d in (
    "2021-11-19", "2021-11-25", "2021-12-01", "2021-12-07", "2021-12-13", "2021-12-19",
    "2022-11-02", "2022-11-14", "2022-11-26", "2022-12-08", "2022-12-20", "2023-01-01")]


@pytest.fixture(scope="module")
def no_change_stacks():
    """No-change stacks (ascending, 2.4 km) on real-like dates: calibrated change, and none at all."""
    cfg = sim.sample_config(5, rows=240, cols=240, max_z_error=None)
    quiet = dataclasses.replace(cfg, wet_gain=0.0, change_sd_db=0.0, calibration_jitter_db=0.0, interannual_sd_db=0.0)
    return sim.simulate_stack(cfg, REAL_LIKE_DATES), sim.simulate_stack(quiet, REAL_LIKE_DATES)


def test_correlated_date_specific_change_on_forest(no_change_stacks):
    stats = {}
    for name, stack in zip(("calibrated", "quiet"), no_change_stacks):
        forest = cal.block_mask(stack["landcover"] == 1, 3)
        assert forest.sum() > 1000
        stats[name] = cal.correlation_length(cal.block_average_db(stack["VH"], 3), 30.0, forest)
    assert stats["calibrated"]["correlated_sd_db"] > 0.25
    assert 90.0 < stats["calibrated"]["e_folding_m"] < 1000.0
    # speckle alone (and the texture, which the temporal median removes) leaves no correlated change
    assert not stats["quiet"]["correlated_sd_db"] > 0.5 * stats["calibrated"]["correlated_sd_db"]


def test_per_date_offsets_follow_the_soil_wetness(no_change_stacks):
    calibrated, quiet = no_change_stacks
    land = calibrated["landcover"] != 5
    offsets = cal.date_offsets(calibrated["VH"], land)
    wetness = np.array(calibrated["soil_wetness"])
    assert offsets.max() > 0.5 and np.corrcoef(offsets, wetness)[0, 1] > 0.7
    assert np.abs(cal.date_offsets(quiet["VH"], land)).max() < 0.25


def test_stack_renders_exactly_the_event_files(event):
    stack = sim.simulate_stack(event.config, None, "DESCENDING")
    doc = json.loads(event.event_json_path.read_text())
    files = [sc["file"] for sc in doc["scenes"] if sc["orbit_pass"] == "DESCENDING"]
    assert stack["roles"] == [sc["role"] for sc in doc["scenes"] if sc["orbit_pass"] == "DESCENDING"]
    for k, f in enumerate(files):
        np.testing.assert_array_equal(stack["VH"][k], _read(event.out_dir / f)[1])
    assert stack["slide_mask"].sum() == _read(event.truth_mask_path)[0].sum()


def test_no_change_a_ratio_std_at_30m_within_25_percent_of_the_real_stacks():
    """The calibration target of issue 10, against the real numbers shipped in core/simulate/real_calibration.json."""
    ref = cr.load_reference()
    dates = cr.reference_dates(ref)
    real = ref["groups"]["tuning"]["VH"]
    rows = [cr.headline(cr.simulated_statistics(sim.sample_config(s, rows=300, cols=300, max_z_error=None), dates,
                                                ref["layout"]["n_pre"], ref["layout"]["n_post"], "t")
                        ["resolutions"]["30m"]["VH"]) for s in (1, 2)]
    got = cr.mean_rows(rows)
    assert abs(got["std_db"] / real["std_db"] - 1.0) <= 0.25, (got["std_db"], real["std_db"])
    assert 0.5 < got["share_gt_1p25_db"] / real["share_gt_1p25_db"] < 1.5
    assert 0.5 < got["e_folding_m"] / real["e_folding_m"] < 2.0


# --------------------------------------------------------------------------- geometry


def test_shadow_faces_away_from_radar_and_flips_between_passes(steep_event):
    terrain = sim.scene_terrain(steep_event.config)
    east = np.sin(np.radians(terrain["aspect"]))  # > 0: the slope faces (dips towards) the east
    g_asc, g_desc = _geometry(steep_event)
    sh_a, sh_d = g_asc == 2, g_desc == 2
    assert sh_a.sum() > 100 and sh_d.sum() > 100
    # ascending looks east: shadow on east-facing slopes; descending looks west: on west-facing ones
    assert (east[sh_a] > 0).mean() > 0.8
    assert (east[sh_d] < 0).mean() > 0.8
    assert (sh_a & sh_d).sum() < 0.05 * min(sh_a.sum(), sh_d.sum())
    # shadow is radar noise: a few dB below the forest around it, near the NESZ
    scene = _read(steep_event.scene_paths[0])
    g = g_asc if "_ASC_" in steep_event.scene_paths[0].name else g_desc
    assert np.median(scene[0][g == 2]) < -19.0
    assert np.median(scene[0][g == 2]) < np.median(scene[0][g == 0]) - 8.0


def test_layover_on_steep_slopes_facing_the_radar(steep_event):
    terrain = sim.scene_terrain(steep_event.config)
    east = np.sin(np.radians(terrain["aspect"]))
    g_asc, g_desc = _geometry(steep_event)
    lay_a, lay_d = g_asc == 1, g_desc == 1
    assert lay_a.sum() > 100 and lay_d.sum() > 100
    assert (east[lay_a] < 0).mean() > 0.9  # faces west, towards the ascending radar
    assert (east[lay_d] > 0).mean() > 0.9
    assert terrain["slope"][lay_a].mean() > 30.0
    assert terrain["slope"][lay_d].mean() > 30.0
    scene = _read(steep_event.scene_paths[0])
    g = g_asc if "_ASC_" in steep_event.scene_paths[0].name else g_desc
    assert np.median(scene[0][g == 1]) > np.median(scene[0][g == 0]) + 5.0  # layover is bright


# --------------------------------------------------------------------------- landslides


def test_slides_lie_on_steep_slopes(event):
    terrain = sim.scene_terrain(event.config)
    mask = _read(event.truth_mask_path)[0].astype(bool)
    feats, _ = gpkg.read_features(event.landslides_path, "landslides")
    min_slope = event.config.slide_min_slope_deg
    assert len(feats) >= 10
    assert mask.sum() > 0
    assert terrain["slope"][mask].mean() >= min_slope
    assert terrain["slope"][mask].mean() > terrain["slope"].mean() + 5.0
    assert all(f.properties["mean_slope_deg"] >= min_slope for f in feats)
    # the mask and the polygons agree
    area = sum(f.properties["area_m2"] for f in feats)
    assert area == pytest.approx(mask.sum() * event.config.pixel_size ** 2)
    # no slide on water or in a town
    lc = terrain["landcover"]
    assert not (mask & ((lc == 5) | (lc == 4))).any()


def test_slides_reach_down_to_gentle_slopes(event):
    feats, _ = gpkg.read_features(event.landslides_path)
    slopes = np.array([f.properties["mean_slope_deg"] for f in feats])
    assert event.config.slide_min_slope_deg == 10.0
    assert slopes.min() >= 10.0
    assert ((slopes >= 10.0) & (slopes < 20.0)).mean() > 0.1  # a share of them on 10-20 degree slopes


def test_higher_minimum_slope_moves_slides_up(tmp_path):
    cfg = sim.default_config(7, rows=200, cols=200, n_pre=1, n_post=1, slide_min_slope_deg=32.0)
    res = sim.simulate_event(tmp_path, cfg)
    terrain = sim.scene_terrain(res.config)
    mask = _read(res.truth_mask_path)[0].astype(bool)
    assert mask.sum() > 0
    assert terrain["slope"][mask].mean() >= 32.0


def test_earthquake_gives_more_smaller_slides_than_rain(tmp_path):
    counts, medians = {}, {}
    for regime in ("earthquake", "rain"):
        cfg = sim.default_config(5, rows=300, cols=300, n_pre=1, n_post=1, regime=regime)
        res = sim.simulate_event(tmp_path / regime, cfg)
        feats, _ = gpkg.read_features(res.landslides_path)
        counts[regime] = len(feats)
        medians[regime] = np.median([f.properties["area_m2"] for f in feats])
        assert {f.properties["regime"] for f in feats} == {regime}
    assert counts["earthquake"] > 2 * counts["rain"] > 0
    assert medians["earthquake"] < medians["rain"]


def test_landslide_area_distribution_is_heavy_tailed(event):
    feats, _ = gpkg.read_features(event.landslides_path)
    areas = np.array([f.properties["area_m2"] for f in feats])
    assert areas.max() > 5 * np.median(areas)


def test_post_event_vh_drop_over_visible_drop_slides(event):
    stacks = _stacks(event)
    feats, _ = gpkg.read_features(event.landslides_path)
    shape = (event.config.rows, event.config.cols)
    with rasterio.open(event.truth_mask_path) as ds:
        transform = ds.transform
    truth = _read(event.truth_mask_path)[0].astype(bool)
    post_drop, pre_drop = [], []
    for orbit_pass, key in (("ASCENDING", "visible_asc"), ("DESCENDING", "visible_desc")):
        pre = np.stack(stacks[orbit_pass]["pre"])[:, 1]
        post = np.stack(stacks[orbit_pass]["post"])[:, 1]
        ratio = np.median(pre, axis=0) - np.median(post, axis=0)
        pre_ratio = np.median(pre[:2], axis=0) - np.median(pre[2:], axis=0)  # two pre-event sub-stacks
        background = np.median(ratio[~truth])
        pre_background = np.median(pre_ratio[~truth])
        for f in feats:
            if f.properties["change_kind"] != "drop" or not f.properties[key]:
                continue
            m = rfeatures.rasterize([(f.geometry, 1)], out_shape=shape, transform=transform).astype(bool)
            post_drop.append(ratio[m].mean() - background)
            pre_drop.append(pre_ratio[m].mean() - pre_background)
    assert len(post_drop) >= 10
    # relative to the area-wide change of that pass (rain shifts whole dates), slides dropped; before, not
    assert np.mean(post_drop) > 1.5
    assert abs(np.mean(pre_drop)) < 0.5


def test_shadowed_slides_show_no_change(steep_event):
    """Inside radar shadow a slide has no signal: its post-event pixels stay at the noise floor."""
    g_asc, _ = _geometry(steep_event)
    mask = _read(steep_event.truth_mask_path)[0].astype(bool)
    stacks = _stacks(steep_event)
    pre = np.median(np.stack(stacks["ASCENDING"]["pre"])[:, 1], axis=0)
    post = np.median(np.stack(stacks["ASCENDING"]["post"])[:, 1], axis=0)
    m = mask & (g_asc == 2)
    if m.sum() < 5:
        pytest.skip("no slide pixel in ascending shadow for this seed")
    assert abs(np.mean((pre - post)[m])) < 1.0


# --------------------------------------------------------------------------- files, metadata, contract


def test_scene_files_follow_the_contract(event):
    cfg = event.config
    assert len(event.scene_paths) == 2 * (cfg.n_pre + cfg.n_post)
    for path in event.scene_paths:
        m = SCENE_NAME.match(path.name)
        assert m, path.name
        with rasterio.open(path) as ds:
            assert ds.count == 2 and ds.dtypes == ("float32", "float32")
            assert ds.descriptions == ("VV", "VH")
            assert np.isnan(ds.nodata)
            assert ds.crs.to_epsg() == cfg.epsg
            assert ds.res == (cfg.pixel_size, cfg.pixel_size)
            assert ds.transform.e < 0  # north-up
            tags = ds.tags()
            assert tags["UNITS"] == "dB"
            assert tags["POLARISATIONS"] == "VV,VH"
            assert tags["PLATFORM"] == "SIMULATED"
            assert "simulated by landslide_sar_plugin" in tags["SYNTHETIC"]
            assert f"seed {cfg.seed}" in tags["SYNTHETIC"]
            assert tags["ORBIT_PASS"] == {"ASC": "ASCENDING", "DSC": "DESCENDING"}[m.group(1)]
            assert int(tags["RELATIVE_ORBIT"]) == int(m.group(2))
            start = tags["ACQUISITION_START"]
            assert start.endswith("Z")
            t = sim.parse_time(start)
            assert t.strftime("%Y%m%dT%H%M%S") == m.group(3)
            data = ds.read()
            assert np.isfinite(data).all()
            assert -40.0 < np.median(data[1]) < 0.0


def test_acquisition_times_and_passes(event):
    doc = json.loads(event.event_json_path.read_text())
    t_event = sim.parse_time(doc["event_time"])
    cfg = event.config
    lon0 = sim._utm_central_meridian(cfg.epsg)
    for orbit_pass, local_lo, local_hi in (("ASCENDING", 16.5, 19.5), ("DESCENDING", 4.5, 7.5)):
        scenes = [s for s in doc["scenes"] if s["orbit_pass"] == orbit_pass]
        pre = [sim.parse_time(s["acquisition_start"]) for s in scenes if s["role"] == "pre"]
        post = [sim.parse_time(s["acquisition_start"]) for s in scenes if s["role"] == "post"]
        assert len(pre) >= cfg.n_pre and len(post) >= cfg.n_post
        assert max(pre) < t_event < min(post)
        times = sorted(pre + post)
        assert {(b - a).days for a, b in zip(times, times[1:])} == {cfg.revisit_days}
        for t in times:
            local = (t.hour + t.minute / 60 + lon0 / 15.0) % 24
            assert local_lo < local < local_hi, (orbit_pass, t)  # asc evening, desc morning


def test_dem_truth_and_event_json(event):
    cfg = event.config
    with rasterio.open(event.dem_path) as dem, rasterio.open(event.truth_mask_path) as tm:
        assert dem.res == (30.0, 30.0) and dem.dtypes[0] == "float32"
        assert dem.crs == tm.crs
        # the DEM covers the scene
        assert dem.bounds.left <= tm.bounds.left and dem.bounds.right >= tm.bounds.right
        assert dem.bounds.bottom <= tm.bounds.bottom and dem.bounds.top >= tm.bounds.top
        assert tm.dtypes[0] == "uint8" and set(np.unique(tm.read(1))) <= {0, 1}
        assert "synthetic" in dem.tags()["SYNTHETIC"].lower()
        elev = dem.read(1)
        assert elev.max() - elev.min() > 0.5 * cfg.relief_m
    for key in ("asc", "desc"):
        codes = _read(event.geometry_paths[key])[0]
        assert codes.dtype == np.uint8 and set(np.unique(codes)) <= {0, 1, 2, 3}
    with rasterio.open(event.landcover_path) as lc:
        assert lc.tags()["CLASS_1"] == "forest" and lc.tags()["CLASS_5"] == "water"
        classes = set(np.unique(lc.read(1)))
        assert {1, 3} <= classes <= {1, 2, 3, 4, 5}
    doc = json.loads(event.event_json_path.read_text())
    assert doc["synthetic"] is True
    assert doc["seed"] == cfg.seed and doc["regime"] == "earthquake"
    assert doc["generator_version"] == sim.GENERATOR_VERSION
    assert doc["crs"] == f"EPSG:{cfg.epsg}"
    assert doc["landslides"]["count"] == event.n_landslides
    assert {s["file"] for s in doc["scenes"]} == {f"scenes/{p.name}" for p in event.scene_paths}
    assert all((event.out_dir / s["file"]).is_file() for s in doc["scenes"])
    # the stored configuration regenerates the same configuration
    assert sim.SimulationConfig.from_dict(doc["config"]).resolved() == cfg
    feats, crs_wkt = gpkg.read_features(event.landslides_path, "landslides")
    assert crs_wkt
    props = feats[0].properties
    for name in ("slide_id", "area_m2", "regime", "mean_slope_deg", "aspect_deg", "change_kind", "dvv_db",
                 "dvh_db", "shadow_asc", "shadow_desc"):
        assert name in props
    assert {f.properties["change_kind"] for f in feats} <= {"drop", "rise", "invisible"}
    drops = [f for f in feats if f.properties["change_kind"] == "drop"]
    assert drops and all(f.properties["dvh_db"] < f.properties["dvv_db"] < 0 for f in drops)


def test_same_seed_identical_files_other_seed_differs(tmp_path):
    cfg = sim.default_config(21, rows=128, cols=128, n_pre=2, n_post=1)
    a = _hashes(sim.simulate_event(tmp_path / "a", cfg).out_dir)
    b = _hashes(sim.simulate_event(tmp_path / "b", cfg).out_dir)
    assert a == b
    assert len(a) == 6 + 7  # 6 scenes; dem, mask, 2 geometry, landcover, gpkg, event.json
    c = _hashes(sim.simulate_event(tmp_path / "c", dataclasses.replace(cfg, seed=22)).out_dir)
    assert c["dem.tif"] != a["dem.tif"]
    assert c["truth/truth_mask.tif"] != a["truth/truth_mask.tif"]
    assert all(c.get(k) != v for k, v in a.items() if k.startswith("scenes/"))


def test_lossy_storage_is_bounded_and_smaller(tmp_path):
    cfg = sim.default_config(4, rows=128, cols=128, n_pre=1, n_post=1)
    exact = sim.simulate_event(tmp_path / "exact", cfg)
    lossy = sim.simulate_event(tmp_path / "lossy", dataclasses.replace(cfg, max_z_error=0.1))
    for p, q in zip(exact.scene_paths, lossy.scene_paths):
        assert p.name == q.name
        err = np.abs(_read(p).astype(np.float64) - _read(q))
        assert err.max() <= 0.1 + 1e-6
        assert q.stat().st_size < p.stat().st_size


def test_random_event_configs_differ():
    cfgs = sim.event_configs(range(12))
    assert len({c.regime for c in cfgs}) == 2
    assert len({c.calibration for c in cfgs}) == 2
    assert len({c.relief_m for c in cfgs}) == 12
    assert len({c.event_time for c in cfgs}) == 12
    assert len({c.grass_fraction for c in cfgs}) >= 10
    assert sim.random_event_config(3) == sim.random_event_config(3)
    assert sim.random_event_config(3, regime="rain").regime == "rain"


def test_invalid_configuration_raises_value_error(tmp_path):
    for bad in (dict(regime="flood"), dict(rows=8), dict(revisit_days=5), dict(pixel_size=7.0),
                dict(event_time="not a date"), dict(calibration="mars"), dict(n_post=0)):
        with pytest.raises(ValueError):
            sim.simulate_event(tmp_path, sim.default_config(1, **bad))
    assert not any(tmp_path.iterdir())


# --------------------------------------------------------------------------- command line


def test_cli_simulate_writes_event_and_reports(tmp_path, capsys):
    from landslide_sar_plugin import cli

    out = tmp_path / "ev"
    rc = cli.main(["simulate", "--out", str(out), "--seed", "9", "--rows", "96", "--cols", "96", "--n-pre", "2",
                   "--n-post", "1", "--regime", "rain", "--revisit-days", "6", "--event", "2020-07-04T12:00:00Z"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert str(out) in printed and "SYNTHETIC" in printed
    doc = json.loads((out / "event.json").read_text())
    assert doc["regime"] == "rain" and doc["config"]["revisit_days"] == 6
    assert doc["event_time"] == "2020-07-04T12:00:00Z"
    assert len(list((out / "scenes").glob("*.tif"))) == 6


def test_cli_bad_input_exits_nonzero_with_one_line(tmp_path, capsys):
    from landslide_sar_plugin import cli

    rc = cli.main(["simulate", "--out", str(tmp_path / "x"), "--seed", "1", "--event", "tomorrow"])
    assert rc != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "ISO-8601" in err


def test_sample_scene_is_shipped_and_synthetic():
    root = Path(sim.__file__).resolve().parents[2] / "sample_data"
    doc = json.loads((root / "event.json").read_text())
    assert doc["synthetic"] is True
    assert doc["config"] == sim.sample_config(doc["seed"]).resolved().to_dict()
    assert 20 <= doc["landslides"]["count"] <= 300
    total = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    assert total < 8.5e6
    assert "SYNTHETIC" in (root / "README.md").read_text()
    for sc in doc["scenes"]:
        assert (root / sc["file"]).is_file()
    assert sum(s["role"] == "pre" for s in doc["scenes"]) >= 10
    assert sum(s["role"] == "post" for s in doc["scenes"]) >= 4
