"""Loading run outputs as QGIS layers and styling them (thin: no computation here).

One style per output, used by the dock and by the Processing post-processor
(``processing/styles.py``), so a layer looks the same however it was made:

* ``a_ratio`` (dB): diverging blue (backscatter rose) - white (no change) -
  orange, solid magenta above the threshold; the legend names the threshold;
* ``probability``: sequential light yellow -> orange up to the threshold,
  magenta above it (p = 0 is pale, not a colour of its own);
* masked and no-data pixels of both are drawn grey (not transparent), so a
  masked area reads as masked on any canvas;
* ``heatmap``: sequential, transparent at 0; ``exceedance``: magenta where 1;
  ``counts``: images per stack (first band), greens; ``mask``: the reason a
  pixel was excluded, by its highest bit; ``agreement``: categories;
* ``evidence_<pass>`` (the radar evidence, pre- and post-event medians in dB):
  the change composite SAR analysts read, R = pre, G = post, B = pre, with a
  fixed stretch for Sentinel-1 land backscatter of the polarisation its tag
  names (:data:`EVIDENCE_STRETCH_DB`), so one colour means the same dB on every
  run: grey where nothing changed, magenta where backscatter dropped (a fresh
  scar in vegetation), green where it rose.  Loaded hidden; the review queue
  switches it on.
"""

from __future__ import annotations

from pathlib import Path

from qgis.core import (
    Qgis,
    QgsCategorizedSymbolRenderer,
    QgsColorRampLegendNodeSettings,
    QgsColorRampShader,
    QgsContrastEnhancement,
    QgsDefaultValue,
    QgsEditorWidgetSetup,
    QgsFillSymbol,
    QgsLayerTreeGroup,
    QgsMapLayerLegend,
    QgsMultiBandColorRenderer,
    QgsPalettedRasterRenderer,
    QgsProject,
    QgsRasterLayer,
    QgsRasterShader,
    QgsRasterSymbolLegendNode,
    QgsRendererCategory,
    QgsSimpleLegendNode,
    QgsSimpleLineSymbolLayer,
    QgsSingleBandPseudoColorRenderer,
    QgsVectorLayer,
)
from qgis.PyQt import sip
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtGui import QColor

STATUSES = ("proposed", "accepted", "edited", "rejected")
STATUS_COLOURS = {"proposed": "255,221,0", "accepted": "40,200,60", "edited": "0,200,255", "rejected": "150,150,150"}
EXCEEDANCE_COLOUR = QColor(200, 0, 160)
MASKED_COLOUR = QColor(150, 150, 150, 170)  # no data / masked pixels of the score layers: grey, never transparent
THRESHOLD_PROPERTY = "landslide_sar/threshold"
KIND_PROPERTY = "landslide_sar/kind"
TITLES = {"a_ratio": "A_ratio (dB)", "probability": "Landslide probability", "heatmap": "Landslide density",
          "exceedance": "Above the threshold", "counts": "Images per stack", "mask": "Excluded pixels (reason)",
          "candidates": "Candidate landslides", "agreement": "Agreement A_ratio / model",
          "evidence_ascending": "Radar evidence, ascending", "evidence_descending": "Radar evidence, descending"}
# Fixed dB stretch of the evidence composite: Sentinel-1 IW land backscatter (forest ~ -12 / -7 dB in VH / VV,
# bare soil and fresh scars ~ -20 / -13 dB, layover and urban brighter); the same colour is the same dB on
# every run, so a drop of 3-5 dB reads as a clear magenta.
EVIDENCE_STRETCH_DB = {"VH": (-25.0, -5.0), "VV": (-20.0, 0.0)}
EVIDENCE_HELP = ("R = pre-event, G = post-event, B = pre-event median of {pol} backscatter, {lo:g} to {hi:g} dB: "
                 "grey = no change (brighter = stronger backscatter), magenta = backscatter dropped after the event "
                 "(a fresh scar in vegetation?), green = backscatter rose")
# mask.tif bit flags (core/detect.py MASK_*), highest bit first: a pixel is drawn with its highest reason.
MASK_REASONS = ((16, "outside the area of interest", QColor(90, 90, 90, 200)),
                (8, "water", QColor(60, 120, 220, 200)),
                (4, "convex terrain (curvature)", QColor(150, 100, 50, 200)),
                (2, "slope below the minimum", QColor(215, 190, 140, 200)),
                (1, "no radar data", QColor(170, 170, 170, 200)))
AGREEMENT_CLASSES = ((0, "neither", "0,0,0,0"), (1, "A_ratio only", "255,170,0,200"),
                     (2, "model only", "0,160,255,200"), (3, "both methods", "220,0,120,230"))


def _item(value: float, colour: QColor, label: str):
    return QgsColorRampShader.ColorRampItem(float(value), colour, label)


def _pseudocolor(layer: QgsRasterLayer, items: list, vmin: float, vmax: float, *,
                 kind=QgsColorRampShader.Type.Interpolated, band: int = 1,
                 nodata: QColor | None = None) -> QgsSingleBandPseudoColorRenderer:
    ramp = QgsColorRampShader(vmin, vmax)
    ramp.setColorRampType(kind)
    ramp.setColorRampItemList(items)
    legend = QgsColorRampLegendNodeSettings()
    legend.setUseContinuousLegend(False)  # a gradient bar would show only min and max, not the threshold
    ramp.setLegendSettings(legend)
    shader = QgsRasterShader()
    shader.setRasterShaderFunction(ramp)
    renderer = QgsSingleBandPseudoColorRenderer(layer.dataProvider(), band, shader)
    renderer.setClassificationMin(vmin)
    renderer.setClassificationMax(vmax)
    if nodata is not None:
        renderer.setNodataColor(nodata)
    layer.setRenderer(renderer)
    return renderer


def ratio_shader_items(threshold: float, vmin: float, vmax: float) -> list:
    """Diverging blue-white-red below the threshold, solid magenta above it; the legend names the threshold."""
    threshold = min(max(threshold, vmin + 1e-6), vmax)
    mid = 0.0 if vmin < 0.0 < threshold else (vmin + threshold) / 2
    above = threshold + 1e-6 * max(1.0, abs(threshold))
    return [
        _item(vmin, QColor(40, 80, 200), f"{vmin:g} dB: backscatter rose"),
        _item(mid, QColor(250, 250, 250), f"{mid:g} dB: no change" if mid == 0 else f"{mid:.2f} dB"),
        _item(threshold, QColor(230, 120, 90), f"threshold {threshold:.2f} dB"),
        _item(above, EXCEEDANCE_COLOUR, f"> {threshold:.2f} dB: candidate"),
        _item(max(vmax, threshold + 1e-3), EXCEEDANCE_COLOUR, f"{max(vmax, threshold + 1e-3):g} dB"),
    ]


def probability_shader_items(threshold: float) -> list:
    """Sequential pale yellow (p = 0) to orange at the threshold, solid magenta above it."""
    threshold = min(max(threshold, 1e-6), 1.0 - 1e-6)
    return [
        _item(0.0, QColor(255, 250, 215, 90), "0: no landslide"),
        _item(threshold / 2, QColor(254, 205, 110), f"{threshold / 2:.2f}"),
        _item(threshold, QColor(240, 110, 40), f"threshold {threshold:.2f}"),
        _item(threshold + 1e-6, EXCEEDANCE_COLOUR, f"> {threshold:.2f}: candidate"),
        _item(1.0, EXCEEDANCE_COLOUR, "1"),
    ]


def style_score_layer(layer: QgsRasterLayer, threshold: float, vmin: float, vmax: float,
                      score_key: str = "a_ratio") -> None:
    """(Re)style a ratio/probability layer so pixels above ``threshold`` stand out; nothing is recomputed."""
    if score_key == "probability":
        _pseudocolor(layer, probability_shader_items(threshold), 0.0, 1.0, nodata=MASKED_COLOUR)
    else:
        _pseudocolor(layer, ratio_shader_items(threshold, vmin, vmax), vmin, max(vmax, threshold + 1e-3),
                     nodata=MASKED_COLOUR)
    layer.setCustomProperty(THRESHOLD_PROPERTY, float(threshold))
    layer.setCustomProperty(KIND_PROPERTY, score_key)
    layer.triggerRepaint()


def style_heatmap(layer: QgsRasterLayer) -> None:
    """Density of candidate pixels (fraction 0..1 within the radius): transparent at 0, dark red where dense."""
    stats_max = _band_max(layer, 1, default=0.3)
    top = max(stats_max, 0.05)
    _pseudocolor(layer, [_item(0.0, QColor(255, 255, 255, 0), "0"),
                         _item(top * 0.25, QColor(254, 178, 76, 160), f"{top * 0.25:.2f}"),
                         _item(top, QColor(165, 0, 38, 230), f"{top:.2f} (share of pixels above the threshold)")],
                 0.0, top)


def style_exceedance(layer: QgsRasterLayer) -> None:
    classes = [QgsPalettedRasterRenderer.Class(0, QColor(0, 0, 0, 0), "below the threshold"),
               QgsPalettedRasterRenderer.Class(1, EXCEEDANCE_COLOUR, "above the threshold")]
    layer.setRenderer(QgsPalettedRasterRenderer(layer.dataProvider(), 1, classes))


def style_counts(layer: QgsRasterLayer) -> None:
    """Valid images in the first stack (band 1); few images are pale, the most images dark green."""
    top = max(1.0, _band_max(layer, 1, default=10.0))
    name = layer.dataProvider().generateBandName(1) if layer.bandCount() else "band 1"
    description = layer.bandName(1) or name
    _pseudocolor(layer, [_item(0, QColor(247, 252, 245), "0 images"),
                         _item(top, QColor(0, 109, 44), f"{top:g} images ({description})")], 0.0, top)


def style_mask(layer: QgsRasterLayer) -> None:
    """Why a pixel was excluded, by its highest reason bit (0 = kept, transparent)."""
    items = [_item(0, QColor(0, 0, 0, 0), "kept")]
    for bit, label, colour in reversed(MASK_REASONS):  # discrete ramp: first item >= value wins
        items.append(_item(2 * bit - 1, colour, label))
    _pseudocolor(layer, items, 0, 31, kind=QgsColorRampShader.Type.Discrete)


def _band_max(layer: QgsRasterLayer, band: int, default: float) -> float:
    try:
        from qgis.core import QgsRasterBandStats

        stats = layer.dataProvider().bandStatistics(band, QgsRasterBandStats.Stats.Max, layer.extent(), 250000)
        value = float(stats.maximumValue)
        return value if value == value and abs(value) < 1e30 else default  # NaN or "no statistics"
    except Exception:  # a provider without statistics: the default range is still readable
        return default


def style_candidates(layer: QgsVectorLayer) -> None:
    """Outlines coloured by review status, and a value-map editor for the status field.

    Outlines only, drawn by a line symbol layer: a selected polygon (the review queue selects the one under
    review) then gets a selection-coloured outline, not QGIS's opaque selection fill, which would hide the
    radar evidence inside it.
    """
    categories = []
    for status in STATUSES:
        outline = QgsSimpleLineSymbolLayer(QColor(*[int(c) for c in STATUS_COLOURS[status].split(",")]), 0.5)
        if status == "rejected":
            outline.setPenStyle(Qt.PenStyle.DashLine)
        symbol = QgsFillSymbol()
        symbol.changeSymbolLayer(0, outline)
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


def evidence_polarisation(layer: QgsRasterLayer) -> str:
    """The polarisation an evidence raster holds, from its POLARISATION tag (VH when the tag is missing)."""
    try:
        from osgeo import gdal

        dataset = gdal.Open(layer.source())
        tag = dataset.GetMetadataItem("POLARISATION") if dataset is not None else None
    except Exception:  # GDAL bindings missing or the file unreadable: the band description may still say it
        tag = None
    if not tag:
        tag = "VV" if "VV" in (layer.bandName(1) or "") else "VH"
    return str(tag).upper() if str(tag).upper() in EVIDENCE_STRETCH_DB else "VH"


class EvidenceLegend(QgsMapLayerLegend):
    """The evidence layer's legend in words: what magenta, green and grey mean (not "Band 1 (Red)")."""

    def __init__(self, pol: str):
        super().__init__()
        self.pol = pol

    def createLayerTreeModelLegendNodes(self, node_layer):  # noqa: N802 (QGIS API)
        lo, hi = EVIDENCE_STRETCH_DB[self.pol]
        nodes = [QgsRasterSymbolLegendNode(node_layer, QColor(220, 40, 220), "backscatter dropped (fresh scar?)"),
                 QgsRasterSymbolLegendNode(node_layer, QColor(60, 200, 60), "backscatter rose"),
                 QgsRasterSymbolLegendNode(node_layer, QColor(150, 150, 150), "no change"),
                 QgsSimpleLegendNode(node_layer, f"R = pre, G = post, B = pre ({self.pol}, {lo:g} to {hi:g} dB)")]
        for node in nodes:  # QGIS owns the nodes it asked for; Python must not delete them
            sip.transferto(node, None)
        return nodes


def style_evidence(layer: QgsRasterLayer) -> None:
    """R = pre (band 1), G = post (band 2), B = pre, a fixed dB stretch for the layer's polarisation."""
    pol = evidence_polarisation(layer)
    lo, hi = EVIDENCE_STRETCH_DB[pol]
    renderer = QgsMultiBandColorRenderer(layer.dataProvider(), 1, 2, 1)
    for setter in (renderer.setRedContrastEnhancement, renderer.setGreenContrastEnhancement,
                   renderer.setBlueContrastEnhancement):
        stretch = QgsContrastEnhancement(Qgis.DataType.Float32)
        stretch.setContrastEnhancementAlgorithm(
            QgsContrastEnhancement.ContrastEnhancementAlgorithm.StretchToMinimumMaximum)
        stretch.setMinimumValue(lo)
        stretch.setMaximumValue(hi)
        setter(stretch)
    layer.setRenderer(renderer)
    layer.setLegend(EvidenceLegend(pol))
    layer.setAbstract(EVIDENCE_HELP.format(pol=pol, lo=lo, hi=hi))
    layer.setCustomProperty(KIND_PROPERTY, "evidence")
    layer.triggerRepaint()


def is_evidence(key: str) -> bool:
    return key.startswith("evidence_")


def style_agreement(layer: QgsRasterLayer) -> None:
    classes = [QgsPalettedRasterRenderer.Class(v, QColor(*[int(c) for c in rgba.split(",")]), label)
               for v, label, rgba in AGREEMENT_CLASSES]
    layer.setRenderer(QgsPalettedRasterRenderer(layer.dataProvider(), 1, classes))


def style_layer(layer, key: str, *, threshold: float | None = None, vmin: float = -5.0, vmax: float = 8.0) -> None:
    """The style of the run output ``key`` (a_ratio, probability, heatmap, exceedance, counts, mask, ...)."""
    if key in ("a_ratio", "probability"):
        style_score_layer(layer, threshold if threshold is not None else (0.5 if key == "probability" else 1.25),
                          vmin, vmax, key)
    elif key in STYLERS:
        STYLERS[key](layer)
    elif is_evidence(key):
        style_evidence(layer)


STYLERS = {"heatmap": style_heatmap, "exceedance": style_exceedance, "counts": style_counts, "mask": style_mask,
           "candidates": style_candidates, "agreement": style_agreement}


def load_run_layers(files: dict[str, Path], group_name: str, *, threshold: float, vmin: float, vmax: float,
                    score_key: str = "a_ratio", project: QgsProject | None = None,
                    parent: QgsLayerTreeGroup | None = None) -> dict:
    """Add a run's outputs under a new layer group (in ``parent``, default the root); {key: layer, 'group': group}."""
    project = project or QgsProject.instance()
    parent = parent if parent is not None else project.layerTreeRoot()
    group: QgsLayerTreeGroup = parent.addGroup(group_name) if parent is not project.layerTreeRoot() \
        else parent.insertGroup(0, group_name)
    layers = {"group": group}
    # The evidence sits between the polygons and the score, so switching it on shows it under the outlines.
    evidence = [(key, False) for key in sorted(files) if is_evidence(key)]
    order = [("candidates", True), *evidence, (score_key, True), ("heatmap", False), ("exceedance", False),
             ("counts", False), ("mask", False)]
    for key, visible in order:
        path = files.get(key)
        if path is None:
            continue
        title = TITLES.get(key, key)
        if key == "candidates":
            layer = QgsVectorLayer(f"{path}|layername=candidates", title, "ogr")
        else:
            layer = QgsRasterLayer(str(path), title, "gdal")
        if not layer.isValid():
            continue
        style_layer(layer, key, threshold=threshold, vmin=vmin, vmax=vmax)
        if is_evidence(key):
            layer.setName(f"{title} ({evidence_polarisation(layer)})")
        project.addMapLayer(layer, False)
        node = group.addLayer(layer)
        node.setItemVisibilityChecked(visible)
        layers[key] = layer
    return layers


def load_agreement_layer(path, group: QgsLayerTreeGroup, project: QgsProject | None = None):
    """Add the agreement raster (0 neither, 1 A_ratio only, 2 model only, 3 both) on top of ``group``."""
    project = project or QgsProject.instance()
    layer = QgsRasterLayer(str(path), TITLES["agreement"], "gdal")
    if not layer.isValid():
        return None
    style_agreement(layer)
    project.addMapLayer(layer, False)
    group.insertLayer(0, layer)
    return layer
