"""The model-file contract: what an ONNX landslide model must declare in its ``metadata_props``.

Training writes these keys (:func:`metadata_props`), inference reads and
validates them (:func:`read_model_info`, :func:`check_model_fits`) before any
pixel is processed, so a model that does not fit the data fails with one
sentence instead of producing nonsense.

Tensor contract: one float32 input ``(batch, bands, rows, cols)`` with a
dynamic batch axis, bands in the order of the composite recipe, already
normalised as declared; one output ``(batch, 1, rows, cols)`` of landslide
probability in 0..1 (the sigmoid is part of the graph).

Keys (all values are strings; lists and mappings are JSON):

=========================  ===============================================
``landslide_sar.format``   contract version, currently ``"1"``
``composite``              recipe name in :data:`.recipes.RECIPES`
``composite_recipe``       the recipe as JSON (bands, pre, post, units)
``band_names``, ``units``  JSON lists, one entry per input band
``orbit_pass``             ``ASCENDING``, ``DESCENDING`` or ``any``
``normalisation``          JSON: ``{"kind": "standard", "mean": [..], "std": [..]}``
                           or ``{"kind": "minmax", "min": [..], "max": [..]}``
``nodata_fill``            value given to NaN inputs after normalisation
``tile_size``              square tile edge in pixels
``tile_overlap``           overlap between tiles in pixels
``threshold``              probability threshold for candidates
``pixel_size_m``           training pixel size
``model_name``, ``architecture``, ``training_events`` (JSON list),
``training_data_sha256``, ``synthetic_training_data`` (``true``/``false``)
``pixel_size_range_m``     optional JSON ``[lo, hi]``: pixel sizes the model was
                           trained on (it runs on grids within them without
                           resampling); absent = ``pixel_size_m`` only
``calibration``            optional JSON: how the output probability was
                           calibrated (already inside the graph; informative)
``real_background_training`` optional ``true``/``false``: some training chips
                           were real backscatter with synthetic slides imprinted
=========================  ===============================================

Deepness-compatible keys are written too (:func:`deepness_props`), so the
Deepness QGIS plugin (PUTvision/qgis-plugin-deepness) can run the model on a
run's ``composite_<track>.tif``.  Deepness ``json.loads`` every value, so each
one is JSON: ``model_type`` ``"Segmentor"`` (a JSON string, quotes included),
``class_names`` ``{"0": "background", "1": "landslide"}``, ``resolution``
(cm per pixel), ``tile_size`` (pixels), ``tiles_overlap`` (percent),
``standardization_mean``/``standardization_std`` (lists) and ``seg_thresh``.
Deepness divides every input by 255 *before* standardising, so the
standardisation it is given is ours divided by 255:
``(x / 255 - mean / 255) / (std / 255) == (x - mean) / std``.  It also needs a
fixed input size; ``training/export.py`` writes ``<name>_deepness.onnx`` with
a ``[batch, bands, tile, tile]`` input for it.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from .recipes import RECIPES, Recipe, RecipeError, get_recipe

FORMAT_VERSION = "1"
REQUIRED_KEYS = (
    "landslide_sar.format", "composite", "band_names", "normalisation", "tile_size", "tile_overlap", "threshold",
)


class ModelError(ValueError):
    """The model file is unreadable, incomplete, or does not fit the data; the message says which."""


@dataclass
class ModelInfo:
    """What a model declares about itself."""

    composite: str
    band_names: list[str]
    normalisation: dict
    tile_size: int
    tile_overlap: int
    threshold: float = 0.5
    units: list[str] = field(default_factory=list)
    orbit_pass: str = "any"
    nodata_fill: float = 0.0
    pixel_size_m: float = 10.0
    model_name: str = "landslide-unet"
    architecture: str = "unet"
    training_events: list[str] = field(default_factory=list)
    training_data_sha256: str = ""
    synthetic_training_data: bool = True
    recipe: dict = field(default_factory=dict)
    pixel_size_range_m: list[float] | None = None
    calibration: dict = field(default_factory=dict)
    real_background_training: bool = False
    path: Path | None = None
    sha256: str = ""
    opset: int | None = None
    ir_version: int | None = None

    @property
    def n_bands(self) -> int:
        return len(self.band_names)

    def get_recipe(self) -> Recipe:
        """The composite recipe, with the pre/post reductions the model was trained on."""
        try:
            return get_recipe(self.composite, pre=self.recipe.get("pre"), post=self.recipe.get("post"),
                              detrend_radius_m=self.recipe.get("detrend_radius_m"))
        except (RecipeError, TypeError, ValueError, AttributeError) as exc:  # composite_recipe of the wrong shape
            raise ModelError(f"the model's composite is not usable here: {exc}") from None

    def to_dict(self) -> dict:
        out = {k: v for k, v in self.__dict__.items() if k != "path"}
        out["path"] = str(self.path) if self.path else None
        return out


def metadata_props(info: ModelInfo) -> dict[str, str]:
    """The ``metadata_props`` key/value strings for ``info`` (our keys plus Deepness's)."""
    norm = info.normalisation
    if norm.get("kind") == "standard":
        mean, std = norm["mean"], norm["std"]
    elif norm.get("kind") == "minmax":  # x' = (x - min) / (max - min), i.e. mean=min, std=max-min
        mean, std = norm["min"], [hi - lo for lo, hi in zip(norm["min"], norm["max"])]
    else:
        raise ModelError(f"unknown normalisation kind {norm.get('kind')!r}; use 'standard' or 'minmax'")
    recipe = info.recipe or get_recipe(info.composite).to_dict()
    props = {
        "landslide_sar.format": FORMAT_VERSION,
        "composite": info.composite,
        "composite_recipe": json.dumps(recipe),
        "band_names": json.dumps(info.band_names),
        "units": json.dumps(info.units or recipe.get("units", [])),
        "orbit_pass": info.orbit_pass,
        "normalisation": json.dumps(norm),
        "nodata_fill": repr(float(info.nodata_fill)),
        "tile_size": str(int(info.tile_size)),
        "tile_overlap": str(int(info.tile_overlap)),
        "threshold": repr(float(info.threshold)),
        "pixel_size_m": repr(float(info.pixel_size_m)),
        "model_name": info.model_name,
        "architecture": info.architecture,
        "training_events": json.dumps(info.training_events),
        "training_data_sha256": info.training_data_sha256,
        "synthetic_training_data": "true" if info.synthetic_training_data else "false",
        **_optional_props(info),
        **deepness_props(info, mean, std),
    }
    return props


DEEPNESS_INPUT_SCALE = 255.0  # Deepness divides every input value by this before standardising


def deepness_props(info: ModelInfo, mean, std) -> dict[str, str]:
    """The keys the Deepness plugin reads, each a JSON value; ``mean``/``std`` are ours (raw units, e.g. dB)."""
    return {
        "model_type": json.dumps("Segmentor"),
        "class_names": json.dumps({"0": "background", "1": "landslide"}),
        "resolution": json.dumps(float(info.pixel_size_m) * 100.0),
        "tile_size": json.dumps(int(info.tile_size)),
        "tiles_overlap": json.dumps(round(100.0 * info.tile_overlap / info.tile_size)),
        "standardization_mean": json.dumps([float(v) / DEEPNESS_INPUT_SCALE for v in mean]),
        "standardization_std": json.dumps([float(v) / DEEPNESS_INPUT_SCALE for v in std]),
        "seg_thresh": json.dumps(float(info.threshold)),
    }


def neutral_inputs(info: ModelInfo) -> list[float]:
    """Per band, the raw value that normalises to ``nodata_fill``: what the network sees where an input is NaN.

    A composite written for other tools carries these instead of NaN, so they see exactly our network input.
    """
    norm, fill = info.normalisation, float(info.nodata_fill)
    if norm["kind"] == "standard":
        return [float(m) + fill * (float(s) if s else 1.0) for m, s in zip(norm["mean"], norm["std"])]
    return [float(lo) + fill * ((float(hi) - float(lo)) or 1.0) for lo, hi in zip(norm["min"], norm["max"])]


def _optional_props(info: ModelInfo) -> dict[str, str]:
    out = {}
    if info.pixel_size_range_m:
        out["pixel_size_range_m"] = json.dumps([float(v) for v in info.pixel_size_range_m])
    if info.calibration:
        out["calibration"] = json.dumps(info.calibration)
    if info.real_background_training:
        out["real_background_training"] = "true"
    return out


def pixel_size_range(info: ModelInfo) -> tuple[float, float]:
    """The pixel sizes (m) the model accepts: its training range, widened by 25 % on each side."""
    lo, hi = info.pixel_size_range_m or (info.pixel_size_m, info.pixel_size_m)
    return 0.75 * float(lo), 1.25 * float(hi)


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


MAX_TILE_SIZE = 2048  # a batch of 8 such tiles of 7 bands is 0.9 GB of float32; larger is not a tile
MAX_BANDS = 64


class _Meta:
    """Typed access to ``metadata_props`` with one-sentence :class:`ModelError` s naming the key and the value."""

    def __init__(self, props: dict[str, str], source: str):
        self.props, self.source = props, source

    def fail(self, key: str, why: str):
        value = self.props.get(key)
        shown = value if value is None or len(str(value)) <= 60 else str(value)[:57] + "..."
        raise ModelError(f"{self.source}: metadata {key} = {shown!r} {why}; re-export the model with this "
                         "project's training (training/README.md)")

    def text(self, key: str, default: str | None = None, *, choices=None) -> str:
        value = self.props.get(key, default)
        if not isinstance(value, str) or len(value) > 500:
            self.fail(key, "is not a short text")
        if choices is not None and value not in choices:
            self.fail(key, f"is not one of {', '.join(choices)}")
        return value

    def json(self, key: str, default: str, kind: type):
        try:
            value = json.loads(self.props.get(key, default))
        except (TypeError, ValueError, RecursionError):
            self.fail(key, "is not valid JSON")
        if not isinstance(value, kind):
            self.fail(key, f"is not a JSON {'list' if kind is list else 'object'}")
        return value

    def number(self, key: str, default: str | None = None, *, lo: float, hi: float, lo_open=False, hi_open=False,
               integer=False) -> float:
        raw = self.props.get(key, default)
        try:
            value = int(raw) if integer else float(raw)
        except (TypeError, ValueError, OverflowError):
            self.fail(key, f"is not {'a whole number' if integer else 'a number'}")
        below = value <= lo if lo_open else value < lo
        above = value >= hi if hi_open else value > hi
        if not math.isfinite(value) or below or above:
            interval = f"{'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
            self.fail(key, f"is outside {interval}")
        return value

    def numbers(self, key: str, values, n: int, *, positive: bool = False) -> list[float]:
        if not isinstance(values, list) or len(values) != n:
            self.fail(key, f"must give one number per band ({n})")
        out = []
        for v in values:
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                self.fail(key, "holds a value that is not a finite number")
            if positive and not v > 0:
                self.fail(key, "holds a zero or negative spread (std or max - min): the inputs would be divided by it")
            out.append(float(v))
        return out


def _parse_normalisation(meta: _Meta, n_bands: int) -> dict:
    norm = meta.json("normalisation", "null", dict)
    kind = norm.get("kind")
    if kind == "standard":
        mean = meta.numbers("normalisation", norm.get("mean"), n_bands)
        std = meta.numbers("normalisation", norm.get("std"), n_bands, positive=True)
        return {**norm, "mean": mean, "std": std}
    if kind == "minmax":
        lo = meta.numbers("normalisation", norm.get("min"), n_bands)
        hi = meta.numbers("normalisation", norm.get("max"), n_bands)
        meta.numbers("normalisation", [b - a for a, b in zip(lo, hi)], n_bands, positive=True)
        return {**norm, "min": lo, "max": hi}
    return meta.fail("normalisation", "has a kind other than 'standard' (mean, std) or 'minmax' (min, max)")


def info_from_props(props: dict[str, str], *, source: str = "the model") -> ModelInfo:
    """Parse ``metadata_props`` into :class:`ModelInfo`, checking every field's type and range first.

    Nothing is allocated from a value before it is checked (a tile size of
    100000 would ask for hundreds of GB), so a malformed model fails with one
    sentence naming the key, whatever the file holds.
    """
    if not isinstance(props, dict):
        raise ModelError(f"{source} has no metadata")
    missing = [k for k in REQUIRED_KEYS if k not in props]
    if missing:
        raise ModelError(f"{source} lacks the metadata key(s) {', '.join(missing)}; it was not exported by "
                         "this project's training (see training/README.md) or is from an older version")
    if props["landslide_sar.format"] != FORMAT_VERSION:
        raise ModelError(f"{source} uses metadata format {str(props['landslide_sar.format'])[:20]!r}, this plugin "
                         f"reads format {FORMAT_VERSION!r}; update the plugin")
    meta = _Meta(props, source)
    composite = meta.text("composite")
    if composite not in RECIPES:
        raise ModelError(f"{source} expects composite {composite!r}, unknown to this plugin "
                         f"(known: {', '.join(RECIPES)})")
    band_names = meta.json("band_names", "null", list)
    if not 1 <= len(band_names) <= MAX_BANDS or not all(isinstance(b, str) and b for b in band_names):
        meta.fail("band_names", f"is not a list of 1 to {MAX_BANDS} band names")
    n = len(band_names)
    tile = int(meta.number("tile_size", lo=8, hi=MAX_TILE_SIZE, integer=True))
    overlap = int(meta.number("tile_overlap", lo=0, hi=tile // 2, integer=True))
    units = meta.json("units", "[]", list)
    if units and (len(units) != n or not all(isinstance(u, str) for u in units)):
        meta.fail("units", f"must name one unit per band ({n})")
    events = meta.json("training_events", "[]", list)
    if not all(isinstance(e, str) for e in events):
        meta.fail("training_events", "is not a list of event names")
    return ModelInfo(
        composite=composite,
        band_names=band_names,
        normalisation=_parse_normalisation(meta, n),
        tile_size=tile,
        tile_overlap=overlap,
        threshold=meta.number("threshold", lo=0.0, hi=1.0, lo_open=True, hi_open=True),
        units=units,
        orbit_pass=meta.text("orbit_pass", "any", choices=("ASCENDING", "DESCENDING", "any")),
        nodata_fill=meta.number("nodata_fill", "0", lo=-1e6, hi=1e6),
        pixel_size_m=meta.number("pixel_size_m", "10", lo=0.1, hi=10_000.0),
        model_name=meta.text("model_name", "unnamed"),
        architecture=meta.text("architecture", "unknown"),
        training_events=events,
        training_data_sha256=meta.text("training_data_sha256", ""),
        synthetic_training_data=meta.text("synthetic_training_data", "true", choices=("true", "false")) == "true",
        recipe=meta.json("composite_recipe", "{}", dict),
        pixel_size_range_m=_pixel_size_range_prop(meta),
        calibration=meta.json("calibration", "{}", dict),
        real_background_training=meta.text("real_background_training", "false", choices=("true", "false")) == "true",
    )


def _pixel_size_range_prop(meta: _Meta) -> list[float] | None:
    """The optional ``pixel_size_range_m`` as ``[lo, hi]`` metres with 0 < lo <= hi, or None when absent."""
    if "pixel_size_range_m" not in meta.props:
        return None
    lo, hi = meta.numbers("pixel_size_range_m", meta.json("pixel_size_range_m", "null", list), 2, positive=True)
    if lo > hi:
        meta.fail("pixel_size_range_m", "has its smaller size last")
    return [lo, hi]


def read_model_info(path: str | Path) -> ModelInfo:
    """Read and check an ONNX model's declared contract (needs the ``onnx`` package or onnxruntime)."""
    p = Path(path)
    if not p.is_file():
        raise ModelError(f"model file {p} does not exist")
    props, opset, ir_version = _read_props(p)
    info = info_from_props(props, source=p.name)
    info.path, info.sha256, info.opset, info.ir_version = p, file_sha256(p), opset, ir_version
    return info


def _read_props(path: Path) -> tuple[dict[str, str], int | None, int | None]:
    try:
        import onnx
    except ImportError:
        onnx = None
    if onnx is not None:
        try:
            model = onnx.load(str(path), load_external_data=False)
        except Exception as exc:  # onnx raises DecodeError and others for non-ONNX files
            raise ModelError(f"{path.name} is not a readable ONNX model ({exc})") from None
        opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=None)
        return {p.key: p.value for p in model.metadata_props}, opset, int(model.ir_version)
    ort = require_onnxruntime()
    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise ModelError(f"{path.name} is not a readable ONNX model ({exc})") from None
    return dict(session.get_modelmeta().custom_metadata_map), None, None


ONNXRUNTIME_INSTALL = "python -m pip install onnxruntime"


def require_onnxruntime():
    """Import onnxruntime or explain exactly how to install it."""
    try:
        import onnxruntime
    except ImportError:
        raise ModelError("the deep-learning method needs onnxruntime, which is not installed in the Python that "
                         f"runs this plugin; install it with: {ONNXRUNTIME_INSTALL} (in the OSGeo4W Shell on "
                         "Windows)") from None
    return onnxruntime


def check_model_fits(info: ModelInfo, *, available_polarisations, n_post_scenes: int, pixel_size_m: float) -> None:
    """One-sentence :class:`ModelError` when the data cannot feed the model."""
    recipe = info.get_recipe()
    if len(recipe.bands) != info.n_bands:
        raise ModelError(f"the model expects {info.n_bands} input bands but its composite {info.composite} has "
                         f"{len(recipe.bands)}; the model file is inconsistent")
    missing = [p for p in recipe.polarisations() if p not in available_polarisations]
    if recipe.optional_polarisations() and len(missing) < len(recipe.polarisations()):
        missing = []  # the model takes a channel mask: one polarisation is enough
    if missing:
        raise ModelError(f"the model's composite {info.composite} needs {'+'.join(missing)}, which the scenes do "
                         "not hold")
    if n_post_scenes < recipe.min_post_scenes():
        raise ModelError(f"the model's composite {info.composite} needs {recipe.min_post_scenes()} post-event "
                         f"scenes per pass; only {n_post_scenes} are available (widen --post-days)")
    lo, hi = pixel_size_range(info)
    if not lo <= pixel_size_m <= hi:
        if info.pixel_size_range_m:
            lo_t, hi_t = info.pixel_size_range_m
            raise ModelError(f"the model was trained on {lo_t:g}-{hi_t:g} m pixels; run it at a pixel size in that "
                             f"range (--pixel-size {info.pixel_size_m:g}), not {pixel_size_m:g} m")
        raise ModelError(f"the model was trained at {info.pixel_size_m:g} m pixels; run it at that pixel size "
                         f"(--pixel-size {info.pixel_size_m:g}), not {pixel_size_m:g} m")
