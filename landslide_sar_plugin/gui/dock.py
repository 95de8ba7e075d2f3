"""The plugin's dock panel.

For now it only says what the plugin will do and where the synthetic sample
scene lies; the detection controls arrive with the dock issue.
"""

from __future__ import annotations

from pathlib import Path

from qgis.PyQt.QtCore import QCoreApplication, Qt
from qgis.PyQt.QtWidgets import QDockWidget, QLabel, QVBoxLayout, QWidget

SAMPLE_DIR = Path(__file__).resolve().parent.parent / "sample_data"


def tr(text: str) -> str:
    return QCoreApplication.translate("LandslideDock", text)


class LandslideDock(QDockWidget):
    """Dockable panel titled "Landslide SAR mapper"."""

    OBJECT_NAME = "LandslideSarMapperDock"

    def __init__(self, parent=None):
        super().__init__(tr("Landslide SAR mapper"), parent)
        self.setObjectName(self.OBJECT_NAME)
        self.setAllowedAreas(Qt.DockWidgetArea.LeftDockWidgetArea | Qt.DockWidgetArea.RightDockWidgetArea)
        body = QWidget(self)
        layout = QVBoxLayout(body)
        self.intro_label = QLabel(
            tr(
                "Detect candidate landslides from Sentinel-1 backscatter change.\n\n"
                "The detection controls are not in this version yet. A SYNTHETIC (simulated) "
                "sample scene to try the tool on lies in:\n{path}"
            ).format(path=SAMPLE_DIR),
            body,
        )
        self.intro_label.setWordWrap(True)
        self.intro_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.intro_label)
        layout.addStretch(1)
        self.setWidget(body)
