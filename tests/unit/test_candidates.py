"""Thresholding an existing score raster into exceedance, heatmap and candidate polygons."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from landslide_sar_plugin.core import gpkg, threshold
from landslide_sar_plugin.core.candidates import ThresholdSpec, candidates_from_score
from landslide_sar_plugin.core.staging import Cancelled, DetectionError


@pytest.fixture
def probability(tmp_path):
    prob = np.full((50, 60), 0.1, np.float32)
    prob[5:15, 5:15] = 0.9     # 100 px = 10,000 m2 -> a candidate
    prob[30:33, 40:43] = 0.8   # 9 px = 900 m2 -> below min area 1000
    prob[40:45, 5:15] = 0.3    # below threshold
    prob[0, :] = np.nan        # invalid row
    path = tmp_path / "probability.tif"
    with rasterio.open(path, "w", driver="GTiff", width=60, height=50, count=1, dtype="float32",
                       crs="EPSG:32633", transform=from_origin(300000, 5000000, 10, 10), nodata=float("nan")) as dst:
        dst.write(prob, 1)
    return path, prob


def test_fixed_probability_threshold_gives_one_polygon_with_exact_stats(probability, tmp_path):
    path, prob = probability
    spec = ThresholdSpec(threshold=0.5, min_area_m2=1000, method="model", units="probability", event_id="ev1",
                         heatmap_radius_m=20)
    res = candidates_from_score(path, tmp_path / "out", spec, prefix="update_")
    feats, crs = gpkg.read_features(res.files["candidates"])
    assert crs == "EPSG:32633" and len(feats) == 1
    p = feats[0].properties
    assert p["area_m2"] == pytest.approx(10_000) and p["mean_score"] == pytest.approx(0.9)
    assert (p["method"], p["event_id"], p["threshold"]) == ("model", "ev1", 0.5)
    assert res.files["candidates"].name == "update_candidates.gpkg"
    with rasterio.open(res.files["exceedance"]) as src:
        ex = src.read(1)
    assert (ex[0] == 255).all() and int((ex == 1).sum()) == 109 and ex[40, 5] == 0
    with rasterio.open(res.files["heatmap"]) as src:
        heat = src.read(1)
    assert heat[10, 10] == pytest.approx(1.0) and heat[25, 30] == pytest.approx(0.0)
    info = json.loads(res.files["json"].read_text())
    assert info["n_candidates"] == 1 and info["threshold_rule"] == "fixed 0.5 probability"


def test_percentile_threshold_equals_numpy(probability, tmp_path):
    path, prob = probability
    res = candidates_from_score(path, tmp_path / "out", ThresholdSpec(percentile=95.0, min_area_m2=0))
    assert res.threshold == float(np.percentile(prob[np.isfinite(prob)], 95.0))


def test_errors_and_cancel_leave_nothing(probability, tmp_path):
    path, _ = probability
    with pytest.raises(DetectionError, match="exactly one"):
        candidates_from_score(path, tmp_path / "o1", ThresholdSpec(threshold=0.5, percentile=90))
    with pytest.raises(DetectionError, match="does not exist"):
        candidates_from_score(tmp_path / "nope.tif", tmp_path / "o2", ThresholdSpec(threshold=0.5))
    with pytest.raises(Cancelled):
        candidates_from_score(path, tmp_path / "o3", ThresholdSpec(threshold=0.5), is_cancelled=lambda: True)
    assert not (tmp_path / "o3").exists()  # the cancelled call created the folder, so it removed it again


def test_raster_histogram_counts_every_valid_pixel(probability):
    from landslide_sar_plugin.core.histogram import raster_histogram

    path, prob = probability
    h = raster_histogram(path, bins=10, value_range=(0.0, 1.0))
    valid = prob[np.isfinite(prob)]
    assert h.n_valid == valid.size == int(h.counts.sum())
    np.testing.assert_array_equal(h.counts, np.histogram(valid, bins=np.linspace(0, 1, 11))[0])
    assert (h.minimum, h.maximum) == (pytest.approx(0.1), pytest.approx(0.9))
    assert h.fraction_above(0.5) == pytest.approx((valid > 0.5).mean())


def test_histogram_percentile_estimate_is_within_one_bin_of_the_exact_value():
    from landslide_sar_plugin.core.histogram import Histogram

    rng = np.random.default_rng(3)
    values = rng.normal(0.5, 1.5, 100_000)
    edges = np.linspace(-6, 8, 121)
    h = Histogram(np.histogram(values, bins=edges)[0], edges, values.size, values.min(), values.max())
    width = edges[1] - edges[0]
    for p in (50, 90, 95, 99, 99.9):
        assert abs(h.value_at_percentile(p) - np.percentile(values, p)) <= width


# ---------------------------------------------------------------- the percentile's value file


def test_finite_values_are_gathered_once_and_give_the_exact_percentiles(tmp_path, monkeypatch):
    import rasterio
    from affine import Affine
    from rasterio.crs import CRS

    from landslide_sar_plugin.core.candidates import FiniteValues, noise_level
    from landslide_sar_plugin.core.grid import Grid

    rng = np.random.default_rng(4)
    score = rng.normal(0.2, 0.6, (150, 170)).astype(np.float32)
    score[rng.random(score.shape) < 0.2] = np.nan
    score[:40, :40] = np.nan  # a whole block without a value
    grid = Grid(CRS.from_epsg(32633), Affine(10, 0, 400000, 0, -10, 5000000), 170, 150)
    path = tmp_path / "score.tif"
    with rasterio.open(path, "w", driver="GTiff", width=170, height=150, count=1, dtype="float32",
                       crs=grid.crs, transform=grid.transform, nodata=float("nan")) as dst:
        dst.write(score, 1)
    finite = score[np.isfinite(score)].astype(np.float64)
    calls = []
    monkeypatch.setattr(FiniteValues, "CHUNK", 1000)  # several chunks per later pass
    values = FiniteValues(path, grid, tmp_path / "values.f32", block_size=40, workers=2,
                          on_block=lambda: calls.append(1))
    try:
        assert values.extent == (finite.size, finite.min(), finite.max())
        assert (tmp_path / "values.f32").stat().st_size == 4 * finite.size
        assert len(calls) == 4 * 5  # one progress call per block of the gathering pass
        qs = [1, 50, 80, 99.5]
        got = threshold.exact_percentile(values, qs, bounds=values.extent)
        np.testing.assert_array_equal(got, np.percentile(finite, qs))
        noise = noise_level(values, float(np.median(finite)), extent=values.extent)
        mad = np.median(np.abs(finite - np.median(finite)))
        assert noise == {"center": float(np.median(finite)), "sigma": 1.4826 * mad}
        assert noise_level(lambda: iter([score]))["sigma"] == noise["sigma"]  # a plain iterator agrees
    finally:
        values.close()
    assert not (tmp_path / "values.f32").exists()
