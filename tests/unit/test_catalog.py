"""Scene catalogue: metadata from tags, file names and sidecars; pre/post stack selection.

Every expected value below is worked out by hand in a comment next to it.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin
from rasterio.warp import transform as warp_transform

from landslide_sar_plugin.core import catalog as cat
from landslide_sar_plugin.core.catalog import (
    BandRef,
    CatalogError,
    Scene,
    read_catalog,
    select_stacks,
)

UTC = dt.UTC
# 20 x 20 px at 10 m in UTM 54N; x = 500 000 is the zone's central meridian (141 E), y ~ 42.9 N.
X0, Y0 = 500_000.0, 4_750_000.0

ESA_NAME = "S1A_IW_GRDH_1SDV_20180905T083512_20180905T083537_023561_029117_8F1E.tif"
HYP3_VV = "S1A_IW_20180905T083512_DVP_RTC30_G_gpuned_5A1B_VV.tif"
HYP3_VH = "S1A_IW_20180905T083512_DVP_RTC30_G_gpuned_5A1B_VH.tif"

DB_DATA = np.full((20, 20), -12.5, dtype="float32")  # typical VH sigma0 in dB
LIN_DATA = np.full((20, 20), 0.056, dtype="float32")  # the same in linear power


def write_tif(path, data, *, crs="EPSG:32654", x0=X0, y0=Y0, res=10.0, tags=None, descriptions=None,
              nodata=None):
    """Write a small float32 GeoTIFF (2-D data = one band, 3-D = bands first) and return its path."""
    arr = np.asarray(data, dtype="float32")
    if arr.ndim == 2:
        arr = arr[None]
    profile = {"driver": "GTiff", "width": arr.shape[2], "height": arr.shape[1], "count": arr.shape[0],
               "dtype": "float32", "transform": from_origin(x0, y0, res, res), "nodata": nodata}
    if crs is not None:
        profile["crs"] = crs
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(arr)
        if tags:
            dst.update_tags(**tags)
        for i, d in enumerate(descriptions or [], start=1):
            dst.set_band_description(i, d)
    return Path(path)


def tagged(path, when="2018-09-05T08:35:12Z", orbit_pass="ASCENDING", rel_orbit="39", units="dB",
           descriptions=("VV", "VH"), data=None, **extra_tags):
    """A fully tagged two-band scene."""
    tags = {"ACQUISITION_START": when, "ORBIT_PASS": orbit_pass, "RELATIVE_ORBIT": rel_orbit, "UNITS": units}
    tags = {k: v for k, v in tags.items() if v is not None}
    tags.update(extra_tags)
    if data is None:
        data = np.stack([DB_DATA] * len(descriptions)) if descriptions else DB_DATA
    return write_tif(path, data, tags=tags, descriptions=list(descriptions) if descriptions else None)


def only(catalog):
    assert len(catalog.scenes) == 1, (catalog.scenes, catalog.skipped)
    return catalog.scenes[0]


# --------------------------------------------------------------------------- tags


def test_tags_give_time_pass_orbit_units_and_band_order(tmp_path):
    # Band 1 described VH, band 2 VV: the description order wins, not the alphabet.
    tagged(tmp_path / "scene.tif", when="2018-09-05T17:35:12+09:00", orbit_pass="desc", rel_orbit="46",
           units="decibels", descriptions=("VH", "VV"))
    c = read_catalog(tmp_path)
    s = only(c)
    # 17:35:12 at UTC+9 is 08:35:12 UTC.
    assert s.acquisition_start == dt.datetime(2018, 9, 5, 8, 35, 12, tzinfo=UTC)
    assert s.acquisition_start.utcoffset() == dt.timedelta(0)
    assert s.orbit_pass == "DESCENDING"  # alias "desc"
    assert s.relative_orbit == 46
    assert s.units == "dB"
    assert s.bands == {"VH": BandRef(tmp_path / "scene.tif", 1), "VV": BandRef(tmp_path / "scene.tif", 2)}
    assert s.track == ("DESCENDING", 46)
    assert s.scene_id == "DES_R46_20180905T083512"
    assert c.warnings == [] and c.skipped == []
    d = s.to_dict()
    assert d["acquisition_start"] == "2018-09-05T08:35:12Z"
    assert d["polarisations"] == ["VH", "VV"]


def test_naive_tag_time_is_utc_and_tag_keys_are_case_insensitive(tmp_path):
    write_tif(tmp_path / "a.tif", np.stack([DB_DATA, DB_DATA]), descriptions=["VV", "VH"],
              tags={"acquisition_start": "2018-09-05T08:35:12", "orbit_pass": "A", "relative_orbit": "39.0",
                    "units": "dB"})
    s = only(read_catalog(tmp_path))
    assert s.acquisition_start == dt.datetime(2018, 9, 5, 8, 35, 12, tzinfo=UTC)
    assert s.orbit_pass == "ASCENDING"
    assert s.relative_orbit == 39


def test_polarisations_tag_gives_band_order_without_descriptions(tmp_path):
    write_tif(tmp_path / "a.tif", np.stack([DB_DATA, DB_DATA - 6]),
              tags={"ACQUISITION_START": "2018-09-05T08:35:12Z", "ORBIT_PASS": "ASCENDING",
                    "RELATIVE_ORBIT": "39", "UNITS": "dB", "POLARISATIONS": "VH,VV"})
    s = only(read_catalog(tmp_path))
    assert s.bands == {"VH": BandRef(tmp_path / "a.tif", 1), "VV": BandRef(tmp_path / "a.tif", 2)}


def test_single_band_polarisation_from_file_name_suffix(tmp_path):
    write_tif(tmp_path / "iburi_post_VH.tif", DB_DATA,
              tags={"ACQUISITION_START": "2018-09-11T08:35:12Z", "ORBIT_PASS": "ASCENDING",
                    "RELATIVE_ORBIT": "39", "UNITS": "dB"})
    s = only(read_catalog(tmp_path))
    assert s.bands == {"VH": BandRef(tmp_path / "iburi_post_VH.tif", 1)}


def test_synthetic_tag_is_carried(tmp_path):
    tagged(tmp_path / "sim.tif", SYNTHETIC="true")
    tagged(tmp_path / "real.tif", when="2018-09-17T08:35:12Z")
    c = read_catalog(tmp_path)
    assert [s.synthetic for s in c.scenes] == [True, False]


# --------------------------------------------------------------------------- file names


def test_esa_product_name_gives_start_and_relative_orbit(tmp_path):
    # No time or orbit tags: both come from the ESA product id.
    write_tif(tmp_path / ESA_NAME, np.stack([DB_DATA, DB_DATA]), descriptions=["VV", "VH"],
              tags={"ORBIT_PASS": "ASCENDING", "UNITS": "dB"})
    s = only(read_catalog(tmp_path))
    assert s.acquisition_start == dt.datetime(2018, 9, 5, 8, 35, 12, tzinfo=UTC)
    # S1A: (absolute orbit - 73) mod 175 + 1 = (23561 - 73) mod 175 + 1 = 23488 mod 175 + 1
    #      = (23488 - 134*175 = 23488 - 23450 = 38) + 1 = 39.
    assert s.relative_orbit == 39
    assert s.orbit_pass == "ASCENDING"


def test_esa_s1b_name_uses_offset_27(tmp_path):
    name = "S1B_IW_GRDH_1SDV_20180911T083431_20180911T083456_012632_0174A4_1C2B.tif"
    write_tif(tmp_path / name, np.stack([DB_DATA, DB_DATA]), descriptions=["VV", "VH"],
              tags={"ORBIT_PASS": "ASCENDING", "UNITS": "dB"})
    s = only(read_catalog(tmp_path))
    assert s.acquisition_start == dt.datetime(2018, 9, 11, 8, 34, 31, tzinfo=UTC)
    # S1B: (12632 - 27) mod 175 + 1 = 12605 mod 175 + 1 = (12605 - 72*175 = 12605 - 12600 = 5) + 1 = 6.
    # (With the S1A offset 73 it would be 12559 mod 175 + 1 = 134 + 1 = 135.)
    assert s.relative_orbit == 6


def test_tags_override_file_name(tmp_path):
    tagged(tmp_path / ESA_NAME, when="2018-09-06T08:35:12Z", rel_orbit="107")
    s = only(read_catalog(tmp_path))
    assert s.acquisition_start == dt.datetime(2018, 9, 6, 8, 35, 12, tzinfo=UTC)
    assert s.relative_orbit == 107


def test_hyp3_per_polarisation_files_merge_into_one_scene(tmp_path):
    write_tif(tmp_path / HYP3_VV, LIN_DATA * 5)
    write_tif(tmp_path / HYP3_VH, LIN_DATA)
    c = read_catalog(tmp_path)
    s = only(c)
    assert s.bands == {"VV": BandRef(tmp_path / HYP3_VV, 1), "VH": BandRef(tmp_path / HYP3_VH, 1)}
    assert s.units == "linear"  # 'p' in 'gpuned' = power
    assert s.acquisition_start == dt.datetime(2018, 9, 5, 8, 35, 12, tzinfo=UTC)
    assert s.relative_orbit is None  # HyP3 names carry no absolute orbit
    # Centre ~141.0 E: 08:35 UTC + 141/15 h = 8.58 + 9.40 = 17.98 h local -> ascending (evening) pass.
    assert s.orbit_pass == "ASCENDING"
    assert s.scene_id == "ASC_Rxxx_20180905T083512"
    assert cat.scene_file_units(s, tmp_path / HYP3_VV) == "linear"
    # Units came from the name (no statistics warning); the pass was inferred (one warning per file).
    assert not any("units not stated" in w for w in c.warnings)
    assert sum("orbit pass not stated" in w for w in c.warnings) == 2


def test_hyp3_db_letter_gives_db_even_for_positive_values(tmp_path):
    # Bright positive dB (urban, layover).  Values of 0..1.5 everywhere would be linear power mislabelled dB:
    # such a file is refused (see test_implausible_values_for_the_stated_units_skip_the_file).
    name = HYP3_VH.replace("gpuned", "gduned")
    write_tif(tmp_path / name, np.full((20, 20), 4.5, dtype="float32"), tags={"ORBIT_PASS": "ASCENDING"})
    c = read_catalog(tmp_path)
    assert only(c).units == "dB"
    assert not any("units" in w for w in c.warnings)


def test_hyp3_amplitude_letter_is_not_power(tmp_path):
    # Amplitude must be converted with 20*log10, power with 10*log10: the two must not be conflated.
    name = HYP3_VH.replace("gpuned", "gauned")
    write_tif(tmp_path / name, LIN_DATA, tags={"ORBIT_PASS": "ASCENDING"})
    assert only(read_catalog(tmp_path)).units == "amplitude"


def test_hyp3_mixed_units_per_file(tmp_path):
    write_tif(tmp_path / HYP3_VV.replace("gpuned", "gduned"), DB_DATA, tags={"ORBIT_PASS": "ASCENDING"})
    write_tif(tmp_path / HYP3_VH, LIN_DATA, tags={"ORBIT_PASS": "ASCENDING"})
    c = read_catalog(tmp_path)
    s = only(c)
    assert s.units == "mixed"
    assert cat.scene_file_units(s, s.bands["VV"].path) == "dB"
    assert cat.scene_file_units(s, s.bands["VH"].path) == "linear"
    assert any("mixes dB and linear" in w for w in c.warnings)


# --------------------------------------------------------------------------- sidecar


def test_scenes_csv_overrides_tags(tmp_path):
    # a.tif holds linear power under a wrong UNITS=dB tag; the sidecar's units correct it.
    tagged(tmp_path / "a.tif", when="2018-09-05T08:35:12Z", orbit_pass="DESCENDING", rel_orbit="46", units="dB",
           data=np.stack([LIN_DATA] * 2))
    tagged(tmp_path / "b.tif", when="2018-09-17T08:35:12Z", orbit_pass="DESCENDING", rel_orbit="46", units="dB")
    (tmp_path / "scenes.csv").write_text(
        "file,acquisition_start,orbit_pass,relative_orbit,units,polarisations\n"
        "a.tif,2018-09-11T20:40:00Z,ASCENDING,39,linear,VH+VV\n"
        "b.tif,,,,,\n"  # empty cells keep the tag values
        "not_there.tif,2018-01-01T00:00:00Z,ASCENDING,1,dB,VV\n",
        encoding="utf-8",
    )
    c = read_catalog(tmp_path)
    a, b = sorted(c.scenes, key=lambda s: s.bands["VV"].path.name)
    assert a.acquisition_start == dt.datetime(2018, 9, 11, 20, 40, tzinfo=UTC)
    assert a.orbit_pass == "ASCENDING" and a.relative_orbit == 39 and a.units == "linear"
    # The descriptions say VV, VH; the sidecar says band 1 is VH.
    assert a.bands == {"VH": BandRef(tmp_path / "a.tif", 1), "VV": BandRef(tmp_path / "a.tif", 2)}
    assert b.acquisition_start == dt.datetime(2018, 9, 17, 8, 35, 12, tzinfo=UTC)
    assert b.track == ("DESCENDING", 46) and b.units == "dB"
    assert len(c.scenes) == 2 and c.skipped == []


def test_scenes_csv_rescues_an_untagged_unnamed_file(tmp_path):
    write_tif(tmp_path / "export.tif", np.stack([DB_DATA, DB_DATA]))
    (tmp_path / "scenes.csv").write_text(
        "file,acquisition_start,orbit_pass,relative_orbit,units,polarisations\n"
        "export.tif,2018-09-05T08:35:12Z,ASC,39,dB,VV;VH\n", encoding="utf-8")
    c = read_catalog(tmp_path)
    s = only(c)
    assert s.track == ("ASCENDING", 39)
    assert s.bands == {"VV": BandRef(tmp_path / "export.tif", 1), "VH": BandRef(tmp_path / "export.tif", 2)}
    assert c.warnings == []


@pytest.mark.parametrize("wrapped", [True, False])
def test_scenes_json_overrides_tags(tmp_path, wrapped):
    # dB data under a wrong UNITS=linear tag; the sidecar's units correct it.
    tagged(tmp_path / "a.tif", orbit_pass="DESCENDING", rel_orbit="46", units="linear", data=np.stack([DB_DATA] * 2))
    rows = [{"file": "a.tif", "orbit_pass": "ASCENDING", "relative_orbit": 39, "units": "dB",
             "acquisition_start": "2018-09-06T08:35:12Z", "polarisations": ["VH", "VV"]}]
    (tmp_path / "scenes.json").write_text(json.dumps({"scenes": rows} if wrapped else rows), encoding="utf-8")
    s = only(read_catalog(tmp_path))
    assert s.track == ("ASCENDING", 39)
    assert s.units == "dB"
    assert s.acquisition_start == dt.datetime(2018, 9, 6, 8, 35, 12, tzinfo=UTC)
    assert s.bands == {"VH": BandRef(tmp_path / "a.tif", 1), "VV": BandRef(tmp_path / "a.tif", 2)}


def test_scenes_csv_wins_over_scenes_json(tmp_path):
    tagged(tmp_path / "a.tif", rel_orbit="46")
    (tmp_path / "scenes.csv").write_text("file,relative_orbit\na.tif,39\n", encoding="utf-8")
    (tmp_path / "scenes.json").write_text(json.dumps([{"file": "a.tif", "relative_orbit": 107}]), encoding="utf-8")
    assert only(read_catalog(tmp_path)).relative_orbit == 39


def test_sidecar_without_file_column_is_refused(tmp_path):
    tagged(tmp_path / "a.tif")
    (tmp_path / "scenes.csv").write_text("name,relative_orbit\na.tif,39\n", encoding="utf-8")
    with pytest.raises(CatalogError, match="'file' column"):
        read_catalog(tmp_path)


# --------------------------------------------------------------------------- skipped files


def test_untagged_unknown_name_is_skipped_with_reason(tmp_path):
    tagged(tmp_path / "good.tif")
    write_tif(tmp_path / "mystery.tif", DB_DATA)
    c = read_catalog(tmp_path)
    assert len(c.scenes) == 1
    assert [p.name for p, _ in c.skipped] == ["mystery.tif"]
    reason = c.skipped[0][1]
    assert "acquisition time" in reason and "ACQUISITION_START" in reason


def test_file_without_polarisation_is_skipped(tmp_path):
    write_tif(tmp_path / "twoband.tif", np.stack([DB_DATA, DB_DATA]),
              tags={"ACQUISITION_START": "2018-09-05T08:35:12Z", "ORBIT_PASS": "ASCENDING", "UNITS": "dB"})
    c = read_catalog(tmp_path)
    assert c.scenes == []
    assert "no polarisation" in c.skipped[0][1]


def test_corrupt_tif_is_skipped_and_the_others_load(tmp_path):
    tagged(tmp_path / "a.tif")
    tagged(tmp_path / "c.tif", when="2018-09-17T08:35:12Z")
    (tmp_path / "b.tif").write_bytes(np.random.default_rng(0).bytes(4096))
    c = read_catalog(tmp_path)
    assert len(c.scenes) == 2
    assert [p.name for p, _ in c.skipped] == ["b.tif"]
    assert "not a readable GeoTIFF" in c.skipped[0][1]


@pytest.mark.parametrize(
    "name, tags, fragment",
    [
        ("badorbit.tif", {"RELATIVE_ORBIT": "thirty-nine"}, "RELATIVE_ORBIT"),
        ("badpass.tif", {"ORBIT_PASS": "sideways"}, "neither ASCENDING nor DESCENDING"),
        ("badtime.tif", {"ACQUISITION_START": "yesterday"}, "ISO-8601"),
        ("badunits.tif", {"UNITS": "furlongs"}, "furlongs"),
        # A name that looks like an ESA product id but holds month 13.
        ("S1A_IW_GRDH_1SDV_20181305T083512_20181305T083537_023561_029117_8F1E.tif", {}, "20181305T083512"),
    ],
)
def test_bad_metadata_skips_that_file_only(tmp_path, name, tags, fragment):
    tagged(tmp_path / "good.tif")
    base = {"ACQUISITION_START": "2018-09-05T08:35:12Z", "ORBIT_PASS": "ASCENDING", "RELATIVE_ORBIT": "39",
            "UNITS": "dB"}
    if name.startswith("S1A"):
        base.pop("ACQUISITION_START")
    write_tif(tmp_path / name, np.stack([DB_DATA, DB_DATA]), descriptions=["VV", "VH"], tags={**base, **tags})
    c = read_catalog(tmp_path)
    assert len(c.scenes) == 1
    assert [p.name for p, _ in c.skipped] == [name]
    assert fragment in c.skipped[0][1]


def test_no_pass_and_no_georeferencing_is_skipped(tmp_path):
    write_tif(tmp_path / "nocrs.tif", np.stack([DB_DATA, DB_DATA]), crs=None, descriptions=["VV", "VH"],
              tags={"ACQUISITION_START": "2018-09-05T08:35:12Z", "UNITS": "dB"})
    c = read_catalog(tmp_path)
    assert c.scenes == []  # without a CRS it cannot be placed on the grid at all (it used to crash the run)
    assert "no coordinate reference system" in c.skipped[0][1]


def test_missing_or_empty_folder_is_refused(tmp_path):
    with pytest.raises(CatalogError, match="does not exist"):
        read_catalog(tmp_path / "nope")
    (tmp_path / "notes.txt").write_text("no rasters here")
    with pytest.raises(CatalogError, match="no GeoTIFF"):
        read_catalog(tmp_path)


# --------------------------------------------------------------------------- units guess


@pytest.mark.parametrize("positive_rows", [0, 8])
def test_negative_values_without_units_are_db_with_warning(tmp_path, positive_rows):
    rng = np.random.default_rng(1)
    data = (-13 + 2 * rng.standard_normal((2, 20, 20))).astype("float32")
    data[0, :positive_rows] = 3.0  # bright urban/layover pixels: 8 of 20 rows positive, 60% still negative
    tagged(tmp_path / "a.tif", units=None, data=data)
    c = read_catalog(tmp_path)
    assert only(c).units == "dB"
    (w,) = c.warnings
    expected = "100%" if positive_rows == 0 else "60%"
    assert "a.tif" in w and "assumed dB" in w and f"{expected} of values are negative" in w


def test_small_positive_values_without_units_are_linear_with_warning(tmp_path):
    rng = np.random.default_rng(2)
    data = rng.uniform(0.01, 0.3, (2, 20, 20)).astype("float32")
    tagged(tmp_path / "a.tif", units=None, data=data)
    c = read_catalog(tmp_path)
    assert only(c).units == "linear"
    (w,) = c.warnings
    assert "a.tif" in w and "assumed linear" in w


def test_large_positive_values_are_ambiguous_and_assumed_db(tmp_path):
    tagged(tmp_path / "a.tif", units=None, data=np.full((2, 20, 20), 5.0))
    c = read_catalog(tmp_path)
    assert only(c).units == "dB"
    assert "ambiguous" in c.warnings[0]


def test_units_guess_ignores_nodata(tmp_path):
    # Mostly nodata (0) with a few dB values: the nodata must not make it look linear.
    data = np.zeros((20, 20), dtype="float32")
    data[:5] = -11.0
    write_tif(tmp_path / "a_VH.tif", data, nodata=0.0,
              tags={"ACQUISITION_START": "2018-09-05T08:35:12Z", "ORBIT_PASS": "ASCENDING"})
    assert only(read_catalog(tmp_path)).units == "dB"


# --------------------------------------------------------------------------- pass from solar time


def _x_at(lon, lat=43.0):
    xs, ys = warp_transform("EPSG:4326", "EPSG:32654", [lon], [lat])
    return xs[0] - 100, ys[0] + 100  # origin such that the 200 m tile is centred on (lon, lat)


@pytest.mark.parametrize(
    "when, expected",
    [
        # 08:28 UTC at 142 E: 8.467 + 142/15 = 8.467 + 9.467 = 17.93 h (~17:56) local -> evening -> ASCENDING.
        ("2018-09-05T08:28:00Z", "ASCENDING"),
        # 20:12 UTC at 142 E: 20.2 + 9.467 = 29.67 - 24 = 5.67 h (~05:40) local -> morning -> DESCENDING.
        ("2018-09-05T20:12:00Z", "DESCENDING"),
    ],
)
def test_pass_inferred_from_local_solar_time_with_warning(tmp_path, when, expected):
    x0, y0 = _x_at(142.0)
    write_tif(tmp_path / "s_VH.tif", DB_DATA, x0=x0, y0=y0,
              tags={"ACQUISITION_START": when, "RELATIVE_ORBIT": "39", "UNITS": "dB"})
    c = read_catalog(tmp_path)
    assert only(c).orbit_pass == expected
    (w,) = c.warnings
    assert "orbit pass not stated" in w and f"inferred {expected}" in w


def test_pass_from_solar_time_wraps_west_of_greenwich(tmp_path):
    # 02:00 UTC at 100 W: 2 - 100/15 = 2 - 6.67 = -4.67 h -> 19.33 h local -> ASCENDING.
    write_tif(tmp_path / "s_VH.tif", DB_DATA, crs="EPSG:4326", x0=-100.001, y0=40.001, res=0.0001,
              tags={"ACQUISITION_START": "2018-09-05T02:00:00Z", "UNITS": "dB"})
    assert only(read_catalog(tmp_path)).orbit_pass == "ASCENDING"
    # 14:00 UTC there: 14 - 6.67 = 7.33 h local -> DESCENDING.
    assert cat._pass_from_solar_time(dt.datetime(2018, 9, 5, 14, tzinfo=UTC), -100.0) == "DESCENDING"


def test_parse_time_forms():
    assert cat.parse_time("20180905T083512") == dt.datetime(2018, 9, 5, 8, 35, 12, tzinfo=UTC)
    assert cat.parse_time("2018-09-06T03:08Z") == dt.datetime(2018, 9, 6, 3, 8, tzinfo=UTC)
    assert cat.parse_time("2018-09-06") == dt.datetime(2018, 9, 6, tzinfo=UTC)
    for bad in ("06/09/2018", "20181345T000000", ""):
        with pytest.raises(CatalogError):
            cat.parse_time(bad)


# --------------------------------------------------------------------------- select_stacks

EVENT = dt.datetime(2018, 9, 6, 3, 8, tzinfo=UTC)  # Hokkaido Eastern Iburi earthquake, 03:08 UTC


def scene(days, orbit_pass="ASCENDING", rel=39, pols=("VV", "VH")):
    """A scene ``days`` after the event (negative = before)."""
    t = (EVENT + dt.timedelta(days=days)).replace(microsecond=0)
    p = Path(f"/data/{orbit_pass[:3]}_{rel}_{t:%Y%m%dT%H%M%S}.tif")
    return Scene(scene_id=f"{orbit_pass[:3]}_R{rel}_{t:%Y%m%dT%H%M%S}", acquisition_start=t, orbit_pass=orbit_pass,
                 relative_orbit=rel, units="dB", bands={pol: BandRef(p, i + 1) for i, pol in enumerate(pols)})


def days_of(scenes):
    return [round((s.acquisition_start - EVENT).total_seconds() / 86400, 3) for s in scenes]


def test_default_windows_pick_pre_and_post_per_track():
    scenes = [scene(d) for d in (-100, -24, -12, -0.5, 5, 17, 31)] + [scene(d, "DESCENDING", 46) for d in (-20, 9)]
    sel = select_stacks(scenes[::-1], EVENT)  # input order must not matter
    asc, desc = ("ASCENDING", 39), ("DESCENDING", 46)
    # pre window [event - 90 d, event): -100 is too old; post window (event, event + 30 d]: 31 is too late.
    assert days_of(sel.pre[asc]) == [-24, -12, -0.5]
    assert days_of(sel.post[asc]) == [5, 17]
    assert days_of(sel.pre[desc]) == [-20] and days_of(sel.post[desc]) == [9]
    assert sel.tracks() == [asc, desc]
    assert sel.passes() == ["ASCENDING", "DESCENDING"]
    assert sel.pre_range[0] == EVENT - dt.timedelta(days=90)
    assert sel.post_range[1] == EVENT + dt.timedelta(days=30)
    d = sel.to_dict()
    assert d["event_time"] == "2018-09-06T03:08:00Z"
    assert [t["relative_orbit"] for t in d["pre"]] == [39, 46]


def test_pre_days_post_days_change_the_windows():
    scenes = [scene(d) for d in (-24, -12, 5, 17)]
    sel = select_stacks(scenes, EVENT, pre_days=13, post_days=6)
    assert days_of(sel.pre[("ASCENDING", 39)]) == [-12]
    assert days_of(sel.post[("ASCENDING", 39)]) == [5]


def test_explicit_ranges_are_inclusive_and_replace_the_windows():
    scenes = [scene(d) for d in (-200, -150, -12, 5, 60)]
    pre = (scenes[0].acquisition_start, scenes[1].acquisition_start)  # exactly the two old scenes
    post = (scenes[4].acquisition_start, scenes[4].acquisition_start + dt.timedelta(days=1))
    sel = select_stacks(scenes, EVENT, pre_range=pre, post_range=post)
    assert days_of(sel.pre[("ASCENDING", 39)]) == [-200, -150]
    assert days_of(sel.post[("ASCENDING", 39)]) == [60]
    assert sel.pre_range == pre and sel.post_range == post


def test_refuses_when_every_scene_predates_the_event():
    with pytest.raises(CatalogError, match="add post-event scenes") as err:
        select_stacks([scene(-24), scene(-12)], EVENT)
    assert "2018-08-13" in str(err.value)  # the span of the scenes is shown (event - 24 d = 13 Aug)


def test_refuses_when_the_event_predates_every_scene():
    with pytest.raises(CatalogError, match="add pre-event scenes"):
        select_stacks([scene(5), scene(17)], EVENT)


def test_refuses_when_scenes_straddle_but_fall_outside_the_windows():
    with pytest.raises(CatalogError, match="widen"):
        select_stacks([scene(-200), scene(100)], EVENT)


def test_refuses_an_explicit_pre_range_past_the_event():
    with pytest.raises(CatalogError, match="pre-event range ends 2018-09-07T00:00:00Z"):
        select_stacks([scene(-12), scene(5)], EVENT,
                      pre_range=(EVENT - dt.timedelta(days=30), dt.datetime(2018, 9, 7, tzinfo=UTC)))
    with pytest.raises(CatalogError, match="at or after the event"):
        select_stacks([scene(-12), scene(5)], EVENT, pre_range=(EVENT - dt.timedelta(days=30), EVENT))


def test_refuses_an_explicit_post_range_before_the_event():
    with pytest.raises(CatalogError, match="post-event range starts"):
        select_stacks([scene(-12), scene(5)], EVENT,
                      post_range=(EVENT - dt.timedelta(days=1), EVENT + dt.timedelta(days=9)))


def test_refuses_when_no_scene_has_the_polarisation():
    scenes = [scene(-12, pols=("VV",)), scene(5, pols=("VV",))]
    with pytest.raises(CatalogError, match=r"no scene holds polarisation\(s\) VH.*\['VV'\]"):
        select_stacks(scenes, EVENT, polarisations=("VH",))
    # VV alone works.
    assert select_stacks(scenes, EVENT, polarisations=("VV",)).tracks() == [("ASCENDING", 39)]


def test_scenes_lacking_a_polarisation_are_left_out():
    scenes = [scene(-12), scene(-24, pols=("VV",)), scene(5)]
    sel = select_stacks(scenes, EVENT, polarisations=("VV", "VH"))
    assert days_of(sel.pre[("ASCENDING", 39)]) == [-12]


def test_refuses_naive_event_time_and_no_scenes():
    with pytest.raises(CatalogError, match="time zone"):
        select_stacks([scene(-12), scene(5)], EVENT.replace(tzinfo=None))
    with pytest.raises(CatalogError, match="no usable scene"):
        select_stacks([], EVENT)


def test_tracks_exclude_a_track_with_only_pre_scenes_and_summary_says_so():
    scenes = [scene(-24), scene(-12), scene(5)] + [scene(-20, "DESCENDING", 46)]
    sel = select_stacks(scenes, EVENT)
    assert sel.tracks() == [("ASCENDING", 39)]
    assert sel.passes() == ["ASCENDING"]
    lines = sel.summary_lines()
    assert len(lines) == 2
    asc, desc = lines
    # Event 2018-09-06: -24 d = 2018-08-13, -12 d = 2018-08-25, +5 d = 2018-09-11, -20 d = 2018-08-17.
    assert asc.startswith("ASCENDING") and "relative orbit  39" in asc
    assert "2 pre [2018-08-13, 2018-08-25]" in asc and "1 post [2018-09-11]" in asc and "not used" not in asc
    assert desc.startswith("DESCENDING") and "1 pre [2018-08-17]" in desc and "0 post []" in desc
    assert "not used" in desc


# --------------------------------------------------------------------------- OPERA RTC-S1, bursts, bad input
# The OPERA files below are cut from the shipped REAL fixture (tests/fixtures/opera_rtc_s1_t137: real OPERA RTC-S1
# backscatter, no event) or are tiny constant rasters given OPERA names; which is which is said at each test.

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "opera_rtc_s1_t137"  # one sub-folder per burst
B20 = "T137-292320-IW2"


def opera_name(burst=B20, start="20231203T015911", production="20231203T124004", pol="VH", sensor="S1A",
               version="1.0", spacing=30):
    return f"OPERA_L2_RTC-S1_{burst}_{start}Z_{production}Z_{sensor}_{spacing}_v{version}_{pol}.tif"


def fixture_file(date, pol="VH", burst=B20):
    (path,) = FIXTURE.glob(f"{burst}/OPERA_L2_RTC-S1_{burst}_{date}T*_{pol}.tif")
    return path


def write_like(src_path, dst_path, rows=slice(None), cols=slice(None), tags=None):
    """Write rows/cols of a REAL fixture file to ``dst_path`` (same CRS, 30 m lattice); return the array written."""
    with rasterio.open(src_path) as src:
        data = src.read(1)[rows, cols]
        r0, c0 = rows.start or 0, cols.start or 0
        transform = src.window_transform(rasterio.windows.Window(c0, r0, data.shape[1], data.shape[0]))
        profile = dict(src.profile, width=data.shape[1], height=data.shape[0], transform=transform)
    with rasterio.open(dst_path, "w", **profile) as dst:
        dst.write(data, 1)
        if tags:
            dst.update_tags(**tags)
    return data


def constant_opera(folder, name, value=0.03, *, x0=242070.0, y0=3835110.0, size=10, res=30.0, tags=None):
    """A small constant linear-power raster with an OPERA name in UTM 11N (over the fixture's area)."""
    return write_tif(folder / name, np.full((size, size), value, np.float32), crs="EPSG:32611", x0=x0, y0=y0,
                     res=res, tags=tags)


def test_opera_bursts_cut_from_one_real_crop_are_one_scene_and_mosaic_back_to_it(tmp_path):
    from landslide_sar_plugin.core.detect import open_stack_readers
    from landslide_sar_plugin.core.grid import Grid

    # REAL data: each fixture crop (100 x 100 px) is cut into rows 0-59 and rows 40-99 (20 rows of overlap),
    # written as two different bursts of the same acquisition starting 3 s apart, for 3 dates.
    dates = {"20231109": ("015911", "015914"), "20231121": ("015911", "015914"), "20231203": ("015911", "015914")}
    originals = {}
    for date, (t_a, t_b) in dates.items():
        src = fixture_file(date)
        with rasterio.open(src) as s:
            originals[date] = s.read(1)
            grid = Grid(s.crs, s.transform, s.width, s.height)
        write_like(src, tmp_path / opera_name("T137-292320-IW2", f"{date}T{t_a}"), rows=slice(0, 60))
        write_like(src, tmp_path / opera_name("T137-292321-IW2", f"{date}T{t_b}"), rows=slice(40, 100))
    c = read_catalog(tmp_path)
    assert len(c.scenes) == 3 and c.skipped == []  # one scene per date, not two
    for s in c.scenes:
        assert s.bursts == ("T137-292320-IW2", "T137-292321-IW2") and len(s.bands["VH"].pieces()) == 2
    event = dt.datetime(2023, 11, 25, tzinfo=UTC)
    sel = select_stacks(c.scenes, event)
    readers = {}
    refs = open_stack_readers(sel, sel.tracks(), ("VH",), grid, readers)
    try:
        got = [reader.read(next(grid.blocks(512))) for reader, _ in
               refs[("ASCENDING", 137)]["pre"]["VH"] + refs[("ASCENDING", 137)]["post"]["VH"]]
        assert {units for _, units in refs[("ASCENDING", 137)]["pre"]["VH"]} == {"linear"}
    finally:
        for r in readers.values():
            r.close()
    for date, mosaic in zip(sorted(dates), got):
        # Rows 40-59 are the mean of two equal values; elsewhere the one piece: the original everywhere.
        np.testing.assert_array_equal(mosaic, originals[date])


def test_opera_tags_of_a_renamed_full_product_are_read(tmp_path):
    # Synthetic constant raster carrying the tags of a full OPERA RTC-S1 product, under a user's own name.
    tags = {"PRODUCT_TYPE": "RTC-S1", "ZERO_DOPPLER_START_TIME": "2023-12-03T01:59:11.5Z",
            "ORBIT_PASS_DIRECTION": "ascending", "TRACK_NUMBER": "137", "PLATFORM": "Sentinel-1A",
            "BURST_ID": "t137_292320_iw2",
            "PROCESSING_INFORMATION_OUTPUT_BACKSCATTER_EXPRESSION_CONVENTION": "linear backscatter intensity"}
    constant_opera(tmp_path, "my_burst_VH.tif", tags=tags)
    c = read_catalog(tmp_path)
    s = only(c)
    assert s.acquisition_start == dt.datetime(2023, 12, 3, 1, 59, 11, tzinfo=UTC)
    assert s.track == ("ASCENDING", 137) and s.units == "linear" and s.bursts == ("T137-292320-IW2",)
    assert s.product == "OPERA RTC-S1" and s.platform == "S1A"
    assert c.warnings == []  # the pass came from the tag: no solar-time guess


def test_opera_mask_and_static_layers_are_skipped_with_a_reason(tmp_path):
    constant_opera(tmp_path, opera_name(pol="VH"))
    constant_opera(tmp_path, opera_name(pol="mask"))
    constant_opera(tmp_path, "OPERA_L2_RTC-S1-STATIC_T137-292320-IW2_20140403_S1A_30_v1.0_local_incidence_angle.tif")
    c = read_catalog(tmp_path)
    assert len(c.scenes) == 1
    reasons = {p.name: why for p, why in c.skipped}
    assert "mask layer, not a backscatter polarisation" in reasons[opera_name(pol="mask")]
    assert any("RTC-S1-STATIC layer" in why for why in reasons.values())


def test_opera_missing_polarisation_partner_is_named(tmp_path):
    # Synthetic constant rasters with OPERA names: VV+VH on two dates, VH alone on the third.
    for start in ("20231109T015911", "20231121T015911", "20231203T015911"):
        constant_opera(tmp_path, opera_name(start=start, pol="VH"))
        if start != "20231121T015911":
            constant_opera(tmp_path, opera_name(start=start, pol="VV"))
    c = read_catalog(tmp_path)
    assert len(c.scenes) == 3
    (w,) = [w for w in c.warnings if "partner" in w]
    assert w.startswith(opera_name(start="20231121T015911", pol="VH"))
    assert "no VV partner" in w and "burst T137-292320-IW2" in w and "2023-11-21" in w
    assert sorted(c.scenes[1].bands) == ["VH"]


def test_vh_only_opera_folder_warns_about_no_partner(tmp_path):
    for start in ("20231109T015911", "20231121T015911"):
        constant_opera(tmp_path, opera_name(start=start, pol="VH"))
    assert not any("partner" in w for w in read_catalog(tmp_path).warnings)


def test_opera_duplicate_keeps_the_later_production_and_says_why(tmp_path):
    # Synthetic: the same burst, polarisation and start, produced twice (a reprocessing).
    old, new = opera_name(production="20231203T124004"), opera_name(production="20250830T120333")
    constant_opera(tmp_path, old, 0.02)
    constant_opera(tmp_path, new, 0.03)
    c = read_catalog(tmp_path)
    s = only(c)
    assert s.bands["VH"].pieces() == [BandRef(tmp_path / new, 1)]
    ((path, why),) = c.skipped
    assert path.name == old
    assert f"duplicate of {new}" in why and "burst T137-292320-IW2" in why
    assert "later production (2025-08-30T12:03:33Z)" in why


def test_duplicate_tagged_files_use_one_and_say_which(tmp_path):
    # Two tagged VV+VH files of one acquisition covering the same ground: one is used, the other is skipped;
    # before, the second was silently dropped.
    tagged(tmp_path / "a.tif")
    tagged(tmp_path / "b.tif")
    c = read_catalog(tmp_path)
    s = only(c)
    assert s.bands["VH"].pieces() == [BandRef(tmp_path / "a.tif", 2)]
    ((path, why),) = c.skipped
    assert path.name == "b.tif" and "duplicate of a.tif" in why and "first in name order" in why


def test_partial_duplicate_is_a_warning_naming_the_file(tmp_path):
    # a.tif holds VV+VH; big_VH.tif holds VH of the same acquisition over more ground: it wins VH, a.tif keeps VV.
    tagged(tmp_path / "a.tif")
    write_tif(tmp_path / "big_VH.tif", np.full((30, 30), -12.0, np.float32),
              tags={"ACQUISITION_START": "2018-09-05T08:35:12Z", "ORBIT_PASS": "ASCENDING", "RELATIVE_ORBIT": "39",
                    "UNITS": "dB"})
    c = read_catalog(tmp_path)
    s = only(c)
    assert s.bands["VH"].pieces() == [BandRef(tmp_path / "big_VH.tif", 1)]
    assert s.bands["VV"].pieces() == [BandRef(tmp_path / "a.tif", 1)]
    assert c.skipped == []
    assert any(w.startswith("a.tif: duplicate of big_VH.tif") and "covers more ground" in w for w in c.warnings)


def test_tiles_of_one_acquisition_are_pieces_not_duplicates(tmp_path):
    # Two tagged tiles of one acquisition side by side (same start time, different ground): one scene, two pieces.
    tagged(tmp_path / "west.tif")
    tagged(tmp_path / "east.tif")
    with rasterio.open(tmp_path / "east.tif", "r+") as dst:
        dst.transform = from_origin(X0 + 200, Y0, 10, 10)
    c = read_catalog(tmp_path)
    s = only(c)
    assert c.skipped == [] and len(s.bands["VH"].pieces()) == 2


def test_esa_frames_of_one_acquisition_are_one_scene(tmp_path):
    # Two consecutive GRD slices of one data take (start 25 s apart) are one acquisition; 12 days later is another.
    frames = ["S1A_IW_GRDH_1SDV_20180905T083512_20180905T083537_023561_029117_8F1E.tif",
              "S1A_IW_GRDH_1SDV_20180905T083537_20180905T083602_023561_029117_1A2B.tif",
              "S1A_IW_GRDH_1SDV_20180917T083512_20180917T083537_023736_029680_0C0C.tif"]
    for k, name in enumerate(frames):
        write_tif(tmp_path / name, np.stack([DB_DATA, DB_DATA]), descriptions=["VV", "VH"], y0=Y0 - 150 * (k % 2),
                  tags={"ORBIT_PASS": "ASCENDING", "UNITS": "dB"})
    c = read_catalog(tmp_path)
    assert len(c.scenes) == 2
    first = c.scenes[0]
    assert first.acquisition_start == dt.datetime(2018, 9, 5, 8, 35, 12, tzinfo=UTC)
    assert [p.path.name for p in first.bands["VV"].pieces()] == frames[:2]
    assert first.product == "ESA GRD"


def test_burst_of_another_track_is_its_own_track_and_is_named(tmp_path):
    # Synthetic constant rasters with OPERA names: three dates of track 137 and two of track 64 (descending).
    for start in ("20231109T015911", "20231121T015911", "20231203T015911"):
        constant_opera(tmp_path, opera_name(start=start))
    for start in ("20231110T135000", "20231122T135000"):
        constant_opera(tmp_path, opera_name(burst="T064-135000-IW1", start=start))
    c = read_catalog(tmp_path)
    assert {s.track for s in c.scenes} == {("ASCENDING", 137), ("DESCENDING", 64)}  # 13:50 UTC at 120 W: ~05:50
    (note,) = [w for w in c.warnings if "tracks" in w]
    assert "2 tracks" in note and "track 64 descending (T064-135000-IW1: 2 files, e.g. OPERA_L2_RTC-S1_T064" in note
    assert "never mixed" in note
    sel = select_stacks(c.scenes, dt.datetime(2023, 11, 15, tzinfo=UTC))
    lines = sel.summary_lines()
    assert len(lines) == 2 and all("OPERA RTC-S1" in line for line in lines)
    assert any("relative orbit  64" in line and "burst T064-135000-IW1" in line for line in lines)


def test_product_types_per_file(tmp_path):
    tagged(tmp_path / "tagged.tif")
    tagged(tmp_path / "sim.tif", when="2018-09-17T08:35:12Z", SYNTHETIC="true")
    write_tif(tmp_path / HYP3_VH, LIN_DATA, tags={"ORBIT_PASS": "ASCENDING"})
    write_tif(tmp_path / "export.tif", np.stack([DB_DATA, DB_DATA]))
    (tmp_path / "scenes.csv").write_text("file,acquisition_start,orbit_pass,relative_orbit,units,polarisations\n"
                                         "export.tif,2018-09-29T08:35:12Z,ASC,39,dB,VV;VH\n", encoding="utf-8")
    products = {Path(f).name: kind for s in read_catalog(tmp_path).scenes
                for f, kind in s.to_dict()["file_products"].items()}
    assert products == {"tagged.tif": "tagged GeoTIFF", "sim.tif": "simulated (SYNTHETIC)",
                        HYP3_VH: "ASF HyP3 RTC", "export.tif": "GeoTIFF + scenes sidecar"}


def test_missing_polarisation_says_what_to_choose():
    scenes = [scene(-12, pols=("VH",)), scene(5, pols=("VH",))]
    with pytest.raises(CatalogError, match=r"none holds VV: choose a polarisation they hold \(--polarisation VH"):
        select_stacks(scenes, EVENT, polarisations=("VV", "VH"))
    assert select_stacks(scenes, EVENT, polarisations=("VH",)).tracks() == [("ASCENDING", 39)]


def test_real_fixture_dates_all_before_the_event_say_what_to_change():
    c = read_catalog(FIXTURE / B20)  # REAL OPERA fixture, one burst: 21 dates, the last on 2025-01-02
    with pytest.raises(CatalogError) as err:
        select_stacks(c.scenes, dt.datetime(2025, 6, 1, tzinfo=UTC))
    first_line = str(err.value).splitlines()[0]
    assert "every scene predates the event: add post-event scenes (acquired after 2025-06-01)" in first_line
    assert "check --event (the last scene is of 2025-01-02)" in first_line
    with pytest.raises(CatalogError, match=r"add pre-event scenes \(acquired before 2020-01-01\)"):
        select_stacks(c.scenes, dt.datetime(2020, 1, 1, tzinfo=UTC))
    # Between the 2023 and 2025 dates: no scene in the 90/30-day windows; the gaps are given, in whole days up.
    # 2023-12-27T01:59 -> 2024-05-04T00:00 is 31+31+29+31+7 = 129 days less 2 h -> 129;
    # 2024-05-04 -> 2025-01-02T01:59 is 245 - 2 = 243 days and 2 h -> 244.
    with pytest.raises(CatalogError, match=r"nearest scenes are 129 days before and 244 days after"):
        select_stacks(c.scenes, dt.datetime(2024, 5, 4, tzinfo=UTC))


# --------------------------------------------------------------------------- plausibility and sidecar errors


@pytest.mark.parametrize("units, data, dtype, fragment", [
    ("dB", LIN_DATA, "float32", "look like linear power"),
    ("dB", np.full((20, 20), 3e4), "float32", "not backscatter in dB"),
    ("dB", np.full((20, 20), 12), "uint8", "8-bit integers"),
    ("linear", DB_DATA, "float32", "look like dB"),
    ("amplitude", np.full((20, 20), 5000.0), "float32", "digital numbers"),
])
def test_implausible_values_for_the_stated_units_skip_the_file(tmp_path, units, data, dtype, fragment):
    tagged(tmp_path / "good.tif")
    path = tmp_path / "bad.tif"
    with rasterio.open(path, "w", driver="GTiff", width=20, height=20, count=2, dtype=dtype, crs="EPSG:32654",
                       transform=from_origin(X0, Y0, 10, 10)) as dst:
        dst.write(np.stack([data, data]).astype(dtype))
        dst.descriptions = ("VV", "VH")
        dst.update_tags(ACQUISITION_START="2018-09-17T08:35:12Z", ORBIT_PASS="ASCENDING", RELATIVE_ORBIT="39",
                        UNITS=units)
    c = read_catalog(tmp_path)
    assert len(c.scenes) == 1 and [p.name for p, _ in c.skipped] == ["bad.tif"]
    assert fragment in c.skipped[0][1] and "UNITS tag" in c.skipped[0][1]


def test_a_wrong_units_column_in_the_sidecar_names_the_sidecar(tmp_path):
    tagged(tmp_path / "a.tif")
    (tmp_path / "scenes.csv").write_text("file,units\na.tif,linear\n", encoding="utf-8")
    c = read_catalog(tmp_path)
    assert c.scenes == [] and "the scenes sidecar says linear" in c.skipped[0][1]


@pytest.mark.parametrize("value", ["inf", "nan", "1e400", "0", "176", "39.5"])
def test_relative_orbit_out_of_range_in_a_tag_or_the_sidecar(tmp_path, value):
    tagged(tmp_path / "good.tif")
    tagged(tmp_path / "t.tif", rel_orbit=value)
    c = read_catalog(tmp_path)
    assert [p.name for p, _ in c.skipped] == ["t.tif"]
    reason = c.skipped[0][1]
    assert "RELATIVE_ORBIT tag" in reason and ("1 to 175" in reason or "not a number" in reason)
    (tmp_path / "scenes.csv").write_text(f"file,relative_orbit\ngood.tif,{value}\n", encoding="utf-8")
    with pytest.raises(CatalogError, match=r"scenes.csv, row good.tif: relative_orbit"):
        read_catalog(tmp_path)


@pytest.mark.parametrize("content", ['{"scenes": {"file": "a.tif"}}', '["a.tif"]', "42", '{"file": "a.tif"}',
                                     "{not json"])
def test_scenes_json_of_the_wrong_shape_is_one_sentence(tmp_path, content):
    tagged(tmp_path / "a.tif")
    (tmp_path / "scenes.json").write_text(content, encoding="utf-8")
    with pytest.raises(CatalogError, match=r"scenes.json (must hold a list of objects|is not valid JSON)"):
        read_catalog(tmp_path)
