"""The "Detect landslides (U-Net model)" and "(Google Earth Engine)" Processing algorithms through processing.run.

The model runs a tiny hand-built ONNX model (onnx.helper, IR version 8) on the sample scene's small AOI; Earth
Engine runs offline: earthengine-api's own test harness and the fake transport of tests/unit/test_earthengine.py,
injected through the algorithms module's ``EARTHENGINE_TRANSPORT_FACTORY`` test seam.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from .test_processing import AOI, SAMPLE, RecordingFeedback, no_pam_sidecars, provider  # noqa: F401 (fixtures)

EVENT_TIME = json.loads((SAMPLE / "event.json").read_text())["config"]["event_time"]
EE_AOI = "500000,500640,4700000,4700640 [EPSG:32654]"  # the fake transport's 64 x 64 px test area
EE_EVENT = "2018-09-05T18:08:00Z"


# --------------------------------------------------------------------------- the U-Net model


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """BAA_S model: p = sigmoid(2 * VV_pre - VV_post1 - VV_post2 - 3), i.e. a VV backscatter drop (dB)."""
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper, numpy_helper

    from landslide_sar_plugin.core.model import ModelInfo, metadata_props
    from landslide_sar_plugin.core.recipes import get_recipe

    bands = list(get_recipe("BAA_S").bands)
    assert bands == ["VV_pre", "VV_post1", "VV_post2", "slope"]
    info = ModelInfo(composite="BAA_S", band_names=bands,
                     normalisation={"kind": "standard", "mean": [0.0] * 4, "std": [1.0] * 4},
                     tile_size=64, tile_overlap=16, threshold=0.5, pixel_size_m=10.0, model_name="tiny-drop",
                     architecture="1x1 conv")
    weights = np.array([2.0, -1.0, -1.0, 0.0], np.float32).reshape(1, 4, 1, 1)
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 4, "rows", "cols"])
    y = helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", 1, "rows", "cols"])
    graph = helper.make_graph(
        [helper.make_node("Conv", ["input", "W", "B"], ["z"], kernel_shape=[1, 1]),
         helper.make_node("Sigmoid", ["z"], ["output"])], "tiny", [x], [y],
        initializer=[numpy_helper.from_array(weights, "W"),
                     numpy_helper.from_array(np.array([-3.0], np.float32), "B")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="tests")
    model.ir_version = 8  # what onnxruntime >= 1.14 reads (onnx 1.23 would stamp a newer one)
    helper.set_model_props(model, metadata_props(info))
    path = tmp_path_factory.mktemp("model") / "tiny.onnx"
    onnx.save(model, str(path))
    return path


def model_params(out_dir, model, **extra):
    params = {
        "SCENES": str(SAMPLE / "scenes"),
        "DEM": str(SAMPLE / "dem.tif"),
        "EVENT_TIME": EVENT_TIME,
        "AOI": AOI,
        "MODEL": str(model),
        "MIN_AREA": 500,
        "BLOCK_SIZE": 256,
        "OUTPUT_FOLDER": str(out_dir),
    }
    params.update(extra)
    return params


def test_provider_registers_both_new_algorithms(provider):  # noqa: F811
    ids = {a.id() for a in provider.algorithms()}
    assert {"landslidesar:detect_model", "landslidesar:detect_earthengine"} <= ids
    for alg_id in ("landslidesar:detect_model", "landslidesar:detect_earthengine"):
        alg = provider.algorithm(alg_id.split(":")[1])
        assert alg.group() == "Landslide detection" and alg.shortHelpString() and alg.outputDefinitions()


def test_detect_model_writes_probability_candidates_and_run_json(provider, tiny_model, tmp_path):  # noqa: F811
    import processing
    import rasterio
    from qgis.core import QgsRasterLayer, QgsVectorLayer

    from landslide_sar_plugin.core.model import file_sha256

    feedback = RecordingFeedback()
    res = processing.run("landslidesar:detect_model", model_params(tmp_path / "run", tiny_model),
                         feedback=feedback)
    assert Path(res["PROBABILITY"]) == tmp_path / "run" / "probability.tif"
    prob_layer = QgsRasterLayer(res["PROBABILITY"], "p")
    assert prob_layer.isValid() and prob_layer.width() == 150 and prob_layer.crs().authid() == "EPSG:32654"
    with rasterio.open(res["PROBABILITY"]) as src:
        prob = src.read(1)
    valid = np.isfinite(prob)
    assert valid.mean() > 0.5 and prob[valid].min() >= 0.0 and prob[valid].max() <= 1.0
    assert res["N_CANDIDATES"] >= 0 and res["THRESHOLD"] == pytest.approx(0.5)
    cands = QgsVectorLayer(res["CANDIDATES"], "c", "ogr")
    assert cands.isValid() and cands.featureCount() == res["N_CANDIDATES"]
    run = json.loads(Path(res["RUN_JSON"]).read_text())
    assert run["method"] == "model" and run["model_sha256"] == file_sha256(tiny_model)
    assert run["model"]["composite"] == "BAA_S" and run["n_candidates"] == res["N_CANDIDATES"]
    assert Path(res["HEATMAP"]).is_file() and res.get("AGREEMENT_RASTER") is None
    assert feedback.values and max(feedback.values) == pytest.approx(100.0)
    assert any("inference" in t for t in feedback.texts)


def test_detect_model_with_agreement_and_threshold_override(provider, tiny_model, tmp_path):  # noqa: F811
    import processing
    import rasterio

    from landslide_sar_plugin.core.model import file_sha256

    feedback = RecordingFeedback()
    res = processing.run("landslidesar:detect_model",
                         model_params(tmp_path / "run", tiny_model, AGREEMENT=True, PROB_THRESHOLD=0.3),
                         feedback=feedback)
    out = tmp_path / "run"
    assert Path(res["PROBABILITY"]) == out / "model" / "probability.tif"
    assert Path(res["AGREEMENT_RASTER"]) == out / "agreement.tif"
    assert Path(res["A_RATIO"]) == out / "a_ratio" / "a_ratio.tif"
    assert res["THRESHOLD"] == pytest.approx(0.3)
    with rasterio.open(res["AGREEMENT_RASTER"]) as src:
        codes = src.read(1)
        assert src.dtypes[0] == "uint8" and src.nodata == 255 and codes.shape == (150, 150)
    assert set(np.unique(codes)) <= {0, 1, 2, 3, 255} and (codes != 255).any()
    run = json.loads(Path(res["RUN_JSON"]).read_text())
    assert run["model_sha256"] == file_sha256(tiny_model) and run["threshold_source"] == "user"
    assert max(feedback.values) == pytest.approx(100.0)
    assert feedback.values == sorted(feedback.values)  # one bar over the three core calls


def test_detect_model_errors(provider, tiny_model, tmp_path, monkeypatch):  # noqa: F811
    import sys

    import processing
    from qgis.core import QgsProcessingException, QgsProcessingFeedback

    from landslide_sar_plugin.core.model import ModelError, require_onnxruntime

    # Cancelled before any pixel: no output.
    feedback = QgsProcessingFeedback()
    feedback.cancel()
    with pytest.raises(QgsProcessingException, match="[Cc]ancelled"):
        processing.run("landslidesar:detect_model", model_params(tmp_path / "c", tiny_model), feedback=feedback)
    assert not (tmp_path / "c").exists() or list((tmp_path / "c").iterdir()) == []
    # The model's pixel size is checked against the run's.
    with pytest.raises(QgsProcessingException, match="trained at 10 m pixels"):
        processing.run("landslidesar:detect_model", model_params(tmp_path / "px", tiny_model, PIXEL_SIZE=30))
    with pytest.raises(QgsProcessingException, match="does not exist"):
        processing.run("landslidesar:detect_model", model_params(tmp_path / "m", tmp_path / "none.onnx"))
    # onnxruntime missing: the core's message, word for word.
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(ModelError) as core_error:
        require_onnxruntime()
    with pytest.raises(QgsProcessingException) as err:
        processing.run("landslidesar:detect_model", model_params(tmp_path / "o", tiny_model))
    assert str(core_error.value) in str(err.value) and "python -m pip install onnxruntime" in str(err.value)


# --------------------------------------------------------------------------- Google Earth Engine


@pytest.fixture
def fake_transports(offline_ee, monkeypatch):
    """Every transport the algorithm asks for (through the test seam), in order."""
    from landslide_sar_plugin.processing import algorithms

    from ..unit.test_earthengine import FakeTransport

    made = []

    def factory():
        made.append(FakeTransport())
        return made[-1]

    monkeypatch.setattr(algorithms, "EARTHENGINE_TRANSPORT_FACTORY", factory)
    return made


def ee_params(tmp_path, **extra):
    cache = tmp_path / "cache"
    cache.mkdir(exist_ok=True)
    params = {"AOI": EE_AOI, "EVENT_TIME": EE_EVENT, "PROJECT": "my-project", "PRE_DAYS": 40, "POST_DAYS": 20,
              "SLOPE_MIN": 10.0, "THRESHOLD_MODE": 1, "THRESHOLD": 1.25, "MIN_AREA": 100.0, "BLOCK_SIZE": 64,
              "CACHE_FOLDER": str(cache), "OUTPUT_FOLDER": str(tmp_path / "run")}
    params.update(extra)
    return params


def test_detect_earthengine_download_and_server_modes(provider, fake_transports, tmp_path):  # noqa: F811
    import processing
    from qgis.core import QgsRasterLayer, QgsVectorLayer

    feedback = RecordingFeedback()
    res = processing.run("landslidesar:detect_earthengine", ee_params(tmp_path), feedback=feedback)
    out = tmp_path / "run"
    assert len(fake_transports) == 1 and fake_transports[0].n_calls > 0
    assert res["N_CANDIDATES"] == 1 and res["THRESHOLD_DB"] == pytest.approx(1.25)
    assert Path(res["A_RATIO"]) == out / "a_ratio.tif" and QgsRasterLayer(res["A_RATIO"], "r").isValid()
    assert Path(res["HEATMAP"]).is_file() and (out / "ee_inputs" / "scenes" / "scenes.json").is_file()
    cands = QgsVectorLayer(res["CANDIDATES"], "c", "ogr")
    assert cands.isValid() and cands.featureCount() == 1
    run = json.loads(Path(res["RUN_JSON"]).read_text())
    ee_info = run["earthengine"]
    assert ee_info["mode"] == "download" and ee_info["project"] == "my-project"
    assert ee_info["collection"] == "COPERNICUS/S1_GRD" and ee_info["credentials"] == "supplied transport"
    assert max(feedback.values) == pytest.approx(100.0) and any("Earth Engine" in t for t in feedback.texts)
    assert list((tmp_path / "cache").iterdir())  # downloads cached where the parameter says

    server = processing.run("landslidesar:detect_earthengine",
                            ee_params(tmp_path, MODE=1, ORBIT_PASS=1, NO_CACHE=True,
                                      OUTPUT_FOLDER=str(tmp_path / "server")))
    assert server["N_CANDIDATES"] == 1 and Path(server["A_RATIO"]).is_file()
    run = json.loads(Path(server["RUN_JSON"]).read_text())
    assert run["earthengine"]["mode"] == "server"
    # The orbit pass is a filter of the listing request (the fake transport serves every row regardless).
    assert run["earthengine"]["filters"]["orbitProperties_pass"] == "ASCENDING"
    assert json.loads(Path(res["RUN_JSON"]).read_text())["earthengine"]["filters"]["orbitProperties_pass"] is None
    assert fake_transports[1].n_calls > 0  # no cache: everything asked again


def test_detect_earthengine_project_defaults_to_the_settings_and_cancel(provider, fake_transports,  # noqa: F811
                                                                        tmp_path):
    import processing
    from qgis.core import QgsProcessingException, QgsProcessingFeedback, QgsSettings

    from landslide_sar_plugin.processing.algorithms import EE_PROJECT_SETTING

    assert EE_PROJECT_SETTING == "landslide_sar/ee_project"
    settings = QgsSettings()
    settings.setValue(EE_PROJECT_SETTING, "project-from-settings")
    try:
        params = ee_params(tmp_path)
        del params["PROJECT"]
        res = processing.run("landslidesar:detect_earthengine", params)
    finally:
        settings.remove(EE_PROJECT_SETTING)
    assert json.loads(Path(res["RUN_JSON"]).read_text())["earthengine"]["project"] == "project-from-settings"
    feedback = QgsProcessingFeedback()
    feedback.cancel()
    with pytest.raises(QgsProcessingException, match="[Cc]ancelled"):
        processing.run("landslidesar:detect_earthengine", ee_params(tmp_path, OUTPUT_FOLDER=str(tmp_path / "c")),
                       feedback=feedback)
    assert not [p for p in (tmp_path / "c").rglob("*") if p.is_file()]


def test_detect_earthengine_sign_in_and_project_errors_carry_the_core_message(provider, tmp_path,  # noqa: F811
                                                                               monkeypatch):
    pytest.importorskip("ee", reason="earthengine-api is not installed")
    import processing
    from qgis.core import QgsProcessingException

    from landslide_sar_plugin.core.earthengine import EarthEngineError, initialize
    from landslide_sar_plugin.processing import algorithms

    assert algorithms.EARTHENGINE_TRANSPORT_FACTORY is None  # normal use: the core signs in itself
    monkeypatch.setenv("HOME", str(tmp_path))  # no credentials file, no gcloud credentials
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    monkeypatch.setattr(algorithms, "_ee_project_setting", lambda: "")

    def core_message(project):
        with pytest.raises(EarthEngineError) as err:
            initialize(project)
        return str(err.value)

    no_sign_in = core_message("my-project")
    assert "Sign in" in no_sign_in
    with pytest.raises(QgsProcessingException) as err:
        processing.run("landslidesar:detect_earthengine", ee_params(tmp_path))
    assert str(err.value) == no_sign_in

    creds = tmp_path / ".config" / "earthengine" / "credentials"
    creds.parent.mkdir(parents=True)
    creds.write_text(json.dumps({"refresh_token": "1//0gTESTrefreshTOKEN-abcdefgh"}))
    no_project = core_message(None)
    assert "Google Cloud project id" in no_project
    params = ee_params(tmp_path)
    del params["PROJECT"]  # the default comes from the (empty) settings
    with pytest.raises(QgsProcessingException) as err:
        processing.run("landslidesar:detect_earthengine", params)
    assert str(err.value) == no_project
    with pytest.raises(QgsProcessingException) as err:
        processing.run("landslidesar:detect_earthengine", ee_params(tmp_path, PROJECT="  "))
    assert str(err.value) == no_project
