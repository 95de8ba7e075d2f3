"""Tiled inference: window and lattice properties, seamless blending, masking, cancel, and the full model run.

Tiny hand-built ONNX models only (see test_model.py); everything runs in a few seconds on 2 cores.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from landslide_sar_plugin.core import gpkg, simulate  # noqa: E402
from landslide_sar_plugin.core.catalog import parse_time  # noqa: E402
from landslide_sar_plugin.core.detect import DetectParams, run_detection  # noqa: E402
from landslide_sar_plugin.core.detect_model import (  # noqa: E402
    agreement_codes,
    run_model_detection,
    write_agreement,
)
from landslide_sar_plugin.core.inference import (  # noqa: E402
    TiledModel,
    block_plans,
    choose_providers,
    create_session,
    hann_weights,
    normalise,
    predict_array,
    tile_origins,
    window_1d,
)
from landslide_sar_plugin.core.model import file_sha256, read_model_info  # noqa: E402
from landslide_sar_plugin.core.staging import Cancelled  # noqa: E402

from .test_model import band0_sigmoid_model, constant_model, conv_model, make_info  # noqa: E402


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def load(path) -> TiledModel:
    return TiledModel(create_session(path), read_model_info(path), batch_size=3)


# --------------------------------------------------------------------------- weights and lattice


@pytest.mark.parametrize("tile,overlap", [(32, 8), (64, 16), (16, 0), (8, 4), (256, 32)])
def test_window_properties(tile, overlap):
    w = hann_weights(tile, overlap)
    assert w.shape == (tile, tile) and w.dtype == np.float32
    assert np.all(w > 0) and w.max() <= 1.0  # never zero: every pixel is normalisable
    if 2 * overlap < tile:
        assert w[tile // 2, tile // 2] == pytest.approx(1.0)  # full weight in the centre
    np.testing.assert_allclose(w, w.T)
    np.testing.assert_allclose(w, w[::-1, ::-1])  # symmetric
    w1 = window_1d(tile, overlap)
    if overlap:
        # two ramps overlapping by exactly `overlap` sum to one (partition of unity)
        np.testing.assert_allclose(w1[tile - overlap:] + w1[:overlap], 1.0, atol=1e-12)
        assert np.all(np.diff(w1[:overlap]) > 0)
    clamped = hann_weights(tile, overlap, (True, False, True, False))
    assert clamped[0, 0] == pytest.approx(1.0)  # border pixels get full weight
    assert clamped[-1, -1] == pytest.approx(w[-1, -1])


@pytest.mark.parametrize("length", [1, 7, 32, 33, 57, 100, 241, 1000])
@pytest.mark.parametrize("tile,overlap", [(32, 8), (32, 0), (16, 8)])
def test_tile_origins_cover_the_axis_exactly(length, tile, overlap):
    origins = tile_origins(length, tile, overlap)
    assert origins[0] == 0 and origins == sorted(set(origins))
    if length <= tile:
        assert origins == [0]
        return
    assert origins[-1] + tile == length  # ends exactly at the border
    covered = np.zeros(length, int)
    for o in origins:
        covered[o:o + tile] += 1
    assert covered.min() >= 1
    gaps = np.diff(origins)
    assert np.all(gaps <= tile - overlap)  # consecutive tiles overlap by at least `overlap`


def test_block_plans_tile_every_core_pixel():
    rows, cols, t, o = 100, 75, 32, 8
    seen = np.zeros((rows, cols), int)
    for plan in block_plans(rows, cols, t, o, 40):
        c, e = plan.core, plan.extent
        seen[c.row_off:c.row_off + c.height, c.col_off:c.col_off + c.width] += 1
        assert e.row_off <= c.row_off and e.col_off <= c.col_off
        assert e.row_off + e.height >= c.row_off + c.height and e.col_off + e.width >= c.col_off + c.width
    assert np.all(seen == 1)


def test_normalisation_standard_and_minmax_and_nan_fill():
    stack = np.array([[[1.0, np.nan]], [[10.0, 20.0]]], np.float32)
    info = make_info(composite="BAC", bands=["VV_pre", "VV_post", "VV_diff"])
    info.band_names = ["a", "b"]
    info.normalisation = {"kind": "standard", "mean": [1.0, 10.0], "std": [2.0, 5.0]}
    info.nodata_fill = -9.0
    np.testing.assert_allclose(normalise(stack, info), [[[0.0, -9.0]], [[0.0, 2.0]]])
    info.normalisation = {"kind": "minmax", "min": [0.0, 10.0], "max": [2.0, 30.0]}
    np.testing.assert_allclose(normalise(stack, info), [[[0.5, -9.0]], [[0.0, 0.5]]])


def test_providers_prefer_gpu_and_end_with_cpu():
    assert choose_providers(["CPUExecutionProvider"]) == ["CPUExecutionProvider"]
    assert choose_providers(["CUDAExecutionProvider", "CPUExecutionProvider"])[0] == "CUDAExecutionProvider"
    assert choose_providers(["DmlExecutionProvider", "CPUExecutionProvider"], prefer_gpu=False) == [
        "CPUExecutionProvider"]


# --------------------------------------------------------------------------- seamless blending


def test_constant_model_gives_a_constant_output_across_tile_and_block_borders(tmp_path):
    info = make_info(tile_size=32, tile_overlap=8)
    model = load(constant_model(tmp_path / "c.onnx", 3, 0.3, info))
    stack = np.random.default_rng(0).normal(size=(3, 101, 77)).astype(np.float32)
    for block in (None, 40, 64):
        out = predict_array(model, stack, block_size=block)
        np.testing.assert_allclose(out, 0.3, atol=1e-6)


@pytest.mark.parametrize("tile,overlap,block", [(32, 8, None), (32, 8, 33), (16, 4, 50), (32, 16, 64), (32, 0, 40)])
def test_pixelwise_model_is_reproduced_everywhere(tmp_path, tile, overlap, block):
    info = make_info(tile_size=tile, tile_overlap=overlap,
                     normalisation={"kind": "standard", "mean": [2.0, 0, 0], "std": [4.0, 1, 1]})
    model = load(band0_sigmoid_model(tmp_path / "id.onnx", 3, info))
    stack = np.random.default_rng(1).normal(0, 6, size=(3, 97, 130)).astype(np.float32)
    out = predict_array(model, stack, block_size=block)
    np.testing.assert_allclose(out, sigmoid((stack[0] - 2.0) / 4.0), atol=1e-5)


def test_grid_smaller_than_a_tile(tmp_path):
    info = make_info(tile_size=32, tile_overlap=8)
    model = load(band0_sigmoid_model(tmp_path / "id.onnx", 3, info))
    stack = np.random.default_rng(2).normal(size=(3, 20, 9)).astype(np.float32)
    np.testing.assert_allclose(predict_array(model, stack), sigmoid(stack[0]), atol=1e-5)


def test_context_model_output_does_not_depend_on_the_block_size(tmp_path):
    """A 5x5 convolution sees context: tiles on one grid-wide lattice make blocks invisible."""
    info = make_info(tile_size=32, tile_overlap=8)
    w = np.random.default_rng(3).normal(0, 0.3, size=(3, 5, 5))
    model = load(conv_model(tmp_path / "ctx.onnx", w, 0.1, info))
    stack = np.random.default_rng(4).normal(size=(3, 90, 110)).astype(np.float32)
    ref = predict_array(model, stack)
    for block in (37, 64, 100):
        np.testing.assert_allclose(predict_array(model, stack, block_size=block), ref, atol=1e-6)
    # and no seam: along tile borders the output is as smooth as elsewhere
    assert np.isfinite(ref).all() and 0 < ref.min() and ref.max() < 1


def test_nan_inputs_and_flagged_pixels_give_nan(tmp_path):
    info = make_info(tile_size=32, tile_overlap=8)
    model = load(band0_sigmoid_model(tmp_path / "id.onnx", 3, info))
    stack = np.random.default_rng(5).normal(size=(3, 50, 60)).astype(np.float32)
    stack[1, 10:15, 20:30] = np.nan  # a band other than the one the model reads
    flagged = np.zeros((50, 60), bool)
    flagged[40:45, 5:8] = True
    out = predict_array(model, stack, flagged=flagged, block_size=32)
    bad = np.zeros((50, 60), bool)
    bad[10:15, 20:30] = True
    bad |= flagged
    assert np.isnan(out[bad]).all() and np.isfinite(out[~bad]).all()
    np.testing.assert_allclose(out[~bad], sigmoid(stack[0])[~bad], atol=1e-5)


def test_cancel_raises_per_batch(tmp_path):
    info = make_info(tile_size=16, tile_overlap=4)
    model = load(band0_sigmoid_model(tmp_path / "id.onnx", 3, info))
    calls = []

    def cancelled():
        calls.append(1)
        return len(calls) > 2

    with pytest.raises(Cancelled):
        predict_array(model, np.zeros((3, 80, 80), np.float32), is_cancelled=cancelled)
    assert len(calls) == 3  # checked per batch, stops at the first True


# --------------------------------------------------------------------------- the full model run


@pytest.fixture(scope="module")
def event(tmp_path_factory):
    root = tmp_path_factory.mktemp("event")
    cfg = simulate.random_event_config(5, rows=200, cols=200)
    sim = simulate.simulate_event(root / "ev", cfg)
    return sim


def change_model(path, orbit_pass="any"):
    """BAC-like drop detector on BA_S: p = sigmoid(2 * (VV_pre - VV_post) - 4) (3x3 mean of the change)."""
    info = make_info(composite="BA_S", tile_size=64, tile_overlap=16, threshold=0.5, orbit_pass=orbit_pass,
                     normalisation={"kind": "standard", "mean": [-10.0, -10.0, 20.0], "std": [1.0, 1.0, 10.0]},
                     model_name="change-detector")
    w = np.zeros((3, 3, 3), np.float32)
    w[0] = 2.0 / 9
    w[1] = -2.0 / 9
    return conv_model(path, w, -4.0, info)


def test_full_model_path_on_a_simulated_event(tmp_path, event):
    model_path = change_model(tmp_path / "change.onnx")
    t_event = parse_time(event.config.resolved().event_time)
    params = DetectParams(event_time=t_event, block_size=64, min_area_m2=200.0)
    messages = []
    res = run_model_detection(event.out_dir / "scenes", event.dem_path, tmp_path / "model", params, model_path,
                              progress=lambda f, m: messages.append(f), layover_masks={
                                  "ASCENDING": event.geometry_paths["asc"],
                                  "DESCENDING": event.geometry_paths["desc"]})
    out = tmp_path / "model"
    for name in ("probability.tif", "candidates.gpkg", "run.json", "exceedance.tif", "heatmap.tif"):
        assert (out / name).is_file(), name
    assert not [p for p in out.iterdir() if p.name.startswith(".partial")]
    assert messages == sorted(messages) and messages[-1] == pytest.approx(1.0)
    with rasterio.open(out / "probability.tif") as src:
        prob = src.read(1)
        assert src.dtypes[0] == "float32" and np.isnan(src.nodata)
        assert src.tags()["MODEL_SHA256"] == file_sha256(model_path)
        assert src.block_shapes[0] == (512, 512) or src.height < 512  # COG layout
    valid = np.isfinite(prob)
    assert 0.5 < valid.mean() < 1.0  # layover/shadow/nodata masked, the rest predicted
    assert prob[valid].min() >= 0 and prob[valid].max() <= 1
    run = json.loads((out / "run.json").read_text())
    assert run["method"] == "model" and run["model_sha256"] == file_sha256(model_path)
    assert run["model"]["composite"] == "BA_S" and run["model"]["model_name"] == "change-detector"
    assert run["execution_provider"] == res.provider and run["orbit_passes_used"] == ["ASCENDING", "DESCENDING"]
    feats, _ = gpkg.read_features(out / "candidates.gpkg")
    assert len(feats) == res.n_candidates > 0
    props = feats[0].properties
    assert props["method"] == "model" and props["threshold"] == 0.5 and props["status"] == "proposed"
    assert props["model_name"] == "change-detector" and props["model_sha256"] == file_sha256(model_path)
    assert {"id", "area_m2", "mean_score", "max_score", "event_id", "uuid"} <= set(props)


def test_single_pass_model_and_agreement(tmp_path, event):
    model_path = change_model(tmp_path / "asc.onnx", orbit_pass="ASCENDING")
    t_event = parse_time(event.config.resolved().event_time)
    params = DetectParams(event_time=t_event, block_size=128, min_area_m2=200.0)
    res = run_model_detection(event.out_dir / "scenes", event.dem_path, tmp_path / "model", params, model_path)
    assert res.passes_used == ["ASCENDING"]
    run_detection(event.out_dir / "scenes", event.dem_path, tmp_path / "a_ratio", params)
    path = write_agreement(tmp_path / "a_ratio", tmp_path / "model", tmp_path / "agreement.tif", block_size=64)
    with rasterio.open(path) as src:
        codes = src.read(1)
        assert src.dtypes[0] == "uint8" and src.nodata == 255
    assert set(np.unique(codes)) <= {0, 1, 2, 3, 255} and (codes == 3).any() and (codes == 0).any()
    np.testing.assert_array_equal(agreement_codes(np.array([0, 1, 0, 1, 255, 1]), np.array([0, 0, 1, 1, 1, 255])),
                                  [0, 1, 2, 3, 255, 255])


def test_cancelled_model_run_leaves_no_file(tmp_path, event):
    model_path = change_model(tmp_path / "change.onnx")
    params = DetectParams(event_time=parse_time(event.config.resolved().event_time), block_size=64)
    n = []

    def cancel():
        n.append(1)
        return len(n) > 8  # inside inference, after a few batches

    with pytest.raises(Cancelled):
        run_model_detection(event.out_dir / "scenes", event.dem_path, tmp_path / "out", params, model_path,
                            is_cancelled=cancel)
    assert not (tmp_path / "out").exists()  # the run created the folder, so its cancel removed it again


def test_model_that_needs_missing_data_fails_before_any_pixel(tmp_path, event):
    info = make_info(composite="BAA", tile_size=32, tile_overlap=8, orbit_pass="DESCENDING")
    path = band0_sigmoid_model(tmp_path / "baa.onnx", 3, info)
    params = DetectParams(event_time=parse_time(event.config.resolved().event_time), post_days=10.0)
    from landslide_sar_plugin.core.model import ModelError
    from landslide_sar_plugin.core.staging import DetectionError

    with pytest.raises((ModelError, DetectionError), match="post-event scene"):
        run_model_detection(event.out_dir / "scenes", event.dem_path, tmp_path / "o", params, path)
    assert not (tmp_path / "o").exists() or list((tmp_path / "o").iterdir()) == []


# --------------------------------------------------------------------------- command line


def _cli_args(event, out):
    return ["detect", "--scenes", str(event.out_dir / "scenes"), "--dem", str(event.dem_path), "--event",
            event.config.resolved().event_time, "--out", str(out), "--block-size", "128", "--min-area", "200"]


def test_cli_method_both_writes_both_runs_and_agreement(tmp_path, event, capsys):
    from landslide_sar_plugin import cli

    model_path = change_model(tmp_path / "change.onnx")
    code = cli.main(_cli_args(event, tmp_path / "out") + ["--method", "both", "--model", str(model_path),
                                                          "--truth", str(event.truth_mask_path)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    out = tmp_path / "out"
    assert (out / "a_ratio" / "a_ratio.tif").is_file() and (out / "model" / "probability.tif").is_file()
    assert (out / "agreement.tif").is_file() and (out / "model" / "evaluation.json").is_file()
    assert "provider CPUExecutionProvider" in printed and "[model]" in printed and "agreement" in printed


def test_cli_model_errors_are_one_line(tmp_path, event, capsys, monkeypatch):
    from landslide_sar_plugin import cli
    from landslide_sar_plugin.commands import detect as detect_cmd
    from landslide_sar_plugin.core.model import ONNXRUNTIME_INSTALL

    monkeypatch.setattr(detect_cmd, "shipped_model_path", lambda: tmp_path / "none.onnx")
    assert cli.main(_cli_args(event, tmp_path / "o1") + ["--method", "model"]) == 1
    assert "pass --model FILE or train one with `make train-demo`" in capsys.readouterr().err
    model_path = change_model(tmp_path / "change.onnx")
    monkeypatch.setitem(__import__("sys").modules, "onnxruntime", None)  # import fails as if not installed
    assert cli.main(_cli_args(event, tmp_path / "o2") + ["--method", "model", "--model", str(model_path)]) == 1
    err = capsys.readouterr().err
    assert ONNXRUNTIME_INSTALL in err and err.count("\n") == 1
