"""The model-file contract: metadata round trip and the one-sentence failures promised before any pixel runs.

Also home of the tiny hand-built ONNX models (``onnx.helper``, opset 17, dynamic batch, input "input", output
"output") that the inference tests use.  No training happens here.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from landslide_sar_plugin.core.inference import TiledModel, create_session  # noqa: E402
from landslide_sar_plugin.core.model import (  # noqa: E402
    ModelError,
    ModelInfo,
    check_model_fits,
    info_from_props,
    metadata_props,
    read_model_info,
)

OPSET = 17
IR_VERSION = 8  # what onnxruntime >= 1.14 reads; onnx 1.23 would stamp 14 by default, newer than ORT 1.31's 13


def make_info(composite="BA_S", bands=None, **kw) -> ModelInfo:
    from landslide_sar_plugin.core.recipes import get_recipe

    bands = bands or list(get_recipe(composite).bands)
    n = len(bands)
    base = dict(composite=composite, band_names=bands,
                normalisation={"kind": "standard", "mean": [0.0] * n, "std": [1.0] * n},
                tile_size=32, tile_overlap=8, threshold=0.5, model_name="test-model", architecture="test")
    base.update(kw)
    return ModelInfo(**base)


def _io(n_bands):
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", n_bands, "rows", "cols"])
    y = helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", 1, "rows", "cols"])
    return x, y


def _finish(graph, info: ModelInfo | None, path, ir_version=IR_VERSION):
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="tests")
    model.ir_version = ir_version
    if info is not None:
        helper.set_model_props(model, metadata_props(info))
    if path is None:
        return model.SerializeToString()
    onnx.save(model, str(path))
    return path


def conv_model(path, weights: np.ndarray, bias: float = 0.0, info: ModelInfo | None = None, *, sigmoid=True,
               ir_version=IR_VERSION, n_in: int | None = None):
    """``output = sigmoid(conv(input, weights) + bias)``; ``weights`` is ``(bands, k, k)`` with odd k ('same')."""
    w = np.asarray(weights, np.float32)
    n_bands, k = w.shape[0], w.shape[-1]
    x, y = _io(n_in or n_bands)
    inits = [numpy_helper.from_array(w[np.newaxis], "W"), numpy_helper.from_array(np.array([bias], np.float32), "B")]
    pad = k // 2
    nodes = [helper.make_node("Conv", ["input", "W", "B"], ["z" if sigmoid else "output"], kernel_shape=[k, k],
                              pads=[pad] * 4)]
    if sigmoid:
        nodes.append(helper.make_node("Sigmoid", ["z"], ["output"]))
    return _finish(helper.make_graph(nodes, "conv", [x], [y], initializer=inits), info, path, ir_version)


def band0_sigmoid_model(path, n_bands: int, info=None):
    """output = sigmoid(band 0) exactly (a pixel-wise 'identity-like' model)."""
    w = np.zeros((n_bands, 1, 1), np.float32)
    w[0] = 1.0
    return conv_model(path, w, 0.0, info)


def constant_model(path, n_bands: int, value: float, info=None):
    """output = value everywhere (sigmoid of a constant bias)."""
    return conv_model(path, np.zeros((n_bands, 1, 1), np.float32), float(np.log(value / (1 - value))), info)


# --------------------------------------------------------------------------- round trip


def test_metadata_round_trip_through_an_onnx_file(tmp_path):
    info = make_info(training_events=["hokkaido_2018"], orbit_pass="ASCENDING", nodata_fill=-1.5,
                     training_data_sha256="ab" * 32)
    path = band0_sigmoid_model(tmp_path / "m.onnx", 3, info)
    back = read_model_info(path)
    for key in ("composite", "band_names", "normalisation", "tile_size", "tile_overlap", "threshold", "orbit_pass",
                "nodata_fill", "model_name", "training_events", "training_data_sha256"):
        assert getattr(back, key) == getattr(info, key), key
    assert back.opset == OPSET and back.ir_version == IR_VERSION
    assert len(back.sha256) == 64 and back.to_dict()["sha256"] == back.sha256
    props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    # Deepness json.loads every key and divides inputs by 255 first (see tests/unit/test_deepness.py).
    assert json.loads(props["model_type"]) == "Segmentor"
    assert json.loads(props["standardization_std"]) == [1.0 / 255] * 3
    assert json.loads(props["tiles_overlap"]) == 25


def test_minmax_normalisation_round_trips():
    info = make_info(normalisation={"kind": "minmax", "min": [-30.0, -30.0, 0.0], "max": [5.0, 5.0, 90.0]})
    back = info_from_props(metadata_props(info))
    assert back.normalisation == info.normalisation


# --------------------------------------------------------------------------- failures, one sentence each


def _one_sentence(msg: str) -> None:
    assert "\n" not in msg and len(msg) < 400, msg


def test_missing_keys_are_named(tmp_path):
    props = metadata_props(make_info())
    del props["tile_size"], props["normalisation"]
    with pytest.raises(ModelError, match=r"lacks the metadata key\(s\) normalisation, tile_size") as err:
        info_from_props(props)
    _one_sentence(str(err.value))
    # the same through a file without any of our keys
    path = conv_model(tmp_path / "bare.onnx", np.ones((3, 1, 1)), info=None)
    with pytest.raises(ModelError, match="bare.onnx lacks the metadata key"):
        read_model_info(path)


def test_unknown_composite_is_refused():
    props = metadata_props(make_info())
    props["composite"] = "NOT_A_RECIPE"
    with pytest.raises(ModelError, match="expects composite 'NOT_A_RECIPE', unknown to this plugin") as err:
        info_from_props(props)
    _one_sentence(str(err.value))


def test_a_non_onnx_file_is_refused(tmp_path):
    path = tmp_path / "model.onnx"
    path.write_bytes(b"this is not a protobuf \x00\xff" * 10)
    with pytest.raises(ModelError, match="is not a readable ONNX model"):
        read_model_info(path)
    with pytest.raises(ModelError, match="does not exist"):
        read_model_info(tmp_path / "missing.onnx")


def test_wrong_channel_count_metadata_vs_composite():
    info = make_info(composite="BA_S", bands=["VV_pre", "VV_post"],
                     normalisation={"kind": "standard", "mean": [0, 0], "std": [1, 1]})
    with pytest.raises(ModelError, match="expects 2 input bands but its composite BA_S has 3") as err:
        check_model_fits(info, available_polarisations=("VV", "VH"), n_post_scenes=2, pixel_size_m=10.0)
    _one_sentence(str(err.value))


def test_wrong_channel_count_onnx_input_vs_metadata(tmp_path):
    info = make_info()  # BA_S: 3 bands
    path = conv_model(tmp_path / "four.onnx", np.ones((4, 1, 1)), info=info)  # the graph takes 4 channels
    session = create_session(path)
    with pytest.raises(ModelError, match="input takes 4 channels but its metadata declares 3 bands") as err:
        TiledModel(session, read_model_info(path))
    _one_sentence(str(err.value))


def test_newer_ir_version_than_onnxruntime_supports(tmp_path):
    path = conv_model(tmp_path / "future.onnx", np.ones((3, 1, 1)), info=make_info(), ir_version=99)
    with pytest.raises(ModelError, match=r"uses ONNX IR version 99, newer than onnxruntime [\d.]+ supports") as err:
        create_session(path, name=path.name)
    _one_sentence(str(err.value))


def test_data_that_cannot_feed_the_model():
    info = make_info(composite="BAA", bands=None)
    with pytest.raises(ModelError, match="needs 2 post-event scenes per pass; only 1"):
        check_model_fits(info, available_polarisations=("VV",), n_post_scenes=1, pixel_size_m=10.0)
    with pytest.raises(ModelError, match="needs VV"):
        check_model_fits(info, available_polarisations=("VH",), n_post_scenes=2, pixel_size_m=10.0)
    with pytest.raises(ModelError, match="trained at 10 m pixels"):
        check_model_fits(info, available_polarisations=("VV",), n_post_scenes=2, pixel_size_m=30.0)
