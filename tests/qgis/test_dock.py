"""The dock driven like a user, headless: sample scene, Detect, threshold slider, cancel, update, review."""

from __future__ import annotations

import json
import os
import re

import pytest
from qgis.PyQt.QtCore import QDateTime, Qt

from .conftest import wait_until


@pytest.fixture
def dock(fake_iface, clean_project, tmp_path):
    from qgis.core import QgsSettings

    from landslide_sar_plugin.gui.dock import SETTINGS_PREFIX, LandslideDock

    settings = QgsSettings()  # each test starts from the defaults, not from the previous test's choices
    for key in settings.allKeys():
        if key.startswith(SETTINGS_PREFIX):
            settings.remove(key)
    d = LandslideDock(fake_iface)
    d.ee_cache_dir = str(tmp_path / "ee_cache")
    d.use_sample_scene()
    d.out_dir.setFilePath(str(tmp_path / "runs"))
    yield d
    if d.task is not None:
        d.task.cancel()
        wait_until(lambda: d.task is None, 60)
    d.deleteLater()


def run_detection(dock):
    dock.detect_button.click()
    assert dock.task is not None
    wait_until(lambda: dock.task is None)


def test_scene_table_shows_roles_per_event_window(dock):
    roles = [dock.scene_table.item(r, 3).text() for r in range(dock.scene_table.rowCount())]
    assert dock.scene_table.rowCount() == 14
    assert roles.count("pre") == 10 and roles.count("post") == 4
    assert "SYNTHETIC" in dock.scene_summary.text()
    dock.post_days.setValue(2)  # event 09-05 18:08; only the descending 09-06 20:12 scene is within 2 days
    roles = [dock.scene_table.item(r, 3).text() for r in range(dock.scene_table.rowCount())]
    assert roles.count("post") == 1 and roles.count("unused") == 3


def test_detect_loads_styled_layers_in_a_group_named_after_method_event_and_time(dock):
    from qgis.core import QgsApplication, QgsSingleBandPseudoColorRenderer

    dock.detect_button.click()
    first_task = dock.task
    dock.detect_button.click()  # a second click while running must not start a second run
    assert dock.task is first_task and not dock.detect_button.isEnabled()
    assert QgsApplication.taskManager().countActiveTasks() <= 1
    wait_until(lambda: dock.task is None)
    assert dock.run_result is not None, dock.status_label.text()
    group = dock.run_layers["group"]
    # Method, event and run time: two runs of one event get two names (they all read "Landslides <event>").
    assert re.fullmatch(r"Landslides A_ratio · event_20180905T1807 · run \d{4}-\d\d-\d\d \d\d:\d\d:\d\d "
                        r"\(SYNTHETIC input\)", group.name()), group.name()
    cand = dock.run_layers["candidates"]
    assert cand.featureCount() == dock.run_result.n_candidates > 20
    ratio = dock.run_layers["a_ratio"]
    renderer = ratio.renderer()
    assert isinstance(renderer, QgsSingleBandPseudoColorRenderer)
    items = renderer.shader().rasterShaderFunction().colorRampItemList()
    assert items[2].value == pytest.approx(dock.run_result.threshold, abs=0.005)  # the run's threshold, in dB
    assert not group.findLayer(dock.run_layers["heatmap"].id()).isVisible()
    assert not group.findLayer(dock.run_layers["counts"].id()).isVisible()
    assert dock.threshold_group.isEnabled() and dock.review_group.isEnabled()
    assert dock.progress.value() == 100


def test_slider_restyles_the_map_without_recomputing(dock):
    from qgis.core import QgsApplication

    run_detection(dock)
    out = dock.run_result.out_dir
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    ratio = dock.run_layers["a_ratio"]
    dock.threshold_slider.setValue(dock.threshold_slider.maximum() * 3 // 4)
    value = dock.threshold_spin.value()
    assert value > 2.0
    assert ratio.customProperty("landslide_sar/threshold") == pytest.approx(value)
    items = ratio.renderer().shader().rasterShaderFunction().colorRampItemList()
    assert items[2].value == pytest.approx(value)
    assert dock.task is None and QgsApplication.taskManager().countActiveTasks() == 0
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before
    assert dock.histogram_widget.threshold == pytest.approx(value)
    assert "of valid pixels above" in dock.threshold_info.text()


def test_cancel_leaves_no_layer_and_no_output(dock, tmp_path, clean_project):
    dock.detect_button.click()
    dock.cancel_button.click()
    wait_until(lambda: dock.task is None)
    assert dock.run_result is None
    assert clean_project.mapLayers() == {}
    runs = tmp_path / "runs"
    leftovers = [p for p in runs.rglob("*") if p.is_file()] if runs.exists() else []
    assert leftovers == []
    assert "cancelled" in dock.status_label.text().lower()


def test_update_polygons_keeps_the_previous_layer(dock):
    run_detection(dock)
    first = dock.run_layers["candidates"]
    n_first = first.featureCount()
    dock.threshold_spin.setValue(2.5)
    dock.update_button.click()
    wait_until(lambda: dock.task is None)
    second = dock.run_layers["candidates"]
    assert second is not first and 0 < second.featureCount() < n_first
    assert first.name().endswith("(previous)")
    assert os.path.exists(first.source().split("|")[0])


def test_accept_reject_and_geometry_edit_set_the_status(dock):
    from qgis.core import QgsGeometry, QgsPointXY

    run_detection(dock)
    layer = dock.run_layers["candidates"]
    fids = sorted(f.id() for f in layer.getFeatures())[:3]
    layer.selectByIds(fids[:2])
    assert dock.set_selected_status("accepted") == 2
    layer.selectByIds([fids[2]])
    dock.set_selected_status("rejected")
    # Moving a vertex marks the polygon as edited (the analyst corrected it).
    geom = layer.getFeature(fids[0]).geometry()
    moved = QgsGeometry(geom)
    vertex = moved.vertexAt(0)
    moved.moveVertex(vertex.x() + 5, vertex.y() + 5, 0)
    moved.moveVertex(vertex.x() + 5, vertex.y() + 5, moved.constGet().nCoordinates() - 1)
    assert layer.changeGeometry(fids[0], moved)
    assert layer.commitChanges(), layer.commitErrors()
    status = {f.id(): f["status"] for f in layer.getFeatures()}
    assert [status[f] for f in fids] == ["edited", "accepted", "rejected"]
    assert QgsPointXY(vertex.x(), vertex.y()) is not None


def test_export_twice_is_idempotent_and_carries_provenance(dock, tmp_path):
    import sqlite3

    from qgis.core import QgsFeature, QgsGeometry

    run_detection(dock)
    layer = dock.run_layers["candidates"]
    fids = sorted(f.id() for f in layer.getFeatures())[:4]
    layer.selectByIds(fids[:3])
    dock.set_selected_status("accepted")
    layer.selectByIds([fids[3]])
    dock.set_selected_status("rejected")
    # The analyst also draws one landslide the detector missed.
    drawn = QgsFeature(layer.fields())
    for i in range(layer.fields().count()):
        if layer.fields().at(i).name() != "fid":
            drawn.setAttribute(i, layer.defaultValue(i))
    drawn.setGeometry(QgsGeometry.fromWkt("POLYGON((559000 4749000, 559100 4749000, 559100 4749100, "
                                          "559000 4749100, 559000 4749000))"))
    assert layer.addFeature(drawn)
    inventory = tmp_path / "inventory.gpkg"
    dock.inventory_file.setFilePath(str(inventory))
    dock.reviewer.setText("analyst A")
    first = dock.export_to_inventory()
    assert (first.added, first.updated) == (5, 0), first.message()   # 3 accepted + 1 rejected + 1 drawn
    second = dock.export_to_inventory()
    assert (second.added, second.updated, second.unchanged) == (0, 0, 5)
    with sqlite3.connect(inventory) as conn:
        rows = conn.execute("SELECT status, source, reviewer, event_id, scene_ids, method FROM landslides").fetchall()
    assert len(rows) == 5
    assert sorted(r[0] for r in rows) == ["accepted"] * 4 + ["rejected"]
    assert {r[2] for r in rows} == {"analyst A"} and {r[3] for r in rows} == {"event_20180905T1807"}
    assert all(r[4] and "ASC_R68" in r[4] for r in rows)
    assert sorted(r[5] for r in rows).count("manual") == 1
    assert "5 added" in dock.status_label.text() or "added" in dock.status_label.text()


def test_model_method_slider_works_on_the_probability(dock, tmp_path):
    pytest.importorskip("onnxruntime")
    from tests.unit.test_inference import change_model

    model = change_model(tmp_path / "change.onnx")
    dock.method_combo.setCurrentIndex(dock.method_combo.findData("model"))
    dock.model_file.setFilePath(str(model))
    run_detection(dock)
    assert dock.run_result is not None, dock.status_label.text()
    assert dock.score_key == "probability" and "probability" in dock.run_layers
    assert dock.threshold_spin.minimum() == 0.0 and dock.threshold_spin.maximum() == 1.0
    dock.threshold_spin.setValue(0.8)
    layer = dock.run_layers["probability"]
    assert layer.customProperty("landslide_sar/threshold") == pytest.approx(0.8)
    run = json.loads((dock.run_result.out_dir / "run.json").read_text())
    assert run["method"] == "model" and len(run["model_sha256"]) == 64


def test_both_methods_load_an_agreement_layer(dock, tmp_path, clean_project):
    pytest.importorskip("onnxruntime")
    from tests.unit.test_inference import change_model

    dock.method_combo.setCurrentIndex(dock.method_combo.findData("both"))
    dock.model_file.setFilePath(str(change_model(tmp_path / "change.onnx")))
    run_detection(dock)
    assert dock.run_result is not None, dock.status_label.text()
    names = sorted(layer.name() for layer in clean_project.mapLayers().values())
    assert "Agreement A_ratio / model" in names and "Landslide probability" in names and "A_ratio (dB)" in names
    assert dock.score_key == "a_ratio"


def test_earthengine_source_lists_and_detects_with_a_fake_transport(dock, offline_ee, tmp_path):
    from qgis.core import QgsCoordinateReferenceSystem, QgsRectangle

    from tests.unit.test_earthengine import AOI, EVENT, FakeTransport

    fake = FakeTransport()
    dock.ee_transport_factory = lambda: fake
    dock.source_combo.setCurrentIndex(dock.source_combo.findData("earthengine"))
    assert dock.ee_widget.isVisibleTo(dock) and not dock.local_widget.isVisibleTo(dock)
    dock.detect_button.click()  # no AOI and no project yet: refused with a message, no task
    assert dock.task is None and "area of interest" in dock.status_label.text()
    x0, y0, x1, y1, crs = AOI.split(",")
    dock.set_drawn_extent(QgsRectangle(float(x0), float(y0), float(x1), float(y1)),
                          QgsCoordinateReferenceSystem(crs))
    dock.event_time.setDateTime(QDateTime.fromSecsSinceEpoch(int(EVENT.timestamp()), Qt.TimeSpec.UTC))
    dock.pre_days.setValue(40)
    dock.post_days.setValue(20)
    dock.ee_project.setText("my-project")
    dock.ee_list_button.click()
    wait_until(lambda: dock.task is None)
    roles = [dock.scene_table.item(r, 3).text() for r in range(dock.scene_table.rowCount())]
    assert dock.scene_table.rowCount() == 8 and roles.count("pre") == 5 and roles.count("post") == 2
    dock.detect_button.click()
    wait_until(lambda: dock.task is None)
    assert dock.run_result is not None, dock.status_label.text()
    assert dock.run_result.n_candidates >= 1 and "a_ratio" in dock.run_layers
    assert fake.pixel_calls, "the fake transport served the downloads"
    assert list((tmp_path / "ee_cache").rglob("*")), "downloads were cached in the test's folder"


def test_percentile_mode_estimates_on_the_map_and_updates_with_the_exact_value(dock):
    import numpy as np
    import rasterio

    run_detection(dock)
    with rasterio.open(dock.run_result.files["a_ratio"]) as src:
        ratio = src.read(1)
    valid = ratio[np.isfinite(ratio)]
    dock.threshold_mode.setCurrentIndex(dock.threshold_mode.findData("percentile"))
    assert dock.threshold_spin.suffix() == " %" and dock.threshold_spin.maximum() == pytest.approx(99.99)
    dock.threshold_spin.setValue(99.0)
    bin_width = float(dock.histogram.edges[1] - dock.histogram.edges[0])
    shown = dock.run_layers["a_ratio"].customProperty("landslide_sar/threshold")
    assert abs(shown - np.percentile(valid, 99.0)) <= bin_width
    dock.update_button.click()
    wait_until(lambda: dock.task is None)
    info = json.loads(next(dock.run_result.out_dir.glob("p99_00_candidates.json")).read_text())
    assert info["threshold"] == pytest.approx(float(np.percentile(valid, 99.0)), abs=1e-5)
    assert info["threshold_rule"].startswith("percentile p99")
    dock.threshold_mode.setCurrentIndex(dock.threshold_mode.findData("value"))  # back to dB, same map threshold
    assert dock.threshold_spin.value() == pytest.approx(shown, abs=0.01)
