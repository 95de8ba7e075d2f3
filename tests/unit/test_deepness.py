"""The model files as the Deepness QGIS plugin reads them (metadata keys, input shape, standardisation).

Deepness (PUTvision/qgis-plugin-deepness, ``processing/models/model_base.py``) ``json.loads`` every metadata
value, takes the tile size from a fixed input shape, needs a square output, and preprocesses a tile as
``(x / 255 - mean) / std`` with the ``standardization_*`` lists.  The full pipeline on a real run is in
``tests/qgis/test_deepness.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from landslide_sar_plugin.core.inference import normalise
from landslide_sar_plugin.core.model import ModelInfo, metadata_props, neutral_inputs, read_model_info

MODELS = Path(__file__).resolve().parents[2] / "landslide_sar_plugin" / "models"
DEEPNESS_KEYS = ("model_type", "class_names", "resolution", "tile_size", "tiles_overlap", "standardization_mean",
                 "standardization_std", "seg_thresh")


def info(**kw):
    base = dict(composite="BAA", band_names=["VV_pre", "VV_post1", "VV_post2"], tile_size=64, tile_overlap=16,
                normalisation={"kind": "standard", "mean": [-9.0, -10.0, -11.0], "std": [3.0, 4.0, 5.0]},
                threshold=0.4, pixel_size_m=10.0, nodata_fill=-0.5)
    base.update(kw)
    return ModelInfo(**base)


def test_every_deepness_key_is_json_as_deepness_parses_it():
    props = metadata_props(info())
    parsed = {k: json.loads(props[k]) for k in DEEPNESS_KEYS}  # Deepness: json.loads(custom_metadata_map[k])
    assert str(parsed["model_type"]).capitalize() == "Segmentor"
    names = sorted(parsed["class_names"].items(), key=lambda kv: int(kv[0]))
    assert [int(k) for k, _ in names] == [0, 1] and names[1][1] == "landslide"
    assert parsed["resolution"] == 1000.0 and parsed["tile_size"] == 64 and parsed["tiles_overlap"] == 25
    assert parsed["seg_thresh"] == pytest.approx(0.4)


@pytest.mark.parametrize("norm", [
    {"kind": "standard", "mean": [-9.0, -10.0, 24.0], "std": [3.0, 4.0, 18.0]},
    {"kind": "minmax", "min": [-30.0, -30.0, 0.0], "max": [5.0, 5.0, 90.0]},
])
def test_deepness_standardisation_of_x_over_255_equals_ours(norm):
    model = info(normalisation=norm, nodata_fill=0.0)
    props = metadata_props(model)
    mean = np.array([float(v) for v in json.loads(props["standardization_mean"])], np.float32)
    std = np.array([float(v) for v in json.loads(props["standardization_std"])], np.float32)
    x = np.random.default_rng(0).normal(-10, 6, size=(3, 8, 8)).astype(np.float32)  # dB and degrees, not 0..255
    nhwc = np.transpose(x, (1, 2, 0))[None]
    theirs = np.transpose((np.float32(nhwc * 1.0 / 255.0) - mean) / std, (0, 3, 1, 2))[0]
    assert np.allclose(theirs, normalise(x, model), atol=1e-4)


def test_the_composite_fill_value_is_what_the_network_sees_where_an_input_is_nan():
    model = info()
    x = np.full((3, 2, 2), np.nan, np.float32)
    filled = np.broadcast_to(np.array(neutral_inputs(model), np.float32)[:, None, None], x.shape)
    assert np.allclose(normalise(filled, model), normalise(x, model))
    assert np.allclose(normalise(x, model), -0.5)


@pytest.mark.parametrize("name", ["landslide_unet.onnx", "landslide_unet_deepness.onnx"])
def test_the_shipped_files_carry_the_fixed_metadata(name):
    onnx = pytest.importorskip("onnx")
    path = MODELS / name
    proto = onnx.load(str(path), load_external_data=False)
    props = {p.key: p.value for p in proto.metadata_props}
    for key in DEEPNESS_KEYS:
        json.loads(props[key])
    ours = read_model_info(path)
    assert json.loads(props["standardization_std"]) == pytest.approx([s / 255 for s in ours.normalisation["std"]])
    shape = [d.dim_param or d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    out = [d.dim_param or d.dim_value for d in proto.graph.output[0].type.tensor_type.shape.dim]
    if name.endswith("_deepness.onnx"):  # Deepness: tile size = input size, square output
        assert shape[1:] == [ours.n_bands, ours.tile_size, ours.tile_size] and out[1:] == [1, 64, 64]
    else:  # the plugin's own tiled inference takes any tile size
        assert shape[2:] == ["height", "width"]


def test_both_shipped_files_give_the_same_probabilities():
    ort = pytest.importorskip("onnxruntime")
    n_bands = read_model_info(MODELS / "landslide_unet.onnx").n_bands
    x = np.random.default_rng(1).normal(size=(2, n_bands, 64, 64)).astype(np.float32)
    a, b = (ort.InferenceSession(str(MODELS / n), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
            for n in ("landslide_unet.onnx", "landslide_unet_deepness.onnx"))
    assert np.abs(a - b).max() < 1e-5
