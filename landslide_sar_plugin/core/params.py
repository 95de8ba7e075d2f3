"""One declaration of the detection parameters that the command line, Processing and the dock share.

Each :class:`ParamSpec` names a field of :class:`.detect.DetectParams`, its
label, help text, unit, limits and how "off" is spelled.  Defaults are NOT
repeated here: :meth:`ParamSpec.default` reads them from ``DetectParams``
every time, so changing a default there changes the CLI, the Processing
algorithms and the dock at once.

* the CLI builds its options with :func:`add_cli_arguments` and reads them back
  with :func:`values_from_namespace`;
* ``processing/parameters.py`` turns each spec into a ``QgsProcessingParameter``;
* the dock takes labels, units, limits and tooltips from :data:`SPECS`.

Every front end passes the values it collected, keyed by spec name, to
:func:`detect_fields`, which also fills the derived fields (the speckle and
ratio kernel radii are twice their sigma; ``merge_orbits`` is the inverse of
``per_orbit``).  This module imports neither QGIS nor Qt.
"""

from __future__ import annotations

import argparse
import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

# Value suggested when a user switches the curvature mask on: Handwerger et al.'s -0.005 1/m.  Not a default
# (the mask is off by default, see DetectParams.curv_min); the dock and Processing show it as the start value.
CURVATURE_SUGGESTED = -0.005

NUMBER, OPTIONAL_NUMBER, CHOICE, SWITCH, DATE_RANGE, RASTER_FILE, CRS_TEXT = (
    "number", "optional_number", "choice", "switch", "date_range", "raster_file", "crs")


@dataclass(frozen=True)
class ParamSpec:
    """How one detection parameter is named, explained, limited and defaulted in every front end."""

    name: str                 # key in the values passed to detect_fields (usually the DetectParams field)
    field: str                # DetectParams field it sets
    cli: str                  # command-line option
    processing: str           # Processing parameter name
    label: str                # short label (Processing, dock)
    help: str                 # one or two sentences (CLI help, Processing help, dock tooltip)
    kind: str = NUMBER
    unit: str = ""            # shown after values: "m", "deg", "dB", "days", "1/m", "m²", "px"
    minimum: float | None = None
    maximum: float | None = None
    integer: bool = False
    decimals: int = 1
    choices: tuple[str, ...] = ()
    advanced: bool = False
    metavar: str | None = None
    zero_is_off: bool = False  # OPTIONAL_NUMBER: 0 means "off" (slope) instead of an empty value
    none_help: str = ""       # what a None default means, e.g. "the finest input resolution"
    choices_from: str = ""    # CHOICE: name of a tuple in core/detect.py holding the choices (one source)

    def options(self) -> tuple[str, ...]:
        """The choices of a CHOICE parameter (read from core/detect.py when ``choices_from`` names them)."""
        if self.choices_from:
            from . import detect

            return tuple(getattr(detect, self.choices_from))
        return self.choices

    def default(self) -> Any:
        """The front-end value of DetectParams' default (read now, never copied)."""
        from .detect import DetectParams

        value = DetectParams.__dataclass_fields__[self.field].default
        if self.kind == SWITCH:
            return not value  # the switches say the inverse of their field: merge_orbits = not per_orbit
        return value

    def optional(self) -> bool:
        return self.kind in (OPTIONAL_NUMBER, DATE_RANGE, RASTER_FILE, CRS_TEXT) or self.default() is None

    def described_default(self) -> str:
        value = self.default()
        if value is None:
            return self.none_help or "off"
        if self.kind == SWITCH:
            return "on" if value else "off"
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        return f"{value}{' ' + self.unit if self.unit else ''}"


def _spec(*args, **kwargs) -> ParamSpec:
    return ParamSpec(*args, **kwargs)


_DECLARED: dict[str, ParamSpec] = {s.name: s for s in (
    _spec("pre_days", "pre_days", "--pre-days", "PRE_DAYS", "Pre-event window",
          "days before the event whose scenes form the pre-event stack", unit="days", minimum=1, maximum=3650,
          decimals=0, metavar="DAYS"),
    _spec("post_days", "post_days", "--post-days", "POST_DAYS", "Post-event window",
          "days after the event whose scenes form the post-event stack", unit="days", minimum=1, maximum=3650,
          decimals=0, metavar="DAYS"),
    _spec("pre_range", "pre_range", "--pre-range", "PRE_RANGE", "Pre-event date range (START/END, UTC)",
          "explicit pre-event date range, inclusive, in UTC, e.g. 2018-06-01/2018-09-05; replaces the pre-event "
          "window", kind=DATE_RANGE, metavar="START/END", advanced=True),
    _spec("post_range", "post_range", "--post-range", "POST_RANGE", "Post-event date range (START/END, UTC)",
          "explicit post-event date range, inclusive, in UTC; replaces the post-event window", kind=DATE_RANGE,
          metavar="START/END", advanced=True),
    _spec("polarisation", "polarisation", "--polarisation", "POLARISATION", "Polarisation",
          "polarisation of the ratio; 'both' averages the VV and VH ratios; 'auto' (where offered) does that when "
          "the stacks hold both and uses the one they hold otherwise", kind=CHOICE,
          choices_from="POLARISATION_CHOICES"),
    _spec("merge_orbits", "per_orbit", "--merge-orbits", "MERGE_ORBITS", "Merge relative orbits",
          "one median per pass over all relative orbits (Handwerger's scripts) instead of one median per relative "
          "orbit, averaged", kind=SWITCH, advanced=True),
    _spec("edge_noise_db", "edge_noise_db", "--edge-noise-db", "EDGE_NOISE_DB", "Frame-edge noise level",
          "backscatter at or below this is frame-edge noise and ignored", unit="dB", minimum=-100, maximum=0,
          advanced=True, metavar="DB"),
    _spec("speckle_sigma_m", "speckle_sigma_m", "--speckle-sigma", "SPECKLE_SIGMA", "Speckle smoothing sigma",
          "Gaussian speckle smoothing of each composite, sigma in metres (0 = off); the kernel radius is twice "
          "sigma", unit="m", minimum=0, maximum=500, metavar="M"),
    _spec("pixel_size", "pixel_size", "--pixel-size", "PIXEL_SIZE", "Output pixel size",
          "output pixel size in metres", unit="m", minimum=0.1, maximum=1000, metavar="M", advanced=True,
          none_help="the finest resolution of the input scenes"),
    _spec("crs", "crs", "--crs", "CRS", "Output CRS",
          "output coordinate reference system (default: the scenes' projected CRS, else the UTM zone of the AOI)",
          kind=CRS_TEXT, advanced=True),
    _spec("block_size", "block_size", "--block-size", "BLOCK_SIZE", "Processing block size",
          "processing block edge in pixels (memory grows with its square and the stack depth)", unit="px",
          minimum=64, maximum=16384, integer=True, decimals=0, metavar="PX", advanced=True),
    _spec("workers", "workers", "--workers", "WORKERS", "Worker threads",
          "worker threads over the blocks (0 = every available core; 1 = no parallelism); the output does not "
          "depend on it. In QGIS, leave one core for the map: cores - 1", minimum=0, maximum=256, integer=True,
          decimals=0, metavar="N", advanced=True),
    _spec("no_pass_rasters", "pass_rasters", "--no-pass-rasters", "NO_PASS_RASTERS",
          "Skip the per-pass ratio, count and background rasters",
          "do not write a_ratio_<pass>.tif, counts.tif and background_change.tif (the candidates do not change)",
          kind=SWITCH, advanced=True),
    _spec("slope_min_deg", "slope_min_deg", "--slope-min", "SLOPE_MIN", "Minimum slope",
          "keep pixels with slope >= this many degrees (0 or 'none' = no slope mask)", kind=OPTIONAL_NUMBER,
          unit="deg", minimum=0, maximum=90, zero_is_off=True, metavar="DEG"),
    _spec("curv_min", "curv_min", "--curv-min", "CURV_MIN", "Minimum curvature (convex terrain mask)",
          "keep pixels with Laplacian curvature >= this, in 1/m (negative = convex; Handwerger et al. used -0.005, "
          "which removes ridge crests; empty or 'none' = no curvature mask)", kind=OPTIONAL_NUMBER, unit="1/m",
          minimum=-1, maximum=1, decimals=4, metavar="1/M"),
    _spec("curv_sigma_m", "curv_sigma_m", "--curv-sigma", "CURV_SIGMA", "Curvature smoothing sigma",
          "sigma of the Gaussian DEM smoothing before curvature, metres", unit="m", minimum=0, maximum=2000,
          metavar="M", advanced=True),
    _spec("curv_radius_m", "curv_radius_m", "--curv-radius", "CURV_RADIUS", "Curvature smoothing radius",
          "radius of that Gaussian kernel, metres", unit="m", minimum=0, maximum=5000, metavar="M", advanced=True),
    _spec("water_mask", "water_mask", "--water-mask", "WATER_MASK", "Water mask",
          "raster, non-zero = water (excluded)", kind=RASTER_FILE, metavar="FILE"),
    _spec("detrend_radius_m", "detrend_radius_m", "--detrend", "DETREND_RADIUS", "Detrend radius",
          "remove the broad background change before thresholding: subtract the ratio's local median within this "
          "many metres (0 = off)", unit="m", minimum=0, maximum=100000, decimals=0, metavar="M", advanced=True),
    _spec("ratio_sigma_m", "ratio_sigma_m", "--smooth-ratio", "SMOOTH_RATIO", "Ratio smoothing sigma",
          "Gaussian smoothing of the ratio before thresholding, sigma in metres (0 = off)", unit="m", minimum=0,
          maximum=500, metavar="M", advanced=True),
    _spec("min_area_m2", "min_area_m2", "--min-area", "MIN_AREA", "Minimum polygon area",
          "drop candidate polygons smaller than this, square metres", unit="m²", minimum=0, maximum=1e9,
          decimals=0, metavar="M2"),
    _spec("heatmap_radius_m", "heatmap_radius_m", "--heatmap-radius", "HEATMAP_RADIUS", "Heatmap radius",
          "radius of the landslide-density heatmap, metres", unit="m", minimum=0, maximum=100000, decimals=0,
          metavar="M"),
)}


def _fields() -> set[str]:
    import dataclasses

    from .detect import DetectParams

    return {f.name for f in dataclasses.fields(DetectParams)}


# Only the parameters this version's DetectParams has (a spec may be declared ahead of its field).
SPECS: dict[str, ParamSpec] = {n: s for n, s in _DECLARED.items() if s.field in _fields()}


def _present(*names: str) -> tuple[str, ...]:
    return tuple(n for n in names if n in SPECS)


# The groups of the command line (argparse groups of `detect`), in the order they are shown.
STACK_PARAMS = _present("pre_days", "post_days", "pre_range", "post_range", "polarisation", "merge_orbits",
                        "edge_noise_db", "speckle_sigma_m")
GRID_PARAMS = _present("pixel_size", "crs", "block_size", "workers", "no_pass_rasters")
TERRAIN_PARAMS = _present("slope_min_deg", "curv_min", "curv_sigma_m", "curv_radius_m", "water_mask")
CANDIDATE_PARAMS = _present("detrend_radius_m", "ratio_sigma_m", "min_area_m2", "heatmap_radius_m")


# --------------------------------------------------------------------------- parsing shared by every front end


def parse_date_range(text: str) -> tuple[dt.datetime, dt.datetime]:
    """``START/END`` (ISO-8601, UTC) -> two datetimes; ValueError with the expected form otherwise."""
    from .catalog import parse_time

    parts = str(text).split("/")
    if len(parts) != 2 or not all(p.strip() for p in parts):
        raise ValueError(f"{text!r}: give START/END, e.g. 2018-06-01/2018-09-05")
    start, end = parse_time(parts[0].strip()), parse_time(parts[1].strip())
    if end < start:
        raise ValueError(f"{text!r}: the end of the date range lies before its start")
    return start, end


def parse_optional_number(text) -> float | None:
    """``none``/``off``/empty -> None, else a float (ValueError if not a number)."""
    if text is None or str(text).strip().lower() in ("", "none", "off"):
        return None
    return float(text)


def detect_fields(values: Mapping[str, Any]) -> dict[str, Any]:
    """DetectParams keyword arguments from front-end ``values`` keyed by spec name; derived fields filled in.

    Names not in ``values`` are left out, so DetectParams keeps its defaults for them.
    """
    out: dict[str, Any] = {}
    for name, value in values.items():
        spec = SPECS[name]
        if spec.kind == SWITCH:
            out[spec.field] = not bool(value)
        elif spec.kind == OPTIONAL_NUMBER and spec.zero_is_off and value is not None and float(value) <= 0:
            out[spec.field] = None
        elif spec.kind == RASTER_FILE or spec.kind == CRS_TEXT:
            out[spec.field] = value or None
        else:
            out[spec.field] = value
    if "speckle_sigma_m" in values:
        out["speckle_radius_m"] = 2 * float(values["speckle_sigma_m"])
    if "ratio_sigma_m" in values:
        out["ratio_radius_m"] = 2 * float(values["ratio_sigma_m"])
    return out


# --------------------------------------------------------------------------- command line


def _cli_type(spec: ParamSpec) -> Callable[[str], Any]:
    def convert(text: str):
        try:
            if spec.kind == DATE_RANGE:
                return parse_date_range(text)
            if spec.kind == OPTIONAL_NUMBER:
                return parse_optional_number(text)
            return int(text) if spec.integer else float(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    convert.__name__ = spec.kind  # argparse names the type in its "invalid value" message
    return convert


def add_cli_arguments(group, *names: str) -> None:
    """Add the options of ``names`` to an argparse group; defaults are DetectParams', shown by the formatter."""
    for name in names:
        spec = SPECS[name]
        text = spec.help if spec.default() is not None or not spec.none_help else f"{spec.help}; by default "\
            f"{spec.none_help}"
        if spec.kind == SWITCH:
            group.add_argument(spec.cli, dest=name, action="store_true", help=spec.help)
        elif spec.kind == CHOICE:
            group.add_argument(spec.cli, dest=name, choices=spec.options(), default=spec.default(), help=text)
        elif spec.kind in (RASTER_FILE, CRS_TEXT):
            group.add_argument(spec.cli, dest=name, metavar=spec.metavar, default=spec.default(), help=text)
        else:
            group.add_argument(spec.cli, dest=name, type=_cli_type(spec), metavar=spec.metavar,
                               default=spec.default(), help=text)


def values_from_namespace(args: argparse.Namespace, names: Iterable[str] | None = None) -> dict[str, Any]:
    """The values of the shared options present in ``args`` (all of SPECS when ``names`` is None)."""
    return {n: getattr(args, n) for n in (names or SPECS) if hasattr(args, n)}
