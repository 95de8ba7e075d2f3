"""The plugin's side of the retrain command (core/retrain_runner.py), driven with the test double of
``python -m training retrain`` (tests/doubles/retrain): command line, progress, failure, cancel, checks."""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from landslide_sar_plugin.core import gpkg
from landslide_sar_plugin.core import retrain_runner as rr
from landslide_sar_plugin.core.inventory import export_reviewed
from landslide_sar_plugin.core.staging import Cancelled

from .test_inventory import CRS, EVENT, RUN_JSON, candidate

ROOT = Path(__file__).resolve().parents[2]
DOUBLE = ROOT / "tests" / "doubles" / "retrain"
SHIPPED = ROOT / "landslide_sar_plugin" / "models" / "landslide_unet.onnx"


def test_command_line_follows_the_contract():
    cmd = rr.retrain_command("/py", "/runs/r1", "/inv.gpkg", "/models", model="/m.onnx", event_id="ev", seed=3)
    assert cmd == ["/py", "-m", "training", "retrain", "--run", "/runs/r1", "--inventory", "/inv.gpkg", "--out",
                   "/models", "--model", "/m.onnx", "--event-id", "ev", "--seed", "3", "--progress-json"]
    assert rr.retrain_command("/py", "r", "i", "o")[-1] == "--progress-json"
    assert "--model" not in rr.retrain_command("/py", "r", "i", "o")


def test_progress_lines_are_parsed_and_anything_else_is_text():
    assert rr.parse_line('{"progress": 0.25, "message": "epoch 1"}') == rr.ProgressLine(0.25, "epoch 1")
    assert rr.parse_line('{"progress": 1.7}') == rr.ProgressLine(1.0, "")  # clamped
    done = rr.parse_line('{"done": true, "model": "/m/a.onnx", "card": "/m/a.md", "metrics": "/m/a.json"}')
    assert done == rr.DoneLine(Path("/m/a.onnx"), Path("/m/a.md"), Path("/m/a.json"))
    for text in ("epoch 1 loss 0.3", "{not json", '{"progress": "half"}', '{"done": true}', "[1, 2]",
                 '{"progress": NaN}', '{"progress": true}'):
        assert rr.parse_line(text) is None, text


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_no_output_line_breaks_the_parser(text):
    event = rr.parse_line(text)
    assert event is None or isinstance(event, (rr.ProgressLine, rr.DoneLine))
    if isinstance(event, rr.ProgressLine):
        assert 0.0 <= event.progress <= 1.0


@settings(max_examples=100, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=40))
def test_every_progress_object_is_relayed_within_0_and_1(value, message):
    event = rr.parse_line(json.dumps({"progress": value, "message": message}))
    assert event == rr.ProgressLine(min(max(value, 0.0), 1.0), message)


def test_the_python_is_the_setting_then_the_training_folder_then_qgis_with_torch(tmp_path):
    py = tmp_path / "python3"
    py.write_text("")
    site, private = tmp_path / "training", tmp_path / "private"

    def qgis():
        return "/usr/bin/python3.11"

    def never():
        return False

    assert rr.choose_training_python(str(py), site, private, qgis).source == "your setting"
    with pytest.raises(rr.RetrainError, match="does not exist"):
        rr.choose_training_python(str(tmp_path / "nope"), site, private, qgis)
    with pytest.raises(rr.NeedsPyTorch, match=r"about 205 MB to download, 0\.9 GB on disk"):
        rr.choose_training_python(None, site, private, qgis, torch_importable=never)
    (private / "torch").mkdir(parents=True)
    (private / "torch" / "__init__.py").write_text("")
    assert rr.choose_training_python(None, site, private, qgis, torch_importable=never) == rr.TrainingPython(
        "/usr/bin/python3.11", (private,), "the plugin's package folder")
    (site / "torch").mkdir(parents=True)
    (site / "torch" / "__init__.py").write_text("")
    assert rr.choose_training_python(None, site, private, qgis, torch_importable=never).python_path == (site,)
    assert rr.choose_training_python(None, None, None, qgis, torch_importable=lambda: True).source == \
        "QGIS's Python"


def test_the_training_folder_is_a_sibling_of_the_private_packages_not_on_qgis_path(tmp_path):
    from landslide_sar_plugin.core import installer

    folder = rr.training_site_dir(tmp_path, (3, 11), "linux-x86_64")
    assert folder == tmp_path / "py3.11-linux-x86_64-training2"
    assert folder != installer.site_dir(tmp_path, (3, 11), "linux-x86_64")


def test_training_root_is_the_first_folder_with_the_package(tmp_path):
    assert rr.find_training_root([None, tmp_path, DOUBLE, ROOT]) == DOUBLE
    assert rr.find_training_root([tmp_path]) is None


def test_environment_puts_the_given_paths_first_and_drops_qgis_pythonpath():
    env = rr.training_environment(["/a", "/b", "/a"], {"PYTHONPATH": "/qgis/plugins", "HOME": "/h"})
    assert env["PYTHONPATH"] == os.pathsep.join(["/a", "/b"]) and env["HOME"] == "/h"
    assert env["PYTHONUNBUFFERED"] == "1" and "PYTHONPATH" not in rr.training_environment([], {"PYTHONPATH": "x"})


# --------------------------------------------------------------------------- the checks before starting


@pytest.fixture
def inventory(tmp_path):
    def make(*statuses, event=EVENT):
        run = tmp_path / f"run_{event}_{len(statuses)}"
        feats = [candidate(i, s, event_id=event) for i, s in enumerate(statuses)]
        from landslide_sar_plugin.core.threshold import CANDIDATE_FIELDS

        gpkg.write_features(run / "candidates.gpkg", "candidates", feats, crs=CRS, fields=CANDIDATE_FIELDS)
        (run / "run.json").write_text(json.dumps({**RUN_JSON, "event_id": event}))
        inv = tmp_path / "inventory.gpkg"
        export_reviewed(run / "candidates.gpkg", inv, reviewer="me")
        return inv
    return make


def test_inventory_rows_of_the_event_are_counted(inventory):
    inv = inventory("accepted", "edited", "rejected", "proposed")
    assert rr.check_inventory_rows(inv, EVENT) == (2, 1)


def test_an_inventory_without_rows_of_this_event_is_refused_naming_what_it_holds(inventory, tmp_path):
    inv = inventory("accepted", event="event_other")
    with pytest.raises(rr.RetrainError, match="holds no reviewed polygon of event .*event_other"):
        rr.check_inventory_rows(inv, EVENT)
    with pytest.raises(rr.RetrainError, match="does not exist yet: export"):
        rr.check_inventory_rows(tmp_path / "none.gpkg", EVENT)


def test_an_inventory_with_only_rejected_rows_is_refused(inventory):
    with pytest.raises(rr.RetrainError, match=r"only rejected polygons of event .* \(2\)"):
        rr.check_inventory_rows(inventory("rejected", "rejected"), EVENT)


def test_a_model_without_its_checkpoint_is_refused(tmp_path):
    assert rr.check_model_checkpoint(SHIPPED) == SHIPPED.with_suffix(".pt")
    lone = tmp_path / "lone.onnx"
    shutil.copyfile(SHIPPED, lone)
    with pytest.raises(rr.RetrainError, match=r"no training checkpoint \(lone\.pt beside it\)"):
        rr.check_model_checkpoint(lone)


def test_model_files_list_runnable_models_once(tmp_path):
    for name in ("b.onnx", "a.onnx", "a_deepness.onnx", "c.onnx.partial", "notes.md"):
        (tmp_path / name).write_text("")
    assert [p.name for p in rr.model_files(tmp_path, tmp_path, tmp_path / "missing", None)] == ["a.onnx", "b.onnx"]


# --------------------------------------------------------------------------- running the command


def run_double(tmp_path, mode, **kw):
    models = tmp_path / "models"
    models.mkdir(exist_ok=True)
    (models / "older.onnx").write_text("")  # a model already there stays
    env = rr.training_environment([DOUBLE, ROOT], {**os.environ, "LANDSLIDE_RETRAIN_DOUBLE": mode,
                                                   "LANDSLIDE_RETRAIN_DOUBLE_CHILD": str(tmp_path / "child.pid"),
                                                   "LANDSLIDE_RETRAIN_DOUBLE_ARGS": str(tmp_path / "args.json")})
    cmd = rr.retrain_command(sys.executable, tmp_path / "run", tmp_path / "inv.gpkg", models, model=SHIPPED,
                             event_id=EVENT, seed=7)
    return models, rr.run_retrain(cmd, env, models, cwd=DOUBLE, **kw)


def test_a_successful_retrain_relays_progress_and_returns_the_new_model(tmp_path):
    seen = []
    models, result = run_double(tmp_path, "success", progress=lambda f, m: seen.append((f, m)))
    assert [f for f, _ in seen] == [0.2, 0.4, 0.6, 0.8, 1.0] and seen[0][1] == "fine-tuning: epoch 1 of 4"
    assert result.model == models / "landslide_unet_ft_s7.onnx" and result.model.is_file()
    assert result.metrics.after["f1"] == 0.58 and result.metrics.folds == 3
    assert result.metrics.describe() == ("F1 0.41 -> 0.58 (precision 0.35 -> 0.52, recall 0.50 -> 0.66) on 3 "
                                         "held-out folds of 14 reviewed landslides and 9 rejected polygons")
    args = json.loads((tmp_path / "args.json").read_text())
    assert args[:2] == ["retrain", "--run"] and args[args.index("--seed") + 1] == "7"


def test_a_failure_gives_the_commands_sentence_and_leaves_the_models_folder_as_it_was(tmp_path):
    with pytest.raises(rr.RetrainError) as err:
        run_double(tmp_path, "fail")
    assert str(err.value) == f"the inventory holds no reviewed polygon of event {EVENT} on the run's grid"
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["older.onnx"]


def test_a_crash_is_one_sentence_not_a_traceback(tmp_path):
    with pytest.raises(rr.RetrainError, match=r"^the training command failed: ZeroDivisionError: division by zero$"):
        run_double(tmp_path, "crash")


def test_a_command_that_names_no_model_is_a_failure(tmp_path):
    with pytest.raises(rr.RetrainError, match="ended without naming its new model"):
        run_double(tmp_path, "no_done")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (exited, not yet reaped by its parent) counts as gone
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(sys.platform.startswith("win"), reason="process groups are POSIX")
def test_cancel_stops_the_command_and_its_children_and_keeps_nothing(tmp_path):
    started = time.monotonic()
    seen = []

    def cancelled():
        return len(seen) >= 3

    with pytest.raises(Cancelled, match="no new model was kept"):
        run_double(tmp_path, "slow", progress=lambda f, m: seen.append(f), is_cancelled=cancelled, grace_s=5)
    assert time.monotonic() - started < 20
    child = int((tmp_path / "child.pid").read_text())
    deadline = time.monotonic() + 5
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child), "the training command's child process survived the cancel"
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["older.onnx"]


def test_files_a_stopped_command_left_in_the_models_folder_are_removed(tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    (models / "keep.onnx").write_text("")
    script = "import pathlib, sys; pathlib.Path(sys.argv[1], 'half.onnx.partial').write_text('x'); sys.exit(1)"
    with pytest.raises(rr.RetrainError, match="exit code 1 without saying why"):
        rr.run_retrain([sys.executable, "-c", script, str(models)], dict(os.environ), models)
    assert [p.name for p in models.iterdir()] == ["keep.onnx"]


def test_a_python_that_cannot_start_is_one_sentence(tmp_path):
    with pytest.raises(rr.RetrainError, match="could not be started with /nonexistent/python"):
        rr.run_retrain(["/nonexistent/python", "-m", "training"], dict(os.environ), tmp_path / "m")
