"""Messages to the QGIS message log under the plugin's own tag."""

from qgis.core import Qgis, QgsMessageLog

LOG_TAG = "Landslide SAR"


def log_info(message: str) -> None:
    QgsMessageLog.logMessage(message, LOG_TAG, Qgis.MessageLevel.Info)


def log_warning(message: str) -> None:
    QgsMessageLog.logMessage(message, LOG_TAG, Qgis.MessageLevel.Warning)


def log_error(message: str) -> None:
    QgsMessageLog.logMessage(message, LOG_TAG, Qgis.MessageLevel.Critical)
