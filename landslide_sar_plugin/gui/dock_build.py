"""The dock's widgets, built group by group so that everything fits a 300 px wide panel.

Rules that keep a narrow dock usable: form rows wrap their field under the
label when short of space; combo boxes size to a few characters, not to their
longest item; no row holds more than two short buttons; the Detect and Cancel
buttons, the progress bar and the status line sit in a footer outside the
scroll area, so they are always in view.  Spin boxes take their label, unit,
limits, tooltip and default from the shared parameter declaration
(:mod:`..core.params`).
"""

from __future__ import annotations

from qgis.core import QgsMapLayerProxyModel
from qgis.gui import QgsCollapsibleGroupBox, QgsFileWidget, QgsMapLayerComboBox
from qgis.PyQt.QtCore import QCoreApplication, QDateTime, Qt
from qgis.PyQt.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDateTimeEdit,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QSlider,
    QSpinBox,
    QTableWidget,
    QVBoxLayout,
    QWidget,
)

from ..core.params import CURVATURE_SUGGESTED, SPECS
from .histogram import HistogramWidget

SLIDER_STEPS = 1000
# The event time is "not set" while the editor shows its minimum: no guessed date, no red error (issue 13).
UNSET_EVENT = QDateTime.fromString("1990-01-01T00:00:00Z", Qt.DateFormat.ISODate)


def tr(text: str) -> str:
    return QCoreApplication.translate("LandslideDock", text)


class InfoLabel(QLabel):
    """A wrapping label that takes no room while it has nothing to say (a narrow dock has little height)."""

    def __init__(self, text: str = ""):
        super().__init__(text)
        self.setWordWrap(True)
        self.setVisible(bool(text))

    def setText(self, text: str) -> None:  # noqa: N802 (Qt API)
        super().setText(text)
        self.setVisible(bool(text))


def form(group) -> QFormLayout:
    layout = QFormLayout(group)
    layout.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
    layout.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
    return layout


def combo() -> QComboBox:
    box = QComboBox()
    box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    box.setMinimumContentsLength(10)
    box.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
    return box


def spec_spin(name: str):
    """A spin box for the shared parameter ``name``: limits, unit, decimals, tooltip and default from its spec."""
    spec = SPECS[name]
    spin = QSpinBox() if spec.integer or spec.decimals == 0 and name.endswith("days") else QDoubleSpinBox()
    if isinstance(spin, QDoubleSpinBox):
        spin.setDecimals(spec.decimals)
    integer = isinstance(spin, QSpinBox)
    spin.setRange(int(spec.minimum) if integer else spec.minimum, int(spec.maximum) if integer else spec.maximum)
    default = spec.default()
    if default is not None:
        spin.setValue(round(default) if integer else float(default))
    elif spec.kind == "number":  # a None default ("the finest input resolution"): shown at the minimum, in words
        spin.setSpecialValueText(tr(spec.none_help or "automatic"))
        spin.setValue(spin.minimum())
    if spec.unit:
        spin.setSuffix(f" {spec.unit}")
    spin.setToolTip(tr(spec.help))
    spin.setMinimumWidth(80)
    return spin


def spin_value(spin):
    """The spin box's value, or None while it shows its special "automatic" text."""
    if spin.specialValueText() and spin.value() == spin.minimum():
        return None
    return spin.value()


def file_widget(mode=None, filter_text: str = "", tooltip: str = "") -> QgsFileWidget:
    widget = QgsFileWidget()
    if mode is not None:
        widget.setStorageMode(mode)
    if filter_text:
        widget.setFilter(filter_text)
    if tooltip:
        widget.setToolTip(tooltip)
    widget.setMinimumWidth(120)
    return widget


def build_data(dock) -> QGroupBox:
    data = QGroupBox(tr("Data"))
    f = form(data)
    dock.source_combo = combo()
    dock.source_combo.addItem(tr("Local scene folder"), "local")
    dock.source_combo.addItem(tr("Google Earth Engine"), "earthengine")
    f.addRow(tr("Source"), dock.source_combo)
    dock.ee_widget = QWidget()
    ee = form(dock.ee_widget)
    ee.setContentsMargins(0, 0, 0, 0)
    dock.ee_project = QLineEdit()
    dock.ee_project.setPlaceholderText(tr("Cloud project id"))
    dock.ee_project.setToolTip(tr("Google Cloud project id registered for Earth Engine"))
    ee.addRow(tr("Cloud project"), dock.ee_project)
    dock.ee_mode = combo()
    dock.ee_mode.addItem(tr("Download composites, compute here"), "download")
    dock.ee_mode.addItem(tr("Compute on Earth Engine (large areas)"), "server")
    ee.addRow(tr("Processing"), dock.ee_mode)
    row = QHBoxLayout()
    dock.ee_sign_in = QPushButton(tr("Sign in"))
    dock.ee_sign_in.setToolTip(tr("Opens the Google sign-in in your browser (once; reused afterwards)"))
    dock.ee_list_button = QPushButton(tr("List scenes"))
    row.addWidget(dock.ee_sign_in)
    row.addWidget(dock.ee_list_button)
    ee.addRow(row)
    f.addRow(dock.ee_widget)
    dock.local_widget = QWidget()
    local = form(dock.local_widget)
    local.setContentsMargins(0, 0, 0, 0)
    dock.scene_dir = file_widget(QgsFileWidget.StorageMode.GetDirectory,
                                 tooltip=tr("Folder of Sentinel-1 GeoTIFFs, one per acquisition"))
    local.addRow(tr("Scene folder"), dock.scene_dir)
    dock.dem_file = file_widget(filter_text=tr("GeoTIFF (*.tif *.tiff);;All files (*)"),
                                tooltip=tr("Elevation in metres, any CRS, covering the area"))
    local.addRow(tr("DEM"), dock.dem_file)
    f.addRow(dock.local_widget)
    dock.scene_table = QTableWidget(0, 6)
    dock.scene_table.setHorizontalHeaderLabels([tr("Date (UTC)"), tr("Pass"), tr("Orbit"), tr("Role"), tr("File"),
                                                tr("Product")])
    dock.scene_table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    dock.scene_table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
    dock.scene_table.setMinimumHeight(110)
    dock.scene_table.setMaximumHeight(190)
    f.addRow(dock.scene_table)
    dock.scene_summary = QLabel()
    dock.scene_summary.setWordWrap(True)
    f.addRow(dock.scene_summary)
    return data


def build_event(dock) -> QGroupBox:
    event = QGroupBox(tr("Event"))
    f = form(event)
    dock.event_time = QDateTimeEdit()
    dock.event_time.setTimeSpec(Qt.TimeSpec.UTC)
    dock.event_time.setDisplayFormat("yyyy-MM-dd HH:mm 'UTC'")
    dock.event_time.setCalendarPopup(True)
    dock.event_time.setMinimumDateTime(UNSET_EVENT)
    dock.event_time.setSpecialValueText(tr("not set: choose it"))
    dock.event_time.setDateTime(UNSET_EVENT)
    dock.event_time.setToolTip(tr("Date and time of the earthquake or storm, in UTC"))
    f.addRow(tr("Event time"), dock.event_time)
    dock.pre_days = spec_spin("pre_days")
    dock.pre_days.setSuffix(tr(" days before"))
    f.addRow(tr("Pre-event window"), dock.pre_days)
    dock.post_days = spec_spin("post_days")
    dock.post_days.setSuffix(tr(" days after"))
    f.addRow(tr("Post-event window"), dock.post_days)
    return event


def build_aoi(dock) -> QGroupBox:
    aoi = QGroupBox(tr("Area of interest"))
    f = form(aoi)
    dock.aoi_mode = combo()
    dock.aoi_mode.addItems([tr("Extent of the scenes"), tr("Map canvas extent"), tr("Drawn rectangle"),
                            tr("Polygon layer")])
    f.addRow(tr("Area"), dock.aoi_mode)
    dock.draw_button = QPushButton(tr("Draw rectangle"))
    f.addRow(dock.draw_button)
    dock.aoi_layer = QgsMapLayerComboBox()
    dock.aoi_layer.setFilters(QgsMapLayerProxyModel.Filter.PolygonLayer)
    dock.aoi_layer.setAllowEmptyLayer(True)
    dock.aoi_layer.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    dock.aoi_layer.setMinimumContentsLength(10)
    f.addRow(tr("Polygon layer"), dock.aoi_layer)
    dock.aoi_selected_only = QCheckBox(tr("Selected features only"))
    f.addRow(dock.aoi_selected_only)
    return aoi


def build_method(dock, default_model) -> QGroupBox:
    method = QGroupBox(tr("Method"))
    f = form(method)
    dock.method_combo = combo()
    dock.method_combo.addItem(tr("A_ratio (backscatter change)"), "a_ratio")
    dock.method_combo.addItem(tr("U-Net model (ONNX)"), "model")
    dock.method_combo.addItem(tr("Both, with an agreement layer"), "both")
    f.addRow(tr("Method"), dock.method_combo)
    dock.model_choice = combo()
    dock.model_choice.setToolTip(tr("The shipped model and the models Retrain made (in the plugin's models folder); "
                                    "each stays selectable"))
    f.addRow(tr("Model"), dock.model_choice)
    dock.model_file = file_widget(filter_text=tr("ONNX model (*.onnx)"),
                                  tooltip=tr("Any other ONNX model file (it joins the list above)"))
    if default_model.is_file():
        dock.model_file.setFilePath(str(default_model))
    f.addRow(tr("Model file"), dock.model_file)
    dock.model_choice_label = QLabel("")  # after a model run: which model ran on what, and why
    dock.model_choice_label.setWordWrap(True)
    f.addRow(dock.model_choice_label)
    dock.write_composite = QCheckBox(tr("Write the model's input"))
    dock.write_composite.setToolTip(tr("composite_<track>.tif: the model's input bands on the run grid, without "
                                       "gaps, to run the model in other tools (e.g. the Deepness plugin)"))
    f.addRow(dock.write_composite)
    return method


def build_advanced(dock) -> QgsCollapsibleGroupBox:
    adv = QgsCollapsibleGroupBox(tr("Advanced options"))
    adv.setCollapsed(True)
    f = form(adv)
    dock.polarisation = combo()
    dock.polarisation.addItems(list(SPECS["polarisation"].options()))
    dock.polarisation.setCurrentText(SPECS["polarisation"].default())
    dock.polarisation.setToolTip(tr(SPECS["polarisation"].help))
    f.addRow(tr(SPECS["polarisation"].label), dock.polarisation)
    dock.slope_min = spec_spin("slope_min_deg")
    f.addRow(tr(SPECS["slope_min_deg"].label), dock.slope_min)
    dock.use_curvature = QCheckBox(tr("Mask convex terrain"))
    dock.use_curvature.setToolTip(tr(SPECS["curv_min"].help))
    f.addRow(dock.use_curvature)
    dock.curv_min = spec_spin("curv_min")
    dock.curv_min.setValue(SPECS["curv_min"].default() if SPECS["curv_min"].default() is not None
                           else CURVATURE_SUGGESTED)
    f.addRow(tr("Minimum curvature"), dock.curv_min)
    for attr, name in (("speckle_sigma", "speckle_sigma_m"), ("pixel_size", "pixel_size"),
                       ("min_area", "min_area_m2"), ("heatmap_radius", "heatmap_radius_m")):
        setattr(dock, attr, spec_spin(name))
        f.addRow(tr(SPECS[name].label), getattr(dock, attr))
    dock.merge_orbits = QCheckBox(tr(SPECS["merge_orbits"].label))
    dock.merge_orbits.setToolTip(tr(SPECS["merge_orbits"].help))
    f.addRow(dock.merge_orbits)
    dock.water_mask = file_widget(filter_text=tr("Raster (*.tif *.tiff);;All files (*)"),
                                  tooltip=tr(SPECS["water_mask"].help))
    f.addRow(tr(SPECS["water_mask"].label), dock.water_mask)
    dock.out_dir = file_widget(QgsFileWidget.StorageMode.GetDirectory,
                               tooltip=tr("Each run writes a new sub-folder here"))
    f.addRow(tr("Output folder"), dock.out_dir)
    return adv


def build_threshold(dock, default_threshold: float) -> QGroupBox:
    thr = QGroupBox(tr("Threshold"))
    f = form(thr)
    dock.threshold_mode = combo()
    dock.threshold_mode.addItem(tr("Score (dB or probability)"), "value")
    dock.threshold_mode.addItem(tr("Percentile of valid pixels"), "percentile")
    dock.threshold_mode.addItem(tr("k × scene noise (σ)"), "ksigma")
    f.addRow(tr("Threshold as"), dock.threshold_mode)
    dock.threshold_slider = QSlider(Qt.Orientation.Horizontal)
    dock.threshold_slider.setRange(0, SLIDER_STEPS)
    dock.threshold_spin = QDoubleSpinBox()
    dock.threshold_spin.setRange(-100, 100)
    dock.threshold_spin.setDecimals(2)
    dock.threshold_spin.setValue(default_threshold)
    dock.threshold_spin.setSuffix(" dB")
    dock.threshold_spin.setSingleStep(0.05)
    row = QHBoxLayout()
    row.addWidget(dock.threshold_slider, 1)
    row.addWidget(dock.threshold_spin)
    f.addRow(row)
    dock.histogram_widget = HistogramWidget()
    f.addRow(dock.histogram_widget)
    dock.threshold_info = QLabel()
    dock.threshold_info.setWordWrap(True)
    f.addRow(dock.threshold_info)
    dock.update_button = QPushButton(tr("Update polygons"))
    dock.update_button.setToolTip(tr("Re-derive the candidate polygons at this threshold (keeps the old layer)"))
    f.addRow(dock.update_button)
    dock.suggest_button = QPushButton(tr("Suggest threshold"))
    dock.suggest_button.setToolTip(tr(
        "The threshold that best separates the polygons you accepted, edited or drew from the ones you rejected "
        "(area-weighted F1 of their mean score); shown as a dashed green line on the histogram"))
    f.addRow(dock.suggest_button)
    dock.suggest_info = InfoLabel()
    f.addRow(dock.suggest_info)
    dock.apply_suggestion_button = QPushButton(tr("Apply the suggestion"))
    dock.apply_suggestion_button.setToolTip(tr("Move the slider to the suggested threshold (then Update polygons)"))
    dock.apply_suggestion_button.setEnabled(False)
    f.addRow(dock.apply_suggestion_button)
    thr.setEnabled(False)
    return thr


def build_queue(dock, f: QFormLayout) -> None:
    """The review queue's rows (inside the review group)."""
    dock.queue_button = QPushButton(tr("Start the review queue"))
    dock.queue_button.setCheckable(True)
    dock.queue_button.setToolTip(tr(
        "Walk through the candidates, most useful to review first (closest to the threshold, larger first); shows "
        "the radar evidence. Keys while it is open, anywhere in QGIS: N next, P previous, A accept, X reject"))
    f.addRow(dock.queue_button)
    row = QHBoxLayout()
    dock.previous_button = QPushButton(tr("Previous"))
    dock.previous_button.setToolTip(tr("The previous candidate of the queue, reviewed or not (P)"))
    dock.next_button = QPushButton(tr("Next"))
    dock.next_button.setToolTip(tr("The next unreviewed candidate: zooms to it and selects it (N)"))
    row.addWidget(dock.previous_button)
    row.addWidget(dock.next_button)
    f.addRow(row)
    dock.queue_counter = InfoLabel()
    f.addRow(dock.queue_counter)
    dock.queue_info = InfoLabel()
    dock.queue_info.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    f.addRow(dock.queue_info)
    dock.evidence_combo = combo()
    dock.evidence_combo.setToolTip(tr(
        "The radar evidence under the polygons: R = pre-event, G = post-event, B = pre-event median backscatter "
        "(dB); magenta = backscatter dropped (a fresh scar?), green = rose, grey = no change"))
    dock.evidence_combo.setEnabled(False)
    f.addRow(tr("Radar evidence"), dock.evidence_combo)
    row = QHBoxLayout()
    dock.edit_button = QPushButton(tr("Edit outline"))
    dock.edit_button.setToolTip(tr("Edit the selected polygon with QGIS's vertex tool; it is marked edited"))
    dock.draw_button_missed = QPushButton(tr("Add missed"))
    dock.draw_button_missed.setCheckable(True)
    dock.draw_button_missed.setToolTip(tr(
        "Add missed landslide: draw its outline on the map (click the vertices, right-click to finish); it is added "
        "as accepted, method manual"))
    row.addWidget(dock.edit_button)
    row.addWidget(dock.draw_button_missed)
    f.addRow(row)


def build_review(dock) -> QGroupBox:
    review = QGroupBox(tr("Review and export"))
    f = form(review)
    build_queue(dock, f)
    row = QHBoxLayout()
    dock.accept_button = QPushButton(tr("Accept"))
    dock.accept_button.setToolTip(tr("Mark the selected candidate polygons as landslides (A in the review queue, "
                                     "Ctrl+Alt+Y in this panel); the queue moves on"))
    dock.reject_button = QPushButton(tr("Reject"))
    dock.reject_button.setToolTip(tr("Mark the selected candidate polygons as not landslides (X in the review "
                                     "queue, Ctrl+Alt+X in this panel); the queue moves on"))
    row.addWidget(dock.accept_button)
    row.addWidget(dock.reject_button)
    f.addRow(row)
    dock.inventory_file = file_widget(QgsFileWidget.StorageMode.SaveFile, tr("GeoPackage (*.gpkg)"),
                                      tr("The training inventory (created if missing, otherwise appended to)"))
    f.addRow(tr("Inventory"), dock.inventory_file)
    dock.reviewer = QLineEdit()
    dock.reviewer.setPlaceholderText(tr("your name"))
    f.addRow(tr("Reviewer"), dock.reviewer)
    dock.export_button = QPushButton(tr("Export reviewed polygons"))
    dock.export_button.setToolTip(tr(
        "Stores the reviewed polygons in the inventory: accepted and edited ones as landslides, rejected ones as "
        "reviewed non-landslides (negatives for training). Polygons still 'proposed' are not exported. Exporting "
        "again updates, never duplicates."))
    f.addRow(dock.export_button)
    review.setEnabled(False)
    return review


def build_retrain(dock) -> QgsCollapsibleGroupBox:
    """Retrain the model from this event's review (runs the training command with a Python that has PyTorch)."""
    box = QgsCollapsibleGroupBox(tr("Retrain the model"))
    f = form(box)
    dock.retrain_button = QPushButton(tr("Retrain from this review"))
    dock.retrain_button.setToolTip(tr(
        "Exports the review, fine-tunes the selected model on this event's reviewed polygons in a separate process "
        "(needs PyTorch; the plugin offers to install it), adds the new model to the model list beside the old one "
        "and detects again with it into a new run folder"))
    f.addRow(dock.retrain_button)
    dock.retrain_info = InfoLabel()
    dock.retrain_info.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    f.addRow(dock.retrain_info)
    dock.retrain_python = file_widget(tooltip=tr(
        "Optional: a Python that has PyTorch (a conda or venv python). Empty: QGIS's own Python with the PyTorch "
        "the plugin installs"))
    f.addRow(tr("Python with PyTorch"), dock.retrain_python)
    box.setEnabled(False)
    return box


def build_footer(dock) -> QWidget:
    """Detect / Cancel, progress and status: outside the scroll area, always visible."""
    footer = QWidget()
    layout = QVBoxLayout(footer)
    layout.setContentsMargins(6, 2, 6, 4)
    row = QHBoxLayout()
    dock.detect_button = QPushButton(tr("Detect landslides"))
    dock.detect_button.setDefault(True)
    dock.cancel_button = QPushButton(tr("Cancel"))
    dock.cancel_button.setEnabled(False)
    row.addWidget(dock.detect_button, 2)
    row.addWidget(dock.cancel_button, 1)
    layout.addLayout(row)
    dock.progress = QProgressBar()
    dock.progress.setRange(0, 100)
    layout.addWidget(dock.progress)
    dock.status_label = QLabel()
    dock.status_label.setWordWrap(True)
    dock.status_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    layout.addWidget(dock.status_label)
    return footer
