"""Map tools of the dock: drawing a missed landslide.

:class:`PolygonDrawTool`: left click adds a vertex, right click (or Enter)
closes the polygon, Backspace removes the last vertex, Esc abandons it.  The
polygon is emitted in the canvas CRS (:attr:`PolygonDrawTool.drawn`); the
dock turns it into a candidate feature.  A small tool of our own rather than
QGIS's digitizing tool: that one needs the advanced-digitizing dock and the
layer to be the active layer, and opens the attribute form.
"""

from __future__ import annotations

from qgis.core import QgsGeometry, QgsPointXY, QgsWkbTypes
from qgis.gui import QgsMapTool, QgsRubberBand
from qgis.PyQt.QtCore import Qt, pyqtSignal
from qgis.PyQt.QtGui import QColor


class PolygonDrawTool(QgsMapTool):
    """Draw one polygon on the canvas; emits ``drawn(QgsGeometry)`` (canvas CRS) and ``abandoned()``."""

    drawn = pyqtSignal(QgsGeometry)
    abandoned = pyqtSignal()

    def __init__(self, canvas):
        super().__init__(canvas)
        self.points: list[QgsPointXY] = []
        self.band = QgsRubberBand(canvas, QgsWkbTypes.GeometryType.PolygonGeometry)
        self.band.setColor(QColor(40, 200, 60, 80))
        self.band.setStrokeColor(QColor(40, 200, 60))
        self.band.setWidth(2)
        self.setCursor(Qt.CursorShape.CrossCursor)

    def add_point(self, point: QgsPointXY) -> None:
        self.points.append(QgsPointXY(point))
        self._redraw()

    def remove_last(self) -> None:
        if self.points:
            self.points.pop()
            self._redraw()

    def finish(self) -> QgsGeometry | None:
        """Close the polygon and emit it; None (and nothing emitted) with fewer than 3 vertices."""
        if len(self.points) < 3:
            return None
        geometry = QgsGeometry.fromPolygonXY([self.points + [self.points[0]]])
        self.reset()
        if geometry.isEmpty() or not geometry.isGeosValid():
            geometry = geometry.makeValid()
        self.drawn.emit(geometry)
        return geometry

    def reset(self) -> None:
        self.points = []
        self.band.reset(QgsWkbTypes.GeometryType.PolygonGeometry)

    def _redraw(self) -> None:
        self.band.reset(QgsWkbTypes.GeometryType.PolygonGeometry)
        for i, p in enumerate(self.points):
            self.band.addPoint(p, i == len(self.points) - 1)

    def canvasReleaseEvent(self, event):  # noqa: N802 (QGIS API)
        if event.button() == Qt.MouseButton.LeftButton:
            self.add_point(self.toMapCoordinates(event.pos()))
        elif event.button() == Qt.MouseButton.RightButton:
            self.finish()

    def keyPressEvent(self, event):  # noqa: N802 (QGIS API)
        key = event.key()
        if key == Qt.Key.Key_Escape:
            self.reset()
            self.abandoned.emit()
        elif key in (Qt.Key.Key_Backspace, Qt.Key.Key_Delete):
            self.remove_last()
        elif key in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            self.finish()
        else:
            event.ignore()
            return
        event.accept()

    def deactivate(self):
        self.reset()
        super().deactivate()
