"""The "Landslide SAR mapper" dock: inputs, Detect, live threshold, review and export, retrain.

Thin by design: every computation is a ``core`` call, heavy ones inside a
:class:`.tasks.CoreTask`.  Widgets only collect parameters, show progress,
load layers and restyle them.  The widgets are built in :mod:`.dock_build`
(sized for a 300 px dock), the threshold, review and export live in
:mod:`.dock_review`, the review queue in :mod:`.dock_queue`, *Suggest
threshold* in :mod:`.dock_suggest`, *Retrain* and the model list in
:mod:`.dock_retrain`, Earth Engine in :mod:`.dock_earthengine`.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from pathlib import Path

from qgis.core import QgsApplication, QgsCoordinateReferenceSystem, QgsProject, QgsRectangle, QgsSettings
from qgis.gui import QgsMapToolExtent
from qgis.PyQt import sip
from qgis.PyQt.QtCore import QCoreApplication, QDateTime, Qt
from qgis.PyQt.QtGui import QKeySequence
from qgis.PyQt.QtWidgets import QDockWidget, QFrame, QScrollArea, QShortcut, QTableWidgetItem, QVBoxLayout, QWidget

from ..core import catalog as cat
from ..core.dependencies import install_command, is_available
from ..core.detect import DetectParams
from ..core.params import detect_fields
from . import dock_build as build
from .debounce import Debouncer
from .dock_earthengine import EarthEngineMixin
from .dock_queue import ReviewQueueMixin
from .dock_retrain import RetrainMixin
from .dock_review import ThresholdReviewMixin, _user_name, alive
from .dock_suggest import SuggestThresholdMixin
from .layers import is_evidence, load_agreement_layer, load_run_layers
from .log import log_error, log_info, log_warning
from .tasks import CoreTask
from .threshold_modes import Noise

SAMPLE_DIR = Path(__file__).resolve().parent.parent / "sample_data"
DEFAULT_MODEL = Path(__file__).resolve().parent.parent / "models" / "landslide_unet.onnx"
SETTINGS_PREFIX = "landslide_sar/"
SLIDER_STEPS = build.SLIDER_STEPS
AOI_SCENES, AOI_CANVAS, AOI_DRAWN, AOI_LAYER = range(4)
METHOD_LABELS = {"a_ratio": "A_ratio", "model": "U-Net", "both": "A_ratio + U-Net"}


def tr(text: str) -> str:
    return QCoreApplication.translate("LandslideDock", text)


def _default(name: str):
    return DetectParams.__dataclass_fields__[name].default


class LandslideDock(RetrainMixin, SuggestThresholdMixin, ReviewQueueMixin, ThresholdReviewMixin, EarthEngineMixin,
                    QDockWidget):
    """Dockable panel titled "Landslide SAR mapper"."""

    OBJECT_NAME = "LandslideSarMapperDock"

    def __init__(self, iface, parent=None):
        super().__init__(tr("Landslide SAR mapper"), parent)
        self.iface = iface
        self.setObjectName(self.OBJECT_NAME)
        self.setAllowedAreas(Qt.DockWidgetArea.LeftDockWidgetArea | Qt.DockWidgetArea.RightDockWidgetArea)
        self.settings = QgsSettings()
        self.task: CoreTask | None = None
        self.run_result = None        # result of the run whose layers are shown
        self.run_layers: dict = {}
        self.run_dir: Path | None = None
        self.noise: Noise | None = None
        self._run_label = ""
        self._last_map_threshold = 0.0
        self._told_layer_gone = False
        self.score_key = "a_ratio"    # the raster the slider acts on: a_ratio (dB) or probability (0..1)
        self.score_units = "dB"
        self.score_range = (-5.0, 8.0)
        self.ee_listing = None
        self.ee_transport_factory = None  # test seam: a callable returning a fake Earth Engine transport
        self.ee_cache_dir: str | None = None  # None: the user cache (~/.cache/landslide_sar_plugin/earthengine)
        self.histogram = None
        self.drawn_extent: tuple[QgsRectangle, QgsCoordinateReferenceSystem] | None = None
        self._catalog_cache: tuple[str, float, cat.Catalog] | None = None
        self._extent_tool = None
        self._previous_tool = None
        self.shown_request: dict | None = None  # how the shown run was made (Retrain detects again the same way)
        self._pending_request: dict | None = None
        self._build()
        self._restore_settings()
        self.refresh_models()
        self.refresh_scenes()
        project = QgsProject.instance()
        project.layersWillBeRemoved.connect(self._layers_removed)
        project.cleared.connect(self._project_cleared)

    # ------------------------------------------------------------------ construction

    def _build(self) -> None:
        body = QWidget()
        layout = QVBoxLayout(body)
        self.synthetic_label = build.QLabel(tr(
            "Try it on the bundled SYNTHETIC (simulated) sample scene: <a href='#'>use the sample</a>"))
        self.synthetic_label.setWordWrap(True)
        self.synthetic_label.linkActivated.connect(lambda _: self.use_sample_scene())
        layout.addWidget(self.synthetic_label)
        layout.addWidget(build.build_data(self))
        layout.addWidget(build.build_event(self))
        layout.addWidget(build.build_aoi(self))
        layout.addWidget(build.build_method(self, DEFAULT_MODEL))
        layout.addWidget(build.build_advanced(self))
        threshold = _default("threshold_db")
        self.threshold_group = build.build_threshold(self, threshold if threshold is not None else 0.0)
        layout.addWidget(self.threshold_group)
        self.review_group = build.build_review(self)
        layout.addWidget(self.review_group)
        self.retrain_group = build.build_retrain(self)
        layout.addWidget(self.retrain_group)
        layout.addStretch(1)
        self.scroll = QScrollArea()
        self.scroll.setWidgetResizable(True)
        self.scroll.setFrameShape(QFrame.Shape.NoFrame)
        self.scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)  # content fits the width
        self.scroll.setWidget(body)
        container = QWidget()
        outer = QVBoxLayout(container)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(self.scroll, 1)
        outer.addWidget(build.build_footer(self))
        self.setWidget(container)
        self._disable_model_without_onnxruntime()
        self._connect()

    def _disable_model_without_onnxruntime(self) -> None:
        if is_available("onnxruntime"):
            return
        hint = tr("Needs onnxruntime: install it with Raster > Landslide SAR mapper > Python packages, or run {cmd}"
                  ).format(cmd=install_command(["onnxruntime"]))
        for i in (1, 2):
            self.method_combo.model().item(i).setEnabled(False)
            self.method_combo.setItemData(i, hint, Qt.ItemDataRole.ToolTipRole)

    def _connect(self) -> None:
        self.ee_sign_in.clicked.connect(self.start_ee_sign_in)
        self.ee_list_button.clicked.connect(self.start_ee_listing)
        self.draw_button.clicked.connect(self.start_drawing)
        self.method_combo.currentIndexChanged.connect(lambda _: self._update_visibility())
        self.source_combo.currentIndexChanged.connect(lambda _: self._update_visibility())
        self.detect_button.clicked.connect(self.start_detection)
        self.cancel_button.clicked.connect(self.cancel_task)
        self.threshold_mode.currentIndexChanged.connect(lambda _: self._mode_changed())
        self._slider_debounce = Debouncer(self._slider_moved, 40, self)  # a drag restyles at most every 40 ms
        self.threshold_slider.valueChanged.connect(self._slider_debounce)
        self.threshold_spin.valueChanged.connect(self._spin_changed)
        self.update_button.clicked.connect(self.start_update_polygons)
        self.accept_button.clicked.connect(lambda: self.set_selected_status("accepted"))
        self.reject_button.clicked.connect(lambda: self.set_selected_status("rejected"))
        self.export_button.clicked.connect(self.export_to_inventory)
        # Not Ctrl+Alt+A / Ctrl+Alt+R: QGIS binds them (deselect all, Processing results), and Qt then fires
        # neither (seen in the QGIS 3.22 desktop). Y(es) / X as the queue's X.
        for key, status in (("Ctrl+Alt+Y", "accepted"), ("Ctrl+Alt+X", "rejected")):
            shortcut = QShortcut(QKeySequence(key), self)
            shortcut.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            shortcut.activated.connect(lambda s=status: self.set_selected_status(s))
        self._connect_queue()
        self._connect_suggest()
        self._connect_retrain()
        self.scene_dir.fileChanged.connect(lambda _: self.refresh_scenes())
        for signal in (self.event_time.dateTimeChanged, self.pre_days.valueChanged, self.post_days.valueChanged,
                       self.polarisation.currentIndexChanged):
            signal.connect(lambda _: self.refresh_scenes())
        self._update_visibility()

    def _update_visibility(self) -> None:
        earthengine = self.source_combo.currentData() == "earthengine"
        self.ee_widget.setVisible(earthengine)
        self.local_widget.setVisible(not earthengine)
        model = self.method_combo.currentData() in ("model", "both")
        self.model_file.setEnabled(model)
        self.write_composite.setEnabled(model)

    # ------------------------------------------------------------------ settings

    def _restore_settings(self) -> None:
        s = self.settings
        self.scene_dir.setFilePath(s.value(SETTINGS_PREFIX + "scene_dir", "", type=str))
        self.dem_file.setFilePath(s.value(SETTINGS_PREFIX + "dem", "", type=str))
        self.out_dir.setFilePath(s.value(SETTINGS_PREFIX + "out_dir", "", type=str))
        self.inventory_file.setFilePath(s.value(SETTINGS_PREFIX + "inventory", "", type=str))
        self.reviewer.setText(s.value(SETTINGS_PREFIX + "reviewer", "", type=str) or _user_name())
        event = s.value(SETTINGS_PREFIX + "event_time", "", type=str)
        if event:  # the user's own last event; never "now" (choosing a folder first must not show an error)
            self.event_time.setDateTime(QDateTime.fromString(event, Qt.DateFormat.ISODate))
        self.pre_days.setValue(s.value(SETTINGS_PREFIX + "pre_days", self.pre_days.value(), type=int))
        self.post_days.setValue(s.value(SETTINGS_PREFIX + "post_days", self.post_days.value(), type=int))
        self.polarisation.setCurrentText(s.value(SETTINGS_PREFIX + "polarisation", self.polarisation.currentText(),
                                                 type=str))
        self.slope_min.setValue(s.value(SETTINGS_PREFIX + "slope_min", self.slope_min.value(), type=float))
        self.ee_project.setText(s.value(SETTINGS_PREFIX + "ee_project", "", type=str))
        model = s.value(SETTINGS_PREFIX + "model", "", type=str)
        if model and Path(model).is_file():  # a model deleted since falls back to the shipped one
            self.model_file.setFilePath(model)
        self.retrain_python.setFilePath(s.value(SETTINGS_PREFIX + "retrain_python", "", type=str))

    def save_settings(self) -> None:
        s = self.settings
        s.setValue(SETTINGS_PREFIX + "scene_dir", self.scene_dir.filePath())
        s.setValue(SETTINGS_PREFIX + "dem", self.dem_file.filePath())
        s.setValue(SETTINGS_PREFIX + "out_dir", self.out_dir.filePath())
        s.setValue(SETTINGS_PREFIX + "inventory", self.inventory_file.filePath())
        s.setValue(SETTINGS_PREFIX + "reviewer", self.reviewer.text())
        if self.event_is_set():
            s.setValue(SETTINGS_PREFIX + "event_time",
                       self.event_time.dateTime().toUTC().toString(Qt.DateFormat.ISODate))
        s.setValue(SETTINGS_PREFIX + "pre_days", self.pre_days.value())
        s.setValue(SETTINGS_PREFIX + "post_days", self.post_days.value())
        s.setValue(SETTINGS_PREFIX + "polarisation", self.polarisation.currentText())
        s.setValue(SETTINGS_PREFIX + "slope_min", self.slope_min.value())
        s.setValue(SETTINGS_PREFIX + "ee_project", self.ee_project.text().strip())
        s.setValue(SETTINGS_PREFIX + "model", self.model_file.filePath())
        s.setValue(SETTINGS_PREFIX + "retrain_python", self.retrain_python.filePath())

    # ------------------------------------------------------------------ inputs

    def use_sample_scene(self) -> None:
        """Fill the inputs with the bundled SYNTHETIC sample scene, and bring Detect into view."""
        event = json.loads((SAMPLE_DIR / "event.json").read_text(encoding="utf-8"))["event_time"]
        self.event_time.setDateTime(QDateTime.fromString(event.replace("Z", ""), Qt.DateFormat.ISODate))
        self.event_time.setTimeSpec(Qt.TimeSpec.UTC)
        self.scene_dir.setFilePath(str(SAMPLE_DIR / "scenes"))
        self.dem_file.setFilePath(str(SAMPLE_DIR / "dem.tif"))
        self.status_label.setText(tr("Sample scene selected. It is SYNTHETIC: results are for trying the tool. "
                                     "Click Detect landslides."))
        self.detect_button.setFocus()

    def event_is_set(self) -> bool:
        return self.event_time.dateTime() != self.event_time.minimumDateTime()

    def event_datetime(self) -> dt.datetime:
        if not self.event_is_set():
            raise ValueError(tr("Set the event time (UTC) first: the date of the earthquake or storm."))
        qdt = self.event_time.dateTime().toUTC()
        return dt.datetime.fromtimestamp(qdt.toSecsSinceEpoch(), tz=dt.timezone.utc)

    def _catalog(self) -> cat.Catalog | None:
        folder = self.scene_dir.filePath()
        if not folder or not Path(folder).is_dir():
            return None
        mtime = Path(folder).stat().st_mtime
        if self._catalog_cache and self._catalog_cache[:2] == (folder, mtime):
            return self._catalog_cache[2]
        catalog = cat.read_catalog(folder)
        self._catalog_cache = (folder, mtime, catalog)
        for warning in catalog.warnings:
            log_warning(warning)
        for path, why in catalog.skipped:
            log_warning(f"skipped {path.name}: {why}")
        if catalog.scenes and not self.event_is_set():  # open the calendar where the scenes are
            last = max(s.acquisition_start for s in catalog.scenes)
            self.event_time.calendarWidget().setCurrentPage(last.year, last.month)
        return catalog

    def refresh_scenes(self) -> None:
        """Re-read the scene folder (cached) and show each scene's role for the current event and windows."""
        self.scene_table.setRowCount(0)
        try:
            catalog = self._catalog()
        except cat.CatalogError as exc:
            self._set_summary(str(exc), error=True)
            return
        if catalog is None:
            self._set_summary(tr("Choose a scene folder."))
            return
        roles, summary, error = self._roles(catalog)
        for s in catalog.scenes:
            row = self.scene_table.rowCount()
            self.scene_table.insertRow(row)
            values = [f"{s.acquisition_start:%Y-%m-%d %H:%M}", s.orbit_pass.title(), str(s.relative_orbit or "?"),
                      roles.get(s.scene_id, tr("unused") if self.event_is_set() else "—"),
                      ", ".join(p.name for p in s.file_paths()), s.product]
            for col, value in enumerate(values):
                self.scene_table.setItem(row, col, QTableWidgetItem(value))
        skipped = f" {len(catalog.skipped)} file(s) skipped (see the log)." if catalog.skipped else ""
        synthetic = tr(" These scenes are SYNTHETIC.") if any(s.synthetic for s in catalog.scenes) else ""
        if error:
            self._set_summary(error + skipped, error=True)
        else:
            self._set_summary("\n".join(summary) + skipped + synthetic)

    def _roles(self, catalog) -> tuple[dict, list[str], str | None]:
        """Scene id -> pre/post, the per-track summary, and an error line (None when the stacks are fine)."""
        if not self.event_is_set():
            first, last = (min(s.acquisition_start for s in catalog.scenes),
                           max(s.acquisition_start for s in catalog.scenes)) if catalog.scenes else (None, None)
            span = tr(" They span {a:%Y-%m-%d} to {b:%Y-%m-%d}.").format(a=first, b=last) if first else ""
            return {}, [tr("{n} scenes. Set the event time (UTC) to see which are pre- and post-event.").format(
                n=len(catalog.scenes)) + span], None
        from ..core.detect import resolve_polarisation

        probe = DetectParams(event_time=self.event_datetime(), pre_days=self.pre_days.value(),
                             post_days=self.post_days.value(), polarisation=self.polarisation.currentText())
        choice, _ = resolve_polarisation(probe, catalog.scenes)  # "auto" as the run will settle it
        pols = ("VV", "VH") if choice == "both" else (choice,)
        roles = {}
        try:
            selection = cat.select_stacks(catalog.scenes, self.event_datetime(), pre_days=self.pre_days.value(),
                                          post_days=self.post_days.value(), polarisations=pols)
        except cat.CatalogError as exc:
            return roles, [], str(exc).splitlines()[0]
        for stacks, role in ((selection.pre, tr("pre")), (selection.post, tr("post"))):
            for scenes in stacks.values():
                for s in scenes:
                    roles[s.scene_id] = role
        return roles, selection.summary_lines(), None

    def _set_summary(self, text: str, error: bool = False) -> None:
        self.scene_summary.setText(text)
        self.scene_summary.setStyleSheet("color: #b00020;" if error else "")

    def start_drawing(self) -> None:
        canvas = self.iface.mapCanvas()
        self._previous_tool = canvas.mapTool()
        self._extent_tool = QgsMapToolExtent(canvas)
        self._extent_tool.extentChanged.connect(self._extent_drawn)
        canvas.setMapTool(self._extent_tool)
        self.status_label.setText(tr("Drag a rectangle on the map."))

    def _extent_drawn(self, rect: QgsRectangle) -> None:
        canvas = self.iface.mapCanvas()
        self.set_drawn_extent(rect, canvas.mapSettings().destinationCrs())
        if self._previous_tool is not None:
            canvas.setMapTool(self._previous_tool)

    def set_drawn_extent(self, rect: QgsRectangle, crs: QgsCoordinateReferenceSystem) -> None:
        self.drawn_extent = (QgsRectangle(rect), QgsCoordinateReferenceSystem(crs))
        self.aoi_mode.setCurrentIndex(AOI_DRAWN)
        self.status_label.setText(tr("Area of interest: {w:.0f} x {h:.0f} map units").format(
            w=rect.width(), h=rect.height()))

    def current_aoi(self):
        """The AOI as a core ``Aoi`` (None = the scenes' extent); raises ValueError if incomplete."""
        from .aoi import aoi_from_features, aoi_from_rect

        mode = self.aoi_mode.currentIndex()
        if mode == AOI_SCENES:
            return None
        if mode == AOI_CANVAS:
            canvas = self.iface.mapCanvas()
            return aoi_from_rect(canvas.extent(), canvas.mapSettings().destinationCrs(), "map canvas extent")
        if mode == AOI_DRAWN:
            if self.drawn_extent is None:
                raise ValueError(tr("Draw a rectangle on the map first (Draw rectangle)."))
            return aoi_from_rect(*self.drawn_extent, "drawn rectangle")
        layer = alive(self.aoi_layer.currentLayer())
        if layer is None:
            raise ValueError(tr("Choose a polygon layer for the area of interest."))
        feats = layer.selectedFeatures() if self.aoi_selected_only.isChecked() else layer.getFeatures()
        return aoi_from_features(feats, layer.crs(), layer.source())

    def collect_params(self) -> DetectParams:
        """DetectParams of the widgets; the shared declaration (core/params.py) derives the rest."""
        values = {
            "pre_days": self.pre_days.value(), "post_days": self.post_days.value(),
            "polarisation": self.polarisation.currentText(), "pixel_size": build.spin_value(self.pixel_size),
            "speckle_sigma_m": self.speckle_sigma.value(), "slope_min_deg": self.slope_min.value(),
            "curv_min": self.curv_min.value() if self.use_curvature.isChecked() else None,
            "min_area_m2": self.min_area.value(), "heatmap_radius_m": self.heatmap_radius.value(),
            "merge_orbits": self.merge_orbits.isChecked(), "water_mask": self.water_mask.filePath(),
            "workers": max(1, (os.cpu_count() or 2) - 1),  # one core stays with QGIS's map and dock
        }
        event_time = self.event_datetime()
        # The threshold rule is the default one (noise-scaled); the slider refines it after the run.
        return DetectParams(event_time=event_time, aoi=self.current_aoi(), event_id=f"event_{event_time:%Y%m%dT%H%M}",
                            **detect_fields(values))

    # ------------------------------------------------------------------ detection

    def start_detection(self) -> None:
        if self.task is not None:  # a second click while running does nothing
            return
        source, method = self.source_combo.currentData(), self.method_combo.currentData()
        scenes, dem = self.scene_dir.filePath(), self.dem_file.filePath()
        try:
            params = self.collect_params()
        except ValueError as exc:
            self.show_error(str(exc))
            return
        if source == "local" and (not scenes or not dem):
            self.show_error(tr("Choose a scene folder and a DEM first (or use the sample scene)."))
            return
        if source == "earthengine":
            problem = self._earthengine_problem(params, method)
            if problem:
                self.show_error(problem)
                return
        model_path = self.model_file.filePath() if method in ("model", "both") else None
        if model_path is not None and not Path(model_path).is_file():
            self.show_error(tr("Choose an ONNX model file (the plugin ships models/landslide_unet.onnx)."))
            return
        self.save_settings()
        self._launch_detection(dict(source=source, method=method, scenes=scenes, dem=dem, params=params,
                                    model_path=model_path))

    def _launch_detection(self, request: dict) -> None:
        """Start the background detection ``request`` describes, into a new run folder."""
        source, method, params = request["source"], request["method"], request["params"]
        self.run_dir = self._new_run_folder(params)
        self._run_label = f"{METHOD_LABELS.get(method, method)} · {params.event_id} · run " \
                          f"{dt.datetime.now():%Y-%m-%d %H:%M:%S}"
        work = self._detection_work(source, method, request["scenes"], request["dem"], params, self.run_dir,
                                    request["model_path"])
        self._pending_request = request
        log_info(f"detection started: source {source}, method {method}, event {params.event_time}, "
                 f"output {self.run_dir}")
        self._start_task(tr("Detecting landslides"), work, self._detection_done)

    def redetect_with(self, model_path: str) -> bool:
        """Detect again as the shown run was made (same scenes, event, AOI, options), with ``model_path``."""
        request = self.shown_request
        if request is None or request["source"] != "local":
            self.show_info(tr("The new model is selected; click Detect landslides with the U-Net method to map the "
                              "event with it (the shown run was not made from a local scene folder)."))
            return False
        method = "both" if request["method"] == "both" else "model"
        self._launch_detection({**request, "method": method, "model_path": model_path})
        return True

    def _ee_transport(self):
        return self.ee_transport_factory() if self.ee_transport_factory is not None else None

    def _detection_work(self, source, method, scenes, dem, params, out_dir, model_path):
        """The function the background task runs: core calls only, returns a dict for _detection_done."""
        from ..core.histogram import raster_histogram

        project, ee_mode, transport = self.ee_project.text().strip(), self.ee_mode.currentData(), self._ee_transport()
        ee_cache, composite = self.ee_cache_dir, self.write_composite.isChecked()

        def work(progress, is_cancelled):
            out = {"method": method}
            if source == "earthengine":
                from ..core.earthengine import run_earthengine_detection

                out.update(result=run_earthengine_detection(
                    None, None, out_dir, params, project=project, mode=ee_mode, transport=transport,
                    cache_dir=ee_cache, progress=progress, is_cancelled=is_cancelled), score_key="a_ratio")
            else:
                out.update(_run_local(method, scenes, dem, out_dir, params, model_path, composite, progress,
                                      is_cancelled))
            key = out["score_key"]
            value_range = (-6.0, 8.0) if key == "a_ratio" else (0.0, 1.0)
            out["histogram"] = raster_histogram(out["result"].files[key], bins=120, value_range=value_range)
            return out

        return work

    def _new_run_folder(self, params: DetectParams) -> Path:
        base = Path(self.out_dir.filePath() or Path.home() / "landslide_sar_runs")
        stamp = dt.datetime.now().strftime("%Y%m%dT%H%M%S")
        return base / f"{params.event_id}_{stamp}"

    def _start_task(self, description: str, work, on_done) -> None:
        task = CoreTask(description, work, on_done)
        task.progressChanged.connect(lambda p: self.progress.setValue(int(p)))
        task.message.connect(self.status_label.setText)
        self.task = task
        self.detect_button.setEnabled(False)
        self.update_button.setEnabled(False)
        self.retrain_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.progress.setValue(0)
        QgsApplication.taskManager().addTask(task)

    def cancel_task(self) -> None:
        if self.task is not None:
            # A task that has not started yet reports back synchronously inside cancel().
            self.status_label.setText(tr("Cancelling..."))
            self.task.cancel()

    def _task_finished(self) -> CoreTask:
        task, self.task = self.task, None
        self.detect_button.setEnabled(True)
        self.update_button.setEnabled(True)
        self.retrain_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        return task

    def _detection_done(self, task: CoreTask) -> None:
        self._task_finished()
        if sip.isdeleted(self):
            return
        if task.cancelled_by_user or task.error is not None:
            _remove_empty_folders(self.run_dir)  # a run that did not finish leaves no empty run folder
            self.progress.setValue(0)
            if task.cancelled_by_user:
                self.show_info(tr("Detection cancelled; nothing was kept."))
            else:
                if getattr(task.error, "needs_sign_in", False):
                    self.ee_sign_in.setFocus()
                self.show_error(tr("Detection failed: {msg}").format(msg=task.error), task.error_traceback)
            return
        self._show_run(task.result)

    def _show_model_choice(self, out: dict) -> None:
        """Say under the model chooser which model ran on which polarisations and passes, and why."""
        result = out["result"]
        model_run = out.get("model_result") or (result if out["score_key"] == "probability" else None)
        choice = (model_run.run_info.get("model_choice") or {}).get("reason", "") if model_run is not None else ""
        self.model_choice_label.setText(tr("Model ran: {why}").format(why=choice) if choice else "")
        if choice:
            log_info(f"model choice: {choice}")

    def _show_run(self, out: dict) -> None:
        """Load a finished run's layers, set up the threshold controls and scroll them into view."""
        result = self.run_result = out["result"]
        self.histogram, self.score_key = out["histogram"], out["score_key"]
        self._show_model_choice(out)
        self.score_units = "dB" if self.score_key == "a_ratio" else ""
        self.score_range = (-5.0, float(self.histogram.edges[-1])) if self.score_key == "a_ratio" else (0.0, 1.0)
        self.noise = Noise.from_run(result.run_info)
        self._told_layer_gone = False
        threshold = float(result.threshold)
        if "model_result" in out:
            self.run_layers = self._load_both(out, threshold)
        else:
            self.run_layers = load_run_layers(result.files, self._group_name(), threshold=threshold,
                                              vmin=self.score_range[0], vmax=self.score_range[1],
                                              score_key=self.score_key)
        self._watch_candidates(self.run_layers.get("candidates"))
        self.shown_request = self._pending_request
        self._reset_queue()
        self._setup_evidence_choice()
        self._clear_suggestion()
        self.threshold_group.setEnabled(True)
        self.review_group.setEnabled(True)
        self.retrain_group.setEnabled(True)
        self._setup_threshold_controls(threshold, self.histogram)
        self.progress.setValue(100)
        self.show_info(tr("{n} candidate polygons at {t:.2f} {u}; outputs in {d}").format(
            n=result.n_candidates, t=threshold, u=self.score_units, d=result.out_dir))
        for warning in result.warnings:
            log_warning(warning)
        self.scroll_to(self.threshold_group)

    def scroll_to(self, widget) -> None:
        """Scroll the panel so that ``widget`` starts at its top (the threshold and review after a run)."""
        self.scroll.widget().layout().activate()
        top = widget.mapTo(self.scroll.widget(), widget.rect().topLeft()).y()
        self.scroll.verticalScrollBar().setValue(max(0, top - 4))

    def reload_run_record(self) -> None:
        """Re-read the shown run's run.json (its noise level enables the k x sigma threshold mode)."""
        if self.run_result is None:
            return
        run_json = self.run_result.out_dir / "run.json"
        self.noise = Noise.from_run(json.loads(run_json.read_text(encoding="utf-8")))
        self._setup_threshold_controls(self._last_map_threshold, self.histogram)

    def _group_name(self) -> str:
        synthetic = self.run_result is not None and self.run_result.synthetic
        return f"Landslides {self._run_label}" + (" (SYNTHETIC input)" if synthetic else "")

    def _load_both(self, out: dict, threshold: float) -> dict:
        """Both methods: one run group; agreement on top, then the U-Net and the A_ratio subgroups."""
        root = QgsProject.instance().layerTreeRoot()
        top = root.insertGroup(0, self._group_name())
        load_agreement_layer(out["agreement"], top)
        model = out["model_result"]
        # One grid, the same scenes: the model run's radar evidence is the A_ratio run's (loaded once, there).
        model_files = {k: v for k, v in model.files.items() if not is_evidence(k)}
        model_layers = load_run_layers(model_files, "U-Net", threshold=model.threshold, vmin=0.0, vmax=1.0,
                                       score_key="probability", parent=top)
        node = model_layers["group"].findLayer(model_layers["probability"].id()) \
            if "probability" in model_layers else None
        if node is not None:  # the slider acts on A_ratio; an opaque probability layer would hide it
            node.setItemVisibilityChecked(False)
        layers = load_run_layers(out["result"].files, "A_ratio", threshold=threshold, vmin=self.score_range[0],
                                 vmax=self.score_range[1], score_key="a_ratio", parent=top)
        layers.update(group=top, a_ratio_group=layers["group"], model_group=model_layers["group"],
                      probability=model_layers.get("probability"), model_candidates=model_layers.get("candidates"))
        return {k: v for k, v in layers.items() if v is not None}

    # ------------------------------------------------------------------ messages

    def show_info(self, text: str) -> None:
        self.status_label.setText(text)
        log_info(text)
        bar = getattr(self.iface, "messageBar", None)
        if bar is not None:
            bar().pushInfo(tr("Landslide SAR"), text)

    def show_error(self, text: str, details: str = "") -> None:
        self.status_label.setText(text)
        log_error(text, details)  # the traceback goes to the debug log file only
        bar = getattr(self.iface, "messageBar", None)
        if bar is not None:
            bar().pushCritical(tr("Landslide SAR"), text)

    def cleanup(self) -> None:
        """Disconnect from the project (the plugin calls this before deleting the dock)."""
        project = QgsProject.instance()
        for signal, slot in ((project.layersWillBeRemoved, self._layers_removed),
                             (project.cleared, self._project_cleared)):
            try:
                signal.disconnect(slot)
            except (TypeError, RuntimeError):
                pass

    def closeEvent(self, event):  # noqa: N802 (Qt API)
        self.save_settings()
        super().closeEvent(event)


def _run_local(method, scenes, dem, out_dir, params, model_path, composite, progress, is_cancelled) -> dict:
    """The local-folder runs of one method (worker thread): core calls only."""
    from ..core.detect import run_detection

    if method == "a_ratio":
        return {"result": run_detection(scenes, dem, out_dir, params, progress=progress, is_cancelled=is_cancelled),
                "score_key": "a_ratio"}
    from ..core.detect_model import run_model_detection, write_agreement

    extra = {"write_composite": True} if composite else {}
    if method == "model":
        return {"result": run_model_detection(scenes, dem, out_dir, params, model_path, progress=progress,
                                              is_cancelled=is_cancelled, **extra), "score_key": "probability"}

    def part(lo, hi):
        return lambda f, m: progress(lo + (hi - lo) * f, m)

    a_res = run_detection(scenes, dem, out_dir / "a_ratio", params, progress=part(0.0, 0.45),
                          is_cancelled=is_cancelled)
    m_res = run_model_detection(scenes, dem, out_dir / "model", params, model_path, progress=part(0.45, 0.9),
                                is_cancelled=is_cancelled, **extra)
    agreement = write_agreement(out_dir / "a_ratio", out_dir / "model", out_dir / "agreement.tif",
                                block_size=params.block_size, progress=part(0.9, 1.0), is_cancelled=is_cancelled)
    return {"result": a_res, "score_key": "a_ratio", "model_result": m_res, "agreement": agreement}


def _remove_empty_folders(folder: Path | None) -> None:
    """Remove ``folder`` and its sub-folders if they hold no file (an unfinished run's folder)."""
    if folder is None or not folder.is_dir():
        return
    if any(p.is_file() for p in folder.rglob("*")):
        return
    shutil.rmtree(folder, ignore_errors=True)
