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

Deepness-compatible keys are written too, so other QGIS tools can run the
model: ``model_type`` (``Segmentor``), ``class_names`` (JSON), ``resolution``
(cm per pixel), ``tiles_overlap`` (percent), ``standardization_mean``,
``standardization_std`` (JSON lists) and ``seg_thresh``.
"""

from __future__ import annotations

import hashlib
import json
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
        except RecipeError as exc:
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
        # Deepness (PUTvision/qgis-plugin-deepness) keys:
        "model_type": "Segmentor",
        "class_names": json.dumps({"0": "background", "1": "landslide"}),
        "resolution": repr(float(info.pixel_size_m) * 100.0),
        "tiles_overlap": str(round(100.0 * info.tile_overlap / info.tile_size)),
        "standardization_mean": json.dumps([float(v) for v in mean]),
        "standardization_std": json.dumps([float(v) for v in std]),
        "seg_thresh": repr(float(info.threshold)),
    }
    return props


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


def info_from_props(props: dict[str, str], *, source: str = "the model") -> ModelInfo:
    """Parse ``metadata_props`` (as a dict) into :class:`ModelInfo`; :class:`ModelError` if keys are missing."""
    missing = [k for k in REQUIRED_KEYS if k not in props]
    if missing:
        raise ModelError(f"{source} lacks the metadata key(s) {', '.join(missing)}; it was not exported by "
                         "this project's training (see training/README.md) or is from an older version")
    if props["landslide_sar.format"] != FORMAT_VERSION:
        raise ModelError(f"{source} uses metadata format {props['landslide_sar.format']}, this plugin reads "
                         f"format {FORMAT_VERSION}; update the plugin")
    try:
        info = ModelInfo(
            composite=props["composite"],
            band_names=json.loads(props["band_names"]),
            normalisation=json.loads(props["normalisation"]),
            tile_size=int(props["tile_size"]),
            tile_overlap=int(props["tile_overlap"]),
            threshold=float(props["threshold"]),
            units=json.loads(props.get("units", "[]")),
            orbit_pass=props.get("orbit_pass", "any"),
            nodata_fill=float(props.get("nodata_fill", "0")),
            pixel_size_m=float(props.get("pixel_size_m", "10")),
            model_name=props.get("model_name", "unnamed"),
            architecture=props.get("architecture", "unknown"),
            training_events=json.loads(props.get("training_events", "[]")),
            training_data_sha256=props.get("training_data_sha256", ""),
            synthetic_training_data=props.get("synthetic_training_data", "true") == "true",
            recipe=json.loads(props.get("composite_recipe", "{}")),
            pixel_size_range_m=json.loads(props["pixel_size_range_m"]) if "pixel_size_range_m" in props else None,
            calibration=json.loads(props.get("calibration", "{}")),
            real_background_training=props.get("real_background_training", "false") == "true",
        )
    except (ValueError, TypeError) as exc:
        raise ModelError(f"{source} has malformed metadata ({exc})") from None
    if info.composite not in RECIPES:
        raise ModelError(f"{source} expects composite {info.composite!r}, unknown to this plugin "
                         f"(known: {', '.join(RECIPES)})")
    norm = info.normalisation
    keys = ("mean", "std") if norm.get("kind") == "standard" else ("min", "max")
    if norm.get("kind") not in ("standard", "minmax") or any(len(norm.get(k, [])) != info.n_bands for k in keys):
        raise ModelError(f"{source}: the normalisation must give one value per band ({info.n_bands}) for "
                         "'standard' (mean, std) or 'minmax' (min, max)")
    if not 0 <= info.tile_overlap < info.tile_size // 2 + 1 or info.tile_size < 8:
        raise ModelError(f"{source}: tile size {info.tile_size} and overlap {info.tile_overlap} are inconsistent")
    return info


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
