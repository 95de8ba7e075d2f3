"""A model-only run writes the radar evidence (evidence_<pass>.tif) exactly as the A_ratio run does."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import rasterio

from landslide_sar_plugin.core.detect import run_detection
from landslide_sar_plugin.core.detect_model import evidence_polarisation_of, run_model_detection

from .test_detect import SQUARE, params, scene_dir  # noqa: F401 (fixture)

pytest.importorskip("onnxruntime")
SHIPPED = "landslide_sar_plugin/models/landslide_unet.onnx"


@pytest.mark.parametrize("speckle", [0.0, 15.0])
def test_model_run_writes_the_same_evidence_as_the_a_ratio_run(scene_dir, tmp_path, speckle):  # noqa: F811
    p = params(polarisation="both", speckle_sigma_m=speckle, speckle_radius_m=2 * speckle, block_size=64)
    ratio = run_detection(scene_dir, tmp_path / "dem.tif", tmp_path / "ratio", p)
    model = run_model_detection(scene_dir, tmp_path / "dem.tif", tmp_path / "model", p, SHIPPED)
    for orbit_pass in ("ascending", "descending"):
        key = f"evidence_{orbit_pass}"
        with rasterio.open(ratio.files[key]) as a, rasterio.open(model.files[key]) as b:
            assert b.count == 2 and b.tags()["POLARISATION"] == "VH" and b.tags()["ORBIT_PASS"] == orbit_pass.upper()
            assert b.descriptions == ("VH pre-event median (dB)", "VH post-event median (dB)")
            assert a.transform == b.transform and a.shape == b.shape
            np.testing.assert_array_equal(a.read(), b.read())
            post = b.read(2)
        centre = post[SQUARE][3:7, 3:7]  # the 4 dB drop (the speckle filter blurs only the square's rim)
        assert np.nanmean(centre) == pytest.approx(-19.0, abs=0.3 if speckle else 1e-5)
    assert "evidence_ascending" in model.run_info["outputs"]


def test_model_run_without_pass_rasters_writes_no_evidence(scene_dir, tmp_path):  # noqa: F811
    model = run_model_detection(scene_dir, tmp_path / "dem.tif", tmp_path / "model",
                                params(polarisation="both", pass_rasters=False), SHIPPED)
    assert not any(k.startswith("evidence_") for k in model.files)


def _selection(*band_sets):
    scenes = [SimpleNamespace(bands=dict.fromkeys(b)) for b in band_sets]
    track = ("ASCENDING", 68)
    return SimpleNamespace(pre={track: scenes[:1]}, post={track: scenes[1:]}), [track]


def test_evidence_shows_vh_where_every_scene_has_it_else_vv():
    assert evidence_polarisation_of(*_selection({"VV", "VH"}, {"VV", "VH"})) == "VH"
    assert evidence_polarisation_of(*_selection({"VV", "VH"}, {"VV"})) == "VV"  # one post scene without VH
    assert evidence_polarisation_of(*_selection({"HH"}, {"HH"})) is None
