"""The tiny version of `make train-demo`: families -> chips -> train 1 epoch -> calibrate and threshold on
validation -> ONNX -> every test family through the plugin's runs -> card and metrics; then the analyst loop
(fine-tune from an inventory into a NEW model, never overwriting).  SYNTHETIC events and REAL backgrounds
with SYNTHETIC slides imprinted (the shipped fixture)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

from landslide_sar_plugin.core.gpkg import Feature, read_features, write_features  # noqa: E402
from landslide_sar_plugin.core.model import read_model_info  # noqa: E402
from training import cli  # noqa: E402
from training.experiment import Plan  # noqa: E402
from training.pipeline import default_train_config, train_demo  # noqa: E402

pytestmark = pytest.mark.slow


def test_tiny_train_export_infer_card_and_finetune(tmp_path, monkeypatch):
    from landslide_sar_plugin.core.simulate import families

    # two real training cases instead of ~90, so the test stays small; on a burst of the shipped fixture, so a
    # clone without ../shared/realdata runs it too (the real training burst T137-292319-IW2 is not shipped)
    few = [dataclasses.replace(s, burst="T137-292321-IW2", name=s.name.replace(families.TRAIN_BURST, "T137-292321-IW2"))
           for s in families.training_real_cases(1)[:2]]
    monkeypatch.setattr(families, "training_real_cases", lambda n=1: few)
    plan = Plan(sim_train=2, sim_train_30m=1, sim_size=128, sim_val=1, real_train_per_window=1, real_val=False,
                sim_test=1, altgen_test=1, altgen_size=128, real_test=False, test_one_pass=True)
    cfg = default_train_config(max_epochs=1, base_filters=4, depth=2)
    out, work = tmp_path / "models", tmp_path / "work"
    metrics = train_demo(out, work=work, plan=plan, cfg=cfg, keep_work=True, log=lambda *_: None)

    onnx_path = out / "landslide_unet.onnx"
    info = read_model_info(onnx_path)
    assert info.composite == "DCHANGE2P" and info.n_bands == 13 and info.tile_size == 64
    assert info.pixel_size_range_m == [10.0, 30.0] and info.calibration["kind"] == "platt"
    assert info.real_background_training and len(info.training_events) == 5
    assert 0.0 < info.threshold < 1.0 and len(info.training_data_sha256) == 64
    assert metrics["context"]["onnx_parity_max_abs_diff"] < 1e-4
    fams = {e["family"] for e in metrics["events"]}
    assert fams == {"simulator", "altgen"}
    sim = next(e for e in metrics["events"] if e["family"] == "simulator")
    for key in ("f1", "precision", "recall", "auprc", "no_skill_auprc"):
        assert key in sim["model"] and key in sim["a_ratio"]
    assert set(sim["one_pass"]["model"]) == {"asc", "desc"} and "model_choice" in sim
    assert {t["target"].split(":")[0] for t in metrics["targets"]} >= {"simulator's unseen events"}
    assert (out / "landslide_unet.pt").is_file() and (out / "landslide_unet_report" / "report.json").is_file()
    card = (out / "landslide_unet.md").read_text()
    assert "No real landslide event was used" in card and "SYNTHETIC" in card and "altgen" in card
    assert "One pass vs both passes" in card and "ECE" in card
    assert json.loads((out / "landslide_unet_metrics.json").read_text())["validated_on_real_landslide_event"] is False

    # analyst loop: an inventory exported from the plugin (statuses) -> a NEW fine-tuned model
    ev = families.family_event("simulator", 0, work / "events", split="val", size=192)
    truth, crs = read_features(ev.labels)
    feats = []
    for i, f in enumerate(truth):
        status = ("accepted", "edited", "proposed")[i % 3]
        feats.append(Feature(f.geometry, {"uuid": f"u{i}", "event_id": "ev13", "status": status}))
    x0, y0 = json.loads((ev.scenes_dir.parent / "event.json").read_text())["grid"]["transform"][2::3][:2]
    square = {"type": "Polygon", "coordinates": [[(x0, y0), (x0 + 200, y0), (x0 + 200, y0 - 200), (x0, y0 - 200),
                                                   (x0, y0)]]}
    feats.append(Feature(square, {"uuid": "neg", "event_id": "ev13", "status": "rejected"}))
    inv = write_features(tmp_path / "inventory.gpkg", "landslides", feats, crs=crs,
                         fields=[("uuid", "TEXT"), ("event_id", "TEXT"), ("status", "TEXT")])
    new_dir = tmp_path / "new_model"
    args = ["finetune", "--inventory", str(inv), "--scenes", str(ev.scenes_dir), "--dem", str(ev.dem), "--event",
            ev.event_time.strftime("%Y-%m-%dT%H:%M:%SZ"), "--event-id", "ev13", "--model", str(onnx_path),
            "--out", str(new_dir), "--epochs", "1", "--name", "ft1", "--block", "64"]
    assert cli.main(args) == 0
    new = read_model_info(new_dir / "ft1.onnx")
    assert new.training_events[-1] == "ev13" and new.composite == info.composite
    assert new.calibration == info.calibration  # the parent's calibration is kept
    assert (new_dir / "ft1.md").is_file() and (new_dir / "ft1_metrics.json").is_file()
    before = (new_dir / "ft1.onnx").read_bytes()
    assert cli.main(args) == 2  # refuses to overwrite
    assert (new_dir / "ft1.onnx").read_bytes() == before
    assert np.isfinite(json.loads((new_dir / "ft1_metrics.json").read_text())["threshold"])
