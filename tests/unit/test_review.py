"""Review queue order and the threshold a review suggests (core/review.py)."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from hypothesis import example, given, settings
from hypothesis import strategies as st
from rasterio.transform import from_origin

from landslide_sar_plugin.core import review


def _box(x0, y0, x1, y1):
    return {"type": "Polygon", "coordinates": [[(x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0)]]}


@pytest.fixture()
def score_raster(tmp_path):
    """100 x 100 px at 10 m; four 10 x 10 px squares with scores 1, 2, 3, 4 dB, the rest 0."""
    score = np.zeros((100, 100), np.float32)
    for k, value in enumerate((1.0, 2.0, 3.0, 4.0)):
        score[10:20, 10 + 20 * k:20 + 20 * k] = value
    score[0, 0] = np.nan
    path = tmp_path / "a_ratio.tif"
    with rasterio.open(path, "w", driver="GTiff", width=100, height=100, count=1, dtype="float32",
                       crs="EPSG:32633", transform=from_origin(0, 1000, 10, 10), nodata=float("nan")) as dst:
        dst.write(score, 1)
    return path


def square(k):  # the k-th square of the fixture, in map coordinates
    x0 = 100 + 200 * k
    return _box(x0, 800, x0 + 100, 900)


def test_queue_puts_the_closest_to_the_threshold_first_and_larger_among_equals():
    cands = [{"mean_score": 3.0, "area_m2": 900}, {"mean_score": 1.6, "area_m2": 900},
             {"mean_score": 1.4, "area_m2": 400}, {"mean_score": 1.4, "area_m2": 2000},
             {"mean_score": None, "area_m2": 50}, {"mean_score": 5.0, "area_m2": 100}]
    assert review.review_order(cands, 1.5) == [3, 1, 2, 0, 5, 4]


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.floats(-10, 10), st.floats(0, 1e5)), min_size=1, max_size=40), st.floats(-5, 5))
def test_queue_is_a_permutation_sorted_by_distance(items, thr):
    cands = [{"mean_score": s, "area_m2": a} for s, a in items]
    order = review.review_order(cands, thr)
    assert sorted(order) == list(range(len(cands)))
    dist = [round(abs(cands[i]["mean_score"] - thr), 9) for i in order]
    assert dist == sorted(dist)


def test_polygon_scores_are_read_from_the_raster(score_raster):
    stats = review.polygon_mean_scores(score_raster, [square(0), square(3), _box(5000, 5000, 5100, 5100)])
    assert stats[0] == pytest.approx((1.0, 10000.0)) and stats[1] == pytest.approx((4.0, 10000.0))
    assert np.isnan(stats[2][0]) and stats[2][1] == 0.0  # outside the raster


def test_suggested_threshold_separates_accepted_from_rejected(score_raster):
    reviewed = review.reviewed_from_features([
        {"geometry": square(0), "status": "rejected"}, {"geometry": square(1), "status": "rejected"},
        {"geometry": square(2), "status": "accepted"}, {"geometry": square(3), "status": "edited"},
        {"geometry": _box(0, 0, 50, 50), "status": "proposed"}])
    s = review.suggest_threshold(score_raster, reviewed, current=1.25)
    assert 2.0 < s.threshold < 3.0 and s.f1 == pytest.approx(1.0)
    assert s.current_f1 == pytest.approx(2 * 2 / (2 * 2 + 1))  # at 1.25 dB the 2 dB rejected square passes
    assert (s.n_landslides, s.n_rejected) == (2, 2)


def test_a_missed_slide_drawn_by_hand_pulls_the_threshold_down(score_raster):
    reviewed = review.reviewed_from_features([
        {"geometry": square(0), "status": None, "source": "manual"},  # drawn by hand: a landslide
        {"geometry": square(2), "status": "accepted"}, {"geometry": _box(500, 500, 600, 600), "status": "rejected"}])
    s = review.suggest_threshold(score_raster, reviewed, current=2.5)
    assert 0.0 < s.threshold < 1.0 and s.f1 == pytest.approx(1.0)


def test_a_review_without_both_kinds_is_refused_with_a_sentence(score_raster):
    reviewed = review.reviewed_from_features([{"geometry": square(2), "status": "accepted"}])
    with pytest.raises(review.ReviewError, match="reject at least one"):
        review.suggest_threshold(score_raster, reviewed, current=1.0)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-20, 20), min_size=5, max_size=400), st.floats(1.0, 99.0))
@example(values=[0.0, 0.0, 0.0, 0.0, 2.225073858507e-311], p=1.0)  # a subnormal range (found by a fresh clone)
def test_a_percentile_shown_back_is_the_percentile_typed(values, p):
    """The dock's percentile mode: value_at_percentile and fraction_above are inverses (core/histogram.py)."""
    from landslide_sar_plugin.core.histogram import Histogram

    arr = np.array(values)
    # Edges as raster_histogram draws them (np.histogram's own bins=30 overflows on a subnormal range).
    lo, hi = float(arr.min()), float(arr.max())
    edges = np.linspace(lo, hi if hi > lo else lo + 1.0, 31)
    counts = np.histogram(arr, bins=edges)[0]
    hist = Histogram(counts=counts, edges=edges, n_valid=int(arr.size), minimum=float(arr.min()),
                     maximum=float(arr.max()))
    value = hist.value_at_percentile(p)
    if hist.counts[np.clip(np.searchsorted(edges, value) - 1, 0, 29)] == 0:
        return  # an empty bin: every value in it is the same percentile
    assert 100 * (1 - hist.fraction_above(value)) == pytest.approx(p, abs=1e-6)


def _write(path, data, nodata=float("nan")):
    with rasterio.open(path, "w", driver="GTiff", width=100, height=100, count=1, dtype="float32",
                       crs="EPSG:32633", transform=from_origin(0, 1000, 10, 10), nodata=nodata) as dst:
        dst.write(data.astype(np.float32), 1)
    return path


def test_passes_that_fired_are_read_per_pass_less_the_background(tmp_path, score_raster):
    asc = np.zeros((100, 100))
    asc[10:20, 10:20] = 3.0  # square 0: ascending 3 dB
    desc = np.full((100, 100), np.nan)
    desc[10:20, 10:20] = 1.0  # descending 1 dB
    background = np.full((100, 100), 0.5)
    files = {"a_ratio": score_raster, "a_ratio_ascending": _write(tmp_path / "asc.tif", asc),
             "a_ratio_descending": _write(tmp_path / "desc.tif", desc), "evidence_ascending": tmp_path / "e.tif"}
    rasters = review.per_pass_rasters(files, "a_ratio")
    assert rasters == {"ASCENDING": tmp_path / "asc.tif", "DESCENDING": tmp_path / "desc.tif"}
    scores = review.pass_scores(rasters, square(0))
    assert scores == pytest.approx({"ASCENDING": 3.0, "DESCENDING": 1.0})
    assert review.passes_fired(scores, 1.5) == ["ASCENDING"]
    less = review.pass_scores(rasters, square(0), background=_write(tmp_path / "bg.tif", background))
    assert less == pytest.approx({"ASCENDING": 2.5, "DESCENDING": 0.5})
    outside = review.pass_scores(rasters, _box(5000, 5000, 5100, 5100))
    assert all(np.isnan(v) for v in outside.values()) and review.passes_fired(outside, 0.0) == []
    assert review.per_pass_rasters(files, "probability") == {}
