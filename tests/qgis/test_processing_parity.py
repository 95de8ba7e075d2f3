"""Processing offers the command line's detection options, from the same declaration, and masks by AOI polygons."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from .test_processing import SAMPLE, detect_params, no_pam_sidecars, provider  # noqa: F401 (fixtures)

ALGORITHMS = ("landslidesar:detect_a_ratio", "landslidesar:detect_model", "landslidesar:detect_earthengine")


def _alg(alg_id):
    from qgis.core import QgsApplication

    alg = QgsApplication.processingRegistry().createAlgorithmById(alg_id)
    assert alg is not None
    return alg


@pytest.mark.parametrize("alg_id", ALGORITHMS)
def test_detection_settings_come_from_the_shared_declaration(provider, alg_id):  # noqa: F811
    from landslide_sar_plugin.core.params import SPECS
    from landslide_sar_plugin.processing import algorithms
    from landslide_sar_plugin.processing.compat import FLAG_ADVANCED

    alg = _alg(alg_id)
    wanted = algorithms.MODEL_SETTINGS if alg_id.endswith("model") else \
        algorithms.RATIO_SETTINGS + algorithms.CANDIDATE_SETTINGS
    wanted += algorithms.GRID_SETTINGS
    by_name = {s.processing: s for s in SPECS.values()}
    for name in (n for n in wanted if n in by_name):
        definition = alg.parameterDefinition(name)
        assert definition is not None, f"{alg_id} lacks {name}"
        spec = by_name[name]
        default = spec.default()
        if spec.kind == "choice":
            default = spec.options().index(default)
        assert definition.defaultValue() == default, name
        assert bool(definition.flags() & FLAG_ADVANCED) == spec.advanced, name
        assert definition.help() == spec.help


def test_the_cli_and_processing_build_the_same_parameters(provider, tmp_path):  # noqa: F811
    import argparse

    from qgis.core import QgsProcessingContext, QgsProject, QgsRasterLayer

    from landslide_sar_plugin.commands import detect as detect_cmd

    water = SAMPLE / "truth" / "landcover.tif"  # any raster on the grid will do as a water mask
    layer = QgsRasterLayer(str(water), "water")
    QgsProject.instance().addMapLayer(layer)
    try:
        settings = dict(SPECKLE_SIGMA=5.0, MERGE_ORBITS=True, PRE_RANGE="2018-07-01/2018-08-31",
                        POST_RANGE="2018-09-06/2018-09-25", CURV_MIN=-0.004, CURV_SIGMA=20.0, CURV_RADIUS=40.0,
                        SLOPE_MIN=0.0, WATER_MASK=layer.id(), SMOOTH_RATIO=5.0, HEATMAP_RADIUS=70.0,
                        EDGE_NOISE_DB=-28.0, POLARISATION=2, CRS="EPSG:32654", AOI="",
                        THRESHOLD_MODE=1, THRESHOLD=1.25)
        alg = _alg("landslidesar:detect_a_ratio")
        context = QgsProcessingContext()
        context.setProject(QgsProject.instance())
        values = detect_params(tmp_path, **settings)
        from_processing = alg._detect_params(values, context, **alg._rule_fields(values, context))
    finally:
        QgsProject.instance().removeMapLayer(layer.id())
    parser = argparse.ArgumentParser()
    detect_cmd.add_arguments(parser)
    args = parser.parse_args([
        "--event", json.loads((SAMPLE / "event.json").read_text())["config"]["event_time"], "--out", "x",
        "--speckle-sigma", "5", "--merge-orbits", "--pre-range", "2018-07-01/2018-08-31",
        "--post-range", "2018-09-06/2018-09-25", "--curv-min", "-0.004", "--curv-sigma", "20", "--curv-radius",
        "40", "--slope-min", "none", "--water-mask", str(water), "--smooth-ratio", "5", "--heatmap-radius", "70",
        "--edge-noise-db", "-28", "--polarisation", "VV", "--crs", "EPSG:32654", "--min-area", "500",
        "--threshold", "1.25",
        "--block-size", "256"])
    from_cli = detect_cmd.params_from_args(args)
    assert from_processing.to_dict() == from_cli.to_dict()
    assert from_cli.per_orbit is False and from_cli.speckle_radius_m == 10.0 and from_cli.slope_min_deg is None


def test_a_polygon_layer_masks_the_run_by_its_polygon_not_its_extent(provider, tmp_path):  # noqa: F811
    import processing
    import rasterio
    from qgis.core import QgsFeature, QgsGeometry, QgsProject, QgsVectorLayer

    # A triangle in the 1.5 km corner that the other tests use: its extent is the whole square.
    layer = QgsVectorLayer("Polygon?crs=EPSG:32654", "aoi triangle", "memory")
    feature = QgsFeature()
    feature.setGeometry(QgsGeometry.fromWkt("POLYGON((559000 4748000, 560500 4748000, 559000 4749500, "
                                            "559000 4748000))"))
    assert layer.dataProvider().addFeatures([feature])
    QgsProject.instance().addMapLayer(layer)
    try:
        res = processing.run("landslidesar:detect_a_ratio", detect_params(
            tmp_path / "tri", AOI=None, AOI_LAYER=layer.id(), SLOPE_MIN=0.0))
    finally:
        QgsProject.instance().removeMapLayer(layer.id())
    with rasterio.open(res["A_RATIO"]) as src:
        ratio = src.read(1)
        rows, cols = np.indices(ratio.shape)
        xs, ys = rasterio.transform.xy(src.transform, rows, cols)
    xs, ys = np.asarray(xs).reshape(ratio.shape), np.asarray(ys).reshape(ratio.shape)
    inside = (xs - 559000) + (ys - 4748000) < 1500 - 15  # below the hypotenuse, with a pixel of margin
    outside = (xs - 559000) + (ys - 4748000) > 1500 + 15
    assert ratio.shape == (150, 150)  # the grid is the triangle's extent ...
    assert np.isfinite(ratio[inside]).mean() > 0.9  # ... the triangle is computed ...
    assert not np.isfinite(ratio[outside]).any()  # ... and everything beyond its hypotenuse is masked
    run = json.loads(Path(res["RUN_JSON"]).read_text())
    assert run["parameters"]["aoi"]["polygon"] is True


def test_processing_outputs_load_styled_like_the_dock(provider, tmp_path, clean_project):  # noqa: F811
    import processing
    from qgis.core import QgsCategorizedSymbolRenderer, QgsSingleBandPseudoColorRenderer

    processing.runAndLoadResults("landslidesar:detect_a_ratio", detect_params(tmp_path / "styled", THRESHOLD_MODE=1,
                                                                                 THRESHOLD=1.5))
    layers = {layer.name(): layer for layer in clean_project.mapLayers().values()}
    ratio = next(layer for name, layer in layers.items() if name.startswith("A_ratio"))
    candidates = next(layer for name, layer in layers.items() if name.startswith("Candidates"))
    renderer = ratio.renderer()
    assert isinstance(renderer, QgsSingleBandPseudoColorRenderer)
    labels = [i.label for i in renderer.shader().rasterShaderFunction().colorRampItemList()]
    assert "threshold 1.50 dB" in labels and renderer.nodataColor().alpha() > 0
    assert isinstance(candidates.renderer(), QgsCategorizedSymbolRenderer)
    assert candidates.renderer().classAttribute() == "status"
