"""The "Python packages and diagnostics" dialog: install missing packages in the background, copy a report.

Thin: which Python, which pip command, where and how to install are
:mod:`..core.installer`; this module shows the packages, runs
:func:`..core.installer.install_packages` in a ``QgsTask`` (progress, cancel,
a live log) and offers the diagnostics report with a Copy button.  Nothing
here imports rasterio, so it works exactly when rasterio is missing.
"""

from __future__ import annotations

from qgis.core import QgsApplication, QgsTask
from qgis.PyQt.QtCore import QCoreApplication, Qt, pyqtSignal
from qgis.PyQt.QtGui import QGuiApplication
from qgis.PyQt.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QGridLayout,
    QGroupBox,
    QLabel,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
)

from ..core import dependencies, installer
from .log import log_debug, log_error, log_info, plugin_data_dir


def tr(text: str) -> str:
    return QCoreApplication.translate("LandslideInstaller", text)


def private_base():
    """Where the private package folders live: ``<QGIS profile>/landslide_sar_plugin/python``."""
    return plugin_data_dir() / "python"


def activate_private_packages():
    """Put the private package folder on ``sys.path`` (called once when QGIS loads the plugin)."""
    return installer.activate(private_base())


def qgis_diagnostics() -> dict[str, str]:
    """What only QGIS knows: its version, its GDAL and PROJ, its profile folder."""
    from qgis.core import Qgis, QgsProjUtils

    extra = {"QGIS": f"{Qgis.QGIS_VERSION} (profile {QgsApplication.qgisSettingsDirPath()})",
             "QGIS's PROJ": f"{QgsProjUtils.projVersionMajor()}.{QgsProjUtils.projVersionMinor()}"}
    try:
        from osgeo import gdal

        extra["QGIS's GDAL"] = gdal.__version__
    except ImportError:
        extra["QGIS's GDAL"] = "osgeo bindings not importable"
    return extra


class InstallTask(QgsTask):
    """``installer.install_packages`` in the background; log lines are queued to the main thread."""

    line = pyqtSignal(str)

    def __init__(self, packages: list[str], target, on_done):
        super().__init__(tr("Installing Python packages for Landslide SAR mapper"), QgsTask.Flag.CanCancel)
        self.packages, self.target, self._on_done = packages, target, on_done
        self.error: str = ""
        self.cancelled_by_user = False

    def run(self) -> bool:  # worker thread: no widgets here
        try:
            installer.install_packages(self.packages, self.target, log=self.line.emit,
                                       progress=lambda f, m: self.setProgress(100.0 * f),
                                       is_cancelled=self.isCanceled)
        except installer.InstallCancelled:
            self.cancelled_by_user = True
        except installer.InstallerError as exc:
            self.error = str(exc)
        except Exception as exc:  # reported in one sentence; the log holds the rest
            self.error = f"installing failed unexpectedly: {type(exc).__name__}: {exc}"
        # A cancel or a failure is reported by the dialog itself, not as QGIS's "Task failed" notification.
        return True

    def finished(self, ok: bool) -> None:  # main thread
        self._on_done(self)


class DependenciesDialog(QDialog):
    """Lists the plugin's Python packages, installs the ticked missing ones, and shows the diagnostics report."""

    installed = pyqtSignal(list)  # pip names installed successfully

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("LandslideSarDependenciesDialog")
        self.setWindowTitle(tr("Landslide SAR mapper: Python packages"))
        self.task: InstallTask | None = None
        self.checks: dict[str, QCheckBox] = {}
        layout = QVBoxLayout(self)
        intro = QLabel(tr(
            "Packages are installed with the Python that runs QGIS into a folder of the plugin's own "
            "({folder}); QGIS's own Python is not changed. Required packages must be there for the plugin to "
            "work; optional ones enable a method or a data source.").format(folder=installer.site_dir(
                private_base())))
        intro.setWordWrap(True)
        intro.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(intro)
        box = QGroupBox(tr("Packages"))
        self.grid = QGridLayout(box)
        layout.addWidget(box)
        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        layout.addWidget(self.progress)
        self.status = QLabel()
        self.status.setWordWrap(True)
        layout.addWidget(self.status)
        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.log.setPlaceholderText(tr("pip's output appears here"))
        self.log.setMinimumHeight(140)
        layout.addWidget(self.log)
        buttons = QDialogButtonBox()
        self.install_button = QPushButton(tr("Install selected"))
        self.install_button.clicked.connect(self.start_install)
        self.cancel_button = QPushButton(tr("Cancel installation"))
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel_install)
        self.diagnostics_button = QPushButton(tr("Copy diagnostics"))
        self.diagnostics_button.setToolTip(tr("Copies versions (QGIS, Python, GDAL and PROJ of QGIS and of rasterio), "
                                              "paths and the package list, for a bug report"))
        self.diagnostics_button.clicked.connect(self.copy_diagnostics)
        for button in (self.install_button, self.cancel_button, self.diagnostics_button):
            buttons.addButton(button, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.addButton(QDialogButtonBox.StandardButton.Close).clicked.connect(self.close)
        layout.addWidget(buttons)
        self.resize(760, 560)
        self.refresh()

    def refresh(self) -> None:
        """Re-read which packages import and rebuild the package list."""
        while self.grid.count():
            widget = self.grid.takeAt(0).widget()
            if widget is not None:
                widget.deleteLater()
        self.checks = {}
        for col, title in enumerate((tr("Package"), tr("Installed"), tr("Needed for"))):
            self.grid.addWidget(QLabel(f"<b>{title}</b>"), 0, col)
        for row, info in enumerate(installer.package_report(), start=1):
            present = info["version"] is not None
            check = QCheckBox(info["pip"])
            check.setChecked(not present and info["required"])
            check.setEnabled(not present)
            check.toggled.connect(lambda _: self._update_install_button())
            self.checks[info["pip"]] = check
            self.grid.addWidget(check, row, 0)
            state = QLabel(tr("error") if info["error"] else (info["version"] if present else tr("missing")))
            state.setToolTip(info["error"] or info["location"] or "")
            if not present:
                state.setStyleSheet("color: #b00020; font-weight: bold;" if info["required"] else "font-weight: bold;")
            self.grid.addWidget(state, row, 1)
            kind = tr("required") if info["required"] else tr("optional")
            self.grid.addWidget(QLabel(f"{tr(info['purpose'])} ({kind})"), row, 2)
        self.grid.setColumnStretch(2, 1)
        self._update_install_button()

    def _update_install_button(self) -> None:
        self.install_button.setEnabled(self.task is None and bool(self.selected()))

    def selected(self) -> list[str]:
        return [name for name, check in self.checks.items() if check.isEnabled() and check.isChecked()]

    def start_install(self) -> None:
        packages = self.selected()
        if self.task is not None or not packages:
            return
        self.log.clear()
        self.progress.setValue(0)
        self.status.setText(tr("Installing {p}…").format(p=", ".join(packages)))
        log_info(f"installing {', '.join(packages)} into {installer.site_dir(private_base())}")
        self.task = InstallTask(packages, installer.site_dir(private_base()), self._install_done)
        self.task.line.connect(self._append_log)
        self.task.progressChanged.connect(lambda p: self.progress.setValue(int(p)))
        self.install_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        QgsApplication.taskManager().addTask(self.task)

    def _append_log(self, line: str) -> None:
        self.log.appendPlainText(line)
        log_debug(line)

    def cancel_install(self) -> None:
        if self.task is not None:
            self.status.setText(tr("Cancelling…"))
            self.task.cancel()

    def _install_done(self, task: InstallTask) -> None:
        self.task = None
        self.cancel_button.setEnabled(False)
        if task.cancelled_by_user or (task.isCanceled() and not task.error):
            self.progress.setValue(0)
            self.status.setText(tr("Installation cancelled; nothing was installed."))
        elif task.error:
            self.progress.setValue(0)
            self.status.setText(task.error)
            log_error(task.error, self.log.toPlainText())
        else:
            self.progress.setValue(100)
            activate_private_packages()
            self.status.setText(tr("Installed {p}. If the plugin still reports them missing, restart QGIS.").format(
                p=", ".join(task.packages)))
            log_info(f"installed {', '.join(task.packages)}")
            self.installed.emit(list(task.packages))
        self.refresh()

    def diagnostics_text(self) -> str:
        return installer.diagnostics_report(qgis_diagnostics())

    def copy_diagnostics(self) -> str:
        text = self.diagnostics_text()
        QGuiApplication.clipboard().setText(text)
        self.log.setPlainText(text)
        self.status.setText(tr("Diagnostics copied to the clipboard (also shown below)."))
        return text

    def closeEvent(self, event):  # noqa: N802 (Qt API)
        if self.task is not None:
            self.task.cancel()
        super().closeEvent(event)


def missing_message(missing: list[str], *, with_command: bool = True) -> str:
    """The sentence shown when required packages are missing (dock, log, Processing); with the terminal command."""
    text = tr("Landslide SAR mapper needs the Python package(s) {p}, missing in the Python that runs QGIS. Click "
              "'Install missing packages' (or Raster > Landslide SAR mapper > Python packages and diagnostics) to "
              "install it into a folder of the plugin's own.").format(p=", ".join(missing))
    if with_command:
        text += " " + tr("From a terminal: {cmd}").format(cmd=dependencies.install_command(missing))
    return text
