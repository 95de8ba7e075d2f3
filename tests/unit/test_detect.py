"""The A_ratio run on small hand-built scenes whose answer is known exactly, and its failure modes."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from landslide_sar_plugin import cli
from landslide_sar_plugin.core import gpkg
from landslide_sar_plugin.core.detect import DetectionError, DetectParams, run_detection
from landslide_sar_plugin.core.staging import MANIFEST_NAME

CRS = "EPSG:32654"
X0, Y0, PX = 500000.0, 4700000.0, 10.0
N = 64
EVENT = dt.datetime(2018, 9, 6, 3, 0, tzinfo=dt.timezone.utc)
SQUARE = (slice(20, 30), slice(30, 40))  # 10 x 10 px = 10,000 m2


def write_scene(folder: Path, when: dt.datetime, orbit_pass: str, vh_db: np.ndarray, *, units="dB", tags=True,
                crs=CRS, transform=None, name=None, rel_orbit=None) -> Path:
    rel_orbit = rel_orbit or (68 if orbit_pass == "ASCENDING" else 46)
    vv_db = vh_db + 6.0
    data = np.stack([vv_db, vh_db]).astype("float32")
    if units == "linear":
        data = (10 ** (data / 10)).astype("float32")
    name = name or f"scene_{orbit_pass[:3]}_{when:%Y%m%dT%H%M%S}.tif"
    path = folder / name
    transform = transform or from_origin(X0, Y0, PX, PX)
    with rasterio.open(path, "w", driver="GTiff", width=data.shape[2], height=data.shape[1], count=2,
                       dtype="float32", crs=crs, transform=transform, nodata=float("nan")) as dst:
        dst.write(data)
        dst.set_band_description(1, "VV")
        dst.set_band_description(2, "VH")
        if tags:
            dst.update_tags(ACQUISITION_START=when.strftime("%Y-%m-%dT%H:%M:%SZ"), ORBIT_PASS=orbit_pass,
                            RELATIVE_ORBIT=str(rel_orbit), UNITS=units)
    return path


def write_dem(path: Path, slope_deg: float = 30.0, size=N, px=PX, x0=X0, y0=Y0, crs=CRS) -> Path:
    """A plane dipping east at ``slope_deg``: no curvature, uniform slope."""
    cols = np.arange(size) * px
    z = 1000.0 - np.tan(np.radians(slope_deg)) * cols[np.newaxis, :].repeat(size, 0)
    with rasterio.open(path, "w", driver="GTiff", width=size, height=size, count=1, dtype="float32", crs=crs,
                       transform=from_origin(x0, y0, px, px)) as dst:
        dst.write(z.astype("float32"), 1)
    return path


@pytest.fixture
def scene_dir(tmp_path):
    """3 pre and 2 post acquisitions per pass; VH drops by 4 dB inside SQUARE after the event."""
    folder = tmp_path / "scenes"
    folder.mkdir()
    base = np.full((N, N), -15.0, np.float32)
    for orbit_pass, hour in (("ASCENDING", 8), ("DESCENDING", 20)):
        for k in range(3):
            write_scene(folder, EVENT - dt.timedelta(days=12 * (k + 1), hours=3 - hour), orbit_pass, base)
        post = base.copy()
        post[SQUARE] = -19.0
        for k in range(2):
            write_scene(folder, EVENT + dt.timedelta(days=12 * k + 2, hours=hour), orbit_pass, post)
    write_dem(tmp_path / "dem.tif")
    return folder


def params(**kw) -> DetectParams:
    # The mechanics under test, not the product's defaults: no smoothing, no detrend, one polarisation.
    base = dict(event_time=EVENT, speckle_sigma_m=0.0, curv_min=None, slope_min_deg=10.0, threshold_db=2.0,
                percentile=None, min_area_m2=0.0, block_size=64, polarisation="VH", ratio_sigma_m=0.0,
                ratio_radius_m=0.0, detrend_radius_m=0.0)
    base.update(kw)
    return DetectParams(**base)


def read(path):
    with rasterio.open(path) as src:
        return src.read(1), src.profile, src.tags()


def test_square_drop_gives_one_exact_candidate(scene_dir, tmp_path):
    out = tmp_path / "out"
    res = run_detection(scene_dir, tmp_path / "dem.tif", out, params())
    ratio, profile, tags = read(res.files["a_ratio"])
    assert profile["crs"].to_string() == CRS and (profile["width"], profile["height"]) == (N, N)
    # 4 dB inside the square, 0 elsewhere; the DEM edge (slope undefined) is masked.
    np.testing.assert_allclose(ratio[SQUARE], 4.0, atol=1e-5)
    inner = ratio[2:-2, 2:-2].copy()
    inner[SQUARE[0].start - 2:SQUARE[0].stop - 2, SQUARE[1].start - 2:SQUARE[1].stop - 2] = 0
    np.testing.assert_allclose(inner, 0.0, atol=1e-5)
    feats, crs = gpkg.read_features(res.files["candidates"])
    assert crs == CRS and len(feats) == 1
    p = feats[0].properties
    assert p["area_m2"] == pytest.approx(10_000.0)
    assert p["mean_score"] == pytest.approx(4.0) and p["max_score"] == pytest.approx(4.0)
    assert (p["method"], p["status"], p["threshold"], p["id"]) == ("a_ratio", "proposed", 2.0, 1)
    assert p["event_id"] == "event_20180906T0300"
    counts, _, _ = read(res.files["counts"])
    with rasterio.open(res.files["counts"]) as src:
        assert src.descriptions == ("ascending_pre", "ascending_post", "descending_pre", "descending_post")
        c = src.read()
    assert (c[0] == 3).all() and (c[1] == 2).all() and (c[2] == 3).all() and (c[3] == 2).all()
    exceed, _, _ = read(res.files["exceedance"])
    assert exceed[SQUARE].min() == 1 and int((exceed == 1).sum()) == 100
    run = json.loads((out / "run.json").read_text())
    assert run["threshold_db"] == 2.0 and run["n_candidates"] == 1
    assert {s["orbit_pass"] for s in run["stacks"]["pre"]} == {"ASCENDING", "DESCENDING"}
    assert run["versions"]["rasterio"] == rasterio.__version__
    # The manifest is the run's hidden record (staging.MANIFEST_NAME); nothing else hidden may stay.
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == [MANIFEST_NAME], "staging files left behind"


def test_outputs_are_cloud_optimised_and_compressed(scene_dir, tmp_path):
    res = run_detection(scene_dir, tmp_path / "dem.tif", tmp_path / "out", params())
    with rasterio.open(res.files["a_ratio"]) as src:
        assert src.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
        assert src.compression.name.lower() == "deflate"


def test_min_area_drops_small_polygons_and_percentile_is_exact(scene_dir, tmp_path):
    res = run_detection(scene_dir, tmp_path / "dem.tif", tmp_path / "o1", params(min_area_m2=10_001.0))
    assert res.n_candidates == 0
    res = run_detection(scene_dir, tmp_path / "dem.tif", tmp_path / "o2",
                        params(threshold_db=None, percentile=90.0))
    ratio, _, _ = read(res.files["a_ratio"])
    assert res.threshold_db == float(np.percentile(ratio[np.isfinite(ratio)], 90.0))


def test_slope_mask_removes_flat_terrain(scene_dir, tmp_path):
    write_dem(tmp_path / "flat.tif", slope_deg=5.0)
    with pytest.raises(DetectionError, match="no valid A_ratio pixel"):
        run_detection(scene_dir, tmp_path / "flat.tif", tmp_path / "out", params(slope_min_deg=10.0))
    assert not (tmp_path / "out" / "a_ratio.tif").exists()
    res = run_detection(scene_dir, tmp_path / "flat.tif", tmp_path / "out", params(slope_min_deg=None))
    assert res.n_candidates == 1


def test_missing_pass_uses_the_other_pass(scene_dir, tmp_path):
    for p in scene_dir.glob("scene_DES*"):
        p.unlink()
    res = run_detection(scene_dir, tmp_path / "dem.tif", tmp_path / "out", params())
    assert res.selection.passes() == ["ASCENDING"]
    assert "a_ratio_descending" not in res.files
    ratio, _, _ = read(res.files["a_ratio"])
    np.testing.assert_allclose(ratio[SQUARE], 4.0, atol=1e-5)


def test_mixed_db_and_linear_scenes_give_the_same_ratio(scene_dir, tmp_path):
    ref = run_detection(scene_dir, tmp_path / "dem.tif", tmp_path / "ref", params())
    for p in sorted(scene_dir.glob("scene_ASC*"))[:2]:
        with rasterio.open(p) as src:
            when = src.tags()["ACQUISITION_START"]
            vh = src.read(2)
        p.unlink()
        write_scene(scene_dir, dt.datetime.fromisoformat(when.replace("Z", "+00:00")), "ASCENDING", vh,
                    units="linear")
    res = run_detection(scene_dir, tmp_path / "dem.tif", tmp_path / "mixed", params())
    np.testing.assert_allclose(read(res.files["a_ratio"])[0], read(ref.files["a_ratio"])[0], atol=1e-4,
                               equal_nan=True)


def test_scene_in_another_crs_and_pixel_size_is_warped(scene_dir, tmp_path):
    # Replace one pre scene by the same constant field at 20 m in the neighbouring UTM zone (53N).
    from rasterio.warp import transform_bounds

    victim = sorted(scene_dir.glob("scene_ASC*"))[0]
    with rasterio.open(victim) as src:
        when = dt.datetime.fromisoformat(src.tags()["ACQUISITION_START"].replace("Z", "+00:00"))
    victim.unlink()
    left, bottom, right, top = transform_bounds(CRS, "EPSG:32653", X0 - 200, Y0 - N * PX - 200, X0 + N * PX + 200,
                                                Y0 + 200)
    size = int(max(right - left, top - bottom) // 20) + 2
    write_scene(scene_dir, when, "ASCENDING", np.full((size, size), -15.0, np.float32), crs="EPSG:32653",
                transform=from_origin(left, top, 20, 20), name="other_crs.tif")
    res = run_detection(scene_dir, tmp_path / "dem.tif", tmp_path / "out", params())
    ratio, _, _ = read(res.files["a_ratio"])
    np.testing.assert_allclose(ratio[SQUARE], 4.0, atol=1e-4)
    assert res.n_candidates == 1


def test_aoi_polygon_masks_outside_pixels(scene_dir, tmp_path):
    from landslide_sar_plugin.core.grid import parse_aoi

    aoi_file = tmp_path / "aoi.geojson"
    x_left = X0 + 35 * PX  # cuts the square in half (columns 30..39)
    ring = [[x_left, Y0 - 60 * PX], [X0 + 60 * PX, Y0 - 60 * PX], [X0 + 60 * PX, Y0 - 4 * PX],
            [x_left, Y0 - 4 * PX], [x_left, Y0 - 60 * PX]]
    aoi_file.write_text(json.dumps({"type": "FeatureCollection", "crs": {"properties": {"name": CRS}},
                                    "features": [{"type": "Feature", "properties": {},
                                                  "geometry": {"type": "Polygon", "coordinates": [ring]}}]}))
    res = run_detection(scene_dir, tmp_path / "dem.tif", tmp_path / "out", params(aoi=parse_aoi(str(aoi_file))))
    feats, _ = gpkg.read_features(res.files["candidates"])
    assert len(feats) == 1 and feats[0].properties["area_m2"] == pytest.approx(5_000.0)


def test_cancel_leaves_no_output(scene_dir, tmp_path):
    from landslide_sar_plugin.core.detect import Cancelled

    calls = []

    def is_cancelled():
        calls.append(1)
        return len(calls) > 3

    out = tmp_path / "out"
    with pytest.raises(Cancelled):
        run_detection(scene_dir, tmp_path / "dem.tif", out, params(block_size=64), is_cancelled=is_cancelled)
    assert not out.exists()  # the run created the folder, so its cancel removed it again


def test_progress_is_monotonic_and_reaches_one(scene_dir, tmp_path):
    seen = []
    run_detection(scene_dir, tmp_path / "dem.tif", tmp_path / "out", params(), progress=lambda f, m: seen.append(f))
    assert seen[-1] == pytest.approx(1.0)
    assert all(b >= a - 1e-9 for a, b in zip(seen, seen[1:]))


# ----------------------------------------------------------------------------- bad input through the CLI


def run_cli(capsys, *args):
    code = cli.main(["detect", *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def cli_args(scenes, dem, out, event="2018-09-06T03:00Z", *extra):
    return ["--scenes", scenes, "--dem", dem, "--out", out, "--event", event, "--threshold", "2",
            "--speckle-sigma", "0", *extra]


def assert_failed_cleanly(code, err, out_dir: Path, *phrases):
    assert code == 1
    lines = [line for line in err.strip().splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    for phrase in phrases:
        assert phrase in err
    assert not out_dir.exists() or list(out_dir.iterdir()) == []


def test_cli_success_prints_threshold_and_outputs(scene_dir, tmp_path, capsys):
    code, out, err = run_cli(capsys, *cli_args(scene_dir, tmp_path / "dem.tif", tmp_path / "out"))
    assert code == 0, err
    assert "threshold: 2.000 dB" in out and "1 candidate polygons" in out


def test_cli_scenes_without_tags_and_unknown_names(tmp_path, capsys):
    folder = tmp_path / "untagged"
    folder.mkdir()
    for k in range(3):
        write_scene(folder, EVENT + dt.timedelta(days=k), "ASCENDING", np.full((N, N), -15.0, np.float32),
                    tags=False, name=f"image_{k}.tif")
    write_dem(tmp_path / "dem.tif")
    code, _, err = run_cli(capsys, *cli_args(folder, tmp_path / "dem.tif", tmp_path / "out"))
    assert_failed_cleanly(code, err, tmp_path / "out", "image_0.tif", "no acquisition time")


def test_cli_all_nan_scenes(scene_dir, tmp_path, capsys):
    for p in scene_dir.glob("*.tif"):
        with rasterio.open(p, "r+") as dst:
            dst.write(np.full((2, N, N), np.nan, np.float32))
    code, _, err = run_cli(capsys, *cli_args(scene_dir, tmp_path / "dem.tif", tmp_path / "out"))
    assert_failed_cleanly(code, err, tmp_path / "out", "no valid A_ratio pixel")


def test_cli_aoi_outside_every_scene(scene_dir, tmp_path, capsys):
    code, _, err = run_cli(capsys, *cli_args(scene_dir, tmp_path / "dem.tif", tmp_path / "out", "2018-09-06T03:00Z",
                                             "--aoi", f"{X0 + 50000},{Y0 - 1000},{X0 + 51000},{Y0},{CRS}"))
    assert_failed_cleanly(code, err, tmp_path / "out", "outside every scene")


def test_cli_dem_not_covering_the_aoi(scene_dir, tmp_path, capsys):
    write_dem(tmp_path / "small_dem.tif", size=20)
    aoi = f"{X0},{Y0 - N * PX},{X0 + N * PX},{Y0},{CRS}"
    code, _, err = run_cli(capsys, *cli_args(scene_dir, tmp_path / "small_dem.tif", tmp_path / "out",
                                             "2018-09-06T03:00Z", "--aoi", aoi))
    assert_failed_cleanly(code, err, tmp_path / "out", "covers only", "of the AOI")


def test_without_aoi_the_grid_is_clipped_to_the_dem_with_a_warning(scene_dir, tmp_path):
    write_dem(tmp_path / "half_dem.tif", size=32)
    res = run_detection(scene_dir, tmp_path / "half_dem.tif", tmp_path / "out", params())
    assert (res.grid.width, res.grid.height) == (32, 32)
    assert any("DEM covers 25%" in w for w in res.warnings)


def test_cli_event_before_every_scene(scene_dir, tmp_path, capsys):
    code, _, err = run_cli(capsys, *cli_args(scene_dir, tmp_path / "dem.tif", tmp_path / "out", "2017-01-01"))
    assert_failed_cleanly(code, err, tmp_path / "out", "add pre-event scenes")


def test_cli_unwritable_output_folder(scene_dir, tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    code, _, err = run_cli(capsys, *cli_args(scene_dir, tmp_path / "dem.tif", blocker / "out"))
    assert code == 1 and "cannot write to the output folder" in err


def test_cli_corrupt_geotiff_is_skipped_with_a_warning_naming_it(scene_dir, tmp_path, capsys, caplog):
    (scene_dir / "broken.tif").write_bytes(b"II*\x00" + b"\x00garbage" * 50)
    code, out, err = run_cli(capsys, *cli_args(scene_dir, tmp_path / "dem.tif", tmp_path / "out"))
    assert code == 0, err
    assert "broken.tif" in caplog.text and "not a readable GeoTIFF" in caplog.text
    assert err.count("skipped broken.tif") == 1  # it used to be printed twice (catalogue and run)
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    assert [Path(s["file"]).name for s in run["inputs"]["skipped"]] == ["broken.tif"]


def test_cli_bad_event_date_is_one_line(scene_dir, tmp_path, capsys):
    code, _, err = run_cli(capsys, *cli_args(scene_dir, tmp_path / "dem.tif", tmp_path / "out", "yesterday"))
    assert code == 1 and "not an ISO-8601 date" in err


def test_cli_earthengine_source_needs_aoi_and_project(tmp_path, capsys):
    code, _, err = run_cli(capsys, "--source", "earthengine", "--event", "2018-09-06", "--out", tmp_path / "o")
    assert code == 1 and "needs --aoi" in err
    code, _, err = run_cli(capsys, "--source", "earthengine", "--event", "2018-09-06", "--out", tmp_path / "o",
                           "--aoi", "141.9,42.6,142.0,42.7")
    assert code == 1 and "needs --project" in err
    assert not (tmp_path / "o").exists() or list((tmp_path / "o").iterdir()) == []


def test_cli_local_source_needs_scenes_and_dem(tmp_path, capsys):
    code, _, err = run_cli(capsys, "--event", "2018-09-06", "--out", tmp_path / "o")
    assert code == 1 and "--scenes DIR and --dem FILE are needed" in err


def test_missing_dem_is_refused_before_anything_is_written(scene_dir, tmp_path):
    with pytest.raises(DetectionError, match="DEM file .*nope.tif does not exist"):
        run_detection(scene_dir, tmp_path / "nope.tif", tmp_path / "out", params())
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("polarisation, pre_db", [("VH", -15.0), ("VV", -9.0), ("both", -15.0)])
def test_evidence_layers_hold_the_pre_and_post_medians_per_pass(scene_dir, tmp_path, polarisation, pre_db):
    """evidence_<pass>.tif: band 1 the pre-event median, band 2 the post-event median (dB), VH where used."""
    res = run_detection(scene_dir, tmp_path / "dem.tif", tmp_path / "out", params(polarisation=polarisation))
    for p in ("ascending", "descending"):
        with rasterio.open(res.files[f"evidence_{p}"]) as src:
            bands, tags = src.read(), src.tags()
        assert bands.shape == (2, N, N) and tags["POLARISATION"] == ("VV" if polarisation == "VV" else "VH")
        np.testing.assert_allclose(bands[0], pre_db, atol=1e-5)  # pre: unchanged everywhere
        np.testing.assert_allclose(bands[1][SQUARE], pre_db - 4.0, atol=1e-5)  # post: the 4 dB drop
        outside = np.ones((N, N), bool)
        outside[SQUARE] = False
        np.testing.assert_allclose(bands[1][outside], pre_db, atol=1e-5)
    lean = run_detection(scene_dir, tmp_path / "dem.tif", tmp_path / "lean", params(pass_rasters=False))
    assert not any(k.startswith("evidence_") for k in lean.files)
