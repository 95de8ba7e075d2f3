"""The dock's review queue: Next / Previous candidate, the radar evidence beside it, Add missed landslide.

A mixin of :class:`.dock.LandslideDock`.  The queue (:class:`.review_queue.ReviewQueue`)
orders the run's candidates by how much a decision teaches
(:func:`..core.review.review_order`); stepping zooms the canvas to the polygon
with a margin, selects it, and shows its score, area, method and the orbit
passes whose own score exceeded the threshold, with the counter "12 of 163
reviewed".  Accept / Reject advance to the next unreviewed candidate.  While
the queue is open the radar evidence layer of the run is shown (the choice
box switches pass or turns it off) and the single-key shortcuts work
anywhere in the main window: N next, P previous, A accept, X reject (QGIS
already uses Ctrl+Alt+P, Ctrl+Alt+A and Ctrl+Alt+R, R, S and T).
"""

from __future__ import annotations

import json
import uuid

from qgis.core import QgsCoordinateTransform, QgsFeature, QgsGeometry, QgsProject, QgsRectangle, QgsWkbTypes
from qgis.gui import QgsRubberBand
from qgis.PyQt.QtCore import QCoreApplication, Qt
from qgis.PyQt.QtGui import QColor, QKeySequence
from qgis.PyQt.QtWidgets import QShortcut

from .dock_review import alive
from .layers import is_evidence
from .log import log_warning
from .map_tools import PolygonDrawTool
from .review_queue import ReviewQueue

QUEUE_KEYS = {"next": "N", "previous": "P", "accept": "A", "reject": "X"}
ZOOM_MARGIN = 1.0  # of the polygon's larger side, on each side: it fills at most a third of the view
ZOOM_MIN_M = 300.0  # at least this much ground around a small polygon (map units of a projected layer)
PASS_LABELS = {"ASCENDING": "ascending", "DESCENDING": "descending"}


def tr(text: str) -> str:
    return QCoreApplication.translate("LandslideDock", text)


class ReviewQueueMixin:
    """Review queue state and actions (needs the dock's widgets, ``run_layers`` and ``run_result``)."""

    queue: ReviewQueue | None = None
    _queue_layer = None
    _pass_cache: dict
    _draw_tool = None
    _tool_before_draw = None
    _highlight = None  # a red outline around the candidate under review (selection colours vary)

    # ------------------------------------------------------------------ set-up

    def _connect_queue(self) -> None:
        self._pass_cache = {}
        self.queue_button.toggled.connect(self._queue_toggled)
        self.next_button.clicked.connect(self.queue_next)
        self.previous_button.clicked.connect(self.queue_previous)
        self.edit_button.clicked.connect(self.edit_current)
        self.draw_button_missed.toggled.connect(self._draw_toggled)
        self.evidence_combo.currentIndexChanged.connect(lambda _: self.show_evidence(self.evidence_combo.currentData()))
        self.queue_shortcuts = {}
        for action, key in QUEUE_KEYS.items():
            shortcut = QShortcut(QKeySequence(key), self)
            shortcut.setContext(Qt.ShortcutContext.WindowShortcut)  # the analyst looks at the map, not the dock
            shortcut.setEnabled(False)
            self.queue_shortcuts[action] = shortcut
        self.queue_shortcuts["next"].activated.connect(self.queue_next)
        self.queue_shortcuts["previous"].activated.connect(self.queue_previous)
        self.queue_shortcuts["accept"].activated.connect(lambda: self.set_selected_status("accepted"))
        self.queue_shortcuts["reject"].activated.connect(lambda: self.set_selected_status("rejected"))

    def _setup_evidence_choice(self) -> None:
        """List the run's evidence layers in the choice box (after a run; off until the queue opens)."""
        self.evidence_combo.blockSignals(True)
        self.evidence_combo.clear()
        self.evidence_combo.addItem(tr("off"), "")
        for key in sorted(k for k in self.run_layers if is_evidence(k)):
            self.evidence_combo.addItem(self.run_layers[key].name(), key)
        self.evidence_combo.blockSignals(False)
        self.evidence_combo.setEnabled(self.evidence_combo.count() > 1)

    def _reset_queue(self) -> None:
        """Forget the queue (a new run, a cleared project)."""
        self._disconnect_queue_layer()
        self.queue = None
        self._pass_cache = {}
        self.queue_button.blockSignals(True)
        self.queue_button.setChecked(False)
        self.queue_button.blockSignals(False)
        self._set_queue_active(False)
        self._clear_highlight()
        self.queue_counter.setText("")
        self.queue_info.setText("")

    # ------------------------------------------------------------------ opening and closing

    def _queue_toggled(self, on: bool) -> None:
        if on:
            if self.open_queue() is None:
                self.queue_button.blockSignals(True)
                self.queue_button.setChecked(False)
                self.queue_button.blockSignals(False)
        else:
            self.close_queue()

    def open_queue(self) -> ReviewQueue | None:
        """Build the queue for the run's candidates, show the evidence, go to the first unreviewed candidate."""
        layer = self._candidates_or_say_why()
        if layer is None:
            return None
        if self.queue is None or self._queue_layer is not layer:
            self._build_queue(layer)
        self._set_queue_active(True)
        if self.evidence_combo.currentData() == "" and self.evidence_combo.count() > 1:
            self.evidence_combo.setCurrentIndex(1)  # the first pass's evidence
        else:
            self.show_evidence(self.evidence_combo.currentData())
        if self.queue.current() is None:
            self.queue_next()
        else:
            self.show_candidate(self.queue.current())
        return self.queue

    def close_queue(self) -> None:
        """Switch the evidence off again and the single-key shortcuts with it; the queue keeps its place."""
        self._set_queue_active(False)
        self._clear_highlight()
        self.evidence_combo.setCurrentIndex(0)
        self.show_evidence("")

    def queue_is_open(self) -> bool:
        return self.queue is not None and self.queue_button.isChecked()

    def _set_queue_active(self, on: bool) -> None:
        for shortcut in self.queue_shortcuts.values():
            shortcut.setEnabled(on)
        if self.queue_button.isChecked() != on:
            self.queue_button.blockSignals(True)
            self.queue_button.setChecked(on)
            self.queue_button.blockSignals(False)
        self.queue_button.setText(tr("Close the review queue") if on else tr("Start the review queue"))

    def _build_queue(self, layer) -> None:
        self._disconnect_queue_layer()
        self.queue = ReviewQueue(layer, self._candidates_threshold(layer))
        self._queue_layer = layer
        self._pass_cache = {}
        layer.attributeValueChanged.connect(self._queue_attribute_changed)
        layer.featureAdded.connect(self._queue_feature_added)
        layer.featureDeleted.connect(self._queue_feature_deleted)
        layer.geometryChanged.connect(self._queue_geometry_changed)

    def _disconnect_queue_layer(self) -> None:
        layer = alive(self._queue_layer)
        if layer is not None:
            for signal, slot in ((layer.attributeValueChanged, self._queue_attribute_changed),
                                 (layer.featureAdded, self._queue_feature_added),
                                 (layer.featureDeleted, self._queue_feature_deleted),
                                 (layer.geometryChanged, self._queue_geometry_changed)):
                try:
                    signal.disconnect(slot)
                except (TypeError, RuntimeError):
                    pass
        self._queue_layer = None

    def _candidates_threshold(self, layer) -> float:
        """The threshold the polygons were cut at (their ``threshold`` field), else the run's."""
        idx = layer.fields().indexFromName("threshold")
        if idx >= 0:
            for f in layer.getFeatures():
                value = f.attribute(idx)
                try:
                    return float(value)
                except (TypeError, ValueError):
                    break
        return float(self.run_result.threshold) if self.run_result is not None else 0.0

    # ------------------------------------------------------------------ the layer changed

    def _queue_attribute_changed(self, fid, idx, value) -> None:
        if self.queue is not None and idx == self.queue.status_index:
            self.queue.note_status(fid, value)
            self._show_counter()

    def _queue_feature_added(self, fid) -> None:
        if self.queue is not None:
            self.queue.note_added(fid)
            self._show_counter()

    def _queue_feature_deleted(self, fid) -> None:
        if self.queue is not None:
            self.queue.note_deleted(fid)
            self._show_counter()

    def _queue_geometry_changed(self, fid, _geometry) -> None:
        self._pass_cache.pop(fid, None)

    # ------------------------------------------------------------------ moving

    def queue_next(self) -> int | None:
        """Go to the next unreviewed candidate (opening the queue, at its first one, if needed)."""
        state = self._ensure_queue()
        if state != "ready":
            return self.queue.current() if state == "opened" else None
        fid = self.queue.next_unreviewed()
        if fid is None:
            self._show_counter()
            self.queue_info.setText(tr("Every candidate of this layer is reviewed: export them, or draw missed "
                                       "landslides."))
            return None
        self.show_candidate(fid)
        return fid

    def queue_previous(self) -> int | None:
        state = self._ensure_queue()
        if state != "ready":
            return self.queue.current() if state == "opened" else None
        fid = self.queue.previous()
        if fid is None:
            self.status_label.setText(tr("This is the first candidate of the queue."))
            return None
        self.show_candidate(fid)
        return fid

    def _ensure_queue(self) -> str | None:
        """"ready" (open, on the run's current candidates layer), "opened" (just opened at its first
        candidate) or None (no candidates layer: the status line says why)."""
        if self.queue_is_open() and alive(self._queue_layer) is not None and \
                self._queue_layer is self.run_layer("candidates"):
            return "ready"
        return "opened" if self.open_queue() is not None else None

    def _advance_after_review(self, ids) -> None:
        """After Accept / Reject of the current candidate: the next unreviewed one."""
        if self.queue_is_open() and self.queue.current() in set(ids):
            self.queue_next()

    def show_candidate(self, fid: int) -> None:
        """Zoom to the candidate with a margin, select it, show its attributes and the counter."""
        layer = self._queue_layer
        feature = layer.getFeature(fid)
        if not feature.isValid():
            return
        self.queue.go_to(fid)
        layer.selectByIds([fid])
        self._zoom_to(layer, feature.geometry())
        self._highlight_geometry(layer, feature.geometry())
        self.queue_info.setText(self._describe(feature))
        self._show_counter()

    def _zoom_to(self, layer, geometry: QgsGeometry) -> None:
        canvas = self.iface.mapCanvas()
        box = QgsRectangle(geometry.boundingBox())
        grow = max(ZOOM_MARGIN * max(box.width(), box.height()), ZOOM_MIN_M if not layer.crs().isGeographic()
                   else 0.0015)
        box.grow(grow)
        target = canvas.mapSettings().destinationCrs()
        if not target.isValid():
            canvas.setDestinationCrs(layer.crs())
        elif target != layer.crs():
            box = QgsCoordinateTransform(layer.crs(), target, QgsProject.instance()).transformBoundingBox(box)
        canvas.setExtent(box)
        canvas.refresh()

    def _highlight_geometry(self, layer, geometry: QgsGeometry) -> None:
        if alive(self._highlight) is None:
            self._highlight = QgsRubberBand(self.iface.mapCanvas(), QgsWkbTypes.GeometryType.PolygonGeometry)
            self._highlight.setFillColor(QColor(0, 0, 0, 0))
            self._highlight.setStrokeColor(QColor(255, 40, 40))
            self._highlight.setWidth(3)
        self._highlight.setToGeometry(geometry, layer)

    def _clear_highlight(self) -> None:
        if alive(self._highlight) is not None:
            self._highlight.reset(QgsWkbTypes.GeometryType.PolygonGeometry)

    def _show_counter(self) -> None:
        q = self.queue
        if q is None:
            return
        drawn = tr(" (+{n} drawn)").format(n=len(q.manual)) if q.manual else ""
        self.queue_counter.setText(tr("{r} of {t} reviewed{d}").format(r=q.n_reviewed, t=q.total, d=drawn))

    # ------------------------------------------------------------------ what the analyst sees

    def _describe(self, feature) -> str:
        units = f" {self.score_units}" if self.score_units else ""

        def value(name, fmt="{:.2f}"):
            try:
                return fmt.format(float(feature[name]))
            except (KeyError, TypeError, ValueError):
                return "?"

        method = str(feature["method"]) if feature.fields().indexFromName("method") >= 0 else "?"
        if method == "model" and feature.fields().indexFromName("model_name") >= 0:
            method = f"U-Net {feature['model_name']}"
        status = str(feature["status"]) if feature.fields().indexFromName("status") >= 0 else "?"
        return "<br>".join([
            tr("<b>Candidate {n}</b> ({s})").format(n=self.queue.position + 1, s=status),
            tr("Score {m}{u} (max {x}{u}), threshold {t:.2f}{u}").format(
                m=value("mean_score"), x=value("max_score"), u=units, t=self.queue.threshold),
            tr("Area {a} m², method {meth}").format(a=value("area_m2", "{:,.0f}"), meth=method),
            tr("Passes that fired: {p}").format(p=self._passes_text(feature)),
        ])

    def _passes_text(self, feature) -> str:
        """Which orbit passes' own score exceeded the threshold inside the polygon, or "n/a"."""
        from ..core.review import pass_scores, passes_fired, per_pass_rasters

        files = self.run_result.files if self.run_result is not None else {}
        rasters = per_pass_rasters(files, self.score_key)
        if not rasters:
            return tr("n/a (the run wrote no per-pass scores)")
        if feature.id() not in self._pass_cache:
            geometry = json.loads(feature.geometry().asJson())
            background = files.get("background_change") if self.score_key == "a_ratio" else None
            try:
                self._pass_cache[feature.id()] = pass_scores(rasters, geometry, background)
            except Exception as exc:  # a per-pass raster removed from the run folder: say so, keep going
                log_warning(f"per-pass scores of candidate {feature.id()} unavailable: {exc}")
                return tr("n/a (per-pass rasters unreadable)")
        scores = self._pass_cache[feature.id()]
        fired = passes_fired(scores, self.queue.threshold)
        parts = [f"{PASS_LABELS.get(p, p.lower())} {v:.2f}" if v == v else f"{PASS_LABELS.get(p, p.lower())} —"
                 for p, v in scores.items()]
        names = ", ".join(PASS_LABELS.get(p, p.lower()) for p in fired) or tr("none")
        return f"{names} ({'; '.join(parts)})"

    def show_evidence(self, key: str) -> None:
        """Show the evidence layer ``key`` (hide the other passes'); "" hides them all."""
        root = QgsProject.instance().layerTreeRoot()
        for k in [k for k in self.run_layers if is_evidence(k)]:
            layer = self.run_layer(k)
            node = root.findLayer(layer.id()) if layer is not None else None
            if node is not None:
                node.setItemVisibilityChecked(k == key)
                if k == key:  # a group the analyst had switched off would hide it
                    parent = node.parent()
                    while parent is not None and parent is not root:
                        parent.setItemVisibilityChecked(True)
                        parent = parent.parent()

    # ------------------------------------------------------------------ edit and add missed

    def edit_current(self) -> None:
        """Start editing the current candidate's outline with QGIS's vertex tool (the edit marks it edited)."""
        layer = self._candidates_or_say_why()
        if layer is None:
            return
        if not layer.isEditable():
            layer.startEditing()
        set_active = getattr(self.iface, "setActiveLayer", None)
        if set_active is not None:
            set_active(layer)
        vertex = getattr(self.iface, "actionVertexTool", None)
        if vertex is not None:
            vertex().trigger()
        self.status_label.setText(tr("Move the vertices of the selected polygon; it is marked edited. Then Accept "
                                     "(A) keeps it as edited, or Next (N)."))

    def _draw_toggled(self, on: bool) -> None:
        canvas = self.iface.mapCanvas()
        if on:
            if self._candidates_or_say_why() is None:
                self.draw_button_missed.setChecked(False)
                return
            if self._draw_tool is None:
                self._draw_tool = PolygonDrawTool(canvas)
                self._draw_tool.drawn.connect(self.add_missed_landslide)
                self._draw_tool.abandoned.connect(lambda: self.draw_button_missed.setChecked(False))
            self._tool_before_draw = canvas.mapTool()
            canvas.setMapTool(self._draw_tool)
            self.status_label.setText(tr("Click the outline of the missed landslide; right-click (or Enter) to "
                                         "finish, Backspace removes a vertex, Esc cancels."))
        elif canvas.mapTool() is self._draw_tool:
            canvas.unsetMapTool(self._draw_tool)
            if alive(self._tool_before_draw) is not None:
                canvas.setMapTool(self._tool_before_draw)

    def add_missed_landslide(self, geometry: QgsGeometry):
        """Add the polygon drawn on the canvas as a landslide: status accepted, method manual, a new uuid."""
        layer = self._candidates_or_say_why()
        self.draw_button_missed.setChecked(False)
        if layer is None:
            return None
        geometry = QgsGeometry(geometry)
        canvas_crs = self.iface.mapCanvas().mapSettings().destinationCrs()
        if canvas_crs.isValid() and canvas_crs != layer.crs():
            geometry.transform(QgsCoordinateTransform(canvas_crs, layer.crs(), QgsProject.instance()))
        feature = QgsFeature(layer.fields())
        feature.setGeometry(geometry)
        values = {"status": "accepted", "method": "manual", "uuid": str(uuid.uuid4()),
                  "area_m2": float(geometry.area()) if not layer.crs().isGeographic() else None,
                  "event_id": (self.run_result.run_info.get("event_id") if self.run_result is not None else None)}
        values.update(self._drawn_score(geometry))
        for name, value in values.items():
            if layer.fields().indexFromName(name) >= 0 and value is not None:
                feature[name] = value
        if not layer.isEditable():
            layer.startEditing()
        if not layer.addFeature(feature):
            self.show_error(tr("The drawn polygon could not be added to the candidate layer."))
            return None
        self.show_info(tr("Missed landslide added (accepted, drawn by hand); save the layer edits or export to "
                          "keep it."))
        return feature

    def _drawn_score(self, geometry: QgsGeometry) -> dict:
        """Mean and max score inside a drawn polygon, from the run's score raster (None when unreadable)."""
        from ..core.review import polygon_mean_scores

        path = self.run_result.files.get(self.score_key) if self.run_result is not None else None
        if path is None:
            return {}
        try:
            mean, _ = polygon_mean_scores(path, [json.loads(geometry.asJson())])[0]
        except Exception as exc:  # the score raster is gone: the polygon is still a landslide
            log_warning(f"score of the drawn polygon unavailable: {exc}")
            return {}
        return {"mean_score": mean} if mean == mean else {}
