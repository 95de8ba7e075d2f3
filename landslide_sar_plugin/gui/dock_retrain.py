"""*Retrain from this review* and the model chooser: the QGIS side of the analyst loop's last step.

A mixin of :class:`.dock.LandslideDock`.  The button exports the review,
checks what it cheaply can (the inventory holds reviewed rows of this run's
event, not only rejected ones; the model has its training checkpoint; a
Python with PyTorch and the training code are there), then runs the training
command in a subprocess from a :class:`.tasks.CoreTask` (progress and cancel
in the panel's footer and QGIS's task manager; QGIS stays responsive).  The
command and its contract are :mod:`..core.retrain_runner`'s.

After a successful retrain the panel shows the before/after figures, adds the
new model to the model list (the previous one stays in it), selects it and
detects again with it into a new run folder.  A failed or cancelled retrain
changes nothing: the previous model stays selected and no new file is kept.
Without PyTorch the panel offers to install the CPU build into the plugin's
training folder (its size stated), or to set a Python that has it.
"""

from __future__ import annotations

from pathlib import Path

from qgis.core import QgsApplication
from qgis.PyQt.QtCore import QCoreApplication, Qt
from qgis.PyQt.QtWidgets import QMessageBox

from ..core import retrain_runner as rr
from ..core.dependencies import TRAINING_PACKAGES
from .log import log_debug, log_info, plugin_data_dir

PLUGIN_DIR = Path(__file__).resolve().parent.parent
SHIPPED_MODELS = PLUGIN_DIR / "models"


def tr(text: str) -> str:
    return QCoreApplication.translate("LandslideDock", text)


def user_models_dir() -> Path:
    """``<QGIS profile>/landslide_sar_plugin/models``: where Retrain writes its models."""
    return plugin_data_dir() / "models"


def training_roots() -> list[Path]:
    """Where the ``training`` package may be: the source checkout of a linked install, or inside the plugin."""
    checkout = Path(__file__).resolve().parents[2]  # resolve(): make install-dev links point into the checkout
    return [checkout, PLUGIN_DIR]


def ask_yes_no(parent, title: str, text: str) -> bool:
    answer = QMessageBox.question(parent, title, text, QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                                  QMessageBox.StandardButton.No)
    return answer == QMessageBox.StandardButton.Yes


class RetrainMixin:
    """Model list, Retrain button, its task and the re-detection (needs the dock's widgets and run state)."""

    # Test seams (None: the real places): where the models go and where the training package is.
    models_dir: Path | None = None
    training_search: list | None = None
    ask = staticmethod(ask_yes_no)

    def _connect_retrain(self) -> None:
        self.retrain_button.clicked.connect(self.start_retrain)
        self.model_choice.currentIndexChanged.connect(lambda _: self._model_chosen())
        self.model_file.fileChanged.connect(lambda path: self.refresh_models(select=path))

    # ------------------------------------------------------------------ the model list

    def model_folder(self) -> Path:
        return Path(self.models_dir) if self.models_dir is not None else user_models_dir()

    def refresh_models(self, select: str | None = None) -> None:
        """List the shipped model, the retrained ones and the chosen file; select ``select`` (default: the file's)."""
        chosen = select or self.model_file.filePath()
        paths = rr.model_files(SHIPPED_MODELS, self.model_folder())
        if chosen and Path(chosen).is_file() and all(p.resolve() != Path(chosen).resolve() for p in paths):
            paths.append(Path(chosen))
        self.model_choice.blockSignals(True)
        self.model_choice.clear()
        for path in paths:
            where = tr("shipped") if path.parent.resolve() == SHIPPED_MODELS.resolve() else (
                tr("retrained") if path.parent.resolve() == self.model_folder().resolve() else str(path.parent))
            self.model_choice.addItem(f"{path.stem} ({where})", str(path))
            self.model_choice.setItemData(self.model_choice.count() - 1, str(path), Qt.ItemDataRole.ToolTipRole)
        index = next((i for i in range(self.model_choice.count())
                      if chosen and Path(self.model_choice.itemData(i)).resolve() == Path(chosen).resolve()), -1)
        self.model_choice.setCurrentIndex(index)
        self.model_choice.blockSignals(False)
        if select and Path(select).is_file() and self.model_file.filePath() != select:
            self.model_file.blockSignals(True)
            self.model_file.setFilePath(select)
            self.model_file.blockSignals(False)

    def _model_chosen(self) -> None:
        path = self.model_choice.currentData()
        if path and path != self.model_file.filePath():
            self.model_file.blockSignals(True)
            self.model_file.setFilePath(path)
            self.model_file.blockSignals(False)

    def current_model(self) -> str:
        return self.model_file.filePath()

    # ------------------------------------------------------------------ starting

    def start_retrain(self) -> None:
        """Export, check, find Python and the training code, then run the training command in the background."""
        if self.task is not None:
            return
        plan = self._retrain_plan()
        if plan is None:
            return
        cmd, env, cwd, models, python = plan
        self._retrain_previous_model = self.current_model()
        log_info(f"retraining {Path(self._retrain_previous_model).name} with {python.executable} ({python.source}): "
                 + " ".join(cmd))

        def work(progress, is_cancelled):
            return rr.run_retrain(cmd, env, models, cwd=cwd, progress=progress, is_cancelled=is_cancelled,
                                  log=log_debug)

        self.retrain_info.setText(tr("Retraining with {p} ({s})…").format(p=python.executable, s=python.source))
        self._start_task(tr("Retraining the landslide model"), work, self._retrain_done)

    def _retrain_plan(self):
        """(command, environment, working folder, models folder, Python) or None after saying what is missing."""
        if self.run_result is None:
            self.show_error(tr("Run a detection and review its candidates first."))
            return None
        if not self.current_model():
            self.show_error(tr("Choose the model to retrain in the model list."))
            return None
        if self.export_to_inventory() is None:  # the inventory must hold this review; export says why it cannot
            return None
        event_id = self.run_result.run_info.get("event_id") or ""
        try:
            rr.check_inventory_rows(self.inventory_file.filePath(), event_id)
            rr.check_model_checkpoint(self.current_model())
            python = self._training_python()
        except rr.NeedsPyTorch as exc:
            self._offer_torch_install(str(exc))
            return None
        except rr.RetrainError as exc:
            self.show_error(tr("Cannot retrain: {e}.").format(e=exc))
            return None
        root = rr.find_training_root(self.training_search or training_roots())
        if root is None:
            self.show_error(tr("Cannot retrain: the training code (the plugin's training/ folder) was not found; "
                               "reinstall the plugin from its zip, or from a source checkout with make install-dev."))
            return None
        models = self.model_folder()
        cmd = rr.retrain_command(python.executable, self.run_result.out_dir, self.inventory_file.filePath(), models,
                                 model=self.current_model(), event_id=event_id)
        env = rr.training_environment([root, PLUGIN_DIR.parent, *python.python_path])
        return cmd, env, root, models, python

    def _training_python(self) -> rr.TrainingPython:
        from ..core.installer import choose_interpreter, site_dir
        from .installer import private_base

        return rr.choose_training_python(self.retrain_python.filePath().strip() or None,
                                         rr.training_site_dir(private_base()), site_dir(private_base()),
                                         choose_interpreter)

    # ------------------------------------------------------------------ PyTorch

    def _offer_torch_install(self, why: str) -> None:
        from .installer import private_base

        folder = rr.training_site_dir(private_base())
        text = tr("Retraining needs PyTorch, which QGIS does not ship.\n\nInstall PyTorch (CPU) into the plugin's own "
                  "folder {f}? About {d} MB are downloaded and {g:.1f} GB used on disk; QGIS's own Python is not "
                  "changed.\n\nOr answer No and set a Python that has PyTorch under Retrain the model.").format(
            f=folder, d=rr.TORCH_DOWNLOAD_MB, g=rr.TORCH_DISK_MB / 1000)
        if not self.ask(self, tr("Install PyTorch?"), text):
            self.show_info(tr("Not retrained: {e}.").format(e=why))
            return
        self.start_torch_install(folder)

    def start_torch_install(self, folder: Path) -> None:
        from .installer import InstallTask

        task = InstallTask(list(TRAINING_PACKAGES), folder, self._torch_installed)
        task.line.connect(log_debug)
        task.progressChanged.connect(lambda p: self.progress.setValue(int(p)))
        self.task = task
        for button in (self.detect_button, self.update_button, self.retrain_button):
            button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.progress.setValue(0)
        self.status_label.setText(tr("Installing PyTorch (CPU) into {f}…").format(f=folder))
        QgsApplication.taskManager().addTask(task)

    def _torch_installed(self, task) -> None:
        self._task_finished()
        self.retrain_button.setEnabled(True)
        if task.cancelled_by_user or (task.isCanceled() and not task.error):
            self.show_info(tr("PyTorch installation cancelled; nothing was installed."))
        elif task.error:
            self.show_error(tr("PyTorch was not installed: {e}").format(e=task.error))
        else:
            self.show_info(tr("PyTorch installed into {f}; retraining now.").format(f=task.target))
            self.start_retrain()

    # ------------------------------------------------------------------ the end

    def _retrain_done(self, task) -> None:
        self._task_finished()
        previous = getattr(self, "_retrain_previous_model", "")
        if task.cancelled_by_user:
            self.retrain_info.setText(tr("Retraining cancelled; {m} stays selected.").format(m=Path(previous).name))
            self.show_info(tr("Retraining cancelled; no new model was kept and {m} stays selected.").format(
                m=Path(previous).name))
            return
        if task.error is not None:
            details = "" if isinstance(task.error, rr.RetrainError) else task.error_traceback
            self.retrain_info.setText(tr("Retraining failed; {m} stays selected.").format(m=Path(previous).name))
            self.show_error(tr("Retraining failed: {e}").format(e=task.error), details)
            return
        result: rr.RetrainResult = task.result
        figures = result.metrics.describe() if result.metrics is not None else tr("no before/after figures")
        self.retrain_info.setText(tr("New model {m}: {f}. {p} stays in the model list.").format(
            m=result.model.name, f=figures, p=Path(previous).name))
        self.refresh_models(select=str(result.model))
        self.save_settings()
        self.show_info(tr("Retrained: {m} ({f}); detecting again with it.").format(m=result.model.name, f=figures))
        self.redetect_with(str(result.model))
