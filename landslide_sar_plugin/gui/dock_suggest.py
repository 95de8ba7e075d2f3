"""*Suggest threshold*: the threshold the analyst's review argues for (A_ratio learns too).

A mixin of :class:`.dock.LandslideDock`.  The reviewed polygons of the run's
candidates layer (accepted, edited, drawn by hand: landslides; rejected: not)
go to :func:`..core.review.suggest_threshold`, which reads each one's mean on
the score raster and finds the value that best separates them.  The answer is
drawn on the histogram as a second, dashed marker and said in words; *Apply*
moves the slider there (then *Update polygons* as always).  Fast enough to run
on the main thread: it reads only the reviewed polygons' windows (a few
hundred small reads at most).
"""

from __future__ import annotations

import json

from qgis.core import QgsFeatureRequest
from qgis.PyQt.QtCore import QCoreApplication, Qt
from qgis.PyQt.QtGui import QCursor
from qgis.PyQt.QtWidgets import QApplication

from . import threshold_modes as modes

REVIEWED_FILTER = "\"status\" IN ('accepted', 'edited', 'rejected') OR \"method\" = 'manual'"


def tr(text: str) -> str:
    return QCoreApplication.translate("LandslideDock", text)


class SuggestThresholdMixin:
    """Suggest threshold and Apply (needs the threshold controls, the histogram and the run's layers)."""

    suggestion = None

    def _connect_suggest(self) -> None:
        self.suggest_button.clicked.connect(self.suggest_threshold)
        self.apply_suggestion_button.clicked.connect(self.apply_suggestion)

    def _clear_suggestion(self) -> None:
        self.suggestion = None
        self.histogram_widget.set_suggestion(None)
        self.suggest_info.setText("")
        self.apply_suggestion_button.setEnabled(False)

    def reviewed_features(self, layer) -> list[dict]:
        """The reviewed features of ``layer`` (edits not yet saved included) as dicts for core.review."""
        request = QgsFeatureRequest()
        names = layer.fields().names()
        if "status" in names and "method" in names:
            request.setFilterExpression(REVIEWED_FILTER)
        out = []
        for f in layer.getFeatures(request):
            if not f.hasGeometry():
                continue
            out.append({"geometry": json.loads(f.geometry().asJson()),
                        "status": f["status"] if "status" in names else None,
                        "method": f["method"] if "method" in names else None})
        return out

    def suggest_threshold(self):
        """Compute the suggestion from the review so far; show it on the histogram and in words."""
        from ..core.review import ReviewError, reviewed_from_features, suggest_threshold

        layer = self._candidates_or_say_why()
        if layer is None:
            return None
        current = self.map_threshold()
        QApplication.setOverrideCursor(QCursor(Qt.CursorShape.WaitCursor))
        try:
            reviewed = reviewed_from_features(self.reviewed_features(layer))
            suggestion = suggest_threshold(self.run_result.files[self.score_key], reviewed, current)
        except ReviewError as exc:
            self._clear_suggestion()
            self.suggest_info.setText(tr("No suggestion yet: {e}.").format(e=exc))
            self.show_info(tr("No threshold suggestion yet: {e}.").format(e=exc))
            return None
        finally:
            QApplication.restoreOverrideCursor()
        self.suggestion = suggestion
        text = self.describe_suggestion(suggestion, current)
        self.histogram_widget.set_suggestion(suggestion.threshold, tr("suggested {t}").format(
            t=self._score_text(suggestion.threshold)))
        self.suggest_info.setText(text)
        self.apply_suggestion_button.setEnabled(True)
        self.show_info(tr("Suggested threshold: {s}").format(s=text))
        return suggestion

    def _score_text(self, value: float) -> str:
        return f"{value:.2f} {self.score_units}".strip()

    def describe_suggestion(self, s, current: float) -> str:
        """``2.61 dB separates 14 accepted from 9 rejected (F1 0.93 vs 0.71 at 2.12 dB)``."""
        text = tr("{t} separates {p} accepted from {n} rejected (F1 {f:.2f} vs {cf:.2f} at {c})").format(
            t=self._score_text(s.threshold), p=s.n_landslides, n=s.n_rejected, f=s.f1, cf=s.current_f1,
            c=self._score_text(current))
        if abs(s.threshold - current) < 1e-9:
            text += tr("; the current threshold is already the best")
        return text

    def apply_suggestion(self) -> None:
        """Move the slider (and the map's style) to the suggested threshold, in the current threshold mode."""
        if self.suggestion is None or self.histogram is None:
            return
        lo, hi = self.threshold_spin.minimum(), self.threshold_spin.maximum()
        control = modes.from_score(self.mode(), self.suggestion.threshold, self.histogram, self.noise)
        self.set_threshold(min(max(control, lo), hi))
        self.show_info(tr("Threshold set to the suggested {t}; click Update polygons to re-derive the candidates "
                          "at it.").format(t=self._score_text(self.suggestion.threshold)))
