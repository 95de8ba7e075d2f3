"""The QGIS plugin object: toolbar button, Raster menu entries, dock, package installer and Processing provider."""

from __future__ import annotations

from pathlib import Path

from qgis.core import QgsApplication
from qgis.PyQt.QtCore import QCoreApplication, Qt
from qgis.PyQt.QtGui import QIcon
from qgis.PyQt.QtWidgets import QAction

from .core.dependencies import missing_required
from .gui.log import log_error, log_info
from .processing.provider import LandslideProvider

ICON_PATH = Path(__file__).resolve().parent / "icon.png"
MENU = "&Landslide SAR mapper"


def tr(text: str) -> str:
    return QCoreApplication.translate("LandslideSarPlugin", text)


class LandslideSarPlugin:
    """Created by :func:`landslide_sar_plugin.classFactory` with the QGIS interface."""

    def __init__(self, iface):
        self.iface = iface
        self.action: QAction | None = None
        self.packages_action: QAction | None = None
        self.dock = None
        self.dependencies_dialog = None
        self.provider: LandslideProvider | None = None
        self.missing = missing_required()

    def initProcessing(self) -> None:  # noqa: N802 (QGIS calls it by this name)
        if self.provider is None:
            self.provider = LandslideProvider()
            QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self) -> None:  # noqa: N802
        self.initProcessing()
        window = self.iface.mainWindow()
        self.action = QAction(QIcon(str(ICON_PATH)), tr("Landslide SAR mapper"), window)
        self.action.setObjectName("LandslideSarMapperAction")
        self.action.setCheckable(True)
        self.action.setToolTip(tr("Show the Landslide SAR mapper panel"))
        self.action.toggled.connect(self._set_dock_visible)
        self.iface.addToolBarIcon(self.action)
        self.iface.addPluginToRasterMenu(MENU, self.action)
        self.packages_action = QAction(tr("Python packages and diagnostics…"), window)
        self.packages_action.setObjectName("LandslideSarPackagesAction")
        self.packages_action.triggered.connect(self.show_dependencies_dialog)
        self.iface.addPluginToRasterMenu(MENU, self.packages_action)
        if self.missing:
            log_error(self.missing_message())
        else:
            log_info("Landslide SAR mapper loaded")

    def missing_message(self) -> str:
        from .gui.installer import missing_message

        return missing_message(self.missing)

    def show_dependencies_dialog(self):
        from .gui.installer import DependenciesDialog

        if self.dependencies_dialog is None:
            self.dependencies_dialog = DependenciesDialog(self.iface.mainWindow())
            self.dependencies_dialog.installed.connect(self._packages_installed)
        self.dependencies_dialog.refresh()
        self.dependencies_dialog.show()
        self.dependencies_dialog.raise_()
        return self.dependencies_dialog

    def _packages_installed(self, _names) -> None:
        """After an install: load the real dock and the Processing algorithms if nothing required is missing."""
        self.missing = missing_required()
        if self.missing:
            log_error(self.missing_message())
            return
        if self.provider is not None:
            self.provider.refreshAlgorithms()
        if self.dock is not None and not hasattr(self.dock, "start_detection"):
            visible = self.action is not None and self.action.isChecked()
            self.dock.visibilityChanged.disconnect(self._sync_action)
            if hasattr(self.dock, "cleanup"):
                self.dock.cleanup()
            self.iface.removeDockWidget(self.dock)
            self.dock.deleteLater()
            self.dock = None
            if visible:
                self._set_dock_visible(True)
        log_info("Landslide SAR mapper: all required packages are installed")

    def _ensure_dock(self):
        if self.dock is None:
            if self.missing:
                from .core.dependencies import install_command
                from .gui.dock_missing import MissingDependenciesDock
                from .gui.installer import missing_message

                self.dock = MissingDependenciesDock(missing_message(self.missing, with_command=False),
                                                    self.iface.mainWindow(), on_install=self.show_dependencies_dialog,
                                                    command=install_command(self.missing))
            else:
                from .gui.dock import LandslideDock  # imports rasterio: only once it is known to be there

                self.dock = LandslideDock(self.iface, self.iface.mainWindow())
            self.iface.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.dock)
            window = self.iface.mainWindow()
            if hasattr(window, "resizeDocks"):  # a first-time dock opens at its content's width, not ~250 px
                window.resizeDocks([self.dock], [360], Qt.Orientation.Horizontal)
            self.dock.visibilityChanged.connect(self._sync_action)
        return self.dock

    def _set_dock_visible(self, visible: bool) -> None:
        dock = self._ensure_dock()
        dock.setVisible(visible)

    def _sync_action(self, visible: bool) -> None:
        if self.action is not None and self.action.isChecked() != visible:
            self.action.setChecked(visible)

    def unload(self) -> None:
        for action in (self.action, self.packages_action):
            if action is not None:
                self.iface.removePluginRasterMenu(MENU, action)
        if self.action is not None:
            self.iface.removeToolBarIcon(self.action)
            self.action.deleteLater()
        if self.packages_action is not None:
            self.packages_action.deleteLater()
        self.action = self.packages_action = None
        if self.dependencies_dialog is not None:
            self.dependencies_dialog.close()
            self.dependencies_dialog.deleteLater()
            self.dependencies_dialog = None
        if self.dock is not None:
            if getattr(self.dock, "task", None) is not None:
                self.dock.task.cancel()
            if hasattr(self.dock, "save_settings"):
                self.dock.save_settings()
            if hasattr(self.dock, "cleanup"):
                self.dock.cleanup()
            self.iface.removeDockWidget(self.dock)
            self.dock.deleteLater()
            self.dock = None
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
