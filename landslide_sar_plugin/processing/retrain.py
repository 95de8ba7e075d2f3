"""Processing algorithm "Retrain the model from reviewed polygons" (the dock's Retrain, for the toolbox).

Thin like the others: the checks, the command line, the subprocess, its
progress and its cancel are :mod:`..core.retrain_runner`'s, shared with the
dock.  The new model is an output file, so the graphical modeler can chain it
into "Detect landslides (U-Net model)" (the dock re-detects by itself).
"""

from __future__ import annotations

import json
from pathlib import Path

from qgis.core import (
    QgsProcessingException,
    QgsProcessingOutputFile,
    QgsProcessingOutputNumber,
    QgsProcessingParameterFile,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
    QgsSettings,
)

from .algorithms import _Base, _core_call, _Feedback, _shipped_model, tr
from .compat import FILE_FOLDER, NUMBER_INTEGER

RETRAIN_PYTHON_SETTING = "landslide_sar/retrain_python"  # the dock's "Python with PyTorch"
# Test seam, not a user setting: folders searched for the ``training`` package (None: the plugin's own places).
TRAINING_SEARCH = None


class RetrainAlgorithm(_Base):
    RUN = "RUN"
    INVENTORY = "INVENTORY"
    MODEL = "MODEL"
    MODELS_FOLDER = "MODELS_FOLDER"
    EVENT_ID = "EVENT_ID"
    SEED = "SEED"
    PYTHON = "PYTHON"
    NEW_MODEL = "NEW_MODEL"
    CARD = "CARD"
    METRICS = "METRICS"
    F1_BEFORE = "F1_BEFORE"
    F1_AFTER = "F1_AFTER"

    def name(self) -> str:
        return "retrain_model"

    def displayName(self) -> str:  # noqa: N802
        return tr("Retrain the model from reviewed polygons")

    def tags(self):
        return [tr("landslide"), "U-Net", tr("fine-tune"), tr("retrain"), tr("training"), tr("review"),
                tr("inventory")]

    def shortHelpString(self) -> str:  # noqa: N802
        return tr(
            "Fine-tunes a U-Net model on the reviewed polygons of one event (accepted and edited ones as "
            "landslides, rejected ones as reviewed non-landslides) from a training inventory, and writes a NEW "
            "model next to the previous ones, never over them, with its model card and before/after metrics "
            "measured on held-out folds of the reviewed polygons.\n\n"
            "Run folder: the detection run whose candidates were reviewed (its run.json names the scenes, DEM, "
            "event and grid). Inventory: the GeoPackage the review was exported into (Export reviewed polygons "
            "to inventory). Model: the model to start from; its training checkpoint (.pt) must lie beside it.\n\n"
            "Training needs PyTorch, which QGIS does not ship: it runs in a separate process with the Python set "
            "here, else the one set in the plugin panel, else QGIS's own Python with the PyTorch the plugin "
            "installs (the panel's Retrain button offers the install). It also needs the project's training code "
            "(a source checkout of the plugin). Cancelling stops the training and keeps no new file.\n\n"
            "Outputs: the new model (.onnx), its card (.md) and metrics (.json), F1 before and after; chain the "
            "model into 'Detect landslides (U-Net model)' to map the event with it.")

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(QgsProcessingParameterFile(self.RUN, tr("Run folder (with run.json)"), behavior=FILE_FOLDER))
        self.addParameter(QgsProcessingParameterFile(self.INVENTORY, tr("Training inventory (GeoPackage)"),
                                                     extension="gpkg"))
        self.addParameter(QgsProcessingParameterFile(
            self.MODEL, tr("Model to start from (ONNX; default: the model shipped with the plugin)"),
            extension="onnx", defaultValue=_shipped_model(), optional=True))
        self.addParameter(QgsProcessingParameterFile(
            self.MODELS_FOLDER, tr("Folder for the new model (default: the plugin's models folder)"),
            behavior=FILE_FOLDER, optional=True))
        self._advanced(QgsProcessingParameterString(
            self.EVENT_ID, tr("Event identifier (default: the run's)"), optional=True))
        self._advanced(QgsProcessingParameterNumber(self.SEED, tr("Random seed"), NUMBER_INTEGER, optional=True,
                                                    minValue=0))
        self._advanced(QgsProcessingParameterFile(
            self.PYTHON, tr("Python with PyTorch (default: the plugin's setting, else QGIS's Python)"),
            optional=True, fileFilter="All files (*)"))  # python binaries have no extension
        self.addOutput(QgsProcessingOutputFile(self.NEW_MODEL, tr("New model (ONNX)")))
        self.addOutput(QgsProcessingOutputFile(self.CARD, tr("Model card")))
        self.addOutput(QgsProcessingOutputFile(self.METRICS, tr("Before/after metrics (JSON)")))
        self.addOutput(QgsProcessingOutputNumber(self.F1_BEFORE, tr("F1 before (held-out folds)")))
        self.addOutput(QgsProcessingOutputNumber(self.F1_AFTER, tr("F1 after (held-out folds)")))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        from ..core import retrain_runner as rr

        run = Path(self.parameterAsFile(parameters, self.RUN, context))
        inventory = self.parameterAsFile(parameters, self.INVENTORY, context)
        model = self.parameterAsFile(parameters, self.MODEL, context) or _shipped_model()
        event_id = self.parameterAsString(parameters, self.EVENT_ID, context).strip() or _run_event(run)
        _core_call(rr.check_inventory_rows, inventory, event_id)
        _core_call(rr.check_model_checkpoint, model)
        python = _core_call(self._python, parameters, context)
        root = rr.find_training_root(TRAINING_SEARCH or _training_roots())
        if root is None:
            raise QgsProcessingException(tr(
                "The training code (the training/ folder of the project's source, which the plugin zip does not "
                "include) was not found; install the plugin from a source checkout with make install-dev"))
        models = self._models_folder(parameters, context)
        seed = self.parameterAsInt(parameters, self.SEED, context) if parameters.get(self.SEED) not in (None, "") \
            else None
        cmd = rr.retrain_command(python.executable, run, inventory, models, model=model, event_id=event_id, seed=seed)
        feedback.pushInfo(tr("Training with {} ({}): {}").format(python.executable, python.source, " ".join(cmd)))
        env = rr.training_environment([root, Path(__file__).resolve().parents[2], *python.python_path])
        fb = _Feedback(feedback)
        result = _core_call(rr.run_retrain, cmd, env, models, cwd=root, progress=fb.progress,
                            is_cancelled=fb.is_cancelled, log=feedback.pushDebugInfo)
        out = {self.NEW_MODEL: str(result.model), self.CARD: str(result.card or ""),
               self.METRICS: str(result.metrics_path or "")}
        if result.metrics is not None:
            feedback.pushInfo(tr("New model {}: {}").format(result.model.name, result.metrics.describe()))
            out[self.F1_BEFORE] = _number(result.metrics.before.get("f1"))
            out[self.F1_AFTER] = _number(result.metrics.after.get("f1"))
        return out

    def _python(self, parameters, context):
        from ..core import retrain_runner as rr
        from ..core.installer import choose_interpreter, site_dir
        from ..gui.installer import private_base

        configured = self.parameterAsFile(parameters, self.PYTHON, context) or \
            str(QgsSettings().value(RETRAIN_PYTHON_SETTING, "", type=str) or "")
        try:
            return rr.choose_training_python(configured.strip() or None, rr.training_site_dir(private_base()),
                                             site_dir(private_base()), choose_interpreter)
        except rr.NeedsPyTorch as exc:
            raise QgsProcessingException(tr("{}; the plugin panel's Retrain button offers to install it").format(exc)) \
                from None

    def _models_folder(self, parameters, context) -> Path:
        from ..gui.dock_retrain import user_models_dir

        folder = self.parameterAsFile(parameters, self.MODELS_FOLDER, context)
        return Path(folder) if folder else user_models_dir()


def _training_roots():
    from ..gui.dock_retrain import training_roots

    return training_roots()


def _run_event(run: Path) -> str:
    try:
        return str(json.loads((run / "run.json").read_text(encoding="utf-8"))["event_id"])
    except (OSError, ValueError, KeyError, TypeError):
        raise QgsProcessingException(tr("{} is not a detection run folder (no readable run.json with its event); "
                                        "choose the folder a detection wrote").format(run)) from None


def _number(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")
