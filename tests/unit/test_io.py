"""GeoPackage, GeoTIFF and PNG writers: round trips, atomicity, foreign encodings."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from landslide_sar_plugin.core import gpkg
from landslide_sar_plugin.core.png import encode_png
from landslide_sar_plugin.core.raster_io import atomic_output, write_geotiff

SQUARE_WITH_HOLE = {
    "type": "Polygon",
    "coordinates": [[(0, 0), (10, 0), (10, 10), (0, 10), (0, 0)], [(2, 2), (4, 2), (4, 4), (2, 4), (2, 2)]],
}


def test_geopackage_round_trip_keeps_geometry_attributes_and_crs(tmp_path):
    path = tmp_path / "c.gpkg"
    feats = [
        gpkg.Feature(SQUARE_WITH_HOLE, {"id": 1, "area_m2": 96.0, "status": "proposed", "ok": True}),
        gpkg.Feature({"type": "MultiPolygon", "coordinates": [[[(20, 20), (21, 20), (21, 21), (20, 20)]]]},
                     {"id": 2, "area_m2": 0.5, "status": "rejected", "ok": False}),
    ]
    fields = [("id", "INTEGER"), ("area_m2", "REAL"), ("status", "TEXT"), ("ok", "BOOLEAN")]
    gpkg.write_features(path, "candidates", feats, crs="EPSG:32654", fields=fields)
    back, crs = gpkg.read_features(path)
    assert crs == "EPSG:32654"
    assert [f.properties for f in back] == [
        {"id": 1, "area_m2": 96.0, "status": "proposed", "ok": 1},
        {"id": 2, "area_m2": 0.5, "status": "rejected", "ok": 0},
    ]
    # Polygons are stored as multipolygons; rings come back closed and exact.
    assert back[0].geometry["type"] == "MultiPolygon"
    assert back[0].geometry["coordinates"][0] == [[(float(x), float(y)) for x, y in r]
                                                   for r in SQUARE_WITH_HOLE["coordinates"]]
    assert gpkg.list_layers(path) == ["candidates"]
    # Nothing temporary is left beside the result.
    assert [p.name for p in tmp_path.iterdir()] == ["c.gpkg"]


def test_geopackage_layer_extent_is_recorded(tmp_path):
    path = tmp_path / "e.gpkg"
    gpkg.write_features(path, "l", [gpkg.Feature(SQUARE_WITH_HOLE, {})], crs="EPSG:32633", fields=[])
    import sqlite3

    with sqlite3.connect(path) as conn:
        row = conn.execute("SELECT min_x, min_y, max_x, max_y, srs_id FROM gpkg_contents").fetchone()
        (app_id,) = conn.execute("PRAGMA application_id").fetchone()
    assert row == (0.0, 0.0, 10.0, 10.0, 32633)
    assert app_id == 0x47504B47


def test_decode_accepts_big_endian_z_geometry_without_envelope():
    # A QGIS/OGR writer may store 3-D polygons (ISO type 1003) in big-endian order without envelope.
    ring = [(0.0, 0.0, 5.0), (1.0, 0.0, 5.0), (1.0, 1.0, 5.0), (0.0, 0.0, 5.0)]
    wkb = struct.pack(">BII", 0, 1003, 1) + struct.pack(">I", len(ring))
    wkb += b"".join(struct.pack(">ddd", *p) for p in ring)
    blob = b"GP" + struct.pack("<BBi", 0, 0b0000_0000, 4326) + wkb
    geom = gpkg.decode_geometry(blob)
    assert geom == {"type": "Polygon", "coordinates": [[(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 0.0)]]}


def test_empty_geometry_flag_decodes_to_none():
    blob = b"GP" + struct.pack("<BBi", 0, 0b0001_0001, 0)
    assert gpkg.decode_geometry(blob) is None


def test_geopackage_errors_say_what_is_wrong(tmp_path):
    with pytest.raises(gpkg.GeoPackageError, match="no such GeoPackage"):
        gpkg.read_features(tmp_path / "missing.gpkg")
    bogus = tmp_path / "bogus.gpkg"
    bogus.write_bytes(b"not a database at all" * 10)
    with pytest.raises(gpkg.GeoPackageError, match="not a readable GeoPackage"):
        gpkg.read_features(bogus)
    good = tmp_path / "g.gpkg"
    gpkg.write_features(good, "a", [], crs="EPSG:4326", fields=[])
    with pytest.raises(gpkg.GeoPackageError, match="has no layer 'b'"):
        gpkg.read_features(good, "b")
    with pytest.raises(gpkg.GeoPackageError, match="cannot be a table or column name"):
        gpkg.write_features(tmp_path / "x.gpkg", "", [], crs="EPSG:4326", fields=[])
    assert not (tmp_path / "x.gpkg").exists()


@pytest.mark.parametrize("layer, field", [("bad name;", "x"), ("land-slides", "área m2"), ('q"uote', "with space"),
                                          ("DROP TABLE gpkg_contents", "select")])
def test_any_layer_or_field_name_is_quoted_not_refused(tmp_path, layer, field):
    path = tmp_path / "q.gpkg"
    gpkg.write_features(path, layer, [gpkg.Feature(SQUARE_WITH_HOLE, {field: 1.5})], crs="EPSG:4326",
                        fields=[(field, "REAL")])
    feats, _ = gpkg.read_features(path, layer)
    assert gpkg.list_layers(path) == [layer] and feats[0].properties == {field: 1.5}


def test_geopackage_write_is_byte_identical_with_fixed_timestamp(tmp_path):
    for name in ("a.gpkg", "b.gpkg"):
        gpkg.write_features(tmp_path / name, "l", [gpkg.Feature(SQUARE_WITH_HOLE, {"id": 1})],
                            crs="EPSG:32654", fields=[("id", "INTEGER")], timestamp="2018-09-06T00:00:00Z")
    assert (tmp_path / "a.gpkg").read_bytes() == (tmp_path / "b.gpkg").read_bytes()


def test_geotiff_written_atomically_with_tags_and_descriptions(tmp_path):
    data = np.arange(2 * 40 * 50, dtype="float32").reshape(2, 40, 50)
    data[0, 0, 0] = np.nan
    path = write_geotiff(tmp_path / "x.tif", data, transform=from_origin(500000, 4700000, 10, 10),
                         crs="EPSG:32654", nodata=float("nan"), band_descriptions=["VV", "VH"],
                         tags={"UNITS": "dB", "ORBIT_PASS": "ASCENDING"})
    with rasterio.open(path) as src:
        assert src.descriptions == ("VV", "VH")
        assert src.tags()["UNITS"] == "dB"
        back = src.read()
    np.testing.assert_array_equal(back, data)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.tif"]


def test_lossy_storage_respects_its_error_bound(tmp_path):
    rng = np.random.default_rng(0)
    data = (10 * np.log10(rng.gamma(4.4, 1 / 4.4, (300, 300))) - 12).astype("float32")
    path = write_geotiff(tmp_path / "l.tif", data, transform=from_origin(0, 0, 10, 10), crs="EPSG:32654",
                         max_z_error=0.1)
    with rasterio.open(path) as src:
        back = src.read(1)
    assert np.abs(back - data).max() <= 0.1 + 1e-6


def test_atomic_output_removes_partial_file_on_error_and_keeps_old_file(tmp_path):
    target = tmp_path / "out.tif"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_output(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("crash in the middle")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.tif"]


def test_png_encoder_produces_valid_png_with_exact_pixels():
    img = np.array([[[255, 0, 0], [0, 255, 0]], [[0, 0, 255], [10, 20, 30]]], dtype=np.uint8)
    data = encode_png(img)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (2, 2)
    idat_len = struct.unpack(">I", data[33:37])[0]
    raw = zlib.decompress(data[41:41 + idat_len])
    assert raw == b"\x00" + img[0].tobytes() + b"\x00" + img[1].tobytes()
    with pytest.raises(ValueError, match="uint8"):
        encode_png(img.astype("float32"))
