"""Retrain in the dock and in Processing, with the TEST DOUBLE of ``python -m training retrain``
(tests/doubles/retrain): progress, cancel, failure, bad input, the PyTorch offer, and a success that adds and
selects a model (the old one kept) and detects again into a new run folder."""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

import pytest

from .conftest import wait_until
from .test_dock import dock, run_detection  # noqa: F401 (fixture)
from .test_processing import no_pam_sidecars, provider  # noqa: F401 (fixture)

ROOT = Path(__file__).resolve().parents[2]
DOUBLE = ROOT / "tests" / "doubles" / "retrain"
SHIPPED = ROOT / "landslide_sar_plugin" / "models" / "landslide_unet.onnx"


@pytest.fixture
def retrain_dock(dock, tmp_path, monkeypatch):  # noqa: F811
    """A dock after an A_ratio run, three candidates reviewed, wired to the double and a private models folder."""
    monkeypatch.setenv("LANDSLIDE_RETRAIN_DOUBLE", "success")
    monkeypatch.setenv("LANDSLIDE_RETRAIN_DOUBLE_ARGS", str(tmp_path / "args.json"))
    monkeypatch.setenv("LANDSLIDE_RETRAIN_DOUBLE_CHILD", str(tmp_path / "child.pid"))
    dock.models_dir = tmp_path / "models"
    dock.training_search = [DOUBLE]
    dock.retrain_python.setFilePath(sys.executable)  # the venv has PyTorch (the double does not need it)
    dock.inventory_file.setFilePath(str(tmp_path / "inventory.gpkg"))
    dock.reviewer.setText("tester")
    run_detection(dock)
    assert dock.run_result is not None, dock.status_label.text()
    for status in ("accepted", "accepted", "rejected"):
        dock.queue_next()
        dock.set_selected_status(status)
    return dock


def runs_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if (p / "run.json").is_file())


def test_a_retrain_adds_and_selects_the_new_model_and_detects_again_into_a_new_run(retrain_dock, tmp_path):
    dock = retrain_dock  # noqa: F811
    first_run = dock.run_result.out_dir
    progress = []
    dock.retrain_button.click()
    assert dock.task is not None and not dock.retrain_button.isEnabled()
    dock.task.progressChanged.connect(progress.append)
    wait_until(lambda: dock.task is None or dock.task.description() != "Retraining the landslide model")
    new_model = tmp_path / "models" / "landslide_unet_ft_s0.onnx"
    assert new_model.is_file() and SHIPPED.is_file()
    assert "F1 0.41 -> 0.58" in dock.retrain_info.text() and "landslide_unet.onnx stays" in dock.retrain_info.text()
    assert progress and max(progress) == pytest.approx(100.0)
    items = [dock.model_choice.itemData(i) for i in range(dock.model_choice.count())]
    assert str(SHIPPED) in items and str(new_model) in items  # the old model stays selectable
    assert dock.model_choice.currentData() == str(new_model) and dock.current_model() == str(new_model)
    args = json.loads((tmp_path / "args.json").read_text())
    assert args[args.index("--run") + 1] == str(first_run)
    assert args[args.index("--inventory") + 1] == str(tmp_path / "inventory.gpkg")
    assert args[args.index("--model") + 1] == str(SHIPPED)
    assert args[args.index("--event-id") + 1] == dock.run_result.run_info["event_id"]
    assert "--progress-json" in args
    wait_until(lambda: dock.task is None)  # the re-detection with the new model
    second = dock.run_result
    assert second.out_dir != first_run and second.out_dir.parent == first_run.parent
    info = json.loads((second.out_dir / "run.json").read_text())
    assert info["method"] == "model" and info["model"]["model_name"] == "landslide_unet_ft"
    assert (first_run / "run.json").is_file()  # the reviewed run is untouched
    assert "U-Net" in dock.run_layers["group"].name()


def test_a_failed_retrain_says_the_commands_sentence_and_keeps_the_model(retrain_dock, tmp_path, monkeypatch):
    dock = retrain_dock  # noqa: F811
    monkeypatch.setenv("LANDSLIDE_RETRAIN_DOUBLE", "fail")
    first_run = dock.run_result.out_dir
    dock.retrain_button.click()
    wait_until(lambda: dock.task is None)
    assert "Retraining failed: the inventory holds no reviewed polygon of event" in dock.status_label.text()
    assert dock.current_model() == str(SHIPPED) and "stays selected" in dock.retrain_info.text()
    assert list((tmp_path / "models").iterdir()) == []
    assert dock.run_result.out_dir == first_run  # no re-detection


@pytest.mark.skipif(sys.platform.startswith("win"), reason="process groups are POSIX")
def test_cancel_stops_the_training_process_and_keeps_the_model(retrain_dock, tmp_path, monkeypatch):
    dock = retrain_dock  # noqa: F811
    monkeypatch.setenv("LANDSLIDE_RETRAIN_DOUBLE", "slow")
    dock.retrain_button.click()
    wait_until(lambda: (tmp_path / "child.pid").is_file() and dock.progress.value() > 0, 60)
    started = time.monotonic()
    dock.cancel_button.click()
    wait_until(lambda: dock.task is None, 30)
    assert time.monotonic() - started < 15
    assert "Retraining cancelled; no new model was kept" in dock.status_label.text()
    assert dock.current_model() == str(SHIPPED) and list((tmp_path / "models").iterdir()) == []
    child = int((tmp_path / "child.pid").read_text())
    wait_until(lambda: not Path(f"/proc/{child}").exists()
               or Path(f"/proc/{child}/stat").read_text().split()[2] == "Z", 10)


def test_bad_input_is_refused_before_anything_starts(retrain_dock, tmp_path):
    dock = retrain_dock  # noqa: F811
    lone = tmp_path / "lone.onnx"
    shutil.copyfile(SHIPPED, lone)  # no lone.pt beside it
    dock.model_file.setFilePath(str(lone))
    dock.retrain_button.click()
    assert dock.task is None
    assert "Cannot retrain: the model lone.onnx has no training checkpoint" in dock.status_label.text()
    dock.model_file.setFilePath(str(SHIPPED))
    dock.training_search = [tmp_path]  # no training package there
    dock.retrain_button.click()
    assert dock.task is None and "the training code" in dock.status_label.text()
    assert not (tmp_path / "models").exists() or list((tmp_path / "models").iterdir()) == []


def test_an_inventory_without_reviewed_rows_of_this_event_is_refused(dock, tmp_path, monkeypatch):  # noqa: F811
    dock.models_dir, dock.training_search = tmp_path / "models", [DOUBLE]
    dock.retrain_python.setFilePath(sys.executable)
    dock.inventory_file.setFilePath(str(tmp_path / "inventory.gpkg"))
    dock.reviewer.setText("tester")
    run_detection(dock)
    dock.retrain_button.click()  # nothing reviewed yet
    assert dock.task is None and "holds no reviewed polygon of event" in dock.status_label.text()
    dock.queue_next()
    dock.set_selected_status("rejected")
    dock.retrain_button.click()
    assert dock.task is None and "only rejected polygons" in dock.status_label.text()


def test_without_pytorch_the_dock_offers_the_install_with_its_size(retrain_dock, tmp_path, monkeypatch):
    from landslide_sar_plugin.core import installer
    from landslide_sar_plugin.core import retrain_runner as rr
    from landslide_sar_plugin.gui import installer as gui_installer

    dock = retrain_dock  # noqa: F811
    dock.retrain_python.setFilePath("")
    monkeypatch.setattr(gui_installer, "private_base", lambda: tmp_path / "python")
    monkeypatch.setattr(rr, "choose_training_python", lambda *a, **k: (_ for _ in ()).throw(
        rr.NeedsPyTorch("retraining needs PyTorch")))
    asked = []
    dock.ask = lambda parent, title, text: asked.append(text) or False
    dock.retrain_button.click()
    assert dock.task is None and len(asked) == 1
    assert "About 205 MB are downloaded and 0.9 GB used on disk" in asked[0]
    assert str(rr.training_site_dir(tmp_path / "python")) in asked[0]
    assert "Not retrained: retraining needs PyTorch" in dock.status_label.text()

    installs = []

    def fake_install(packages, target, **kwargs):
        installs.append((list(packages), Path(target)))
        (Path(target) / "torch").mkdir(parents=True)
        (Path(target) / "torch" / "__init__.py").write_text("")
        return Path(target)

    monkeypatch.setattr(installer, "install_packages", fake_install)
    again = []
    dock.ask = lambda parent, title, text: True
    dock.retrain_button.click()
    dock.start_retrain = lambda: again.append(True)  # what follows a successful install
    wait_until(lambda: dock.task is None)
    assert installs == [(["torch", "onnx"], rr.training_site_dir(tmp_path / "python"))]  # onnx: the export
    assert again == [True] and "PyTorch installed into" in dock.status_label.text()


# --------------------------------------------------------------------------- Processing


def test_the_processing_algorithm_retrains_with_the_same_runner(provider, retrain_dock, tmp_path,  # noqa: F811
                                                                 monkeypatch):
    import processing
    from qgis.core import QgsProcessingException

    from landslide_sar_plugin.processing import retrain

    dock = retrain_dock  # noqa: F811
    dock.export_to_inventory()
    monkeypatch.setattr(retrain, "TRAINING_SEARCH", [DOUBLE])
    params = {"RUN": str(dock.run_result.out_dir), "INVENTORY": str(tmp_path / "inventory.gpkg"),
              "MODEL": str(SHIPPED), "MODELS_FOLDER": str(tmp_path / "p_models"), "SEED": 4,
              "PYTHON": sys.executable}
    (tmp_path / "p_models").mkdir()
    result = processing.run("landslidesar:retrain_model", params)
    assert Path(result["NEW_MODEL"]) == tmp_path / "p_models" / "landslide_unet_ft_s4.onnx"
    assert result["F1_BEFORE"] == pytest.approx(0.41) and result["F1_AFTER"] == pytest.approx(0.58)
    assert Path(result["METRICS"]).is_file() and Path(result["CARD"]).is_file()
    monkeypatch.setenv("LANDSLIDE_RETRAIN_DOUBLE", "fail")
    with pytest.raises(QgsProcessingException, match="holds no reviewed polygon of event"):
        processing.run("landslidesar:retrain_model", {**params, "MODELS_FOLDER": str(tmp_path / "p2")})
    assert not (tmp_path / "p2").exists() or list((tmp_path / "p2").iterdir()) == []
    with pytest.raises(QgsProcessingException, match="not a detection run folder"):
        processing.run("landslidesar:retrain_model", {**params, "RUN": str(tmp_path)})


def test_processing_loads_the_evidence_hidden_and_styled(provider, clean_project, tmp_path):  # noqa: F811
    import processing
    from qgis.core import QgsMultiBandColorRenderer

    from .test_processing import detect_params

    processing.runAndLoadResults("landslidesar:detect_a_ratio", detect_params(tmp_path / "run"))
    root = clean_project.layerTreeRoot()
    evidence = [layer for layer in clean_project.mapLayers().values() if "evidence" in layer.name().lower()]
    assert len(evidence) == 2, [layer.name() for layer in clean_project.mapLayers().values()]
    for layer in evidence:
        renderer = layer.renderer()
        assert isinstance(renderer, QgsMultiBandColorRenderer) and renderer.blueBand() == 1  # the dock's style
        assert renderer.redContrastEnhancement().minimumValue() == -25.0
        assert not root.findLayer(layer.id()).itemVisibilityChecked()
    assert os.path.basename(evidence[0].source()).startswith("evidence_")
