"""Deterministic simulator of Sentinel-1 IW GRD backscatter stacks around a landslide event.

EVERYTHING THIS MODULE WRITES IS SYNTHETIC.  No real Sentinel-1 landslide scene
can be downloaded from the project's machines (DESIGN.md, "Data we have"), so the
plugin, its tests and its training code run on scenes simulated here.  Every file
carries the word "synthetic" (GeoTIFF tag ``SYNTHETIC``, ``PLATFORM=SIMULATED``,
``event.json: "synthetic": true``, file names starting ``S1SIM``).

Same seed and configuration give byte-identical files on the same software stack;
another seed gives another event.  Pure numpy/scipy/rasterio: never imports QGIS.

Physical model
==============

Terrain
    A fractal surface (spectral synthesis, power spectrum
    ``P(k) ~ (k^2 + k0^2)^(-beta/2)`` with ``beta = 2H + 3.2``, "Hurst"
    parameter ``H`` about 0.8, a roll-off ``k0`` at the dominant ridge spacing;
    steeper than fBm so that 10 m slopes stay realistic: median about 20 deg,
    99th percentile about 55 deg at 400 m relief) is mixed with "ridged"
    two-octave noise (``(1 - |n|)^2``, sharp crests, smoothed over 20 m) and
    flattened below a quantile into alluvial valley floors.  Relief amplitude,
    ridge spacing, ridge sharpness and the valley-floor fraction vary per event.
    Slope and aspect come from central differences on the 10 m surface.  The
    DEM file is that surface block-averaged to 30 m (like SRTM / Copernicus
    GLO-30), covering the scene plus a 60 m margin.  Water surfaces are flat.

Land cover (``truth/landcover.tif``)
    1 forest (slopes), 2 grassland/shrub (slopes, patchy), 3 cropland
    (rectangular parcels on flats), 4 built-up (blobs on flats), 5 water (the
    lowest parts of the valley floors: rivers, ponds).

Calibration (DESIGN.md, "Data we have": published Sentinel-1 statistics)
    ``hokkaido``: VV -7.3 dB (spread 2.1), VH -13.2 dB (spread 1.9);
    ``kaikoura``: VV -9.9 dB (spread 2.7), VH -16.0 dB (spread 2.3).  They are
    taken as the statistics of vegetated slopes (class 1): the simulator sets
    the forest reference level so that the MEDIAN over forest pixels outside
    layover/shadow, with terrain modulation, texture and speckle, equals the
    preset value.  The other classes are offsets from forest typical of C band
    (grass -1.5/-3.5 dB VV/VH, bare soil -3/-6, cropland -3/-6 plus a crop
    growth term of up to +1..3/+3..6, built-up +2/+1 plus static bright point
    scatterers, water -13..-20/-13..-18 depending on wind).  Speckle alone has a
    spread of about 2.2 dB at ENL 4.4, so the static texture added to forest is
    ``sqrt(max(spread^2 - speckle^2 - terrain^2, 0.3^2))`` dB: on rugged
    terrain the simulated spread exceeds the published one (the terrain
    modulation of non-terrain-flattened GRD is not removed).

Acquisition geometry
    Sentinel-1 IW is right-looking.  Ascending passes fly about north (heading
    about -10 deg) and look about east (azimuth about 80 deg); descending
    passes fly about south (heading about 190 deg) and look about west
    (azimuth about 280 deg).  The ellipsoid incidence angle ``theta_e`` of a
    track is 31-44 deg at the scene centre and grows by 0.068 deg/km towards far
    range (IW: 29-46 deg over 250 km).  With the unit vector ``l`` from the
    ground to the sensor and the DEM normal ``n``, the local incidence angle is
    ``cos(theta_loc) = n . l``; the range slope ``alpha`` (terrain rising away
    from the radar = facing it) classifies geometry (``truth/geometry_*.tif``):

    * 1 layover: ``alpha > theta_e`` (bright: the flat-terrain value times a
      gain of 9 dB, the sum of several resolution cells),
    * 2 shadow: ``-alpha > 90 - theta_e`` or the ray to the sensor blocked by
      terrain nearer the radar (ray casting along image rows); the return is
      thermal noise only (NESZ -23 dB by default), so a landslide there is
      invisible.  Shadow lies on slopes facing away from the radar and
      therefore on opposite sides of ridges in the two passes,
    * 3 strong foreshortening: ground-to-slant compression
      ``sin(theta_e - alpha)/sin(theta_e) < 0.4``,
    * 0 otherwise.

    Radiometry of GRD sigma0 (ellipsoid-normalised, not terrain-flattened):
    ``sigma0 = sigma_ref * (cos(theta_loc)/cos(theta_ref))^m *
    sin(theta_e)/sin(theta_loc)`` (Ulander 1996 area factor, capped at 6), with
    ``m`` = 1 for forest and built-up (gamma0 about constant), 1.5 for grass
    and crops, 3 for water (near-specular); ``theta_ref`` = 38 deg.  Thermal
    noise (NESZ) is added in power before speckle.

Speckle
    Multiplicative, independent per pixel, date and polarisation: intensity
    times ``Gamma(shape=ENL, scale=1/ENL)`` (mean 1) with ENL 4.4 (IW GRDH).
    In dB that is a spread of 2.2 dB and a median bias of -0.37 dB.

Time
    One relative orbit per pass (optionally two, with different incidence),
    revisit 6 or 12 days; ascending acquisitions near 17:45 and descending near
    05:45 local solar time (UTC from the UTM zone's central meridian).  At least
    ``n_pre`` acquisitions before and ``n_post`` after the event on each pass.
    Non-landslide changes, the realistic false alarms: crop growth and harvest
    per parcel (flat land), soil moisture after rain (a Poisson rain process
    with 3-day drying; raises bare/crop/grass by up to 1.5 dB VV), logging
    (forest patches on slopes turning into bare ground on a random date, the
    same signature as a scar), water roughness by wind per date, and a small
    leaf-on/leaf-off forest cycle.

Landslides (``truth/landslides.gpkg``, ``truth/truth_mask.tif``)
    Areas follow the three-parameter inverse-gamma distribution of Malamud et
    al. (2004, ESPL 29: 687-711), ``rho = 1.4``, ``a = 1.28e-3 km^2``,
    ``s = -1.32e-4 km^2`` (earthquake regime: many small slides, rollover near
    400 m^2, power-law tail ``A^-2.4``), truncated to [min, max] area; the rain
    regime uses a larger scale (fewer, larger slides) and longer shapes.
    Initiation points are drawn with a weight ``(slope - min_slope)^1.5`` on
    forest/grass; each slide is an elongated tear-drop along the smoothed
    downslope direction (length/width 1.5-3.5 for earthquakes, 3-7 for rain)
    with a scar (upper 60 %) and a deposit; a slide whose pixels have a mean
    slope below ``slide_min_slope_deg`` is redrawn.  Backscatter change, in
    post-event acquisitions only: 'drop' (about 75 %, fresh soil replacing
    forest: VH -2.5..-6 dB, VV 35-70 % of that; deposit 70 % of the scar
    change), 'rise' (about 12 %, rough debris: +1..+3.5 dB VV), 'invisible'
    (a change below 0.6 dB, or a slide more than half in shadow in both
    passes).  ``shadow_asc``/``shadow_desc`` are the slide's fractions of
    shadow pixels; ``visible_asc``/``visible_desc`` say whether the change
    reaches that pass at all.

Determinism
    Each component draws from its own ``numpy.random.Generator`` seeded by
    ``(seed, component)``, so e.g. adding dates does not change the terrain.
    GeoTIFFs are deterministic in GDAL; the GeoPackage gets a fixed timestamp
    (the event time); ``event.json`` is written with sorted keys.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage

from ..gpkg import Feature, write_features
from ..raster_io import write_geotiff

GENERATOR_VERSION = "1.0.0"
"""Bumped whenever the same configuration would give different files."""

SCENE_PREFIX = "S1SIM_IW"
REGIMES = ("earthquake", "rain")
PRESETS = ("sample", "default", "random")
ENL_IW_GRDH = 4.4

LANDCOVER_CLASSES = {0: "none", 1: "forest", 2: "grassland_shrub", 3: "cropland", 4: "built_up", 5: "water"}
GEOMETRY_CODES = {0: "normal", 1: "layover", 2: "shadow", 3: "foreshortening_strong"}

# Class offsets from forest in dB (VV, VH) and the cos^m exponent of the incidence dependence.
_COVER_OFFSET_DB = {1: (0.0, 0.0), 2: (-1.5, -3.5), 3: (-3.0, -6.0), 4: (2.0, 1.0), 5: (-15.0, -14.0)}
_COVER_COS_EXP = {1: 1.0, 2: 1.5, 3: 1.5, 4: 1.0, 5: 3.0}
# Sensitivity to soil wetness (dB per unit wetness), VV and VH.
_COVER_WET_DB = {1: (0.3, 0.2), 2: (1.2, 0.8), 3: (1.5, 1.0), 4: (0.2, 0.1), 5: (0.0, 0.0)}
_BARE_DB = (-3.0, -6.0)  # bare soil (logging) relative to forest
_BARE_WET_DB = (1.5, 1.0)
THETA_REF_DEG = 38.0
AREA_FACTOR_CAP = 6.0
LAYOVER_GAIN_DB = 9.0
IW_INCIDENCE_RATE_DEG_PER_KM = 0.068


@dataclass(frozen=True)
class Calibration:
    """Forest backscatter statistics a preset reproduces (median and spread, dB)."""

    name: str
    vv_db: float
    vv_spread_db: float
    vh_db: float
    vh_spread_db: float
    epsg: int
    event_time: str
    origin: tuple[float, float]  # top-left corner (x, y) of the default area, metres
    relative_orbits: tuple[int, int]  # (ascending, descending)
    source: str


CALIBRATIONS = {
    "hokkaido": Calibration(
        "hokkaido", -7.3, 2.1, -13.2, 1.9, 32654, "2018-09-05T18:07:59Z", (570000.0, 4740000.0), (68, 46),
        "DESIGN.md 'Data we have': Sentinel-1 GRD over the 2018 Eastern Iburi (Hokkaido) earthquake area",
    ),
    "kaikoura": Calibration(
        "kaikoura", -9.9, 2.7, -16.0, 2.3, 32759, "2016-11-13T11:02:56Z", (640000.0, 5310000.0), (52, 73),
        "DESIGN.md 'Data we have': Sentinel-1 GRD over the 2016 Kaikoura (New Zealand) earthquake area",
    ),
}

# Regime parameters: Malamud et al. (2004) inverse gamma (rho, a, s in m^2), truncation, count density
# (slides per km^2 of terrain steeper than the minimum slope), elongation range, scar fraction.
_REGIMES = {
    "earthquake": dict(rho=1.4, a=1280.0, s=-132.0, min_area=300.0, max_area=2.5e5, density=10.0,
                       elong=(1.5, 3.5), scar=0.6, min_slope=20.0),
    "rain": dict(rho=1.4, a=6000.0, s=-132.0, min_area=1500.0, max_area=6.0e5, density=1.6,
                 elong=(3.0, 7.0), scar=0.5, min_slope=22.0),
}


@dataclass
class SimulationConfig:
    """All parameters of one simulated event.  ``None`` means "derived from the seed/calibration".

    Units: pixels, metres, dB, degrees, days.  :meth:`resolved` fills every
    ``None`` deterministically; ``event.json`` stores the resolved values, so
    ``SimulationConfig.from_dict(event["config"])`` regenerates the event.
    """

    seed: int = 0
    rows: int = 600
    cols: int = 600
    pixel_size: float = 10.0
    dem_pixel_size: float = 30.0
    epsg: int | None = None
    origin_x: float | None = None
    origin_y: float | None = None
    regime: str = "earthquake"
    calibration: str = "hokkaido"
    event_time: str | None = None
    n_pre: int = 5
    n_post: int = 2
    revisit_days: int = 12
    tracks_per_pass: int = 1
    relative_orbit_asc: int | None = None
    relative_orbit_desc: int | None = None
    incidence_asc_deg: float | None = None  # at the scene centre
    incidence_desc_deg: float | None = None
    enl: float = ENL_IW_GRDH
    nesz_db: float = -23.0
    # terrain
    relief_m: float = 400.0
    base_elevation_m: float = 60.0
    ridge_spacing_m: float = 1800.0
    ridge_weight: float = 0.45
    hurst: float = 0.8
    valley_floor_fraction: float = 0.2
    # land cover
    grass_fraction: float = 0.12  # of sloping land
    town_fraction: float = 0.08  # of flat land
    water_fraction: float = 0.2  # of the valley floor
    # landslides (None: from the regime)
    n_slides: int | None = None
    slide_density_per_km2: float | None = None
    slide_min_slope_deg: float | None = None
    slide_min_area_m2: float | None = None
    slide_max_area_m2: float | None = None
    frac_rise: float = 0.12
    frac_invisible: float = 0.08
    # distractors
    logging_per_km2: float = 0.4
    rain_interval_days: float = 8.0
    # storage
    max_z_error: float | None = None  # dB; None = lossless

    # ------------------------------------------------------------------ helpers
    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> SimulationConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"unknown simulation parameter(s): {', '.join(sorted(unknown))}")
        return cls(**data)

    def validate(self) -> None:
        """Raise ValueError with a one-line message for impossible settings."""
        if self.regime not in REGIMES:
            raise ValueError(f"regime must be one of {REGIMES}, not {self.regime!r}")
        if self.calibration not in CALIBRATIONS:
            raise ValueError(f"calibration must be one of {tuple(CALIBRATIONS)}, not {self.calibration!r}")
        if not (32 <= self.rows <= 4000 and 32 <= self.cols <= 4000):
            raise ValueError(f"rows and cols must be 32..4000 pixels, got {self.rows} x {self.cols}")
        if self.pixel_size <= 0 or self.dem_pixel_size <= 0:
            raise ValueError("pixel sizes must be positive (metres)")
        ratio = self.dem_pixel_size / self.pixel_size
        if abs(ratio - round(ratio)) > 1e-9 or round(ratio) < 1:
            raise ValueError(
                f"dem_pixel_size ({self.dem_pixel_size} m) must be a whole multiple of pixel_size "
                f"({self.pixel_size} m), e.g. pixel size 5, 10, 15 or 30 m for a 30 m DEM"
            )
        if self.n_pre < 1 or self.n_post < 1:
            raise ValueError("n_pre and n_post must be at least 1 acquisition per pass")
        if self.n_pre + self.n_post > 200:
            raise ValueError("at most 200 acquisitions per track")
        if self.revisit_days not in (6, 12):
            raise ValueError(f"revisit_days must be 6 or 12 (Sentinel-1), not {self.revisit_days}")
        if self.tracks_per_pass not in (1, 2):
            raise ValueError("tracks_per_pass must be 1 or 2")
        if not 1.0 <= self.enl <= 100.0:
            raise ValueError(f"enl must be between 1 and 100, not {self.enl}")
        if self.relief_m < 0:
            raise ValueError("relief_m must be >= 0")
        if self.max_z_error is not None and not 0 < self.max_z_error <= 1.0:
            raise ValueError("max_z_error must be in (0, 1] dB, or None for lossless storage")
        for name in ("incidence_asc_deg", "incidence_desc_deg"):
            v = getattr(self, name)
            if v is not None and not 20.0 <= v <= 50.0:
                raise ValueError(f"{name} must be 20..50 degrees (IW: 29-46), not {v}")
        for name in ("relative_orbit_asc", "relative_orbit_desc"):
            v = getattr(self, name)
            if v is not None and not 1 <= v <= 175:
                raise ValueError(f"{name} must be 1..175, not {v}")
        for name in ("valley_floor_fraction", "grass_fraction", "town_fraction", "water_fraction",
                     "frac_rise", "frac_invisible", "ridge_weight"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, not {v}")
        if self.event_time is not None:
            parse_time(self.event_time)

    def regime_params(self) -> dict:
        p = dict(_REGIMES[self.regime])
        if self.slide_min_slope_deg is not None:
            p["min_slope"] = float(self.slide_min_slope_deg)
        if self.slide_min_area_m2 is not None:
            p["min_area"] = float(self.slide_min_area_m2)
        if self.slide_max_area_m2 is not None:
            p["max_area"] = float(self.slide_max_area_m2)
        if self.slide_density_per_km2 is not None:
            p["density"] = float(self.slide_density_per_km2)
        return p

    def resolved(self) -> SimulationConfig:
        """A copy with every ``None`` replaced by its seed/calibration-derived value."""
        self.validate()
        cal = CALIBRATIONS[self.calibration]
        rng = _rng(self.seed, "config")
        offx, offy, inc_a, inc_d = rng.uniform(-1, 1, 4)
        res = dataclasses.replace(self)
        if res.epsg is None:
            res.epsg = cal.epsg
        dem = self.dem_pixel_size
        if res.origin_x is None:
            res.origin_x = float(round((cal.origin[0] + offx * 20000.0) / dem) * dem)
        if res.origin_y is None:
            res.origin_y = float(round((cal.origin[1] + offy * 20000.0) / dem) * dem)
        if res.event_time is None:
            res.event_time = cal.event_time
        res.event_time = format_time(parse_time(res.event_time))
        if res.relative_orbit_asc is None:
            res.relative_orbit_asc = cal.relative_orbits[0]
        if res.relative_orbit_desc is None:
            res.relative_orbit_desc = cal.relative_orbits[1]
        if res.incidence_asc_deg is None:
            res.incidence_asc_deg = round(38.0 + 5.0 * inc_a, 2)
        if res.incidence_desc_deg is None:
            res.incidence_desc_deg = round(38.0 + 5.0 * inc_d, 2)
        rp = res.regime_params()
        res.slide_min_slope_deg = rp["min_slope"]
        res.slide_min_area_m2 = rp["min_area"]
        res.slide_max_area_m2 = rp["max_area"]
        res.slide_density_per_km2 = rp["density"]
        return res


@dataclass
class SimulationResult:
    """Paths of everything :func:`simulate_event` wrote, and summary numbers."""

    out_dir: Path
    scene_paths: list[Path]
    dem_path: Path
    truth_mask_path: Path
    landslides_path: Path
    geometry_paths: dict[str, Path]
    landcover_path: Path
    event_json_path: Path
    config: SimulationConfig
    n_landslides: int
    total_landslide_area_m2: float
    n_visible_drop: int
    scenes: list[dict] = field(default_factory=list)
    elapsed_s: float = 0.0

    def all_files(self) -> list[Path]:
        return sorted(p for p in self.out_dir.rglob("*") if p.is_file())


# --------------------------------------------------------------------------- time


def parse_time(text: str) -> _dt.datetime:
    """Parse ISO-8601 (``Z`` or offset; a bare date means 00:00 UTC) into an aware UTC datetime."""
    s = str(text).strip()
    if s.endswith(("Z", "z")):
        s = s[:-1] + "+00:00"
    try:
        t = _dt.datetime.fromisoformat(s)
    except ValueError:
        raise ValueError(f"event time {text!r} is not ISO-8601, e.g. 2018-09-05T18:07:59Z") from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=_dt.timezone.utc)
    return t.astimezone(_dt.timezone.utc).replace(microsecond=0)


def format_time(t: _dt.datetime) -> str:
    return t.astimezone(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# --------------------------------------------------------------------------- presets / factories


def default_config(seed: int = 0, **overrides) -> SimulationConfig:
    """The ``default`` preset: 600 x 600 px at 10 m, earthquake, Hokkaido calibration, 5 + 2 dates per pass."""
    return dataclasses.replace(SimulationConfig(seed=int(seed)), **overrides)


SAMPLE_SIZE_PX = 540


def sample_config(seed: int = 20180906, **overrides) -> SimulationConfig:
    """The shipped demo scene: earthquake regime, Hokkaido calibration, 5 pre + 2 post per pass,

    stored lossy with 0.1 dB maximum error (speckle is about 2 dB).  Sized so the
    whole ``sample_data`` folder stays under about 8 MB.
    """
    base = SimulationConfig(
        seed=int(seed), rows=SAMPLE_SIZE_PX, cols=SAMPLE_SIZE_PX, regime="earthquake", calibration="hokkaido",
        n_pre=5, n_post=2, revisit_days=12, relief_m=420.0, max_z_error=0.1,
    )
    return dataclasses.replace(base, **overrides)


def random_event_config(seed: int, **overrides) -> SimulationConfig:
    """An event whose terrain, land cover, regime, dates, geometry and calibration all vary with ``seed``.

    Use it to build training and test sets of *different* events
    (``[random_event_config(s, rows=256, cols=256) for s in range(20)]``).
    ``overrides`` fix any field (e.g. ``regime="rain"``).
    """
    rng = _rng(int(seed), "random_event")
    start = _dt.datetime(2015, 6, 1, tzinfo=_dt.timezone.utc)
    event = start + _dt.timedelta(seconds=int(rng.integers(0, 8 * 365 * 86400)))
    cfg = SimulationConfig(
        seed=int(seed),
        rows=256,
        cols=256,
        regime=str(rng.choice(REGIMES)),
        calibration=str(rng.choice(sorted(CALIBRATIONS))),
        event_time=format_time(event),
        n_pre=int(rng.integers(3, 8)),
        n_post=int(rng.integers(2, 4)),
        revisit_days=int(rng.choice([6, 12])),
        tracks_per_pass=1,
        relative_orbit_asc=int(rng.integers(1, 176)),
        relative_orbit_desc=int(rng.integers(1, 176)),
        relief_m=float(np.round(rng.uniform(200.0, 900.0), 1)),
        ridge_spacing_m=float(np.round(rng.uniform(1000.0, 3500.0), 1)),
        ridge_weight=float(np.round(rng.uniform(0.1, 0.8), 3)),
        hurst=float(np.round(rng.uniform(0.65, 0.95), 3)),
        valley_floor_fraction=float(np.round(rng.uniform(0.08, 0.35), 3)),
        grass_fraction=float(np.round(rng.uniform(0.03, 0.5), 3)),
        town_fraction=float(np.round(rng.uniform(0.0, 0.2), 3)),
        water_fraction=float(np.round(rng.uniform(0.05, 0.35), 3)),
        logging_per_km2=float(np.round(rng.uniform(0.0, 1.0), 3)),
        rain_interval_days=float(np.round(rng.uniform(4.0, 20.0), 2)),
    )
    return dataclasses.replace(cfg, **overrides)


def event_configs(seeds, **overrides) -> list[SimulationConfig]:
    """:func:`random_event_config` for each seed: a set of mutually different events."""
    return [random_event_config(int(s), **overrides) for s in seeds]


def preset_config(preset: str, seed: int, **overrides) -> SimulationConfig:
    """The named preset (``sample``, ``default`` or ``random``) with ``overrides`` applied."""
    factories = {"sample": sample_config, "default": default_config, "random": random_event_config}
    if preset not in factories:
        raise ValueError(f"preset must be one of {PRESETS}, not {preset!r}")
    return factories[preset](seed, **overrides)


# --------------------------------------------------------------------------- random helpers

_COMPONENTS = {
    "config": 1, "terrain": 2, "landcover": 3, "parcels": 4, "texture": 5, "calibration": 6, "tracks": 7,
    "weather": 8, "logging": 9, "slides": 10, "speckle": 11, "random_event": 12, "urban": 13,
}


def _rng(seed: int, component: str, *extra: int) -> np.random.Generator:
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, int(seed) >> 32, _COMPONENTS[component], *extra])


def _spectral_field(rng, shape, k0_px: float, beta: float, k_hi_px: float | None = None) -> np.ndarray:
    """Gaussian random field with power spectrum ``(k^2 + k0^2)^(-beta/2)`` (optionally band-limited)."""
    ny, nx = shape
    white = rng.standard_normal(shape)
    spec = np.fft.rfft2(white)
    ky = np.fft.fftfreq(ny)[:, None]
    kx = np.fft.rfftfreq(nx)[None, :]
    k2 = kx * kx + ky * ky
    filt = (k2 + k0_px * k0_px) ** (-beta / 4.0)
    if k_hi_px is not None:
        filt = filt * np.exp(-k2 / (k_hi_px * k_hi_px))
    filt[0, 0] = 0.0
    out = np.fft.irfft2(spec * filt, s=shape)
    out -= out.mean()
    sd = out.std()
    return out / sd if sd > 0 else out


def _smooth_noise(rng, shape, scale_px: float) -> np.ndarray:
    """Smooth standard-normal noise with correlation length ``scale_px``."""
    f = ndimage.gaussian_filter(rng.standard_normal(shape), scale_px, mode="wrap")
    sd = f.std()
    return (f - f.mean()) / sd if sd > 0 else f


# --------------------------------------------------------------------------- terrain


def _terrain(cfg: SimulationConfig, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Elevation (m), valley-floor mask and the un-flattened height field on ``shape``."""
    rng = _rng(cfg.seed, "terrain")
    ny, nx = shape
    gy, gx = int(ny * 1.25) + 32, int(nx * 1.25) + 32  # generate larger: no periodic wrap in the crop
    px = cfg.pixel_size
    k0 = px / cfg.ridge_spacing_m
    beta = 2.0 * cfg.hurst + 3.2
    fbm = _spectral_field(rng, (gy, gx), k0, beta)
    ridged = np.zeros((gy, gx))
    weight = 1.0
    for octave in range(2):
        kc = k0 * (2 ** octave) * 0.8
        band = _spectral_field(rng, (gy, gx), kc * 0.5, 2.0, k_hi_px=kc * 2.0)
        ridged += weight * (1.0 - np.minimum(np.abs(band) / 2.0, 1.0)) ** 2
        weight *= 0.35
    ridged = ndimage.gaussian_filter(ridged, 20.0 / px)
    ridged = (ridged - ridged.mean()) / ridged.std()
    h = (1.0 - cfg.ridge_weight) * fbm + cfg.ridge_weight * ridged
    oy, ox = (gy - ny) // 2, (gx - nx) // 2
    h = h[oy:oy + ny, ox:ox + nx]
    lo, hi = np.percentile(h, [0.5, 99.5])
    h = np.clip((h - lo) / max(hi - lo, 1e-9), 0.0, 1.0)
    floor_q = np.quantile(h, cfg.valley_floor_fraction) if cfg.valley_floor_fraction > 0 else 0.0
    valley = h <= floor_q
    hv = np.maximum(h - floor_q, 0.0) / max(1.0 - floor_q, 1e-9)
    elev = cfg.base_elevation_m + cfg.relief_m * hv ** 1.25
    # gentle regional tilt and sub-metre floodplain roughness
    yy, xx = np.mgrid[0:ny, 0:nx]
    tilt_dir = rng.uniform(0, 2 * np.pi)
    elev += 0.002 * px * (np.cos(tilt_dir) * xx + np.sin(tilt_dir) * yy)
    elev += 0.3 * ndimage.gaussian_filter(rng.standard_normal(shape), 2.0) * 3.0
    return elev, valley, h


def _padded_terrain(cfg: SimulationConfig):
    """Elevation and land cover on the scene grid plus the DEM margin; (elev, landcover, margin, factor)."""
    px = float(cfg.pixel_size)
    factor = int(round(cfg.dem_pixel_size / px))
    margin = 2 * factor  # fine pixels of DEM margin on each side
    pny = -(-(cfg.rows + 2 * margin) // factor) * factor
    pnx = -(-(cfg.cols + 2 * margin) // factor) * factor
    elev_p, valley_p, hraw_p = _terrain(cfg, (pny, pnx))
    slope_p, _, _, _ = _slope_aspect(elev_p, px)
    lc_p, elev_p = _landcover(cfg, elev_p, valley_p, hraw_p, slope_p)
    return elev_p, lc_p, margin, factor


def scene_terrain(config: SimulationConfig) -> dict[str, np.ndarray]:
    """The true terrain behind an event on the scene grid (pixel_size, not the 30 m DEM).

    Returns ``elevation`` (m), ``slope`` (deg), ``aspect`` (deg clockwise from
    north, the downslope direction) and ``landcover`` (codes of
    :data:`LANDCOVER_CLASSES`), exactly as :func:`simulate_event` uses them.
    """
    cfg = config.resolved()
    elev_p, lc_p, margin, _ = _padded_terrain(cfg)
    slope, aspect, _, _ = _slope_aspect(elev_p, float(cfg.pixel_size))
    sl = (slice(margin, margin + cfg.rows), slice(margin, margin + cfg.cols))
    return {"elevation": elev_p[sl].copy(), "slope": slope[sl].copy(), "aspect": aspect[sl].copy(),
            "landcover": lc_p[sl].copy()}


def _slope_aspect(elev: np.ndarray, px: float, smooth: float = 0.0):
    """Slope (deg), aspect (deg clockwise from north, downslope direction), dz/dx east, dz/dy north."""
    z = ndimage.gaussian_filter(elev, smooth) if smooth > 0 else elev
    dz_drow, dz_dcol = np.gradient(z, px)
    dzdx = dz_dcol
    dzdy = -dz_drow  # rows run south
    slope = np.degrees(np.arctan(np.hypot(dzdx, dzdy)))
    aspect = np.degrees(np.arctan2(-dzdx, -dzdy)) % 360.0
    return slope, aspect, dzdx, dzdy


# --------------------------------------------------------------------------- land cover


def _landcover(cfg, elev, valley, hraw, slope):
    rng = _rng(cfg.seed, "landcover")
    shape = elev.shape
    px = cfg.pixel_size
    lc = np.ones(shape, dtype=np.uint8)  # forest
    slope_s = ndimage.gaussian_filter(slope, 1.5)
    flats = valley | (slope_s < 5.0)
    # water: the lowest parts of the valley floors (rivers and ponds), flat surfaces
    water = np.zeros(shape, bool)
    if valley.any() and cfg.water_fraction > 0:
        q = np.quantile(hraw[valley], cfg.water_fraction)
        water = valley & (hraw <= q)
        water = ndimage.binary_opening(water, iterations=1)
    # built-up blobs and crop parcels on the rest of the flats
    town_noise = _smooth_noise(rng, shape, 400.0 / px)
    land_flat = flats & ~water
    town = np.zeros(shape, bool)
    if land_flat.any() and cfg.town_fraction > 0:
        thr = np.quantile(town_noise[land_flat], 1.0 - cfg.town_fraction)
        town = land_flat & (town_noise > thr)
    lc[land_flat] = 3
    lc[town] = 4
    # grass/shrub patches on slopes
    grass_noise = _smooth_noise(rng, shape, 150.0 / px)
    slopes = ~flats
    if slopes.any() and cfg.grass_fraction > 0:
        thr = np.quantile(grass_noise[slopes], 1.0 - cfg.grass_fraction)
        lc[slopes & (grass_noise > thr)] = 2
    lc[water] = 5
    # water surfaces are flat: each water body at its lowest elevation
    if water.any():
        lab, n = ndimage.label(water)
        mins = ndimage.minimum(elev, lab, index=np.arange(1, n + 1))
        elev = elev.copy()
        elev[water] = np.asarray(mins)[lab[water] - 1]
    return lc, elev


def _parcels(cfg, shape) -> np.ndarray:
    """Rectangular field parcels (ids) from random row/column cuts, 120-400 m wide."""
    rng = _rng(cfg.seed, "parcels")
    px = cfg.pixel_size

    def cuts(n):
        edges = [0]
        while edges[-1] < n:
            edges.append(edges[-1] + int(rng.uniform(120.0, 400.0) / px) + 1)
        return np.searchsorted(np.array(edges[1:]), np.arange(n), side="right")

    r = cuts(shape[0])
    c = cuts(shape[1])
    return r[:, None] * (c.max() + 1) + c[None, :]


# --------------------------------------------------------------------------- geometry


@dataclass
class Track:
    orbit_pass: str  # ASCENDING | DESCENDING
    relative_orbit: int
    incidence_deg: float  # scene centre
    heading_deg: float
    utc_seconds: int  # time of day
    phase_days: int
    nesz_db: float
    primary: bool

    @property
    def look_azimuth_deg(self) -> float:
        return (self.heading_deg + 90.0) % 360.0  # right-looking

    @property
    def short(self) -> str:
        return _PASS_SHORT[self.orbit_pass]


_PASS_SHORT = {"ASCENDING": "ASC", "DESCENDING": "DSC"}


def _tracks(cfg: SimulationConfig) -> list[Track]:
    rng = _rng(cfg.seed, "tracks")
    zone_cm = _utm_central_meridian(cfg.epsg)
    tracks = []
    for orbit_pass, relorb, inc, local_h, heading in (
        ("ASCENDING", cfg.relative_orbit_asc, cfg.incidence_asc_deg, 17.75, -10.0),
        ("DESCENDING", cfg.relative_orbit_desc, cfg.incidence_desc_deg, 5.75, 190.0),
    ):
        for k in range(cfg.tracks_per_pass):
            local = local_h + rng.uniform(-0.15, 0.15) - (0.4 if k else 0.0)
            utc = (local - zone_cm / 15.0) % 24.0
            this_inc = inc if k == 0 else (inc - 9.0 if inc > 38.0 else inc + 9.0)
            tracks.append(Track(
                orbit_pass=orbit_pass,
                relative_orbit=int(relorb if k == 0 else (relorb + 72) % 175 + 1),
                incidence_deg=float(this_inc),
                heading_deg=heading + float(rng.uniform(-2.5, 2.5)),
                utc_seconds=int(utc * 3600.0),
                phase_days=int(rng.integers(0, cfg.revisit_days)),
                nesz_db=cfg.nesz_db + float(rng.uniform(-1.0, 1.0)),
                primary=(k == 0),
            ))
    return tracks


def _utm_central_meridian(epsg: int) -> float:
    if 32601 <= epsg <= 32660 or 32701 <= epsg <= 32760:
        zone = epsg % 100
        return -183.0 + 6.0 * zone
    return 0.0


def _acquisition_times(track: Track, event: _dt.datetime, cfg: SimulationConfig) -> list[tuple[_dt.datetime, str]]:
    day0 = event.replace(hour=0, minute=0, second=0)
    first_post = day0 + _dt.timedelta(days=track.phase_days, seconds=track.utc_seconds)
    if first_post <= event:
        first_post += _dt.timedelta(days=cfg.revisit_days)
    step = _dt.timedelta(days=cfg.revisit_days)
    pre = [(first_post - step * (k + 1), "pre") for k in range(cfg.n_pre)]
    post = [(first_post + step * k, "post") for k in range(cfg.n_post)]
    return sorted(pre + post)


def _geometry(track: Track, elev, dzdx, dzdy, px):
    """Per-pixel ellipsoid incidence, local incidence (rad) and geometry code (0-3) for one track."""
    ny, nx = elev.shape
    phi = math.radians(track.look_azimuth_deg)
    de, dn = math.sin(phi), math.cos(phi)  # horizontal look direction (away from the radar)
    far_sign = 1.0 if de > 0 else -1.0  # far range lies east for ascending, west for descending
    col_km = (np.arange(nx) - (nx - 1) / 2.0) * px / 1000.0
    theta_e = np.radians(track.incidence_deg + far_sign * IW_INCIDENCE_RATE_DEG_PER_KM * col_km)[None, :]
    theta_e = np.broadcast_to(theta_e, elev.shape)
    # unit vector ground -> sensor (east, north, up)
    le, ln, lu = -np.sin(theta_e) * de, -np.sin(theta_e) * dn, np.cos(theta_e)
    norm = np.sqrt(dzdx * dzdx + dzdy * dzdy + 1.0)
    cos_loc = (-dzdx * le - dzdy * ln + lu) / norm
    theta_loc = np.arccos(np.clip(cos_loc, -1.0, 1.0))
    range_slope = dzdx * de + dzdy * dn  # > 0: terrain rises away from the radar, i.e. faces it
    alpha = np.arctan(range_slope)
    layover = alpha > theta_e
    shadow = (-alpha) > (np.pi / 2 - theta_e)
    # cast shadow: ray casting along rows (look direction about east/west)
    tan_c = math.tan(math.radians(track.incidence_deg))
    dist = np.arange(nx) * px * abs(de)
    if de > 0:
        g = elev + dist[None, :] / tan_c
        blocked = np.maximum.accumulate(g, axis=1) > g + 0.5
    else:
        g = elev + dist[None, ::-1] / tan_c
        blocked = (np.maximum.accumulate(g[:, ::-1], axis=1) > g[:, ::-1] + 0.5)[:, ::-1]
    shadow |= blocked
    compression = np.sin(theta_e - alpha) / np.sin(theta_e)
    code = np.zeros(elev.shape, np.uint8)
    code[(compression < 0.4) & ~layover] = 3
    code[layover] = 1
    code[shadow] = 2
    return np.ascontiguousarray(theta_e), theta_loc, code


def _modulation_db(theta_e, theta_loc, m: float) -> np.ndarray:
    """10 log10 of (cos theta_loc / cos theta_ref)^m * sin theta_e / sin theta_loc (capped area factor)."""
    cos_l = np.clip(np.cos(theta_loc), 1e-3, 1.0)
    area = np.minimum(np.sin(theta_e) / np.maximum(np.sin(theta_loc), 1e-3), AREA_FACTOR_CAP)
    return 10.0 * (m * np.log10(cos_l / math.cos(math.radians(THETA_REF_DEG))) + np.log10(area))


# --------------------------------------------------------------------------- landslides


def _sample_areas(rng, n, p) -> np.ndarray:
    out = np.empty(0)
    while out.size < n:
        g = rng.gamma(p["rho"], 1.0, size=max(4 * n, 64))
        a = p["a"] / g + p["s"]
        a = a[(a >= p["min_area"]) & (a <= p["max_area"])]
        out = np.concatenate([out, a])
    return out[:n]


def _landslides(cfg, elev, slope, lc, px):
    """Label raster (0 = none, i = slide i), scar mask, and per-slide records."""
    rng = _rng(cfg.seed, "slides")
    p = cfg.regime_params()
    ny, nx = elev.shape
    _, _, dzdx_s, dzdy_s = _slope_aspect(elev, px, smooth=3.0)
    min_slope = p["min_slope"]
    eligible = (lc == 1) | (lc == 2)
    steep = eligible & (slope >= min_slope)
    steep_km2 = steep.sum() * px * px / 1e6
    if cfg.n_slides is not None:
        n_target = int(cfg.n_slides)
    else:
        n_target = int(rng.poisson(p["density"] * steep_km2))
    labels = np.zeros((ny, nx), np.int32)
    scar = np.zeros((ny, nx), bool)
    records = []
    if n_target == 0 or not steep.any():
        return labels, scar, records
    weight = np.where(steep, np.clip(slope - min_slope + 1.0, 0.0, None) ** 1.5, 0.0).ravel()
    weight /= weight.sum()
    areas = _sample_areas(rng, n_target, p)
    elong_lo, elong_hi = p["elong"]
    attempts = 0
    i = 0
    while i < n_target and attempts < n_target * 20:
        attempts += 1
        area = float(areas[i])
        seed_idx = int(rng.choice(weight.size, p=weight))
        r0, c0 = divmod(seed_idx, nx)
        ratio = rng.uniform(elong_lo, elong_hi)
        width = math.sqrt(4.0 * area / (math.pi * ratio))
        length = ratio * width
        gx, gy = -dzdx_s[r0, c0], -dzdy_s[r0, c0]  # downslope (east, north)
        gn = math.hypot(gx, gy)
        if gn < 1e-6:
            continue
        ue, un = gx / gn, gy / gn
        half = int(length / px) + 3
        ra, rb = max(r0 - half, 0), min(r0 + half + 1, ny)
        ca, cb = max(c0 - half, 0), min(c0 + half + 1, nx)
        yy, xx = np.mgrid[ra:rb, ca:cb]
        de_m = (xx - c0) * px
        dn_m = -(yy - r0) * px
        u = de_m * ue + dn_m * un + 0.1 * length  # along slope, crown at u = 0
        v = -de_m * un + dn_m * ue
        s = u / length
        inside_s = (s > 0) & (s < 1)
        wob_k, wob_p, wob_a = rng.uniform(1.0, 3.0), rng.uniform(0, 2 * np.pi), rng.uniform(0.05, 0.25)
        hw = 0.5 * width * np.sqrt(np.clip(np.sin(np.pi * np.clip(s, 0, 1)), 0, 1)) * (
            1.0 + wob_a * np.sin(2 * np.pi * wob_k * s + wob_p))
        shape = inside_s & (np.abs(v) <= hw) & (lc[ra:rb, ca:cb] != 5) & (lc[ra:rb, ca:cb] != 4)
        npx = int(shape.sum())
        if npx < max(2, int(0.5 * area / (px * px))):
            continue
        win = labels[ra:rb, ca:cb]
        if (win[shape] > 0).mean() > 0.1:
            continue
        shape &= win == 0
        if slope[ra:rb, ca:cb][shape].mean() < min_slope:
            continue
        slide_id = len(records) + 1
        win[shape] = slide_id
        scar[ra:rb, ca:cb] |= shape & (s < p["scar"])
        kind = rng.choice(["drop", "rise", "invisible"], p=[1 - cfg.frac_rise - cfg.frac_invisible,
                                                            cfg.frac_rise, cfg.frac_invisible])
        if kind == "drop":
            dvh = -rng.uniform(2.5, 6.0)
            dvv = dvh * rng.uniform(0.35, 0.7)
        elif kind == "rise":
            dvv = rng.uniform(1.0, 3.5)
            dvh = dvv * rng.uniform(0.5, 0.9)
        else:
            dvh = rng.uniform(-0.6, 0.6)
            dvv = rng.uniform(-0.6, 0.6)
        if kind != "invisible" and (lc[r0, c0] == 2):  # grass to soil: smaller contrast than forest
            dvh *= 0.6
            dvv *= 0.6
        records.append(dict(slide_id=slide_id, kind=str(kind), dvv=float(dvv), dvh=float(dvh),
                            length=float(length), width=float(width), cover=int(lc[r0, c0])))
        i += 1
    return labels, scar, records


# --------------------------------------------------------------------------- weather / distractors


def _wetness_fn(cfg, t0: _dt.datetime, t1: _dt.datetime, event: _dt.datetime):
    """Soil wetness 0..1.5 as a function of time: Poisson rain events, 3-day drying."""
    rng = _rng(cfg.seed, "weather")
    span = (t1 - t0).total_seconds() / 86400.0 + 20.0
    n = int(rng.poisson(span / max(cfg.rain_interval_days, 0.5)))
    times = np.sort(rng.uniform(-20.0, span - 20.0, n))
    amps = rng.exponential(0.6, n)
    if cfg.regime == "rain":
        ev_day = (event - t0).total_seconds() / 86400.0
        times = np.append(times, ev_day - 0.5)
        amps = np.append(amps, 1.5)

    def wetness(t: _dt.datetime) -> float:
        d = (t - t0).total_seconds() / 86400.0
        past = times < d
        return float(min(np.sum(amps[past] * np.exp(-(d - times[past]) / 3.0)), 1.5))

    return wetness


def _season_state(t: _dt.datetime, south: bool, wetness) -> tuple[int, float, float]:
    """(day of the growing year, leaf-on factor -1..1, soil wetness) at time ``t``."""
    doy = t.timetuple().tm_yday
    if south:
        doy = (doy + 182) % 365
    leaf = math.cos(2 * math.pi * (doy - 200) / 365.0)
    return doy, leaf, wetness(t)


def _logging_patches(cfg, lc, slope, t0, t1, px):
    rng = _rng(cfg.seed, "logging")
    ny, nx = lc.shape
    area_km2 = ny * nx * px * px / 1e6
    n = int(rng.poisson(cfg.logging_per_km2 * area_km2))
    patches = []
    span = (t1 - t0).total_seconds()
    for _ in range(n):
        h = int(rng.uniform(60, 250) / px) + 1
        w = int(rng.uniform(60, 250) / px) + 1
        r, c = int(rng.integers(0, max(ny - h, 1))), int(rng.integers(0, max(nx - w, 1)))
        when = t0 + _dt.timedelta(seconds=float(rng.uniform(0.0, span)))
        mask = np.zeros((ny, nx), bool)
        mask[r:r + h, c:c + w] = True
        mask &= (lc == 1) & (slope < 35.0)
        if mask.sum() >= 4:
            patches.append((mask, when))
    return patches


# --------------------------------------------------------------------------- main entry


def _fmt_name(track: Track, t: _dt.datetime) -> str:
    return f"{SCENE_PREFIX}_{track.short}_R{track.relative_orbit:03d}_{t.strftime('%Y%m%dT%H%M%S')}.tif"


def _synthetic_sentence(cfg) -> str:
    return (f"SYNTHETIC: simulated by landslide_sar_plugin.core.simulate {GENERATOR_VERSION} with seed {cfg.seed}; "
            "not a real Sentinel-1 acquisition")


def simulate_event(out_dir: str | os.PathLike, config: SimulationConfig | None = None,
                   progress=None) -> SimulationResult:
    """Simulate one event into ``out_dir`` (layout in the module docstring of the CLI / DESIGN).

    ``progress(fraction, message)`` is called between steps when given.
    Raises ValueError for invalid configurations.
    """
    started = time.perf_counter()
    cfg = (config or SimulationConfig()).resolved()
    out = Path(out_dir)
    report = progress or (lambda f, m: None)
    px = float(cfg.pixel_size)
    ny, nx = cfg.rows, cfg.cols
    report(0.02, "terrain")
    elev_p, lc_p, margin, factor = _padded_terrain(cfg)
    pny, pnx = elev_p.shape
    sl = (slice(margin, margin + ny), slice(margin, margin + nx))
    elev = elev_p[sl]
    slope, aspect, dzdx, dzdy = _slope_aspect(elev_p, px)
    slope, aspect, dzdx, dzdy = slope[sl], aspect[sl], dzdx[sl], dzdy[sl]
    lc = np.ascontiguousarray(lc_p[sl])

    from rasterio.crs import CRS
    from rasterio.transform import from_origin

    crs = CRS.from_epsg(cfg.epsg)
    transform = from_origin(cfg.origin_x, cfg.origin_y, px, px)
    dem_transform = from_origin(cfg.origin_x - margin * px, cfg.origin_y + margin * px,
                                cfg.dem_pixel_size, cfg.dem_pixel_size)
    dem = elev_p.reshape(pny // factor, factor, pnx // factor, factor).mean(axis=(1, 3)).astype(np.float32)

    event = parse_time(cfg.event_time)
    tracks = _tracks(cfg)
    acq = []  # (time, track, role)
    for tr in tracks:
        for t, role in _acquisition_times(tr, event, cfg):
            acq.append((t, tr, role))
    acq.sort(key=lambda a: (a[0], a[1].orbit_pass, a[1].relative_orbit))
    t_first, t_last = acq[0][0], acq[-1][0]

    report(0.1, "geometry")
    geo = {}
    _, _, dzdx_p, dzdy_p = _slope_aspect(elev_p, px)
    for tr in tracks:  # computed on the padded grid so that ridges outside the scene cast shadow into it
        geo[id(tr)] = tuple(np.ascontiguousarray(a[sl]) for a in _geometry(tr, elev_p, dzdx_p, dzdy_p, px))

    report(0.2, "land cover and landslides")
    parcels = _parcels(cfg, (ny, nx))
    labels, scar, records = _landslides(cfg, elev, slope, lc, px)
    slide_mask = labels > 0

    # static per-pixel reference levels (dB, before calibration offset) --------------------------
    trng = _rng(cfg.seed, "texture")
    cal = CALIBRATIONS[cfg.calibration]
    base = {}
    for k, pol in enumerate(("VV", "VH")):
        b = np.zeros((ny, nx))
        for cls, offs in _COVER_OFFSET_DB.items():
            b[lc == cls] = offs[k]
        base[pol] = b
    tex = ndimage.gaussian_filter(trng.standard_normal((ny, nx)), 1.0)
    tex /= max(tex.std(), 1e-9)
    slide_tex = trng.standard_normal((ny, nx)) * 0.7
    urng = _rng(cfg.seed, "urban")
    bright = (lc == 4) & (urng.random((ny, nx)) < 0.03)
    urban_tex = urng.standard_normal((ny, nx)) * 2.0

    # calibration of the forest level: median over forest, normal geometry, all tracks ---------
    south = bool(32701 <= cfg.epsg <= 32760)
    wetness = _wetness_fn(cfg, t_first, t_last, event)
    acq_state = [_season_state(t, south, wetness) for t, _, _ in acq]
    crng = _rng(cfg.seed, "calibration")
    cos_exp = np.zeros((ny, nx))
    for cls, m in _COVER_COS_EXP.items():
        cos_exp[lc == cls] = m
    mod_db = {}
    for tr in tracks:
        theta_e, theta_loc, code = geo[id(tr)]
        mod_db[id(tr)] = _modulation_db(theta_e, theta_loc, 1.0) + (cos_exp - 1.0) * 10.0 * np.log10(
            np.clip(np.cos(theta_loc), 1e-3, 1.0) / math.cos(math.radians(THETA_REF_DEG)))
    forest_terms = [mod_db[id(tr)][(lc == 1) & (geo[id(tr)][2] != 1) & (geo[id(tr)][2] != 2)] for tr in tracks]
    forest_mod = np.concatenate(forest_terms) if forest_terms else np.zeros(0)
    speckle_db_sd = 10.0 / math.log(10.0) * math.sqrt(_trigamma(cfg.enl))
    terrain_sd = float(forest_mod.std()) if forest_mod.size > 10 else 0.0
    tex_forest = tex[lc == 1] if (lc == 1).any() else np.zeros(1)
    cal_offset = {}
    tex_sd = {}
    for pol, target, spread in (("VV", cal.vv_db, cal.vv_spread_db), ("VH", cal.vh_db, cal.vh_spread_db)):
        tex_sd[pol] = math.sqrt(max(spread ** 2 - speckle_db_sd ** 2 - terrain_sd ** 2, 0.3 ** 2))
        if forest_mod.size > 10:
            n = min(forest_mod.size, 200000)
            idx = crng.choice(forest_mod.size, n, replace=False) if forest_mod.size > n else np.arange(n)
            t_idx = crng.integers(0, tex_forest.size, n)
            spk = 10.0 * np.log10(crng.gamma(cfg.enl, 1.0 / cfg.enl, n))
            k = 0 if pol == "VV" else 1
            temporal = np.array([0.3 * leaf + _COVER_WET_DB[1][k] * w for _, leaf, w in acq_state])
            tmp_t = temporal[crng.integers(0, temporal.size, n)]
            signal_db = forest_mod[idx] + tex_sd[pol] * tex_forest[t_idx] + tmp_t
            nesz = 10.0 ** (np.array([tr.nesz_db for tr in tracks])[crng.integers(0, len(tracks), n)] / 10.0)
            offset = target - float(np.median(signal_db + spk))
            for _ in range(4):  # thermal noise adds in power: iterate to the target median
                sim = 10.0 * np.log10(10.0 ** ((signal_db + offset) / 10.0) + nesz) + spk
                offset += target - float(np.median(sim))
        else:
            offset = target - 10.0 * math.log10(_gamma_median(cfg.enl))
        cal_offset[pol] = offset
    static_db = {}
    for pol in ("VV", "VH"):
        s = base[pol] + cal_offset[pol]
        s = s + np.where(lc == 1, tex_sd[pol] * tex, 0.6 * tex)
        s = np.where(lc == 4, s + urban_tex * 0.5 + np.where(bright, 10.0, 0.0), s)
        static_db[pol] = s

    patches = _logging_patches(cfg, lc, slope, t_first, t_last, px)
    prng = _rng(cfg.seed, "parcels", 1)
    n_parcels = int(parcels.max()) + 1
    peak = prng.uniform(150.0, 230.0, n_parcels)
    width = prng.uniform(25.0, 50.0, n_parcels)
    harvest = peak + prng.uniform(10.0, 60.0, n_parcels)
    amp_vv = prng.uniform(1.0, 3.0, n_parcels)
    amp_vh = prng.uniform(3.0, 6.0, n_parcels)
    crop = lc == 3
    grass = lc == 2
    forest = lc == 1
    water = lc == 5
    wet_sens = {pol: np.zeros((ny, nx)) for pol in ("VV", "VH")}
    for cls, sens in _COVER_WET_DB.items():
        wet_sens["VV"][lc == cls] = sens[0]
        wet_sens["VH"][lc == cls] = sens[1]

    # slide change maps (dB) ----------------------------------------------------------------------
    change = {pol: np.zeros((ny, nx)) for pol in ("VV", "VH")}
    for rec in records:
        m = labels == rec["slide_id"]
        fac = np.where(scar[m], 1.0, 0.7)
        change["VV"][m] = rec["dvv"] * fac + 0.3 * slide_tex[m]
        change["VH"][m] = rec["dvh"] * fac + 0.3 * slide_tex[m]

    report(0.3, "acquisitions")
    scene_dir = out / "scenes"
    scene_paths = []
    scene_meta = []
    srng_base = cfg.seed
    for ai, (t, tr, role) in enumerate(acq):
        theta_e, theta_loc, code = geo[id(tr)]
        doy, leaf, w = acq_state[ai]
        g = np.exp(-((doy - peak) / width) ** 2)
        g = np.where(doy > harvest, 0.08, g)
        wind = float(_rng(srng_base, "weather", 1000 + int(t.timestamp()) // 3600).uniform(0.0, 1.0))
        bands = []
        for k, pol in enumerate(("VV", "VH")):
            db = static_db[pol].copy()
            amp = amp_vv if pol == "VV" else amp_vh
            db[crop] += (amp * g)[parcels[crop]]
            db[forest] += 0.3 * leaf
            db[grass] += (0.8 if pol == "VH" else 0.4) * leaf
            db += wet_sens[pol] * w
            db[water] += (7.0 if pol == "VV" else 4.0) * wind
            for mask, when in patches:
                if t > when:
                    db[mask] += _BARE_DB[k] + (_BARE_WET_DB[k] - _COVER_WET_DB[1][k]) * w
            if role == "post":
                db[slide_mask] += change[pol][slide_mask] + (_BARE_WET_DB[k] - _COVER_WET_DB[1][k]) * w * (
                    scar[slide_mask])
            sig = 10.0 ** ((db + mod_db[id(tr)]) / 10.0)
            lay = code == 1
            sig[lay] = 10.0 ** ((db[lay] + LAYOVER_GAIN_DB) / 10.0)
            sig[code == 2] = 0.0
            sig += 10.0 ** (tr.nesz_db / 10.0)
            srng = _rng(cfg.seed, "speckle", ai, k)
            sig *= srng.gamma(cfg.enl, 1.0 / cfg.enl, size=sig.shape)
            bands.append((10.0 * np.log10(sig)).astype(np.float32))
        name = _fmt_name(tr, t)
        path = scene_dir / name
        write_geotiff(
            path, np.stack(bands), transform=transform, crs=crs, nodata=float("nan"),
            band_descriptions=["VV", "VH"],
            tags={
                "ACQUISITION_START": format_time(t),
                "ORBIT_PASS": tr.orbit_pass,
                "RELATIVE_ORBIT": tr.relative_orbit,
                "UNITS": "dB",
                "POLARISATIONS": "VV,VH",
                "SYNTHETIC": _synthetic_sentence(cfg),
                "PLATFORM": "SIMULATED",
                "INSTRUMENT_MODE": "IW",
                "PRODUCT_TYPE": "GRD (simulated sigma0, ellipsoid-normalised)",
                "INCIDENCE_ANGLE_CENTRE_DEG": f"{tr.incidence_deg:.2f}",
                "HEADING_DEG": f"{tr.heading_deg:.2f}",
                "ENL": cfg.enl,
                "EVENT_ROLE": role,
            },
            band_tags=[{"POLARISATION": "VV", "UNITS": "dB"}, {"POLARISATION": "VH", "UNITS": "dB"}],
            max_z_error=cfg.max_z_error,
        )
        scene_paths.append(path)
        scene_meta.append({"file": f"scenes/{name}", "acquisition_start": format_time(t),
                           "orbit_pass": tr.orbit_pass, "relative_orbit": tr.relative_orbit, "role": role,
                           "incidence_deg": round(tr.incidence_deg, 2), "soil_wetness": round(w, 3)})
        report(0.3 + 0.6 * (ai + 1) / len(acq), f"acquisition {ai + 1}/{len(acq)}")

    report(0.92, "truth")
    synth = _synthetic_sentence(cfg)
    dem_path = write_geotiff(
        out / "dem.tif", dem, transform=dem_transform, crs=crs, nodata=float("nan"),
        band_descriptions=["elevation"],
        tags={"UNITS": "m", "SYNTHETIC": synth, "PLATFORM": "SIMULATED",
              "DESCRIPTION": f"synthetic terrain block-averaged to {cfg.dem_pixel_size:g} m (like GLO-30/SRTM)"},
    )
    truth = out / "truth"
    truth_mask_path = write_geotiff(
        truth / "truth_mask.tif", slide_mask.astype(np.uint8), transform=transform, crs=crs, nodata=None,
        band_descriptions=["landslide"], tags={"SYNTHETIC": synth, "VALUES": "1 = landslide (scar + deposit), 0 = not"},
    )
    geometry_paths = {}
    primary = {tr.orbit_pass: tr for tr in tracks if tr.primary}
    for key, pas in (("asc", "ASCENDING"), ("desc", "DESCENDING")):
        tr = primary[pas]
        geometry_paths[key] = write_geotiff(
            truth / f"geometry_{key}.tif", geo[id(tr)][2], transform=transform, crs=crs, nodata=None,
            band_descriptions=["geometry"],
            tags={"SYNTHETIC": synth, "ORBIT_PASS": pas, "RELATIVE_ORBIT": tr.relative_orbit,
                  "CODES": "0 normal, 1 layover, 2 shadow, 3 strong foreshortening",
                  **{f"CODE_{c}": n for c, n in GEOMETRY_CODES.items()}},
        )
    landcover_path = write_geotiff(
        truth / "landcover.tif", lc, transform=transform, crs=crs, nodata=0, band_descriptions=["landcover"],
        tags={"SYNTHETIC": synth, "CODES": ", ".join(f"{c} {n}" for c, n in LANDCOVER_CLASSES.items()),
              **{f"CLASS_{c}": n for c, n in LANDCOVER_CLASSES.items()}},
    )

    features = _slide_features(cfg, labels, scar, records, slope, aspect, geo, primary, transform)
    landslides_path = write_features(
        truth / "landslides.gpkg", "landslides", features, crs=crs, fields=_SLIDE_FIELDS,
        description=f"SYNTHETIC landslide inventory (simulated, seed {cfg.seed})", timestamp=cfg.event_time,
    )

    areas = [f.properties["area_m2"] for f in features]
    kinds = [f.properties["change_kind"] for f in features]
    n_vis_drop = sum(1 for f in features if f.properties["change_kind"] == "drop"
                     and (f.properties["visible_asc"] or f.properties["visible_desc"]))
    event_doc = {
        "synthetic": True,
        "note": "SYNTHETIC event simulated by landslide_sar_plugin; not real Sentinel-1 data",
        "generator": "landslide_sar_plugin.core.simulate",
        "generator_version": GENERATOR_VERSION,
        "seed": cfg.seed,
        "event_time": cfg.event_time,
        "regime": cfg.regime,
        "calibration": {"name": cal.name, "vv_db": cal.vv_db, "vv_spread_db": cal.vv_spread_db,
                        "vh_db": cal.vh_db, "vh_spread_db": cal.vh_spread_db, "source": cal.source},
        "config": cfg.to_dict(),
        "crs": f"EPSG:{cfg.epsg}",
        "grid": {"rows": ny, "cols": nx, "pixel_size_m": px, "transform": list(transform)[:6]},
        "dem": {"file": "dem.tif", "pixel_size_m": cfg.dem_pixel_size, "rows": int(dem.shape[0]),
                "cols": int(dem.shape[1]), "transform": list(dem_transform)[:6]},
        "truth": {"mask": "truth/truth_mask.tif", "landslides": "truth/landslides.gpkg",
                  "geometry_asc": "truth/geometry_asc.tif", "geometry_desc": "truth/geometry_desc.tif",
                  "landcover": "truth/landcover.tif",
                  "landcover_codes": {str(k): v for k, v in LANDCOVER_CLASSES.items()},
                  "geometry_codes": {str(k): v for k, v in GEOMETRY_CODES.items()}},
        "tracks": [{"orbit_pass": tr.orbit_pass, "relative_orbit": tr.relative_orbit,
                    "incidence_centre_deg": round(tr.incidence_deg, 2), "heading_deg": round(tr.heading_deg, 2),
                    "nesz_db": round(tr.nesz_db, 2), "primary": tr.primary} for tr in tracks],
        "scenes": scene_meta,
        "landslides": {
            "count": len(features),
            "total_area_m2": float(sum(areas)),
            "median_area_m2": float(np.median(areas)) if areas else 0.0,
            "max_area_m2": float(max(areas)) if areas else 0.0,
            "by_change_kind": {k: kinds.count(k) for k in ("drop", "rise", "invisible")},
            "visible_drop": n_vis_drop,
            "min_slope_deg": cfg.slide_min_slope_deg,
            "area_fraction": float(slide_mask.mean()),
        },
        "distractors": {
            "logging_patches": [{"date": format_time(w), "area_m2": float(m.sum() * px * px)} for m, w in patches],
            "crop_parcels": True, "soil_moisture": True, "water_wind": True,
        },
        "ENL": cfg.enl,
    }
    written = {p.name for p in scene_paths}
    for stale in sorted(scene_dir.glob(f"{SCENE_PREFIX}_*.tif")):  # scenes of an earlier run into this folder
        if stale.name not in written:
            stale.unlink()
    out.mkdir(parents=True, exist_ok=True)
    event_json = out / "event.json"
    tmp = out / ".event.json.partial"
    tmp.write_text(json.dumps(event_doc, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, event_json)
    report(1.0, "done")
    return SimulationResult(
        out_dir=out, scene_paths=scene_paths, dem_path=dem_path, truth_mask_path=truth_mask_path,
        landslides_path=landslides_path, geometry_paths=geometry_paths, landcover_path=landcover_path,
        event_json_path=event_json, config=cfg, n_landslides=len(features),
        total_landslide_area_m2=float(sum(areas)), n_visible_drop=n_vis_drop, scenes=scene_meta,
        elapsed_s=time.perf_counter() - started,
    )


_SLIDE_FIELDS = [
    ("slide_id", "INTEGER"), ("area_m2", "REAL"), ("scar_area_m2", "REAL"), ("deposit_area_m2", "REAL"),
    ("length_m", "REAL"), ("width_m", "REAL"), ("regime", "TEXT"), ("mean_slope_deg", "REAL"),
    ("aspect_deg", "REAL"), ("landcover_before", "TEXT"), ("change_kind", "TEXT"), ("dvv_db", "REAL"),
    ("dvh_db", "REAL"), ("shadow_asc", "REAL"), ("shadow_desc", "REAL"), ("layover_asc", "REAL"),
    ("layover_desc", "REAL"), ("visible_asc", "BOOLEAN"), ("visible_desc", "BOOLEAN"), ("event_time", "TEXT"),
    ("synthetic", "BOOLEAN"),
]


def _slide_features(cfg, labels, scar, records, slope, aspect, geo, primary, transform) -> list[Feature]:
    from rasterio import features as rfeatures

    px = cfg.pixel_size
    geoms: dict[int, list] = {}
    if records:
        for geom, value in rfeatures.shapes(labels, mask=labels > 0, transform=transform, connectivity=4):
            geoms.setdefault(int(value), []).append(geom["coordinates"])
    code_asc = geo[id(primary["ASCENDING"])][2]
    code_desc = geo[id(primary["DESCENDING"])][2]
    objects = ndimage.find_objects(labels)
    feats = []
    for rec in records:
        sid = rec["slide_id"]
        bbox = objects[sid - 1]
        m = labels[bbox] == sid
        npx = int(m.sum())
        if npx == 0 or sid not in geoms:
            continue
        sh_a = float((code_asc[bbox][m] == 2).mean())
        sh_d = float((code_desc[bbox][m] == 2).mean())
        kind = rec["kind"]
        if sh_a > 0.5 and sh_d > 0.5:
            kind = "invisible"
        asp = np.radians(aspect[bbox][m])
        mean_aspect = float(np.degrees(np.arctan2(np.sin(asp).mean(), np.cos(asp).mean())) % 360.0)
        parts = geoms[sid]
        geometry = {"type": "Polygon", "coordinates": parts[0]} if len(parts) == 1 else {
            "type": "MultiPolygon", "coordinates": parts}
        nscar = int(scar[bbox][m].sum())
        fac = (nscar + 0.7 * (npx - nscar)) / npx
        feats.append(Feature(geometry=geometry, properties={
            "slide_id": sid,
            "area_m2": npx * px * px,
            "scar_area_m2": nscar * px * px,
            "deposit_area_m2": (npx - nscar) * px * px,
            "length_m": round(rec["length"], 1),
            "width_m": round(rec["width"], 1),
            "regime": cfg.regime,
            "mean_slope_deg": round(float(slope[bbox][m].mean()), 2),
            "aspect_deg": round(mean_aspect, 1),
            "landcover_before": LANDCOVER_CLASSES[rec["cover"]],
            "change_kind": kind,
            "dvv_db": round(rec["dvv"] * fac, 3),
            "dvh_db": round(rec["dvh"] * fac, 3),
            "shadow_asc": round(sh_a, 3),
            "shadow_desc": round(sh_d, 3),
            "layover_asc": round(float((code_asc[bbox][m] == 1).mean()), 3),
            "layover_desc": round(float((code_desc[bbox][m] == 1).mean()), 3),
            "visible_asc": bool(kind != "invisible" and sh_a <= 0.5),
            "visible_desc": bool(kind != "invisible" and sh_d <= 0.5),
            "event_time": cfg.event_time,
            "synthetic": True,
        }))
    return feats


def _trigamma(x: float) -> float:
    from scipy.special import polygamma

    return float(polygamma(1, x))


def _gamma_median(enl: float) -> float:
    from scipy.stats import gamma

    return float(gamma.ppf(0.5, enl, scale=1.0 / enl))
