"""The "Landslide SAR" Processing provider.

Without a required package (rasterio) the provider does not silently stay
empty: it registers one algorithm, "Missing Python packages", whose help and
whose run say which package is missing and how to install it (also under
``qgis_process list``), and the provider's name says so.
"""

from __future__ import annotations

from pathlib import Path

from qgis.core import QgsProcessingAlgorithm, QgsProcessingException, QgsProcessingOutputString, QgsProcessingProvider
from qgis.PyQt.QtCore import QCoreApplication
from qgis.PyQt.QtGui import QIcon

ICON_PATH = Path(__file__).resolve().parent.parent / "icon.png"


def tr(text: str) -> str:
    return QCoreApplication.translate("LandslideSarProcessing", text)


class LandslideProvider(QgsProcessingProvider):
    """Registers the plugin's algorithms in the Processing toolbox."""

    def __init__(self):
        super().__init__()
        self.missing: list[str] = []

    def id(self) -> str:  # noqa: A003 (QGIS API name)
        return "landslidesar"

    def name(self) -> str:
        return "Landslide SAR"

    def longName(self) -> str:  # noqa: N802
        if self.missing:
            return tr("Landslide SAR (needs {p})").format(p=", ".join(self.missing))
        return self.name()

    def icon(self):
        return QIcon(str(ICON_PATH))

    def loadAlgorithms(self) -> None:  # noqa: N802
        from ..core.dependencies import missing_required

        self.missing = missing_required()
        if self.missing:  # the plugin still loads; the algorithm below says how to fix it
            from ..gui.installer import missing_message
            from ..gui.log import log_error

            message = missing_message(self.missing)
            log_error(message)
            self.addAlgorithm(MissingPackagesAlgorithm(message))
            return
        from .algorithms import ALGORITHMS
        from .retrain import RetrainAlgorithm

        for algorithm_class in (*ALGORITHMS, RetrainAlgorithm):
            self.addAlgorithm(algorithm_class())


class MissingPackagesAlgorithm(QgsProcessingAlgorithm):
    """Stands in for the real algorithms while a required package is missing; running it explains the fix."""

    MESSAGE = "MESSAGE"

    def __init__(self, message: str = ""):
        super().__init__()
        self.message = message

    def name(self) -> str:
        return "missing_packages"

    def displayName(self) -> str:  # noqa: N802
        return tr("Missing Python packages: how to install them")

    def group(self) -> str:
        return tr("Landslide detection")

    def groupId(self) -> str:  # noqa: N802
        return "landslidedetection"

    def shortHelpString(self) -> str:  # noqa: N802
        return self.message

    def createInstance(self):  # noqa: N802
        return MissingPackagesAlgorithm(self.message)

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addOutput(QgsProcessingOutputString(self.MESSAGE, tr("What to install")))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        raise QgsProcessingException(self.message)
