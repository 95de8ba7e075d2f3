"""Scene catalogue: which Sentinel-1 acquisitions a folder holds, and which go in the pre and post stacks.

Per acquisition the engine needs its start time (UTC), orbit pass, relative
orbit, units (dB or linear) and where each polarisation is stored.  They come,
in increasing priority, from:

1. well-known file names: ESA product ids
   (``S1A_IW_GRDH_1SDV_20180905T083512_20180905T083537_023561_029117_8F1E``)
   and ASF HyP3 RTC names (``S1A_IW_20180905T083512_DVP_RTC30_G_gpuned_5A1B_VH.tif``);
2. GeoTIFF tags ``ACQUISITION_START`` (ISO-8601), ``ORBIT_PASS``, ``RELATIVE_ORBIT``,
   ``UNITS`` and ``POLARISATIONS`` and band descriptions ``VV``/``VH``;
3. a sidecar ``scenes.csv`` or ``scenes.json`` in the folder, one row per file
   (column ``file`` plus any of ``acquisition_start``, ``orbit_pass``,
   ``relative_orbit``, ``units``, ``polarisations``), which overrides both.

Units fall back to value statistics (with a warning) when nothing states them;
the orbit pass falls back to the local solar time of the acquisition (Sentinel-1
crosses the equator northbound near 18:00 and southbound near 06:00 local
time), also with a warning.  Files of one acquisition that hold one
polarisation each (HyP3) are merged into one :class:`Scene`.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

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


class CatalogError(ValueError):
    """The scene folder or the stack selection cannot give an A_ratio; the message says why."""


@dataclass
class BandRef:
    """Where one polarisation of one acquisition is stored."""

    path: Path
    band: int  # 1-based band index in ``path``


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

    @property
    def track(self) -> tuple[str, int | None]:
        return (self.orbit_pass, self.relative_orbit)

    def to_dict(self) -> dict:
        return {
            "scene_id": self.scene_id,
            "acquisition_start": iso_utc(self.acquisition_start),
            "orbit_pass": self.orbit_pass,
            "relative_orbit": self.relative_orbit,
            "units": self.units,
            "polarisations": sorted(self.bands),
            "files": sorted({str(b.path) for b in self.bands.values()}),
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
            t = dt.datetime.fromisoformat(s.replace("Z", "+00:00"))
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


def _from_name(info: _FileInfo) -> None:
    name = info.path.name
    m = _ESA_NAME.search(name)
    if m:
        info.platform = m["platform"].upper()
        info.start = parse_time(m["start"])
        info.relative_orbit = (int(m["abs_orbit"]) - _REL_ORBIT_OFFSET[info.platform]) % 175 + 1
        info.sources.update(start="file name", relative_orbit="file name")
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


def _read_header(info: _FileInfo) -> None:
    import rasterio
    from rasterio.warp import transform as warp_transform

    with rasterio.open(info.path) as src:
        tags = {k.upper(): v for k, v in src.tags().items()}
        if "ACQUISITION_START" in tags:
            info.start = parse_time(tags["ACQUISITION_START"])
            info.sources["start"] = "tag"
        if "ORBIT_PASS" in tags:
            info.orbit_pass = _norm_pass(tags["ORBIT_PASS"])
            info.sources["direction"] = "tag"
        if tags.get("RELATIVE_ORBIT", "").strip():
            try:
                info.relative_orbit = int(float(tags["RELATIVE_ORBIT"]))
            except ValueError:
                raise CatalogError(f"RELATIVE_ORBIT tag {tags['RELATIVE_ORBIT']!r} is not a number") from None
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
        if info.units is None:
            info.unit_guess = _guess_units(src)


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
        with open(csv_path, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    elif json_path.is_file():
        data = json.loads(json_path.read_text(encoding="utf-8"))
        rows = data["scenes"] if isinstance(data, dict) else data
    out = {}
    for row in rows:
        row = {str(k).strip().lower(): v for k, v in row.items() if v not in (None, "")}
        if "file" not in row:
            raise CatalogError(f"every row of the scenes sidecar in {folder} needs a 'file' column")
        out[Path(str(row["file"])).name] = row
    return out


def _apply_sidecar(info: _FileInfo, row: dict) -> None:
    if "acquisition_start" in row:
        info.start = parse_time(row["acquisition_start"])
        info.sources["start"] = "sidecar"
    if "orbit_pass" in row:
        info.orbit_pass = _norm_pass(row["orbit_pass"])
        info.sources["direction"] = "sidecar"
    if "relative_orbit" in row:
        info.relative_orbit = int(float(row["relative_orbit"]))
        info.sources["relative_orbit"] = "sidecar"
    if "units" in row:
        info.units = _norm_units(row["units"])
        info.sources["units"] = "sidecar"
    if "polarisations" in row:
        pols = _pols_from_text(row["polarisations"])
        info.band_pols = {p: i + 1 for i, p in enumerate(pols)}
        info.sources["polarisations"] = "sidecar"


# --------------------------------------------------------------------------- folder


def read_catalog(folder: str | Path) -> Catalog:
    """Describe every GeoTIFF acquisition in ``folder``.

    Files that cannot be read (corrupt, not a raster) or whose acquisition time
    or polarisation cannot be determined are skipped with a reason; the caller
    decides whether that is fatal.  Raises :class:`CatalogError` if the folder
    does not exist or holds no GeoTIFF at all.
    """
    import rasterio

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
        info = _FileInfo(path=path)
        try:
            _from_name(info)
            _read_header(info)
        except (rasterio.errors.RasterioError, rasterio.errors.RasterioIOError) as exc:  # 1.3: unrelated
            skipped.append((path, f"not a readable GeoTIFF ({str(exc).splitlines()[0]})"))
            continue
        except CatalogError as exc:
            skipped.append((path, str(exc)))
            continue
        if path.name in sidecar:
            _apply_sidecar(info, sidecar[path.name])
        if info.start is None:
            skipped.append((path, "no acquisition time: no ACQUISITION_START tag, no Sentinel-1 file name, "
                                  "no row in scenes.csv"))
            continue
        if not info.band_pols:
            skipped.append((path, "no polarisation: bands are not described VV/VH, no POLARISATIONS tag, "
                                  "and the file name does not end in _VV/_VH"))
            continue
        if info.units is None:
            units, reason = info.unit_guess or ("dB", "no statistics")
            info.units = units
            warnings.append(f"{path.name}: units not stated; assumed {units} ({reason}). "
                            "Add a UNITS tag or a units column in scenes.csv to be sure.")
        if info.orbit_pass is None:
            if info.centre_lon is None:
                skipped.append((path, "no orbit pass (ORBIT_PASS tag) and no georeferencing to infer it"))
                continue
            info.orbit_pass = _pass_from_solar_time(info.start, info.centre_lon)
            warnings.append(f"{path.name}: orbit pass not stated; inferred {info.orbit_pass} from the local "
                            "solar time of acquisition. Add an ORBIT_PASS tag to be sure.")
        infos.append(info)
    scenes = _merge_into_scenes(infos, warnings)
    for path, reason in skipped:
        log.warning("skipped %s: %s", path.name, reason)
    return Catalog(scenes=scenes, skipped=skipped, warnings=warnings)


def _merge_into_scenes(infos: Sequence[_FileInfo], warnings: list[str]) -> list[Scene]:
    groups: dict[tuple, list[_FileInfo]] = {}
    for info in infos:
        key = (info.start.replace(microsecond=0), info.orbit_pass, info.relative_orbit)
        groups.setdefault(key, []).append(info)
    scenes = []
    for (start, orbit_pass, rel_orbit), members in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1])):
        bands: dict[str, BandRef] = {}
        units = {m.units for m in members}
        if len(units) > 1:
            warnings.append(f"acquisition {iso_utc(start)} mixes dB and linear files; each is converted on read")
        for m in members:
            for pol, band in m.band_pols.items():
                if pol not in bands:
                    bands[pol] = BandRef(m.path, band)
        sid = f"{orbit_pass[:3]}_R{rel_orbit if rel_orbit is not None else 'xxx'}_{start:%Y%m%dT%H%M%S}"
        scene = Scene(
            scene_id=sid,
            acquisition_start=start,
            orbit_pass=orbit_pass,
            relative_orbit=rel_orbit,
            units=members[0].units if len(units) == 1 else "mixed",
            bands=bands,
            synthetic=any(m.synthetic for m in members),
            file_units={str(m.path): m.units for m in members},
        )
        scenes.append(scene)
    return scenes


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
                f"{len(pre)} pre [{_date_list(pre)}], {len(post)} post [{_date_list(post)}]{used}"
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
        raise CatalogError(f"no scene holds polarisation(s) {'+'.join(polarisations)}; the scenes hold {have}")
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
            hint = "every scene predates the event: add post-event scenes"
        elif first > event_time:
            hint = "every scene is after the event (is the event date right?): add pre-event scenes"
        else:
            hint = "widen --pre-days/--post-days or add scenes"
        raise CatalogError(
            "no orbit track has both pre-event and post-event scenes "
            f"(scenes span {first:%Y-%m-%d} to {last:%Y-%m-%d}, event {event_time:%Y-%m-%d %H:%M}Z): {hint}.\n"
            + "\n".join(selection.summary_lines())
        )
    pre_ids = {s.scene_id for v in pre.values() for s in v}
    post_ids = {s.scene_id for v in post.values() for s in v}
    if pre_ids == post_ids:
        raise CatalogError("the pre-event and post-event stacks are the same scenes; check the date ranges")
    return selection
