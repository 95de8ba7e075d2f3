"""The dock shown instead of the real one when a required Python package is missing: says which, installs it."""

from __future__ import annotations

from qgis.PyQt.QtCore import QCoreApplication, Qt
from qgis.PyQt.QtWidgets import QDockWidget, QLabel, QPushButton, QVBoxLayout, QWidget


def tr(text: str) -> str:
    return QCoreApplication.translate("LandslideDock", text)


class MissingDependenciesDock(QDockWidget):
    OBJECT_NAME = "LandslideSarMapperDock"

    def __init__(self, message: str, parent=None, on_install=None, command: str = ""):
        super().__init__(tr("Landslide SAR mapper"), parent)
        self.setObjectName(self.OBJECT_NAME)
        self.task = None
        body = QWidget()
        layout = QVBoxLayout(body)
        self.message_label = QLabel(message)
        self.message_label.setWordWrap(True)
        self.message_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.message_label)
        self.install_button = QPushButton(tr("Install missing packages…"))
        self.install_button.setToolTip(tr("Installs them with the Python that runs QGIS into a folder of the "
                                          "plugin's own; shows progress, a log and a diagnostics report"))
        if on_install is not None:
            self.install_button.clicked.connect(on_install)
        layout.addWidget(self.install_button)
        if command:
            self.command_label = QLabel(tr("Or, from a terminal:") + f"<br><code>{command}</code>")
            self.command_label.setWordWrap(True)
            self.command_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            self.command_label.setStyleSheet("color: #555;")
            layout.addWidget(self.command_label)
        layout.addStretch(1)
        self.setWidget(body)
