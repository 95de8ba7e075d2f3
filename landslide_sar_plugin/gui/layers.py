"""Loading run outputs as QGIS layers and styling them (thin: no computation here)."""

from __future__ import annotations

from pathlib import Path

from qgis.core import (
    QgsCategorizedSymbolRenderer,
    QgsColorRampShader,
    QgsDefaultValue,
    QgsEditorWidgetSetup,
    QgsFillSymbol,
    QgsLayerTreeGroup,
    QgsProject,
    QgsRasterLayer,
    QgsRasterShader,
    QgsRendererCategory,
    QgsSingleBandPseudoColorRenderer,
    QgsVectorLayer,
)
from qgis.PyQt.QtGui import QColor

STATUSES = ("proposed", "accepted", "edited", "rejected")
STATUS_COLOURS = {"proposed": "255,221,0", "accepted": "40,200,60", "edited": "0,200,255", "rejected": "150,150,150"}
EXCEEDANCE_COLOUR = QColor(200, 0, 160)


def ratio_shader_items(threshold: float, vmin: float, vmax: float) -> list:
    """Diverging blue-white-red below the threshold, solid magenta above it (the exceedance pixels)."""
    threshold = min(max(threshold, vmin + 1e-6), vmax)
    mid = 0.0 if vmin < 0.0 < threshold else (vmin + threshold) / 2
    items = [
        QgsColorRampShader.ColorRampItem(vmin, QColor(40, 80, 200), f"{vmin:g}"),
        QgsColorRampShader.ColorRampItem(mid, QColor(250, 250, 250), f"{mid:g}"),
        QgsColorRampShader.ColorRampItem(threshold, QColor(230, 120, 90), f"{threshold:.2f}"),
        QgsColorRampShader.ColorRampItem(threshold + 1e-6 * max(1.0, abs(threshold)), EXCEEDANCE_COLOUR,
                                         f"> {threshold:.2f}"),
        QgsColorRampShader.ColorRampItem(max(vmax, threshold + 1e-3), EXCEEDANCE_COLOUR, ""),
    ]
    return items


def style_score_layer(layer: QgsRasterLayer, threshold: float, vmin: float, vmax: float) -> None:
    """(Re)style a ratio/probability layer so pixels above ``threshold`` stand out; nothing is recomputed."""
    ramp = QgsColorRampShader(vmin, max(vmax, threshold + 1e-3))
    ramp.setColorRampType(QgsColorRampShader.Type.Interpolated)
    ramp.setColorRampItemList(ratio_shader_items(threshold, vmin, vmax))
    shader = QgsRasterShader()
    shader.setRasterShaderFunction(ramp)
    renderer = QgsSingleBandPseudoColorRenderer(layer.dataProvider(), 1, shader)
    renderer.setClassificationMin(vmin)
    renderer.setClassificationMax(max(vmax, threshold + 1e-3))
    layer.setRenderer(renderer)
    layer.setCustomProperty("landslide_sar/threshold", float(threshold))
    layer.triggerRepaint()


def style_candidates(layer: QgsVectorLayer) -> None:
    """Outlines coloured by review status, and a value-map editor for the status field."""
    categories = []
    for status in STATUSES:
        symbol = QgsFillSymbol.createSimple({
            "color": "0,0,0,0", "outline_color": STATUS_COLOURS[status], "outline_width": "0.5",
            "outline_style": "dash" if status == "rejected" else "solid"})
        categories.append(QgsRendererCategory(status, symbol, status))
    layer.setRenderer(QgsCategorizedSymbolRenderer("status", categories))
    idx = layer.fields().indexFromName("status")
    if idx >= 0:
        layer.setEditorWidgetSetup(idx, QgsEditorWidgetSetup("ValueMap", {"map": {s: s for s in STATUSES}}))
    # A polygon the analyst draws by hand is a landslide they saw: accepted, method "manual", its own uuid.
    for name, expression in (("status", "'accepted'"), ("method", "'manual'"), ("uuid", "uuid()")):
        i = layer.fields().indexFromName(name)
        if i >= 0:
            layer.setDefaultValueDefinition(i, QgsDefaultValue(expression))
    layer.triggerRepaint()


def load_run_layers(files: dict[str, Path], group_name: str, *, threshold: float, vmin: float, vmax: float,
                    score_key: str = "a_ratio", project: QgsProject | None = None) -> dict:
    """Add a run's outputs under a new layer group; returns {key: layer} (group under key 'group')."""
    project = project or QgsProject.instance()
    root = project.layerTreeRoot()
    group: QgsLayerTreeGroup = root.insertGroup(0, group_name)
    layers = {"group": group}
    titles = {"a_ratio": "A_ratio (dB)", "probability": "Landslide probability"}
    order = [("candidates", "Candidate landslides", True), (score_key, titles.get(score_key, score_key), True),
             ("heatmap", "Landslide density", False), ("exceedance", "Exceedance", False),
             ("counts", "Images per stack", False), ("mask", "Terrain mask", False)]
    for key, title, visible in order:
        path = files.get(key)
        if path is None:
            continue
        if key == "candidates":
            layer = QgsVectorLayer(f"{path}|layername=candidates", title, "ogr")
            if layer.isValid():
                style_candidates(layer)
        else:
            layer = QgsRasterLayer(str(path), title, "gdal")
            if layer.isValid() and key == score_key:
                style_score_layer(layer, threshold, vmin, vmax)
        if not layer.isValid():
            continue
        project.addMapLayer(layer, False)
        node = group.addLayer(layer)
        node.setItemVisibilityChecked(visible)
        layers[key] = layer
    return layers


AGREEMENT_CLASSES = ((0, "neither", "0,0,0,0"), (1, "A_ratio only", "255,170,0,200"),
                     (2, "model only", "0,160,255,200"), (3, "both methods", "220,0,120,230"))


def load_agreement_layer(path, group: QgsLayerTreeGroup, project: QgsProject | None = None):
    """Add the agreement raster (0 neither, 1 A_ratio only, 2 model only, 3 both) with a paletted style."""
    from qgis.core import QgsPalettedRasterRenderer

    project = project or QgsProject.instance()
    layer = QgsRasterLayer(str(path), "Agreement A_ratio / model", "gdal")
    if not layer.isValid():
        return None
    classes = [QgsPalettedRasterRenderer.Class(v, QColor(*[int(c) for c in rgba.split(",")]), label)
               for v, label, rgba in AGREEMENT_CLASSES]
    layer.setRenderer(QgsPalettedRasterRenderer(layer.dataProvider(), 1, classes))
    project.addMapLayer(layer, False)
    group.insertLayer(0, layer)
    return layer
