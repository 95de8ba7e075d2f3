"""Messages to the QGIS message log under the plugin's own tag; tracebacks to a debug log file only.

The user-facing log gets one sentence per problem.  Technical details (a
traceback, a pip log) go to ``<QGIS profile>/landslide_sar_plugin/debug.log``
(rotated at 1 MB, 3 files kept), whose path the sentence names.
"""

from __future__ import annotations

import logging
import logging.handlers
from pathlib import Path

from qgis.core import Qgis, QgsApplication, QgsMessageLog

LOG_TAG = "Landslide SAR"
_debug_logger: logging.Logger | None = None


def plugin_data_dir() -> Path:
    """``<QGIS profile>/landslide_sar_plugin``: the plugin's private packages, debug log and settings files."""
    return Path(QgsApplication.qgisSettingsDirPath()) / "landslide_sar_plugin"


def debug_log_path() -> Path:
    return plugin_data_dir() / "debug.log"


def _debug() -> logging.Logger:
    global _debug_logger
    if _debug_logger is None:
        logger = logging.getLogger("landslide_sar_plugin.debug")
        logger.propagate = False
        logger.setLevel(logging.DEBUG)
        try:
            debug_log_path().parent.mkdir(parents=True, exist_ok=True)
            handler = logging.handlers.RotatingFileHandler(debug_log_path(), maxBytes=1_000_000, backupCount=3,
                                                           encoding="utf-8")
            handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
            logger.addHandler(handler)
        except OSError:  # a read-only profile: details are dropped, the user-facing sentence is still logged
            logger.addHandler(logging.NullHandler())
        _debug_logger = logger
    return _debug_logger


def log_info(message: str) -> None:
    QgsMessageLog.logMessage(message, LOG_TAG, Qgis.MessageLevel.Info)


def log_warning(message: str) -> None:
    QgsMessageLog.logMessage(message, LOG_TAG, Qgis.MessageLevel.Warning)


def log_error(message: str, details: str = "") -> None:
    """One sentence in the QGIS log; ``details`` (a traceback) only in the debug log file, which it names."""
    if details:
        _debug().error("%s\n%s", message, details)
        for handler in _debug().handlers:
            handler.flush()
        message = f"{message} (technical details in {debug_log_path()})"
    QgsMessageLog.logMessage(message, LOG_TAG, Qgis.MessageLevel.Critical)


def log_debug(message: str) -> None:
    """Only into the debug log file (e.g. the full pip output of an install)."""
    _debug().debug(message)
