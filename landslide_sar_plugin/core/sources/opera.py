"""NASA/JPL OPERA L2 RTC-S1 products: what their file names and GeoTIFF tags say.

OPERA RTC-S1 is the analysis-ready Sentinel-1 product that ASF and NASA
Earthdata distribute: one Sentinel-1 IW burst, radiometrically terrain-corrected
(gamma0), geocoded to UTM at 30 m, one GeoTIFF per polarisation.  References:
*Product Specification Document for the OPERA Radiometric Terrain-Corrected SAR
Backscatter from Sentinel-1* (JPL D-108758) and the open-source ``opera-adt/RTC``
processor that writes the products.

**File names** (the spec's naming convention)::

    OPERA_L2_RTC-S1_T137-292320-IW2_20231203T015911Z_20231203T124004Z_S1A_30_v1.0_VH.tif
    project level product  burst id  start (UTC)     production (UTC) sensor spacing version layer

- burst id ``T137-292320-IW2``: the ESA burst id, i.e. track 137 (the Sentinel-1
  relative orbit), burst 292320 along the track, sub-swath IW2;
- start: the burst's zero-Doppler start time, UTC, to the second; the bursts of
  one acquisition start a few seconds apart (about 2.8 s per burst along track);
- production: when the product was generated; a reprocessed product has the
  same start and a later production time (and possibly a higher version);
- sensor ``S1A``/``S1B``/``S1C``, pixel spacing in metres, product version ``v1.0``;
- layer: the polarisation (``VV``, ``VH``, ``HH``, ``HV``) of a backscatter layer,
  or ``mask`` (the layover/shadow mask), which is not backscatter.  The static
  layers (``RTC-S1-STATIC``: incidence angles, area normalisation ...) are not
  backscatter either.

**Values.** Backscatter layers are gamma0 in **linear power** (the spec's
"linear backscatter intensity"), float32, NaN outside the burst; in dB they
are ``10 log10(gamma0)``.

**GeoTIFF tags** that full products carry (the spec's product-identification and
processing-information tables): ``ZERO_DOPPLER_START_TIME`` (ISO-8601 UTC with
microseconds), ``ORBIT_PASS_DIRECTION`` (``ascending``/``descending``),
``TRACK_NUMBER``, ``PLATFORM`` (``Sentinel-1A``), ``BURST_ID``
(``t137_292320_iw2``), ``PRODUCT_VERSION``, ``PROCESSING_DATETIME``,
``PROCESSING_INFORMATION_OUTPUT_BACKSCATTER_EXPRESSION_CONVENTION`` (``linear
backscatter intensity``) and ``..._NORMALIZATION_CONVENTION`` (``gamma0``); a
``POLARIZATION`` tag is read where a layer carries one.  Crops cut out of the
products usually lose every tag: the name alone is enough.

Nothing here opens a file: :func:`parse_name` reads a name, :func:`read_tags` a
tag dictionary, and the catalogue (:mod:`..catalog`) applies what they return.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from ..isotime import parse_iso_utc

PRODUCT_TYPE = "OPERA RTC-S1"
BACKSCATTER_LAYERS = ("VV", "VH", "HH", "HV")

_NAME = re.compile(
    r"OPERA_L2_RTC-S1_T(?P<track>\d{3})-(?P<burst>\d{6})-(?P<swath>IW[1-3])_"
    r"(?P<start>\d{8}T\d{6})Z_(?P<production>\d{8}T\d{6})Z_(?P<sensor>S1[A-D])_(?P<spacing>\d+)_"
    r"v(?P<version>\d+(?:\.\d+)*)(?:_(?P<layer>[A-Za-z0-9_]+?))?(?:\.[A-Za-z0-9]+)?$",
    re.IGNORECASE,
)
_STATIC = re.compile(r"OPERA_L2_RTC-S1-STATIC_", re.IGNORECASE)
_TAG_BURST = re.compile(r"t(?P<track>\d{3})[_-](?P<burst>\d{6})[_-](?P<swath>iw[1-3])", re.IGNORECASE)
_PLATFORM = re.compile(r"(?:SENTINEL-?1|S1)(?P<unit>[A-D])", re.IGNORECASE)


class OperaNameError(ValueError):
    """A file name looks like an OPERA RTC-S1 product but one of its fields is impossible."""


@dataclass(frozen=True)
class OperaName:
    """The fields of an OPERA RTC-S1 file name."""

    track: int  # Sentinel-1 relative orbit
    burst: int  # ESA burst number along the track
    swath: str  # IW1 | IW2 | IW3
    start: dt.datetime  # zero-Doppler start of the burst, UTC
    production: dt.datetime  # product generation time, UTC
    sensor: str  # S1A | S1B | S1C | S1D
    spacing_m: int  # pixel spacing, metres
    version: str  # product version without the "v", e.g. "1.0"
    layer: str | None  # VV | VH | HH | HV | mask | ... (None when the name stops after the version)

    @property
    def burst_id(self) -> str:
        """``T137-292320-IW2``: the burst as the name spells it (unique across tracks and swaths)."""
        return f"T{self.track:03d}-{self.burst:06d}-{self.swath}"

    @property
    def polarisation(self) -> str | None:
        """The polarisation of a backscatter layer, None for any other layer."""
        return self.layer if self.layer in BACKSCATTER_LAYERS else None

    @property
    def version_key(self) -> tuple[int, ...]:
        return tuple(int(p) for p in self.version.split("."))

    def stem(self) -> str:
        """The file name without its extension (the inverse of :func:`parse_name`)."""
        layer = f"_{self.layer}" if self.layer else ""
        return (f"OPERA_L2_RTC-S1_{self.burst_id}_{self.start:%Y%m%dT%H%M%S}Z_{self.production:%Y%m%dT%H%M%S}Z_"
                f"{self.sensor}_{self.spacing_m}_v{self.version}{layer}")


def is_static_layer(name: str) -> bool:
    """True for RTC-S1-STATIC files (incidence angles, area factors ...): geometry, not backscatter."""
    return bool(_STATIC.search(name))


def parse_name(name: str) -> OperaName | None:
    """The fields of an OPERA RTC-S1 file name, or None if ``name`` is not one.

    Raises :class:`OperaNameError` when the name has the OPERA shape but an
    impossible date (e.g. month 13), so that the file is reported, not ignored.
    """
    m = _NAME.search(name)
    if m is None:
        return None
    layer = m["layer"]
    if layer is not None and layer.split("_")[0].upper() in BACKSCATTER_LAYERS:
        layer = layer.split("_")[0].upper()  # "VH" (also of a renamed crop "..._VH_crop.tif")
    return OperaName(
        track=int(m["track"]),
        burst=int(m["burst"]),
        swath=m["swath"].upper(),
        start=_name_time(m["start"], name),
        production=_name_time(m["production"], name),
        sensor=m["sensor"].upper(),
        spacing_m=int(m["spacing"]),
        version=m["version"],
        layer=layer,
    )


def _name_time(text: str, name: str) -> dt.datetime:
    try:
        return dt.datetime.strptime(text, "%Y%m%dT%H%M%S").replace(tzinfo=dt.timezone.utc)
    except ValueError:
        raise OperaNameError(f"{text!r} in the OPERA name {name} is not a valid date and time") from None


def newer(a: OperaName, b: OperaName) -> tuple[OperaName, str]:
    """Of two products of the same burst, polarisation and start, the one to use, and why.

    A higher product version wins; at equal versions the later production
    (a reprocessing supersedes the earlier product).
    """
    if a.version_key != b.version_key:
        win = a if a.version_key > b.version_key else b
        return win, f"it is the higher product version (v{win.version})"
    win = a if a.production >= b.production else b
    return win, f"it is the later production ({win.production:%Y-%m-%dT%H:%M:%SZ})"


# --------------------------------------------------------------------------- tags


@dataclass
class OperaTags:
    """What the GeoTIFF tags of a full OPERA RTC-S1 product state (None = not stated)."""

    start: dt.datetime | None = None
    orbit_pass: str | None = None  # ASCENDING | DESCENDING
    track: int | None = None
    platform: str | None = None  # S1A ...
    burst_id: str | None = None  # T137-292320-IW2
    polarisation: str | None = None
    units: str | None = None  # linear | amplitude | dB
    normalisation: str | None = None  # gamma0 | sigma0 | beta0
    version: str | None = None


def is_rtc_s1_tags(tags: dict[str, str]) -> bool:
    """True when the (upper-cased) tags identify an OPERA RTC-S1 backscatter product."""
    product = tags.get("PRODUCT_TYPE", "").upper()
    if "RTC-S1" in product:
        return "STATIC" not in product
    return tags.get("PROJECT", "").upper() == "OPERA" and "BURST_ID" in tags and "ZERO_DOPPLER_START_TIME" in tags


def read_tags(tags: dict[str, str]) -> OperaTags | None:
    """The OPERA RTC-S1 metadata in ``tags`` (keys upper-cased), or None if they are not of such a product.

    Raises :class:`ValueError` naming the tag when a stated value cannot be read.
    """
    if not is_rtc_s1_tags(tags):
        return None
    out = OperaTags()
    if tags.get("ZERO_DOPPLER_START_TIME", "").strip():
        out.start = parse_tag_time(tags["ZERO_DOPPLER_START_TIME"])
    direction = tags.get("ORBIT_PASS_DIRECTION", "").strip().upper()
    if direction:
        if direction not in ("ASCENDING", "DESCENDING"):
            raise ValueError(f"ORBIT_PASS_DIRECTION tag {tags['ORBIT_PASS_DIRECTION']!r} is neither ascending nor "
                             "descending")
        out.orbit_pass = direction
    if tags.get("TRACK_NUMBER", "").strip():
        try:
            out.track = int(float(tags["TRACK_NUMBER"]))
        except ValueError:
            raise ValueError(f"TRACK_NUMBER tag {tags['TRACK_NUMBER']!r} is not a number") from None
    m = _PLATFORM.search(tags.get("PLATFORM", ""))
    out.platform = f"S1{m['unit'].upper()}" if m else None
    m = _TAG_BURST.search(tags.get("BURST_ID", ""))
    if m:
        out.burst_id = f"T{m['track']}-{m['burst']}-{m['swath'].upper()}"
    pol = tags.get("POLARIZATION", tags.get("POLARISATION", "")).strip().upper()
    out.polarisation = pol if pol in BACKSCATTER_LAYERS else None
    out.units = units_from_convention(tags.get("PROCESSING_INFORMATION_OUTPUT_BACKSCATTER_EXPRESSION_CONVENTION", ""))
    norm = tags.get("PROCESSING_INFORMATION_OUTPUT_BACKSCATTER_NORMALIZATION_CONVENTION", "").strip().lower()
    out.normalisation = norm or None
    out.version = tags.get("PRODUCT_VERSION", "").strip() or None
    return out


def units_from_convention(text: str) -> str:
    """Units of an OPERA backscatter expression convention; the product's own (linear power) when unstated."""
    t = str(text).strip().lower()
    if "decibel" in t or re.search(r"\bdb\b", t):
        return "dB"
    if "amplitude" in t:
        return "amplitude"
    return "linear"  # "linear backscatter intensity" (power), the RTC-S1 convention


def parse_tag_time(text: str) -> dt.datetime:
    """An OPERA tag time (``2023-12-03T01:59:11.123456789Z``: ISO-8601, any fraction) as aware UTC."""
    try:
        return parse_iso_utc(text)
    except ValueError:
        raise ValueError(f"ZERO_DOPPLER_START_TIME tag {text!r} is not an ISO-8601 time") from None
