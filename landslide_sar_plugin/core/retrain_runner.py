"""Running the training command in a subprocess: which Python, which command line, its progress, its cancel.

QGIS does not ship PyTorch, and a fine-tune must not freeze QGIS, so the dock
and the Processing algorithm run the project's training command in a separate
process, with a Python that has PyTorch::

    <python> -m training retrain --run RUN_DIR --inventory INVENTORY.gpkg --out MODELS_DIR
             [--model CURRENT.onnx] [--event-id ID] [--seed N] [--progress-json]

With ``--progress-json`` the command prints one JSON object per line on
stdout, ``{"progress": 0.0-1.0, "message": "..."}`` while it works and
``{"done": true, "model": ..., "card": ..., "metrics": ...}`` at the end; on
failure it exits 1 with one sentence on stderr and writes nothing into
MODELS_DIR; SIGTERM stops it without leaving a half model.  This module is
the plugin's side of that contract and nothing else: pure Python (no QGIS, no
Qt, no PyTorch), so it is unit-tested with a stand-in command.

Which Python (:func:`choose_training_python`), first that fits:

1. the one the user set in the plugin's settings (a conda or venv Python with PyTorch);
2. QGIS's own Python with the plugin's *training* package folder
   (:func:`training_site_dir`) on ``PYTHONPATH``, where the plugin installs
   the PyTorch CPU wheel.  It is a sibling of the private package folder of
   :mod:`.installer`, not that folder itself, because that one is put in
   front of QGIS's ``sys.path`` at start-up and PyTorch's dependencies
   (jinja2, sympy, setuptools, typing-extensions...) would then shadow QGIS's
   own copies for every plugin;
3. QGIS's own Python when PyTorch is already importable there (or in the
   private package folder).

Otherwise :class:`NeedsPyTorch` says so, with the download and disk size of
the install the plugin offers.

Cancel: the command runs in a process group of its own; a cancel sends
SIGTERM to the group (training may have worker processes), waits, then kills
it.  After a cancel or a failure, anything new in MODELS_DIR is removed, so
the previous model is the only one left whatever the command did.
"""

from __future__ import annotations

import json
import math
import os
import queue
import signal
import subprocess  # nosec B404
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .staging import Cancelled

TRAINING_MODULE = "training"
# bump when the training packages change in a way that needs a fresh folder (2: torch and onnx, the export needs it)
TRAINING_SET_VERSION = 2
# PyTorch CPU 2.13.0 for Linux x86_64 with its dependencies (sympy, networkx, jinja2, fsspec, filelock, ...),
# measured on this project's machine: the wheels 205 MB, installed 865 MB.  Other platforms are similar.
TORCH_DOWNLOAD_MB = 205
TORCH_DISK_MB = 870
TERMINATE_GRACE_S = 10.0

ProgressFn = Callable[[float, str], None]
CancelFn = Callable[[], bool]
LogFn = Callable[[str], None]


class RetrainError(ValueError):
    """Retraining cannot start or did not succeed; the message is one sentence for the user."""


class NeedsPyTorch(RetrainError):
    """No Python with PyTorch was found; the plugin can offer to install the CPU wheel."""


# --------------------------------------------------------------------------- which Python


@dataclass(frozen=True)
class TrainingPython:
    """The interpreter that runs the training command and what goes on its ``PYTHONPATH``."""

    executable: str
    python_path: tuple[Path, ...] = ()
    source: str = ""  # "your setting", "the plugin's training folder", "QGIS's Python"


def training_site_dir(base: str | os.PathLike, version: Sequence[int] | None = None,
                      tag: str | None = None) -> Path:
    """``<base>/py3.X-<platform>-training<N>``: where the plugin installs PyTorch (beside the private packages)."""
    from .installer import platform_tag

    major, minor = (version or sys.version_info)[:2]
    return Path(base) / f"py{major}.{minor}-{tag or platform_tag()}-training{TRAINING_SET_VERSION}"


def has_torch(folder: Path | None) -> bool:
    """Whether ``folder`` (a ``pip install --target`` folder) holds a PyTorch package."""
    return folder is not None and (Path(folder) / "torch" / "__init__.py").is_file()


def choose_training_python(configured: str | None, training_site: Path | None, private_site: Path | None,
                           qgis_python: Callable[[], str], *,
                           torch_importable: Callable[[], bool] | None = None) -> TrainingPython:
    """The first usable Python of the module docstring's list; :class:`NeedsPyTorch` when there is none."""
    if configured:
        if not Path(configured).is_file():
            raise RetrainError(f"the Python set for retraining, {configured}, does not exist; choose another one "
                               "in the retrain settings or clear the setting")
        return TrainingPython(str(configured), (), "your setting")
    for folder, source in ((training_site, "the plugin's training folder"),
                           (private_site, "the plugin's package folder")):
        if has_torch(folder):
            return TrainingPython(_qgis_python(qgis_python), (Path(folder),), source)
    if torch_importable is None:
        from .dependencies import is_available

        def torch_importable():
            return is_available("torch")
    if torch_importable():
        return TrainingPython(_qgis_python(qgis_python), (), "QGIS's Python")
    raise NeedsPyTorch(
        f"retraining needs PyTorch, which QGIS does not ship: install the CPU build into the plugin's own folder "
        f"(about {TORCH_DOWNLOAD_MB} MB to download, {TORCH_DISK_MB / 1000:.1f} GB on disk), or set a Python that "
        "has PyTorch in the retrain settings")


def _qgis_python(qgis_python: Callable[[], str]) -> str:
    from .installer import InstallerError

    try:
        return qgis_python()
    except InstallerError as exc:
        raise RetrainError(f"{exc}; or set a Python that has PyTorch in the retrain settings") from None


def find_training_root(candidates: Sequence[str | os.PathLike | None]) -> Path | None:
    """The first folder holding the ``training`` package (``training/__main__.py``), or None."""
    for folder in candidates:
        if folder and (Path(folder) / TRAINING_MODULE / "__main__.py").is_file():
            return Path(folder)
    return None


# --------------------------------------------------------------------------- the command


def retrain_command(python: str, run_dir, inventory, models_dir, *, model=None, event_id: str | None = None,
                    seed: int | None = None) -> list[str]:
    """The training command line of the contract (module docstring), always with ``--progress-json``."""
    cmd = [str(python), "-m", TRAINING_MODULE, "retrain", "--run", str(run_dir), "--inventory", str(inventory),
           "--out", str(models_dir)]
    if model:
        cmd += ["--model", str(model)]
    if event_id:
        cmd += ["--event-id", str(event_id)]
    if seed is not None:
        cmd += ["--seed", str(int(seed))]
    return cmd + ["--progress-json"]


def training_environment(python_path: Sequence[str | os.PathLike], base: dict | None = None) -> dict:
    """The subprocess environment: ``python_path`` first on ``PYTHONPATH``, unbuffered UTF-8 output.

    QGIS's own ``PYTHONPATH`` (its plugin folders) is dropped: the training
    command must import the packages it was given, not whatever QGIS loaded.
    """
    env = dict(os.environ if base is None else base)
    paths, seen = [], set()
    for p in python_path:
        text = str(p)
        if text and text not in seen:
            seen.add(text)
            paths.append(text)
    env["PYTHONPATH"] = os.pathsep.join(paths)
    if not paths:
        env.pop("PYTHONPATH")
    env["PYTHONNOUSERSITE"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONIOENCODING"] = "utf-8"
    return env


# --------------------------------------------------------------------------- its output


@dataclass(frozen=True)
class ProgressLine:
    progress: float
    message: str


@dataclass(frozen=True)
class DoneLine:
    model: Path
    card: Path | None
    metrics: Path | None


def parse_line(line: str) -> ProgressLine | DoneLine | None:
    """One stdout line of ``--progress-json``: progress, the final "done" object, or None (any other text)."""
    text = line.strip()
    if not text.startswith("{"):
        return None
    try:
        obj = json.loads(text)
    except ValueError:
        return None
    if not isinstance(obj, dict):
        return None
    if obj.get("done") is True and isinstance(obj.get("model"), str) and obj["model"]:
        return DoneLine(Path(obj["model"]), _path_or_none(obj.get("card")), _path_or_none(obj.get("metrics")))
    value = obj.get("progress")
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return ProgressLine(min(max(float(value), 0.0), 1.0), str(obj.get("message") or ""))
    return None


def _path_or_none(value) -> Path | None:
    return Path(value) if isinstance(value, str) and value else None


@dataclass
class RetrainMetrics:
    """The before/after figures of a retrain (held-out folds of the reviewed polygons)."""

    before: dict
    after: dict
    folds: int | None = None
    n_landslides: int | None = None
    n_rejected: int | None = None
    event_id: str | None = None
    base_model: str | None = None

    @classmethod
    def read(cls, path: str | os.PathLike) -> RetrainMetrics:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            before, after = dict(data["before"]), dict(data["after"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise RetrainError(f"the retrain's metrics file {path} cannot be read ({exc}); the new model was "
                               "kept, but its before/after figures are unknown") from None
        return cls(before, after, data.get("folds"), data.get("n_landslides"), data.get("n_rejected"),
                   data.get("event_id"), data.get("base_model"))

    def describe(self) -> str:
        """``F1 0.41 -> 0.58 (precision 0.35 -> 0.52, recall 0.50 -> 0.66) on 3 held-out folds of 14 ...``."""
        def pair(key):
            return f"{_fmt(self.before.get(key))} -> {_fmt(self.after.get(key))}"

        text = f"F1 {pair('f1')} (precision {pair('precision')}, recall {pair('recall')})"
        folds = f"{self.folds} held-out folds" if self.folds else "held-out folds"
        if self.n_landslides is not None and self.n_rejected is not None:
            return f"{text} on {folds} of {self.n_landslides} reviewed landslides and {self.n_rejected} rejected " \
                   "polygons"
        return f"{text} on {folds} of the reviewed polygons"


def _fmt(value) -> str:
    try:
        return f"{float(value):.2f}"
    except (TypeError, ValueError):
        return "?"


@dataclass
class RetrainResult:
    model: Path
    card: Path | None
    metrics_path: Path | None
    metrics: RetrainMetrics | None
    log: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- checks before starting


def check_model_checkpoint(model: str | os.PathLike) -> Path:
    """The current model's ``.pt`` (the weights a fine-tune starts from), which must lie beside its ``.onnx``."""
    onnx = Path(model)
    if not onnx.is_file():
        raise RetrainError(f"the model {onnx} does not exist; choose a model in the model list")
    checkpoint = onnx.with_suffix(".pt")
    if not checkpoint.is_file():
        raise RetrainError(f"the model {onnx.name} has no training checkpoint ({checkpoint.name} beside it), so it "
                           "cannot be fine-tuned; choose the shipped model or one made by Retrain")
    return checkpoint


def check_inventory_rows(inventory: str | os.PathLike, event_id: str) -> tuple[int, int]:
    """(landslides, rejected) rows of ``event_id`` in the inventory; a sentence when they cannot train a model.

    Cheap checks only (the training command checks the rest: CRS, scenes, ...).
    """
    from .inventory import InventoryError, read_inventory

    path = Path(inventory)
    if not path.is_file():
        raise RetrainError(f"the inventory {path} does not exist yet: export the reviewed polygons first")
    try:
        rows, _ = read_inventory(path, statuses=None)
    except InventoryError as exc:
        raise RetrainError(f"the inventory cannot be read: {exc}") from None
    mine = [f.properties for f in rows if f.properties.get("event_id") == event_id]
    positives = sum((p.get("status") or "").lower() in ("accepted", "edited") for p in mine)
    negatives = sum((p.get("status") or "").lower() == "rejected" for p in mine)
    if not mine:
        others = sorted({str(f.properties.get("event_id")) for f in rows})
        held = f" (it holds {', '.join(others[:3])}{'...' if len(others) > 3 else ''})" if others else " (it is empty)"
        raise RetrainError(f"the inventory {path.name} holds no reviewed polygon of event {event_id}{held}: review "
                           "candidates of this run and export them first")
    if positives == 0:
        raise RetrainError(f"the inventory holds only rejected polygons of event {event_id} ({negatives}): accept, "
                           "edit or draw at least one landslide and export again")
    return positives, negatives


# --------------------------------------------------------------------------- running it


def run_retrain(cmd: Sequence[str], env: dict, models_dir: str | os.PathLike, *, cwd=None,
                progress: ProgressFn | None = None, is_cancelled: CancelFn | None = None, log: LogFn | None = None,
                grace_s: float = TERMINATE_GRACE_S, poll_s: float = 0.1) -> RetrainResult:
    """Run the training command, relay its progress, and return the new model and its metrics.

    ``is_cancelled()`` is polled every ``poll_s``; a cancel terminates the
    process group and raises :class:`~.staging.Cancelled`.  A failure raises
    :class:`RetrainError` with the command's own sentence (its last stderr
    line).  Either way nothing new is left in ``models_dir``.
    """
    models = Path(models_dir)
    models.mkdir(parents=True, exist_ok=True)
    before = _entries(models)
    log = log or (lambda line: None)
    try:
        done, lines = _supervise(cmd, env, cwd, progress, is_cancelled, log, grace_s, poll_s)
        return _result(done, lines, models)
    except BaseException:
        for leftover in _remove_new_entries(models, before):
            log(f"removed {leftover}, left by the stopped training command")
        raise


def _supervise(cmd, env, cwd, progress, is_cancelled, log, grace_s, poll_s) -> tuple[DoneLine | None, list[str]]:
    """Start the command and follow it to its end; (the "done" line, every output line)."""
    options = dict(stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
                   encoding="utf-8", errors="replace", env=env, cwd=cwd, **_new_group())
    try:
        # cmd is retrain_command's list (no shell): the user's chosen Python and our own arguments.
        proc = subprocess.Popen(list(cmd), **options)  # noqa: S603  # nosec B603
    except OSError as exc:
        raise RetrainError(f"the training command could not be started with {cmd[0]} ({exc})") from None
    lines: queue.Queue = queue.Queue()
    readers = [threading.Thread(target=_pump, args=(stream, name, lines), daemon=True)
               for stream, name in ((proc.stdout, "out"), (proc.stderr, "err"))]
    for t in readers:
        t.start()
    done, seen, errors = None, [], []
    try:
        while True:
            if is_cancelled is not None and is_cancelled():
                terminate_tree(proc, grace_s)
                raise Cancelled("retraining cancelled; no new model was kept")
            try:
                name, line = lines.get(timeout=poll_s)
            except queue.Empty:
                if proc.poll() is not None and not any(t.is_alive() for t in readers):
                    break
                continue
            seen.append(line)
            if name == "err":
                errors.append(line)
                log(line)
                continue
            event = parse_line(line)
            if isinstance(event, DoneLine):
                done = event
            elif isinstance(event, ProgressLine) and progress is not None:
                progress(event.progress, event.message)
            elif event is None:
                log(line)
    finally:
        if proc.poll() is None:
            terminate_tree(proc, grace_s)
    code = proc.wait()
    if code != 0:
        raise RetrainError(_failure_sentence(errors, code))
    return done, seen


def _pump(stream, name: str, lines: queue.Queue) -> None:
    try:
        for line in iter(stream.readline, ""):
            if line.strip():
                lines.put((name, line.rstrip("\n")))
    finally:
        stream.close()


def _failure_sentence(errors: list[str], code: int) -> str:
    """The command's own sentence (its last stderr line), or the exit code when it said nothing."""
    said = [e.strip() for e in errors if e.strip()]
    if not said:
        return f"the training command stopped with exit code {code} without saying why (see the debug log)"
    last = said[-1]
    if last.startswith(("Traceback", "  File")) or (":" in last and last.split(":", 1)[0].endswith("Error")):
        return f"the training command failed: {last[:300]}"
    return last[:400]


def _result(done: DoneLine | None, lines: list[str], models: Path) -> RetrainResult:
    if done is None:
        raise RetrainError("the training command ended without naming its new model; nothing was changed")
    model = done.model if done.model.is_absolute() else models / done.model
    if not model.is_file():
        raise RetrainError(f"the training command named a new model {model} that does not exist")
    if model.resolve().parent != models.resolve():
        raise RetrainError(f"the training command wrote its model to {model.parent}, not into {models}")
    metrics = RetrainMetrics.read(done.metrics) if done.metrics is not None else None
    return RetrainResult(model, done.card, done.metrics, metrics, lines)


def _new_group() -> dict:
    """Popen arguments that give the command a process group of its own (to stop its workers with it)."""
    if sys.platform.startswith("win"):
        return {"creationflags": getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0)}
    return {"start_new_session": True}


def terminate_tree(proc: subprocess.Popen, grace_s: float = TERMINATE_GRACE_S) -> None:
    """SIGTERM to the command's process group, then SIGKILL after ``grace_s`` (Windows: taskkill /T)."""
    if proc.poll() is not None:
        return
    if sys.platform.startswith("win"):
        kill = ["taskkill", "/T", "/F", "/PID", str(proc.pid)]
        subprocess.run(kill, capture_output=True, check=False)  # noqa: S603, S607  # nosec B603
    else:
        _signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        if proc.poll() is None:
            _signal_group(proc, signal.SIGKILL)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
    if not sys.platform.startswith("win"):  # workers that outlived their parent
        _signal_group(proc, signal.SIGKILL)


def _signal_group(proc: subprocess.Popen, sig) -> None:
    try:
        os.killpg(proc.pid, sig)  # the group id is the command's pid (start_new_session)
    except (ProcessLookupError, PermissionError):
        pass


def _entries(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()} if folder.is_dir() else set()


def _remove_new_entries(folder: Path, before: set[str]) -> list[Path]:
    import shutil

    removed = []
    for name in sorted(_entries(folder) - before):
        path = folder / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(path)
    return removed


def model_files(*folders: str | os.PathLike | None) -> list[Path]:
    """The ONNX models the dock can run, in ``folders`` (the shipped one first), without Deepness copies."""
    out, seen = [], set()
    for folder in folders:
        if not folder or not Path(folder).is_dir():
            continue
        for path in sorted(Path(folder).glob("*.onnx")):
            if path.name.endswith("_deepness.onnx") or ".partial" in path.name:
                continue
            key = str(path.resolve())
            if key not in seen:
                seen.add(key)
                out.append(path)
    return out
