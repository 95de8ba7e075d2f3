"""Coalescing rapid GUI events: the threshold slider restyles the map at most once per interval.

Dragging the slider emits ``valueChanged`` for every pixel of mouse travel; a
map re-render takes tens of milliseconds, so restyling on each value queues
renders that are stale before they start.  :class:`Debouncer` calls through
at once when idle (a single click or key press feels instant), then merges the
calls that arrive within ``interval_ms`` into one call with the latest
arguments at the end of the interval: the map follows a drag at a steady rate
and always ends on the value where the slider stopped.
"""

from __future__ import annotations

from collections.abc import Callable

from qgis.PyQt.QtCore import QObject, QTimer


class Debouncer(QObject):
    """``Debouncer(fn, interval_ms)(*args)``: leading call now, trailing call with the latest ``args``."""

    def __init__(self, fn: Callable, interval_ms: int = 40, parent: QObject | None = None):
        super().__init__(parent)
        self._fn = fn
        self._pending: tuple | None = None
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(int(interval_ms))
        self._timer.timeout.connect(self._fire)

    def __call__(self, *args) -> None:
        if self._timer.isActive():
            self._pending = args  # a call is recent: keep only the latest value for the end of the interval
            return
        self._fn(*args)
        self._timer.start()

    def _fire(self) -> None:
        if self._pending is not None:
            args, self._pending = self._pending, None
            self._fn(*args)
            self._timer.start()

    def flush(self) -> None:
        """Deliver a pending call now (before reading state that it would change)."""
        self._timer.stop()
        self._fire()
        self._timer.stop()
