"""Every "Landslide SAR" Processing algorithm through processing.run, the modeler, and qgis_process."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "landslide_sar_plugin"
SAMPLE = ROOT / PACKAGE / "sample_data"
EVENT_TIME = json.loads((SAMPLE / "event.json").read_text())["config"]["event_time"]
# A 1.5 km x 1.5 km corner of the 5.4 km sample scene keeps every run well under a second.
AOI = "559000,560500,4748000,4749500 [EPSG:32654]"  # QGIS extent text: xmin,xmax,ymin,ymax [CRS]
# Debian's /usr/bin/qgis_process wrapper sources /etc/default/qgis, whose QGIS_OPTS=--noversioncheck
# only the desktop application accepts ("Command --noversioncheck not known!"); call the binary itself.
QGIS_PROCESS = shutil.which("qgis_process.bin") or shutil.which("qgis_process")


def release_plugin_dir(tmp_path) -> Path:
    """A QGIS plugin folder holding the unpacked release zip (metadata.txt lives at the repository root and
    only the packager puts it into the plugin folder, so a bare symlink to the source package is not found)."""
    import importlib.util
    import zipfile

    spec = importlib.util.spec_from_file_location("package_plugin", ROOT / ".ci" / "package_plugin.py")
    packager = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(packager)
    plugins = tmp_path / "plugins"
    with zipfile.ZipFile(packager.build(tmp_path / "dist")) as zf:
        zf.extractall(plugins)
    assert (plugins / PACKAGE / "metadata.txt").is_file()
    return plugins


@pytest.fixture(scope="module")
def no_pam_sidecars():
    """QGIS's GDAL would write statistics into <file>.aux.xml next to the shipped sample rasters; don't."""
    saved = os.environ.get("GDAL_PAM_ENABLED")
    os.environ["GDAL_PAM_ENABLED"] = "NO"
    yield
    if saved is None:
        os.environ.pop("GDAL_PAM_ENABLED", None)
    else:
        os.environ["GDAL_PAM_ENABLED"] = saved


@pytest.fixture(scope="module")
def provider(qgis_app, no_pam_sidecars):
    from qgis.core import QgsApplication

    from landslide_sar_plugin.processing.provider import LandslideProvider

    registry = QgsApplication.processingRegistry()
    added = None
    if registry.providerById("landslidesar") is None:
        added = LandslideProvider()
        assert registry.addProvider(added)
    yield registry.providerById("landslidesar")
    if added is not None:
        registry.removeProvider(added)


class RecordingFeedback:
    """A QgsProcessingFeedback that remembers progress values and messages."""

    def __new__(cls):
        from qgis.core import QgsProcessingFeedback

        class _Feedback(QgsProcessingFeedback):
            def __init__(self):
                super().__init__()
                self.values, self.texts = [], []
                self.progressChanged.connect(self.values.append)

            def setProgressText(self, text):  # noqa: N802
                self.texts.append(text)
                super().setProgressText(text)

        return _Feedback()


def detect_params(out_dir, **extra):
    params = {
        "SCENES": str(SAMPLE / "scenes"),
        "DEM": str(SAMPLE / "dem.tif"),
        "EVENT_TIME": EVENT_TIME,
        "AOI": AOI,
        "THRESHOLD_MODE": 1,  # fixed (0 is the default, noise-scaled rule)
        "THRESHOLD": 1.25,
        "MIN_AREA": 500,
        "BLOCK_SIZE": 256,
        "OUTPUT_FOLDER": str(out_dir),
    }
    params.update(extra)
    return params


@pytest.fixture(scope="module")
def detect_run(provider, tmp_path_factory):
    import processing

    out = tmp_path_factory.mktemp("detect") / "run"
    feedback = RecordingFeedback()
    result = processing.run("landslidesar:detect_a_ratio", detect_params(out), feedback=feedback)
    return result, feedback, out


def test_provider_lists_the_seven_algorithms_in_one_group(provider):
    ids = sorted(a.id() for a in provider.algorithms())
    assert ids == ["landslidesar:candidates_from_ratio", "landslidesar:detect_a_ratio",
                   "landslidesar:detect_earthengine", "landslidesar:detect_model", "landslidesar:evaluate",
                   "landslidesar:export_inventory", "landslidesar:retrain_model"]
    for alg in provider.algorithms():
        assert alg.group() == "Landslide detection" and alg.groupId() == "landslidedetection"
        assert alg.shortHelpString() and alg.displayName()
        assert alg.outputDefinitions(), alg.id()


def test_detect_writes_rasters_and_candidates_that_load_in_qgis(detect_run):
    from qgis.core import QgsRasterLayer, QgsVectorLayer

    result, feedback, out = detect_run
    assert result["N_CANDIDATES"] > 0
    assert result["THRESHOLD_DB"] == pytest.approx(1.25)
    ratio = QgsRasterLayer(result["A_RATIO"], "a_ratio")
    assert ratio.isValid() and ratio.crs().authid() == "EPSG:32654"
    assert ratio.width() == 150 and ratio.height() == 150
    # QGIS's GDAL reads the pixels the engine's (rasterio's) GDAL wrote, compression included.
    import rasterio
    from qgis.core import QgsPointXY

    with rasterio.open(result["A_RATIO"]) as src:
        data = src.read(1)
        row, col = next(zip(*(data > 1.0).nonzero()))
        x, y = src.xy(row, col)
    value, ok = ratio.dataProvider().sample(QgsPointXY(x, y), 1)
    assert ok and value == pytest.approx(float(data[row, col]), abs=1e-4)
    assert QgsRasterLayer(result["HEATMAP"], "heatmap").isValid()
    cands = QgsVectorLayer(result["CANDIDATES"], "candidates", "ogr")
    assert cands.isValid() and cands.featureCount() == result["N_CANDIDATES"]
    assert {f["status"] for f in cands.getFeatures()} == {"proposed"}
    run = json.loads(Path(result["RUN_JSON"]).read_text())
    assert run["n_candidates"] == result["N_CANDIDATES"] and run["synthetic_input"] is True
    assert Path(result["OUTPUT_FOLDER"]) == out
    # Core progress reached the Processing feedback, with its messages.
    assert feedback.values and max(feedback.values) == pytest.approx(100.0)
    assert any("catalogue" in t for t in feedback.texts)


def test_detect_percentile_rule_and_core_errors(provider, tmp_path):
    import processing
    from qgis.core import QgsProcessingException

    res = processing.run("landslidesar:detect_a_ratio",
                         detect_params(tmp_path / "p", THRESHOLD_MODE=2, PERCENTILE=98.0, POLARISATION=3))
    run = json.loads(Path(res["RUN_JSON"]).read_text())
    assert run["threshold_rule"].startswith("percentile") and res["N_CANDIDATES"] > 0
    with pytest.raises(QgsProcessingException, match="time"):
        processing.run("landslidesar:detect_a_ratio", detect_params(tmp_path / "bad", EVENT_TIME="yesterday"))
    with pytest.raises(QgsProcessingException, match="no GeoTIFF"):
        processing.run("landslidesar:detect_a_ratio", detect_params(tmp_path / "bad2", SCENES=str(tmp_path)))


def test_detect_cancelled_leaves_no_output(provider, tmp_path):
    import processing
    from qgis.core import QgsProcessingException, QgsProcessingFeedback

    feedback = QgsProcessingFeedback()
    feedback.cancel()
    with pytest.raises(QgsProcessingException, match="[Cc]ancelled"):
        processing.run("landslidesar:detect_a_ratio", detect_params(tmp_path / "run"), feedback=feedback)
    left = [p for p in (tmp_path / "run").rglob("*")] if (tmp_path / "run").exists() else []
    assert left == []


def test_candidates_from_a_ratio_raster(detect_run, tmp_path):
    import processing
    from qgis.core import QgsVectorLayer

    result, _, _ = detect_run
    res = processing.run("landslidesar:candidates_from_ratio", {
        "INPUT": result["A_RATIO"], "THRESHOLD_MODE": 1, "PERCENTILE": 97.0, "MIN_AREA": 300,
        "PREFIX": "update_", "OUTPUT_FOLDER": str(tmp_path)})
    assert res["N_CANDIDATES"] > 0
    assert Path(res["CANDIDATES"].split("|")[0]).name == "update_candidates.gpkg"
    layer = QgsVectorLayer(res["CANDIDATES"], "c", "ogr")
    assert layer.isValid() and layer.featureCount() == res["N_CANDIDATES"]
    # The event id comes from run.json next to the raster.
    assert {f["event_id"] for f in layer.getFeatures()} == {"event_20180905T1807"}
    assert Path(res["EXCEEDANCE"]).is_file() and Path(res["HEATMAP"]).is_file()
    fixed = processing.run("landslidesar:candidates_from_ratio", {
        "INPUT": result["A_RATIO"], "THRESHOLD_MODE": 0, "THRESHOLD": 1.5, "OUTPUT_FOLDER": str(tmp_path / "f")})
    assert fixed["THRESHOLD_USED"] == pytest.approx(1.5) and 0 < fixed["N_CANDIDATES"] <= result["N_CANDIDATES"]


def test_evaluate_polygons_and_scores_against_the_reference(detect_run, tmp_path):
    import processing

    result, _, _ = detect_run
    truth = str(SAMPLE / "truth" / "truth_mask.tif")
    res = processing.run("landslidesar:evaluate", {
        "PREDICTION": result["CANDIDATES"], "REFERENCE": truth,
        "OUTPUT_JSON": str(tmp_path / "report.json"), "OUTPUT_HTML": str(tmp_path / "report.html")})
    for key in ("PRECISION", "RECALL", "F1", "IOU"):
        assert 0.0 < res[key] <= 1.0, key
    assert -1.0 <= res["MCC"] <= 1.0
    assert res["AUPRC"] is None  # polygons carry no scores
    assert res["N_TRUTH"] > 0 and 0 < res["N_DETECTED"] <= res["N_TRUTH"]
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["pixel"]["f1"] == pytest.approx(res["F1"])
    assert "F1" in (tmp_path / "report.html").read_text()
    scored = processing.run("landslidesar:evaluate", {
        "PREDICTION": result["A_RATIO"], "REFERENCE": str(SAMPLE / "truth" / "landslides.gpkg"),
        "KIND": 2, "THRESHOLD": 1.25})
    assert 0.0 < scored["AUPRC"] <= 1.0 and 0.0 < scored["NO_SKILL"] < scored["AUPRC"]
    assert "AUPRC" in scored["SUMMARY"]


def test_export_reviewed_polygons_edited_with_qgis(detect_run, tmp_path):
    import processing
    from qgis.core import QgsFeature, QgsGeometry, QgsProcessingException, QgsVectorLayer

    from landslide_sar_plugin.core.inventory import read_inventory

    result, _, out = detect_run
    run_dir = tmp_path / "run"
    shutil.copytree(out, run_dir)
    cand_uri = f"{run_dir / 'candidates.gpkg'}|layername=candidates"
    layer = QgsVectorLayer(cand_uri, "candidates", "ogr")
    assert layer.isValid()
    feats = sorted(layer.getFeatures(), key=lambda f: f.id())
    status = layer.fields().indexOf("status")
    # Review in QGIS: accept two, reject one, reshape one, draw one by hand.
    assert layer.startEditing()
    layer.changeAttributeValue(feats[0].id(), status, "accepted")
    layer.changeAttributeValue(feats[1].id(), status, "accepted")
    layer.changeAttributeValue(feats[2].id(), status, "rejected")
    layer.changeGeometry(feats[3].id(), QgsGeometry.fromWkt(feats[3].geometry().buffer(5, 2).asWkt()))
    layer.changeAttributeValue(feats[3].id(), status, "edited")
    drawn = QgsFeature(layer.fields())
    drawn.setGeometry(QgsGeometry.fromWkt(
        "MultiPolygon(((559100 4748100, 559160 4748100, 559160 4748160, 559100 4748160, 559100 4748100)))"))
    drawn["status"] = "accepted"
    layer.addFeature(drawn)
    # Unsaved edits are refused with a message.
    inventory = tmp_path / "inventory" / "landslides.gpkg"
    params = {"CANDIDATES": layer, "INVENTORY": str(inventory), "REVIEWER": "analyst"}
    with pytest.raises(QgsProcessingException, match="unsaved edits"):
        processing.run("landslidesar:export_inventory", params)
    assert layer.commitChanges(), layer.commitErrors()

    first = processing.run("landslidesar:export_inventory", params)
    assert (first["ADDED"], first["UPDATED"], first["UNCHANGED"]) == (5, 0, 0)
    assert first["SKIPPED"] == result["N_CANDIDATES"] - 4 and first["TOTAL"] == 5
    second = processing.run("landslidesar:export_inventory", params)
    assert (second["ADDED"], second["UPDATED"], second["UNCHANGED"], second["TOTAL"]) == (0, 0, 5, 5)
    inv_layer = QgsVectorLayer(first["INVENTORY_LAYER"], "inventory", "ogr")
    assert inv_layer.isValid() and inv_layer.featureCount() == 5
    feats_inv, _ = read_inventory(inventory, statuses=None)
    by_status = sorted(f.properties["status"] for f in feats_inv)
    assert by_status == ["accepted", "accepted", "accepted", "edited", "rejected"]
    for f in feats_inv:
        p = f.properties
        assert p["reviewer"] == "analyst" and p["event_id"] == "event_20180905T1807"
        assert len(p["scene_ids"]) == 14 and p["synthetic"] is True
    assert sorted(f.properties["source"] for f in feats_inv).count("manual") == 1

    # Re-edit in QGIS: reject an accepted polygon -> one row updated. Without rejected: skipped.
    assert layer.startEditing()
    layer.changeAttributeValue(feats[0].id(), status, "rejected")
    assert layer.commitChanges()
    third = processing.run("landslidesar:export_inventory", dict(params, INCLUDE_REJECTED=True))
    assert (third["ADDED"], third["UPDATED"], third["TOTAL"]) == (0, 1, 5)


def test_detect_then_candidates_chain_in_the_graphical_modeler(provider, tmp_path):
    """A model: Detect -> Candidates from its A_ratio output; the output types connect and the model runs."""
    import processing
    from qgis.core import (
        QgsProcessingContext,
        QgsProcessingFeedback,
        QgsProcessingModelAlgorithm,
        QgsProcessingModelChildAlgorithm,
        QgsProcessingModelChildParameterSource,
        QgsProcessingModelOutput,
    )

    def child(alg_id, child_id, values):
        """A child with the given values and every other parameter at its default, as the modeler dialog does."""
        c = QgsProcessingModelChildAlgorithm(alg_id)
        c.setChildId(child_id)
        for definition in c.algorithm().parameterDefinitions():
            name = definition.name()
            if name in values:
                source = values[name]
                if not isinstance(source, QgsProcessingModelChildParameterSource):
                    source = QgsProcessingModelChildParameterSource.fromStaticValue(source)
            elif definition.defaultValue() is not None:
                source = QgsProcessingModelChildParameterSource.fromStaticValue(definition.defaultValue())
            else:
                continue
            c.addParameterSources(name, [source])
        return c

    model = QgsProcessingModelAlgorithm("detect_and_update", "Landslides")
    detect = child("landslidesar:detect_a_ratio", "detect", detect_params(tmp_path / "model_run"))
    model.addChildAlgorithm(detect)
    update = child("landslidesar:candidates_from_ratio", "update", {
        "INPUT": QgsProcessingModelChildParameterSource.fromChildOutput("detect", "A_RATIO"),
        "THRESHOLD_MODE": 0, "THRESHOLD": 2.0, "MIN_AREA": 500.0, "OUTPUT_FOLDER": str(tmp_path / "model_update")})
    out = QgsProcessingModelOutput("n", "n")
    out.setChildOutputName("N_CANDIDATES")
    update.setModelOutputs({"n": out})
    model.addChildAlgorithm(update)
    ok, errors = model.validate()
    assert ok, errors
    context, feedback = QgsProcessingContext(), QgsProcessingFeedback()
    results, ok = model.run({}, context, feedback)
    assert ok
    assert (tmp_path / "model_update" / "candidates.gpkg").is_file()
    assert model.childAlgorithm("update").algorithm().id() == "landslidesar:candidates_from_ratio"
    assert processing  # the Processing framework is initialised by the fixture


def test_qgis_process_discovers_and_runs_the_plugin(tmp_path, qgis_app):
    """Headless `qgis_process`: plugin enabled in an isolated profile, found through QGIS_PLUGINPATH."""
    if QGIS_PROCESS is None:
        pytest.skip("qgis_process is not installed here: it ships in Debian's 'qgis' package (make setup "
                    "installs it)")
    plugins = release_plugin_dir(tmp_path)
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", QGIS_PLUGINPATH=str(plugins),
               QGIS_CUSTOM_CONFIG_PATH=str(tmp_path / "profile"), PYTHONPATH=os.pathsep.join(sys.path))

    def qp(*args, timeout=300):
        return subprocess.run([QGIS_PROCESS, *args], env=env, capture_output=True, text=True, timeout=timeout)

    enabled = qp("plugins", "enable", PACKAGE)
    assert enabled.returncode == 0, enabled.stdout + enabled.stderr
    listing = qp("list")
    assert "landslidesar:detect_a_ratio" in listing.stdout, listing.stdout[-2000:] + listing.stderr[-2000:]
    run = qp("--json", "run", "landslidesar:evaluate", "--",
             f"PREDICTION={SAMPLE / 'truth' / 'truth_mask.tif'}", f"REFERENCE={SAMPLE / 'truth' / 'landslides.gpkg'}")
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    results = json.loads(run.stdout)["results"]
    assert results["RECALL"] > 0.9


EMULATE_QGIS_PROCESS = r"""
import json, os, sys
from qgis.core import QgsApplication
app = QgsApplication([], False)
app.setPrefixPath("/usr", True)
app.initQgis()
sys.path.append("/usr/share/qgis/python/plugins")
from processing.core.Processing import Processing
Processing.initialize()
import qgis.utils
plugin_dir = os.environ["QGIS_PLUGINPATH"]
sys.path.insert(0, plugin_dir)
qgis.utils.plugin_paths = [plugin_dir]
qgis.utils.updateAvailablePlugins()
name = sys.argv[1]
assert name in qgis.utils.available_plugins, qgis.utils.available_plugins
assert qgis.utils.pluginMetadata(name, "hasProcessingProvider") == "yes"
assert qgis.utils.iface is None  # qgis_process has no interface
assert qgis.utils.loadPlugin(name) and qgis.utils.startProcessingPlugin(name)
import processing
res = processing.run("landslidesar:evaluate", {"PREDICTION": sys.argv[2], "REFERENCE": sys.argv[3]})
print(json.dumps({"file": sys.modules[name].__file__, "RECALL": res["RECALL"]}))
app.exitQgis()
"""


def test_plugin_loads_processing_only_as_qgis_process_would(tmp_path):
    """What qgis_process does for a Python plugin (QgsProcessingExec::loadPlugins -> qgis.utils.
    startProcessingPlugin, no iface, no initGui), in a fresh interpreter, from a QGIS_PLUGINPATH folder."""
    plugins = release_plugin_dir(tmp_path)
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", QGIS_PLUGINPATH=str(plugins),
               QGIS_CUSTOM_CONFIG_PATH=str(tmp_path / "profile"))
    env.pop("PYTHONPATH", None)
    proc = subprocess.run(
        [sys.executable, "-c", EMULATE_QGIS_PROCESS, PACKAGE, str(SAMPLE / "truth" / "truth_mask.tif"),
         str(SAMPLE / "truth" / "landslides.gpkg")],
        env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["file"].startswith(str(plugins))
    assert out["RECALL"] > 0.9
