"""The dock as a user meets it (issue 13): a narrow panel, removed layers, cancel, the event time, the map styles."""

from __future__ import annotations

import json
import sys
import warnings

import pytest

from .conftest import wait_until
from .test_dock import dock, run_detection  # noqa: F401 (fixture)


@pytest.fixture
def slot_errors(monkeypatch):
    """Exceptions raised in Qt slots (QGIS shows them in a modal dialog): recorded, so a test can assert none."""
    errors = []
    monkeypatch.setattr(sys, "excepthook", lambda *exc: errors.append(exc))
    return errors


@pytest.fixture
def shown(dock, fake_iface):  # noqa: F811
    """The dock docked in a shown main window, 300 px wide (what QGIS gives a new dock on a laptop)."""
    from qgis.PyQt.QtCore import Qt
    from qgis.PyQt.QtWidgets import QApplication

    window = fake_iface.mainWindow()
    window.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)
    window.resize(1200, 800)
    window.show()
    window.resizeDocks([dock], [300], Qt.Orientation.Horizontal)
    for _ in range(5):
        QApplication.processEvents()
    yield dock
    window.hide()


def _controls(dock):  # noqa: F811
    from qgis.gui import QgsFileWidget
    from qgis.PyQt.QtWidgets import QAbstractButton, QAbstractSpinBox, QComboBox, QLineEdit

    kinds = (QAbstractButton, QgsFileWidget, QLineEdit, QComboBox, QAbstractSpinBox)
    return [w for w in dock.widget().findChildren(kinds) if w.isVisibleTo(dock)
            and not isinstance(w.parent(), (QgsFileWidget, QAbstractSpinBox, QComboBox))]


def test_a_300_px_dock_shows_every_control(shown):
    from qgis.PyQt.QtCore import QPoint

    dock = shown  # noqa: F811
    viewport = dock.scroll.viewport()
    assert 280 <= dock.width() <= 320, dock.width()
    assert dock.scroll.widget().minimumSizeHint().width() <= viewport.width()  # nothing needs more width
    from qgis.gui import QgsCollapsibleGroupBox
    from qgis.PyQt.QtWidgets import QApplication

    for box in dock.findChildren(QgsCollapsibleGroupBox):  # the advanced options must fit as well
        box.setCollapsed(False)
    dock.threshold_group.setEnabled(True)
    QApplication.processEvents()
    clipped = []
    for widget in _controls(dock):
        if not dock.scroll.widget().isAncestorOf(widget):
            continue  # the footer (Detect, Cancel) is checked below
        left = widget.mapTo(dock.scroll.widget(), QPoint(0, 0)).x()
        if left < 0 or left + widget.width() > viewport.width():
            clipped.append((type(widget).__name__, widget.objectName() or getattr(widget, "text", lambda: "")(),
                            left, widget.width()))
    assert clipped == [], clipped
    wide = [label.text()[:60] for label in dock.scroll.widget().findChildren(type(dock.scene_summary))
            if label.isVisibleTo(dock) and label.mapTo(dock.scroll.widget(), QPoint(0, 0)).x() + label.width()
            > viewport.width()]
    assert wide == []  # labels wrap instead of being cut


def test_detect_stays_reachable_after_use_the_sample(shown):
    dock = shown  # noqa: F811
    dock.use_sample_scene()
    assert not dock.detect_button.visibleRegion().isEmpty()  # in the footer, outside the scroll area
    assert not dock.scroll.isAncestorOf(dock.detect_button)


def test_after_a_run_the_threshold_group_is_scrolled_into_view(shown):
    dock = shown  # noqa: F811
    run_detection(dock)
    assert dock.run_result is not None, dock.status_label.text()
    from qgis.PyQt.QtWidgets import QApplication

    QApplication.processEvents()
    assert not dock.threshold_group.visibleRegion().isEmpty()
    # Its top edge is in view (not only its last pixel row): the slider is the first thing the user sees.
    top = dock.threshold_group.mapTo(dock.scroll.viewport(), dock.threshold_group.rect().topLeft()).y()
    bar = dock.scroll.verticalScrollBar()
    assert 0 <= top and (top < 60 or bar.value() == bar.maximum())  # at the top, or scrolled as far as it goes
    assert bar.value() > 0


# --------------------------------------------------------------------------- removed layers, Project > New


def test_a_removed_layer_gives_a_message_not_an_error(dock, clean_project, slot_errors, tmp_path):  # noqa: F811
    run_detection(dock)
    ratio, candidates = dock.run_layers["a_ratio"], dock.run_layers["candidates"]
    layer = candidates
    layer.selectByIds([next(layer.getFeatures()).id()])
    clean_project.removeMapLayer(ratio.id())
    dock.threshold_slider.setValue(dock.threshold_slider.value() + 50)  # through the signal, as a user drags
    assert "was removed from the project" in dock.status_label.text()
    clean_project.removeMapLayer(candidates.id())
    dock.accept_button.click()
    assert "was removed from the project" in dock.status_label.text()
    dock.inventory_file.setFilePath(str(tmp_path / "inv.gpkg"))
    dock.export_button.click()
    assert "was removed from the project" in dock.status_label.text() and not (tmp_path / "inv.gpkg").exists()
    dock.update_button.click()  # re-derives the polygons into a layer of their own
    wait_until(lambda: dock.task is None)
    assert dock.run_layers["candidates"].featureCount() > 0
    assert slot_errors == []


def test_project_new_gives_a_message_not_an_error(dock, clean_project, slot_errors):  # noqa: F811
    run_detection(dock)
    out_dir = dock.run_result.out_dir
    clean_project.clear()  # Project > New
    assert "project was cleared" in dock.status_label.text() and str(out_dir) in dock.status_label.text()
    assert not dock.threshold_group.isEnabled() and not dock.review_group.isEnabled()
    dock.threshold_slider.setValue(10)
    dock.set_selected_status("accepted")
    dock.export_to_inventory()
    dock.start_update_polygons()
    assert dock.task is None and slot_errors == []


# --------------------------------------------------------------------------- cancel, event time


def test_a_cancelled_run_leaves_no_run_folder_and_no_task_failed(dock, tmp_path):  # noqa: F811
    from qgis.core import QgsTask

    dock.detect_button.click()
    task = dock.task
    wait_until(lambda: task.status() == QgsTask.TaskStatus.Running and task.progress() > 1, 60)
    dock.cancel_button.click()
    wait_until(lambda: dock.task is None)
    assert "cancelled" in dock.status_label.text()
    assert task.status() == QgsTask.TaskStatus.Complete  # QGIS shows no "Task failed" for a user's cancel
    runs = tmp_path / "runs"
    assert not runs.exists() or list(runs.iterdir()) == []


def test_the_event_time_starts_unset_and_a_folder_first_is_no_error(fake_iface, clean_project):
    from qgis.core import QgsSettings

    from landslide_sar_plugin.gui.dock import SAMPLE_DIR, SETTINGS_PREFIX, LandslideDock

    settings = QgsSettings()
    for key in settings.allKeys():
        if key.startswith(SETTINGS_PREFIX):
            settings.remove(key)
    d = LandslideDock(fake_iface)
    try:
        assert not d.event_is_set() and d.event_time.text() == "not set: choose it"
        d.scene_dir.setFilePath(str(SAMPLE_DIR / "scenes"))
        assert d.scene_table.rowCount() == 14
        assert d.scene_summary.styleSheet() == ""  # not red
        assert "Set the event time" in d.scene_summary.text() and "2018-07-08 to 2018-09-21" in \
            d.scene_summary.text()
        d.detect_button.click()
        assert d.task is None and "Set the event time" in d.status_label.text()
    finally:
        d.cleanup()
        d.deleteLater()


# --------------------------------------------------------------------------- styles


def test_the_map_styles_read_on_any_canvas(dock, clean_project):  # noqa: F811
    from qgis.core import QgsPalettedRasterRenderer, QgsSingleBandPseudoColorRenderer

    run_detection(dock)
    layers = dock.run_layers
    ratio = layers["a_ratio"].renderer()
    labels = [i.label for i in ratio.shader().rasterShaderFunction().colorRampItemList()]
    thr = f"{dock.threshold_spin.value():.2f}"  # the run's threshold (noise-scaled by default), as the map shows it
    assert abs(float(thr) - dock.run_result.threshold) < 0.01
    assert f"threshold {thr} dB" in labels and any("no change" in t for t in labels)
    legend = [text for text, _ in layers["a_ratio"].legendSymbologyItems()]  # what the Layers panel shows
    assert f"threshold {thr} dB" in legend and f"> {thr} dB: candidate" in legend
    assert any("candidate" in t for t in labels)
    assert ratio.nodataColor().alpha() > 0 and ratio.nodataColor().name() != "#ffffff"  # masked = grey
    for key in ("heatmap", "counts", "mask"):
        assert isinstance(layers[key].renderer(), QgsSingleBandPseudoColorRenderer), key
    assert isinstance(layers["exceedance"].renderer(), QgsPalettedRasterRenderer)
    mask_labels = [i.label for i in layers["mask"].renderer().shader().rasterShaderFunction().colorRampItemList()]
    assert {"kept", "slope below the minimum", "outside the area of interest", "water"} <= set(mask_labels)


def test_the_probability_ramp_is_sequential(dock, tmp_path):  # noqa: F811
    pytest.importorskip("onnxruntime")
    from tests.unit.test_inference import change_model

    dock.method_combo.setCurrentIndex(dock.method_combo.findData("model"))
    dock.model_file.setFilePath(str(change_model(tmp_path / "change.onnx")))
    run_detection(dock)
    items = dock.run_layers["probability"].renderer().shader().rasterShaderFunction().colorRampItemList()
    zero = items[0].color
    assert items[0].value == 0 and zero.blue() < zero.red() and zero.alpha() < 128  # pale, not a blue flood
    lightness = [i.color.lightness() for i in items[:3]]
    assert lightness == sorted(lightness, reverse=True)  # darker towards the threshold


def test_both_methods_put_the_agreement_on_top(dock, tmp_path, clean_project):  # noqa: F811
    pytest.importorskip("onnxruntime")
    from tests.unit.test_inference import change_model

    dock.method_combo.setCurrentIndex(dock.method_combo.findData("both"))
    dock.model_file.setFilePath(str(change_model(tmp_path / "change.onnx")))
    run_detection(dock)
    root = clean_project.layerTreeRoot()
    top = root.children()[0]
    assert top.name().startswith("Landslides A_ratio + U-Net · event_")
    first = top.children()[0]
    assert first.name() == "Agreement A_ratio / model" and first.isVisible()
    probability = root.findLayer(dock.run_layers["probability"].id())
    assert not probability.isVisible()  # it would hide everything below it
    assert root.findLayer(dock.run_layers["a_ratio"].id()).isVisible()


# --------------------------------------------------------------------------- threshold modes


def test_the_k_sigma_mode_works_when_run_json_has_the_noise_level(dock):  # noqa: F811
    run_detection(dock)
    mode = dock.threshold_mode
    ksigma = mode.findData("ksigma")
    assert mode.model().item(ksigma).isEnabled()  # every A_ratio run records its noise level
    run_json = dock.run_result.out_dir / "run.json"
    run = json.loads(run_json.read_text())
    assert run["noise"]["sigma_db"] > 0
    run.pop("noise")  # a run of an older version: no noise level, so no k x sigma mode
    run_json.write_text(json.dumps(run))
    dock.reload_run_record()
    assert not mode.model().item(ksigma).isEnabled()
    run.update(threshold_db=4.2, noise={"center_db": 0.05, "sigma_db": 1.4})
    run_json.write_text(json.dumps(run))
    dock.reload_run_record()
    assert mode.model().item(ksigma).isEnabled()
    mode.setCurrentIndex(ksigma)
    assert dock.threshold_spin.suffix() == " σ"
    dock.threshold_spin.setValue(3.0)
    shown = dock.run_layers["a_ratio"].customProperty("landslide_sar/threshold")
    assert shown == pytest.approx(0.05 + 3.0 * 1.4)
    info = dock.threshold_info.text()
    assert "4.25 dB" in info and "k = 3.0 σ (σ = 1.40 dB)" in info and "= p" in info
    assert dock.histogram_widget.label.startswith("4.25 dB = p")
    mode.setCurrentIndex(mode.findData("value"))  # back to dB: the map keeps its threshold
    assert dock.threshold_spin.value() == pytest.approx(4.25, abs=0.01)
    assert "k = 3.0 σ" in dock.threshold_info.text()


def test_the_percentile_mode_shows_db_too(dock):  # noqa: F811
    run_detection(dock)
    dock.threshold_mode.setCurrentIndex(dock.threshold_mode.findData("percentile"))
    dock.threshold_spin.setValue(99.0)
    assert "dB = p99.0" in dock.threshold_info.text()


# --------------------------------------------------------------------------- export label, log, warnings


def test_the_export_button_says_rejected_polygons_are_stored_as_negatives(dock):  # noqa: F811
    assert dock.export_button.text() == "Export reviewed polygons"
    tip = dock.export_button.toolTip()
    assert "rejected ones as reviewed non-landslides (negatives" in tip and "accepted and edited" in tip


def test_a_traceback_goes_to_the_debug_log_not_the_user_log(dock):  # noqa: F811
    from qgis.core import QgsApplication

    from landslide_sar_plugin.gui.log import LOG_TAG, debug_log_path

    seen = []
    log = QgsApplication.messageLog()
    log.messageReceived.connect(lambda message, tag, level: seen.append(message) if tag == LOG_TAG else None)
    dock.show_error("Detection failed: the DEM does not cover the scenes",
                    'Traceback (most recent call last):\n  File "x.py", line 1\nValueError: boom')
    assert len(seen) == 1 and "Traceback" not in seen[0] and str(debug_log_path()) in seen[0]
    assert "ValueError: boom" in debug_log_path().read_text(encoding="utf-8")


def test_a_run_through_the_dock_logs_no_warning_per_polygon(dock):  # noqa: F811
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run_detection(dock)
    n = dock.run_result.n_candidates
    ours = [w for w in caught if issubclass(w.category, (DeprecationWarning, PendingDeprecationWarning))]
    assert n > 50 and len(ours) < n, f"{len(ours)} deprecation warnings for {n} polygons"
