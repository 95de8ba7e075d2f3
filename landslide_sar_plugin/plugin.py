"""The QGIS plugin object: toolbar button, Raster menu entry, dock and Processing provider."""

from __future__ import annotations

from pathlib import Path

from qgis.core import QgsApplication
from qgis.PyQt.QtCore import QCoreApplication, Qt
from qgis.PyQt.QtGui import QIcon
from qgis.PyQt.QtWidgets import QAction

from .core.dependencies import install_command, missing_required
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
        self.dock = None
        self.provider: LandslideProvider | None = None
        self.missing = missing_required()

    def initProcessing(self) -> None:  # noqa: N802 (QGIS calls it by this name)
        if self.provider is None:
            self.provider = LandslideProvider()
            QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self) -> None:  # noqa: N802
        self.initProcessing()
        self.action = QAction(QIcon(str(ICON_PATH)), tr("Landslide SAR mapper"), self.iface.mainWindow())
        self.action.setObjectName("LandslideSarMapperAction")
        self.action.setCheckable(True)
        self.action.setToolTip(tr("Show the Landslide SAR mapper panel"))
        self.action.toggled.connect(self._set_dock_visible)
        self.iface.addToolBarIcon(self.action)
        self.iface.addPluginToRasterMenu(MENU, self.action)
        if self.missing:
            log_error(self.missing_message())
        else:
            log_info("Landslide SAR mapper loaded")

    def missing_message(self) -> str:
        return tr("Landslide SAR mapper needs the Python package(s) {p}, missing in the Python that runs QGIS. "
                  "Install with: {cmd} and restart QGIS.").format(p=", ".join(self.missing),
                                                                 cmd=install_command(self.missing))

    def _ensure_dock(self):
        if self.dock is None:
            if self.missing:
                from .gui.dock_missing import MissingDependenciesDock

                self.dock = MissingDependenciesDock(self.missing_message(), self.iface.mainWindow())
            else:
                from .gui.dock import LandslideDock  # imports rasterio: only once it is known to be there

                self.dock = LandslideDock(self.iface, self.iface.mainWindow())
            self.iface.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.dock)
            self.dock.visibilityChanged.connect(self._sync_action)
        return self.dock

    def _set_dock_visible(self, visible: bool) -> None:
        dock = self._ensure_dock()
        dock.setVisible(visible)

    def _sync_action(self, visible: bool) -> None:
        if self.action is not None and self.action.isChecked() != visible:
            self.action.setChecked(visible)

    def unload(self) -> None:
        if self.action is not None:
            self.iface.removePluginRasterMenu(MENU, self.action)
            self.iface.removeToolBarIcon(self.action)
            self.action.deleteLater()
            self.action = None
        if self.dock is not None:
            if getattr(self.dock, "task", None) is not None:
                self.dock.task.cancel()
            if hasattr(self.dock, "save_settings"):
                self.dock.save_settings()
            self.iface.removeDockWidget(self.dock)
            self.dock.deleteLater()
            self.dock = None
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
