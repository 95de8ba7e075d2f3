"""Threshold step: exact streaming percentile, exceedance, heatmap, candidate polygons."""

import math
import uuid

import numpy as np
import pytest
import rasterio.features
from affine import Affine
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from landslide_sar_plugin.core import gpkg, threshold
from landslide_sar_plugin.core.terrain import gaussian_smooth
from landslide_sar_plugin.core.threshold import (
    CANDIDATE_FIELDS,
    ExactPercentile,
    candidate_features,
    candidate_fields,
    candidate_uuid,
    density_heatmap,
    disk_footprint,
    disk_kernel,
    exact_percentile,
    exceedance,
    filter_min_area,
    heatmap_halo_px,
    polygon_area_m2,
    smooth_ratio,
    zonal_stats_for_polygon,
)


def split_blocks(arr, cuts):
    """Split a flat array at the given cut positions into a list of blocks."""
    cuts = sorted(set(min(max(c, 0), arr.size) for c in cuts))
    return np.split(arr, cuts)


def reference(values, q):
    v = np.asarray(values, dtype=np.float64).ravel()
    return np.percentile(v[np.isfinite(v)], q)


# ---------------------------------------------------------------- exact percentile

floats = st.one_of(
    st.floats(-1e6, 1e6, allow_nan=False, width=64),
    st.sampled_from([np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, 2.5]),
    st.floats(-1e300, 1e300, allow_nan=False),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=hnp.arrays(np.float64, st.integers(1, 300), elements=floats),
    cuts=st.lists(st.integers(0, 300), max_size=6),
    qs=st.lists(st.floats(0, 100), min_size=1, max_size=4),
    bins=st.sampled_from([2, 3, 16, 65536]),
    max_values=st.sampled_from([1, 3, 50, 4_000_000]),
)
@example(data=np.array([0.0, 5e-324]), cuts=[], qs=[0.0], bins=2, max_values=1)  # subnormal range
@example(data=np.array([-1e308, 1e308, 0.0, 1e308]), cuts=[1], qs=[60.0], bins=3, max_values=1)  # overflow-prone
def test_exact_percentile_matches_numpy(data, cuts, qs, bins, max_values):
    finite = data[np.isfinite(data)]
    blocks = split_blocks(data, cuts)
    qs = qs + [0, 50, 100]
    if finite.size == 0:
        with pytest.raises(ValueError, match="no finite value"):
            exact_percentile(lambda: iter(blocks), qs, bins=bins, max_values=max_values)
        return
    got = exact_percentile(lambda: iter(blocks), qs, bins=bins, max_values=max_values)
    np.testing.assert_array_equal(got, reference(data, qs))


@settings(max_examples=60, deadline=None)
@given(
    data=hnp.arrays(np.float64, st.integers(1, 400), elements=st.integers(-3, 3).map(float)),
    q=st.floats(0, 100),
)
def test_exact_percentile_heavy_duplicates_forces_refinement(data, q):
    engine = ExactPercentile(bins=2, max_values=2)
    blocks = split_blocks(data, [7, 50, 51, 200])
    assert engine(blocks, q) == reference(data, q)
    assert engine.count == data.size


def test_refinement_path_and_pass_count():
    data = np.concatenate([np.zeros(1000), np.arange(1, 11, dtype=float), [np.nan] * 5])
    engine = ExactPercentile(bins=4, max_values=10)
    assert engine([data[:300], data[300:]], 99) == np.percentile(data[:1010], 99)
    assert engine.passes >= 3
    small = ExactPercentile()  # everything fits in max_values: min/max, then collect
    assert small([data], [50, 99]).tolist() == np.percentile(data[:1010], [50, 99]).tolist()
    assert small.passes == 2
    spread = np.random.default_rng(0).normal(size=5000)
    usual = ExactPercentile(bins=1024, max_values=1000)  # min/max, histogram, collect
    assert usual(np.array_split(spread, 7), [50, 99]).tolist() == np.percentile(spread, [50, 99]).tolist()
    assert usual.passes == 3


def test_single_value_all_equal_and_float32():
    assert exact_percentile(lambda: iter([np.array([np.nan, 4.0, np.nan])]), 37) == 4.0
    blocks = [np.full((3, 4), 2.5, np.float32), np.full(5, 2.5, np.float32)]
    assert exact_percentile(blocks, [0, 33.3, 100]).tolist() == [2.5, 2.5, 2.5]
    rng = np.random.default_rng(3)
    x = rng.normal(size=(50, 60)).astype(np.float32)
    x[rng.random(x.shape) < 0.1] = np.nan
    blocks = [x[r : r + 16, c : c + 16] for r in range(0, 50, 16) for c in range(0, 60, 16)]
    assert exact_percentile(blocks, 99) == np.nanpercentile(x.astype(np.float64), 99)


def test_errors():
    with pytest.raises(ValueError, match="no finite value"):
        exact_percentile(lambda: iter([np.array([np.nan, np.inf])]), 50)
    with pytest.raises(ValueError, match="no finite value"):
        exact_percentile(lambda: iter([]), 50)
    with pytest.raises(ValueError):
        exact_percentile([np.ones(3)], 101)
    with pytest.raises(ValueError):
        exact_percentile([np.ones(3)], -1)
    with pytest.raises(ValueError):
        ExactPercentile(bins=1)


def test_factory_called_once_per_pass_with_fresh_iterators():
    calls = []

    def factory():
        calls.append(1)
        return (b for b in (np.arange(10.0), np.arange(10.0, 20.0)))

    assert exact_percentile(factory, 50, max_values=5) == 9.5
    assert len(calls) == 3


# ---------------------------------------------------------------- exceedance and smoothing


def test_exceedance_strict_and_nan_false():
    r = np.array([[2.4, 2.5, 2.6], [np.nan, -np.inf, np.inf]])
    np.testing.assert_array_equal(exceedance(r, 2.5), [[False, False, True], [False, False, True]])


def test_smooth_ratio_is_gaussian_smooth():
    rng = np.random.default_rng(0)
    r = rng.normal(size=(20, 20))
    r[3, 4] = np.nan
    np.testing.assert_array_equal(smooth_ratio(r, 20, 50, 10), gaussian_smooth(r, 20, 50, 10))


# ---------------------------------------------------------------- disk kernel and heatmap


def test_disk_footprint_by_hand():
    cross = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], bool)
    np.testing.assert_array_equal(disk_footprint(10, 10), cross)
    np.testing.assert_array_equal(disk_footprint(14.2, 10), np.ones((3, 3), bool))  # sqrt(200) = 14.14
    np.testing.assert_array_equal(disk_footprint(5, 10), [[True]])
    fp = disk_footprint(20, (10, 20))  # dx 10, dy 20
    assert fp.shape == (3, 5)
    np.testing.assert_array_equal(fp, [[0, 0, 1, 0, 0], [1, 1, 1, 1, 1], [0, 0, 1, 0, 0]])
    assert disk_footprint(200, 10).sum() == 1257  # lattice points in a radius-20 disk
    k = disk_kernel(30, 10)
    assert math.isclose(k.sum(), 1.0) and np.all(k[k > 0] == k.max())
    assert heatmap_halo_px(200, 10) == 20 and heatmap_halo_px(20, (10, 20)) == 2


def test_heatmap_by_hand():
    e = np.zeros((3, 3), bool)
    e[1, 1] = True
    h = density_heatmap(e, None, 10, 10)
    # centre: 1 of its 5 disk pixels; edge middle: 1 of 4 in-image; corner: 0 of 3.
    np.testing.assert_allclose(h, [[0, 1 / 4, 0], [1 / 4, 1 / 5, 1 / 4], [0, 1 / 4, 0]])
    hd = density_heatmap(e, None, 10, 10, normalize="disk")  # Earth Engine: all disk pixels
    np.testing.assert_allclose(hd, [[0, 1 / 5, 0], [1 / 5, 1 / 5, 1 / 5], [0, 1 / 5, 0]])
    valid = np.ones((3, 3), bool)
    valid[0, 0] = False
    assert density_heatmap(e, valid, 10, 10)[0, 1] == pytest.approx(1 / 3)
    # an exceedance on an invalid pixel does not count; isolated invalid neighbourhood -> NaN
    e2 = np.zeros((1, 5), bool)
    e2[0, 0] = True
    v2 = np.array([[False, False, False, True, True]])
    h2 = density_heatmap(e2, v2, 10, 10)
    assert np.isnan(h2[0, 0]) and np.isnan(h2[0, 1])
    np.testing.assert_array_equal(h2[0, 2:], [0, 0, 0])
    with pytest.raises(ValueError):
        density_heatmap(e, valid, 10, 10, normalize="bogus")


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    rows=st.integers(1, 60),
    cols=st.integers(1, 60),
    block=st.tuples(st.integers(1, 25), st.integers(1, 25)),
    radius=st.sampled_from([5.0, 10.0, 25.0, 40.0, 120.0]),  # small -> direct, large -> FFT path
    pixel=st.sampled_from([10.0, (10.0, 20.0)]),
    normalize=st.sampled_from(["valid", "disk"]),
)
def test_heatmap_in_unit_interval_and_blockwise_equals_whole(seed, rows, cols, block, radius, pixel, normalize):
    rng = np.random.default_rng(seed)
    e = rng.random((rows, cols)) < rng.random()
    v = rng.random((rows, cols)) < 0.8
    whole = density_heatmap(e, v, radius, pixel, normalize=normalize)
    fin = whole[np.isfinite(whole)]
    assert np.all((fin >= 0) & (fin <= 1))
    h = heatmap_halo_px(radius, pixel)
    out = np.full(e.shape, np.nan)
    for r0 in range(0, rows, block[0]):
        for c0 in range(0, cols, block[1]):
            r1, c1 = min(r0 + block[0], rows), min(c0 + block[1], cols)
            R0, C0, R1, C1 = max(r0 - h, 0), max(c0 - h, 0), min(r1 + h, rows), min(c1 + h, cols)
            part = density_heatmap(e[R0:R1, C0:C1], v[R0:R1, C0:C1], radius, pixel, normalize=normalize)
            out[r0:r1, c0:c1] = part[r0 - R0 : r1 - R0, c0 - C0 : c1 - C0]
    np.testing.assert_array_equal(out, whole)  # exact integer counts: bit-identical


def test_heatmap_matches_brute_force():
    rng = np.random.default_rng(5)
    e = rng.random((23, 19)) < 0.3
    v = rng.random((23, 19)) < 0.9
    radius, px = 42.0, 10.0
    fp = disk_footprint(radius, px)
    r = fp.shape[0] // 2
    expected = np.full(e.shape, np.nan)
    for i in range(23):
        for j in range(19):
            num = den = 0
            for di in range(-r, r + 1):
                for dj in range(-r, r + 1):
                    ii, jj = i + di, j + dj
                    if fp[di + r, dj + r] and 0 <= ii < 23 and 0 <= jj < 19 and v[ii, jj]:
                        den += 1
                        num += e[ii, jj]
            if den:
                expected[i, j] = num / den
    np.testing.assert_array_equal(density_heatmap(e, v, radius, px), expected)


# ---------------------------------------------------------------- polygons

SQ = {"type": "Polygon", "coordinates": [[(0, 0), (30, 0), (30, 30), (0, 30), (0, 0)]]}


def test_polygon_area_square_hole_multipolygon():
    assert polygon_area_m2(SQ) == 900.0
    holed = {
        "type": "Polygon",
        "coordinates": [SQ["coordinates"][0], [(10, 10), (10, 20), (20, 20), (20, 10), (10, 10)]],
    }
    assert polygon_area_m2(holed) == 800.0
    cw_open = {"type": "Polygon", "coordinates": [[(0, 0), (0, 30), (30, 30), (30, 0)]]}  # clockwise, unclosed
    assert polygon_area_m2(cw_open) == 900.0
    big = {"type": "Polygon", "coordinates": [[(x + 5e5, y + 4e6) for x, y in SQ["coordinates"][0]]]}  # UTM-like
    assert polygon_area_m2(big) == 900.0
    multi = {"type": "MultiPolygon", "coordinates": [holed["coordinates"], SQ["coordinates"]]}
    assert polygon_area_m2(multi) == 1700.0
    with pytest.raises(ValueError):
        polygon_area_m2({"type": "Point", "coordinates": (0, 0)})


def test_filter_min_area_keeps_types_and_order():
    small = {"type": "Polygon", "coordinates": [[(0, 0), (10, 0), (10, 10), (0, 10)]]}
    items = [(SQ, 1.0), (small, 1.0)]
    assert filter_min_area(items, 100) == items  # >= keeps the 100 m2 one
    assert filter_min_area(items, 101) == [items[0]]
    feats = [gpkg.Feature(small), gpkg.Feature(SQ), gpkg.Feature(None)]
    assert filter_min_area(feats, 500) == [feats[1]]
    assert filter_min_area([SQ, {"geometry": small}], 500) == [SQ]


T = Affine(10.0, 0.0, 500000.0, 0.0, -10.0, 4000000.0)  # 10 m pixels, UTM-like origin


def _scene():
    """8x10 raster: a 3x3 square (900 m2) and a 1x2 strip (200 m2) above threshold."""
    scores = np.arange(80, dtype=np.float64).reshape(8, 10) / 10.0
    mask = np.zeros((8, 10), np.uint8)
    mask[1:4, 2:5] = 1  # rows 1..3, cols 2..4
    mask[6, 7:9] = 1
    scores[2, 3] = np.nan  # ignored by the zonal stats
    return scores, mask


def test_candidate_features_two_squares_one_below_min_area():
    scores, mask = _scene()
    shapes = rasterio.features.shapes(mask, mask=mask.astype(bool), transform=T)
    feats = candidate_features(
        shapes,
        transform=T,
        read_values=scores,
        min_area_m2=500,
        method="threshold",
        threshold=2.5,
        event_id="hokkaido_2018",
    )
    assert len(feats) == 1
    p = feats[0].properties
    inside = [1.2, 1.3, 1.4, 2.2, 2.4, 3.2, 3.3, 3.4]  # rows 1-3, cols 2-4, minus the NaN at (2, 3)
    assert p["area_m2"] == 900.0
    assert p["mean_score"] == pytest.approx(sum(inside) / 8, rel=1e-12)
    assert p["max_score"] == 3.4
    assert p == {
        "id": 1,
        "area_m2": 900.0,
        "mean_score": p["mean_score"],
        "max_score": 3.4,
        "method": "threshold",
        "threshold": 2.5,
        "event_id": "hokkaido_2018",
        "status": "proposed",
        "uuid": candidate_uuid("hokkaido_2018", "threshold", 2.5, feats[0].geometry),
    }
    assert list(p) == [name for name, _ in CANDIDATE_FIELDS]
    # The uuid is a valid UUID, stable for the same polygon, different for another event or threshold.
    assert str(uuid.UUID(p["uuid"])) == p["uuid"]
    again = candidate_features(rasterio.features.shapes(mask, mask=mask.astype(bool), transform=T), transform=T,
                               read_values=scores, min_area_m2=500, method="threshold", threshold=2.5,
                               event_id="hokkaido_2018")
    assert again[0].properties["uuid"] == p["uuid"]
    assert candidate_uuid("other_event", "threshold", 2.5, feats[0].geometry) != p["uuid"]
    assert candidate_uuid("hokkaido_2018", "threshold", 2.6, feats[0].geometry) != p["uuid"]
    minx, miny, maxx, maxy = gpkg._bounds(feats[0].geometry)
    assert (minx, maxy, maxx, miny) == (500020.0, 3999990.0, 500050.0, 3999960.0)


def test_zonal_stats_reader_callable_reads_only_the_window():
    scores, mask = _scene()
    geom = next(g for g, v in rasterio.features.shapes(mask, mask=mask.astype(bool), transform=T) if v == 1)
    windows = []

    def read_window(win):
        windows.append(win)
        return scores[int(win.row_off) : int(win.row_off + win.height), int(win.col_off) : int(win.col_off + win.width)]

    a = zonal_stats_for_polygon(geom, scores, T)
    b = zonal_stats_for_polygon(geom, read_window, T, shape=scores.shape)
    assert a == b and a.count == 8
    (win,) = windows
    assert (win.row_off, win.col_off, win.height, win.width) == (1, 2, 3, 3)


def test_zonal_stats_polygon_with_hole_and_all_nan():
    values = np.arange(36, dtype=float).reshape(6, 6)
    ring = np.zeros((6, 6), np.uint8)
    ring[1:4, 1:4] = 1
    ring[2, 2] = 0  # hole
    ((geom, _),) = [(g, v) for g, v in rasterio.features.shapes(ring, mask=ring.astype(bool), transform=T)]
    assert len(geom["coordinates"]) == 2  # outer ring + hole
    assert polygon_area_m2(geom) == 800.0  # 9 pixels - 1 hole pixel, 100 m2 each
    st_ = zonal_stats_for_polygon(geom, values, T)
    expected = [values[r, c] for r in range(1, 4) for c in range(1, 4) if (r, c) != (2, 2)]
    assert st_.count == 8 and st_.mean == pytest.approx(np.mean(expected)) and st_.max == 21.0
    empty = zonal_stats_for_polygon(geom, np.full((6, 6), np.nan), T)
    assert empty.count == 0 and math.isnan(empty.mean) and math.isnan(empty.max)
    outside = {"type": "Polygon", "coordinates": [[(0, 0), (10, 0), (10, 10), (0, 10), (0, 0)]]}
    assert zonal_stats_for_polygon(outside, values, T).count == 0


def test_candidate_ids_stable_by_area_then_position_and_gpkg_roundtrip(tmp_path):
    mask = np.zeros((10, 10), np.uint8)
    mask[6:8, 6:8] = 1  # 400 m2, south-east
    mask[0:2, 0:2] = 1  # 400 m2, north-west
    mask[3:6, 0:3] = 1  # 900 m2
    scores = np.ones((10, 10))
    shapes = list(rasterio.features.shapes(mask, mask=mask.astype(bool), transform=T))
    kw = dict(transform=T, read_values=scores, min_area_m2=0, method="threshold", threshold=1.0, event_id="e")
    a = candidate_features(shapes, **kw)
    b = candidate_features(list(reversed(shapes)), **kw)
    assert [f.properties["area_m2"] for f in a] == [900.0, 400.0, 400.0]
    assert [f.geometry for f in a] == [f.geometry for f in b]
    assert gpkg._bounds(a[1].geometry)[3] == 4000000.0  # the northern 400 m2 square is id 2
    assert [f.properties["id"] for f in a] == [1, 2, 3]
    path = gpkg.write_features(tmp_path / "candidates.gpkg", "candidates", a, crs="EPSG:32633", fields=CANDIDATE_FIELDS)
    back, crs = gpkg.read_features(path)
    assert crs == "EPSG:32633"
    assert [f.properties for f in back] == [f.properties for f in a]
    assert polygon_area_m2(back[0].geometry) == 900.0


def test_candidate_fields_score_name():
    assert candidate_fields() == CANDIDATE_FIELDS
    assert ("mean_probability", "REAL") in candidate_fields("probability")
    scores, mask = _scene()
    feats = candidate_features(
        rasterio.features.shapes(mask, transform=T),  # background (value 0) is skipped
        transform=T,
        read_values=scores,
        min_area_m2=100,
        method="model",
        threshold=0.5,
        event_id="e",
        score_name="probability",
    )
    assert len(feats) == 2
    assert set(feats[0].properties) == {n for n, _ in candidate_fields("probability")}


def test_heatmap_float_masks_treat_nan_as_false():
    e = np.array([[np.nan, 1.0, 0.0]])
    v = np.array([[1.0, np.nan, 1.0]])
    np.testing.assert_array_equal(density_heatmap(e, v, 10, 10), [[0.0, 0.0, 0.0]])
    np.testing.assert_array_equal(density_heatmap(e, None, 10, 10), [[0.5, 1 / 3, 0.5]])


# --------------------------------------------------------------------------- zonal statistics in one pass (issue 15)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2 ** 31), st.integers(8, 40), st.integers(8, 40), st.sampled_from([4, 7, 16, 1024]))
def test_zonal_stats_many_equals_one_polygon_at_a_time(seed, rows, cols, block):
    rng = np.random.default_rng(seed)
    mask = (rng.random((rows, cols)) < 0.45).astype(np.uint8)  # many regions, holes, diagonal contacts
    scores = rng.normal(2, 1, (rows, cols))
    scores[rng.random((rows, cols)) < 0.1] = np.nan
    geoms = [g for g, v in rasterio.features.shapes(mask, mask=mask.astype(bool), connectivity=4, transform=T)]
    reads = []

    def reader(win):
        reads.append(win)
        return scores[int(win.row_off):int(win.row_off + win.height), int(win.col_off):int(win.col_off + win.width)]

    many = threshold.zonal_stats_many(geoms, reader, T, shape=scores.shape, block_size=block)
    for g, got in zip(geoms, many):
        ref = zonal_stats_for_polygon(g, scores, T)
        assert got.count == ref.count
        if ref.count:
            assert got.mean == pytest.approx(ref.mean, rel=1e-12) and got.max == ref.max
        else:
            assert math.isnan(got.mean) and math.isnan(got.max)
    assert len(reads) <= -(-rows // block) * -(-cols // block)  # at most one read per block


def test_zonal_stats_many_is_exact_for_overlapping_and_off_lattice_polygons():
    values = np.arange(100, dtype=float).reshape(10, 10)

    def square(r0, c0, r1, c1):
        x0, y0 = T @ (c0, r0)
        x1, y1 = T @ (c1, r1)
        return {"type": "Polygon", "coordinates": [[(x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0)]]}

    x0, y0 = T @ (5.3, 0.2)
    diamond = {"type": "Polygon", "coordinates": [[(x0, y0), (x0 + 23, y0 - 21), (x0, y0 - 42), (x0 - 23, y0 - 21),
                                                   (x0, y0)]]}  # off the pixel lattice, overlapping a square
    geoms = [square(0, 0, 5, 5), square(2, 2, 8, 8), square(8, 8, 10, 10), diamond]
    for got, g in zip(threshold.zonal_stats_many(geoms, values, T), geoms):
        assert got == zonal_stats_for_polygon(g, values, T)


def test_zonal_stats_many_reads_only_blocks_that_polygons_reach():
    scores, mask = _scene()  # polygons in rows 1-3 and row 6
    reads = []

    def reader(win):
        reads.append((int(win.row_off), int(win.col_off)))
        return scores[int(win.row_off):int(win.row_off + win.height), int(win.col_off):int(win.col_off + win.width)]

    geoms = [g for g, v in rasterio.features.shapes(mask, mask=mask.astype(bool), transform=T)]
    threshold.zonal_stats_many(geoms, reader, T, shape=scores.shape, block_size=2)
    assert reads and all(r < 8 for r, _ in reads)
    assert (4, 0) not in reads and (0, 8) not in reads  # empty blocks are never read


def test_candidates_emit_no_warning(tmp_path):
    """The per-polygon windows.transform calls gave two PendingDeprecationWarnings per polygon."""
    import warnings

    from landslide_sar_plugin.core.candidates import ThresholdSpec, candidates_from_score
    from landslide_sar_plugin.core.raster_io import write_geotiff

    rng = np.random.default_rng(3)
    score = rng.normal(0, 1, (300, 300)).astype(np.float32)
    path = write_geotiff(tmp_path / "score.tif", score, transform=T, crs="EPSG:32654", nodata=float("nan"))
    scores, mask = _scene()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        feats = candidate_features(rasterio.features.shapes(mask, mask=mask.astype(bool), transform=T), transform=T,
                                   read_values=scores, min_area_m2=0, method="m", threshold=1.0, event_id="e")
        res = candidates_from_score(path, tmp_path / "out", ThresholdSpec(threshold=1.5, min_area_m2=0.0))
    assert len(feats) == 2 and res.n_candidates > 100
    assert [str(w.message) for w in caught] == []


# ---------------------------------------------------------------- percentile passes on every core


class ThreadedBlocks:
    """A block source whose passes run in a thread pool and hand results back in a scrambled order."""

    def __init__(self, blocks):
        self.blocks = blocks
        self.maps = 0

    def map_blocks(self, fn):
        from concurrent.futures import ThreadPoolExecutor

        self.maps += 1
        with ThreadPoolExecutor(3) as pool:
            results = list(pool.map(fn, self.blocks))
        return iter(results[1::2] + results[0::2])


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=hnp.arrays(np.float64, st.integers(1, 300), elements=floats),
    cuts=st.lists(st.integers(0, 300), max_size=6),
    qs=st.lists(st.floats(0, 100), min_size=1, max_size=4),
    bins=st.sampled_from([2, 16, 65536]),
    max_values=st.sampled_from([1, 3, 4_000_000]),
    known=st.booleans(),
)
def test_parallel_passes_and_known_bounds_give_numpys_percentile(data, cuts, qs, bins, max_values, known):
    finite = data[np.isfinite(data)]
    if finite.size == 0:
        return
    source = ThreadedBlocks(split_blocks(data, cuts))
    engine = ExactPercentile(bins=bins, max_values=max_values)
    # Bounds may be wider than the data (a deviation's lower bound 0 is rarely attained).
    bounds = (finite.size, float(finite.min()) - 1.0, float(finite.max())) if known else None
    got = engine(source, qs + [50], bounds=bounds)
    np.testing.assert_array_equal(got, reference(data, qs + [50]))
    assert engine.passes == source.maps  # every pass went through the parallel map
    if not known:
        assert (engine.count, engine.min, engine.max) == (finite.size, finite.min(), finite.max())


def test_known_bounds_save_the_first_pass():
    spread = np.random.default_rng(1).normal(size=5000)
    blocks = np.array_split(spread, 7)
    usual = ExactPercentile(bins=1024, max_values=1000)
    usual(blocks, [50, 99])
    known = ExactPercentile(bins=1024, max_values=1000)
    got = known(blocks, [50, 99], bounds=(spread.size, spread.min(), spread.max()))
    assert got.tolist() == np.percentile(spread, [50, 99]).tolist()
    assert known.passes == usual.passes - 1 == 2


def test_transformed_blocks_keep_the_parallel_map():
    source = ThreadedBlocks([np.arange(5.0), np.arange(5.0, 12.0)])
    deviations = threshold.TransformedBlocks(source, lambda b: np.abs(b - 6.0))
    assert exact_percentile(deviations, 50) == np.median(np.abs(np.arange(12.0) - 6.0))
    assert source.maps == 2  # count/min/max, then collect: both through the parallel map
