"""OPERA RTC-S1 names and tags (core/sources/opera.py), and the shipped REAL fixture read through the catalogue.

The fixture ``tests/fixtures/opera_rtc_s1_t137`` is REAL OPERA RTC-S1 backscatter (two bursts of track 137,
21 dates, VV and VH) with no landslide event in it; see its README for the sources and licence.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest
import rasterio
from hypothesis import given, settings
from hypothesis import strategies as st

from landslide_sar_plugin.core import composite
from landslide_sar_plugin.core.catalog import read_catalog
from landslide_sar_plugin.core.sources import opera

UTC = dt.timezone.utc
FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "opera_rtc_s1_t137"  # one sub-folder per burst


def both_bursts(tmp_path: Path) -> Path:
    """A scene folder holding both fixture bursts, as a user's download folder would (links to the files)."""
    folder = tmp_path / "scenes"
    folder.mkdir()
    for path in sorted(FIXTURE.glob("T137-*/*.tif")):
        (folder / path.name).symlink_to(path)
    return folder
NAME = "OPERA_L2_RTC-S1_T137-292320-IW2_20231203T015911Z_20231203T124004Z_S1A_30_v1.0_VH.tif"


# --------------------------------------------------------------------------- names


def test_name_fields():
    n = opera.parse_name(NAME)
    assert (n.track, n.burst, n.swath) == (137, 292320, "IW2")
    assert n.burst_id == "T137-292320-IW2"
    assert n.start == dt.datetime(2023, 12, 3, 1, 59, 11, tzinfo=UTC)
    assert n.production == dt.datetime(2023, 12, 3, 12, 40, 4, tzinfo=UTC)
    assert (n.sensor, n.spacing_m, n.version) == ("S1A", 30, "1.0")
    assert n.layer == "VH" and n.polarisation == "VH"
    assert n.stem() + ".tif" == NAME


@pytest.mark.parametrize("name, layer, pol", [
    (NAME.replace("_VH.tif", "_mask.tif"), "mask", None),  # layover/shadow mask: not backscatter
    (NAME.replace("_VH.tif", "_vv.tiff"), "VV", "VV"),  # case of the layer and extension do not matter
    (NAME.replace("_VH.tif", "_VH_crop.tif"), "VH", "VH"),  # a user's renamed crop keeps its polarisation
    (NAME.replace("_VH.tif", ".h5"), None, None),  # the HDF5 product itself: no layer
])
def test_layers(name, layer, pol):
    n = opera.parse_name(name)
    assert n.layer == layer and n.polarisation == pol


@pytest.mark.parametrize("name", [
    "S1A_IW_GRDH_1SDV_20180905T083512_20180905T083537_023561_029117_8F1E.tif",
    "OPERA_L3_DSWx-S1_T11SKU_20231203T015911Z_20231203T124004Z_S1A_30_v1.0_B01_WTR.tif",  # another OPERA product
    "OPERA_L2_RTC-S1_T137-292320-IW4_20231203T015911Z_20231203T124004Z_S1A_30_v1.0_VH.tif",  # no sub-swath IW4
    "scene_VH.tif",
])
def test_other_names_are_not_rtc_s1(name):
    assert opera.parse_name(name) is None


def test_impossible_date_is_an_error_naming_the_field():
    with pytest.raises(opera.OperaNameError, match="20231303T015911"):
        opera.parse_name(NAME.replace("20231203T015911Z", "20231303T015911Z"))


def test_static_layers_are_recognised():
    static = "OPERA_L2_RTC-S1-STATIC_T137-292320-IW2_20140403_S1A_30_v1.0_local_incidence_angle.tif"
    assert opera.is_static_layer(static)
    assert not opera.is_static_layer(NAME)


_times = st.datetimes(min_value=dt.datetime(2014, 4, 3), max_value=dt.datetime(2099, 12, 31)).map(
    lambda t: t.replace(microsecond=0, tzinfo=UTC))


@settings(max_examples=200, deadline=None)
@given(track=st.integers(1, 175), burst=st.integers(0, 999_999), swath=st.sampled_from(["IW1", "IW2", "IW3"]),
       start=_times, production=_times, sensor=st.sampled_from(["S1A", "S1B", "S1C", "S1D"]),
       spacing=st.integers(1, 999), version=st.lists(st.integers(0, 99), min_size=1, max_size=3),
       layer=st.sampled_from(["VV", "VH", "HH", "HV", "mask", None]))
def test_name_round_trip(track, burst, swath, start, production, sensor, spacing, version, layer):
    name = opera.OperaName(track, burst, swath, start, production, sensor, spacing, ".".join(map(str, version)),
                           layer)
    for ext in (".tif", ""):
        assert opera.parse_name(name.stem() + ext) == name


def test_newer_product_wins_by_version_then_production():
    old = opera.parse_name(NAME)
    later = opera.parse_name(NAME.replace("20231203T124004Z", "20250830T120333Z"))
    assert opera.newer(old, later) == (later, "it is the later production (2025-08-30T12:03:33Z)")
    v11 = opera.parse_name(NAME.replace("v1.0", "v1.10"))  # 1.10 > 1.9 > 1.0: compared as numbers
    v19 = opera.parse_name(NAME.replace("v1.0", "v1.9").replace("20231203T124004Z", "20260101T000000Z"))
    assert opera.newer(v19, v11) == (v11, "it is the higher product version (v1.10)")


# --------------------------------------------------------------------------- tags


FULL_TAGS = {
    "PRODUCT_TYPE": "RTC-S1", "PROJECT": "OPERA", "ZERO_DOPPLER_START_TIME": "2023-12-03T01:59:11.123456789Z",
    "ORBIT_PASS_DIRECTION": "descending", "TRACK_NUMBER": "64", "PLATFORM": "Sentinel-1B",
    "BURST_ID": "t064_135000_iw1", "PRODUCT_VERSION": "1.0",
    "PROCESSING_INFORMATION_OUTPUT_BACKSCATTER_EXPRESSION_CONVENTION": "linear backscatter intensity",
    "PROCESSING_INFORMATION_OUTPUT_BACKSCATTER_NORMALIZATION_CONVENTION": "gamma0",
}


def test_tags_of_a_full_product():
    t = opera.read_tags(FULL_TAGS)
    assert t.start == dt.datetime(2023, 12, 3, 1, 59, 11, 123456, tzinfo=UTC)  # nanoseconds cut to microseconds
    assert (t.orbit_pass, t.track, t.platform, t.burst_id) == ("DESCENDING", 64, "S1B", "T064-135000-IW1")
    assert (t.units, t.normalisation, t.version, t.polarisation) == ("linear", "gamma0", "1.0", None)
    assert opera.read_tags({**FULL_TAGS, "POLARIZATION": "vv"}).polarisation == "VV"


@pytest.mark.parametrize("text, units", [("linear backscatter intensity", "linear"), ("", "linear"),
                                         ("backscatter amplitude", "amplitude"), ("decibels", "dB"), ("dB", "dB")])
def test_units_from_the_expression_convention(text, units):
    assert opera.units_from_convention(text) == units


def test_tags_of_other_products_are_ignored_and_bad_values_named():
    assert opera.read_tags({"AREA_OR_POINT": "Area"}) is None  # the crops: no tags at all
    assert opera.read_tags({**FULL_TAGS, "PRODUCT_TYPE": "RTC-S1-STATIC"}) is None
    with pytest.raises(ValueError, match="ORBIT_PASS_DIRECTION"):
        opera.read_tags({**FULL_TAGS, "ORBIT_PASS_DIRECTION": "sideways"})
    with pytest.raises(ValueError, match="TRACK_NUMBER"):
        opera.read_tags({**FULL_TAGS, "TRACK_NUMBER": "sixty-four"})


# --------------------------------------------------------------------------- the REAL fixture, through the catalogue


def test_fixture_names_are_read_without_a_sidecar(tmp_path):
    assert not list(FIXTURE.rglob("scenes.*"))  # no sidecar anywhere: the names alone
    c = read_catalog(both_bursts(tmp_path))
    assert c.skipped == []
    # 2 bursts x 21 dates x 2 polarisations = 84 files; the two bursts of a date are ONE scene: 21 scenes.
    assert len(c.scenes) == 21
    for s in c.scenes:
        assert s.track == ("ASCENDING", 137)  # track = relative orbit; pass inferred (see below)
        assert s.bursts == ("T137-292320-IW2", "T137-292321-IW2")
        assert {pol: len(ref.pieces()) for pol, ref in s.bands.items()} == {"VV": 2, "VH": 2}
        assert s.units == "linear" and s.product == "OPERA RTC-S1" and not s.synthetic
        d = s.to_dict()
        assert len(d["files"]) == 4 and set(d["file_products"].values()) == {"OPERA RTC-S1"}
    first = c.scenes[0]
    # The earlier of the two bursts' starts (292320 at 01:59:00, 292321 at 01:59:03).
    assert first.acquisition_start == dt.datetime(2021, 11, 19, 1, 59, 0, tzinfo=UTC)
    assert first.scene_id == "ASC_R137_20211119T015900"
    assert {s.platform for s in c.scenes} == {"S1A", "S1B"}


def test_fixture_pass_is_ascending_from_solar_time_with_one_warning(tmp_path):
    # The crops carry no ORBIT_PASS_DIRECTION tag. Centre ~119.9 W: 01:59 UTC - 119.9/15 h = 1.98 - 7.99 = -6.01 h
    # -> 17:59 local solar time: the evening (northbound, ascending) pass of Sentinel-1.
    c = read_catalog(both_bursts(tmp_path))
    assert {s.orbit_pass for s in c.scenes} == {"ASCENDING"}
    (w,) = c.warnings  # one line for the 84 files, not 84 lines
    assert "83 other files of relative orbit 137" in w and "inferred ASCENDING" in w and "about 17:5" in w


def test_fixture_linear_gamma0_is_converted_to_db():
    (path,) = FIXTURE.glob("T137-292320-IW2/*_20231203T*_VH.tif")
    with rasterio.open(path) as src:
        linear = src.read(1)
    assert np.nanmedian(linear) < 0.1 and np.nanmin(linear) > 0  # linear power, not dB
    db = composite.to_db(linear, "linear")
    np.testing.assert_allclose(db, 10 * np.log10(linear.astype(np.float64)), atol=1e-4)
    # VH of steep chaparral (the fixture README): a median of about -15 to -17 dB.
    assert -19.0 < float(np.nanmedian(db)) < -13.0


def test_the_real_fixture_stays_out_of_the_plugin_zip():
    import importlib.util

    root = Path(__file__).resolve().parents[2]
    spec = importlib.util.spec_from_file_location("package_plugin", root / ".ci" / "package_plugin.py")
    packager = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(packager)
    files = [name for _, name in packager.plugin_files()]
    assert "landslide_sar_plugin/core/sources/opera.py" in files  # the reader ships ...
    assert not [f for f in files if "OPERA_L2" in f or "fixtures" in f]  # ... the 3 MB of real test data does not
