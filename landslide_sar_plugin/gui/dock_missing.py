"""The dock shown instead of the real one when a required Python package is missing."""

from __future__ import annotations

from qgis.PyQt.QtCore import QCoreApplication, Qt
from qgis.PyQt.QtWidgets import QDockWidget, QLabel


class MissingDependenciesDock(QDockWidget):
    OBJECT_NAME = "LandslideSarMapperDock"

    def __init__(self, message: str, parent=None):
        super().__init__(QCoreApplication.translate("LandslideDock", "Landslide SAR mapper"), parent)
        self.setObjectName(self.OBJECT_NAME)
        self.task = None
        self.message_label = QLabel(message)
        self.message_label.setWordWrap(True)
        self.message_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.setWidget(self.message_label)
