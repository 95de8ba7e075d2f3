"""The "Landslide SAR mapper" dock: inputs, Detect, live threshold, review and export.

Thin by design: every computation is a ``core`` call, heavy ones inside a
:class:`.tasks.CoreTask`.  Widgets only collect parameters, show progress,
load layers and restyle them.
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
from pathlib import Path

from qgis.core import (
    QgsApplication,
    QgsCoordinateReferenceSystem,
    QgsMapLayerProxyModel,
    QgsProject,
    QgsRectangle,
    QgsSettings,
    QgsVectorLayer,
)
from qgis.gui import QgsCollapsibleGroupBox, QgsFileWidget, QgsMapLayerComboBox, QgsMapToolExtent
from qgis.PyQt.QtCore import QCoreApplication, QDateTime, Qt
from qgis.PyQt.QtGui import QKeySequence
from qgis.PyQt.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDateTimeEdit,
    QDockWidget,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QShortcut,
    QSlider,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..core import catalog as cat
from ..core.dependencies import install_command, is_available
from ..core.detect import DetectParams
from .histogram import HistogramWidget
from .layers import load_agreement_layer, load_run_layers, style_score_layer
from .log import log_error, log_info, log_warning
from .tasks import CoreTask

SAMPLE_DIR = Path(__file__).resolve().parent.parent / "sample_data"
DEFAULT_MODEL = Path(__file__).resolve().parent.parent / "models" / "landslide_unet.onnx"
SETTINGS_PREFIX = "landslide_sar/"
SLIDER_STEPS = 1000
AOI_SCENES, AOI_CANVAS, AOI_DRAWN, AOI_LAYER = range(4)


def tr(text: str) -> str:
    return QCoreApplication.translate("LandslideDock", text)


def _defaults() -> DetectParams:
    return DetectParams(event_time=dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc))


class LandslideDock(QDockWidget):
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
        self._last_map_threshold = 0.0
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
        self._build()
        self._restore_settings()
        self.refresh_scenes()

    # ------------------------------------------------------------------ construction

    def _build(self) -> None:
        d = _defaults()
        body = QWidget()
        layout = QVBoxLayout(body)

        self.synthetic_label = QLabel(tr(
            "Try it on the bundled SYNTHETIC (simulated) sample scene: <a href='#'>use the sample</a>"))
        self.synthetic_label.setWordWrap(True)
        self.synthetic_label.linkActivated.connect(lambda _: self.use_sample_scene())
        layout.addWidget(self.synthetic_label)

        data = QGroupBox(tr("Data"))
        form = QFormLayout(data)
        self.source_combo = QComboBox()
        self.source_combo.addItem(tr("Local scene folder"), "local")
        self.source_combo.addItem(tr("Google Earth Engine"), "earthengine")
        form.addRow(tr("Source"), self.source_combo)
        self.ee_widget = QWidget()
        ee_form = QFormLayout(self.ee_widget)
        ee_form.setContentsMargins(0, 0, 0, 0)
        self.ee_project = QLineEdit()
        self.ee_project.setPlaceholderText(tr("Google Cloud project id registered for Earth Engine"))
        ee_form.addRow(tr("Cloud project"), self.ee_project)
        self.ee_mode = QComboBox()
        self.ee_mode.addItem(tr("Download composites, compute here"), "download")
        self.ee_mode.addItem(tr("Compute on Earth Engine (large areas)"), "server")
        ee_form.addRow(tr("Processing"), self.ee_mode)
        row = QHBoxLayout()
        self.ee_sign_in = QPushButton(tr("Sign in"))
        self.ee_sign_in.setToolTip(tr("Opens the Google sign-in in your browser (once; reused afterwards)"))
        self.ee_sign_in.clicked.connect(self.start_ee_sign_in)
        self.ee_list_button = QPushButton(tr("List scenes"))
        self.ee_list_button.clicked.connect(self.start_ee_listing)
        row.addWidget(self.ee_sign_in)
        row.addWidget(self.ee_list_button)
        ee_form.addRow(row)
        form.addRow(self.ee_widget)
        self.local_widget = QWidget()
        local_form = QFormLayout(self.local_widget)
        local_form.setContentsMargins(0, 0, 0, 0)
        self.scene_dir = QgsFileWidget()
        self.scene_dir.setStorageMode(QgsFileWidget.StorageMode.GetDirectory)
        self.scene_dir.setToolTip(tr("Folder of Sentinel-1 GeoTIFFs, one per acquisition"))
        local_form.addRow(tr("Scene folder"), self.scene_dir)
        self.dem_file = QgsFileWidget()
        self.dem_file.setFilter(tr("GeoTIFF (*.tif *.tiff);;All files (*)"))
        local_form.addRow(tr("DEM"), self.dem_file)
        form.addRow(self.local_widget)
        self.scene_table = QTableWidget(0, 6)
        self.scene_table.setHorizontalHeaderLabels([tr("Date (UTC)"), tr("Pass"), tr("Orbit"), tr("Role"),
                                                    tr("File"), tr("Product")])
        self.scene_table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.scene_table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.scene_table.setMinimumHeight(120)
        form.addRow(self.scene_table)
        self.scene_summary = QLabel()
        self.scene_summary.setWordWrap(True)
        form.addRow(self.scene_summary)
        layout.addWidget(data)

        event = QGroupBox(tr("Event"))
        form = QFormLayout(event)
        self.event_time = QDateTimeEdit()
        self.event_time.setTimeSpec(Qt.TimeSpec.UTC)
        self.event_time.setDisplayFormat("yyyy-MM-dd HH:mm 'UTC'")
        self.event_time.setCalendarPopup(True)
        form.addRow(tr("Event time"), self.event_time)
        self.pre_days = QSpinBox()
        self.pre_days.setRange(1, 3650)
        self.pre_days.setValue(int(d.pre_days))
        self.pre_days.setSuffix(tr(" days before"))
        form.addRow(tr("Pre-event window"), self.pre_days)
        self.post_days = QSpinBox()
        self.post_days.setRange(1, 3650)
        self.post_days.setValue(int(d.post_days))
        self.post_days.setSuffix(tr(" days after"))
        form.addRow(tr("Post-event window"), self.post_days)
        layout.addWidget(event)

        aoi = QGroupBox(tr("Area of interest"))
        form = QFormLayout(aoi)
        self.aoi_mode = QComboBox()
        self.aoi_mode.addItems([tr("Extent of the scenes"), tr("Map canvas extent"), tr("Drawn rectangle"),
                                tr("Polygon layer")])
        form.addRow(tr("Area"), self.aoi_mode)
        row = QHBoxLayout()
        self.draw_button = QPushButton(tr("Draw rectangle"))
        self.draw_button.clicked.connect(self.start_drawing)
        row.addWidget(self.draw_button)
        self.aoi_layer = QgsMapLayerComboBox()
        self.aoi_layer.setFilters(QgsMapLayerProxyModel.Filter.PolygonLayer)
        self.aoi_layer.setAllowEmptyLayer(True)
        row.addWidget(self.aoi_layer)
        form.addRow(row)
        self.aoi_selected_only = QCheckBox(tr("Selected features only"))
        form.addRow(self.aoi_selected_only)
        layout.addWidget(aoi)

        method = QGroupBox(tr("Method"))
        form = QFormLayout(method)
        self.method_combo = QComboBox()
        self.method_combo.addItem(tr("A_ratio (backscatter change)"), "a_ratio")
        self.method_combo.addItem(tr("U-Net model (ONNX)"), "model")
        self.method_combo.addItem(tr("Both, with an agreement layer"), "both")
        form.addRow(tr("Method"), self.method_combo)
        self.model_file = QgsFileWidget()
        self.model_file.setFilter(tr("ONNX model (*.onnx)"))
        if DEFAULT_MODEL.is_file():
            self.model_file.setFilePath(str(DEFAULT_MODEL))
        form.addRow(tr("Model"), self.model_file)
        self.model_choice_label = QLabel("")  # after a model run: which model ran on what, and why
        self.model_choice_label.setWordWrap(True)
        form.addRow(self.model_choice_label)
        if not is_available("onnxruntime"):
            hint = tr("Needs onnxruntime: {cmd}").format(cmd=install_command(["onnxruntime"]))
            for i in (1, 2):
                self.method_combo.model().item(i).setEnabled(False)
                self.method_combo.setItemData(i, hint, Qt.ItemDataRole.ToolTipRole)
        self.method_combo.currentIndexChanged.connect(lambda _: self._update_visibility())
        layout.addWidget(method)

        adv = QgsCollapsibleGroupBox(tr("Advanced options"))
        adv.setCollapsed(True)
        form = QFormLayout(adv)
        self.polarisation = QComboBox()
        self.polarisation.addItems(["VH", "VV", "both"])
        form.addRow(tr("Polarisation"), self.polarisation)
        self.slope_min = self._dspin(0, 60, d.slope_min_deg, " deg", 1)
        form.addRow(tr("Minimum slope"), self.slope_min)
        self.use_curvature = QCheckBox(tr("Mask convex terrain (curvature >=)"))
        self.curv_min = self._dspin(-1, 1, -0.005, " 1/m", 4)
        row = QHBoxLayout()
        row.addWidget(self.use_curvature)
        row.addWidget(self.curv_min)
        form.addRow(row)
        self.speckle_sigma = self._dspin(0, 200, d.speckle_sigma_m, " m", 1)
        form.addRow(tr("Speckle smoothing sigma"), self.speckle_sigma)
        self.pixel_size = self._dspin(0, 1000, d.pixel_size or 0, " m", 1)
        self.pixel_size.setSpecialValueText(tr("finest input"))  # 0 = the finest resolution of the scenes
        form.addRow(tr("Pixel size"), self.pixel_size)
        self.min_area = self._dspin(0, 1e7, d.min_area_m2, " m²", 0)
        form.addRow(tr("Minimum polygon area"), self.min_area)
        self.heatmap_radius = self._dspin(0, 10000, d.heatmap_radius_m, " m", 0)
        form.addRow(tr("Heatmap radius"), self.heatmap_radius)
        self.out_dir = QgsFileWidget()
        self.out_dir.setStorageMode(QgsFileWidget.StorageMode.GetDirectory)
        self.out_dir.setToolTip(tr("Each run writes a new sub-folder here"))
        form.addRow(tr("Output folder"), self.out_dir)
        layout.addWidget(adv)

        run = QHBoxLayout()
        self.detect_button = QPushButton(tr("Detect landslides"))
        self.detect_button.setDefault(True)
        self.detect_button.clicked.connect(self.start_detection)
        run.addWidget(self.detect_button)
        self.cancel_button = QPushButton(tr("Cancel"))
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel_task)
        run.addWidget(self.cancel_button)
        layout.addLayout(run)
        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        layout.addWidget(self.progress)
        self.status_label = QLabel()
        self.status_label.setWordWrap(True)
        layout.addWidget(self.status_label)

        thr = QGroupBox(tr("Threshold"))
        form = QFormLayout(thr)
        self.threshold_mode = QComboBox()
        self.threshold_mode.addItem(tr("Score value (dB or probability)"), "value")
        self.threshold_mode.addItem(tr("Percentile of valid pixels"), "percentile")
        self.threshold_mode.currentIndexChanged.connect(lambda _: self._mode_changed())
        form.addRow(tr("Threshold as"), self.threshold_mode)
        self.threshold_slider = QSlider(Qt.Orientation.Horizontal)
        self.threshold_slider.setRange(0, SLIDER_STEPS)
        self.threshold_spin = self._dspin(-100, 100, d.threshold_db, " dB", 2)
        self.threshold_spin.setSingleStep(0.05)
        row = QHBoxLayout()
        row.addWidget(self.threshold_slider)
        row.addWidget(self.threshold_spin)
        form.addRow(row)
        self.histogram_widget = HistogramWidget()
        form.addRow(self.histogram_widget)
        self.threshold_info = QLabel()
        form.addRow(self.threshold_info)
        self.update_button = QPushButton(tr("Update polygons"))
        self.update_button.setToolTip(tr("Re-derive the candidate polygons at this threshold (keeps the old layer)"))
        self.update_button.clicked.connect(self.start_update_polygons)
        form.addRow(self.update_button)
        thr.setEnabled(False)
        self.threshold_group = thr
        layout.addWidget(thr)

        review = QGroupBox(tr("Review and export"))
        form = QFormLayout(review)
        row = QHBoxLayout()
        self.accept_button = QPushButton(tr("Accept selected (Ctrl+Alt+A)"))
        self.accept_button.clicked.connect(lambda: self.set_selected_status("accepted"))
        self.reject_button = QPushButton(tr("Reject selected (Ctrl+Alt+R)"))
        self.reject_button.clicked.connect(lambda: self.set_selected_status("rejected"))
        row.addWidget(self.accept_button)
        row.addWidget(self.reject_button)
        form.addRow(row)
        self.inventory_file = QgsFileWidget()
        self.inventory_file.setStorageMode(QgsFileWidget.StorageMode.SaveFile)
        self.inventory_file.setFilter(tr("GeoPackage (*.gpkg)"))
        form.addRow(tr("Inventory"), self.inventory_file)
        self.reviewer = QLineEdit()
        self.reviewer.setPlaceholderText(tr("your name"))
        form.addRow(tr("Reviewer"), self.reviewer)
        self.export_button = QPushButton(tr("Export accepted and edited polygons"))
        self.export_button.clicked.connect(self.export_to_inventory)
        form.addRow(self.export_button)
        review.setEnabled(False)
        self.review_group = review
        layout.addWidget(review)
        layout.addStretch(1)

        for key, slot in (("Ctrl+Alt+A", lambda: self.set_selected_status("accepted")),
                          ("Ctrl+Alt+R", lambda: self.set_selected_status("rejected"))):
            shortcut = QShortcut(QKeySequence(key), self)
            shortcut.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            shortcut.activated.connect(slot)

        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(body)
        self.setWidget(scroll)

        self.scene_dir.fileChanged.connect(lambda _: self.refresh_scenes())
        self.event_time.dateTimeChanged.connect(lambda _: self.refresh_scenes())
        self.pre_days.valueChanged.connect(lambda _: self.refresh_scenes())
        self.post_days.valueChanged.connect(lambda _: self.refresh_scenes())
        self.polarisation.currentIndexChanged.connect(lambda _: self.refresh_scenes())
        self.threshold_slider.valueChanged.connect(self._slider_moved)
        self.threshold_spin.valueChanged.connect(self._spin_changed)
        self.source_combo.currentIndexChanged.connect(lambda _: self._update_visibility())
        self._update_visibility()

    def _update_visibility(self) -> None:
        earthengine = self.source_combo.currentData() == "earthengine"
        self.ee_widget.setVisible(earthengine)
        self.local_widget.setVisible(not earthengine)
        self.model_file.setEnabled(self.method_combo.currentData() in ("model", "both"))

    @staticmethod
    def _dspin(lo, hi, value, suffix, decimals) -> QDoubleSpinBox:
        spin = QDoubleSpinBox()
        spin.setRange(lo, hi)
        spin.setDecimals(decimals)
        spin.setValue(value)
        spin.setSuffix(suffix)
        return spin

    # ------------------------------------------------------------------ settings

    def _restore_settings(self) -> None:
        s = self.settings
        self.scene_dir.setFilePath(s.value(SETTINGS_PREFIX + "scene_dir", "", type=str))
        self.dem_file.setFilePath(s.value(SETTINGS_PREFIX + "dem", "", type=str))
        self.out_dir.setFilePath(s.value(SETTINGS_PREFIX + "out_dir", "", type=str))
        self.inventory_file.setFilePath(s.value(SETTINGS_PREFIX + "inventory", "", type=str))
        self.reviewer.setText(s.value(SETTINGS_PREFIX + "reviewer", "", type=str) or _user_name())
        event = s.value(SETTINGS_PREFIX + "event_time", "", type=str)
        if event:
            self.event_time.setDateTime(QDateTime.fromString(event, Qt.DateFormat.ISODate))
        else:
            self.event_time.setDateTime(QDateTime.currentDateTimeUtc())
        self.pre_days.setValue(s.value(SETTINGS_PREFIX + "pre_days", self.pre_days.value(), type=int))
        self.post_days.setValue(s.value(SETTINGS_PREFIX + "post_days", self.post_days.value(), type=int))
        self.polarisation.setCurrentText(s.value(SETTINGS_PREFIX + "polarisation", "VH", type=str))
        self.slope_min.setValue(s.value(SETTINGS_PREFIX + "slope_min", self.slope_min.value(), type=float))
        self.ee_project.setText(s.value(SETTINGS_PREFIX + "ee_project", "", type=str))
        model = s.value(SETTINGS_PREFIX + "model", "", type=str)
        if model:
            self.model_file.setFilePath(model)

    def save_settings(self) -> None:
        s = self.settings
        s.setValue(SETTINGS_PREFIX + "scene_dir", self.scene_dir.filePath())
        s.setValue(SETTINGS_PREFIX + "dem", self.dem_file.filePath())
        s.setValue(SETTINGS_PREFIX + "out_dir", self.out_dir.filePath())
        s.setValue(SETTINGS_PREFIX + "inventory", self.inventory_file.filePath())
        s.setValue(SETTINGS_PREFIX + "reviewer", self.reviewer.text())
        s.setValue(SETTINGS_PREFIX + "event_time", self.event_time.dateTime().toUTC().toString(Qt.DateFormat.ISODate))
        s.setValue(SETTINGS_PREFIX + "pre_days", self.pre_days.value())
        s.setValue(SETTINGS_PREFIX + "post_days", self.post_days.value())
        s.setValue(SETTINGS_PREFIX + "polarisation", self.polarisation.currentText())
        s.setValue(SETTINGS_PREFIX + "slope_min", self.slope_min.value())
        s.setValue(SETTINGS_PREFIX + "ee_project", self.ee_project.text().strip())
        s.setValue(SETTINGS_PREFIX + "model", self.model_file.filePath())

    # ------------------------------------------------------------------ inputs

    def use_sample_scene(self) -> None:
        """Fill the inputs with the bundled SYNTHETIC sample scene."""
        event = json.loads((SAMPLE_DIR / "event.json").read_text(encoding="utf-8"))["event_time"]
        self.event_time.setDateTime(QDateTime.fromString(event.replace("Z", ""), Qt.DateFormat.ISODate))
        self.event_time.setTimeSpec(Qt.TimeSpec.UTC)
        self.scene_dir.setFilePath(str(SAMPLE_DIR / "scenes"))
        self.dem_file.setFilePath(str(SAMPLE_DIR / "dem.tif"))
        self.status_label.setText(tr("Sample scene selected. It is SYNTHETIC: results are for trying the tool."))

    def event_datetime(self) -> dt.datetime:
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
        pols = ("VV", "VH") if self.polarisation.currentText() == "both" else (self.polarisation.currentText(),)
        roles = {}
        summary = []
        try:
            selection = cat.select_stacks(catalog.scenes, self.event_datetime(), pre_days=self.pre_days.value(),
                                          post_days=self.post_days.value(), polarisations=pols)
            for stacks, role in ((selection.pre, tr("pre")), (selection.post, tr("post"))):
                for scenes in stacks.values():
                    for s in scenes:
                        roles[s.scene_id] = role
            summary = selection.summary_lines()
            error = None
        except cat.CatalogError as exc:
            error = str(exc).splitlines()[0]
        for s in catalog.scenes:
            row = self.scene_table.rowCount()
            self.scene_table.insertRow(row)
            values = [f"{s.acquisition_start:%Y-%m-%d %H:%M}", s.orbit_pass.title(), str(s.relative_orbit or "?"),
                      roles.get(s.scene_id, tr("unused")), ", ".join(p.name for p in s.file_paths()), s.product]
            for col, value in enumerate(values):
                self.scene_table.setItem(row, col, QTableWidgetItem(value))
        skipped = f" {len(catalog.skipped)} file(s) skipped (see the log)." if catalog.skipped else ""
        synthetic = tr(" These scenes are SYNTHETIC.") if any(s.synthetic for s in catalog.scenes) else ""
        if error:
            self._set_summary(error + skipped, error=True)
        else:
            self._set_summary("\n".join(summary) + skipped + synthetic)

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
        from ..core.grid import Aoi

        mode = self.aoi_mode.currentIndex()
        if mode == AOI_SCENES:
            return None
        if mode == AOI_CANVAS:
            canvas = self.iface.mapCanvas()
            return _aoi_from_rect(canvas.extent(), canvas.mapSettings().destinationCrs(), "map canvas extent")
        if mode == AOI_DRAWN:
            if self.drawn_extent is None:
                raise ValueError(tr("Draw a rectangle on the map first (Draw rectangle)."))
            return _aoi_from_rect(*self.drawn_extent, "drawn rectangle")
        layer = self.aoi_layer.currentLayer()
        if layer is None:
            raise ValueError(tr("Choose a polygon layer for the area of interest."))
        feats = layer.selectedFeatures() if self.aoi_selected_only.isChecked() else list(layer.getFeatures())
        geoms = [json.loads(f.geometry().asJson()) for f in feats if f.hasGeometry()]
        if not geoms:
            raise ValueError(tr("The AOI layer has no (selected) polygon."))
        extent = QgsRectangle()
        for f in feats:
            extent.combineExtentWith(f.geometry().boundingBox())
        aoi = _aoi_from_rect(extent, layer.crs(), layer.name())
        return Aoi(aoi.bounds, aoi.crs, geoms, layer.source())

    def collect_params(self) -> DetectParams:
        d = _defaults()
        return DetectParams(
            event_time=self.event_datetime(),
            pre_days=self.pre_days.value(),
            post_days=self.post_days.value(),
            polarisation=self.polarisation.currentText(),
            pixel_size=self.pixel_size.value() or None,
            aoi=self.current_aoi(),
            speckle_sigma_m=self.speckle_sigma.value(),
            speckle_radius_m=2 * self.speckle_sigma.value(),
            slope_min_deg=self.slope_min.value() if self.slope_min.value() > 0 else None,
            curv_min=self.curv_min.value() if self.use_curvature.isChecked() else None,
            threshold_db=d.threshold_db,
            percentile=None,
            min_area_m2=self.min_area.value(),
            heatmap_radius_m=self.heatmap_radius.value(),
            event_id=f"event_{self.event_datetime():%Y%m%dT%H%M}",
        )

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
            self.show_error(tr("Choose an ONNX model file (none is shipped yet: train one with `make train-demo`)."))
            return
        self.save_settings()
        out_dir = self._new_run_folder(params)
        work = self._detection_work(source, method, scenes, dem, params, out_dir, model_path)
        log_info(f"detection started: source {source}, method {method}, event {params.event_time}, output {out_dir}")
        self._start_task(tr("Detecting landslides"), work, self._detection_done)

    def _earthengine_problem(self, params: DetectParams, method: str) -> str:
        if params.aoi is None:
            return tr("Earth Engine needs an area of interest: draw a rectangle, use the map extent or a polygon "
                      "layer.")
        if not self.ee_project.text().strip():
            return tr("Enter the Google Cloud project id registered for Earth Engine.")
        if method != "a_ratio":
            return tr("Earth Engine runs the A_ratio method; run the model on the downloaded scenes afterwards.")
        return ""

    def _ee_transport(self):
        return self.ee_transport_factory() if self.ee_transport_factory is not None else None

    def _detection_work(self, source, method, scenes, dem, params, out_dir, model_path):
        """The function the background task runs: core calls only, returns a dict for _detection_done."""
        from ..core.histogram import raster_histogram

        project, ee_mode, transport = self.ee_project.text().strip(), self.ee_mode.currentData(), self._ee_transport()
        ee_cache = self.ee_cache_dir

        def work(progress, is_cancelled):
            def part(lo, hi):
                return lambda f, m: progress(lo + (hi - lo) * f, m)

            out = {"method": method}
            if source == "earthengine":
                from ..core.earthengine import run_earthengine_detection

                result = run_earthengine_detection(None, None, out_dir, params, project=project, mode=ee_mode,
                                                   transport=transport, cache_dir=ee_cache, progress=progress,
                                                   is_cancelled=is_cancelled)
                out.update(result=result, score_key="a_ratio")
            elif method == "a_ratio":
                from ..core.detect import run_detection

                out.update(result=run_detection(scenes, dem, out_dir, params, progress=progress,
                                                is_cancelled=is_cancelled), score_key="a_ratio")
            else:
                from ..core.detect import run_detection
                from ..core.detect_model import run_model_detection, write_agreement

                if method == "model":
                    out.update(result=run_model_detection(scenes, dem, out_dir, params, model_path, progress=progress,
                                                          is_cancelled=is_cancelled), score_key="probability")
                else:
                    a_res = run_detection(scenes, dem, out_dir / "a_ratio", params, progress=part(0.0, 0.45),
                                          is_cancelled=is_cancelled)
                    m_res = run_model_detection(scenes, dem, out_dir / "model", params, model_path,
                                                progress=part(0.45, 0.9), is_cancelled=is_cancelled)
                    agreement = write_agreement(out_dir / "a_ratio", out_dir / "model", out_dir / "agreement.tif",
                                                block_size=params.block_size, progress=part(0.9, 1.0),
                                                is_cancelled=is_cancelled)
                    out.update(result=a_res, score_key="a_ratio", model_result=m_res, agreement=agreement)
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
        self.cancel_button.setEnabled(False)
        return task

    def _detection_done(self, task: CoreTask) -> None:
        self._task_finished()
        if task.cancelled_by_user:
            self.progress.setValue(0)
            self.show_info(tr("Detection cancelled; nothing was kept."))
            return
        if task.error is not None:
            if getattr(task.error, "needs_sign_in", False):
                self.ee_sign_in.setFocus()
            self.show_error(tr("Detection failed: {msg}").format(msg=task.error), task.error_traceback)
            return
        out = task.result
        result = out["result"]
        self.run_result = result
        model_run = out.get("model_result") or (result if out["score_key"] == "probability" else None)
        choice = (model_run.run_info.get("model_choice") or {}).get("reason", "") if model_run is not None else ""
        self.model_choice_label.setText(tr("Model ran: {why}").format(why=choice) if choice else "")
        if choice:
            log_info(f"model choice: {choice}")
        self.histogram = out["histogram"]
        self.score_key = out["score_key"]
        self.score_units = "dB" if self.score_key == "a_ratio" else ""
        self.score_range = (-5.0, float(self.histogram.edges[-1])) if self.score_key == "a_ratio" else (0.0, 1.0)
        threshold = float(result.threshold)
        suffix = " (SYNTHETIC input)" if result.synthetic else ""
        name = f"Landslides {result.run_info['event_id']}" + suffix
        self.run_layers = load_run_layers(result.files, name, threshold=threshold, vmin=self.score_range[0],
                                          vmax=self.score_range[1], score_key=self.score_key)
        if "model_result" in out:
            m = out["model_result"]
            model_layers = load_run_layers(m.files, f"U-Net {result.run_info['event_id']}{suffix}",
                                           threshold=m.threshold, vmin=0.0, vmax=1.0, score_key="probability")
            self.run_layers["model_group"] = model_layers["group"]
            load_agreement_layer(out["agreement"], self.run_layers["group"])
        self._watch_candidates(self.run_layers.get("candidates"))
        self._setup_threshold_controls(threshold, self.histogram)
        self.threshold_group.setEnabled(True)
        self.review_group.setEnabled(True)
        self.progress.setValue(100)
        self.show_info(tr("{n} candidate polygons at {t:.2f} {u}; outputs in {d}").format(
            n=result.n_candidates, t=threshold, u=self.score_units, d=result.out_dir))
        for warning in result.warnings:
            log_warning(warning)

    # ------------------------------------------------------------------ Earth Engine

    def start_ee_listing(self) -> None:
        if self.task is not None:
            return
        try:
            params = self.collect_params()
        except ValueError as exc:
            self.show_error(str(exc))
            return
        problem = self._earthengine_problem(params, "a_ratio")
        if problem:
            self.show_error(problem)
            return
        project, transport = self.ee_project.text().strip(), self._ee_transport()
        self.save_settings()

        def work(progress, is_cancelled):
            from ..core.earthengine import EarthEngineTransport, initialize, list_scenes

            progress(0.1, "connecting to Earth Engine")
            use = transport
            if use is None:
                initialize(project)
                use = EarthEngineTransport()
            progress(0.3, "listing Sentinel-1 scenes")
            return list_scenes(params, transport=use)

        self._start_task(tr("Listing Earth Engine scenes"), work, self._ee_listing_done)

    def _ee_listing_done(self, task: CoreTask) -> None:
        self._task_finished()
        if task.error is not None:
            self.show_error(tr("Earth Engine listing failed: {msg}").format(msg=task.error), task.error_traceback)
            return
        if task.result is None:
            return
        self.ee_listing = task.result
        self.scene_table.setRowCount(0)
        for row_data in self.ee_listing.table_rows():
            row = self.scene_table.rowCount()
            self.scene_table.insertRow(row)
            values = [row_data["acquisition_start"].replace("T", " ")[:16], row_data["orbit_pass"].title(),
                      str(row_data["relative_orbit"]), row_data["role"] if row_data["used"] else tr("unused"),
                      row_data["scene_id"], "ESA GRD (Earth Engine)"]
            for col, value in enumerate(values):
                self.scene_table.setItem(row, col, QTableWidgetItem(value))
        self._set_summary("\n".join(self.ee_listing.summary_lines()))
        self.progress.setValue(100)

    def start_ee_sign_in(self) -> None:
        if self.task is not None:
            return

        def work(progress, is_cancelled):
            from ..core.earthengine import authenticate_interactive

            progress(0.1, "waiting for the Google sign-in in your browser")
            return authenticate_interactive()

        self._start_task(tr("Signing in to Earth Engine"), work, self._ee_sign_in_done)

    def _ee_sign_in_done(self, task: CoreTask) -> None:
        self._task_finished()
        if task.error is not None:
            self.show_error(tr("Sign-in failed: {msg}").format(msg=task.error))
        elif not task.cancelled_by_user:
            self.show_info(tr("Signed in to Earth Engine; the sign-in is kept for later sessions."))

    # ------------------------------------------------------------------ threshold

    def _setup_threshold_controls(self, value: float, histogram) -> None:
        """Configure slider and spin box for the run's score, in the chosen mode, at ``value`` (score units)."""
        self.histogram_widget.set_histogram(histogram)
        percentile = self.percentile_mode()
        lo, hi = (50.0, 99.99) if percentile else (float(histogram.edges[0]), float(histogram.edges[-1]))
        self.threshold_spin.blockSignals(True)
        self.threshold_spin.setRange(lo, hi)
        self.threshold_spin.setSuffix(" %" if percentile else (f" {self.score_units}" if self.score_units else ""))
        self.threshold_spin.blockSignals(False)
        if percentile:
            value = 100.0 * (1.0 - histogram.fraction_above(value))
        self.set_threshold(min(max(value, lo), hi))

    def percentile_mode(self) -> bool:
        return self.threshold_mode.currentData() == "percentile"

    def map_threshold(self) -> float:
        """The threshold in score units that the map shows (estimated from the histogram in percentile mode)."""
        value = self.threshold_spin.value()
        if self.percentile_mode() and self.histogram is not None:
            return self.histogram.value_at_percentile(value)
        return value

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
        """Restyle the score layer for ``value``: instant, nothing is recomputed."""
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
        layer = self.run_layers.get(self.score_key)
        if layer is not None:
            style_score_layer(layer, shown, self.score_range[0], self.score_range[1])
        self.histogram_widget.set_threshold(shown)
        if self.histogram is not None:
            text = tr("{p:.2%} of valid pixels above {t:.2f} {u}").format(
                p=self.histogram.fraction_above(shown), t=shown, u=self.score_units)
            if self.percentile_mode():
                text += tr(" (estimated; Update polygons uses the exact percentile)")
            self.threshold_info.setText(text)

    def start_update_polygons(self) -> None:
        if self.task is not None or self.run_result is None:
            return
        from ..core.candidates import ThresholdSpec, candidates_from_score

        thr = self.threshold_spin.value()
        result = self.run_result
        method = "a_ratio" if self.score_key == "a_ratio" else "model"
        percentile = self.percentile_mode()
        spec = ThresholdSpec(threshold=None if percentile else thr, percentile=thr if percentile else None,
                             min_area_m2=self.min_area.value(), heatmap_radius_m=self.heatmap_radius.value(),
                             method=method, units=self.score_units or "probability",
                             event_id=result.run_info["event_id"])
        label = f"p{thr:.2f}" if percentile else f"t{thr:+.2f}{self.score_units}"
        prefix = (label + "_").replace("+", "p").replace("-", "m").replace(".", "_")
        score_path = result.files[self.score_key]

        def work(progress, is_cancelled):
            return candidates_from_score(score_path, result.out_dir, spec, prefix=prefix, progress=progress,
                                         is_cancelled=is_cancelled)

        self._start_task(tr("Updating candidate polygons"), work, self._update_done)

    def _update_done(self, task: CoreTask) -> None:
        self._task_finished()
        if task.cancelled_by_user:
            self.show_info(tr("Update cancelled; the previous polygons are unchanged."))
            return
        if task.error is not None:
            self.show_error(tr("Updating the polygons failed: {msg}").format(msg=task.error), task.error_traceback)
            return
        res = task.result
        old = self.run_layers.get("candidates")
        group = self.run_layers["group"]
        if old is not None:
            old.setName(old.name() + tr(" (previous)"))
            node = group.findLayer(old.id())
            if node is not None:
                node.setItemVisibilityChecked(False)
        layer = QgsVectorLayer(f"{res.files['candidates']}|layername=candidates",
                               tr("Candidate landslides {t:.2f} {u}").format(t=res.threshold, u=self.score_units),
                               "ogr")
        from .layers import style_candidates

        style_candidates(layer)
        QgsProject.instance().addMapLayer(layer, False)
        group.insertLayer(0, layer)
        self.run_layers["candidates"] = layer
        self._watch_candidates(layer)
        self.show_info(tr("{n} candidate polygons at {t:.2f} {u} (the previous layer is kept, hidden)").format(
            n=res.n_candidates, t=res.threshold, u=self.score_units))

    # ------------------------------------------------------------------ review and export

    def _watch_candidates(self, layer) -> None:
        if layer is None:
            return
        layer.geometryChanged.connect(lambda fid, _geom, lyr=layer: self._mark_edited(lyr, fid))

    @staticmethod
    def _mark_edited(layer, fid) -> None:
        idx = layer.fields().indexFromName("status")
        if idx >= 0 and layer.isEditable():
            layer.changeAttributeValue(fid, idx, "edited")

    def set_selected_status(self, status: str) -> int:
        layer = self.run_layers.get("candidates")
        if layer is None:
            self.show_error(tr("Run a detection first."))
            return 0
        ids = layer.selectedFeatureIds()
        if not ids:
            self.show_info(tr("Select candidate polygons on the map first."))
            return 0
        idx = layer.fields().indexFromName("status")
        if not layer.isEditable():
            layer.startEditing()
        for fid in ids:
            layer.changeAttributeValue(fid, idx, status)
        self.show_info(tr("{n} polygon(s) marked {s}; save the layer edits or export to keep them").format(
            n=len(ids), s=status))
        return len(ids)

    def export_to_inventory(self):
        """Save pending edits, then export accepted/edited polygons into the inventory (one transaction)."""
        layer = self.run_layers.get("candidates")
        inventory = self.inventory_file.filePath()
        if layer is None or self.run_result is None:
            self.show_error(tr("Run a detection first."))
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

    # ------------------------------------------------------------------ messages

    def show_info(self, text: str) -> None:
        self.status_label.setText(text)
        log_info(text)
        bar = getattr(self.iface, "messageBar", None)
        if bar is not None:
            bar().pushInfo(tr("Landslide SAR"), text)

    def show_error(self, text: str, details: str = "") -> None:
        self.status_label.setText(text)
        log_error(text + (f"\n{details}" if details else ""))
        bar = getattr(self.iface, "messageBar", None)
        if bar is not None:
            bar().pushCritical(tr("Landslide SAR"), text)

    def closeEvent(self, event):  # noqa: N802 (Qt API)
        self.save_settings()
        super().closeEvent(event)


def _aoi_from_rect(rect: QgsRectangle, crs: QgsCoordinateReferenceSystem, source: str):
    from rasterio.crs import CRS

    from ..core.grid import Aoi

    authid = crs.authid()
    rio_crs = CRS.from_user_input(authid) if authid else CRS.from_wkt(crs.toWkt())
    return Aoi((rect.xMinimum(), rect.yMinimum(), rect.xMaximum(), rect.yMaximum()), rio_crs, None, source)


def _user_name() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name in some sandboxes
        return ""
