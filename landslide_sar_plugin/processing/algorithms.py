"""Processing algorithms of the "Landslide SAR" provider.

Every algorithm is a thin wrapper: it turns Processing parameters into the
arguments of one ``core`` function and the result into Processing outputs.
Nothing here re-implements a step of the engine (DESIGN.md, rules of the
house).  Core progress and cancel callbacks are wired to the Processing
feedback; core errors become :class:`QgsProcessingException` with the core's
own message.  Outputs are declared (raster/vector/number/file) so the
algorithms chain in the graphical modeler, and run headless with
``qgis_process run landslidesar:<id>``.
"""

from __future__ import annotations

import html
import json
import os
from pathlib import Path

from qgis.core import (
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingOutputFile,
    QgsProcessingOutputNumber,
    QgsProcessingOutputRasterLayer,
    QgsProcessingOutputString,
    QgsProcessingOutputVectorLayer,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterEnum,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFile,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterMapLayer,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
    QgsProcessingParameterVectorLayer,
)
from qgis.PyQt.QtCore import QCoreApplication

from .compat import (
    FILE_FOLDER,
    FLAG_ADVANCED,
    FLAG_NO_THREADING,
    LAYER_HINT_RASTER,
    LAYER_HINT_VECTOR,
    NUMBER_DOUBLE,
    SOURCE_RASTER,
    SOURCE_VECTOR_POLYGON,
    WKT_PREFERRED,
)
from .parameters import BY_PROCESSING_NAME, make_parameter, read_value

GROUP = "Landslide detection"
GROUP_ID = "landslidedetection"
SYNTHETIC_NOTE = ("The shipped sample scene (plugin folder sample_data/) is SYNTHETIC: simulated, not real "
                  "Sentinel-1 data; results on it are for trying the tool only.")
EE_PROJECT_SETTING = "landslide_sar/ee_project"  # QgsSettings key of the Earth Engine Cloud project id

# Test seam, not a user setting: when not None, a zero-argument callable returning an Earth Engine transport
# (``get_info(obj)``, ``compute_pixels(request)``, see core/earthengine/download.py).  The "Detect landslides
# (Google Earth Engine)" algorithm then passes that transport to the core, which uses it as is and skips the
# sign-in (``initialize``).  Tests set it with ``monkeypatch.setattr(algorithms, "EARTHENGINE_TRANSPORT_FACTORY",
# ...)``; in normal use it stays None and the core signs in with the user's credentials and project.
EARTHENGINE_TRANSPORT_FACTORY = None


def tr(text: str) -> str:
    return QCoreApplication.translate("LandslideSarProcessing", text)


class _Feedback:
    """Core ``progress(fraction, message)`` and ``is_cancelled()`` on a QgsProcessingFeedback."""

    def __init__(self, feedback):
        self.feedback = feedback
        self.last_message = None

    def progress(self, fraction: float, message: str = "") -> None:
        if self.feedback is None:
            return
        self.feedback.setProgress(max(0.0, min(100.0, 100.0 * float(fraction))))
        if message and message != self.last_message:
            self.last_message = message
            self.feedback.setProgressText(message)

    def is_cancelled(self) -> bool:
        return bool(self.feedback is not None and self.feedback.isCanceled())

    def sub(self, lo: float, hi: float):
        """A core ``progress`` callback that fills ``lo..hi`` of the bar (one of several core calls)."""
        return lambda fraction, message="": self.progress(lo + (hi - lo) * min(max(float(fraction), 0.0), 1.0),
                                                          message)


def _layer_file(layer, what: str) -> tuple[str, str | None]:
    """(file path, layer name or None) of a file-based layer; refuses memory/database layers."""
    if layer is None:
        raise QgsProcessingException(tr("{} is missing or could not be loaded").format(what))
    source = layer.source()
    parts = source.split("|")
    path = parts[0]
    layer_name = None
    for part in parts[1:]:
        if part.startswith("layername="):
            layer_name = part[len("layername="):]
    if not os.path.isfile(path):
        raise QgsProcessingException(
            tr("{} must be a file on disk (GeoTIFF or GeoPackage), not '{}'; save the layer to a file first")
            .format(what, source))
    return path, layer_name


def _load_on_completion(context: QgsProcessingContext, uri: str, name: str, output: str, kind: str,
                        style: str | None = None, threshold: float | None = None) -> None:
    """Ask Processing to add an output to the project when the algorithm finishes (toolbox runs), styled as the
    dock styles it (``style`` names the run output, see processing/styles.py)."""
    if context.project() is None:
        return
    details = QgsProcessingContext.LayerDetails(name, context.project(), output)
    if kind == "vector":
        details.layerTypeHint = LAYER_HINT_VECTOR
    elif kind == "raster":
        details.layerTypeHint = LAYER_HINT_RASTER
    if style is not None:
        from .styles import post_processor

        details.setPostProcessor(post_processor(style, threshold))
    context.addLayerToLoadOnCompletion(uri, details)


def _load_evidence(context: QgsProcessingContext, files: dict, event: str) -> None:
    """The run's radar evidence (evidence_<pass>.tif), loaded hidden and styled like the dock's."""
    for key in sorted(files):
        if key.startswith("evidence_"):
            orbit_pass = key[len("evidence_"):]
            _load_on_completion(context, str(files[key]), tr("Radar evidence {} {}").format(orbit_pass, event),
                                key, "raster", key)


def _core_call(func, *args, **kwargs):
    """Run a core function; its errors become QgsProcessingException with the core message."""
    from ..core.inventory import InventoryError
    from ..core.staging import Cancelled

    try:
        return func(*args, **kwargs)
    except Cancelled:
        raise QgsProcessingException(tr("Cancelled by the user; no output was kept.")) from None
    except (InventoryError, ValueError, FileNotFoundError, PermissionError) as exc:
        raise QgsProcessingException(str(exc)) from None


def _crs_text(crs) -> str:
    """A QgsCoordinateReferenceSystem as text rasterio understands (EPSG code when it has one)."""
    authid = crs.authid()
    if authid.upper().startswith("EPSG:"):
        return authid
    return crs.toWkt(WKT_PREFERRED)


def _aoi_parameter(alg, parameters, context, extent_name: str, layer_name: str | None = None):
    """The core :class:`Aoi` of an extent parameter, else of a polygon layer (its polygons, not only their extent).

    None when neither is set.  A layer's polygons mask the run exactly as the CLI's ``--aoi FILE`` and the dock's
    polygon-layer AOI do.
    """
    from rasterio.crs import CRS

    from ..core.grid import Aoi

    if parameters.get(extent_name) not in (None, ""):
        rect = alg.parameterAsExtent(parameters, extent_name, context)
        crs = alg.parameterAsExtentCrs(parameters, extent_name, context)
        if rect.isNull() or rect.isEmpty():
            return None
        if not crs.isValid():
            raise QgsProcessingException(tr("The area of interest has no valid coordinate reference system"))
        bounds = (rect.xMinimum(), rect.yMinimum(), rect.xMaximum(), rect.yMaximum())
        return Aoi(bounds, CRS.from_user_input(_crs_text(crs)), source="QGIS Processing extent")
    layer = alg.parameterAsVectorLayer(parameters, layer_name, context) if layer_name else None
    if layer is None:
        return None
    from ..gui.aoi import aoi_from_features

    try:
        return aoi_from_features(layer.getFeatures(), layer.crs(), layer.source())
    except ValueError as exc:
        raise QgsProcessingException(str(exc)) from None


class _Base(QgsProcessingAlgorithm):
    """Group, translation and instance boilerplate shared by the provider's algorithms."""

    def group(self) -> str:
        return tr(GROUP)

    def groupId(self) -> str:  # noqa: N802
        return GROUP_ID

    def createInstance(self):  # noqa: N802
        return type(self)()

    def tr(self, text: str) -> str:
        return tr(text)

    def _advanced(self, param):
        param.setFlags(param.flags() | FLAG_ADVANCED)
        self.addParameter(param)


# --------------------------------------------------------------------------- (a) detect


# The A_ratio threshold rules, in the order the dialogs offer them; the first is the core's default rule.
RULE_MODES = ("k_sigma", "fixed", "percentile")
THRESHOLD_MODES = ("fixed", "percentile", "k_sigma")  # of "Candidates from a score raster" (probabilities too)
FIXED_THRESHOLD_START_DB = 2.0  # where a fixed-dB field starts when a user picks that rule (not a default rule)

# Parameters the detection algorithms share that are not detection settings (inputs, event, area, output).  The
# detection settings themselves (windows, masks, smoothing, grid, candidates) come from core/params.py, the one
# declaration the CLI and the dock use too (see ``_DetectBase._add_shared``).
_DETECT_PARAMETERS = {
    "SCENES": lambda name, d: QgsProcessingParameterFile(
        name, tr("Sentinel-1 scene folder"), behavior=FILE_FOLDER),
    "DEM": lambda name, d: QgsProcessingParameterRasterLayer(name, tr("DEM (elevation in metres)")),
    "EVENT_TIME": lambda name, d: QgsProcessingParameterString(
        name, tr("Event date-time (UTC, ISO-8601, e.g. 2018-09-05T18:07:59Z)")),
    "EVENT_ID": lambda name, d: QgsProcessingParameterString(
        name, tr("Event identifier (default: event_<date-time>)"), optional=True),
    "AOI": lambda name, d: QgsProcessingParameterExtent(name, tr("Area of interest (extent)"), optional=True),
    "AOI_LAYER": lambda name, d: QgsProcessingParameterVectorLayer(
        name, tr("Area of interest (polygon layer: its polygons mask the run; used when no extent is given)"),
        [SOURCE_VECTOR_POLYGON], optional=True),
    "THRESHOLD_MODE": lambda name, d: QgsProcessingParameterEnum(
        name, tr("Threshold rule"),
        options=[tr("Noise-scaled: median + k x robust sigma of the ratio (default)"), tr("Fixed threshold (dB)"),
                 tr("Percentile of the valid pixels")], defaultValue=0),
    "K_SIGMA": lambda name, d: QgsProcessingParameterNumber(
        name, tr("k (robust standard deviations above the median, when the rule is noise-scaled)"), NUMBER_DOUBLE,
        _default_k_sigma(), minValue=0.1, maxValue=20.0),
    "THRESHOLD": lambda name, d: QgsProcessingParameterNumber(
        name, tr("Threshold (dB, when the rule is 'fixed': A_ratio above it is a candidate)"), NUMBER_DOUBLE,
        FIXED_THRESHOLD_START_DB),
    "PERCENTILE": lambda name, d: QgsProcessingParameterNumber(
        name, tr("Percentile (when the rule is 'percentile')"), NUMBER_DOUBLE, 99.0, minValue=0.001,
        maxValue=99.999),
    "OUTPUT_FOLDER": lambda name, d: QgsProcessingParameterFolderDestination(name, tr("Output folder")),
}
RULE_PARAMETERS = ("THRESHOLD_MODE", "K_SIGMA", "THRESHOLD", "PERCENTILE")


def _default_k_sigma() -> float:
    from ..core.detect import DEFAULT_RULE

    return float(DEFAULT_RULE.get("k_sigma") or 2.25)


# The detection settings of each run type, in the order the dialogs show them.
RATIO_SETTINGS = ("PRE_DAYS", "POST_DAYS", "PRE_RANGE", "POST_RANGE", "POLARISATION", "MERGE_ORBITS",
                  "EDGE_NOISE_DB", "SPECKLE_SIGMA", "SLOPE_MIN", "CURV_MIN", "CURV_SIGMA", "CURV_RADIUS",
                  "WATER_MASK")
CANDIDATE_SETTINGS = ("DETREND_RADIUS", "SMOOTH_RATIO", "MIN_AREA", "HEATMAP_RADIUS")
GRID_SETTINGS = ("PIXEL_SIZE", "CRS", "BLOCK_SIZE")
# The U-Net run uses the recipe's polarisations and no speckle filter or terrain masks (the model learned them).
MODEL_SETTINGS = ("PRE_DAYS", "POST_DAYS", "PRE_RANGE", "POST_RANGE", "MERGE_ORBITS", "EDGE_NOISE_DB",
                  "WATER_MASK", "MIN_AREA", "HEATMAP_RADIUS")


class _DetectBase(_Base):
    """Parameter names, declarations, reading and outputs shared by the three detection algorithms."""

    SCENES = "SCENES"
    DEM = "DEM"
    EVENT_TIME = "EVENT_TIME"
    EVENT_ID = "EVENT_ID"
    AOI = "AOI"
    AOI_LAYER = "AOI_LAYER"
    PRE_DAYS = "PRE_DAYS"
    POST_DAYS = "POST_DAYS"
    POLARISATION = "POLARISATION"
    SLOPE_MIN = "SLOPE_MIN"
    MIN_AREA = "MIN_AREA"
    PIXEL_SIZE = "PIXEL_SIZE"
    BLOCK_SIZE = "BLOCK_SIZE"
    OUTPUT_FOLDER = "OUTPUT_FOLDER"
    A_RATIO = "A_RATIO"
    CANDIDATES = "CANDIDATES"
    HEATMAP = "HEATMAP"
    RUN_JSON = "RUN_JSON"
    N_CANDIDATES = "N_CANDIDATES"
    THRESHOLD_DB = "THRESHOLD_DB"

    @staticmethod
    def _defaults():
        from ..core.detect import DetectParams

        return DetectParams.__dataclass_fields__

    def _add_shared(self, *names: str) -> None:
        """Declare shared parameters in the order given: detection settings from core/params.py, the others from
        ``_DETECT_PARAMETERS``."""
        d = self._defaults()
        for name in names:
            if name in BY_PROCESSING_NAME:
                self.addParameter(make_parameter(BY_PROCESSING_NAME[name]))
            elif name in _DETECT_PARAMETERS:
                self.addParameter(_DETECT_PARAMETERS[name](name, d))
            # else: a setting declared ahead of its DetectParams field (core/params.py): not offered yet

    def _rule_fields(self, parameters, context) -> dict:
        """The threshold-rule fields of DetectParams from the rule parameters (RULE_PARAMETERS)."""
        from ..core.detect import threshold_rule_fields

        mode = RULE_MODES[self.parameterAsEnum(parameters, "THRESHOLD_MODE", context)]
        value = {"k_sigma": "K_SIGMA", "fixed": "THRESHOLD", "percentile": "PERCENTILE"}[mode]
        number = self.parameterAsDouble(parameters, value, context)
        field = {"fixed": "threshold_db"}.get(mode, mode)
        return threshold_rule_fields(**{field: number})

    def _add_ratio_outputs(self) -> None:
        """The outputs of an A_ratio run (local or Earth Engine)."""
        self.addOutput(QgsProcessingOutputRasterLayer(self.A_RATIO, tr("A_ratio (dB)")))
        self.addOutput(QgsProcessingOutputRasterLayer(self.HEATMAP, tr("Landslide density heatmap")))
        self.addOutput(QgsProcessingOutputVectorLayer(
            self.CANDIDATES, tr("Candidate landslides"), SOURCE_VECTOR_POLYGON))
        self.addOutput(QgsProcessingOutputFile(self.RUN_JSON, tr("Run record (run.json)")))
        self.addOutput(QgsProcessingOutputNumber(self.N_CANDIDATES, tr("Number of candidate polygons")))
        self.addOutput(QgsProcessingOutputNumber(self.THRESHOLD_DB, tr("Threshold used (dB)")))

    def _has(self, name: str) -> bool:
        return self.parameterDefinition(name) is not None

    def _detect_params(self, parameters, context, **overrides):
        """The core ``DetectParams`` of the shared parameters this algorithm declares; ``overrides`` win.

        The event time is parsed first (its error is the first reported); the area of interest is read from the
        extent, else the polygon layer, unless given as ``aoi``.  Fields of parameters the algorithm does not
        declare (polarisation, slope) keep the core defaults.
        """
        from ..core.catalog import parse_time
        from ..core.detect import DetectParams
        from ..core.params import detect_fields

        try:
            event_time = parse_time(self.parameterAsString(parameters, self.EVENT_TIME, context))
        except ValueError as exc:
            raise QgsProcessingException(str(exc)) from None
        fields = {"event_time": event_time,
                  "event_id": self.parameterAsString(parameters, self.EVENT_ID, context).strip()}
        if "aoi" not in overrides:
            fields["aoi"] = _aoi_parameter(self, parameters, context, self.AOI,
                                           self.AOI_LAYER if self._has(self.AOI_LAYER) else None)
        values = {spec.name: read_value(self, spec, parameters, context)
                  for name, spec in BY_PROCESSING_NAME.items() if self._has(name)}
        fields.update(detect_fields(values))
        fields.update(overrides)
        return DetectParams(**fields)

    def _ratio_results(self, result, params, context, feedback, a_ratio_label: str, candidates_label: str) -> dict:
        """Report an A_ratio run, load its layers on completion and return the algorithm's outputs."""
        feedback.pushInfo(tr("Threshold {:.3f} dB; {} candidate polygons").format(
            result.threshold_db, result.n_candidates))
        files = result.files
        event = result.run_info.get("event_id") or params.event_id or "event"
        cand_uri = f"{files['candidates']}|layername=candidates"
        _load_on_completion(context, str(files["a_ratio"]), a_ratio_label.format(event), self.A_RATIO, "raster",
                            "a_ratio", float(result.threshold_db))
        _load_on_completion(context, cand_uri, candidates_label.format(event), self.CANDIDATES, "vector",
                            "candidates")
        _load_evidence(context, files, event)
        return {
            self.OUTPUT_FOLDER: str(result.out_dir),
            self.A_RATIO: str(files["a_ratio"]),
            self.HEATMAP: str(files["heatmap"]),
            self.CANDIDATES: cand_uri,
            self.RUN_JSON: str(files["run"]),
            self.N_CANDIDATES: result.n_candidates,
            self.THRESHOLD_DB: float(result.threshold_db),
        }


class DetectLandslidesAlgorithm(_DetectBase):
    THRESHOLD_MODE = "THRESHOLD_MODE"
    THRESHOLD = "THRESHOLD"
    PERCENTILE = "PERCENTILE"

    def name(self) -> str:
        return "detect_a_ratio"

    def displayName(self) -> str:  # noqa: N802
        return tr("Detect landslides (A_ratio)")

    def tags(self):
        return [tr("landslide"), "Sentinel-1", "SAR", "A_ratio", tr("backscatter"), tr("change detection")]

    def shortHelpString(self) -> str:  # noqa: N802
        return tr(
            "Candidate landslides from the drop of Sentinel-1 backscatter after an event (the A_ratio method of "
            "Handwerger et al.).\n\n"
            "For each orbit track the median of the pre-event stack and of the post-event stack (dB) is taken; "
            "A_ratio = pre - post (positive = backscatter dropped, typical of a fresh scar in vegetation); "
            "ascending and descending ratios are averaged. Flat terrain is masked with the DEM's slope. Pixels "
            "above the threshold (a fixed value in dB, or an exact percentile of the valid pixels) become "
            "candidate polygons.\n\n"
            "Scene folder: one GeoTIFF per acquisition with the tags ACQUISITION_START, ORBIT_PASS, "
            "RELATIVE_ORBIT, UNITS, or ESA / ASF HyP3 file names, or a scenes.csv sidecar.\n"
            "Event time: ISO-8601 in UTC, e.g. 2018-09-05T18:07:59Z.\n"
            "Area of interest: optional; an extent (any CRS) or a polygon layer, whose polygons mask the run; "
            "default: the scenes' common area.\n"
            "Outputs in the output folder: a_ratio.tif, heatmap.tif, candidates.gpkg (status 'proposed', ready "
            "for review), run.json (inputs, scene ids, parameters, versions).\n\n") + tr(SYNTHETIC_NOTE)

    def initAlgorithm(self, config=None):  # noqa: N802
        self._add_shared(self.SCENES, self.DEM, self.EVENT_TIME, self.EVENT_ID, self.AOI, self.AOI_LAYER,
                         *RATIO_SETTINGS)
        self._add_shared(*RULE_PARAMETERS, *CANDIDATE_SETTINGS, *GRID_SETTINGS, self.OUTPUT_FOLDER)
        self._add_ratio_outputs()

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        from ..core.detect import run_detection

        scenes = self.parameterAsFile(parameters, self.SCENES, context)
        dem, _ = _layer_file(self.parameterAsRasterLayer(parameters, self.DEM, context), tr("The DEM"))
        out = self.parameterAsString(parameters, self.OUTPUT_FOLDER, context)
        params = self._detect_params(parameters, context, **self._rule_fields(parameters, context))
        fb = _Feedback(feedback)
        result = _core_call(run_detection, scenes, dem, out, params, progress=fb.progress,
                            is_cancelled=fb.is_cancelled)
        for warning in result.warnings:
            feedback.pushWarning(warning)
        if result.synthetic:
            feedback.pushInfo(tr("NOTE: the input scenes are SYNTHETIC (simulated); results are for trying the "
                                 "tool only."))
        return self._ratio_results(result, params, context, feedback, tr("A_ratio {}"), tr("Candidates {}"))


# --------------------------------------------------------------------------- (b) candidates from a raster


SCORE_KINDS = (("a_ratio", "dB"), ("model", "probability"))


class CandidatesFromRatioAlgorithm(_Base):
    INPUT = "INPUT"
    SCORE_KIND = "SCORE_KIND"
    THRESHOLD_MODE = "THRESHOLD_MODE"
    THRESHOLD = "THRESHOLD"
    PERCENTILE = "PERCENTILE"
    K_SIGMA = "K_SIGMA"
    MIN_AREA = "MIN_AREA"
    HEATMAP_RADIUS = "HEATMAP_RADIUS"
    EVENT_ID = "EVENT_ID"
    PREFIX = "PREFIX"
    OUTPUT_FOLDER = "OUTPUT_FOLDER"
    CANDIDATES = "CANDIDATES"
    EXCEEDANCE = "EXCEEDANCE"
    HEATMAP = "HEATMAP"
    N_CANDIDATES = "N_CANDIDATES"
    THRESHOLD_USED = "THRESHOLD_USED"

    def name(self) -> str:
        return "candidates_from_ratio"

    def displayName(self) -> str:  # noqa: N802
        return tr("Candidates from a ratio raster")

    def tags(self):
        return [tr("landslide"), tr("threshold"), tr("polygonize"), "A_ratio", tr("probability")]

    def shortHelpString(self) -> str:  # noqa: N802
        return tr(
            "Threshold a score raster (an A_ratio in dB, or a model's landslide probability) and turn the pixels "
            "above the threshold into candidate polygons, with the exceedance mask and a density heatmap. The "
            "threshold is a fixed value in the raster's units or an exact percentile of its valid pixels. "
            "Polygons smaller than the minimum area are dropped. Outputs are written into the output folder "
            "(file names start with the prefix, so an update does not replace the files of the original run). "
            "When the raster sits in a run folder, the event identifier is taken from its run.json.")

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(QgsProcessingParameterRasterLayer(self.INPUT, tr("Score raster (A_ratio or probability)")))
        self.addParameter(QgsProcessingParameterEnum(
            self.SCORE_KIND, tr("Score kind"), options=[tr("A_ratio (dB)"), tr("Model probability (0-1)")],
            defaultValue=0))
        self.addParameter(QgsProcessingParameterEnum(
            self.THRESHOLD_MODE, tr("Threshold rule"),
            options=[tr("Fixed threshold"), tr("Percentile of the valid pixels"),
                     tr("Noise-scaled: median + k x robust sigma")], defaultValue=0))
        self.addParameter(QgsProcessingParameterNumber(
            self.THRESHOLD, tr("Threshold (raster units; above it is a candidate)"),
            NUMBER_DOUBLE, FIXED_THRESHOLD_START_DB))
        self.addParameter(QgsProcessingParameterNumber(
            self.PERCENTILE, tr("Percentile (when the rule is 'percentile')"), NUMBER_DOUBLE,
            99.0, minValue=0.001, maxValue=99.999))
        self.addParameter(QgsProcessingParameterNumber(
            self.K_SIGMA, tr("k (when the rule is noise-scaled)"), NUMBER_DOUBLE, _default_k_sigma(),
            minValue=0.1, maxValue=20.0))
        self.addParameter(make_parameter(BY_PROCESSING_NAME[self.MIN_AREA]))
        self.addParameter(make_parameter(BY_PROCESSING_NAME[self.HEATMAP_RADIUS]))
        self.addParameter(QgsProcessingParameterString(
            self.EVENT_ID, tr("Event identifier (default: from run.json next to the raster)"), optional=True))
        self._advanced(QgsProcessingParameterString(self.PREFIX, tr("Output file name prefix"), "", optional=True))
        self.addParameter(QgsProcessingParameterFolderDestination(self.OUTPUT_FOLDER, tr("Output folder")))
        self.addOutput(QgsProcessingOutputVectorLayer(
            self.CANDIDATES, tr("Candidate landslides"), SOURCE_VECTOR_POLYGON))
        self.addOutput(QgsProcessingOutputRasterLayer(self.EXCEEDANCE, tr("Exceedance mask")))
        self.addOutput(QgsProcessingOutputRasterLayer(self.HEATMAP, tr("Landslide density heatmap")))
        self.addOutput(QgsProcessingOutputNumber(self.N_CANDIDATES, tr("Number of candidate polygons")))
        self.addOutput(QgsProcessingOutputNumber(self.THRESHOLD_USED, tr("Threshold used")))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        from ..core.candidates import ThresholdSpec, candidates_from_score

        score, _ = _layer_file(self.parameterAsRasterLayer(parameters, self.INPUT, context), tr("The score raster"))
        out = self.parameterAsString(parameters, self.OUTPUT_FOLDER, context)
        method, units = SCORE_KINDS[self.parameterAsEnum(parameters, self.SCORE_KIND, context)]
        mode = THRESHOLD_MODES[self.parameterAsEnum(parameters, self.THRESHOLD_MODE, context)]
        event_id = self.parameterAsString(parameters, self.EVENT_ID, context).strip()
        if not event_id:
            run_json = Path(score).with_name("run.json")
            try:
                event_id = str(json.loads(run_json.read_text()).get("event_id") or "")
            except (OSError, ValueError, AttributeError):
                event_id = ""
        spec = ThresholdSpec(
            threshold=self.parameterAsDouble(parameters, self.THRESHOLD, context) if mode == "fixed" else None,
            percentile=self.parameterAsDouble(parameters, self.PERCENTILE, context) if mode == "percentile" else None,
            k_sigma=self.parameterAsDouble(parameters, self.K_SIGMA, context) if mode == "k_sigma" else None,
            min_area_m2=self.parameterAsDouble(parameters, self.MIN_AREA, context),
            heatmap_radius_m=self.parameterAsDouble(parameters, self.HEATMAP_RADIUS, context),
            method=method, units=units, event_id=event_id,
        )
        fb = _Feedback(feedback)
        prefix = self.parameterAsString(parameters, self.PREFIX, context).strip()
        result = _core_call(candidates_from_score, score, out, spec, progress=fb.progress,
                            is_cancelled=fb.is_cancelled, prefix=prefix)
        feedback.pushInfo(tr("Threshold {:.4g}; {} candidate polygons").format(result.threshold, result.n_candidates))
        cand_uri = f"{result.files['candidates']}|layername=candidates"
        _load_on_completion(context, cand_uri, tr("Candidates (threshold {:.3g})").format(result.threshold),
                            self.CANDIDATES, "vector", "candidates")
        return {
            self.OUTPUT_FOLDER: str(result.out_dir),
            self.CANDIDATES: cand_uri,
            self.EXCEEDANCE: str(result.files.get("exceedance", "")),
            self.HEATMAP: str(result.files.get("heatmap", "")),
            self.N_CANDIDATES: result.n_candidates,
            self.THRESHOLD_USED: float(result.threshold),
        }


# --------------------------------------------------------------------------- (c) evaluate


EVAL_KINDS = ("auto", "mask", "score", "polygons")
METRIC_OUTPUTS = (  # (output name, report section, key, description)
    ("PRECISION", "pixel", "precision", "Pixel precision"),
    ("RECALL", "pixel", "recall", "Pixel recall"),
    ("F1", "pixel", "f1", "Pixel F1"),
    ("IOU", "pixel", "iou", "Pixel IoU"),
    ("MCC", "pixel", "mcc", "Pixel Matthews correlation coefficient"),
    ("AUPRC", "ranking", "average_precision", "Area under the precision-recall curve (scores only)"),
    ("NO_SKILL", "ranking", "no_skill", "No-skill AUPRC baseline (landslide pixel fraction)"),
    ("DETECTION_RATE", "objects", "detection_rate", "Object detection rate (landslides hit)"),
    ("N_TRUTH", "objects", "n_truth", "Reference landslides"),
    ("N_DETECTED", "objects", "n_detected", "Reference landslides detected"),
    ("N_FALSE_ALARMS", "objects", "n_false_alarms", "Predicted objects hitting no reference landslide"),
)


class EvaluateAlgorithm(_Base):
    PREDICTION = "PREDICTION"
    REFERENCE = "REFERENCE"
    KIND = "KIND"
    THRESHOLD = "THRESHOLD"
    GRID = "GRID"
    MIN_OVERLAP = "MIN_OVERLAP"
    OUTPUT_JSON = "OUTPUT_JSON"
    OUTPUT_HTML = "OUTPUT_HTML"
    SUMMARY = "SUMMARY"

    def name(self) -> str:
        return "evaluate"

    def displayName(self) -> str:  # noqa: N802
        return tr("Evaluate against a reference inventory")

    def tags(self):
        return [tr("landslide"), tr("accuracy"), "F1", "IoU", "MCC", "AUPRC", tr("validation")]

    def shortHelpString(self) -> str:  # noqa: N802
        return tr(
            "Compare a landslide map with a reference inventory, pixel by pixel and object by object.\n\n"
            "Prediction: a mask raster (non-zero = landslide), a score raster (A_ratio in dB or probability; "
            "predicted where score >= threshold, and the AUPRC is computed from the scores) or polygons in a "
            "GeoPackage. Reference: a 0/1 mask raster or polygons. When both are polygons, give a raster whose "
            "grid the evaluation uses. Grids that differ are reprojected onto the evaluation grid.\n\n"
            "Outputs: precision, recall, F1, IoU, MCC, AUPRC with its no-skill baseline, object detection rate "
            "and false alarms; optionally the full report as JSON and as an HTML page. GeoPackages are read "
            "from their first layer.")

    def initAlgorithm(self, config=None):  # noqa: N802
        types = [SOURCE_RASTER, SOURCE_VECTOR_POLYGON]
        self.addParameter(QgsProcessingParameterMapLayer(
            self.PREDICTION, tr("Prediction (mask / score raster, or polygons)"), types=types))
        self.addParameter(QgsProcessingParameterMapLayer(
            self.REFERENCE, tr("Reference inventory (mask raster or polygons)"), types=types))
        self.addParameter(QgsProcessingParameterEnum(
            self.KIND, tr("Prediction kind"),
            options=[tr("Automatic"), tr("Mask"), tr("Score"), tr("Polygons")], defaultValue=0))
        self.addParameter(QgsProcessingParameterNumber(
            self.THRESHOLD, tr("Score threshold (score rasters only; default 0.5 for probabilities)"),
            NUMBER_DOUBLE, optional=True))
        self.addParameter(QgsProcessingParameterRasterLayer(
            self.GRID, tr("Evaluation grid (required when both inputs are polygons)"), optional=True))
        self._advanced(QgsProcessingParameterNumber(
            self.MIN_OVERLAP, tr("Minimum overlap for an object to count as detected (0 = any)"),
            NUMBER_DOUBLE, 0.0, minValue=0.0, maxValue=1.0))
        self.addParameter(QgsProcessingParameterFileDestination(
            self.OUTPUT_JSON, tr("Report (JSON)"), "JSON files (*.json)", optional=True,
            createByDefault=False))
        self.addParameter(QgsProcessingParameterFileDestination(
            self.OUTPUT_HTML, tr("Report (HTML)"), "HTML files (*.html)", optional=True,
            createByDefault=False))
        for name, _, _, description in METRIC_OUTPUTS:
            self.addOutput(QgsProcessingOutputNumber(name, tr(description)))
        self.addOutput(QgsProcessingOutputString(self.SUMMARY, tr("Summary")))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        from ..commands.evaluate import summary
        from ..core.metrics import evaluate_files

        pred, _ = _layer_file(self.parameterAsLayer(parameters, self.PREDICTION, context), tr("The prediction"))
        truth, _ = _layer_file(self.parameterAsLayer(parameters, self.REFERENCE, context), tr("The reference"))
        grid = None
        if parameters.get(self.GRID) not in (None, ""):
            grid, _ = _layer_file(self.parameterAsRasterLayer(parameters, self.GRID, context),
                                  tr("The evaluation grid"))
        threshold = None
        if parameters.get(self.THRESHOLD) not in (None, ""):
            threshold = self.parameterAsDouble(parameters, self.THRESHOLD, context)
        feedback.setProgress(5)
        report = _core_call(
            evaluate_files, pred, truth, kind=EVAL_KINDS[self.parameterAsEnum(parameters, self.KIND, context)],
            threshold=threshold, grid=grid,
            min_overlap=self.parameterAsDouble(parameters, self.MIN_OVERLAP, context))
        feedback.setProgress(90)
        text = summary(report)
        for line in text.splitlines():
            feedback.pushInfo(line)
        results = {self.SUMMARY: text}
        for name, section, key, _ in METRIC_OUTPUTS:
            value = (report.get(section) or {}).get(key)
            results[name] = float(value) if value is not None else None
        json_path = self.parameterAsFileOutput(parameters, self.OUTPUT_JSON, context)
        if json_path:
            Path(json_path).write_text(json.dumps(report, indent=2, allow_nan=False) + "\n", encoding="utf-8")
            results[self.OUTPUT_JSON] = json_path
        html_path = self.parameterAsFileOutput(parameters, self.OUTPUT_HTML, context)
        if html_path:
            rows = "".join(f"<tr><td>{html.escape(tr(d))}</td><td>{'' if results[n] is None else f'{results[n]:.4g}'}"
                           f"</td></tr>" for n, _, _, d in METRIC_OUTPUTS)
            Path(html_path).write_text(
                "<!DOCTYPE html><html><head><meta charset='utf-8'><title>" + html.escape(tr("Evaluation report"))
                + "</title></head><body><h1>" + html.escape(tr("Landslide map evaluation")) + "</h1><table>"
                + rows + "</table><pre>" + html.escape(text) + "</pre></body></html>\n", encoding="utf-8")
            results[self.OUTPUT_HTML] = html_path
        return results


# --------------------------------------------------------------------------- (d) export to inventory


class ExportInventoryAlgorithm(_Base):
    CANDIDATES = "CANDIDATES"
    INVENTORY = "INVENTORY"
    REVIEWER = "REVIEWER"
    INCLUDE_REJECTED = "INCLUDE_REJECTED"
    EVENT_ID = "EVENT_ID"
    RUN_JSON = "RUN_JSON"
    ADDED = "ADDED"
    UPDATED = "UPDATED"
    UNCHANGED = "UNCHANGED"
    SKIPPED = "SKIPPED"
    TOTAL = "TOTAL"
    INVENTORY_LAYER = "INVENTORY_LAYER"

    def name(self) -> str:
        return "export_inventory"

    def displayName(self) -> str:  # noqa: N802
        return tr("Export reviewed polygons to inventory")

    def tags(self):
        return [tr("landslide"), tr("inventory"), tr("training"), tr("labels"), tr("review")]

    def shortHelpString(self) -> str:  # noqa: N802
        return tr(
            "Copy the reviewed candidate polygons (status accepted or edited, and rejected ones as labelled "
            "negatives unless switched off) into a training inventory GeoPackage, with provenance: uuid, event, "
            "source, status, reviewer, review time, method, threshold or model sha256, scene ids (from the "
            "run.json next to the candidates). The inventory is created when missing.\n\n"
            "One transaction: on any error the inventory is left as it was. Idempotent: a polygon already in "
            "the inventory (same uuid) is not added twice; one whose geometry or status changed is updated. "
            "Polygons drawn by hand without a uuid get one derived from the event and the geometry. Save your "
            "edits to the candidates layer before exporting.")

    def flags(self):
        # Reads the edit state of a project layer: run on the main thread (the export itself is fast).
        return super().flags() | FLAG_NO_THREADING

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(QgsProcessingParameterVectorLayer(
            self.CANDIDATES, tr("Reviewed candidates (GeoPackage layer)"), [SOURCE_VECTOR_POLYGON]))
        self.addParameter(QgsProcessingParameterFileDestination(
            self.INVENTORY, tr("Training inventory (GeoPackage; created if missing, otherwise appended to)"),
            "GeoPackage (*.gpkg)"))
        self.addParameter(QgsProcessingParameterString(self.REVIEWER, tr("Reviewer")))
        self.addParameter(QgsProcessingParameterBoolean(
            self.INCLUDE_REJECTED, tr("Also store rejected polygons (as negatives, status 'rejected')"), True))
        self._advanced(QgsProcessingParameterString(
            self.EVENT_ID, tr("Event identifier (overrides the features' event)"), optional=True))
        self._advanced(QgsProcessingParameterFile(
            self.RUN_JSON, tr("Run record (default: run.json next to the candidates)"), extension="json",
            optional=True))
        for name, description in ((self.ADDED, "Polygons added"), (self.UPDATED, "Polygons updated"),
                                  (self.UNCHANGED, "Polygons unchanged"),
                                  (self.SKIPPED, "Features skipped (not reviewed)"),
                                  (self.TOTAL, "Rows in the inventory")):
            self.addOutput(QgsProcessingOutputNumber(name, tr(description)))
        self.addOutput(QgsProcessingOutputVectorLayer(
            self.INVENTORY_LAYER, tr("Inventory layer"), SOURCE_VECTOR_POLYGON))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        from ..core.inventory import EXPORT_STATUSES, TRAINING_STATUSES, export_reviewed, inventory_counts

        layer = self.parameterAsVectorLayer(parameters, self.CANDIDATES, context)
        path, layer_name = _layer_file(layer, tr("The candidates layer"))
        if not path.lower().endswith(".gpkg"):
            raise QgsProcessingException(tr("The candidates layer must be stored in a GeoPackage (.gpkg)"))
        if layer.isEditable() and layer.isModified():
            raise QgsProcessingException(tr("The candidates layer has unsaved edits; save them (Toggle Editing > "
                                            "Save) and run the export again"))
        inventory = self.parameterAsFileOutput(parameters, self.INVENTORY, context)
        statuses = EXPORT_STATUSES if self.parameterAsBoolean(parameters, self.INCLUDE_REJECTED, context) \
            else TRAINING_STATUSES
        run_json = self.parameterAsFile(parameters, self.RUN_JSON, context) or None
        summary = _core_call(
            export_reviewed, path, inventory, reviewer=self.parameterAsString(parameters, self.REVIEWER, context),
            run_json=run_json, statuses=statuses, layer=layer_name,
            event_id=self.parameterAsString(parameters, self.EVENT_ID, context).strip() or None)
        for warning in summary.warnings:
            feedback.reportError(warning, False)
        feedback.pushInfo(summary.message())
        total = inventory_counts(inventory)["total"]
        uri = f"{inventory}|layername=landslides"
        _load_on_completion(context, uri, tr("Landslide inventory"), self.INVENTORY_LAYER, "vector")
        return {self.INVENTORY: inventory, self.INVENTORY_LAYER: uri, self.ADDED: summary.added,
                self.UPDATED: summary.updated, self.UNCHANGED: summary.unchanged, self.SKIPPED: summary.skipped,
                self.TOTAL: total}


# --------------------------------------------------------------------------- (e) detect with the U-Net model


def _shipped_model() -> str | None:
    """The model shipped with the plugin (models/landslide_unet.onnx), when it exists."""
    from ..commands.detect import shipped_model_path

    path = shipped_model_path()
    return str(path) if path.is_file() else None


class DetectModelAlgorithm(_DetectBase):
    MODEL = "MODEL"
    PROB_THRESHOLD = "PROB_THRESHOLD"
    AGREEMENT = "AGREEMENT"
    CPU_ONLY = "CPU_ONLY"
    WRITE_COMPOSITE = "WRITE_COMPOSITE"
    PROBABILITY = "PROBABILITY"
    THRESHOLD = "THRESHOLD"
    AGREEMENT_RASTER = "AGREEMENT_RASTER"

    def name(self) -> str:
        return "detect_model"

    def displayName(self) -> str:  # noqa: N802
        return tr("Detect landslides (U-Net model)")

    def tags(self):
        return [tr("landslide"), "Sentinel-1", "SAR", "U-Net", "ONNX", tr("deep learning"), tr("probability"),
                tr("agreement")]

    def shortHelpString(self) -> str:  # noqa: N802
        return tr(
            "Candidate landslides from an ONNX segmentation model (a U-Net trained by this project) run over "
            "the Sentinel-1 scenes of an event.\n\n"
            "The model file declares what it needs (composite of pre/post-event bands and terrain, "
            "normalisation, tile size, pixel size, probability threshold, orbit pass); the scenes are checked "
            "against it before any pixel is processed. Inference is tiled with blended overlaps; tracks and "
            "orbit passes are averaged. Pixels whose probability reaches the threshold (the model's own, "
            "unless overridden) become candidate polygons.\n\n"
            "Needs onnxruntime in the Python that runs QGIS (python -m pip install onnxruntime). Model file "
            "default: the plugin's models/landslide_unet.onnx when shipped.\n"
            "Scene folder, DEM, event time and area of interest: as for 'Detect landslides (A_ratio)'.\n"
            "Outputs in the output folder: probability.tif (0-1), exceedance.tif, heatmap.tif, candidates.gpkg "
            "(status 'proposed', with the model name and sha256), run.json (inputs, model sha256 and metadata, "
            "parameters). With 'also run A_ratio' the model run goes to <output>/model, the A_ratio run to "
            "<output>/a_ratio, and <output>/agreement.tif holds 0 neither, 1 A_ratio only, 2 model only, "
            "3 both.\n\n") + tr(SYNTHETIC_NOTE)

    def initAlgorithm(self, config=None):  # noqa: N802
        d = self._defaults()
        self._add_shared(self.SCENES, self.DEM, self.EVENT_TIME, self.EVENT_ID, self.AOI, self.AOI_LAYER)
        self.addParameter(QgsProcessingParameterFile(
            self.MODEL, tr("Model file (ONNX; default: the model shipped with the plugin)"), extension="onnx",
            defaultValue=_shipped_model(), optional=True))
        self.addParameter(QgsProcessingParameterNumber(
            self.PROB_THRESHOLD, tr("Probability threshold (0-1; default: the model's own)"),
            NUMBER_DOUBLE, optional=True, minValue=0.0, maxValue=1.0))
        self.addParameter(QgsProcessingParameterBoolean(
            self.AGREEMENT, tr("Also run A_ratio and write the agreement layer"), False))
        self._add_shared(*MODEL_SETTINGS)
        for name in RULE_PARAMETERS:  # the threshold rule of the A_ratio agreement run
            self._advanced(_DETECT_PARAMETERS[name](name, d))
        self._add_shared(*GRID_SETTINGS)
        self._advanced(QgsProcessingParameterBoolean(
            self.CPU_ONLY, tr("Run the model on the CPU even when a GPU is available"), False))
        self._advanced(QgsProcessingParameterBoolean(
            self.WRITE_COMPOSITE, tr("Also write the model's input (composite.tif per track, for the Deepness "
                                     "plugin)"), False))
        self._add_shared(self.OUTPUT_FOLDER)
        self.addOutput(QgsProcessingOutputRasterLayer(self.PROBABILITY, tr("Landslide probability")))
        self.addOutput(QgsProcessingOutputVectorLayer(
            self.CANDIDATES, tr("Candidate landslides"), SOURCE_VECTOR_POLYGON))
        self.addOutput(QgsProcessingOutputRasterLayer(self.HEATMAP, tr("Landslide density heatmap")))
        self.addOutput(QgsProcessingOutputFile(self.RUN_JSON, tr("Run record (run.json)")))
        self.addOutput(QgsProcessingOutputNumber(self.N_CANDIDATES, tr("Number of candidate polygons")))
        self.addOutput(QgsProcessingOutputNumber(self.THRESHOLD, tr("Probability threshold used")))
        self.addOutput(QgsProcessingOutputRasterLayer(
            self.AGREEMENT_RASTER, tr("Agreement (0 neither, 1 A_ratio only, 2 model only, 3 both)")))
        self.addOutput(QgsProcessingOutputRasterLayer(self.A_RATIO, tr("A_ratio (dB) of the agreement run")))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        from ..core.detect import run_detection
        from ..core.detect_model import run_model_detection, write_agreement
        from ..core.model import ModelError, require_onnxruntime

        try:
            require_onnxruntime()
        except ModelError as exc:
            raise QgsProcessingException(str(exc)) from None
        model = self.parameterAsFile(parameters, self.MODEL, context) or _shipped_model()
        if not model:
            raise QgsProcessingException(tr(
                "No model file given and no model shipped with the plugin (models/landslide_unet.onnx); choose an "
                "ONNX model file, or train one with `make train-demo`"))
        if not os.path.isfile(model):
            raise QgsProcessingException(tr("Model file {} does not exist").format(model))
        scenes = self.parameterAsFile(parameters, self.SCENES, context)
        dem, _ = _layer_file(self.parameterAsRasterLayer(parameters, self.DEM, context), tr("The DEM"))
        out = Path(self.parameterAsString(parameters, self.OUTPUT_FOLDER, context))
        threshold = None
        if parameters.get(self.PROB_THRESHOLD) not in (None, ""):
            threshold = self.parameterAsDouble(parameters, self.PROB_THRESHOLD, context)
        agreement = self.parameterAsBoolean(parameters, self.AGREEMENT, context)
        params = self._detect_params(parameters, context, **self._rule_fields(parameters, context))
        fb = _Feedback(feedback)
        # The model runs first: its file and its fit to the scenes are checked before any other work.
        model_dir = out / "model" if agreement else out
        result = _core_call(run_model_detection, scenes, dem, model_dir, params, model,
                            progress=fb.sub(0.0, 0.6) if agreement else fb.progress, is_cancelled=fb.is_cancelled,
                            threshold=threshold,
                            prefer_gpu=not self.parameterAsBoolean(parameters, self.CPU_ONLY, context),
                            write_composite=self.parameterAsBoolean(parameters, self.WRITE_COMPOSITE, context))
        for warning in result.warnings:
            feedback.pushWarning(warning)
        if result.synthetic:
            feedback.pushInfo(tr("NOTE: the input scenes are SYNTHETIC (simulated); results are for trying the "
                                 "tool only."))
        info = result.model
        feedback.pushInfo(tr("Model {} (sha256 {}...), composite {}, passes {}, onnxruntime provider {}").format(
            info.model_name, info.sha256[:16], info.composite, ", ".join(result.passes_used), result.provider))
        feedback.pushInfo(tr("Probability threshold {:.3f}; {} candidate polygons").format(
            result.threshold, result.n_candidates))
        files = result.files
        event = result.run_info.get("event_id") or params.event_id or "event"
        cand_uri = f"{files['candidates']}|layername=candidates"
        results = {
            self.OUTPUT_FOLDER: str(out),
            self.PROBABILITY: str(files["probability"]),
            self.CANDIDATES: cand_uri,
            self.HEATMAP: str(files["heatmap"]),
            self.RUN_JSON: str(files["run"]),
            self.N_CANDIDATES: result.n_candidates,
            self.THRESHOLD: float(result.threshold),
        }
        _load_on_completion(context, str(files["probability"]), tr("Probability {}").format(event),
                            self.PROBABILITY, "raster", "probability", float(result.threshold))
        _load_on_completion(context, cand_uri, tr("Model candidates {}").format(event), self.CANDIDATES, "vector",
                            "candidates")
        _load_evidence(context, files, event)
        if agreement:
            ratio = _core_call(run_detection, scenes, dem, out / "a_ratio", params, progress=fb.sub(0.6, 0.95),
                               is_cancelled=fb.is_cancelled)
            feedback.pushInfo(tr("A_ratio: threshold {:.3f} dB; {} candidate polygons").format(
                ratio.threshold_db, ratio.n_candidates))
            path = _core_call(write_agreement, out / "a_ratio", model_dir, out / "agreement.tif",
                              block_size=params.block_size, progress=fb.sub(0.95, 1.0),
                              is_cancelled=fb.is_cancelled)
            results[self.AGREEMENT_RASTER] = str(path)
            results[self.A_RATIO] = str(ratio.files["a_ratio"])
            _load_on_completion(context, str(path), tr("Agreement {}").format(event), self.AGREEMENT_RASTER,
                                "raster", "agreement")
        return results


# --------------------------------------------------------------------------- (f) detect on Google Earth Engine


ORBIT_PASSES = (None, "ASCENDING", "DESCENDING")


def _ee_project_setting() -> str:
    from qgis.core import QgsSettings

    return str(QgsSettings().value(EE_PROJECT_SETTING, "", type=str) or "")


class DetectEarthEngineAlgorithm(_DetectBase):
    PROJECT = "PROJECT"
    MODE = "MODE"
    ORBIT = "ORBIT_PASS"  # attribute not named *PASS*: bandit B105 reads it as a password
    THRESHOLD = "THRESHOLD"
    # The parameter name stays SERVICE_ACCOUNT_KEY (models and scripts use it); the attribute is named so that
    # secret scanners do not read "<...>_KEY = '...'" as a hard-coded key.
    CREDENTIALS_FILE = "SERVICE_ACCOUNT_KEY"
    CACHE_FOLDER = "CACHE_FOLDER"
    NO_CACHE = "NO_CACHE"

    def name(self) -> str:
        return "detect_earthengine"

    def displayName(self) -> str:  # noqa: N802
        return tr("Detect landslides (Google Earth Engine)")

    def tags(self):
        return [tr("landslide"), "Sentinel-1", "SAR", "A_ratio", "Google Earth Engine", "GEE", tr("cloud"),
                tr("change detection")]

    def shortHelpString(self) -> str:  # noqa: N802
        return tr(
            "The A_ratio detection (see 'Detect landslides (A_ratio)') on the Sentinel-1 archive of Google Earth "
            "Engine (COPERNICUS/S1_GRD, IW) instead of a local scene folder; the DEM is Copernicus GLO-30.\n\n"
            "Mode 'download': per orbit track the pre- and post-event median composites and the DEM are "
            "downloaded on the output grid and processed locally (kept in <output>/ee_inputs). Mode 'server': "
            "the ratio and the terrain mask are computed by Earth Engine and only they are downloaded (large "
            "areas).\n\n"
            "Needs the earthengine-api package (python -m pip install earthengine-api, or the Google Earth "
            "Engine QGIS plugin), an Earth Engine sign-in (the plugin dock's 'Sign in' button or `earthengine "
            "authenticate`; a service-account JSON key can be given instead) and a Google Cloud project id "
            "registered for Earth Engine (default: the one saved in the plugin's settings).\n"
            "Area of interest: required; an extent in any CRS.\n"
            "Outputs in the output folder: a_ratio.tif, heatmap.tif, candidates.gpkg (status 'proposed'), "
            "run.json (with the Earth Engine request: collection, filters, image ids, expressions). Downloads "
            "are cached in the user cache folder unless switched off.")

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(QgsProcessingParameterExtent(self.AOI, tr("Area of interest (extent)")))  # required here
        self._add_shared(self.EVENT_TIME, self.EVENT_ID)
        self.addParameter(QgsProcessingParameterString(
            self.PROJECT, tr("Google Cloud project id (registered for Earth Engine)"),
            defaultValue=_ee_project_setting(), optional=True))
        self.addParameter(QgsProcessingParameterEnum(
            self.MODE, tr("Mode"), options=[tr("Download composites, compute locally"),
                                            tr("Compute on Earth Engine, download the ratio")], defaultValue=0))
        self.addParameter(QgsProcessingParameterEnum(
            self.ORBIT, tr("Orbit pass"), options=[tr("Both"), tr("Ascending"), tr("Descending")],
            defaultValue=0))
        self._add_shared(*RATIO_SETTINGS, *RULE_PARAMETERS, *CANDIDATE_SETTINGS, *GRID_SETTINGS)
        self._advanced(QgsProcessingParameterFile(
            self.CREDENTIALS_FILE, tr("Service-account JSON key (instead of the user's sign-in)"),
            extension="json", optional=True))
        self._advanced(QgsProcessingParameterFile(
            self.CACHE_FOLDER, tr("Download cache folder (default: the user cache folder)"),
            behavior=FILE_FOLDER, optional=True))
        self._advanced(QgsProcessingParameterBoolean(self.NO_CACHE, tr("Do not cache downloads"), False))
        self._add_shared(self.OUTPUT_FOLDER)
        self._add_ratio_outputs()

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        from ..core.earthengine import MODES, run_earthengine_detection

        aoi = _aoi_parameter(self, parameters, context, self.AOI)
        if aoi is None:
            raise QgsProcessingException(tr("Earth Engine needs an area of interest: give an extent"))
        out = self.parameterAsString(parameters, self.OUTPUT_FOLDER, context)
        params = self._detect_params(parameters, context, aoi=aoi, **self._rule_fields(parameters, context))
        cache_dir = False if self.parameterAsBoolean(parameters, self.NO_CACHE, context) else (
            self.parameterAsFile(parameters, self.CACHE_FOLDER, context) or None)
        transport = EARTHENGINE_TRANSPORT_FACTORY() if EARTHENGINE_TRANSPORT_FACTORY is not None else None
        fb = _Feedback(feedback)
        result = _core_call(
            run_earthengine_detection, None, None, out, params,
            project=self.parameterAsString(parameters, self.PROJECT, context).strip() or None,
            mode=MODES[self.parameterAsEnum(parameters, self.MODE, context)],
            orbit_pass=ORBIT_PASSES[self.parameterAsEnum(parameters, self.ORBIT, context)],
            service_account_key=self.parameterAsFile(parameters, self.CREDENTIALS_FILE, context) or None,
            cache_dir=cache_dir, transport=transport, progress=fb.progress, is_cancelled=fb.is_cancelled)
        fb.progress(1.0)  # the download mode's last core step (per-pixel counts) stops short of 1.0
        for warning in result.warnings:
            feedback.pushWarning(warning)
        for line in result.selection.summary_lines():
            feedback.pushInfo(line)
        return self._ratio_results(result, params, context, feedback, tr("A_ratio {} (Earth Engine)"),
                                   tr("Candidates {} (Earth Engine)"))


ALGORITHMS: list = [
    DetectLandslidesAlgorithm,
    CandidatesFromRatioAlgorithm,
    EvaluateAlgorithm,
    ExportInventoryAlgorithm,
    DetectModelAlgorithm,
    DetectEarthEngineAlgorithm,
]
