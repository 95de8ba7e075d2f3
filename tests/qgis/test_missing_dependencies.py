"""Without rasterio in QGIS's Python the plugin still loads, says what is missing, and can install it."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run_without_rasterio(body: str, tmp_path) -> str:
    script = textwrap.dedent(f"""
        import sys
        sys.modules["rasterio"] = None  # any `import rasterio` now raises ImportError
        sys.path.insert(0, {str(ROOT)!r})
        sys.path.insert(0, {str(ROOT / "tests" / "qgis")!r})
        from qgis.core import QgsApplication
        app = QgsApplication([], True)
        app.initQgis()
        from conftest import FakeIface
        import landslide_sar_plugin
        iface = FakeIface()
        plugin = landslide_sar_plugin.classFactory(iface)
        plugin.initGui()
    """) + textwrap.dedent(body) + textwrap.dedent("""
        plugin.unload()
        import os
        sys.stdout.flush()
        os._exit(0)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          env={"QT_QPA_PLATFORM": "offscreen", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path),
                               "XDG_DATA_HOME": str(tmp_path / "data")})
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr[-3000:]
    return proc.stdout


def test_plugin_loads_without_rasterio_and_offers_the_installer(tmp_path):
    out = run_without_rasterio("""
        plugin.action.setChecked(True)
        print("DOCK", type(plugin.dock).__name__)
        print("MESSAGE", plugin.dock.message_label.text(), plugin.dock.command_label.text())
        plugin.dock.install_button.click()
        dialog = plugin.dependencies_dialog
        print("DIALOG", dialog.isVisible(), "TICKED", dialog.selected())
        print("RASTERIO_IMPORTED", "rasterio" in sys.modules and sys.modules["rasterio"] is not None)
        # The installer succeeded (here: rasterio becomes importable again): the real dock and algorithms load.
        del sys.modules["rasterio"]
        dialog.installed.emit(["rasterio"])
        print("AFTER", type(plugin.dock).__name__, not plugin.dock.isHidden(),
              len(QgsApplication.processingRegistry().providerById("landslidesar").algorithms()))
    """, tmp_path)
    assert "DOCK MissingDependenciesDock" in out
    message = next(line for line in out.splitlines() if line.startswith("MESSAGE"))
    # It names the package, the button, and a terminal command that is PEP 668-safe (no --user).
    assert "rasterio" in message and "Install missing packages" in message
    assert "-m pip install --target" in message and "--user" not in message
    assert "DIALOG True TICKED ['rasterio']" in out
    assert "RASTERIO_IMPORTED False" in out
    assert "AFTER LandslideDock True 7" in out


def test_processing_says_what_is_missing_instead_of_registering_nothing(tmp_path):
    out = run_without_rasterio("""
        from qgis.core import QgsProcessingContext, QgsProcessingFeedback
        provider = QgsApplication.processingRegistry().providerById("landslidesar")
        print("LONGNAME", provider.longName())
        print("ALGS", [a.id() for a in provider.algorithms()])
        alg = provider.algorithms()[0]

        class Feedback(QgsProcessingFeedback):
            errors = []

            def reportError(self, error, fatalError=False):
                self.errors.append(error)

        feedback = Feedback()
        res, ok = alg.run({}, QgsProcessingContext(), feedback)
        print("OK", ok)
        print("ERROR", " ".join(feedback.errors))
    """, tmp_path)
    assert "LONGNAME Landslide SAR (needs rasterio)" in out
    assert "ALGS ['landslidesar:missing_packages']" in out
    assert "OK False" in out  # the run fails with the sentence that says what to install
    error = next(line for line in out.splitlines() if line.startswith("ERROR"))
    assert "rasterio" in error and "-m pip install --target" in error


@pytest.fixture
def dialog(qgis_app, tmp_path, monkeypatch):
    from landslide_sar_plugin.gui import installer as gui_installer

    monkeypatch.setattr(gui_installer, "private_base", lambda: tmp_path / "python")
    d = gui_installer.DependenciesDialog()
    yield d
    d.close()
    d.deleteLater()


def test_the_dialog_installs_in_the_background_and_reports_progress(dialog, monkeypatch):
    from landslide_sar_plugin.core import installer as core_installer

    from .conftest import wait_until

    calls = []

    def fake_install(packages, target, *, log, progress, is_cancelled):
        calls.append((packages, target))
        for i, line in enumerate(["Collecting onnxruntime>=1.17", "Successfully installed onnxruntime-1.31.1"]):
            log(line)
            progress(0.5 * (i + 1), line)
        return target

    monkeypatch.setattr(core_installer, "install_packages", fake_install)
    installed = []
    dialog.installed.connect(installed.append)
    dialog.checks["onnxruntime"].setEnabled(True)  # pretend it is missing
    dialog.checks["onnxruntime"].setChecked(True)
    assert "onnxruntime" in dialog.selected()
    dialog.install_button.click()
    assert dialog.task is not None and dialog.cancel_button.isEnabled()
    wait_until(lambda: dialog.task is None, 30)
    assert calls and "onnxruntime" in calls[0][0]
    assert installed == [calls[0][0]] and dialog.progress.value() == 100
    assert "Successfully installed onnxruntime" in dialog.log.toPlainText()


def test_a_failed_install_is_one_sentence_and_no_task_failed(dialog, monkeypatch):
    from qgis.core import QgsTask

    from landslide_sar_plugin.core import installer as core_installer

    from .conftest import wait_until

    def failing(packages, target, **kwargs):
        raise core_installer.InstallerError("installing failed: the package index could not be reached")

    monkeypatch.setattr(core_installer, "install_packages", failing)
    dialog.checks["onnxruntime"].setEnabled(True)
    dialog.checks["onnxruntime"].setChecked(True)
    dialog.install_button.click()
    task = dialog.task
    wait_until(lambda: dialog.task is None, 30)
    assert dialog.status.text() == "installing failed: the package index could not be reached"
    assert task.status() == QgsTask.TaskStatus.Complete  # QGIS shows no "Task failed" on top of our sentence


def test_diagnostics_are_copied_with_qgis_and_rasterio_gdal(dialog):
    from qgis.PyQt.QtGui import QGuiApplication

    text = dialog.copy_diagnostics()
    assert QGuiApplication.clipboard().text() == text
    for needle in ("QGIS: 3.", "QGIS's GDAL", "QGIS's PROJ", "rasterio's GDAL", "Private package folder"):
        assert needle in text
