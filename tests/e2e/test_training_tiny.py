"""The tiny version of `make train-demo`: simulate -> chips -> train 1 epoch -> ONNX -> onnxruntime -> metrics,
then the analyst loop (fine-tune from an inventory into a NEW model, never overwriting).  SYNTHETIC data."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

from landslide_sar_plugin.core.gpkg import Feature, read_features, write_features  # noqa: E402
from landslide_sar_plugin.core.model import read_model_info  # noqa: E402
from training import cli  # noqa: E402
from training.pipeline import DemoPlan, EventSpec, default_train_config, train_demo  # noqa: E402

pytestmark = pytest.mark.slow


def test_tiny_train_export_infer_and_finetune(tmp_path):
    plan = DemoPlan(train=[EventSpec(11, "earthquake", 128), EventSpec(12, "rain", 128)],
                    val=[EventSpec(13, "earthquake", 192)], test=[EventSpec(14, "earthquake", 128)],
                    recipe="SAR4+terrain", train_stride=32)
    cfg = default_train_config(max_epochs=1, base_filters=4, depth=2)
    out = tmp_path / "models"
    work = tmp_path / "work"
    metrics = train_demo(out, work=work, plan=plan, cfg=cfg, keep_work=True, log=lambda *_: None)

    onnx_path = out / "landslide_unet.onnx"
    info = read_model_info(onnx_path)
    assert info.composite == "SAR4+terrain" and info.n_bands == 7 and info.tile_size == 64
    assert info.synthetic_training_data and info.training_events == ["sim_earthquake_11", "sim_rain_12"]
    assert 0.0 <= info.threshold <= 1.0 and len(info.training_data_sha256) == 64
    assert metrics["onnx_parity_max_abs_diff"] < 1e-4
    ev = metrics["results"]["events"]["sim_earthquake_14"]
    for key in ("precision", "recall", "f1", "iou", "mcc"):
        assert key in ev["model"]["pixel"]
    assert ev["model"]["no_skill_auprc"] > 0 and "best_f1" in ev["model"]
    assert ev["a_ratio"]["best"]["f1"] is not None and "default" in ev["a_ratio"]
    assert (out / "landslide_unet.pt").is_file()
    card = (out / "landslide_unet.md").read_text()
    assert "NOT been validated on real Sentinel-1 data" in card and "SYNTHETIC" in card
    assert json.loads((out / "landslide_unet_metrics.json").read_text())["synthetic_training_data"] is True
    assert (out / "landslide_unet_report" / "pr_curve.png").read_bytes()[:4] == b"\x89PNG"

    # analyst loop: an inventory exported from the plugin (statuses) -> a NEW fine-tuned model
    event_dir = work / "events" / "sim_earthquake_13"
    truth, crs = read_features(event_dir / "truth" / "landslides.gpkg")
    feats = []
    for i, f in enumerate(truth):
        status = ("accepted", "edited", "proposed")[i % 3]
        feats.append(Feature(f.geometry, {"uuid": f"u{i}", "event_id": "ev13", "status": status}))
    x0, y0 = json.loads((event_dir / "event.json").read_text())["grid"]["transform"][2::3][:2]
    square = {"type": "Polygon", "coordinates": [[(x0, y0), (x0 + 200, y0), (x0 + 200, y0 - 200), (x0, y0 - 200),
                                                   (x0, y0)]]}
    feats.append(Feature(square, {"uuid": "neg", "event_id": "ev13", "status": "rejected"}))
    inv = write_features(tmp_path / "inventory.gpkg", "landslides", feats, crs=crs,
                         fields=[("uuid", "TEXT"), ("event_id", "TEXT"), ("status", "TEXT")])
    event_time = json.loads((event_dir / "event.json").read_text())["event_time"]
    new_dir = tmp_path / "new_model"
    args = ["finetune", "--inventory", str(inv), "--scenes", str(event_dir / "scenes"), "--dem",
            str(event_dir / "dem.tif"), "--event", event_time, "--event-id", "ev13", "--model", str(onnx_path),
            "--out", str(new_dir), "--epochs", "1", "--name", "ft1", "--block", "64"]
    assert cli.main(args) == 0
    new = read_model_info(new_dir / "ft1.onnx")
    assert new.training_events[-1] == "ev13" and new.composite == info.composite
    assert (new_dir / "ft1.md").is_file() and (new_dir / "ft1_metrics.json").is_file()
    before = (new_dir / "ft1.onnx").read_bytes()
    assert cli.main(args) == 2  # refuses to overwrite
    assert (new_dir / "ft1.onnx").read_bytes() == before
    assert np.isfinite(json.loads((new_dir / "ft1_metrics.json").read_text())["threshold"])
