"""The shipped model run the way the Deepness QGIS plugin runs it, on a run's composite.tif, against our inference.

Deepness's steps, followed as its code does them (PUTvision/qgis-plugin-deepness: ``model_base.py``,
``preprocessing_utils.py``, ``processing_utils.get_tile_image``, ``tile_params.py``, ``map_processor*.py``;
re-implemented here, not copied):

1. open the ONNX with onnxruntime; read ``custom_metadata_map``; ``json.loads`` each key; the tile size is the
   input's fixed height; the overlap in pixels is ``int(tile * percent / 100 * 2) // 2``; stride = tile - overlap;
2. per tile, read every band of the raster layer with the QGIS data provider's ``block()`` (bilinear provider
   resampling switched on) at the model's resolution, as float32 ``(tile, tile, 1)`` arrays, concatenated NHWC;
3. keep the first ``channels`` bands, ``x * 1/255`` in float32, ``(x - mean) / std``, NHWC -> NCHW, run;
4. probabilities below ``seg_thresh`` -> 0, then ``!= 0`` -> class 1 (a one-channel output is a binary mask);
5. write each tile's centre (half the overlap cut on inner sides, not on the image border) into the full mask.

The composite is cropped to ``tile + n * stride`` pixels so Deepness needs no padding beyond the raster.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "landslide_sar_plugin" / "sample_data"
MODELS = ROOT / "landslide_sar_plugin" / "models"
EVENT = json.loads((SAMPLE / "event.json").read_text())["config"]["event_time"]


@pytest.fixture(scope="module")
def composite(qgis_app, tmp_path_factory):
    pytest.importorskip("onnxruntime")
    import rasterio
    from rasterio.windows import Window

    from landslide_sar_plugin.core.catalog import parse_time
    from landslide_sar_plugin.core.detect import DetectParams
    from landslide_sar_plugin.core.detect_model import run_model_detection

    out = tmp_path_factory.mktemp("deepness")
    result = run_model_detection(SAMPLE / "scenes", SAMPLE / "dem.tif", out / "run",
                                 DetectParams(event_time=parse_time(EVENT)), MODELS / "landslide_unet.onnx",
                                 write_composite=True)
    path = result.files["composite"]  # one input for both passes (the joint DCHANGE2P composite)
    tile, stride = 64, 48
    size = tile + stride * ((min(result.grid.width, result.grid.height) - tile) // stride)
    cropped = out / "composite_crop.tif"
    with rasterio.open(path) as src:
        profile = src.profile | {"width": size, "height": size, "driver": "GTiff"}
        profile.pop("blockxsize", None), profile.pop("blockysize", None), profile.pop("tiled", None)
        data = src.read(window=Window(0, 0, size, size))
        with rasterio.open(cropped, "w", **profile) as dst:
            dst.write(data)
    return cropped, data


def deepness_mask(model_path: Path, raster_path: Path, meta_override: dict | None = None) -> np.ndarray:
    """The binary landslide mask Deepness would produce (steps 1-5 of the module docstring)."""
    import onnxruntime as ort
    from qgis.core import QgsRasterLayer, QgsRectangle

    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    meta = {**session.get_modelmeta().custom_metadata_map, **(meta_override or {})}
    assert str(json.loads(meta["model_type"])).capitalize() == "Segmentor"
    shape = session.get_inputs()[0].shape
    assert isinstance(shape[-1], int) and shape[-1] == shape[-2], "Deepness needs a fixed square input"
    out_shape = session.get_outputs()[0].shape
    assert len(out_shape) == 4 and out_shape[2] == out_shape[3]
    tile, channels = shape[-1], shape[-3]
    resolution_m = float(json.loads(meta["resolution"])) / 100
    overlap = int(tile * int(json.loads(meta["tiles_overlap"])) / 100 * 2) // 2
    stride = tile - overlap
    mean = np.array([float(v) for v in json.loads(meta["standardization_mean"])], np.float32)
    std = np.array([float(v) for v in json.loads(meta["standardization_std"])], np.float32)
    threshold = float(json.loads(meta["seg_thresh"]))

    layer = QgsRasterLayer(str(raster_path), "composite", "gdal")
    assert layer.isValid()
    provider = layer.dataProvider()
    provider.enableProviderResampling(True)
    provider.setZoomedInResamplingMethod(provider.ResamplingMethod.Bilinear)
    provider.setZoomedOutResamplingMethod(provider.ResamplingMethod.Bilinear)
    extent = layer.extent()
    width = round(extent.width() / resolution_m)
    height = round(extent.height() / resolution_m)
    nx, ny = round((width - tile) / stride) + 1, round((height - tile) / stride) + 1
    full = np.zeros((height, width), np.uint8)
    half = overlap // 2
    for by in range(ny):
        for bx in range(nx):
            x0, y0 = bx * stride, by * stride
            x_min = extent.xMinimum() + x0 * resolution_m
            y_max = extent.yMaximum() - y0 * resolution_m
            rect = QgsRectangle(x_min, y_max - tile * resolution_m, x_min + tile * resolution_m, y_max)
            bands = []
            for band in range(1, layer.bandCount() + 1):
                block = provider.block(band, rect, tile, tile)
                bands.append(np.frombuffer(bytes(block.data()), dtype=np.float32).reshape(tile, tile, 1))
            img = np.concatenate(bands, axis=2)[None]                      # NHWC, raw values
            x = img[:, :, :, :channels]
            x = np.float32(x * 1.0 / 255.0)
            x = (x - mean) / std
            x = np.transpose(x, (0, 3, 1, 2))
            result = session.run(None, {session.get_inputs()[0].name: x})[0]
            result[result < threshold] = 0.0
            mask = (result != 0).astype(int)[:, 0][0]
            ys0 = y0 + (0 if by == 0 else half)
            ys1 = y0 + tile - (0 if by == ny - 1 else half)
            xs0 = x0 + (0 if bx == 0 else half)
            xs1 = x0 + tile - (0 if bx == nx - 1 else half)
            full[ys0:ys1, xs0:xs1] = mask[ys0 - y0:ys1 - y0, xs0 - x0:xs1 - x0]
    return full


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def test_deepness_runs_the_shipped_model_on_composite_tif_and_agrees_with_our_inference(composite):
    from landslide_sar_plugin.core.detect_model import load_model
    from landslide_sar_plugin.core.inference import predict_array

    path, data = composite
    assert np.isfinite(data).all()  # no NaN in the input (flat-ground aspect, gaps): Deepness would spread it
    ours_model = load_model(MODELS / "landslide_unet.onnx", prefer_gpu=False)
    prob = predict_array(ours_model, data)
    ours = prob >= ours_model.info.threshold
    theirs = deepness_mask(MODELS / "landslide_unet_deepness.onnx", path).astype(bool)
    assert theirs.shape == ours.shape
    score = iou(theirs, ours)
    assert ours.sum() > 500 and score >= 0.9, f"IoU {score:.3f}"
    # Without the /255 correction (our dB mean/std given to Deepness as they are), its map is a different one.
    props = {k: v for k, v in ours_model.info.normalisation.items() if k in ("mean", "std")}
    raw = deepness_mask(MODELS / "landslide_unet_deepness.onnx", path,
                        {"standardization_mean": json.dumps(props["mean"]),
                         "standardization_std": json.dumps(props["std"])}).astype(bool)
    assert iou(raw, ours) < 0.5
