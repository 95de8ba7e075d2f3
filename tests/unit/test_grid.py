"""Output grid, AOI parsing and reading rasters onto the grid, against hand computations."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import rasterio
from affine import Affine
from numpy.testing import assert_allclose, assert_array_equal
from rasterio.crs import CRS
from rasterio.transform import from_origin
from rasterio.warp import transform as warp_transform
from rasterio.warp import transform_bounds
from rasterio.windows import Window

from landslide_sar_plugin.core import gpkg
from landslide_sar_plugin.core.grid import (
    Grid,
    GridError,
    RasterOnGrid,
    footprint,
    grid_from_bounds,
    overlap_fraction,
    parse_aoi,
    utm_crs,
)

UTM54 = CRS.from_epsg(32654)
X0, Y0 = 500_000.0, 4_750_000.0  # grid origin (top-left), UTM 54N, ~141 E 42.9 N


def make_grid(width=20, height=20, res=10.0, x0=X0, y0=Y0, crs=UTM54):
    return Grid(crs, from_origin(x0, y0, res, res), width, height)


def write_tif(path, data, *, crs="EPSG:32654", x0=X0, y0=Y0, res=10.0, nodata=None, dtype="float32"):
    arr = np.asarray(data, dtype=dtype)
    resx, resy = (res, res) if np.isscalar(res) else res
    with rasterio.open(path, "w", driver="GTiff", width=arr.shape[1], height=arr.shape[0], count=1, dtype=dtype,
                       crs=crs, transform=from_origin(x0, y0, resx, resy), nodata=nodata) as dst:
        dst.write(arr, 1)
    return path


def centres(grid: Grid, halo: int = 0):
    """x, y of the pixel centres of ``grid`` grown by ``halo``."""
    g = grid.padded(halo)
    cols, rows = np.meshgrid(np.arange(g.width) + 0.5, np.arange(g.height) + 0.5)
    x = g.transform.c + cols * g.transform.a
    y = g.transform.f + rows * g.transform.e
    return x, y


# --------------------------------------------------------------------------- UTM and grid


@pytest.mark.parametrize(
    "lon, lat, epsg",
    [
        (142.0, 43.0, 32654),  # Hokkaido: floor((142 + 180) / 6) = floor(53.67) = 53 -> zone 54, north
        (173.7, -42.4, 32759),  # Kaikoura: floor(353.7 / 6) = 58 -> zone 59, south
        (-122.4, 37.8, 32610),  # San Francisco: floor(57.6 / 6) = 9 -> zone 10
        (0.0, 0.0, 32631),  # lon 0 is the west edge of zone 31; lat 0 counts as north
        (3.0, -0.001, 32731),  # just south of the equator
        (-180.0, 10.0, 32601),  # west edge of zone 1
        (179.99, 10.0, 32660),  # east edge of zone 60
        (180.0, 10.0, 32601),  # the antimeridian wraps to zone 1
        (-78.5, -0.2, 32717),  # Quito: floor(101.5 / 6) = 16 -> zone 17 south
    ],
)
def test_utm_crs(lon, lat, epsg):
    assert utm_crs(lon, lat) == CRS.from_epsg(epsg)


def test_grid_from_bounds_snaps_outwards_to_the_lattice():
    # x: 500003 -> floor to 500000, 500047 -> ceil to 500050 : width (500050 - 500000) / 10 = 5
    # y: 4700007 -> floor to 4700000, 4700051 -> ceil to 4700060 : height 60 / 10 = 6
    g = grid_from_bounds((500_003, 4_700_007, 500_047, 4_700_051), "EPSG:32654", 10, crs="EPSG:32654")
    assert (g.width, g.height) == (5, 6)
    assert g.transform == Affine(10, 0, 500_000, 0, -10, 4_700_060)
    assert g.bounds == (500_000, 4_700_000, 500_050, 4_700_060)
    assert g.crs == UTM54 and g.pixel_size == 10


def test_grid_from_bounds_keeps_bounds_already_on_the_lattice():
    g = grid_from_bounds((500_000, 4_700_000, 500_050, 4_700_060), "EPSG:32654", 10, crs="EPSG:32654")
    assert g.bounds == (500_000, 4_700_000, 500_050, 4_700_060) and (g.width, g.height) == (5, 6)


def test_grid_from_bounds_with_an_anchor():
    # Lattice 5 + 10 k: 500003 -> 499995, 500047 -> 500055 (width 6); 4700007 -> 4700005, 4700051 -> 4700055 (5).
    g = grid_from_bounds((500_003, 4_700_007, 500_047, 4_700_051), "EPSG:32654", 10, crs="EPSG:32654",
                         anchor=(5, 5))
    assert g.bounds == (499_995, 4_700_005, 500_055, 4_700_055)
    assert (g.width, g.height) == (6, 5)


@pytest.mark.parametrize(
    "bounds, epsg",
    [((141.9, 42.6, 142.1, 42.8), 32654), ((173.6, -42.5, 173.8, -42.3), 32759)],
)
def test_grid_from_bounds_picks_the_utm_zone_and_covers_the_aoi(bounds, epsg):
    g = grid_from_bounds(bounds, "EPSG:4326", 30)
    assert g.crs == CRS.from_epsg(epsg)
    x0, y0, x1, y1 = transform_bounds("EPSG:4326", g.crs, *bounds, densify_pts=21)
    gx0, gy0, gx1, gy1 = g.bounds
    assert gx0 <= x0 < gx0 + 30 and gy0 <= y0 < gy0 + 30
    assert gx1 - 30 < x1 <= gx1 and gy1 - 30 < y1 <= gy1
    for v in g.bounds:
        assert v % 30 == pytest.approx(0, abs=1e-6) or v % 30 == pytest.approx(30, abs=1e-6)
    assert g.width * 30 == pytest.approx(gx1 - gx0) and g.height * 30 == pytest.approx(gy1 - gy0)
    # ~0.2 deg of longitude at 42.5 N is ~16.4 km (~547 px of 30 m), a little more once rotated into UTM.
    assert 540 < g.width < 590


def test_grid_from_bounds_refusals():
    with pytest.raises(GridError, match="pixel size must be positive"):
        grid_from_bounds((0, 0, 10, 10), "EPSG:32654", 0)
    with pytest.raises(GridError, match="empty"):
        grid_from_bounds((10, 0, 0, 10), "EPSG:32654", 10)
    with pytest.raises(GridError, match="not projected"):
        grid_from_bounds((141.9, 42.6, 142.1, 42.8), "EPSG:4326", 10, crs="EPSG:4326")
    with pytest.raises(GridError, match="smaller AOI"):
        grid_from_bounds((0, 0, 1_000_000, 1_000_000), "EPSG:32654", 1, crs="EPSG:32654")


def test_grid_blocks_padded_and_dict():
    g = make_grid(width=20, height=15)
    blocks = list(g.blocks(8))
    # 15 rows -> blocks of 8 + 7; 20 cols -> 8 + 8 + 4: six windows, row-major.
    assert [(b.col_off, b.row_off, b.width, b.height) for b in blocks] == [
        (0, 0, 8, 8), (8, 0, 8, 8), (16, 0, 4, 8), (0, 8, 8, 7), (8, 8, 8, 7), (16, 8, 4, 7)]
    assert g.n_blocks(8) == 6
    p = g.padded(3)
    assert (p.width, p.height) == (26, 21)
    assert p.bounds == (X0 - 30, Y0 - 150 - 30, X0 + 200 + 30, Y0 + 30)
    assert g.window_transform(Window(2, 3, 4, 4)) == Affine(10, 0, X0 + 20, 0, -10, Y0 - 30)
    d = g.to_dict()
    assert d["crs"] == "EPSG:32654" and d["width"] == 20 and d["height"] == 15
    assert d["bounds"] == [X0, Y0 - 150, X0 + 200, Y0] and d["pixel_size_m"] == 10


# --------------------------------------------------------------------------- AOI


def test_parse_aoi_bbox_defaults_to_wgs84():
    aoi = parse_aoi("141.9, 42.6,142.1,42.8")
    assert aoi.bounds == (141.9, 42.6, 142.1, 42.8)
    assert aoi.crs == CRS.from_epsg(4326)
    assert aoi.geometries is None


def test_parse_aoi_bbox_with_crs():
    aoi = parse_aoi("500000,4700000,510000,4710000,EPSG:32654")
    assert aoi.bounds == (500000, 4700000, 510000, 4710000)
    assert aoi.crs == UTM54


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("1,2,3", "xmin,ymin,xmax,ymax"),
        ("1,2,3,4,5,6", "xmin,ymin,xmax,ymax"),
        ("a,b,c,d", "must be numbers"),
        ("hokkaido", "xmin,ymin,xmax,ymax"),
        ("nothere.geojson", "does not exist"),
        ("nothere.gpkg", "does not exist"),
    ],
)
def test_parse_aoi_garbage_is_refused_clearly(text, fragment):
    with pytest.raises(GridError, match=fragment):
        parse_aoi(text)


def test_parse_aoi_unknown_crs_is_a_value_error():
    with pytest.raises(ValueError):
        parse_aoi("1,2,3,4,EPSG:999999")


POLY_LL = {"type": "Polygon", "coordinates": [[[141.95, 42.65], [142.05, 42.62], [142.08, 42.75],
                                               [141.97, 42.71], [141.95, 42.65]]]}


def test_parse_aoi_geojson_feature_collection(tmp_path):
    path = tmp_path / "aoi.geojson"
    point = {"type": "Feature", "geometry": {"type": "Point", "coordinates": [0, 0]}, "properties": {}}
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [
        point, {"type": "Feature", "geometry": POLY_LL, "properties": {"name": "iburi"}}]}))
    aoi = parse_aoi(str(path))
    # Bounds of the polygon ring only (the point is ignored).
    assert aoi.bounds == (141.95, 42.62, 142.08, 42.75)
    assert aoi.crs == CRS.from_epsg(4326)
    assert aoi.geometries == [POLY_LL]


def test_parse_aoi_geojson_bare_multipolygon_with_crs_member(tmp_path):
    path = tmp_path / "aoi.json"
    mp = {"type": "MultiPolygon", "coordinates": [
        [[[500_000, 4_700_000], [500_100, 4_700_000], [500_100, 4_700_100], [500_000, 4_700_000]]],
        [[[501_000, 4_701_000], [501_200, 4_701_000], [501_200, 4_701_300], [501_000, 4_701_000]]]]}
    path.write_text(json.dumps({**mp, "crs": {"type": "name", "properties": {"name": "EPSG:32654"}}}))
    aoi = parse_aoi(str(path))
    assert aoi.bounds == (500_000, 4_700_000, 501_200, 4_701_300)
    assert aoi.crs == UTM54


def test_parse_aoi_geojson_without_polygon_or_not_json(tmp_path):
    path = tmp_path / "points.geojson"
    path.write_text(json.dumps({"type": "Point", "coordinates": [1, 2]}))
    with pytest.raises(GridError, match="holds no polygon"):
        parse_aoi(str(path))
    bad = tmp_path / "bad.geojson"
    bad.write_text("this is not json {")
    with pytest.raises(GridError, match="bad.geojson"):
        parse_aoi(str(bad))
    listy = tmp_path / "list.json"
    listy.write_text("[1, 2, 3]")
    with pytest.raises(GridError, match="list.json"):
        parse_aoi(str(listy))


def test_parse_aoi_geopackage(tmp_path):
    path = tmp_path / "aoi.gpkg"
    ring = [(500_010.0, 4_700_020.0), (500_400.0, 4_700_020.0), (500_400.0, 4_700_380.0), (500_010.0, 4_700_020.0)]
    gpkg.write_features(path, "aoi", [gpkg.Feature({"type": "Polygon", "coordinates": [ring]}, {"name": "a"})],
                        crs="EPSG:32654", fields=[("name", "TEXT")])
    aoi = parse_aoi(str(path))
    assert aoi.bounds == (500_010.0, 4_700_020.0, 500_400.0, 4_700_380.0)
    assert aoi.crs == UTM54
    assert len(aoi.geometries) == 1
    g = grid_from_bounds(aoi.bounds, aoi.crs, 10)
    # 500010 -> 500010, 500400 -> 500400 (both on the lattice): 39 px; 4700020..4700380: 36 px.
    assert (g.width, g.height) == (39, 36) and g.crs == UTM54


def test_parse_aoi_garbage_geopackage(tmp_path):
    path = tmp_path / "broken.gpkg"
    path.write_bytes(b"not a database at all" * 50)
    with pytest.raises(ValueError):
        parse_aoi(str(path))


# --------------------------------------------------------------------------- overlap, footprint


@pytest.mark.parametrize(
    "inner, outer, expected",
    [
        ((0, 0, 10, 10), (5, 5, 20, 20), 0.25),  # 5 x 5 of 10 x 10
        ((0, 0, 10, 10), (-1, -1, 11, 11), 1.0),  # fully inside
        ((0, 0, 10, 10), (2, 2, 4, 4), 0.04),  # 2 x 2 of 100
        ((0, 0, 10, 10), (0, 8, 10, 30), 0.2),  # a 10 x 2 strip
        ((0, 0, 10, 10), (10, 0, 20, 10), 0.0),  # touching edge only
        ((0, 0, 10, 10), (50, 50, 60, 60), 0.0),  # disjoint
        ((0, 0, 0, 10), (-5, -5, 5, 5), 0.0),  # zero-area inner
    ],
)
def test_overlap_fraction(inner, outer, expected):
    assert overlap_fraction(inner, outer) == pytest.approx(expected)


def test_footprint(tmp_path):
    path = write_tif(tmp_path / "a.tif", np.zeros((20, 30)))
    assert footprint(path, "EPSG:32654") == pytest.approx((X0, Y0 - 200, X0 + 300, Y0))
    lon0, lat0, lon1, lat1 = footprint(path, "EPSG:4326")
    # x = 500000 is the central meridian of zone 54 (141 E); 300 m east is ~0.0037 deg at 42.9 N.
    assert lon0 == pytest.approx(141.0, abs=1e-6) and 0.003 < lon1 - lon0 < 0.0045
    assert 42.8 < lat0 < lat1 < 43.0


# --------------------------------------------------------------------------- RasterOnGrid: aligned


def _truth_on_padded(grid, halo, data, col_off, row_off, nodata=None):
    """Hand placement: the source's pixel (r, c) lands on padded grid pixel (r + row_off + halo, c + col_off + halo)."""
    out = np.full((grid.height + 2 * halo, grid.width + 2 * halo), np.nan, dtype="float32")
    vals = np.asarray(data, dtype="float32").copy()
    if nodata is not None:
        vals[vals == nodata] = np.nan
    for r in range(vals.shape[0]):
        for c in range(vals.shape[1]):
            pr, pc = r + row_off + halo, c + col_off + halo
            if 0 <= pr < out.shape[0] and 0 <= pc < out.shape[1]:
                out[pr, pc] = vals[r, c]
    return out


def test_aligned_source_with_offset_origin(tmp_path):
    grid = make_grid()
    data = np.arange(8 * 6, dtype="float32").reshape(8, 6) + 1
    data[2, 3] = -9999
    # Origin 30 m east, 50 m south of the grid's: source (0, 0) is grid column 3, row 5.
    path = write_tif(tmp_path / "s.tif", data, x0=X0 + 30, y0=Y0 - 50, nodata=-9999)
    with RasterOnGrid(path, 1, grid) as r:
        assert r.aligned
        out = r.read(Window(0, 0, 20, 20))
    assert out.dtype == np.float32 and out.shape == (20, 20)
    assert_array_equal(out[5:13, 3:9][~np.isnan(out[5:13, 3:9])], data[data != -9999])
    assert out[5 + 2, 3 + 3] != out[5 + 2, 3 + 3]  # nodata -> NaN
    assert out[5, 3] == 1 and out[12, 8] == 48  # first and last source pixels
    outside = np.ones((20, 20), bool)
    outside[5:13, 3:9] = False
    assert np.isnan(out[outside]).all()
    assert_array_equal(out, _truth_on_padded(grid, 0, data, 3, 5, nodata=-9999))


@pytest.mark.parametrize("halo", [0, 1, 3])
@pytest.mark.parametrize(
    "window", [Window(0, 0, 20, 20), Window(2, 4, 5, 5), Window(15, 15, 5, 5), Window(0, 13, 7, 7)])
def test_aligned_windows_and_halo(tmp_path, halo, window):
    grid = make_grid()
    rng = np.random.default_rng(3)
    data = rng.normal(-12, 2, (12, 25)).astype("float32")
    data[0, 0] = -9999
    # Source origin 20 m west and 30 m north: grid column -2, row -3; it also spills past the east edge,
    # so the halo must show real source values beyond the grid.
    path = write_tif(tmp_path / "s.tif", data, x0=X0 - 20, y0=Y0 + 30, nodata=-9999)
    truth = _truth_on_padded(grid, halo, data, -2, -3, nodata=-9999)
    with RasterOnGrid(path, 1, grid, halo=halo) as r:
        assert r.aligned
        out = r.read(window)
    c, w = int(window.col_off), int(window.width)
    rr, h = int(window.row_off), int(window.height)
    assert out.shape == (h + 2 * halo, w + 2 * halo)
    assert_array_equal(out, truth[rr:rr + h + 2 * halo, c:c + w + 2 * halo])


def test_aligned_halo_reads_source_beyond_the_grid(tmp_path):
    grid = make_grid(width=4, height=4)
    data = np.arange(36, dtype="float32").reshape(6, 6)
    path = write_tif(tmp_path / "s.tif", data, x0=X0 - 10, y0=Y0 + 10)  # one pixel bigger on every side
    with RasterOnGrid(path, 1, grid, halo=1) as r:
        out = r.read(Window(0, 0, 4, 4))
    assert_array_equal(out, data)  # the padded 6 x 6 window is exactly the source
    with RasterOnGrid(path, 1, grid, halo=2) as r:
        out = r.read(Window(0, 0, 4, 4))
    assert np.isnan(out[0]).all() and np.isnan(out[:, -1]).all()
    assert_array_equal(out[1:7, 1:7], data)


def test_integer_source_with_nodata(tmp_path):
    grid = make_grid(width=5, height=5)
    data = np.array([[0, 1, 2, 3, 4]] * 5, dtype="uint16")
    path = write_tif(tmp_path / "s.tif", data, nodata=0, dtype="uint16")
    with RasterOnGrid(path, 1, grid) as r:
        out = r.read(Window(0, 0, 5, 5))
    assert out.dtype == np.float32
    assert np.isnan(out[:, 0]).all()
    assert_array_equal(out[:, 1:], data[:, 1:].astype("float32"))


def test_unreadable_or_ungeoreferenced_source(tmp_path):
    bad = tmp_path / "bad.tif"
    bad.write_bytes(np.random.default_rng(0).bytes(2048))
    with pytest.raises(GridError, match="cannot read bad.tif"):
        RasterOnGrid(bad, 1, make_grid())
    nocrs = tmp_path / "nocrs.tif"
    write_tif(nocrs, np.zeros((4, 4)), crs=None)
    with pytest.raises(GridError, match="no coordinate reference system"):
        RasterOnGrid(nocrs, 1, make_grid())


# --------------------------------------------------------------------------- RasterOnGrid: warped

A, B = 0.013, -0.021  # plane slope per metre (any non-trivial values)


def _ramp_source(tmp_path, name, crs, x0, y0, res, shape, plane):
    """A source whose pixel centres hold ``plane(x, y)`` in its own CRS."""
    rows, cols = shape
    resx, resy = (res, res) if np.isscalar(res) else res
    cc, rr = np.meshgrid(np.arange(cols) + 0.5, np.arange(rows) + 0.5)
    data = plane(x0 + cc * resx, y0 - rr * resy)
    return write_tif(tmp_path / name, data, crs=crs, x0=x0, y0=y0, res=(resx, resy))


def _utm54_plane(x, y):
    return A * (x - X0) + B * (y - Y0)


@pytest.mark.parametrize("halo", [0, 2])
def test_coarser_source_same_crs_is_bilinear(tmp_path, halo):
    grid = make_grid()
    # 20 m source, 100 m larger than the grid on every side (so no grid pixel is near its edge),
    # and offset by 5 m so it is not on the grid's lattice.
    path = _ramp_source(tmp_path, "s20.tif", "EPSG:32654", X0 - 105, Y0 + 105, 20.0, (21, 21), _utm54_plane)
    with RasterOnGrid(path, 1, grid, halo=halo) as r:
        assert not r.aligned
        out = r.read(Window(0, 0, 20, 20))
    x, y = centres(grid, halo)
    assert out.shape == x.shape
    # Bilinear interpolation reproduces a plane exactly.
    assert_allclose(out, _utm54_plane(x, y), atol=1e-3)
    # ...and it is not a nearest-neighbour read: the 10 m pixels differ from their 20 m parents.
    assert len(np.unique(np.round(out, 4))) > 300


def test_coarser_source_partly_outside_gives_nan_outside(tmp_path):
    grid = make_grid()
    # 20 m source covering only the west half of the grid (x < X0 + 100), no nodata value declared.
    path = _ramp_source(tmp_path, "half.tif", "EPSG:32654", X0 - 100, Y0 + 100, 20.0, (20, 10), _utm54_plane)
    with RasterOnGrid(path, 1, grid) as r:
        out = r.read(Window(0, 0, 20, 20))
    assert np.isnan(out[:, 11:]).all()  # pixel centres from X0 + 115 east lie outside the source
    x, y = centres(grid)
    assert_allclose(out[:, :9], _utm54_plane(x, y)[:, :9], atol=1e-3)


def test_warped_nodata_becomes_nan_and_never_leaks(tmp_path):
    grid = make_grid()
    cc, rr = np.meshgrid(np.arange(21), np.arange(21))
    data = _utm54_plane(X0 - 105 + (cc + 0.5) * 20, Y0 + 105 - (rr + 0.5) * 20).astype("float32")
    data[6:14, 6:14] = -9999  # a 160 m square of nodata, x in [X0+15, X0+175), y in (Y0-175, Y0-15]
    path = write_tif(tmp_path / "nd.tif", data, x0=X0 - 105, y0=Y0 + 105, res=20.0, nodata=-9999)
    with RasterOnGrid(path, 1, grid) as r:
        out = r.read(Window(0, 0, 20, 20))
    assert not (np.abs(out + 9999) < 1000).any()  # no nodata value, nor a blend with it
    # Grid pixels whose bilinear neighbours are all nodata (well inside the square) are NaN.
    assert np.isnan(out[5:14, 5:14]).all()
    assert np.isfinite(out[0]).all() and np.isfinite(out[:, 0]).all()


def test_source_in_wgs84_is_bilinear(tmp_path):
    grid = make_grid()
    # Plane in lon/lat over a 0.0001-degree source that covers the grid with margin.
    lon_c, lat_c = warp_transform(UTM54, "EPSG:4326", [X0 + 100], [Y0 - 100])
    lon_c, lat_c = lon_c[0], lat_c[0]

    def plane(lon, lat):
        return 1000.0 * (lon - lon_c) - 2000.0 * (lat - lat_c)

    # 0.0003 deg is ~24 m east-west and ~33 m north-south at 42.9 N: coarser than the 10 m grid.
    path = _ramp_source(tmp_path, "ll.tif", "EPSG:4326", lon_c - 0.004, lat_c + 0.003, 0.0003, (20, 27), plane)
    with RasterOnGrid(path, 1, grid) as r:
        assert not r.aligned
        out = r.read(Window(0, 0, 20, 20))
    x, y = centres(grid)
    lon, lat = warp_transform(UTM54, "EPSG:4326", x.ravel(), y.ravel())
    expected = plane(np.asarray(lon), np.asarray(lat)).reshape(x.shape)
    # Sanity: the plane varies by several units across the grid, so 1e-3 is a real test.
    assert np.ptp(expected) > 2
    assert_allclose(out, expected, atol=1e-3)


def test_source_in_another_utm_zone_is_bilinear(tmp_path):
    grid = make_grid()
    # Zone 55 coordinates of the grid centre; a 10 m source in zone 55 with a plane in zone-55 metres.
    (xc,), (yc,) = warp_transform(UTM54, "EPSG:32655", [X0 + 100], [Y0 - 100])

    def plane(x, y):
        return A * (x - xc) + B * (y - yc)

    path = _ramp_source(tmp_path, "z55.tif", "EPSG:32655", xc - 300, yc + 300, 20.0, (30, 30), plane)
    with RasterOnGrid(path, 1, grid) as r:
        assert not r.aligned
        out = r.read(Window(0, 0, 20, 20))
    x, y = centres(grid)
    x55, y55 = warp_transform(UTM54, "EPSG:32655", x.ravel(), y.ravel())
    expected = plane(np.asarray(x55), np.asarray(y55)).reshape(x.shape)
    assert np.ptp(expected) > 2
    assert_allclose(out, expected, atol=1e-3)


def test_same_crs_off_lattice_is_warped_not_copied(tmp_path):
    grid = make_grid()
    path = _ramp_source(tmp_path, "off.tif", "EPSG:32654", X0 - 95, Y0 + 95, 10.0, (40, 40), _utm54_plane)
    with RasterOnGrid(path, 1, grid) as r:
        assert not r.aligned  # 5 m off the lattice
        out = r.read(Window(0, 0, 20, 20))
    x, y = centres(grid)
    assert_allclose(out, _utm54_plane(x, y), atol=1e-3)


# --------------------------------------------------------------------------- block-wise reads


def _warped_path(tmp_path):
    # Covers x in [X0 - 55, X0 + 125), y in (Y0 - 115, Y0 + 45]: part of the 230 m x 190 m grid.
    return _ramp_source(tmp_path, "s20.tif", "EPSG:32654", X0 - 55, Y0 + 45, 20.0, (8, 9), _utm54_plane)


def _aligned_path(tmp_path):
    data = np.random.default_rng(4).normal(-12, 2, (18, 17)).astype("float32")
    return write_tif(tmp_path / "al.tif", data, x0=X0 + 40, y0=Y0 - 20, nodata=None)


@pytest.mark.parametrize("make_source", [_aligned_path, _warped_path])
@pytest.mark.parametrize("halo", [0, 2])
def test_blocks_tile_back_to_one_whole_read(tmp_path, make_source, halo):
    grid = make_grid(width=23, height=19)
    path = make_source(tmp_path)
    with RasterOnGrid(path, 1, grid, halo=halo) as r:
        whole = r.read(Window(0, 0, grid.width, grid.height))
        assert whole.shape == (grid.height + 2 * halo, grid.width + 2 * halo)
        tiled = np.full((grid.height, grid.width), -1.0, dtype="float32")
        for w in grid.blocks(7):
            c, rr, ww, hh = int(w.col_off), int(w.row_off), int(w.width), int(w.height)
            block = r.read(w)
            assert block.shape == (hh + 2 * halo, ww + 2 * halo)
            # Each block with its halo equals the matching slice of the whole padded read.
            assert_allclose(block, whole[rr:rr + hh + 2 * halo, c:c + ww + 2 * halo], atol=1e-5, equal_nan=True)
            tiled[rr:rr + hh, c:c + ww] = block[halo:halo + hh, halo:halo + ww]
    assert grid.n_blocks(7) == 4 * 3
    assert_allclose(tiled, whole[halo:halo + grid.height, halo:halo + grid.width], atol=1e-5, equal_nan=True)
    # Both NaN (outside the source) and finite pixels are present, so the comparison means something.
    assert np.isnan(tiled).any() and np.isfinite(tiled).sum() > 100


@pytest.mark.parametrize("crs, res", [("EPSG:32655", 10.0), ("EPSG:4326", 0.0001)])
def test_finer_or_rotated_source_is_placed_within_a_fraction_of_a_pixel(tmp_path, crs, res):
    # When the source is as fine as the grid (or finer) and rotated against it, GDAL's warper widens
    # the bilinear kernel (it treats the chunk as a downsampling), which no longer reproduces a plane
    # exactly; the values must still correspond to positions within 0.15 grid pixel (1.5 m).
    grid = make_grid()
    (xc,), (yc,) = warp_transform(UTM54, crs, [X0 + 100], [Y0 - 100])
    to_m = 1.0 if crs != "EPSG:4326" else 1e5  # degrees -> ~metres, only to keep the plane's scale sane

    def plane(x, y):
        return A * (x - xc) * to_m + B * (y - yc) * to_m

    n = round(600 / (res * to_m))
    path = _ramp_source(tmp_path, "src.tif", crs, xc - n / 2 * res, yc + n / 2 * res, res, (n, n), plane)
    with RasterOnGrid(path, 1, grid) as r:
        out = r.read(Window(0, 0, 20, 20))
    x, y = centres(grid)
    xs, ys = warp_transform(UTM54, crs, x.ravel(), y.ravel())
    expected = plane(np.asarray(xs), np.asarray(ys)).reshape(x.shape)
    # |gradient| in value per grid metre, estimated from the expectation itself.
    grad = math.hypot(*(np.mean(np.abs(np.diff(expected, axis=ax))) / 10 for ax in (1, 0)))
    assert np.isfinite(out).all()
    assert_allclose(out, expected, atol=1.5 * grad)  # a half-pixel (5 m) misplacement would fail this


# --------------------------------------------------------------------------- MosaicOnGrid (bursts / frames)


def test_mosaic_means_overlaps_in_linear_power_and_ignores_noisy_edges(tmp_path):
    from landslide_sar_plugin.core.grid import MosaicOnGrid, pixel_size_m

    grid = make_grid(width=6, height=1)
    # Piece a covers columns 0-3, piece b columns 2-5 (overlap 2-3); a in dB, b in linear power.
    a = write_tif(tmp_path / "a.tif", [[-10.0, -10.0, -10.0, -40.0]], nodata=-9999.0)
    b = write_tif(tmp_path / "b.tif", [[0.01, 0.001, 0.02, 0.05]], x0=X0 + 20)
    with MosaicOnGrid([(a, 1, "dB"), (b, 1, "linear")], grid) as m:
        out = m.read(Window(0, 0, 6, 1))
        assert m.units == "linear" and m.paths == [a, b]
    # col 0, 1: a only, 10^(-1) = 0.1.  col 2: mean of 0.1 and 0.01 = 0.055 (in power, not dB).
    # col 3: a is -40 dB (edge noise, below -30 dB), b is 0.001 (exactly -30 dB, also noise): both noise,
    #        so their mean (1e-4 + 1e-3) / 2 = 5.5e-4 is kept for the edge-noise mask downstream.
    # col 4, 5: b only.
    assert_allclose(out, [[0.1, 0.1, 0.055, 5.5e-4, 0.02, 0.05]], rtol=1e-6)
    # A noisy value does not darken a valid neighbour: a's -40 dB against a valid 0.02 -> 0.02.
    c = write_tif(tmp_path / "c.tif", [[0.02]], x0=X0 + 30)
    with MosaicOnGrid([(a, 1, "dB"), (c, 1, "linear")], grid) as m:
        assert_allclose(m.read(Window(3, 0, 1, 1)), [[0.02]], rtol=1e-6)
    with rasterio.open(a) as src:
        assert pixel_size_m(src) == 10.0


def test_mosaic_refuses_unknown_units(tmp_path):
    from landslide_sar_plugin.core.grid import MosaicOnGrid

    a = write_tif(tmp_path / "a.tif", [[1.0]])
    with pytest.raises(GridError, match="unknown units 'furlongs'"):
        MosaicOnGrid([(a, 1, "furlongs")], make_grid())


def test_pixel_size_in_metres_of_a_geographic_raster(tmp_path):
    from landslide_sar_plugin.core.grid import pixel_size_m

    # 1 arc-second (1/3600 deg) at 60 N: x 111320 * cos 60 / 3600 = 15.46 m, y 110574 / 3600 = 30.72 m -> 30.72.
    path = write_tif(tmp_path / "geo.tif", np.zeros((4, 4)), crs="EPSG:4326", x0=10.0, y0=60.0 + 2 / 3600,
                     res=1 / 3600)
    with rasterio.open(path) as src:
        assert pixel_size_m(src) == pytest.approx(110574 / 3600, rel=1e-6)


def test_mosaic_reads_only_the_pieces_that_touch_the_block(tmp_path):
    from landslide_sar_plugin.core.grid import MosaicOnGrid

    grid = make_grid(width=40, height=1)
    a = write_tif(tmp_path / "a.tif", np.full((1, 5), 0.1))  # columns 0-4
    b = write_tif(tmp_path / "b.tif", np.full((1, 5), 0.3), x0=X0 + 350)  # columns 35-39
    with MosaicOnGrid([(a, 1, "linear"), (b, 1, "linear")], grid) as m:
        calls = []
        for reader, _ in m._readers:
            original = reader.read
            reader.read = lambda w, original=original, path=reader.path: calls.append(path.name) or original(w)
        assert_allclose(m.read(Window(0, 0, 10, 1)), [[0.1] * 5 + [np.nan] * 5])
        assert calls == ["a.tif"]  # b lies 25 columns away: not read
        whole = m.read(Window(0, 0, 40, 1))
    assert_allclose(whole, [[0.1] * 5 + [np.nan] * 30 + [0.3] * 5])


@pytest.mark.parametrize("aoi", ["179.5,-17,-179.5,-16", "FILE"])
def test_an_aoi_across_the_antimeridian_is_one_area_not_an_empty_one(tmp_path, aoi):
    import json as _json

    from landslide_sar_plugin.core.grid import grid_from_bounds, parse_aoi

    if aoi == "FILE":
        aoi = tmp_path / "fiji.geojson"
        aoi.write_text(_json.dumps({"type": "Polygon", "coordinates": [[
            [179.5, -17.0], [-179.5, -17.0], [-179.5, -16.0], [179.5, -16.0], [179.5, -17.0]]]}))
    parsed = parse_aoi(str(aoi))
    assert parsed.bounds == (179.5, -17.0, 180.5, -16.0)
    grid = grid_from_bounds(parsed.bounds, parsed.crs, 30.0)
    width_km = grid.width * 30.0 / 1000
    assert 100 < width_km < 115 and grid.crs.is_projected  # one degree of longitude at 16.5 S, not 359


def test_a_bowtie_aoi_is_refused_but_a_polygon_with_a_hole_is_not(tmp_path):
    import json as _json

    from landslide_sar_plugin.core.grid import GridError, parse_aoi

    bowtie = tmp_path / "bowtie.geojson"
    bowtie.write_text(_json.dumps({"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]}))
    with pytest.raises(GridError, match="crosses itself"):
        parse_aoi(str(bowtie))
    holed = tmp_path / "holed.geojson"
    holed.write_text(_json.dumps({"type": "Polygon", "coordinates": [
        [[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]], [[0.2, 0.2], [0.4, 0.2], [0.4, 0.4], [0.2, 0.2]]]}))
    assert parse_aoi(str(holed)).bounds == (0, 0, 1, 1)
