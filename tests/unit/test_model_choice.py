"""The model run with the joint, polarisation-flagged recipe (issue 11) on REAL OPERA backgrounds.

A tiny untrained network (random weights, fixed seed) stands in for the shipped model: what is tested is
the plumbing (which polarisations and passes run, what run.json says, block-size invariance of the
detrended bands, the pixel-size range, and that training chips are exactly the inference inputs), not
detection quality.  Scenes: the shipped real fixture (tests/fixtures/opera_rtc_s1_t137); slides SYNTHETIC.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

from landslide_sar_plugin.core.detect import DetectParams  # noqa: E402
from landslide_sar_plugin.core.detect_model import run_model_detection  # noqa: E402
from landslide_sar_plugin.core.inference import TiledModel, create_session, predict_array  # noqa: E402
from landslide_sar_plugin.core.model import ModelError, check_model_fits, read_model_info  # noqa: E402
from landslide_sar_plugin.core.recipes import get_recipe  # noqa: E402
from landslide_sar_plugin.core.simulate import imprint  # noqa: E402
from tests.real_fixture import real_burst_dir  # noqa: E402
from training.dataset import load_event_composites  # noqa: E402
from training.experiment import make_info  # noqa: E402
from training.export import export_onnx  # noqa: E402
from training.models import CalibratedLogits, UNet  # noqa: E402

BURST = "T137-292321-IW2"  # a TUNING burst of the real-background benchmark
PRE, POST = ("2021-11-19", "2021-11-25", "2021-12-01"), ("2021-12-07", "2021-12-13")


def tiny_model(path, *, pixel_range=(10.0, 30.0)):
    recipe = get_recipe("DCHANGE2P")
    torch.manual_seed(0)
    net = UNet(len(recipe.bands), base_filters=4, depth=2).eval()
    norm = {"kind": "standard", "mean": [0.0, 0.0, -15.0, -9.0, 0.0, 0.0] * 2 + [20.0],
            "std": [2.0, 2.0, 3.0, 3.0, 1.0, 1.0] * 2 + [10.0]}
    info = make_info(recipe, norm, chip=32, overlap=8, threshold=0.5, arch="unet", training_events=["t"],
                     sha="0" * 64, model_name="tiny-joint", calibration={"kind": "platt", "a": 0.5, "b": 0.1})
    info.pixel_size_range_m = list(pixel_range) if pixel_range else None
    export_onnx(CalibratedLogits(net, 0.5, 0.1), path, info, tile_size=32)
    return path


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    root = tmp_path_factory.mktemp("cases")
    stack = imprint.read_opera_burst(real_burst_dir(BURST))
    dual = imprint.write_case(imprint.CaseSpec("dual", BURST, PRE, POST, "tuning", "earthquake", 3), stack,
                              root / "dual")
    vh = imprint.write_case(imprint.CaseSpec("vh", BURST, PRE, POST, "tuning", "earthquake", 3, ("VH",)), stack,
                            root / "vh")
    vv = imprint.write_case(imprint.CaseSpec("vv", BURST, PRE, POST, "tuning", "earthquake", 3, ("VV",)), stack,
                            root / "vv")
    return {"dual": dual, "vh": vh, "vv": vv, "model": tiny_model(root / "tiny.onnx")}


def _run(case, model, out, **kw):
    params = DetectParams(event_time=case.event_time, pre_range=case.pre_range, post_range=case.post_range, **kw)
    return run_model_detection(case.scenes_dir, case.dem, out, params, model)


def _prob(res):
    with rasterio.open(res.files["probability"]) as src:
        return src.read(1)


def test_metadata_declares_the_pixel_range_and_calibration(cases):
    info = read_model_info(cases["model"])
    assert info.pixel_size_range_m == [10.0, 30.0] and info.calibration["kind"] == "platt"
    assert info.get_recipe().joint_passes and info.get_recipe().detrend_radius_m == 600.0
    check_model_fits(info, available_polarisations=("VH",), n_post_scenes=1, pixel_size_m=30.0)
    with pytest.raises(ModelError, match="trained on 10-30 m pixels"):
        check_model_fits(info, available_polarisations=("VH",), n_post_scenes=1, pixel_size_m=60.0)


def test_dual_pol_one_pass_run_and_what_run_json_says(cases, tmp_path):
    res = _run(cases["dual"], cases["model"], tmp_path / "out")
    assert res.grid.pixel_size == 30.0  # the OPERA grid, no --pixel-size needed
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    choice = run["model_choice"]
    assert choice["polarisations"] == ["VH", "VV"] and choice["orbit_passes"] == ["ASCENDING"]
    assert "only the ascending pass" in choice["reason"] and "30 m grid" in choice["reason"]
    prob = _prob(res)
    assert np.isfinite(prob).mean() > 0.95 and 0 <= np.nanmin(prob) <= np.nanmax(prob) <= 1


def test_vh_only_stack_runs_with_the_polarisation_flag(cases, tmp_path):
    res = _run(cases["vh"], cases["model"], tmp_path / "out")
    choice = json.loads((tmp_path / "out" / "run.json").read_text())["model_choice"]
    assert choice["polarisations"] == ["VH"] and "no VV" in choice["reason"]
    dual = _prob(_run(cases["dual"], cases["model"], tmp_path / "dual"))
    assert not np.allclose(_prob(res), dual, equal_nan=True)  # VV absent is a different input, not a copy


def test_vv_only_stack_runs_too(cases, tmp_path):
    _run(cases["vv"], cases["model"], tmp_path / "out")
    choice = json.loads((tmp_path / "out" / "run.json").read_text())["model_choice"]
    assert choice["polarisations"] == ["VV"] and "no VH" in choice["reason"]


def test_probability_does_not_depend_on_the_block_size(cases, tmp_path):
    small = _prob(_run(cases["dual"], cases["model"], tmp_path / "b64", block_size=64))
    large = _prob(_run(cases["dual"], cases["model"], tmp_path / "b1024", block_size=1024))
    np.testing.assert_array_equal(small, large)


def test_training_chips_are_exactly_the_inference_inputs(cases, tmp_path):
    case = cases["dual"]
    res = _run(case, cases["model"], tmp_path / "out")
    ev = load_event_composites(case.scenes_dir, case.dem, case.event_time, "DCHANGE2P", pixel_size=None,
                               pre_range=case.pre_range, post_range=case.post_range, block_size=64)
    info = read_model_info(cases["model"])
    model = TiledModel(create_session(cases["model"]), info, tiling="large")  # the run's default tiling
    comp = ev.composites["joint"]
    from landslide_sar_plugin.core.recipes import composite_valid

    again = predict_array(model, comp, valid=composite_valid(info.get_recipe(), comp))
    np.testing.assert_allclose(again, _prob(res), atol=1e-6, equal_nan=True)


def test_a_model_of_one_pixel_size_gets_its_grid_without_flags(cases, tmp_path):
    model = tiny_model(tmp_path / "ten.onnx", pixel_range=None)  # 10 m only
    res = _run(cases["vh"], model, tmp_path / "out")
    assert res.grid.pixel_size == 10.0
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    assert "resampled to 10 m" in run["model_choice"]["reason"]
