"""Background-change removal (core/detrend.py) and the noise-scaled threshold rule (core/candidates.py)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
import rasterio
from hypothesis import given, settings
from hypothesis import strategies as st
from rasterio.transform import from_origin
from rasterio.windows import Window

from landslide_sar_plugin.core import detrend
from landslide_sar_plugin.core.candidates import ROBUST_SIGMA_PER_MAD, ThresholdSpec, noise_level
from landslide_sar_plugin.core.detect import DetectParams, threshold_rule_fields
from landslide_sar_plugin.core.grid import Grid
from landslide_sar_plugin.core.staging import DetectionError, Progress


def _detrend_array(score: np.ndarray, radius_m: float, px: float) -> np.ndarray:
    cell = detrend.cell_size_px(radius_m, px)
    cells = detrend.cell_medians(lambda _, r0, n: score[r0:r0 + n], *score.shape, cell)
    trend = detrend.disk_median(cells, radius_m / (cell * px))
    return score - detrend.trend_block(trend, cell, Window(0, 0, score.shape[1], score.shape[0]))


@settings(max_examples=30, deadline=None)
@given(offset=st.floats(-5, 5), rows=st.integers(20, 90), cols=st.integers(20, 90))
def test_a_scene_wide_offset_is_removed_exactly(offset, rows, cols):
    rng = np.random.default_rng(rows * 100 + cols)
    noise = rng.normal(0, 0.1, (rows, cols))
    out = _detrend_array(noise + offset, 100.0, 10.0)
    # The noise stays, the offset goes: what is left is the noise minus a (nearly zero) local median.
    assert abs(np.median(out)) < 0.05
    assert np.allclose(out - noise, out.flat[0] - noise.flat[0], atol=0.08)


def test_a_broad_ramp_is_removed_and_a_small_slide_kept():
    rows = cols = 200
    yy, xx = np.mgrid[0:rows, 0:cols]
    ramp = 2.0 * xx / cols  # 2 dB across 2 km at 10 m: broad background change
    slide = np.zeros((rows, cols))
    slide[90:100, 90:105] = 4.0  # 100 m x 150 m scar
    out = _detrend_array(ramp + slide, 1000.0, 10.0)
    background = np.ones((rows, cols), bool)
    background[80:110, 80:115] = False
    inner = (slice(20, 180), slice(20, 180))
    assert np.abs(out[inner][background[inner]]).max() < 0.35  # the ramp is gone (edges excepted)
    assert np.abs(ramp[inner][background[inner]]).max() > 1.5
    assert out[92:98, 92:103].mean() == pytest.approx(4.0, abs=0.3)  # the slide keeps its contrast


def test_nan_stays_nan_and_cells_without_data_take_the_global_median():
    score = np.full((60, 60), 1.5)
    score[:, :30] = np.nan
    out = _detrend_array(score, 200.0, 10.0)
    assert np.isnan(out[:, :30]).all()
    assert np.allclose(out[:, 30:], 0.0, atol=1e-6)
    cells = detrend.cell_medians(lambda _, r0, n: score[r0:r0 + n], 60, 60, 5)
    assert np.isnan(cells[:, :6]).all()
    assert np.allclose(detrend.disk_median(cells, 1.0), 1.5)  # empty disks -> the median of all cells


def test_detrend_raster_streams_blocks_and_equals_the_array_version(tmp_path):
    rng = np.random.default_rng(3)
    score = (rng.normal(0, 1, (150, 170)) + np.linspace(0, 3, 170)[None, :]).astype(np.float32)
    score[5:9, 5:9] = np.nan
    grid = Grid(rasterio.crs.CRS.from_epsg(32611), from_origin(0, 1500, 10, 10), 170, 150)
    path = tmp_path / "score.tif"
    with rasterio.open(path, "w", driver="GTiff", width=170, height=150, count=1, dtype="float32",
                       crs=grid.crs, transform=grid.transform, nodata=float("nan")) as dst:
        dst.write(score, 1)
    detrended, background = detrend.detrend_raster(path, tmp_path, grid, 400.0, Progress(), block_size=64)
    with rasterio.open(detrended.path) as src:
        streamed = src.read(1)
    with rasterio.open(background.path) as src:
        trend = src.read(1)
    expected = _detrend_array(score.astype(np.float64), 400.0, 10.0)
    assert np.allclose(streamed, expected, atol=1e-5, equal_nan=True)
    assert np.isnan(trend[5:9, 5:9]).all() and np.allclose(streamed + trend, score, atol=1e-5, equal_nan=True)


def test_detrend_on_many_threads_writes_exactly_the_one_thread_result(tmp_path):
    rng = np.random.default_rng(8)
    score = (rng.normal(0, 1, (700, 330)) + np.linspace(0, 3, 330)[None, :]).astype(np.float32)
    score[rng.random(score.shape) < 0.1] = np.nan
    grid = Grid(rasterio.crs.CRS.from_epsg(32611), from_origin(0, 7000, 10, 10), 330, 700)
    path = tmp_path / "score.tif"
    with rasterio.open(path, "w", driver="GTiff", width=330, height=700, count=1, dtype="float32",
                       crs=grid.crs, transform=grid.transform, nodata=float("nan")) as dst:
        dst.write(score, 1)
    outs = {}
    for workers in (1, 3):
        folder = tmp_path / f"w{workers}"
        folder.mkdir()
        seen = []
        prog = Progress(lambda f, m, seen=seen: seen.append(f))
        detrended, background = detrend.detrend_raster(path, folder, grid, 400.0, prog, block_size=64,
                                                       workers=workers)
        with rasterio.open(detrended.path) as a, rasterio.open(background.path) as b:
            outs[workers] = (a.read(1), b.read(1))
        assert seen == sorted(seen) and len(seen) > 20  # progress from the calling thread, in order
    for one, many in zip(outs[1], outs[3]):
        np.testing.assert_array_equal(one, many)
    # 700 rows, cells of 10 px: 70 cell rows read in groups of 51 (two groups), serial or not the same cells
    serial = detrend.cell_medians(lambda _, r0, n: score[r0:r0 + n], 700, 330, 10)
    threaded = detrend.cell_medians(lambda _, r0, n: score[r0:r0 + n], 700, 330, 10, workers=3)
    np.testing.assert_array_equal(serial, threaded)
    assert serial.shape == (70, 33)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(-50, 50, allow_nan=False), min_size=1, max_size=300), st.integers(1, 5))
def test_noise_level_is_the_median_and_robust_sigma(values, n_blocks):
    arr = np.array(values)
    blocks = np.array_split(np.concatenate([arr, [np.nan, np.nan]]), n_blocks)
    got = noise_level(lambda: iter(blocks))
    median = np.median(arr)
    assert got["center"] == pytest.approx(median, abs=1e-9)
    assert got["sigma"] == pytest.approx(ROBUST_SIGMA_PER_MAD * np.median(np.abs(arr - median)), abs=1e-9)


def test_threshold_spec_takes_exactly_one_finite_rule():
    ThresholdSpec(k_sigma=3.0).validate()
    for bad in (dict(), dict(threshold=1.0, k_sigma=2.0), dict(k_sigma=0.0), dict(k_sigma=float("nan")),
                dict(threshold=float("nan")), dict(threshold=float("inf"))):
        with pytest.raises(DetectionError):
            ThresholdSpec(**bad).validate()
    assert "1.4826" in ThresholdSpec(k_sigma=3.0).rule()


def test_threshold_rule_fields_give_one_rule_or_the_default():
    assert threshold_rule_fields(threshold_db=2.0) == {"threshold_db": 2.0, "percentile": None, "k_sigma": None}
    assert threshold_rule_fields(k_sigma=3.0) == {"threshold_db": None, "percentile": None, "k_sigma": 3.0}
    default = threshold_rule_fields()
    assert sum(v is not None for v in default.values()) == 1
    assert default == {k: getattr(DetectParams(event_time=dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc)), k)
                       for k in default}
    with pytest.raises(DetectionError):
        threshold_rule_fields(threshold_db=1.0, percentile=99.0)
