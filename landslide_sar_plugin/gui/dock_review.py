"""The dock's second half: the live threshold (three modes), Update polygons, review and export.

A mixin of :class:`.dock.LandslideDock`.  Every action checks that the run's
layers still exist: after *Project > New* or a removed layer it says so in the
status line instead of raising ``RuntimeError: wrapped C/C++ object ... has
been deleted`` into a modal dialog.
"""

from __future__ import annotations

from pathlib import Path

from qgis.core import QgsFeatureRequest, QgsMapLayer, QgsProject, QgsVectorLayer
from qgis.PyQt import sip
from qgis.PyQt.QtCore import QCoreApplication

from . import threshold_modes as modes
from .dock_build import SLIDER_STEPS
from .layers import TITLES, style_candidates, style_score_layer
from .log import log_warning


def tr(text: str) -> str:
    return QCoreApplication.translate("LandslideDock", text)


def alive(obj):
    """``obj`` if its C++ side still exists, else None (a layer of a cleared project, a removed group)."""
    if obj is None or sip.isdeleted(obj):
        return None
    return obj


class ThresholdReviewMixin:
    """Threshold controls, polygon updates, review and export (needs the dock's widgets and run state)."""

    # ------------------------------------------------------------------ the run's layers

    def run_layer(self, key: str):
        """The run's layer ``key`` if it is still in the project, else None (and it is forgotten)."""
        layer = alive(self.run_layers.get(key))
        if isinstance(layer, QgsMapLayer) and QgsProject.instance().mapLayer(layer.id()) is None:
            layer = None
        if layer is None:
            self.run_layers.pop(key, None)
        return layer

    def _layers_removed(self, layer_ids) -> None:
        if sip.isdeleted(self):
            return
        ids = set(layer_ids)
        for key, layer in list(self.run_layers.items()):
            if not isinstance(layer, QgsMapLayer):
                continue  # layer-tree groups are checked when used (alive)
            if alive(layer) is None or layer.id() in ids:
                self.run_layers.pop(key)

    def _project_cleared(self) -> None:
        if sip.isdeleted(self) or self.run_result is None:
            return
        out_dir = self.run_result.out_dir
        self.run_layers = {}
        self.run_result = None
        self.histogram = None
        self.histogram_widget.set_histogram(None)
        self.histogram_widget.set_threshold(None)
        self.threshold_info.setText("")
        self._reset_queue()
        self._clear_suggestion()
        self.shown_request = None
        self.threshold_group.setEnabled(False)
        self.review_group.setEnabled(False)
        self.retrain_group.setEnabled(False)
        self.show_info(tr("The project was cleared; the run's files are still in {d} (add them back or run Detect "
                          "again to review them).").format(d=out_dir))

    def _layer_gone(self, key: str) -> None:
        self.show_info(tr("The layer '{t}' of this run was removed from the project; run Detect again, or add "
                          "{f} back to the map.").format(t=TITLES.get(key, key),
                                                         f=self.run_result.files.get(key, "") if self.run_result
                                                         else ""))

    # ------------------------------------------------------------------ threshold

    def mode(self) -> str:
        return self.threshold_mode.currentData()

    def percentile_mode(self) -> bool:
        return self.mode() == modes.PERCENTILE

    def _setup_threshold_controls(self, value: float, histogram) -> None:
        """Slider and spin box for the run's score, in the chosen mode, showing ``value`` (score units)."""
        self.histogram_widget.set_histogram(histogram)
        allowed = modes.available_modes(self.score_key, self.noise)
        model = self.threshold_mode.model()
        for i in range(self.threshold_mode.count()):
            model.item(i).setEnabled(self.threshold_mode.itemData(i) in allowed)
        if self.mode() not in allowed:
            self.threshold_mode.blockSignals(True)
            self.threshold_mode.setCurrentIndex(self.threshold_mode.findData(modes.VALUE))
            self.threshold_mode.blockSignals(False)
        lo, hi = modes.control_range(self.mode(), histogram)
        self.threshold_spin.blockSignals(True)
        self.threshold_spin.setRange(lo, hi)
        self.threshold_spin.setSuffix(modes.suffix(self.mode(), self.score_units))
        self.threshold_spin.blockSignals(False)
        control = modes.from_score(self.mode(), value, histogram, self.noise)
        self.set_threshold(min(max(control, lo), hi))

    def map_threshold(self) -> float:
        """The threshold in score units that the map shows (for a percentile: estimated from the histogram)."""
        if self.histogram is None:
            return self.threshold_spin.value()
        return modes.to_score(self.mode(), self.threshold_spin.value(), self.histogram, self.noise)

    def _mode_changed(self) -> None:
        if self.histogram is None:
            return
        # Keep what the map shows (in score units) and express it in the new mode.
        self._setup_threshold_controls(self._last_map_threshold, self.histogram)

    def _slider_to_value(self, pos: int) -> float:
        lo, hi = self.threshold_spin.minimum(), self.threshold_spin.maximum()
        return lo + (hi - lo) * pos / SLIDER_STEPS

    def _value_to_slider(self, value: float) -> int:
        lo, hi = self.threshold_spin.minimum(), self.threshold_spin.maximum()
        return round((value - lo) / (hi - lo) * SLIDER_STEPS) if hi > lo else 0

    def _slider_moved(self, pos: int) -> None:
        self.set_threshold(self._slider_to_value(pos), from_slider=True)

    def _spin_changed(self, value: float) -> None:
        self.set_threshold(value, from_spin=True)

    def set_threshold(self, value: float, *, from_slider: bool = False, from_spin: bool = False) -> None:
        """Restyle the score layer for ``value`` (in the current mode's units): instant, nothing is recomputed."""
        if not from_spin:
            self.threshold_spin.blockSignals(True)
            self.threshold_spin.setValue(value)
            self.threshold_spin.blockSignals(False)
        if not from_slider:
            self.threshold_slider.blockSignals(True)
            self.threshold_slider.setValue(self._value_to_slider(value))
            self.threshold_slider.blockSignals(False)
        shown = self.map_threshold()
        self._last_map_threshold = shown
        if self.run_result is not None:
            layer = self.run_layer(self.score_key)
            if layer is not None:
                style_score_layer(layer, shown, self.score_range[0], self.score_range[1], self.score_key)
            elif not self._told_layer_gone:
                self._told_layer_gone = True
                self._layer_gone(self.score_key)
        text = modes.describe(shown, self.score_units, self.histogram, self.noise)
        self.histogram_widget.set_threshold(shown, text)
        if self.histogram is not None:
            info = tr("{p:.2%} of valid pixels above {t}").format(p=self.histogram.fraction_above(shown), t=text)
            if self.percentile_mode():
                info += tr(" (estimated; Update polygons uses the exact percentile)")
            self.threshold_info.setText(info)

    # ------------------------------------------------------------------ update polygons

    def _threshold_spec(self):
        """ThresholdSpec of the current control and a short file prefix naming it."""
        from ..core.candidates import ThresholdSpec

        value, result = self.threshold_spin.value(), self.run_result
        method = "a_ratio" if self.score_key == "a_ratio" else "model"
        common = dict(min_area_m2=self.min_area.value(), heatmap_radius_m=self.heatmap_radius.value(), method=method,
                      units=self.score_units or "probability", event_id=result.run_info["event_id"])
        if self.percentile_mode():
            return ThresholdSpec(percentile=value, **common), f"p{value:.2f}"
        if self.mode() == modes.KSIGMA:  # a fixed dB value, written down as k sigma in the file name
            return ThresholdSpec(threshold=self.map_threshold(), **common), f"k{value:.2f}sigma"
        return ThresholdSpec(threshold=value, **common), f"t{value:+.2f}{self.score_units}"

    def start_update_polygons(self) -> None:
        if self.task is not None or self.run_result is None:
            return
        from ..core.candidates import candidates_from_score

        spec, label = self._threshold_spec()
        prefix = (label + "_").replace("+", "p").replace("-", "m").replace(".", "_")
        result = self.run_result
        score_path = result.files[self.score_key]

        def work(progress, is_cancelled):
            return candidates_from_score(score_path, result.out_dir, spec, prefix=prefix, progress=progress,
                                         is_cancelled=is_cancelled)

        self._start_task(tr("Updating candidate polygons"), work, self._update_done)

    def _update_done(self, task) -> None:
        self._task_finished()
        if task.cancelled_by_user:
            self.show_info(tr("Update cancelled; the previous polygons are unchanged."))
            return
        if task.error is not None:
            self.show_error(tr("Updating the polygons failed: {msg}").format(msg=task.error), task.error_traceback)
            return
        res = task.result
        old = self.run_layer("candidates")
        group = self.run_layer("group")
        if group is None:  # the run's group was removed: the new layer gets one of its own
            group = QgsProject.instance().layerTreeRoot().insertGroup(0, self._group_name())
            self.run_layers["group"] = group
        if old is not None:
            old.setName(old.name() + tr(" (previous)"))
            node = group.findLayer(old.id())
            if node is not None:
                node.setItemVisibilityChecked(False)
        layer = QgsVectorLayer(f"{res.files['candidates']}|layername=candidates",
                               tr("Candidate landslides {t:.2f} {u}").format(t=res.threshold, u=self.score_units),
                               "ogr")
        style_candidates(layer)
        QgsProject.instance().addMapLayer(layer, False)
        group.insertLayer(0, layer)
        self.run_layers["candidates"] = layer
        self._watch_candidates(layer)
        if self.queue_is_open():  # the queue follows the new polygons
            self._build_queue(layer)
            self.queue_next()
        self.show_info(tr("{n} candidate polygons at {t:.2f} {u} (the previous layer is kept, hidden)").format(
            n=res.n_candidates, t=res.threshold, u=self.score_units))

    # ------------------------------------------------------------------ review and export

    def _watch_candidates(self, layer) -> None:
        if layer is None:
            return
        layer.geometryChanged.connect(lambda fid, _geom, lyr=layer: self._mark_edited(lyr, fid))

    @staticmethod
    def _mark_edited(layer, fid) -> None:
        if alive(layer) is None:
            return
        idx = layer.fields().indexFromName("status")
        if idx >= 0 and layer.isEditable():
            layer.changeAttributeValue(fid, idx, "edited")

    def _candidates_or_say_why(self):
        if self.run_result is None:
            self.show_error(tr("Run a detection first."))
            return None
        layer = self.run_layer("candidates")
        if layer is None:
            self._layer_gone("candidates")
        return layer

    def set_selected_status(self, status: str) -> int:
        """Mark the selected polygons ``status``; in the review queue, move on to the next unreviewed one.

        Accepting a polygon whose outline was edited keeps it ``edited`` (a landslide with a corrected outline).
        """
        layer = self._candidates_or_say_why()
        if layer is None:
            return 0
        ids = layer.selectedFeatureIds()
        if not ids:
            self.show_info(tr("Select candidate polygons on the map first."))
            return 0
        idx = layer.fields().indexFromName("status")
        if not layer.isEditable():
            layer.startEditing()
        edited = set()
        if status == "accepted":
            request = QgsFeatureRequest().setFilterFids(ids).setFlags(QgsFeatureRequest.Flag.NoGeometry)
            edited = {f.id() for f in layer.getFeatures(request.setSubsetOfAttributes([idx]))
                      if str(f.attribute(idx)) == "edited"}
        for fid in ids:
            if fid not in edited:
                layer.changeAttributeValue(fid, idx, status)
        text = tr("{n} polygon(s) marked {s}; save the layer edits or export to keep them").format(n=len(ids), s=status)
        if self.queue_is_open():  # one decision after another: the status line, not a message bar per click
            self.status_label.setText(text)
        else:
            self.show_info(text)
        self._advance_after_review(ids)
        return len(ids)

    def export_to_inventory(self):
        """Save pending edits, then export the reviewed polygons into the inventory (one transaction).

        Accepted and edited polygons become landslides, rejected ones reviewed non-landslides (negatives).
        """
        layer = self._candidates_or_say_why()
        inventory = self.inventory_file.filePath()
        if layer is None:
            return None
        if not inventory:
            self.show_error(tr("Choose an inventory GeoPackage (it is created if missing)."))
            return None
        if layer.isEditable() and not layer.commitChanges():
            self.show_error(tr("Could not save the edits of the candidate layer: {e}").format(
                e="; ".join(layer.commitErrors())))
            return None
        from ..core.inventory import export_reviewed

        source = layer.source().split("|")[0]
        self.save_settings()
        try:
            summary = export_reviewed(source, inventory, reviewer=self.reviewer.text() or _user_name(),
                                      run_json=self.run_result.out_dir / "run.json")
        except Exception as exc:  # core raises ValueError subclasses with user-facing messages
            self.show_error(tr("Export failed: {e}").format(e=exc))
            return None
        self.show_info(tr("Inventory {f}: {s}").format(f=Path(inventory).name, s=summary.message()))
        for warning in summary.warnings:
            log_warning(warning)
        return summary


def _user_name() -> str:
    import getpass

    try:
        return getpass.getuser()
    except Exception:  # no login name in some sandboxes
        return ""
