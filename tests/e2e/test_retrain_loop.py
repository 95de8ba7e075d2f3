"""A tiny real retrain through ``python -m training retrain`` (the command the plugin runs), on a crop of the
SYNTHETIC sample scene: a model run with the shipped model, a scripted review of a few candidates exported
with the plugin's own code, 1 epoch and K = 2 held-out folds; then SIGTERM in the middle of a retrain."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

from landslide_sar_plugin.core import catalog as cat  # noqa: E402
from landslide_sar_plugin.core.detect import DetectParams  # noqa: E402
from landslide_sar_plugin.core.detect_model import run_model_detection  # noqa: E402
from landslide_sar_plugin.core.grid import parse_aoi  # noqa: E402
from landslide_sar_plugin.core.inventory import export_reviewed  # noqa: E402
from landslide_sar_plugin.core.model import read_model_info  # noqa: E402
from tests.bench.bench_loop import scripted_review, truth_of  # noqa: E402

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "landslide_sar_plugin" / "sample_data"
SHIPPED = ROOT / "landslide_sar_plugin" / "models" / "landslide_unet.onnx"
CROP = "558630,4747800,561630,4750800,EPSG:32654"  # the sample's north-west 300 x 300 px


class _Sample:
    truth_mask = SAMPLE / "truth" / "truth_mask.tif"


@pytest.fixture(scope="module")
def reviewed_run(tmp_path_factory):
    """(run folder, inventory): the shipped model on the crop, 12 candidates reviewed, 2 slides drawn."""
    work = tmp_path_factory.mktemp("retrain_loop")
    params = DetectParams(event_time=cat.parse_time("2018-09-05T18:07:59Z"), aoi=parse_aoi(CROP),
                          event_id="sample_crop")
    run = work / "run"
    run_model_detection(SAMPLE / "scenes", SAMPLE / "dem.tif", run, params, SHIPPED, prefer_gpu=False, threads=2)
    grid, truth = truth_of(_Sample, run / "probability.tif")
    counts = scripted_review(run / "candidates.gpkg", truth, grid.transform, 12, west_cols=grid.width, out=work /
                             "reviewed.gpkg")
    assert counts["accepted"] >= 2 and counts["decisions"] == 12
    inv = work / "inventory.gpkg"
    export_reviewed(work / "reviewed.gpkg", inv, reviewer="e2e test", run_json=run / "run.json")
    return run, inv


def _command(run, inv, models, *extra):
    return [sys.executable, "-m", "training", "retrain", "--run", str(run), "--inventory", str(inv), "--out",
            str(models), "--progress-json", *map(str, extra)]


def _env():
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def test_tiny_retrain_through_the_command(reviewed_run, tmp_path):
    run, inv = reviewed_run
    models = tmp_path / "models"
    t0 = time.perf_counter()
    proc = subprocess.run(_command(run, inv, models, "--folds", 2, "--epochs", 1, "--seed", 3), cwd=ROOT,
                          env=_env(), capture_output=True, text=True, timeout=300)
    seconds = time.perf_counter() - t0
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(ln) for ln in proc.stdout.splitlines()]
    assert all(set(ln) == {"progress", "message"} for ln in lines[:-1])
    assert all(0.0 <= ln["progress"] <= 1.0 for ln in lines[:-1])
    progress = [ln["progress"] for ln in lines[:-1]]
    assert progress == sorted(progress) and any("fold 2 of 2" in ln["message"] for ln in lines[:-1])
    done = lines[-1]
    assert done["done"] is True and sum(1 for ln in lines if "done" in ln) == 1
    model, card, metrics_path = Path(done["model"]), Path(done["card"]), Path(done["metrics"])
    stem = model.stem
    assert model.parent == models and stem.startswith("landslide_unet_rt_sample-crop_")
    assert sorted(p.name for p in models.iterdir()) == sorted(
        [f"{stem}.onnx", f"{stem}.pt", f"{stem}.md", f"{stem}_metrics.json"])

    info = read_model_info(model)
    parent = read_model_info(SHIPPED)
    assert info.model_name == stem and info.composite == parent.composite and info.calibration == parent.calibration
    assert info.sha256 != parent.sha256 and "sample_crop" in info.training_events

    metrics = json.loads(metrics_path.read_text())
    assert metrics["folds"] == 2 and metrics["event_id"] == "sample_crop" and metrics["n_landslides"] >= 2
    for side in ("before", "after"):
        for key in ("f1", "precision", "recall"):
            assert math.isfinite(metrics[side][key]) and 0.0 <= metrics[side][key] <= 1.0
    assert metrics["onnx_parity_max_abs_diff"] < 1e-4 and metrics["base_model"] == str(SHIPPED)
    text = card.read_text()
    assert "not validated on an independent real event" in text and parent.sha256 in text
    assert seconds < 90, f"the tiny retrain took {seconds:.0f} s"

    # a second retrain never overwrites the first
    again = subprocess.run(_command(run, inv, models, "--folds", 2, "--epochs", 1, "--seed", 3), cwd=ROOT,
                           env=_env(), capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    second = Path(json.loads(again.stdout.splitlines()[-1])["model"])
    assert second != model and model.is_file()
    assert json.loads((models / f"{second.stem}_metrics.json").read_text())["after"] == metrics["after"]  # seeded


def test_sigterm_mid_run_leaves_the_models_folder_as_it_was(reviewed_run, tmp_path):
    run, inv = reviewed_run
    models = tmp_path / "models"
    models.mkdir()
    (models / "previous.onnx").write_bytes(b"previous model")
    proc = subprocess.Popen(_command(run, inv, models, "--folds", 2, "--epochs", 30), cwd=ROOT, env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for line in proc.stdout:
            if "fold 1 of 2: epoch" in line:
                break
        proc.send_signal(signal.SIGTERM)
        t0 = time.perf_counter()
        rc = proc.wait(timeout=60)
        stopped_in = time.perf_counter() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
    err = proc.stderr.read()
    assert rc not in (0, None) and "stopped" in err and "Traceback" not in err
    assert stopped_in < 20
    assert sorted(p.name for p in models.iterdir()) == ["previous.onnx"]
    assert (models / "previous.onnx").read_bytes() == b"previous model"


def test_the_plugins_runner_drives_the_real_command(reviewed_run, tmp_path):
    """The plugin's side of the contract (core.retrain_runner, what the dock and Processing call) with the real
    training command instead of the test double: progress relayed, the new model and its figures returned."""
    from landslide_sar_plugin.core import retrain_runner as rr

    run, inv = reviewed_run
    models = tmp_path / "models"
    event_id = json.loads((run / "run.json").read_text())["event_id"]
    n_pos, n_neg = rr.check_inventory_rows(inv, event_id)
    assert n_pos >= 2
    rr.check_model_checkpoint(SHIPPED)
    cmd = rr.retrain_command(sys.executable, run, inv, models, model=SHIPPED, seed=1)
    cmd[-1:-1] = ["--folds", "2", "--epochs", "1"]  # tiny (the plugin passes neither)
    seen = []
    result = rr.run_retrain(cmd, rr.training_environment([ROOT]), models, cwd=ROOT,
                            progress=lambda f, msg: seen.append((f, msg)))
    assert result.model.is_file() and result.model.parent == models and result.model != SHIPPED
    assert read_model_info(result.model).composite == read_model_info(SHIPPED).composite
    assert result.metrics is not None and result.metrics.folds == 2 and result.metrics.event_id == event_id
    assert math.isfinite(result.metrics.before["f1"]) and math.isfinite(result.metrics.after["f1"])
    assert "held-out folds" in result.metrics.describe()
    assert seen and all(0.0 <= f <= 1.0 for f, _ in seen)
    assert result.model in rr.model_files(models)


def test_retrain_from_the_installed_plugin_zip(reviewed_run, tmp_path):
    """A plugin installed from the release zip retrains: the zip carries the training package (inside the plugin
    folder) and the shipped model's weights, and the command runs from there, not from this checkout."""
    import importlib.util
    import zipfile

    spec = importlib.util.spec_from_file_location("package_plugin", ROOT / ".ci" / "package_plugin.py")
    packager = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(packager)
    plugins = tmp_path / "profile" / "python" / "plugins"
    with zipfile.ZipFile(packager.build(tmp_path / "dist")) as zf:
        zf.extractall(plugins)
    plugin = plugins / "landslide_sar_plugin"
    assert (plugin / "training" / "__main__.py").is_file() and (plugin / "models" / "landslide_unet.pt").is_file()
    run, inv = reviewed_run
    models = tmp_path / "models"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(plugin), str(plugins)])}  # as the dock builds it
    proc = subprocess.run([sys.executable, "-m", "training", "retrain", "--run", str(run), "--inventory", str(inv),
                           "--out", str(models), "--model", str(plugin / "models" / "landslide_unet.onnx"),
                           "--folds", "2", "--epochs", "1", "--progress-json"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    done = json.loads(proc.stdout.splitlines()[-1])
    assert done["done"] is True and Path(done["model"]).is_file()
    metrics = json.loads(Path(done["metrics"]).read_text())
    assert Path(metrics["base_model"]).resolve().is_relative_to(plugin.resolve())
