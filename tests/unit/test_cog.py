"""Cloud-optimised GeoTIFFs written once: streamed overviews and the byte-level COG assembly."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from hypothesis import given, settings
from hypothesis import strategies as st
from rasterio.crs import CRS
from rasterio.windows import Window

from landslide_sar_plugin.core import cog
from landslide_sar_plugin.core.grid import Grid

VALIDATOR = Path("/usr/lib/python3/dist-packages/osgeo_utils/samples/validate_cloud_optimized_geotiff.py")


def _grid(rows: int, cols: int) -> Grid:
    return Grid(CRS.from_epsg(32654), Affine(10, 0, 500000, 0, -10, 4700000), cols, rows)


def _validate(path: Path) -> None:
    if not VALIDATOR.is_file():
        pytest.skip("GDAL's COG validator is absent")
    proc = subprocess.run(["/usr/bin/python3", str(VALIDATOR), "--full-check=yes", str(path)], capture_output=True,
                          text=True, check=False)
    assert proc.returncode == 0 and "is a valid cloud optimized GeoTIFF" in proc.stdout, proc.stdout + proc.stderr


def _write(writer: cog.CogWriter, data: np.ndarray, block: int) -> None:
    rows, cols = data.shape[-2:]
    for r in range(0, rows, block):
        for c in range(0, cols, block):
            win = Window(c, r, min(block, cols - c), min(block, rows - r))
            writer.write(win, data[..., r:r + win.height, c:c + win.width])


@pytest.mark.parametrize("dtype,count,resampling,nodata", [("float32", 1, "average", float("nan")),
                                                           ("uint16", 4, "nearest", None),
                                                           ("uint8", 1, "nearest", 255)])
@pytest.mark.parametrize("block", [1024, 300])  # 300: overviews cannot be streamed, GDAL builds them
def test_cog_holds_the_data_its_overviews_and_tags_and_validates(tmp_path, dtype, count, resampling, nodata, block):
    rows, cols = 1300, 2100
    rng = np.random.default_rng(0)
    data = rng.integers(0, 200, (count, rows, cols)).astype(dtype)
    if dtype == "float32":
        data += rng.normal(0, 3, data.shape).astype(dtype)
    if dtype == "float32":
        data[0, 100:400, 200:900] = np.nan
    w = cog.CogWriter(tmp_path / "x.stage.tif", _grid(rows, cols), count=count, dtype=dtype, nodata=nodata,
                      resampling=resampling, descriptions=[f"band {i}" for i in range(count)], tags={"EVENT": "e1"})
    _write(w, data, block)
    assert w.streamed == (block == 1024)
    out = w.assemble(tmp_path / "x.tif")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.tif"]  # staged files removed
    _validate(out)
    with rasterio.open(out) as src:
        assert src.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
        assert src.overviews(1) == [2, 4, 8] == cog.overview_factors(cols, rows)
        assert src.block_shapes[0] == (512, 512) and src.compression.name.lower() == "deflate"
        assert src.descriptions == tuple(f"band {i}" for i in range(count)) and src.tags()["EVENT"] == "e1"
        assert src.crs == CRS.from_epsg(32654) and src.transform == _grid(rows, cols).transform
        assert (src.nodata is None and nodata is None) or np.isnan(src.nodata) or src.nodata == nodata
        np.testing.assert_array_equal(src.read(), data)
        ovr = src.read(1, out_shape=(rows // 2 + rows % 2, cols // 2 + cols % 2))
    if dtype == "float32":
        expected = cog.halve(data[:1], "average")[0]
        np.testing.assert_allclose(ovr, expected, rtol=1e-5, atol=1e-4)
        assert np.isnan(ovr[60:190, 110:440]).all()
    elif block == 1024:  # streamed: classes and counts keep the top-left pixel of each cell
        np.testing.assert_array_equal(ovr, data[0, ::2, ::2])


def test_bigtiff_and_in_file_overviews_are_assembled_too(tmp_path):
    data = np.arange(700 * 900, dtype=np.float32).reshape(700, 900)
    profile = cog.cog_profile(900, 700, 1, "float32", CRS.from_epsg(32654), _grid(700, 900).transform, None)
    profile["BIGTIFF"] = "YES"
    with rasterio.open(tmp_path / "big.tif", "w", **profile) as dst:
        dst.write(data, 1)
    with rasterio.open(tmp_path / "big.tif", "r+") as dst:
        dst.build_overviews([2], rasterio.enums.Resampling.average)
    for force, magic in ((None, b"*\x00"), (True, b"+\x00")):  # classic when it fits (42), BigTIFF (43)
        out = cog.assemble_cog(tmp_path / "big.tif", [], tmp_path / "out.tif", bigtiff=force)
        assert out.read_bytes()[2:4] == magic
        _validate(out)
        with rasterio.open(out) as src:
            np.testing.assert_array_equal(src.read(1), data)
            assert src.overviews(1) == [2] and src.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 9), st.integers(1, 9), st.integers(0, 2 ** 31))
def test_halve_is_the_nan_aware_mean_of_each_two_by_two_cell(rows, cols, seed):
    rng = np.random.default_rng(seed)
    a = rng.normal(0, 1, (rows, cols)).astype(np.float32)
    a[rng.random(a.shape) < 0.3] = np.nan
    got = cog.halve(a[np.newaxis], "average")[0]
    assert got.shape == (-(-rows // 2), -(-cols // 2))
    for i in range(got.shape[0]):
        for j in range(got.shape[1]):
            cell = a[2 * i:2 * i + 2, 2 * j:2 * j + 2]
            cell = cell[np.isfinite(cell)]
            if cell.size:
                assert got[i, j] == pytest.approx(float(cell.mean()), rel=1e-6, abs=1e-6)
            else:
                assert np.isnan(got[i, j])
    np.testing.assert_array_equal(cog.halve(a[np.newaxis], "nearest")[0], a[::2, ::2])


def test_overview_factors_stop_where_the_image_fits_one_tile():
    assert cog.overview_factors(512, 512) == []
    assert cog.overview_factors(513, 100) == [2]
    assert cog.overview_factors(8192, 8192) == [2, 4, 8, 16]
    assert cog.overview_factors(3842, 2346) == [2, 4, 8]


def test_intermediate_raster_is_uncompressed_and_can_still_be_published(tmp_path):
    """The 0/1 raster GDAL polygonises row by row stays uncompressed (tracing a compressed one was 10-100x slower)."""
    from landslide_sar_plugin.core.staging import StagedRaster

    data = (np.arange(600 * 700).reshape(600, 700) % 3 == 0).astype(np.uint8)
    st_ = StagedRaster(tmp_path, "binary", _grid(600, 700), count=1, dtype="uint8", nodata=None, intermediate=True)
    st_.write(Window(0, 0, 700, 600), data)
    st_.close()
    with rasterio.open(st_.path) as src:
        assert src.compression is None and src.overviews(1) == []
        np.testing.assert_array_equal(src.read(1), data)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["binary.stage.tif"]
    out = st_.to_cog(tmp_path / "binary.tif")
    _validate(out)
    with rasterio.open(out) as src:
        np.testing.assert_array_equal(src.read(1), data)


def test_compression_threads_and_the_predictor_change_no_value_and_threads_no_byte(tmp_path):
    """GDAL compressing in its own threads writes the very same COG; the float predictor keeps every value."""
    rng = np.random.default_rng(5)
    data = rng.normal(-12, 2, (1100, 1300)).astype(np.float32)
    data[rng.random(data.shape) < 0.05] = np.nan
    grid = _grid(1100, 1300)
    outs = {}
    for threads, predictor in ((1, None), (3, None), (1, 3), (2, 3)):
        writer = cog.CogWriter(tmp_path / f"t{threads}p{predictor}.stage.tif", grid, count=1, dtype="float32",
                               nodata=float("nan"), threads=threads, predictor=predictor)
        _write(writer, data, 512)
        outs[threads, predictor] = writer.assemble(tmp_path / f"t{threads}p{predictor}.tif")
    assert outs[1, None].read_bytes() == outs[3, None].read_bytes()
    assert outs[1, 3].read_bytes() == outs[2, 3].read_bytes()
    for path in outs.values():
        _validate(path)
        with rasterio.open(path) as src:
            np.testing.assert_array_equal(src.read(1), data)
    with rasterio.open(outs[1, 3]) as src:
        assert src.profile.get("predictor") == 3 or src.tags(ns="IMAGE_STRUCTURE").get("PREDICTOR") == "3"


def test_a_tile_that_never_reached_the_file_is_an_error(tmp_path):
    """A flush that failed (GDAL only logs it) leaves a tile with no bytes or past the end: check_complete says so."""
    import errno

    writer = cog.CogWriter(tmp_path / "ok.tif", _grid(600, 700), count=1, dtype="float32", nodata=float("nan"))
    _write(writer, np.ones((600, 700), np.float32), 512)
    writer.close()
    cog.check_complete(tmp_path / "ok.tif")  # complete: no error
    raw = (tmp_path / "ok.tif").read_bytes()
    last = max(o + c for d in cog._read_ifds(tmp_path / "ok.tif") for o, c in zip(d.offsets, d.counts))
    (tmp_path / "cut.tif").write_bytes(raw[:last - 10])  # the last tile truncated, as by a full disk
    with pytest.raises(OSError) as err:
        cog.check_complete(tmp_path / "cut.tif")
    assert err.value.errno == errno.ENOSPC and "not written completely" in str(err.value)
