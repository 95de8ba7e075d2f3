"""The "Landslide SAR" Processing provider."""

from __future__ import annotations

from pathlib import Path

from qgis.core import QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

ICON_PATH = Path(__file__).resolve().parent.parent / "icon.png"


class LandslideProvider(QgsProcessingProvider):
    """Registers the plugin's algorithms in the Processing toolbox."""

    def id(self) -> str:  # noqa: A003 (QGIS API name)
        return "landslidesar"

    def name(self) -> str:
        return "Landslide SAR"

    def longName(self) -> str:  # noqa: N802
        return self.name()

    def icon(self):
        return QIcon(str(ICON_PATH))

    def loadAlgorithms(self) -> None:  # noqa: N802
        from ..core.dependencies import install_command, missing_required

        missing = missing_required()
        if missing:  # the plugin still loads; the message says how to fix it
            from ..gui.log import log_error

            log_error(f"Landslide SAR Processing algorithms need {', '.join(missing)}: {install_command(missing)}")
            return
        from .algorithms import ALGORITHMS

        for algorithm_class in ALGORITHMS:
            self.addAlgorithm(algorithm_class())
