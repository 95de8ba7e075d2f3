"""Fuzzing the parsers that read what users and other programs hand us: each fails with its own error, or works.

Geometry blobs (GeoPackage), scene sidecars (scenes.json / scenes.csv), model metadata and token
redaction.  Hypothesis keeps the examples small and the run well under a minute.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import struct

import numpy as np
import pytest
import rasterio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rasterio.transform import from_origin

from landslide_sar_plugin.core import gpkg
from landslide_sar_plugin.core.catalog import Catalog, CatalogError, read_catalog
from landslide_sar_plugin.core.earthengine.auth import redact
from landslide_sar_plugin.core.gpkg import GeoPackageError
from landslide_sar_plugin.core.model import MAX_TILE_SIZE, REQUIRED_KEYS, ModelError, info_from_props

FAST = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
SQUARE = {"type": "MultiPolygon", "coordinates": [[[(0.0, 0.0), (4.0, 0.0), (4.0, 3.0), (0.0, 0.0)]]]}
VALID_BLOB = gpkg.encode_geometry(SQUARE, 32654)


# ----------------------------------------------------------------------------- geometry blobs


def _decode_or_refuse(blob: bytes):
    try:
        geom = gpkg.decode_geometry(blob)
    except GeoPackageError:
        return "refused"
    assert geom is None or geom["type"] in ("Polygon", "MultiPolygon")
    return geom


@FAST
@given(st.binary(max_size=200))
def test_any_bytes_decode_or_raise_geopackage_error(blob):
    _decode_or_refuse(blob)
    try:
        gpkg.blob_envelope(blob)
    except GeoPackageError:
        pass


@FAST
@given(st.lists(st.tuples(st.integers(0, len(VALID_BLOB) - 1), st.integers(0, 255)), min_size=1, max_size=6),
       st.integers(8, len(VALID_BLOB)))
def test_mutated_and_truncated_valid_blobs_decode_or_raise(edits, cut):
    blob = bytearray(VALID_BLOB)
    for pos, value in edits:
        blob[pos] = value
    _decode_or_refuse(bytes(blob[:cut]))


@pytest.mark.parametrize("count_offset", [8 + 32 + 5, 8 + 32 + 14, 8 + 32 + 18])  # polygons, rings, points
def test_a_declared_count_of_2_pow_32_minus_1_is_refused_before_allocating(count_offset):
    blob = bytearray(VALID_BLOB)
    blob[count_offset:count_offset + 4] = struct.pack("<I", 2**32 - 1)
    with pytest.raises(GeoPackageError, match="declares 4294967295 items"):
        gpkg.decode_geometry(bytes(blob))


def test_deeply_nested_collections_are_refused_not_a_recursion_error():
    wkb = b"".join(struct.pack("<BII", 1, 7, 1) for _ in range(5000)) + struct.pack("<BIdd", 1, 1, 0.0, 0.0)
    blob = b"GP" + struct.pack("<BBi", 0, 1, 0) + wkb
    with pytest.raises(GeoPackageError, match="nested too deeply"):
        gpkg.blob_envelope(blob)
    with pytest.raises(GeoPackageError, match="GeometryCollection"):
        gpkg.decode_geometry(blob)


@pytest.fixture(scope="module")
def gpkg_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("fuzz") / "c.gpkg"
    gpkg.write_features(path, "c", [gpkg.Feature(SQUARE, {"id": 1})], crs="EPSG:32654", fields=[("id", "INTEGER")])
    return path


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=120))
def test_reading_a_file_with_a_fuzzed_blob_names_the_feature(gpkg_file, blob):
    with sqlite3.connect(gpkg_file) as conn:
        gpkg.register_functions(conn)  # the R-tree triggers must survive any blob too
        conn.execute("UPDATE c SET geom = ?", (blob,))
    try:
        feats, _ = gpkg.read_features(gpkg_file)
    except GeoPackageError as exc:
        assert "feature 1 of layer 'c'" in str(exc) and str(gpkg_file) in str(exc)
    else:
        assert len(feats) == 1


# ----------------------------------------------------------------------------- sidecars


@pytest.fixture(scope="module")
def scene_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("scenes")
    with rasterio.open(folder / "a.tif", "w", driver="GTiff", width=16, height=16, count=2, dtype="float32",
                       crs="EPSG:32654", transform=from_origin(500000, 4750000, 10, 10)) as dst:
        dst.write(np.full((2, 16, 16), -12.0, np.float32))
        dst.descriptions = ("VV", "VH")
        dst.update_tags(ACQUISITION_START="2018-09-05T08:35:12Z", ORBIT_PASS="ASCENDING", RELATIVE_ORBIT="39",
                        UNITS="dB")
    return folder


JSON = st.recursive(st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=12),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                    max_leaves=12)
ROW_KEYS = st.sampled_from(["file", "acquisition_start", "orbit_pass", "relative_orbit", "units", "polarisations"])
ROW_VALUES = st.one_of(st.sampled_from(["a.tif", "inf", "nan", "-1", "39", "dB", "linear", "VV,VH", "ASC", "",
                                        "2018-09-05", "1e400", "VV;XX"]), JSON)


def _read(folder):
    try:
        catalog = read_catalog(folder)
    except CatalogError as exc:
        assert "\n" not in str(exc)
        return None
    assert isinstance(catalog, Catalog)
    return catalog


@FAST
@given(st.one_of(JSON, st.lists(st.dictionaries(ROW_KEYS, ROW_VALUES, max_size=6), max_size=3)))
def test_any_scenes_json_reads_or_raises_catalog_error(scene_folder, content):
    (scene_folder / "scenes.json").write_text(json.dumps(content), encoding="utf-8")
    try:
        _read(scene_folder)
    finally:
        (scene_folder / "scenes.json").unlink()


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(max_size=200))
def test_any_scenes_csv_reads_or_raises_catalog_error(scene_folder, text):
    (scene_folder / "scenes.csv").write_text("file,relative_orbit,units,orbit_pass\na.tif," + text, encoding="utf-8")
    try:
        _read(scene_folder)
    finally:
        (scene_folder / "scenes.csv").unlink()


# ----------------------------------------------------------------------------- model metadata

GOOD_PROPS = {
    "landslide_sar.format": "1", "composite": "BA_S", "band_names": json.dumps(["VV_pre", "VV_post1", "slope"]),
    "normalisation": json.dumps({"kind": "standard", "mean": [-10.0, -10.0, 20.0], "std": [3.0, 3.0, 10.0]}),
    "tile_size": "64", "tile_overlap": "16", "threshold": "0.5", "pixel_size_m": "10.0",
}
PROP_VALUES = st.one_of(
    st.sampled_from(["nan", "inf", "-1", "0", "2.0", "100000", "1e400", "[]", "{}", "null", '"x"', "true", "64",
                     '{"kind": "standard", "mean": [0, 0, 0], "std": [0, 1, 1]}', '["a", 1]', "BA_S", "ASCENDING"]),
    st.text(max_size=20), JSON.map(json.dumps),
)


@FAST
@given(st.dictionaries(st.sampled_from(sorted(set(REQUIRED_KEYS) | {"units", "orbit_pass", "nodata_fill",
                                                                   "pixel_size_m", "composite_recipe",
                                                                   "training_events", "synthetic_training_data"})),
                       PROP_VALUES, max_size=5))
def test_any_model_metadata_parses_within_range_or_raises_model_error(changes):
    props = {**GOOD_PROPS, **changes}
    try:
        info = info_from_props(props, source="fuzz.onnx")
    except ModelError as exc:
        assert str(exc).startswith("fuzz.onnx") and "\n" not in str(exc)
        return
    assert 8 <= info.tile_size <= MAX_TILE_SIZE and 0 <= info.tile_overlap <= info.tile_size // 2
    assert 0 < info.threshold < 1 and np.isfinite(info.pixel_size_m) and info.pixel_size_m > 0
    spread = info.normalisation.get("std") or [b - a for a, b in zip(info.normalisation["min"],
                                                                      info.normalisation["max"])]
    assert all(s > 0 for s in spread) and len(spread) == info.n_bands


# ----------------------------------------------------------------------------- redaction

TOKEN = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", min_size=12, max_size=40)


@FAST
@given(TOKEN, TOKEN, TOKEN, st.sampled_from(["Bearer {a}", "Authorization: Bearer eyJ{a}.{b}.{c}",
                                             "http://localhost:8085/?state=s&code=4/0{a}&scope=e", "token={a}",
                                             '{{"refresh_token": "1//{a}"}}', "id_token eyJ{a}.{b}"]))
def test_redaction_removes_the_secret_of_every_form(a, b, c, template):
    text = f"request failed at {dt.date(2024, 1, 2)}: " + template.format(a=a, b=b, c=c) + " (status 401)"
    out = redact(text)
    assert a not in out and "<redacted>" in out and out.startswith("request failed") and "status 401" in out


B64 = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/", min_size=16, max_size=64)


@FAST
@given(B64, B64, st.sampled_from(["\\n", "\n", " "]), st.booleans())
def test_redaction_removes_whole_or_truncated_private_keys(a, b, newline, complete):
    key = f"-----BEGIN PRIVATE KEY-----{newline}MII{a}{newline}{b}"
    if complete:
        key += f"{newline}-----END PRIVATE KEY-----"
    out = redact(f'service account key {{"private_key": "{key}"}} (status 400)')
    assert a not in out and b not in out and "status 400" in out
