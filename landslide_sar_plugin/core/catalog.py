"""Scene catalogue: which Sentinel-1 acquisitions a folder holds, and which go in the pre and post stacks.

Per acquisition the engine needs its start time (UTC), orbit pass, relative
orbit, units (dB or linear) and where each polarisation is stored.  They come,
in increasing priority, from:

1. well-known file names: ESA product ids
   (``S1A_IW_GRDH_1SDV_20180905T083512_20180905T083537_023561_029117_8F1E``),
   ASF HyP3 RTC names (``S1A_IW_20180905T083512_DVP_RTC30_G_gpuned_5A1B_VH.tif``)
   and NASA OPERA RTC-S1 names
   (``OPERA_L2_RTC-S1_T137-292320-IW2_20231203T015911Z_20231203T124004Z_S1A_30_v1.0_VH.tif``,
   see :mod:`.sources.opera`);
2. the tags of OPERA RTC-S1 products (``ZERO_DOPPLER_START_TIME``,
   ``ORBIT_PASS_DIRECTION``, ``TRACK_NUMBER`` ...), then GeoTIFF tags
   ``ACQUISITION_START`` (ISO-8601), ``ORBIT_PASS``, ``RELATIVE_ORBIT``,
   ``UNITS`` and ``POLARISATIONS`` and band descriptions ``VV``/``VH``;
3. a sidecar ``scenes.csv`` or ``scenes.json`` in the folder, one row per file
   (column ``file`` plus any of ``acquisition_start``, ``orbit_pass``,
   ``relative_orbit``, ``units``, ``polarisations``), which overrides both.

Units fall back to value statistics (with a warning) when nothing states them;
the orbit pass falls back to the local solar time of the acquisition (Sentinel-1
crosses the equator northbound near 18:00 and southbound near 06:00 local
time), also with a warning.

**Scenes.** Files of one acquisition are one :class:`Scene`: one file per
polarisation (HyP3, OPERA), and several pieces of one polarisation (OPERA
bursts, GRD frames, tiles) that the grid reader mosaics (:class:`.grid.MosaicOnGrid`).
An acquisition is the files of one sensor, orbit pass and relative orbit whose
start times lie within :data:`ACQUISITION_TOLERANCE_S` of each other (bursts of
one acquisition start seconds apart; two acquisitions of one track are days
apart).  Two files that hold the same polarisation of the same piece
(the same OPERA burst, or the same start time and footprint) are duplicates:
one is used, the other is listed as skipped with the reason.  Every file says
which product type it was read as (:data:`Scene.file_products`).
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import logging
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .isotime import parse_iso_utc
from .sources import opera

log = logging.getLogger(__name__)

RASTER_SUFFIXES = (".tif", ".tiff", ".gtiff")
PASSES = ("ASCENDING", "DESCENDING")
POLARISATIONS = ("VV", "VH", "HH", "HV")
UNITS = ("dB", "linear", "amplitude")

# Sentinel-1 product names.  Relative orbit from the absolute orbit number
# (ESA's formula: S1A (abs - 73) mod 175 + 1, S1B (abs - 27) mod 175 + 1).
_ESA_NAME = re.compile(
    r"(?P<platform>S1[ABCD])_IW_GRD[HM]_1S(?P<pol>[DS][VH])_(?P<start>\d{8}T\d{6})_\d{8}T\d{6}_"
    r"(?P<abs_orbit>\d{6})_[0-9A-F]{6}_[0-9A-F]{4}",
    re.IGNORECASE,
)
_HYP3_NAME = re.compile(
    r"(?P<platform>S1[ABCD])_IW_(?P<start>\d{8}T\d{6})_(?P<pols>[DS][VH])[PRO]_RTC\d+_[GU]_"
    r"(?P<scale>[gs])(?P<unit>[pad])[a-z]{4}_[0-9A-F]{4}_(?P<band>VV|VH|HH|HV)",
    re.IGNORECASE,
)
_REL_ORBIT_OFFSET = {"S1A": 73, "S1B": 27, "S1C": 172, "S1D": 172}
_POL_SUFFIX = re.compile(r"(?:^|[_\-.])(VV|VH|HH|HV)(?:[_\-.]|$)", re.IGNORECASE)
# Files of one sensor and track starting within this many seconds are one acquisition: the bursts of one
# Sentinel-1 data take start ~2.8 s apart (a 2000 km take lasts ~5 min); one track is revisited after >= 6 days.
ACQUISITION_TOLERANCE_S = 300.0
# Two pieces of one polarisation whose footprints overlap by more than this share of the smaller are duplicates.
_DUPLICATE_OVERLAP = 0.5
# Product types, as the scene table, the stack summary and run.json name them.
PRODUCT_ESA_GRD = "ESA GRD"
PRODUCT_HYP3 = "ASF HyP3 RTC"
PRODUCT_TAGGED = "tagged GeoTIFF"
PRODUCT_SIDECAR = "GeoTIFF + scenes sidecar"
PRODUCT_SIMULATED = "simulated (SYNTHETIC)"


class CatalogError(ValueError):
    """The scene folder or the stack selection cannot give an A_ratio; the message says why."""


@dataclass
class BandRef:
    """Where one polarisation of one acquisition is stored.

    Usually one band of one file.  An acquisition cut into pieces (OPERA
    bursts, GRD frames, tiles) keeps its first piece in ``path``/``band`` and
    the others in ``extra``; :meth:`pieces` lists them all, and readers must
    go through it (``open_stack_readers`` in :mod:`.detect` does).
    """

    path: Path
    band: int  # 1-based band index in ``path``
    extra: tuple[BandRef, ...] = ()  # further pieces of the same polarisation and acquisition

    def pieces(self) -> list[BandRef]:
        """Every file piece of this polarisation, the first one first (each a one-file BandRef)."""
        return [BandRef(self.path, self.band), *self.extra]


@dataclass
class Scene:
    """One Sentinel-1 acquisition (one date, one pass, one relative orbit)."""

    scene_id: str
    acquisition_start: dt.datetime  # timezone-aware UTC
    orbit_pass: str  # ASCENDING | DESCENDING
    relative_orbit: int | None
    units: str  # dB | linear | amplitude (or "mixed" for merged files; see file_units)
    bands: dict[str, BandRef]  # polarisation -> location
    synthetic: bool = False
    file_units: dict[str, str] = field(default_factory=dict)  # path -> units, for merged files
    file_products: dict[str, str] = field(default_factory=dict)  # path -> product type the file was read as
    platform: str | None = None  # S1A | S1B | ... when a name or tag says
    bursts: tuple[str, ...] = ()  # OPERA burst ids (T137-292320-IW2) mosaicked into this scene

    @property
    def track(self) -> tuple[str, int | None]:
        return (self.orbit_pass, self.relative_orbit)

    @property
    def product(self) -> str:
        """The product type of the scene's files (``mixed: A, B`` when they differ)."""
        kinds = sorted(set(self.file_products.values()))
        if not kinds:
            return "unknown"
        return kinds[0] if len(kinds) == 1 else "mixed: " + ", ".join(kinds)

    def file_paths(self) -> list[Path]:
        """Every file the scene reads, in name order."""
        return sorted({p.path for ref in self.bands.values() for p in ref.pieces()})

    def to_dict(self) -> dict:
        return {
            "scene_id": self.scene_id,
            "acquisition_start": iso_utc(self.acquisition_start),
            "orbit_pass": self.orbit_pass,
            "relative_orbit": self.relative_orbit,
            "units": self.units,
            "polarisations": sorted(self.bands),
            "files": [str(p) for p in self.file_paths()],
            "product": self.product,
            "file_products": {str(p): self.file_products.get(str(p), "unknown") for p in self.file_paths()},
            "pieces": {pol: len(ref.pieces()) for pol, ref in sorted(self.bands.items())},
            "platform": self.platform,
            "bursts": list(self.bursts),
            "synthetic": self.synthetic,
        }


@dataclass
class Catalog:
    scenes: list[Scene]
    skipped: list[tuple[Path, str]]  # (file, reason)
    warnings: list[str]


def iso_utc(t: dt.datetime) -> str:
    return t.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> dt.datetime:
    """Parse an ISO-8601 time (or ``YYYYmmddTHHMMSS``); naive times are taken as UTC."""
    s = str(text).strip()
    if re.fullmatch(r"\d{8}T\d{6}", s):
        try:
            t = dt.datetime.strptime(s, "%Y%m%dT%H%M%S")
        except ValueError:
            raise CatalogError(f"{text!r} is not a valid date and time") from None
    else:
        try:
            return parse_iso_utc(s)
        except ValueError:
            raise CatalogError(f"{text!r} is not an ISO-8601 date or time (e.g. 2018-09-06T03:08Z)") from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.timezone.utc)
    return t.astimezone(dt.timezone.utc)


def _norm_pass(value: str) -> str:
    v = str(value).strip().upper()
    aliases = {"ASC": "ASCENDING", "A": "ASCENDING", "DESC": "DESCENDING", "DSC": "DESCENDING", "D": "DESCENDING"}
    v = aliases.get(v, v)
    if v not in PASSES:
        raise CatalogError(f"orbit pass {value!r} is neither ASCENDING nor DESCENDING")
    return v


def _norm_units(value: str) -> str:
    v = str(value).strip().lower()
    if v in ("db", "decibel", "decibels"):
        return "dB"
    if v in ("linear", "power", "intensity", "natural", "float"):
        return "linear"
    if v == "amplitude":
        return "amplitude"  # converted with 20*log10, not 10*log10
    raise CatalogError(f"units {value!r} are not dB, linear (power) or amplitude")


def _pols_from_text(value) -> list[str]:
    if isinstance(value, (list, tuple)):  # scenes.json: "polarisations": ["VV", "VH"]
        value = ",".join(str(v) for v in value)
    return [p for p in re.split(r"[,;+ /]+", str(value).strip().upper()) if p]


# --------------------------------------------------------------------------- per file


@dataclass
class _FileInfo:
    path: Path
    start: dt.datetime | None = None
    orbit_pass: str | None = None
    relative_orbit: int | None = None
    units: str | None = None
    band_pols: dict[str, int] = field(default_factory=dict)
    synthetic: bool = False
    platform: str | None = None
    centre_lon: float | None = None
    unit_guess: tuple[str, str] | None = None  # (units, reason) from statistics
    sources: dict[str, str] = field(default_factory=dict)
    product: str | None = None  # product type from the name or the product's tags
    opera_name: opera.OperaName | None = None
    burst_id: str | None = None
    not_backscatter: str | None = None  # why a recognised product file holds no backscatter (skipped)
    footprint: tuple[float, float, float, float] | None = None  # lon/lat bounds
    dtype: str = "float32"
    sample: np.ndarray | None = None  # finite values of band 1 from a few small windows (plausibility checks)


def _from_name(info: _FileInfo) -> None:
    name = info.path.name
    if _from_opera_name(info):
        return
    m = _ESA_NAME.search(name)
    if m:
        info.platform = m["platform"].upper()
        info.start = parse_time(m["start"])
        info.relative_orbit = (int(m["abs_orbit"]) - _REL_ORBIT_OFFSET[info.platform]) % 175 + 1
        info.sources.update(start="file name", relative_orbit="file name")
        info.product = PRODUCT_ESA_GRD
        return
    m = _HYP3_NAME.search(name)
    if m:
        info.platform = m["platform"].upper()
        info.start = parse_time(m["start"])
        info.units = {"d": "dB", "p": "linear", "a": "amplitude"}[m["unit"].lower()]
        if m["unit"].lower() == "a":
            info.sources["amplitude"] = "file name"
        info.band_pols = {m["band"].upper(): 1}
        info.sources.update(start="file name", units="file name", polarisations="file name")
        info.product = PRODUCT_HYP3


def _from_opera_name(info: _FileInfo) -> bool:
    """Fill ``info`` from an OPERA RTC-S1 name; True if the name is one (static layers included)."""
    name = info.path.name
    if opera.is_static_layer(name):
        info.product = opera.PRODUCT_TYPE + " static layer"
        info.not_backscatter = "an OPERA RTC-S1-STATIC layer (radar geometry, not backscatter)"
        return True
    try:
        parsed = opera.parse_name(name)
    except opera.OperaNameError as exc:
        raise CatalogError(str(exc)) from None
    if parsed is None:
        return False
    info.product, info.opera_name, info.burst_id = opera.PRODUCT_TYPE, parsed, parsed.burst_id
    if parsed.polarisation is None:
        info.not_backscatter = (f"the OPERA RTC-S1 {parsed.layer or 'unnamed'} layer, not a backscatter "
                                "polarisation (VV/VH)")
        return True
    info.platform = parsed.sensor
    info.start = parsed.start
    info.relative_orbit = parsed.track  # OPERA's track number is the Sentinel-1 relative orbit
    info.units = "linear"  # RTC-S1 backscatter is gamma0 in linear power (product specification)
    info.band_pols = {parsed.polarisation: 1}
    info.sources.update(start="file name", relative_orbit="file name", units="product type (OPERA RTC-S1)",
                        polarisations="file name")
    return True


def _apply_product_tags(info: _FileInfo, tags: dict[str, str]) -> None:
    """The tags of a full OPERA RTC-S1 product (they override its name; our own tags override them)."""
    try:
        found = opera.read_tags(tags)
    except ValueError as exc:
        raise CatalogError(str(exc)) from None
    if found is None:
        return
    info.product = opera.PRODUCT_TYPE
    if found.start is not None:
        info.start, info.sources["start"] = found.start, "OPERA tag"
    if found.orbit_pass is not None:
        info.orbit_pass, info.sources["direction"] = found.orbit_pass, "OPERA tag"
    if found.track is not None:
        info.relative_orbit, info.sources["relative_orbit"] = found.track, "OPERA tag"
    info.platform = found.platform or info.platform
    info.burst_id = found.burst_id or info.burst_id
    info.units, info.sources["units"] = found.units, "OPERA tag"
    if found.polarisation is not None:
        info.band_pols, info.sources["polarisations"] = {found.polarisation: 1}, "OPERA tag"


def _read_footprint(info: _FileInfo, src) -> None:
    """Lon/lat bounds of an opened raster (to tell duplicate files from adjacent pieces)."""
    from rasterio.warp import transform_bounds

    if src.crs is not None:
        info.footprint = tuple(transform_bounds(src.crs, "EPSG:4326", *src.bounds, densify_pts=5))


def _read_header(info: _FileInfo) -> None:
    import rasterio
    from rasterio.warp import transform as warp_transform

    with rasterio.open(info.path) as src:
        tags = {k.upper(): v for k, v in src.tags().items()}
        _apply_product_tags(info, tags)
        if "ACQUISITION_START" in tags:
            info.start = parse_time(tags["ACQUISITION_START"])
            info.sources["start"] = "tag"
        if "ORBIT_PASS" in tags:
            info.orbit_pass = _norm_pass(tags["ORBIT_PASS"])
            info.sources["direction"] = "tag"
        if src.crs is None:
            raise CatalogError("has no coordinate reference system (it is not georeferenced); export it as a "
                               "GeoTIFF with its CRS (e.g. from SNAP with the terrain correction step)")
        if tags.get("RELATIVE_ORBIT", "").strip():
            info.relative_orbit = _relative_orbit(tags["RELATIVE_ORBIT"], "RELATIVE_ORBIT tag")
            info.sources["relative_orbit"] = "tag"
        if "UNITS" in tags:
            info.units = _norm_units(tags["UNITS"])
            info.sources["units"] = "tag"
        info.synthetic = "SYNTHETIC" in tags or tags.get("PLATFORM", "").upper() == "SIMULATED"
        descriptions = [(d or "").strip().upper() for d in src.descriptions]
        by_desc = {d: i + 1 for i, d in enumerate(descriptions) if d in POLARISATIONS}
        if by_desc:
            info.band_pols = by_desc
            info.sources["polarisations"] = "band descriptions"
        elif "POLARISATIONS" in tags:
            pols = _pols_from_text(tags["POLARISATIONS"])
            if len(pols) == src.count:
                info.band_pols = {p: i + 1 for i, p in enumerate(pols)}
                info.sources["polarisations"] = "tag"
        if not info.band_pols and src.count == 1:
            m = _POL_SUFFIX.search(info.path.stem)
            if m:
                info.band_pols = {m.group(1).upper(): 1}
                info.sources["polarisations"] = "file name"
        if src.crs is not None:
            b = src.bounds
            cx, cy = (b.left + b.right) / 2, (b.bottom + b.top) / 2
            lon, _ = warp_transform(src.crs, "EPSG:4326", [cx], [cy])
            info.centre_lon = float(lon[0])
        info.dtype = src.dtypes[0]
        info.sample = _value_sample(src)
        if info.units is None:
            info.unit_guess = _guess_units(src)
        _read_footprint(info, src)


def _relative_orbit(value, where: str) -> int:
    """A relative orbit number 1..175 (Sentinel-1's), from text or a number; CatalogError otherwise."""
    try:
        number = float(str(value).strip())
    except ValueError:
        raise CatalogError(f"{where} {value!r} is not a number") from None
    if not number.is_integer() or not 1 <= number <= 175:
        raise CatalogError(f"{where} {value!r} is not a Sentinel-1 relative orbit (a whole number from 1 to 175)")
    return int(number)


def _value_sample(src, size: int = 128) -> np.ndarray:
    """Finite values of band 1 in five small windows (centre and quadrants): bounded I/O on any scene size."""
    from rasterio.windows import Window

    h, w = min(size, src.height), min(size, src.width)
    centres = [(0.5, 0.5), (0.25, 0.25), (0.25, 0.75), (0.75, 0.25), (0.75, 0.75)]
    parts = []
    for fy, fx in centres:
        row = min(max(int(src.height * fy) - h // 2, 0), src.height - h)
        col = min(max(int(src.width * fx) - w // 2, 0), src.width - w)
        block = src.read(1, window=Window(col, row, w, h), masked=True)
        vals = np.asarray(block.compressed(), dtype="float64")
        parts.append(vals[np.isfinite(vals)])
    return np.concatenate(parts)


def _implausible(info: _FileInfo) -> str | None:
    """Why the file's values cannot be backscatter in its stated units (None when they can).

    Decisive cases only (a skipped file is named with the reason): dB in 8-bit
    integers, dB values outside -100..+60, dB values that all lie in 0..1.5
    (linear power), linear or amplitude values that are negative for more than
    5 % of the pixels (dB) or around 1000 and more (scaled digital numbers).
    """
    units, said = info.units, info.sources.get("units", "the guess from the values")
    where = {"tag": "its UNITS tag", "sidecar": "the scenes sidecar", "file name": "its file name"}.get(said, said)
    if units == "dB" and np.dtype(info.dtype).kind in "ui" and np.dtype(info.dtype).itemsize == 1:
        return (f"{where} says dB, but it stores 8-bit integers ({info.dtype}): a quick-look image, not calibrated "
                "backscatter; use the float GeoTIFF")
    vals = info.sample
    if vals is None or vals.size < 20:
        return None
    lo, med, hi = (float(v) for v in np.percentile(vals, [1, 50, 99]))
    if units == "dB":
        if hi > 60 or lo < -100:
            return (f"{where} says dB, but its values run from {lo:.4g} to {hi:.4g}: not backscatter in dB "
                    "(-50..+30); check the units and the nodata value")
        if lo >= 0 and hi <= 1.5:
            return (f"{where} says dB, but its values lie between {lo:.3g} and {hi:.3g} (median {med:.3g}): they look "
                    "like linear power; correct the units (UNITS tag or the units column of scenes.csv)")
    elif units in ("linear", "amplitude"):
        negative = float(np.mean(vals < -0.01))
        if negative > 0.05:
            return (f"{where} says {units}, but {negative:.0%} of its values are negative (median {med:.3g}): they "
                    "look like dB; correct the units (UNITS tag or the units column of scenes.csv)")
        if med > 1000:
            return (f"{where} says {units}, but its median value is {med:.4g}: not {units} backscatter (about "
                    "0.001..1); is it scaled digital numbers? calibrate it first")
    return None


def _guess_units(src) -> tuple[str, str]:
    """Guess dB vs linear from a decimated read of band 1 (sigma0 in dB is mostly negative)."""
    step = max(1, max(src.width, src.height) // 256)
    sample = src.read(1, out_shape=(max(1, src.height // step), max(1, src.width // step)), masked=True)
    vals = np.asarray(sample.compressed(), dtype="float64")
    vals = vals[np.isfinite(vals)]
    if vals.size == 0:
        return "dB", "no finite values to judge from"
    negative = float(np.mean(vals < 0))
    median = float(np.median(vals))
    if negative > 0.5:
        return "dB", f"{negative:.0%} of values are negative (median {median:.2f})"
    if negative == 0.0 and median < 2.0:
        return "linear", f"no negative values, median {median:.3f}"
    return "dB", f"ambiguous values (median {median:.2f}); assumed dB"


def _pass_from_solar_time(start: dt.datetime, lon: float) -> str:
    local_hours = (start.hour + start.minute / 60 + lon / 15.0) % 24
    return "ASCENDING" if 12 <= local_hours < 24 else "DESCENDING"


# --------------------------------------------------------------------------- sidecar


def _read_sidecar(folder: Path) -> dict[str, dict[str, str]]:
    rows: list[dict] = []
    csv_path, json_path = folder / "scenes.csv", folder / "scenes.json"
    if csv_path.is_file():
        try:
            with open(csv_path, newline="", encoding="utf-8-sig") as fh:
                rows = list(csv.DictReader(fh))
        except (UnicodeDecodeError, csv.Error) as exc:
            raise CatalogError(f"{csv_path} is not a UTF-8 CSV file ({exc}); save it as CSV UTF-8") from None
        sidecar = csv_path
    elif json_path.is_file():
        rows = _sidecar_json_rows(json_path)
        sidecar = json_path
    out = {}
    for row in rows:
        row = {str(k).strip().lower(): v for k, v in row.items() if k is not None and v not in (None, "")}
        if "file" not in row:
            raise CatalogError(f"every row of the scenes sidecar in {folder} needs a 'file' column")
        out[Path(str(row["file"])).name] = {**row, "_sidecar": sidecar.name}
    return out


def _sidecar_json_rows(path: Path) -> list[dict]:
    """The rows of ``scenes.json``: a list of objects, or ``{"scenes": [...]}``; CatalogError for any other shape."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise CatalogError(f"{path} is not valid JSON ({exc})") from None
    rows = data.get("scenes") if isinstance(data, dict) else data
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise CatalogError(f"{path} must hold a list of objects, one per file (or {{\"scenes\": [...]}}), e.g. "
                           '[{"file": "a.tif", "orbit_pass": "ASCENDING", "relative_orbit": 68}]')
    return rows


def _apply_sidecar(info: _FileInfo, row: dict) -> None:
    """Override ``info`` with a sidecar row; a bad value is a CatalogError naming the sidecar and the file."""
    try:
        _apply_sidecar_row(info, row)
    except CatalogError as exc:
        raise CatalogError(f"{row.get('_sidecar', 'scenes sidecar')}, row {info.path.name}: {exc}") from None


def _apply_sidecar_row(info: _FileInfo, row: dict) -> None:
    if "acquisition_start" in row:
        info.start = parse_time(row["acquisition_start"])
        info.sources["start"] = "sidecar"
    if "orbit_pass" in row:
        info.orbit_pass = _norm_pass(row["orbit_pass"])
        info.sources["direction"] = "sidecar"
    if "relative_orbit" in row:
        info.relative_orbit = _relative_orbit(row["relative_orbit"], "relative_orbit")
        info.sources["relative_orbit"] = "sidecar"
    if "units" in row:
        info.units = _norm_units(row["units"])
        info.sources["units"] = "sidecar"
    if "polarisations" in row:
        pols = _pols_from_text(row["polarisations"])
        bad = [p for p in pols if p not in POLARISATIONS]
        if not pols or bad:
            raise CatalogError(f"polarisations {row['polarisations']!r} are not among {', '.join(POLARISATIONS)}")
        info.band_pols = {p: i + 1 for i, p in enumerate(pols)}
        info.sources["polarisations"] = "sidecar"


# --------------------------------------------------------------------------- folder


def read_catalog(folder: str | Path) -> Catalog:
    """Describe every GeoTIFF acquisition in ``folder``.

    Files that cannot be read (corrupt, not a raster), whose acquisition time
    or polarisation cannot be determined, that hold no backscatter (OPERA mask
    and static layers) or that duplicate another file are skipped with a
    reason; the caller decides whether that is fatal.  Raises
    :class:`CatalogError` if the folder does not exist or holds no GeoTIFF at all.
    """
    root = Path(folder)
    if not root.is_dir():
        raise CatalogError(f"scene folder {root} does not exist")
    files = sorted(p for p in root.iterdir() if p.suffix.lower() in RASTER_SUFFIXES and not p.name.startswith("."))
    if not files:
        raise CatalogError(f"no GeoTIFF (.tif) files in {root}")
    sidecar = _read_sidecar(root)
    warnings: list[str] = []
    skipped: list[tuple[Path, str]] = []
    infos: list[_FileInfo] = []
    for path in files:
        info, reason = _describe_file(path, sidecar.get(path.name), warnings)
        if reason is not None:
            skipped.append((path, reason))
        else:
            infos.append(info)
    warnings += _pass_warnings(infos) + _partner_warnings(infos) + _track_notes(infos)
    scenes = _merge_into_scenes(infos, warnings, skipped)
    for path, reason in skipped:  # callers (the runs, the dock) warn once; a warning here printed each twice
        log.debug("skipped %s: %s", path.name, reason)
    return Catalog(scenes=scenes, skipped=skipped, warnings=warnings)


def _describe_file(path: Path, sidecar_row: dict | None, warnings: list[str]) -> tuple[_FileInfo, str | None]:
    """Everything one file says about itself, and why it cannot be used (None when it can)."""
    import rasterio

    info = _FileInfo(path=path)
    try:
        _from_name(info)
        if info.not_backscatter is None:
            _read_header(info)
    except (rasterio.errors.RasterioError, rasterio.errors.RasterioIOError) as exc:  # unrelated in 1.3
        return info, f"not a readable GeoTIFF ({str(exc).splitlines()[0]})"
    except CatalogError as exc:
        return info, str(exc)
    if info.not_backscatter is not None:
        return info, f"{info.not_backscatter}; it is not read"
    if sidecar_row is not None:
        _apply_sidecar(info, sidecar_row)
    problem = _implausible(info) if info.units is not None else None
    if problem:
        return info, problem
    if info.start is None:
        return info, "no acquisition time: no ACQUISITION_START tag, no Sentinel-1 file name, no row in scenes.csv"
    if not info.band_pols:
        return info, ("no polarisation: bands are not described VV/VH, no POLARISATIONS tag, "
                      "and the file name does not end in _VV/_VH")
    if info.units is None:
        units, reason = info.unit_guess or ("dB", "no statistics")
        info.units = units
        warnings.append(f"{path.name}: units not stated; assumed {units} ({reason}). "
                        "Add a UNITS tag or a units column in scenes.csv to be sure.")
    if info.orbit_pass is None:
        if info.centre_lon is None:
            return info, "no orbit pass (ORBIT_PASS tag) and no georeferencing to infer it"
        info.orbit_pass = _pass_from_solar_time(info.start, info.centre_lon)
        info.sources["direction"] = "solar time"
    info.product = _product_type(info, sidecar_row is not None)
    return info, None


def _product_type(info: _FileInfo, with_sidecar: bool) -> str:
    """How the file was read: its product (OPERA RTC-S1, ESA GRD, ASF HyP3 RTC), tags, sidecar or simulation."""
    base = info.product
    if base is None:
        if info.synthetic:
            base = PRODUCT_SIMULATED
        elif info.sources.get("start") == "tag":
            base = PRODUCT_TAGGED
        else:
            base = "GeoTIFF"
    elif info.synthetic:
        base += " (SYNTHETIC)"
    return base + " + scenes sidecar" if with_sidecar else base


# --------------------------------------------------------------------------- folder checks


def _pass_warnings(infos: Sequence[_FileInfo]) -> list[str]:
    """The orbit passes inferred from the solar time: one line per file, or per track when it has many files."""
    by_track: dict[tuple, list[_FileInfo]] = {}
    for info in infos:
        if info.sources.get("direction") == "solar time":
            by_track.setdefault((info.orbit_pass, info.relative_orbit), []).append(info)
    lines = []
    for (orbit_pass, rel), files in by_track.items():
        shown = files if len(files) <= 3 else files[:1]
        for f in shown:
            hours = (f.start.hour + f.start.minute / 60 + f.centre_lon / 15.0) % 24
            name = f.path.name if len(files) <= 3 else (f"{f.path.name} and {len(files) - 1} other files of "
                                                        f"relative orbit {rel}")
            lines.append(f"{name}: orbit pass not stated; inferred {orbit_pass} from the local solar time of "
                         f"acquisition (about {int(hours):02d}:{int(hours % 1 * 60):02d}). Add an ORBIT_PASS tag "
                         "(or a scenes.csv) to be sure.")
    return lines


_ONE_POL_PER_FILE = (opera.PRODUCT_TYPE, PRODUCT_HYP3)


def _partner_warnings(infos: Sequence[_FileInfo]) -> list[str]:
    """Name the files of one-polarisation-per-file products (OPERA, HyP3) whose partner polarisation is missing.

    The polarisations expected of a burst are those it has on any date in the
    folder, so a VH-only folder warns about nothing.
    """
    products = {}
    for info in infos:
        base = next((p for p in _ONE_POL_PER_FILE if (info.product or "").startswith(p)), None)
        if base is not None:
            key = (base, info.burst_id, info.start.replace(microsecond=0))
            products.setdefault(key, []).append(info)
    expected: dict[tuple, set[str]] = {}
    for (base, burst, _), files in products.items():
        expected.setdefault((base, burst), set()).update(p for f in files for p in f.band_pols)
    missing: dict[tuple, list[_FileInfo]] = {}
    for (base, burst, _), files in products.items():
        held = {p for f in files for p in f.band_pols}
        for pol in sorted(expected[(base, burst)] - held):
            missing.setdefault((base, burst, pol), []).append(files[0])
    lines = []
    for (base, burst, pol), files in sorted(missing.items(), key=lambda kv: (kv[0][0], kv[0][1] or "", kv[0][2])):
        files.sort(key=lambda f: f.start)
        where = f"burst {burst}" if burst else "these files"
        dates = ", ".join(f"{f.start:%Y-%m-%d}" for f in files[:3])
        if len(files) > 3:
            dates += f" and {len(files) - 3} more dates"
        others = f" and {len(files) - 1} other file(s)" if len(files) > 1 else ""
        lines.append(f"{files[0].path.name}{others}: no {pol} partner ({base} {where} has no {pol} file for "
                     f"{dates}); {pol} and 'both' runs have no data from it on those dates")
    return lines


def _track_notes(infos: Sequence[_FileInfo]) -> list[str]:
    """One line when OPERA bursts of several tracks share the folder: each track is its own stack."""
    by_track: dict[tuple, list[_FileInfo]] = {}
    for info in infos:
        if info.burst_id is not None:
            by_track.setdefault((info.orbit_pass, info.relative_orbit), []).append(info)
    if len(by_track) < 2:
        return []
    parts = []
    for (orbit_pass, rel), files in sorted(by_track.items(), key=lambda kv: -len(kv[1])):
        bursts = ", ".join(sorted({f.burst_id for f in files}))
        parts.append(f"track {rel} {orbit_pass.lower()} ({bursts}: {len(files)} files, e.g. {files[0].path.name})")
    return [f"the folder holds OPERA RTC-S1 bursts of {len(by_track)} tracks: {'; '.join(parts)}. Each track is "
            "its own stack (see the stack summary); bursts of different tracks are never mixed in one median"]


# --------------------------------------------------------------------------- acquisitions


def _merge_into_scenes(infos: Sequence[_FileInfo], warnings: list[str],
                       skipped: list[tuple[Path, str]] | None = None) -> list[Scene]:
    """One :class:`Scene` per acquisition (see the module docstring); duplicates go to ``skipped``."""
    skipped = skipped if skipped is not None else []
    scenes = [_scene_of(members, warnings, skipped) for members in _acquisitions(infos)]
    return sorted(scenes, key=lambda s: (s.acquisition_start, s.orbit_pass, s.relative_orbit or 0))


def _acquisitions(infos: Sequence[_FileInfo]) -> list[list[_FileInfo]]:
    """Files grouped by pass and relative orbit, split where starts are further apart than the tolerance
    or where two known sensors (S1A, S1B ...) differ."""
    by_track: dict[tuple, list[_FileInfo]] = {}
    for info in infos:
        by_track.setdefault((info.orbit_pass, info.relative_orbit), []).append(info)
    groups = []
    for members in by_track.values():
        members.sort(key=lambda i: (i.start, i.path.name))
        current, platform = [members[0]], members[0].platform
        for info in members[1:]:
            gap = (info.start - current[-1].start).total_seconds()
            other_sensor = platform is not None and info.platform is not None and info.platform != platform
            if gap > ACQUISITION_TOLERANCE_S or other_sensor:
                groups.append(current)
                current, platform = [info], info.platform
            else:
                current.append(info)
                platform = platform or info.platform
        groups.append(current)
    return groups


def _scene_of(members: list[_FileInfo], warnings: list[str], skipped: list[tuple[Path, str]]) -> Scene:
    start = min(m.start for m in members).replace(microsecond=0)
    orbit_pass, rel_orbit = members[0].orbit_pass, members[0].relative_orbit
    units = {m.units for m in members}
    if len(units) > 1:
        warnings.append(f"acquisition {iso_utc(start)} mixes dB and linear files; each is converted on read")
    pols = list(dict.fromkeys(p for m in members for p in m.band_pols))
    lost: dict[Path, str] = {}
    bands = {pol: _band_pieces(pol, members, lost) for pol in pols}
    used = {piece.path for ref in bands.values() for piece in ref.pieces()}
    for m in members:
        if m.path in lost and m.path in used:  # lost one polarisation, still used for another
            warnings.append(f"{m.path.name}: {lost[m.path]}")
        elif m.path in lost:
            skipped.append((m.path, lost[m.path]))
    kept = [m for m in members if m.path in used]
    sid = f"{orbit_pass[:3]}_R{rel_orbit if rel_orbit is not None else 'xxx'}_{start:%Y%m%dT%H%M%S}"
    kept_units = {m.units for m in kept}
    return Scene(
        scene_id=sid,
        acquisition_start=start,
        orbit_pass=orbit_pass,
        relative_orbit=rel_orbit,
        units=kept[0].units if len(kept_units) == 1 else "mixed",
        bands=bands,
        synthetic=any(m.synthetic for m in kept),
        file_units={str(m.path): m.units for m in kept},
        file_products={str(m.path): m.product or "unknown" for m in kept},
        platform=next((m.platform for m in kept if m.platform), None),
        bursts=tuple(sorted({m.burst_id for m in kept if m.burst_id})),
    )


def _band_pieces(pol: str, members: list[_FileInfo], lost: dict[Path, str]) -> BandRef:
    """The pieces holding ``pol`` in one acquisition, one per piece; ``lost`` gets each duplicate's reason."""
    kept: list[_FileInfo] = []
    for cand in (m for m in members if pol in m.band_pols):
        i = next((k for k, other in enumerate(kept) if _same_piece(other, cand)), None)
        if i is None:
            kept.append(cand)
            continue
        winner, why = _preferred(kept[i], cand)
        loser = cand if winner is kept[i] else kept[i]
        kept[i] = winner
        piece = f"burst {winner.burst_id}" if winner.burst_id else "acquisition"
        lost[loser.path] = (f"duplicate of {winner.path.name} ({pol} of the same {piece}, {iso_utc(winner.start)}); "
                            f"{winner.path.name} was used because {why}")
    kept.sort(key=lambda m: (m.burst_id or "", m.start, m.path.name))
    first = kept[0]
    return BandRef(first.path, first.band_pols[pol], tuple(BandRef(m.path, m.band_pols[pol]) for m in kept[1:]))


def _same_piece(a: _FileInfo, b: _FileInfo) -> bool:
    """Whether two files holding one polarisation of one acquisition cover the same piece of it."""
    if a.burst_id or b.burst_id:
        return a.burst_id == b.burst_id
    if a.start.replace(microsecond=0) != b.start.replace(microsecond=0):
        return False  # frames of one acquisition start at different times
    if a.footprint is None or b.footprint is None:
        return True
    smaller = min(_area(a.footprint), _area(b.footprint))
    return smaller <= 0 or _overlap_area(a.footprint, b.footprint) > _DUPLICATE_OVERLAP * smaller


def _preferred(a: _FileInfo, b: _FileInfo) -> tuple[_FileInfo, str]:
    """Of two duplicates, the one to use and why (newest OPERA product; else the larger footprint; else name order)."""
    if a.opera_name is not None and b.opera_name is not None:
        win, why = opera.newer(a.opera_name, b.opera_name)
        return (a if win is a.opera_name else b), why
    area_a, area_b = (_area(x.footprint) if x.footprint else 0.0 for x in (a, b))
    if not math.isclose(area_a, area_b, rel_tol=1e-6):
        return (a, "it covers more ground") if area_a > area_b else (b, "it covers more ground")
    first = min(a, b, key=lambda m: m.path.name)
    return first, "both cover the same ground and it comes first in name order (remove the other to choose)"


def _area(box: tuple[float, float, float, float]) -> float:
    return max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1])


def _overlap_area(a: tuple, b: tuple) -> float:
    return max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))


def scene_file_units(scene: Scene, path: Path) -> str:
    """Units of one file of ``scene`` (scenes merged from several files may mix them)."""
    return scene.file_units.get(str(path), scene.units)


# --------------------------------------------------------------------------- stacks


@dataclass
class StackSelection:
    """The pre- and post-event stacks per track (orbit pass, relative orbit)."""

    event_time: dt.datetime
    pre_range: tuple[dt.datetime, dt.datetime]
    post_range: tuple[dt.datetime, dt.datetime]
    pre: dict[tuple[str, int | None], list[Scene]]
    post: dict[tuple[str, int | None], list[Scene]]

    def tracks(self) -> list[tuple[str, int | None]]:
        """Tracks that have at least one pre AND one post scene (the ones that give a ratio)."""
        return sorted((t for t in self.pre if self.pre[t] and self.post.get(t)), key=lambda t: (t[0], t[1] or 0))

    def passes(self) -> list[str]:
        return sorted({t[0] for t in self.tracks()})

    def summary_lines(self) -> list[str]:
        lines = []
        for track in sorted(set(self.pre) | set(self.post), key=lambda t: (t[0], t[1] or 0)):
            pre, post = self.pre.get(track, []), self.post.get(track, [])
            used = "" if pre and post else "  (not used: needs both pre and post scenes)"
            lines.append(
                f"{track[0]:<10} relative orbit {track[1] if track[1] is not None else '?':>3}: "
                f"{len(pre)} pre [{_date_list(pre)}], {len(post)} post [{_date_list(post)}]; "
                f"{_sources_text(pre + post)}{used}"
            )
        return lines

    def to_dict(self) -> dict:
        def enc(d):
            return [
                {"orbit_pass": t[0], "relative_orbit": t[1], "scenes": [s.scene_id for s in v],
                 "dates": [iso_utc(s.acquisition_start) for s in v]}
                for t, v in sorted(d.items(), key=lambda kv: (kv[0][0], kv[0][1] or 0))
            ]

        return {
            "event_time": iso_utc(self.event_time),
            "pre_range": [iso_utc(t) for t in self.pre_range],
            "post_range": [iso_utc(t) for t in self.post_range],
            "pre": enc(self.pre),
            "post": enc(self.post),
        }


def _date_list(scenes: Iterable[Scene]) -> str:
    return ", ".join(f"{s.acquisition_start:%Y-%m-%d}" for s in scenes)


def _sources_text(scenes: Sequence[Scene]) -> str:
    """What a track's files were read as, e.g. ``OPERA RTC-S1, bursts T137-292320-IW2, T137-292321-IW2``."""
    products = sorted({p for s in scenes for p in s.file_products.values()}) or ["unknown product"]
    bursts = sorted({b for s in scenes for b in s.bursts})
    text = ", ".join(products)
    return text + (f"; burst{'s' if len(bursts) > 1 else ''} {', '.join(bursts)}" if bursts else "")


def select_stacks(
    scenes: Sequence[Scene],
    event_time: dt.datetime,
    *,
    pre_days: float = 90.0,
    post_days: float = 30.0,
    pre_range: tuple[dt.datetime, dt.datetime] | None = None,
    post_range: tuple[dt.datetime, dt.datetime] | None = None,
    polarisations: Sequence[str] = ("VH",),
) -> StackSelection:
    """Split ``scenes`` into pre- and post-event stacks per track.

    Default windows: ``[event - pre_days, event)`` and ``(event, event + post_days]``.
    Explicit ranges (inclusive) replace them.  Only scenes holding every
    polarisation in ``polarisations`` are used.  Raises :class:`CatalogError`
    when no track has both stacks, when an explicit pre range reaches past the
    event, or when the pre and post stacks are the same scenes.
    """
    if event_time.tzinfo is None:
        raise CatalogError("the event time must carry a time zone (UTC)")
    if pre_range is None:
        pre_range = (event_time - dt.timedelta(days=pre_days), event_time - dt.timedelta(microseconds=1))
    elif pre_range[1] >= event_time:
        raise CatalogError(
            f"the pre-event range ends {iso_utc(pre_range[1])}, at or after the event ({iso_utc(event_time)}): "
            "pre-event scenes must predate the event"
        )
    if post_range is None:
        post_range = (event_time + dt.timedelta(microseconds=1), event_time + dt.timedelta(days=post_days))
    elif post_range[0] <= event_time:
        raise CatalogError(
            f"the post-event range starts {iso_utc(post_range[0])}, at or before the event ({iso_utc(event_time)})"
        )
    if not scenes:
        raise CatalogError("no usable scene in the folder (see the skipped files above)")
    usable = [s for s in scenes if all(p in s.bands for p in polarisations)]
    if not usable:
        have = sorted({p for s in scenes for p in s.bands})
        missing = sorted({p for p in polarisations if not any(p in s.bands for s in scenes)})
        raise CatalogError(
            f"no scene holds polarisation(s) {'+'.join(polarisations)}; the scenes hold {have}, none holds "
            f"{'+'.join(missing) or 'them together'}: choose a polarisation they hold (--polarisation "
            f"{'VH' if 'VH' in have else have[0]} on the command line) or add the {'+'.join(missing) or 'partner'} "
            "files")
    pre: dict = {}
    post: dict = {}
    for s in usable:
        if pre_range[0] <= s.acquisition_start <= pre_range[1]:
            pre.setdefault(s.track, []).append(s)
        elif post_range[0] <= s.acquisition_start <= post_range[1]:
            post.setdefault(s.track, []).append(s)
    for d in (pre, post):
        for v in d.values():
            v.sort(key=lambda s: s.acquisition_start)
    selection = StackSelection(event_time, pre_range, post_range, pre, post)
    if not selection.tracks():
        first, last = min(s.acquisition_start for s in usable), max(s.acquisition_start for s in usable)
        if last < event_time:
            hint = (f"every scene predates the event: add post-event scenes (acquired after {event_time:%Y-%m-%d}), "
                    f"or check --event (the last scene is of {last:%Y-%m-%d})")
        elif first > event_time:
            hint = (f"every scene is after the event (is the event date right?): add pre-event scenes (acquired "
                    f"before {event_time:%Y-%m-%d}), or check --event (the first scene is of {first:%Y-%m-%d})")
        else:
            hint = _widen_hint(usable, event_time)
        raise CatalogError(
            "no orbit track has both pre-event and post-event scenes "
            f"(scenes span {first:%Y-%m-%d} to {last:%Y-%m-%d}, event {event_time:%Y-%m-%d %H:%M}Z): {hint}."
            + "".join("\n" + line for line in selection.summary_lines())
        )
    pre_ids = {s.scene_id for v in pre.values() for s in v}
    post_ids = {s.scene_id for v in post.values() for s in v}
    if pre_ids == post_ids:
        raise CatalogError("the pre-event and post-event stacks are the same scenes; check the date ranges")
    return selection


def _widen_hint(scenes: Sequence[Scene], event_time: dt.datetime) -> str:
    """What to change when scenes exist on both sides of the event but outside the windows."""
    before = [s.acquisition_start for s in scenes if s.acquisition_start < event_time]
    after = [s.acquisition_start for s in scenes if s.acquisition_start > event_time]
    gaps = []
    if before:
        gaps.append(f"{math.ceil((event_time - max(before)).total_seconds() / 86400)} days before")
    if after:
        gaps.append(f"{math.ceil((min(after) - event_time).total_seconds() / 86400)} days after")
    return (f"widen --pre-days/--post-days (the nearest scenes are {' and '.join(gaps)} the event) "
            "or add scenes")
