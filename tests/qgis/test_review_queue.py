"""The review queue driven like an analyst, headless: order, zoom, selection, attributes, counter,
accept / reject / edit / add missed, the keys, and the radar evidence layers it switches on."""

from __future__ import annotations

import json

import pytest
from qgis.PyQt.QtCore import Qt

from .conftest import wait_until
from .test_dock import dock, run_detection  # noqa: F401 (fixture)
from .test_dock_user import shown  # noqa: F401 (fixture)


@pytest.fixture
def reviewed_run(dock):  # noqa: F811
    run_detection(dock)
    assert dock.run_result is not None, dock.status_label.text()
    return dock


def expected_order(layer):
    from landslide_sar_plugin.core.review import review_order

    feats = list(layer.getFeatures())
    threshold = float(feats[0]["threshold"])
    order = review_order([{"mean_score": f["mean_score"], "area_m2": f["area_m2"]} for f in feats], threshold)
    return [feats[i].id() for i in order], threshold


def test_next_walks_the_candidates_closest_to_the_threshold_first(reviewed_run):
    dock = reviewed_run  # noqa: F811
    layer = dock.run_layers["candidates"]
    order, threshold = expected_order(layer)
    assert len(order) == dock.run_result.n_candidates > 20
    first = dock.queue_next()  # opens the queue at its first candidate
    assert dock.queue_is_open() and dock.queue.threshold == pytest.approx(threshold)
    assert dock.queue.order == order and first == order[0]
    assert [dock.queue_next() for _ in range(3)] == order[1:4]  # nothing reviewed: plain order
    assert dock.queue_previous() == order[2]
    assert dock.queue_counter.text() == f"0 of {len(order)} reviewed"


def test_a_step_zooms_to_the_polygon_with_a_margin_and_selects_it(reviewed_run):
    dock = reviewed_run  # noqa: F811
    layer = dock.run_layers["candidates"]
    fid = dock.queue_next()
    canvas = dock.iface.mapCanvas()
    box = layer.getFeature(fid).geometry().boundingBox()
    extent = canvas.extent()
    assert extent.contains(box) and extent.width() > box.width() + 2 * 299  # at least 300 m around it
    assert abs(extent.center().x() - box.center().x()) < 0.05 * extent.width()
    assert canvas.mapSettings().destinationCrs() == layer.crs()
    assert layer.selectedFeatureIds() == [fid]


def test_the_panel_shows_score_area_method_and_the_passes_that_fired(reviewed_run):
    from landslide_sar_plugin.core.review import pass_scores, passes_fired, per_pass_rasters

    dock = reviewed_run  # noqa: F811
    fid = dock.queue_next()
    feature = dock.run_layers["candidates"].getFeature(fid)
    text = dock.queue_info.text()
    assert f"Score {feature['mean_score']:.2f} dB (max {feature['max_score']:.2f} dB)" in text
    assert f"Area {feature['area_m2']:,.0f} m²" in text and "method a_ratio" in text
    files = dock.run_result.files
    scores = pass_scores(per_pass_rasters(files, "a_ratio"), json.loads(feature.geometry().asJson()),
                         files["background_change"])
    fired = passes_fired(scores, dock.queue.threshold)
    line = text.split("Passes that fired: ")[1]
    assert line.startswith(", ".join(p.lower() for p in fired) or "none"), line
    assert f"ascending {scores['ASCENDING']:.2f}" in line and f"descending {scores['DESCENDING']:.2f}" in line


def test_accept_and_reject_mark_the_candidate_and_move_to_the_next_unreviewed(reviewed_run):
    dock = reviewed_run  # noqa: F811
    layer = dock.run_layers["candidates"]
    order = expected_order(layer)[0]
    n = len(order)
    dock.queue_next()
    dock.accept_button.click()
    assert layer.getFeature(order[0])["status"] == "accepted" and dock.queue.current() == order[1]
    dock.reject_button.click()
    assert layer.getFeature(order[1])["status"] == "rejected" and dock.queue.current() == order[2]
    assert dock.queue_counter.text() == f"2 of {n} reviewed"
    assert dock.queue_previous() == order[1]  # back to fix a decision
    dock.accept_button.click()  # the re-decided one stays counted once, and the queue moves on
    assert layer.getFeature(order[1])["status"] == "accepted" and dock.queue.current() == order[2]
    assert dock.queue_counter.text() == f"2 of {n} reviewed"
    dock.queue_previous()
    dock.queue_previous()
    assert dock.queue.current() == order[0]
    assert dock.queue_next() == order[2]  # Next skips what is reviewed
    # A status set elsewhere (the attribute table) is counted too.
    layer.changeAttributeValue(order[5], layer.fields().indexFromName("status"), "rejected")
    assert dock.queue_counter.text() == f"3 of {n} reviewed"


def test_an_edited_outline_counts_as_reviewed_and_accept_keeps_it_edited(reviewed_run):
    from qgis.core import QgsGeometry

    dock = reviewed_run  # noqa: F811
    layer = dock.run_layers["candidates"]
    fid = dock.queue_next()
    dock.edit_button.click()
    assert layer.isEditable()
    geom = QgsGeometry(layer.getFeature(fid).geometry())
    geom.translate(5.0, 0.0)
    layer.changeGeometry(fid, geom)  # what the vertex tool does
    assert layer.getFeature(fid)["status"] == "edited"
    assert dock.queue_counter.text().startswith("1 of ")
    dock.accept_button.click()
    assert layer.getFeature(fid)["status"] == "edited" and dock.queue.current() != fid


def test_add_missed_landslide_draws_an_accepted_manual_polygon_with_a_uuid(reviewed_run):
    import uuid

    from landslide_sar_plugin.core.review import polygon_mean_scores
    from landslide_sar_plugin.gui.map_tools import PolygonDrawTool

    dock = reviewed_run  # noqa: F811
    layer = dock.run_layers["candidates"]
    n_before = layer.featureCount()
    centre = dock.iface.mapCanvas().extent().center() if dock.queue_next() else None
    dock.draw_button_missed.click()
    canvas = dock.iface.mapCanvas()
    tool = canvas.mapTool()
    assert isinstance(tool, PolygonDrawTool)
    from qgis.core import QgsPointXY

    x, y = centre.x(), centre.y()
    for dx, dy in ((0, 0), (100, 0), (100, 80), (0, 80)):
        tool.add_point(QgsPointXY(x + dx, y + dy))
    tool.remove_last()  # Backspace
    tool.add_point(QgsPointXY(x, y + 80))
    tool.finish()  # right-click
    assert canvas.mapTool() is not tool and not dock.draw_button_missed.isChecked()
    assert layer.featureCount() == n_before + 1
    added = [f for f in layer.getFeatures() if f["method"] == "manual"]
    assert len(added) == 1
    f = added[0]
    assert f["status"] == "accepted" and uuid.UUID(str(f["uuid"]))
    assert f["area_m2"] == pytest.approx(8000.0, rel=1e-6)
    expected = polygon_mean_scores(dock.run_result.files["a_ratio"], [json.loads(f.geometry().asJson())])[0][0]
    assert f["mean_score"] == pytest.approx(expected)
    assert f["event_id"] == dock.run_result.run_info["event_id"]
    assert dock.queue_counter.text().endswith("(+1 drawn)")


def test_fewer_than_three_vertices_or_esc_add_nothing(reviewed_run):
    from qgis.core import QgsPointXY
    from qgis.PyQt.QtGui import QKeyEvent

    dock = reviewed_run  # noqa: F811
    layer = dock.run_layers["candidates"]
    n = layer.featureCount()
    dock.draw_button_missed.click()
    tool = dock.iface.mapCanvas().mapTool()
    tool.add_point(QgsPointXY(0, 0))
    tool.add_point(QgsPointXY(10, 0))
    assert tool.finish() is None
    tool.keyPressEvent(QKeyEvent(QKeyEvent.Type.KeyPress, Qt.Key.Key_Escape, Qt.KeyboardModifier.NoModifier))
    assert not dock.draw_button_missed.isChecked() and layer.featureCount() == n


def test_evidence_layers_load_hidden_styled_and_the_queue_switches_them(reviewed_run):
    from qgis.core import QgsLayerTreeModel, QgsMultiBandColorRenderer, QgsProject

    dock = reviewed_run  # noqa: F811
    root = QgsProject.instance().layerTreeRoot()
    keys = sorted(k for k in dock.run_layers if k.startswith("evidence_"))
    assert keys == ["evidence_ascending", "evidence_descending"]
    group = dock.run_layers["group"]
    names = [n.name() for n in group.children()]
    assert names.index("Radar evidence, ascending (VH)") < names.index("A_ratio (dB)")  # above the score
    assert names.index("Candidate landslides") == 0
    for key in keys:
        layer = dock.run_layers[key]
        renderer = layer.renderer()
        assert isinstance(renderer, QgsMultiBandColorRenderer)
        assert (renderer.redBand(), renderer.greenBand(), renderer.blueBand()) == (1, 2, 1)
        ce = renderer.redContrastEnhancement()
        assert (ce.minimumValue(), ce.maximumValue()) == (-25.0, -5.0)  # the VH stretch, from the tag
        assert "magenta = backscatter dropped" in layer.abstract()
        assert not root.findLayer(layer.id()).isVisible()
    model = QgsLayerTreeModel(root)  # it owns the legend nodes: keep it while they are read
    legend = model.layerLegendNodes(root.findLayer(dock.run_layers[keys[0]].id()))
    assert [n.data(Qt.ItemDataRole.DisplayRole) for n in legend][:3] == [
        "backscatter dropped (fresh scar?)", "backscatter rose", "no change"]
    dock.queue_button.click()  # open the queue: the first pass's evidence is shown
    asc, desc = (root.findLayer(dock.run_layers[k].id()) for k in keys)
    assert asc.isVisible() and not desc.isVisible()
    dock.evidence_combo.setCurrentIndex(dock.evidence_combo.findData("evidence_descending"))
    assert desc.isVisible() and not asc.isVisible()
    dock.queue_button.click()  # close it: the evidence goes off again
    assert not asc.isVisible() and not desc.isVisible() and not dock.queue_is_open()


def test_the_queue_keys_work_while_the_map_has_the_focus(shown):  # noqa: F811
    from qgis.PyQt.QtTest import QTest

    dock = shown  # noqa: F811
    run_detection(dock)
    layer = dock.run_layers["candidates"]
    order = expected_order(layer)[0]
    canvas = dock.iface.mapCanvas()
    canvas.setFocus()
    QTest.keyClick(canvas, Qt.Key.Key_N)
    assert dock.queue is None  # closed queue: the letters are QGIS's, not ours
    dock.queue_button.click()
    assert dock.queue.current() == order[0]
    QTest.keyClick(canvas, Qt.Key.Key_N)
    assert dock.queue.current() == order[1]
    QTest.keyClick(canvas, Qt.Key.Key_A)
    assert layer.getFeature(order[1])["status"] == "accepted" and dock.queue.current() == order[2]
    QTest.keyClick(canvas, Qt.Key.Key_X)
    assert layer.getFeature(order[2])["status"] == "rejected"
    QTest.keyClick(canvas, Qt.Key.Key_P)
    assert dock.queue.current() == order[2]


def test_a_model_run_has_evidence_and_says_passes_n_a(dock):  # noqa: F811
    pytest.importorskip("onnxruntime")
    dock.method_combo.setCurrentIndex(dock.method_combo.findData("model"))
    run_detection(dock)
    assert dock.run_result is not None, dock.status_label.text()
    assert {"evidence_ascending", "evidence_descending"} <= set(dock.run_layers)
    dock.queue_next()
    assert "Passes that fired: n/a" in dock.queue_info.text() and "U-Net landslide_unet" in dock.queue_info.text()


def test_update_polygons_moves_the_queue_to_the_new_layer_and_clear_resets_it(reviewed_run, clean_project):
    dock = reviewed_run  # noqa: F811
    dock.queue_next()
    dock.threshold_spin.setValue(2.5)
    dock.update_button.click()
    wait_until(lambda: dock.task is None)
    new = dock.run_layers["candidates"]
    assert dock.queue.layer is new and dock.queue.current() == expected_order(new)[0][0]
    clean_project.clear()
    assert dock.queue is None and dock.queue_counter.text() == ""
    assert dock.queue_next() is None  # says why in the status line, no exception
    assert "Run a detection first" in dock.status_label.text()


def test_the_panel_keys_accept_and_reject_without_the_queue(shown):  # noqa: F811
    """Ctrl+Alt+Y / Ctrl+Alt+X in the panel (QGIS itself binds Ctrl+Alt+A and Ctrl+Alt+R)."""
    from qgis.PyQt.QtTest import QTest

    dock = shown  # noqa: F811
    run_detection(dock)
    layer = dock.run_layers["candidates"]
    first, second = expected_order(layer)[0][:2]
    mods = Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.AltModifier
    from qgis.PyQt.QtWidgets import QApplication

    dock.window().activateWindow()
    QApplication.setActiveWindow(dock.window())
    dock.accept_button.setFocus()  # the panel's own keys need the focus in the panel
    QApplication.processEvents()
    layer.selectByIds([first])
    QTest.keyClick(dock.accept_button, Qt.Key.Key_Y, mods)
    layer.selectByIds([second])
    QTest.keyClick(dock.accept_button, Qt.Key.Key_X, mods)
    assert (layer.getFeature(first)["status"], layer.getFeature(second)["status"]) == ("accepted", "rejected")
    assert not dock.queue_is_open()


def test_a_both_run_loads_the_evidence_once(dock):  # noqa: F811
    pytest.importorskip("onnxruntime")
    dock.method_combo.setCurrentIndex(dock.method_combo.findData("both"))
    run_detection(dock)
    assert dock.run_result is not None, dock.status_label.text()
    from qgis.core import QgsProject

    names = [layer.name() for layer in QgsProject.instance().mapLayers().values()]
    assert sorted(n for n in names if n.startswith("Radar evidence")) == [
        "Radar evidence, ascending (VH)", "Radar evidence, descending (VH)"]
    dock.queue_next()
    assert dock.queue_info.text().count("Passes that fired: ") == 1 and "n/a" not in dock.queue_info.text()
