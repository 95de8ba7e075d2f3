"""QgsTask wrapper for core runs: heavy work in a worker thread, results handed back on the main thread.

``run()`` touches no widget and no QgsProject (QGIS's rule); it calls one core
function with ``progress`` and ``is_cancelled`` callbacks.  ``finished()``
runs on the main thread and passes the task to ``on_done``, which loads layers
or shows the error.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable

from qgis.core import QgsTask
from qgis.PyQt.QtCore import pyqtSignal

from ..core.staging import Cancelled


class CoreTask(QgsTask):
    """Run ``fn(progress=..., is_cancelled=...)`` in the background."""

    message = pyqtSignal(str)  # progress text; queued to the main thread by Qt

    def __init__(self, description: str, fn: Callable, on_done: Callable[[CoreTask], None]):
        super().__init__(description, QgsTask.Flag.CanCancel)
        self._fn = fn
        self._on_done = on_done
        self.result = None
        self.error: Exception | None = None
        self.error_traceback = ""
        self.cancelled_by_user = False
        self.last_message = ""

    def _progress(self, fraction: float, text: str) -> None:
        self.setProgress(100.0 * fraction)
        if text != self.last_message:
            self.last_message = text
            self.message.emit(text)

    def run(self) -> bool:  # worker thread
        try:
            self.result = self._fn(progress=self._progress, is_cancelled=self.isCanceled)
            return True
        except Cancelled:
            # Reported by the dock ("cancelled; nothing was kept"); returning True keeps QGIS from also
            # announcing "Task failed".
            self.cancelled_by_user = True
            return True
        except Exception as exc:  # reported to the user in finished()
            self.error = exc
            self.error_traceback = traceback.format_exc()
            return False

    def finished(self, ok: bool) -> None:  # main thread
        if not ok and self.error is None and self.isCanceled():
            self.cancelled_by_user = True
        self._on_done(self)
