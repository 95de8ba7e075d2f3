"""A small histogram widget with a threshold line and a suggested threshold (painted with QPainter)."""

from __future__ import annotations

from qgis.PyQt.QtCore import QRectF, Qt
from qgis.PyQt.QtGui import QColor, QPainter, QPen
from qgis.PyQt.QtWidgets import QSizePolicy, QWidget


class HistogramWidget(QWidget):
    """Bars of a :class:`core.histogram.Histogram`; bins above the threshold are drawn in the exceedance colour."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.histogram = None
        self.threshold: float | None = None
        self.label = ""
        self.suggested: float | None = None  # Suggest threshold's value: a second, dashed marker
        self.suggested_label = ""
        self.setMinimumHeight(70)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

    def set_histogram(self, histogram) -> None:
        self.histogram = histogram
        self.update()

    def set_threshold(self, value: float | None, label: str = "") -> None:
        """Draw the threshold line at ``value`` (score units) with ``label`` (the value in every unit)."""
        self.threshold = value
        self.label = label
        self.setToolTip(label)
        self.update()

    def set_suggestion(self, value: float | None, label: str = "") -> None:
        """Draw the suggested threshold as a dashed green line with ``label`` (None removes it)."""
        self.suggested = value
        self.suggested_label = label
        self.update()

    def x_of(self, value: float) -> float | None:
        """The widget x coordinate of ``value`` (score units); None without a histogram."""
        h = self.histogram
        if h is None or h.n_valid == 0:
            return None
        rect = self.rect().adjusted(2, 2, -2, -2)
        lo, hi = float(h.edges[0]), float(h.edges[-1])
        return rect.left() + (value - lo) / (hi - lo) * rect.width() if hi > lo else None

    def paintEvent(self, event):  # noqa: N802 (Qt API)
        painter = QPainter(self)
        try:
            rect = self.rect().adjusted(2, 2, -2, -2)
            painter.fillRect(rect, QColor(250, 250, 250))
            h = self.histogram
            if h is None or h.n_valid == 0:
                painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, self.tr("no histogram yet"))
                return
            lo, hi = float(h.edges[0]), float(h.edges[-1])
            peak = max(int(h.counts.max()), 1)
            width = rect.width() / len(h.counts)
            for i, count in enumerate(h.counts):
                centre = (h.edges[i] + h.edges[i + 1]) / 2
                above = self.threshold is not None and centre > self.threshold
                bar_h = rect.height() * (count / peak) ** 0.5  # square root keeps the tail visible
                painter.fillRect(QRectF(rect.left() + i * width, rect.bottom() - bar_h, max(width - 0.5, 0.5), bar_h),
                                 QColor(200, 0, 160) if above else QColor(120, 120, 120))
            if self.threshold is not None and hi > lo:
                x = rect.left() + (self.threshold - lo) / (hi - lo) * rect.width()
                painter.setPen(QPen(QColor(220, 0, 0), 2))
                painter.drawLine(int(x), rect.top(), int(x), rect.bottom())
            self._paint_suggestion(painter, rect)
            if self.label:
                painter.setPen(QColor(30, 30, 30))
                painter.drawText(rect.adjusted(4, 2, -4, 0), Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop,
                                 self.label)
        finally:
            painter.end()

    def _paint_suggestion(self, painter, rect) -> None:
        x = self.x_of(self.suggested) if self.suggested is not None else None
        if x is None:
            return
        pen = QPen(QColor(0, 150, 60), 2)
        pen.setStyle(Qt.PenStyle.DashLine)
        painter.setPen(pen)
        painter.drawLine(int(x), rect.top(), int(x), rect.bottom())
        if self.suggested_label:  # bottom right, on a pale box so the bars do not hide it
            flags = Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignBottom
            box = painter.boundingRect(rect.adjusted(4, 0, -4, -2), flags, self.suggested_label).adjusted(-2, 0, 2, 0)
            painter.fillRect(box, QColor(255, 255, 255, 210))
            painter.setPen(QColor(0, 110, 45))
            painter.drawText(rect.adjusted(4, 0, -4, -2), flags, self.suggested_label)
