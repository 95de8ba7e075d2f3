"""Calibration statistics (core/simulate/calibration.py) on hand-built stacks, and the calibrate command."""

from __future__ import annotations

import datetime as dt
import json
import math

import numpy as np
import pytest
import rasterio
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from rasterio.transform import from_origin

from landslide_sar_plugin.core.simulate import calibration as cal
from landslide_sar_plugin.core.simulate import calibration_report as cr
from landslide_sar_plugin.core.simulate.change import exponential_field

UTC = dt.timezone.utc


def _dates(*days: str) -> list[dt.datetime]:
    return [dt.datetime.fromisoformat(d).replace(tzinfo=UTC) for d in days]


# Three seasons like the real OPERA stacks: 6 dates 6 days apart, 6 dates 12 days apart a year later, 8 dates.
REAL_LIKE = _dates("2021-11-19", "2021-11-25", "2021-12-01", "2021-12-07", "2021-12-13", "2021-12-19",
                   "2022-11-02", "2022-11-14", "2022-11-26", "2022-12-08", "2022-12-20", "2023-01-01",
                   "2023-10-04", "2023-10-16", "2023-10-28", "2023-11-09", "2023-11-21", "2023-12-03",
                   "2023-12-15", "2023-12-27", "2025-01-02")


# --------------------------------------------------------------------------- windows


def test_seasons_split_at_gaps():
    runs = cal.seasons(REAL_LIKE)
    assert [len(r) for r in runs] == [6, 6, 8, 1]
    assert runs[0] == list(range(6))


def test_window_pairs_consecutive_and_year_apart():
    pairs = cal.window_pairs(REAL_LIKE, n_pre=4, n_post=2)
    cons = [p for p in pairs if p.kind == "consecutive"]
    year = [p for p in pairs if p.kind == "year_apart"]
    # one split in each 6-date season, three in the 8-date one; the lone 2025 date makes no pair
    assert [(p.pre, p.post) for p in cons] == [
        ((0, 1, 2, 3), (4, 5)), ((6, 7, 8, 9), (10, 11)), ((12, 13, 14, 15), (16, 17)),
        ((13, 14, 15, 16), (17, 18)), ((14, 15, 16, 17), (18, 19))]
    # 2021 -> 2022 (post from 2022-11-22 on) and 2022 -> 2023 (post from 2023-11-23 on)
    assert [(p.pre, p.post) for p in year] == [((0, 1, 2, 3), (8, 9)), ((6, 7, 8, 9), (17, 18))]
    for p in pairs:
        assert max(REAL_LIKE[i] for i in p.pre) < min(REAL_LIKE[i] for i in p.post)
    with pytest.raises(ValueError):
        cal.window_pairs(REAL_LIKE, n_pre=0)


# --------------------------------------------------------------------------- resolution


def test_block_average_is_a_mean_in_linear_power():
    db = np.array([[0.0, 10.0, 0.0], [10.0, 0.0, 10.0]])
    out = cal.block_average_db(db[None], 2)  # one 2x2 block; the third column is dropped
    assert out.shape == (1, 1, 1)
    assert out[0, 0, 0] == pytest.approx(10 * math.log10((1 + 10 + 10 + 1) / 4))
    with_nan = cal.block_average_db(np.array([[[0.0, np.nan], [np.nan, np.nan]]]), 2)
    assert with_nan[0, 0, 0] == pytest.approx(0.0)
    assert np.isnan(cal.block_average_db(np.full((1, 2, 2), np.nan), 2)).all()
    mask = np.array([[True, True, True, False], [True, True, True, True]])
    np.testing.assert_array_equal(cal.block_mask(mask, 2), [[True, False]])


@settings(max_examples=60, deadline=None)
@given(hnp.arrays(np.float64, (2, 6, 6), elements=st.floats(-35, 5)), st.sampled_from([1, 2, 3]))
def test_block_average_lies_between_block_min_and_max(db, factor):
    out = cal.block_average_db(db, factor)
    n = 6 // factor
    blocks = db[:, :n * factor, :n * factor].reshape(2, n, factor, n, factor)
    assert np.all(out <= blocks.max(axis=(2, 4)) + 1e-9)
    assert np.all(out >= blocks.min(axis=(2, 4)) - 1e-9)


# --------------------------------------------------------------------------- A_ratio statistics


def test_a_ratio_of_a_known_drop_and_its_tails():
    pre = np.zeros((4, 20, 20))
    post = np.zeros((2, 20, 20))
    post[:, :, :10] = -2.5  # the left half dropped by 2.5 dB
    stack = np.concatenate([pre, post])
    pair = cal.WindowPair("p", "consecutive", (0, 1, 2, 3), (4, 5))
    ratio = cal.a_ratio(stack, pair)
    assert ratio[:, :10] == pytest.approx(2.5)
    assert ratio[:, 10:] == pytest.approx(0.0)
    s = cal.ratio_statistics(ratio)
    assert s["share_gt_1_db"] == pytest.approx(0.5) and s["share_gt_2_db"] == pytest.approx(0.5)
    assert s["share_gt_3_db"] == 0.0 and s["share_gt_1p25_db"] == pytest.approx(0.5)
    assert s["std_db"] == pytest.approx(1.25) and s["median_db"] == pytest.approx(1.25)
    left = np.zeros((20, 20), bool)
    left[:, :10] = True
    assert cal.ratio_statistics(ratio, left)["std_db"] == pytest.approx(0.0)


def test_robust_sigma_is_the_standard_deviation_of_normal_data_and_ignores_outliers():
    rng = np.random.default_rng(1)
    x = rng.normal(3.0, 2.0, 200000)
    assert cal.robust_sigma(x) == pytest.approx(2.0, rel=0.02)
    x[:2000] = 1e6  # 1 % wild values
    assert cal.robust_sigma(x) == pytest.approx(2.0, rel=0.05)


@settings(max_examples=80, deadline=None)
@given(hnp.arrays(np.float64, st.integers(60, 200), elements=st.floats(-20, 20)), st.floats(-10, 10),
       st.floats(0.1, 10))
def test_robust_sigma_is_shift_invariant_and_scales(x, shift, scale):
    assert cal.robust_sigma(x + shift) == pytest.approx(cal.robust_sigma(x), abs=1e-6)
    assert cal.robust_sigma(scale * x) == pytest.approx(scale * cal.robust_sigma(x), rel=1e-6, abs=1e-9)


def test_summarize_pairs_means_per_kind():
    rows = [{"pair": {"kind": "consecutive"}, "std_db": 1.0, "n_pixels": 5},
            {"pair": {"kind": "consecutive"}, "std_db": 3.0, "n_pixels": 5},
            {"pair": {"kind": "year_apart"}, "std_db": 5.0, "n_pixels": 5}]
    s = cal.summarize_pairs(rows)
    assert s["consecutive"]["std_db"] == 2.0 and s["year_apart"]["std_db"] == 5.0
    assert s["all"]["std_db"] == 3.0 and s["all"]["n_pairs"] == 3


# --------------------------------------------------------------------------- offsets


@settings(max_examples=60, deadline=None)
@given(hnp.arrays(np.float64, st.integers(2, 12), elements=st.floats(-4, 4)))
def test_date_offsets_recover_a_known_offset_per_date(offsets):
    rng = np.random.default_rng(0)
    base = rng.normal(-15.0, 2.0, (8, 8))
    stack = base[None] + offsets[:, None, None]
    expected = offsets - np.median(offsets)  # relative to the temporal median, which holds median(offsets)
    np.testing.assert_allclose(cal.date_offsets(stack), expected, atol=1e-4)
    dev = cal.date_deviations(stack)
    np.testing.assert_allclose(dev, 0.0, atol=1e-4)


def test_offset_statistics_of_a_heavy_tailed_series():
    s = cal.offset_statistics(np.array([0.0, 0.1, -0.1, 0.05, -0.05, 3.0]))
    assert s["max_abs_db"] == pytest.approx(3.0)
    assert s["std_db"] > 1.0 > s["robust_sigma_db"]
    assert s["n_dates"] == 6


# --------------------------------------------------------------------------- spatial correlation


def test_autocovariance_of_white_noise_and_masking():
    rng = np.random.default_rng(3)
    noise = rng.normal(0.0, 1.5, (150, 150))
    cov = cal.radial_autocovariance(noise, 5)
    assert cov[0] == pytest.approx(2.25, rel=0.03)
    assert abs(cov[1]) < 0.05 and abs(cov[5]) < 0.05
    masked = noise.copy()
    masked[:, :60] = np.nan
    assert cal.radial_autocovariance(masked, 5)[0] == pytest.approx(2.25, rel=0.05)


def test_correlation_length_of_a_known_correlated_field_under_speckle_scale_noise():
    """Ten dates of an exponential field (L = 300 m, sd 0.5 dB) plus white noise (sd 1.5 dB) at 30 m."""
    rng = np.random.default_rng(5)
    shape, px, corr_m = (160, 160), 30.0, 300.0
    stack = np.stack([0.5 * exponential_field(rng, shape, corr_m / px) + rng.normal(0, 1.5, shape)
                      for _ in range(10)])
    res = cal.correlation_length(stack, px, max_lag_m=2400.0)
    assert not res["lower_bound"]
    assert 0.6 * corr_m < res["e_folding_m"] < 1.25 * corr_m, res["e_folding_m"]
    # deviations from a temporal median of 10 dates: about (1 + 1.57/10) x the per-date variance
    assert res["white_variance_db2"] == pytest.approx(2.25, rel=0.2)
    assert res["correlated_sd_db"] == pytest.approx(0.5, rel=0.3)
    # white noise alone: the covariance beyond 60 m is about zero, so no correlated change is found
    white = cal.correlation_length(rng.normal(0, 1.5, (10, *shape)), px)
    assert not (white["correlated_sd_db"] > 0.1)


def test_single_date_differences_and_levels():
    stack = np.zeros((3, 10, 10))
    stack[1] += 1.0
    stack[2, :, :5] = 4.0  # second difference: half +3, half -1
    d = cal.single_date_differences(stack, _dates("2020-01-01", "2020-01-13", "2020-01-25"))
    assert d["n_pairs"] == 2
    assert d["std_db"] == pytest.approx((0.0 + 2.0) / 2)
    classes = {"left": np.zeros((10, 10), bool)}
    classes["left"][:, :5] = True
    lv = cal.levels(stack, classes)["left"]
    assert lv["median_db"] == pytest.approx(1.0) and lv["median_image_spread_db"] == pytest.approx(0.0)


def test_stack_statistics_shapes_and_errors():
    rng = np.random.default_rng(2)
    stack = rng.normal(-15.0, 1.6, (len(REAL_LIKE), 40, 40))
    s = cal.stack_statistics(stack, REAL_LIKE, 30.0)
    assert len(s["pairs"]) == 7 and s["summary"]["all"]["n_pairs"] == 7
    # iid noise of sd 1.6: median of 4 minus mean of 2 has an sd near 1.6 * sqrt(0.3 + 0.5)
    assert s["summary"]["all"]["std_db"] == pytest.approx(1.6 * math.sqrt(0.3 + 0.5), rel=0.1)
    assert len(s["offsets_db"]) == len(REAL_LIKE)
    with pytest.raises(ValueError):
        cal.stack_statistics(stack[:3], REAL_LIKE, 30.0)


# --------------------------------------------------------------------------- reading OPERA bursts, the command


def _write_opera_burst(folder, dates, rng, pols=("VV", "VH"), size=24):
    folder.mkdir(parents=True, exist_ok=True)
    for d in dates:
        stamp = d.strftime("%Y%m%dT015911Z")
        for pol, level in (("VV", 0.12), ("VH", 0.03)):
            if pol not in pols:
                continue
            name = f"OPERA_L2_RTC-S1_T137-292320-IW2_{stamp}_20231203T124004Z_S1A_30_v1.0_{pol}.tif"
            data = (level * rng.gamma(8.0, 1 / 8.0, (size, size))).astype(np.float32)
            with rasterio.open(folder / name, "w", driver="GTiff", width=size, height=size, count=1,
                               dtype="float32", crs="EPSG:32611", transform=from_origin(250000, 3800000, 30, 30)) as ds:
                ds.write(data, 1)


def test_read_opera_burst_parses_names_and_converts_to_db(tmp_path):
    rng = np.random.default_rng(4)
    _write_opera_burst(tmp_path / "b", REAL_LIKE[:3], rng)
    burst = cr.read_opera_burst(tmp_path / "b")
    assert burst["dates"] == [d.replace(hour=1, minute=59, second=11) for d in REAL_LIKE[:3]]
    assert burst["VV"].shape == (3, 24, 24) and burst["pixel_size_m"] == 30.0
    assert np.nanmedian(burst["VH"]) == pytest.approx(10 * math.log10(0.03), abs=0.5)
    assert cr.burst_folders([tmp_path]) == [tmp_path / "b"]
    _write_opera_burst(tmp_path / "vh_only", REAL_LIKE[:2], rng, pols=("VH",))
    with pytest.raises(ValueError, match="no VV file"):
        cr.read_opera_burst(tmp_path / "vh_only")
    with pytest.raises(ValueError, match="no OPERA"):
        cr.read_opera_burst(tmp_path)


def test_calibrate_command_writes_json_and_markdown(tmp_path, capsys):
    from landslide_sar_plugin import cli

    rng = np.random.default_rng(6)
    _write_opera_burst(tmp_path / "real" / "T137-292320-IW2", REAL_LIKE[:12], rng)
    out = tmp_path / "out"
    rc = cli.main(["calibrate", "--real", str(tmp_path / "real"), "--tuning", "T137-292320-IW2", "--seeds", "1",
                   "--size", "96", "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    report = json.loads((out / "calibration.json").read_text())
    assert {"real_tuning", "sim_calibrated_10m", "sim_calibrated_30m", "sim_randomised_30m"} <= set(report["table"])
    real_std = report["table"]["real_tuning"]["VH"]["mean"]["std_db"]
    assert 0.3 < real_std < 3.0  # iid gamma(8) speckle: about 1.3 dB
    md = (out / "calibration.md").read_text()
    assert "SYNTHETIC calibrated (30m, land)" in md and "real, tuning bursts" in md
    # without --real: the real rows and dates come from the numbers shipped with the package
    assert cli.main(["calibrate", "--seeds", "2", "--size", "64", "--out", str(tmp_path / "shipped")]) == 0
    shipped = json.loads((tmp_path / "shipped" / "calibration.json").read_text())
    assert shipped["table"]["real_tuning"]["VH"]["mean"]["std_db"] == cr.load_reference()["groups"]["tuning"]["VH"][
        "std_db"]
    assert cli.main(["calibrate", "--real", str(tmp_path / "nothing"), "--out", str(tmp_path / "o2")]) == 1
    assert "not a folder" in capsys.readouterr().err
    assert not (tmp_path / "o2").exists()


def test_shipped_reference_numbers_are_real_and_complete():
    ref = cr.load_reference()
    assert "OPERA" in ref["source"]
    assert ref["tuning_bursts"] == ["T137-292319-IW2", "T137-292321-IW2"]
    assert len(ref["dates"]) == 21
    tuning = ref["groups"]["tuning"]["VH"]
    assert set(tuning["bursts"]) == set(ref["tuning_bursts"])
    assert 1.0 < tuning["std_db"] < 2.5
    assert {"report", "water"} <= set(ref["groups"])
