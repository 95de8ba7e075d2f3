"""Block-parallel runs give exactly the serial run's outputs, and every published raster is a valid COG.

Runs on a small SIMULATED event cut into many blocks (64 px), with the speckle filter, the curvature mask
and an AOI polygon, so that halos, block borders and the grid's ragged edge are all exercised.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import rasterio

from landslide_sar_plugin.core import gpkg, simulate
from landslide_sar_plugin.core.catalog import parse_time
from landslide_sar_plugin.core.detect import DetectParams, run_detection
from landslide_sar_plugin.core.grid import Aoi

VALIDATOR = Path("/usr/lib/python3/dist-packages/osgeo_utils/samples/validate_cloud_optimized_geotiff.py")


@pytest.fixture(scope="module")
def event(tmp_path_factory):
    folder = tmp_path_factory.mktemp("parallel_event")
    cfg = simulate.preset_config("default", 77, rows=200, cols=264)
    simulate.simulate_event(folder, cfg)
    return folder


def _params(event: Path, **kw) -> DetectParams:
    meta = json.loads((event / "event.json").read_text())
    with rasterio.open(event / "truth" / "truth_mask.tif") as src:
        left, bottom, right, top = src.bounds
        crs = src.crs
    cx, cy = (left + right) / 2, (bottom + top) / 2
    # an AOI polygon (a diamond) smaller than the scenes: the outside-AOI mask crosses many blocks
    ring = [[cx, top - 50], [right - 50, cy], [cx, bottom + 50], [left + 50, cy], [cx, top - 50]]
    aoi = Aoi((left + 50, bottom + 50, right - 50, top - 50), crs, [{"type": "Polygon", "coordinates": [ring]}])
    base = dict(event_time=parse_time(meta["event_time"]), block_size=64, curv_min=-0.005, aoi=aoi,
                min_area_m2=200.0)
    base.update(kw)
    return DetectParams(**base)


def _rasters(out: Path) -> dict[str, np.ndarray]:
    arrays = {}
    for p in sorted(out.glob("*.tif")):
        with rasterio.open(p) as src:
            arrays[p.name] = src.read()
    return arrays


def test_parallel_run_is_identical_to_the_serial_run(event, tmp_path):
    serial = run_detection(event / "scenes", event / "dem.tif", tmp_path / "w1", _params(event, workers=1))
    parallel = run_detection(event / "scenes", event / "dem.tif", tmp_path / "w3", _params(event, workers=3))
    assert serial.grid.width > 3 * 64 and serial.grid.height > 2 * 64  # many blocks, ragged edge
    names = sorted(p.name for p in (tmp_path / "w1").glob("*.tif"))
    assert names == sorted(p.name for p in (tmp_path / "w3").glob("*.tif"))
    assert {"a_ratio.tif", "counts.tif", "mask.tif", "exceedance.tif", "heatmap.tif"} <= set(names)
    for name in names:  # the same bytes: same values, same compression, same overviews, same tags
        assert (tmp_path / "w1" / name).read_bytes() == (tmp_path / "w3" / name).read_bytes(), name
    a, b = _rasters(tmp_path / "w1"), _rasters(tmp_path / "w3")
    assert np.isfinite(a["a_ratio.tif"]).sum() > 1000
    f1 = gpkg.read_features(serial.files["candidates"])[0]
    f3 = gpkg.read_features(parallel.files["candidates"])[0]
    assert serial.n_candidates == parallel.n_candidates > 0
    assert [f.properties for f in f1] == [f.properties for f in f3]
    assert [f.geometry for f in f1] == [f.geometry for f in f3]
    assert serial.percentiles == parallel.percentiles
    assert b["mask.tif"].any()


def test_block_size_does_not_change_the_result(event, tmp_path):
    small = run_detection(event / "scenes", event / "dem.tif", tmp_path / "b64", _params(event))
    large = run_detection(event / "scenes", event / "dem.tif", tmp_path / "b1024", _params(event, block_size=1024))
    a, b = _rasters(tmp_path / "b64"), _rasters(tmp_path / "b1024")
    for name in ("a_ratio.tif", "counts.tif", "mask.tif", "heatmap.tif"):
        np.testing.assert_array_equal(a[name][0], b[name][0], err_msg=name)
    assert small.n_candidates == large.n_candidates


def test_per_pass_ratio_and_count_rasters_are_optional(event, tmp_path):
    res = run_detection(event / "scenes", event / "dem.tif", tmp_path / "lean", _params(event, pass_rasters=False))
    names = {p.name for p in (tmp_path / "lean").glob("*.tif")}
    assert names == {"a_ratio.tif", "mask.tif", "exceedance.tif", "heatmap.tif"}
    assert "counts" not in res.files and not any(k.startswith("a_ratio_") for k in res.files)
    full = run_detection(event / "scenes", event / "dem.tif", tmp_path / "full", _params(event))
    assert _rasters(tmp_path / "lean")["a_ratio.tif"].tobytes() == _rasters(tmp_path / "full")["a_ratio.tif"].tobytes()
    assert full.n_candidates == res.n_candidates


@pytest.mark.skipif(not VALIDATOR.is_file() or not shutil.which("python3"), reason="GDAL's COG validator is absent")
def test_every_published_raster_passes_gdals_cog_validator(event, tmp_path):
    res = run_detection(event / "scenes", event / "dem.tif", tmp_path / "cog", _params(event, block_size=128))
    for key, path in res.files.items():
        if path.suffix != ".tif":
            continue
        proc = subprocess.run(["/usr/bin/python3", str(VALIDATOR), "--full-check=yes", str(path)],
                              capture_output=True, text=True, check=False)
        assert proc.returncode == 0 and "is a valid cloud optimized GeoTIFF" in proc.stdout, (key, proc.stdout,
                                                                                             proc.stderr)
        with rasterio.open(path) as src:
            assert src.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
            assert src.compression.name.lower() == "deflate"


def test_workers_must_not_be_negative(event, tmp_path):
    from landslide_sar_plugin.core.detect import DetectionError

    with pytest.raises(DetectionError, match="workers must be 0"):
        run_detection(event / "scenes", event / "dem.tif", tmp_path / "x", _params(event, workers=-2))


MODEL = Path(__file__).resolve().parents[2] / "landslide_sar_plugin" / "models" / "landslide_unet.onnx"


def test_model_run_is_identical_for_any_workers_and_block_size(event, tmp_path):
    """Composites built ahead in worker threads, blocks that own no tile (256 px tiles, 64 px blocks)."""
    pytest.importorskip("onnxruntime")
    from landslide_sar_plugin.core.detect_model import run_model_detection

    outs = {}
    for name, kw in {"serial": dict(workers=1, block_size=1024), "w2_b64": dict(workers=2, block_size=64),
                     "w3_b96": dict(workers=3, block_size=96)}.items():
        res = run_model_detection(event / "scenes", event / "dem.tif", tmp_path / name,
                                  _params(event, curv_min=None, **kw), MODEL, prefer_gpu=False)
        assert res.run_info["blending"]["tile_size"] == 256
        outs[name] = _rasters(tmp_path / name)["probability.tif"]
    assert np.isfinite(outs["serial"]).sum() > 10_000
    for name in ("w2_b64", "w3_b96"):
        np.testing.assert_array_equal(outs[name], outs["serial"], err_msg=name)
