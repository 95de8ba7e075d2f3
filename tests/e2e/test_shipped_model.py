"""The shipped U-Net through the full path (scenes -> composites -> tiled inference -> candidates) on the sample.

The sample scene (seed 20180906) is not among the model's training, validation or test events.  Measured
when the model was shipped: model F1 0.695, A_ratio 0.613; the floor leaves room for floating-point
differences between library versions, not for a worse model.  SYNTHETIC data.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("onnxruntime")

from landslide_sar_plugin.core.catalog import parse_time  # noqa: E402
from landslide_sar_plugin.core.detect import DetectParams, run_detection  # noqa: E402
from landslide_sar_plugin.core.detect_model import run_model_detection  # noqa: E402
from landslide_sar_plugin.core.metrics import evaluate_files  # noqa: E402
from landslide_sar_plugin.core.model import read_model_info  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "landslide_sar_plugin" / "sample_data"
MODEL = ROOT / "landslide_sar_plugin" / "models" / "landslide_unet.onnx"
pytestmark = pytest.mark.slow


def test_shipped_model_contract_and_card():
    info = read_model_info(MODEL)
    assert info.synthetic_training_data is True
    assert MODEL.stat().st_size < 5 * 1024 * 1024
    card = MODEL.with_suffix(".md").read_text()
    assert "SYNTHETIC" in card and "NOT been validated on real Sentinel-1" in card
    sample_seed = json.loads((SAMPLE / "event.json").read_text())["seed"]
    assert not any(str(sample_seed) in e for e in info.training_events)


@pytest.mark.xfail(strict=True, reason=(
    "the shipped U-Net was trained on simulator 1.x scenes; on the 2.0 sample (real-calibrated noise) it "
    "measures F1 0.105 (precision 0.056, recall 0.825) against A_ratio 0.135. The lead retrains it (issue 10); "
    "strict: remove this marker when the retrained model passes."))
def test_shipped_model_beats_a_ratio_on_the_sample_scene(tmp_path):
    event = parse_time(json.loads((SAMPLE / "event.json").read_text())["event_time"])
    truth = SAMPLE / "truth" / "truth_mask.tif"
    params = DetectParams(event_time=event)
    model = run_model_detection(SAMPLE / "scenes", SAMPLE / "dem.tif", tmp_path / "model", params, MODEL)
    a_ratio = run_detection(SAMPLE / "scenes", SAMPLE / "dem.tif", tmp_path / "a_ratio", params)
    f1_model = evaluate_files(model.files["candidates"], truth)["pixel"]["f1"]
    f1_a_ratio = evaluate_files(a_ratio.files["candidates"], truth)["pixel"]["f1"]
    assert f1_model >= 0.65, f1_model
    assert f1_model > f1_a_ratio + 0.03, (f1_model, f1_a_ratio)
    run = json.loads((tmp_path / "model" / "run.json").read_text())
    assert run["model_sha256"] == read_model_info(MODEL).sha256
