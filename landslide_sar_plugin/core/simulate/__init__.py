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
    flattened below a quantile into alluvial valley floors.  Relief amplitude
    (the ``random`` preset: 100-900 m, log-uniform, so gentle hill country as
    well as mountains), ridge spacing, ridge sharpness and the valley-floor
    fraction vary per event.
    Slope and aspect come from central differences on the 10 m surface.  The
    DEM file is that surface block-averaged to 30 m (like SRTM / Copernicus
    GLO-30), covering the scene plus a 60 m margin.  Water surfaces are flat.

Land cover (``truth/landcover.tif``)
    1 forest (slopes), 2 grassland/shrub (slopes, patchy), 3 cropland
    (rectangular parcels on flats), 4 built-up (blobs on flats), 5 water (the
    lowest parts of the valley floors: rivers, ponds).

Levels (DESIGN.md, "Data we have": published Sentinel-1 statistics)
    ``hokkaido``: VV -7.3 dB (spread 2.1), VH -13.2 dB (spread 1.9);
    ``kaikoura``: VV -9.9 dB (spread 2.7), VH -16.0 dB (spread 2.3).  The
    ``sample`` preset uses the Hokkaido medians; ``default`` and ``random``
    draw the forest medians per seed (:func:`drawn_world`: VV -10.5..-6.5 dB,
    VH 5.5-7.5 dB below VV; the real California chaparral of the calibration
    stacks is VV -8.8, VH -15.4 gamma0), so no single site is the whole world.
    They are taken as the statistics of vegetated slopes (class 1): the
    simulator sets the forest reference level so that the MEDIAN over forest
    pixels outside
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

Speckle (:func:`.change.correlated_speckle`)
    Multiplicative, independent per date and polarisation: intensity times a
    ``Gamma(shape=ENL, scale=1/ENL)`` variate (mean 1) at each pixel, ENL 4.4
    (IW GRDH); in dB a spread of 2.2 dB and a median bias of -0.37 dB.  It is
    spatially correlated over the resolution cell (GRDH: 20 x 22 m on 10 m
    pixels; ``speckle_resolution_m`` 24 m FWHM), so a 30 m block has an ENL
    of about 7.7, not 40: independent 10 m speckle (generator 1.x) made the
    30 m no-change A_ratio about four times too clean (0.37 dB against the
    real 1.4-1.9).

Time
    One relative orbit per pass (optionally two, with different incidence),
    revisit 6 or 12 days; ascending acquisitions near 17:45 and descending near
    05:45 local solar time (UTC from the UTM zone's central meridian).  At least
    ``n_pre`` acquisitions before and ``n_post`` after the event on each pass.
    Non-landslide changes, the realistic false alarms, on every land cover
    including forest (:mod:`.change`):

    * rain (:func:`.change.wet_brightening_db`): soil wetness ``W`` from a
      Poisson rain process (mean interval ``rain_interval_days``, 10 d;
      heavy-tailed storm amplitudes; 3-day drying; capped at 2) adds a power
      ``W g_c E_t(x) sigma_c`` to the dry backscatter of each date (gains
      ``g_c`` per land cover, forest 0.6/0.8 VV/VH, bare soil 1.5/1.35): a
      per-date, area-wide brightening (the per-date offsets; +2..4 dB on a
      storm date, as in the real stacks) that is larger on dark pixels and
      varies in space with a lognormal pattern ``E_t`` (log-sd 0.5, 60 % of
      its variance persisting between dates, correlation length 300 m);
    * a dry-date change field, sd ``change_sd_db`` 0.4 dB, exponential
      covariance over ``change_corr_m`` 300 m, its own on each date and pass
      (VV and VH correlated at 0.5): moisture and vegetation state;
    * interannual change of each resolution cell, sd 1 dB at the 10 m pixel,
      linear between independent yearly knots (negligible within a season,
      about 0.7 dB at 30 m between years): shrub growth and dieback, which
      makes windows a year apart noisier than consecutive weeks, as in the
      real stacks;
    * a radiometric shift of each whole acquisition, sd 0.1 dB;
    * crop growth and harvest per parcel (flat land), logging (forest patches
      on slopes turning into bare ground on a random date, the same signature
      as a scar), water roughness by wind per date, and a small
      leaf-on/leaf-off cycle.

Landslides (``truth/landslides.gpkg``, ``truth/truth_mask.tif``)
    Areas follow the three-parameter inverse-gamma distribution of Malamud et
    al. (2004, ESPL 29: 687-711), ``rho = 1.4``, ``a = 1.28e-3 km^2``,
    ``s = -1.32e-4 km^2`` (earthquake regime: many small slides, rollover near
    400 m^2, power-law tail ``A^-2.4``), truncated to [min, max] area; the rain
    regime uses a larger scale (fewer, larger slides) and longer shapes.
    Initiation points are drawn with a weight ``(slope - min_slope)^1.5`` on
    forest/grass, from ``min_slope`` 10 deg (earthquake) or 12 deg (rain) up,
    so that gentle slopes carry slides too; each slide is an elongated tear-drop along the smoothed
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

Calibration against real Sentinel-1 stacks (``make calibration``)
    Real: NASA OPERA L2 RTC-S1, track 137 ascending, 100 x 100 px crops at
    30 m (3 km), 21 dates 2021-2025, no event; tuned on bursts
    T137-292319-IW2 and -292321-IW2 (steep chaparral), reported on the held
    out -292320-IW2, -292322-IW2 and the ocean bursts.  SYNTHETIC: no-change
    stacks (:func:`simulate_stack`) on the same 21 dates, ascending, 3 km
    crops, seeds 1-4; "calibrated" = the ``sample`` preset's values (the
    defaults of :class:`SimulationConfig`), "randomised" = the ``default``
    preset's per-seed draws; 10 m block-averaged to 30 m in linear power.
    One computation for both (:mod:`.calibration`): A_ratio = median of 4
    consecutive pre dates - median of the next 2 (dB, no speckle filter), 5
    consecutive and 2 year-apart window pairs, over land.  RTC gamma0 vs GRD
    sigma0: every statistic below is a difference of dates of one track, in
    which the static terrain factor that RTC removes cancels, so they are
    compared as they are (levels are not fitted).  Means over bursts / seeds::

                                  A_ratio std  cons./year  share >1   >1.25  >2    >3     e-fold corr. white  offsets
                                  dB           dB          dB                            m      sd dB  dB^2   std/max dB
      VH real tuning (land)       1.66         1.60/1.83   0.25       0.21   0.11  0.037  217    0.39   2.9    0.64/2.4
      VH real report (held out)   1.69         1.61/1.89   0.26       0.21   0.11  0.042  384    0.45   2.9    0.94/3.1
      VH SYNTHETIC calibr. 30 m   1.57         1.50/1.72   0.29       0.24   0.12  0.040  238    0.38   2.9    0.49/1.8
      VH SYNTHETIC random. 30 m   1.57         1.51/1.71   0.29       0.24   0.13  0.042  281    0.42   2.9    0.49/1.8
      VH SYNTHETIC calibr. 10 m   2.07         1.99/2.27   0.34       0.30   0.19  0.090  243    0.37   5.2    0.48/1.8
      VH SYNTHETIC 1.x, 30 m      0.37 (the simulator before this calibration, same computation)
      VV real tuning (land)       1.58         1.48/1.83   0.23       0.19   0.09  0.030  162    0.35   2.6    0.59/2.2
      VV real report (held out)   1.54         1.42/1.84   0.24       0.19   0.09  0.032  240    0.39   2.4    0.66/2.0
      VV SYNTHETIC calibr. 30 m   1.60         1.52/1.80   0.29       0.24   0.13  0.043  213    0.40   3.0    0.47/1.7
      VV SYNTHETIC random. 30 m   1.61         1.54/1.80   0.30       0.25   0.14  0.048  289    0.47   3.0    0.51/1.8
      VH real ocean (water)       2.66         2.64/2.69   0.43       0.39   0.29  0.175  30     0.25   8.8    0.65/1.8
      VV real ocean (water)       2.03         1.98/2.16   0.58       0.54   0.41  0.271  53     0.76   4.0    1.94/4.7

    The simulated 30 m VH standard deviation is 6 % below the tuning bursts'
    (7 % below the held-out ones), VV 1 % above (target: within 25 %); the
    tail shares are 8-16 % heavier (the simulated A_ratio median averages
    +0.1 dB against -0.1 dB real; per seed it ranges -0.3..+0.4 dB with the
    weather, and the autumn leaf-off trend of the Hokkaido-like phenology on
    these Nov-Jan dates, which evergreen chaparral lacks, adds about 0.1 dB);
    the e-folding distance and the correlated and white parts agree within
    10 %.  The per-date
    offsets are smaller than in the real stacks, whose two tuning bursts
    share one weather history with the 2022-23 California storms (+2 to +4 dB
    on storm dates); the simulator's rain is random per seed.  What the
    table showed and the physics above added: (1) most of the real 30 m
    no-change variance is speckle-scale (white 2.9 dB^2 of 3.1), which
    independent 10 m speckle could not give (hence the resolution-cell
    correlation); (2) the correlated change is about 0.4 dB with an
    e-folding distance of 150-550 m in a 3 km crop (the covariance of each
    date's deviation, speckle scale removed; see :mod:`.calibration`), and
    concentrated on wet dates, where it anti-correlates with the static
    level (-0.8): hence the additive wet power; (3) year-apart windows are
    noisier than consecutive ones at the pixel scale: hence the interannual
    term.  The ocean bursts sit at the noise floor of noise-subtracted RTC
    (VH -28 dB); the simulator's water is NESZ-limited without noise
    subtraction and is not fitted to them.  10 m references (real labelled
    data, MM-LandslideNet, 6,289 patches, 20 % landslide): the interquartile
    sigma of its post-minus-pre "Diff" channels is 2.4-2.7 dB (how the
    dataset formed them is not documented); the simulated single-date
    difference at 10 m has 3.1 dB, single-date speckle alone at ENL 4.4
    about 3 dB, which suggests those channels average several dates.

Determinism
    Each component draws from its own ``numpy.random.Generator`` seeded by
    ``(seed, component)``, and each acquisition's speckle and change fields by
    ``(seed, component, minute of the acquisition)``: adding dates changes
    neither the terrain nor another date's speckle and fields (the rain
    process, which spans all dates, does change).
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
from .change import (
    correlated_speckle,
    exponential_field,
    resolution_cell_field,
    wet_brightening_db,
    wet_change_at_reference_db,
    wet_pattern,
)

GENERATOR_VERSION = "2.0.0"
"""Bumped whenever the same configuration would give different files."""

SCENE_PREFIX = "S1SIM_IW"
REGIMES = ("earthquake", "rain")
PRESETS = ("sample", "default", "random")
ENL_IW_GRDH = 4.4
SPECKLE_RESOLUTION_M = 24.0  # IW GRDH: 20 x 22 m resolution on 10 m pixels; 24 m fits the real 30 m speckle

LANDCOVER_CLASSES = {0: "none", 1: "forest", 2: "grassland_shrub", 3: "cropland", 4: "built_up", 5: "water"}
GEOMETRY_CODES = {0: "normal", 1: "layover", 2: "shadow", 3: "foreshortening_strong"}

# Class offsets from forest in dB (VV, VH) and the cos^m exponent of the incidence dependence.
_COVER_OFFSET_DB = {1: (0.0, 0.0), 2: (-1.5, -3.5), 3: (-3.0, -6.0), 4: (2.0, 1.0), 5: (-15.0, -14.0)}
_COVER_COS_EXP = {1: 1.0, 2: 1.5, 3: 1.5, 4: 1.0, 5: 3.0}
# Wet gain (VV, VH): the power that rain adds at soil wetness 1, as a fraction of the class's dry
# reference level (see change.py).  Forest responds too (wet canopy and the soil under it).
_COVER_WET_GAIN = {1: (0.6, 0.8), 2: (0.9, 1.05), 3: (1.2, 1.2), 4: (0.08, 0.08), 5: (0.0, 0.0)}
_BARE_DB = (-3.0, -6.0)  # bare soil (logging, landslide scars) relative to forest
_BARE_WET_GAIN = (1.5, 1.35)
WETNESS_CAP = 2.0  # soil wetness saturates
DRY_CHANGE_POL_CORRELATION = 0.5  # between the VV and VH date-specific fields
INTERANNUAL_EPOCH = _dt.datetime(2000, 1, 1, tzinfo=_dt.timezone.utc)  # knots of the interannual change
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
                       elong=(1.5, 3.5), scar=0.6, min_slope=10.0),
    "rain": dict(rho=1.4, a=6000.0, s=-132.0, min_area=1500.0, max_area=6.0e5, density=1.6,
                 elong=(3.0, 7.0), scar=0.5, min_slope=12.0),
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
    rain_interval_days: float = 10.0
    # levels (None: the calibration site's published forest medians)
    forest_vv_db: float | None = None
    forest_vh_db: float | None = None
    # speckle and date-specific change (calibrated to real OPERA RTC-S1 stacks; see the docstring)
    speckle_resolution_m: float = SPECKLE_RESOLUTION_M
    wet_gain: float = 1.0  # scale of the land-cover wet gains
    wet_pattern_sd: float = 0.5  # log-space spread of the wet pattern
    wet_pattern_persistence: float = 0.6  # share of the wet pattern's variance that persists between dates
    change_corr_m: float = 300.0  # correlation length (exponential covariance) of the date-specific fields
    change_sd_db: float = 0.4  # dry-date change on land, every class including forest
    calibration_jitter_db: float = 0.1  # per-acquisition radiometric shift of the whole scene
    interannual_sd_db: float = 1.0  # per-pixel change between years (at the pixel, before averaging)
    # storage
    max_z_error: float | None = None  # dB; None = lossless

    # ------------------------------------------------------------------ helpers
    def forest_level_db(self, pol: str) -> float:
        """Target median forest backscatter (dB) of ``pol``: the override, else the calibration site's."""
        value = self.forest_vv_db if pol == "VV" else self.forest_vh_db
        if value is not None:
            return float(value)
        cal = CALIBRATIONS[self.calibration]
        return cal.vv_db if pol == "VV" else cal.vh_db

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
        self._validate_change_model()

    def _validate_change_model(self) -> None:
        for name in ("forest_vv_db", "forest_vh_db"):
            v = getattr(self, name)
            if v is not None and not -25.0 <= v <= 0.0:
                raise ValueError(f"{name} must be -25..0 dB, not {v}")
        if not 0.0 <= self.speckle_resolution_m <= 100.0:
            raise ValueError(f"speckle_resolution_m must be 0..100 m, not {self.speckle_resolution_m}")
        for name, lo, hi in (("wet_gain", 0.0, 5.0), ("wet_pattern_sd", 0.0, 2.0),
                             ("wet_pattern_persistence", 0.0, 1.0), ("change_sd_db", 0.0, 3.0),
                             ("calibration_jitter_db", 0.0, 1.0), ("interannual_sd_db", 0.0, 3.0)):
            v = getattr(self, name)
            if not lo <= v <= hi:
                raise ValueError(f"{name} must be between {lo:g} and {hi:g}, not {v}")
        if not 10.0 <= self.change_corr_m <= 20000.0:
            raise ValueError(f"change_corr_m must be 10..20000 m, not {self.change_corr_m}")

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
    from ..isotime import parse_iso_utc

    try:
        return parse_iso_utc(text).replace(microsecond=0)
    except ValueError:
        raise ValueError(f"event time {text!r} is not ISO-8601, e.g. 2018-09-05T18:07:59Z") from None


def format_time(t: _dt.datetime) -> str:
    return t.astimezone(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# --------------------------------------------------------------------------- presets / factories


def drawn_world(seed: int) -> dict:
    """Levels and change parameters drawn from ``seed``: one event is never the whole world.

    Forest VV median -10.5..-6.5 dB (Kaikoura -9.9, Hokkaido -7.3, the real
    California chaparral -8.8), VH 5.5-7.5 dB below it; the wet gain, wet
    pattern, dry-date change and its correlation length around their
    calibrated values (table in the module docstring).  Used by the
    ``default`` and ``random`` presets; the ``sample`` keeps the calibrated
    values and the Hokkaido levels.
    """
    rng = _rng(int(seed), "levels")
    vv = float(np.round(rng.uniform(-10.5, -6.5), 2))
    return {
        "forest_vv_db": vv,
        "forest_vh_db": float(np.round(vv - rng.uniform(5.5, 7.5), 2)),
        "wet_gain": float(np.round(rng.uniform(0.5, 1.6), 3)),
        "wet_pattern_sd": float(np.round(rng.uniform(0.3, 0.7), 3)),
        "change_sd_db": float(np.round(rng.uniform(0.25, 0.6), 3)),
        "change_corr_m": float(np.round(math.exp(rng.uniform(math.log(150.0), math.log(1200.0))), 1)),
    }


def default_config(seed: int = 0, **overrides) -> SimulationConfig:
    """The ``default`` preset: 600 x 600 px at 10 m, earthquake, Hokkaido site, 5 + 2 dates per pass,

    levels and change parameters drawn from the seed (:func:`drawn_world`).
    """
    return dataclasses.replace(SimulationConfig(seed=int(seed), **drawn_world(seed)), **overrides)


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
    """An event whose terrain (gentle to steep), land cover, regime, dates, geometry, levels and change vary.

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
        relief_m=float(np.round(math.exp(rng.uniform(math.log(100.0), math.log(900.0))), 1)),
        ridge_spacing_m=float(np.round(rng.uniform(1000.0, 3500.0), 1)),
        ridge_weight=float(np.round(rng.uniform(0.1, 0.8), 3)),
        hurst=float(np.round(rng.uniform(0.65, 0.95), 3)),
        valley_floor_fraction=float(np.round(rng.uniform(0.08, 0.35), 3)),
        grass_fraction=float(np.round(rng.uniform(0.03, 0.5), 3)),
        town_fraction=float(np.round(rng.uniform(0.0, 0.2), 3)),
        water_fraction=float(np.round(rng.uniform(0.05, 0.35), 3)),
        logging_per_km2=float(np.round(rng.uniform(0.0, 1.0), 3)),
        rain_interval_days=float(np.round(rng.uniform(4.0, 20.0), 2)),
        **drawn_world(seed),
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
    "weather": 8, "logging": 9, "slides": 10, "speckle": 11, "random_event": 12, "urban": 13, "change": 14,
    "levels": 15,
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
    """Soil wetness 0..WETNESS_CAP as a function of time: Poisson rain events, 3-day drying.

    Storm amplitudes are heavy-tailed (an exponential variate to the power
    1.6, mean about 0.6): most acquisitions see little rain, a few a storm, as
    the per-date offsets of the real stacks show (robust sigma 0.2 dB, largest
    +2 to +4 dB).
    """
    rng = _rng(cfg.seed, "weather")
    span = (t1 - t0).total_seconds() / 86400.0 + 20.0
    n = int(rng.poisson(span / max(cfg.rain_interval_days, 0.5)))
    times = np.sort(rng.uniform(-20.0, span - 20.0, n))
    amps = 0.42 * rng.exponential(1.0, n) ** 1.6
    if cfg.regime == "rain":
        ev_day = (event - t0).total_seconds() / 86400.0
        times = np.append(times, ev_day - 0.5)
        amps = np.append(amps, 1.5)

    def wetness(t: _dt.datetime) -> float:
        d = (t - t0).total_seconds() / 86400.0
        past = times < d
        return float(min(np.sum(amps[past] * np.exp(-(d - times[past]) / 3.0)), WETNESS_CAP))

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


# --------------------------------------------------------------------------- the scene model


@dataclass
class _Scene:
    """Everything about one event that does not change between acquisitions (internal)."""

    cfg: SimulationConfig
    elev: np.ndarray
    slope: np.ndarray
    aspect: np.ndarray
    lc: np.ndarray
    dem: np.ndarray
    crs: object
    transform: object
    dem_transform: object
    tracks: list
    acq: list  # (time, track, role), in time order
    acq_state: list  # (day of the growing year, leaf-on factor, soil wetness) per acquisition
    geo: dict  # id(track) -> (ellipsoid incidence, local incidence, geometry code)
    mod_db: dict  # id(track) -> terrain modulation of sigma0 (dB)
    static_db: dict  # polarisation -> static level with texture (dB)
    ref_db: dict  # polarisation -> reference level of the pixel's land cover (dB), for the wet power
    wet_gain: dict  # polarisation -> wet gain of the pixel's land cover
    wet_persistent: np.ndarray  # unit field: the part of the wet pattern that persists between dates
    crops: dict
    patches: list
    labels: np.ndarray
    scar: np.ndarray
    records: list
    slide_change: dict  # polarisation -> backscatter change of the slides (dB)

    @property
    def slide_mask(self) -> np.ndarray:
        return self.labels > 0


def _scene_grid(cfg: SimulationConfig) -> dict:
    """Terrain, land cover, DEM, grid and the geometry of every track."""
    px = float(cfg.pixel_size)
    ny, nx = cfg.rows, cfg.cols
    elev_p, lc_p, margin, factor = _padded_terrain(cfg)
    pny, pnx = elev_p.shape
    sl = (slice(margin, margin + ny), slice(margin, margin + nx))
    slope, aspect, dzdx_p, dzdy_p = _slope_aspect(elev_p, px)

    from rasterio.crs import CRS
    from rasterio.transform import from_origin

    tracks = _tracks(cfg)
    geo = {}
    for tr in tracks:  # computed on the padded grid so that ridges outside the scene cast shadow into it
        geo[id(tr)] = tuple(np.ascontiguousarray(a[sl]) for a in _geometry(tr, elev_p, dzdx_p, dzdy_p, px))
    return dict(
        elev=elev_p[sl], slope=slope[sl], aspect=aspect[sl], lc=np.ascontiguousarray(lc_p[sl]),
        dem=elev_p.reshape(pny // factor, factor, pnx // factor, factor).mean(axis=(1, 3)).astype(np.float32),
        crs=CRS.from_epsg(cfg.epsg), transform=from_origin(cfg.origin_x, cfg.origin_y, px, px),
        dem_transform=from_origin(cfg.origin_x - margin * px, cfg.origin_y + margin * px,
                                  cfg.dem_pixel_size, cfg.dem_pixel_size),
        tracks=tracks, geo=geo,
    )


def _scene_acquisitions(cfg, tracks, times=None, orbit_pass=None) -> list:
    """(time, track, role) of the event, or of ``times`` on the primary track of ``orbit_pass`` (all 'pre')."""
    if times is not None:
        track = next(tr for tr in tracks if tr.primary and tr.orbit_pass == orbit_pass)
        days = sorted({parse_time(format_time(t)).replace(hour=0, minute=0, second=0) for t in times})
        return [(d + _dt.timedelta(seconds=track.utc_seconds), track, "pre") for d in days]
    event = parse_time(cfg.event_time)
    acq = [(t, tr, role) for tr in tracks for t, role in _acquisition_times(tr, event, cfg)]
    acq.sort(key=lambda a: (a[0], a[1].orbit_pass, a[1].relative_orbit))
    return acq


def _terrain_modulation(lc, tracks, geo) -> dict:
    """Per track: the dB modulation of sigma0 by the local incidence (class-dependent cos^m and area factor)."""
    cos_exp = np.zeros(lc.shape)
    for cls, m in _COVER_COS_EXP.items():
        cos_exp[lc == cls] = m
    mod_db = {}
    for tr in tracks:
        theta_e, theta_loc, _ = geo[id(tr)]
        mod_db[id(tr)] = _modulation_db(theta_e, theta_loc, 1.0) + (cos_exp - 1.0) * 10.0 * np.log10(
            np.clip(np.cos(theta_loc), 1e-3, 1.0) / math.cos(math.radians(THETA_REF_DEG)))
    return mod_db


def _class_arrays(lc, table, k) -> np.ndarray:
    out = np.zeros(lc.shape)
    for cls, values in table.items():
        out[lc == cls] = values[k]
    return out


def _forest_calibration_offsets(cfg, lc, geo, tracks, mod_db, acq_state, tex) -> tuple[dict, dict]:
    """dB offsets that put the median forest backscatter at the target level, and the texture spreads.

    The median over forest pixels outside layover/shadow, of all tracks and
    dates, with terrain modulation, texture, the seasonal and wet terms, the
    thermal noise and speckle, is matched by a Monte Carlo sample.
    """
    crng = _rng(cfg.seed, "calibration")
    cal = CALIBRATIONS[cfg.calibration]
    forest_terms = [mod_db[id(tr)][(lc == 1) & (geo[id(tr)][2] != 1) & (geo[id(tr)][2] != 2)] for tr in tracks]
    forest_mod = np.concatenate(forest_terms) if forest_terms else np.zeros(0)
    speckle_db_sd = 10.0 / math.log(10.0) * math.sqrt(_trigamma(cfg.enl))
    terrain_sd = float(forest_mod.std()) if forest_mod.size > 10 else 0.0
    tex_forest = tex[lc == 1] if (lc == 1).any() else np.zeros(1)
    targets = (("VV", cfg.forest_level_db("VV"), cal.vv_spread_db), ("VH", cfg.forest_level_db("VH"), cal.vh_spread_db))
    cal_offset, tex_sd = {}, {}
    for k, (pol, target, spread) in enumerate(targets):
        tex_sd[pol] = math.sqrt(max(spread ** 2 - speckle_db_sd ** 2 - terrain_sd ** 2, 0.3 ** 2))
        if forest_mod.size <= 10:
            cal_offset[pol] = target - 10.0 * math.log10(_gamma_median(cfg.enl))
            continue
        n = min(forest_mod.size, 200000)
        idx = crng.choice(forest_mod.size, n, replace=False) if forest_mod.size > n else np.arange(n)
        t_idx = crng.integers(0, tex_forest.size, n)
        spk = 10.0 * np.log10(crng.gamma(cfg.enl, 1.0 / cfg.enl, n))
        gain = _COVER_WET_GAIN[1][k] * cfg.wet_gain
        temporal = np.array([0.3 * leaf + wet_change_at_reference_db(w, gain) for _, leaf, w in acq_state])
        change_sd = math.hypot(cfg.change_sd_db, cfg.interannual_sd_db)
        tmp_t = temporal[crng.integers(0, temporal.size, n)] + change_sd * crng.standard_normal(n)
        signal_db = forest_mod[idx] + tex_sd[pol] * tex_forest[t_idx] + tmp_t
        nesz = 10.0 ** (np.array([tr.nesz_db for tr in tracks])[crng.integers(0, len(tracks), n)] / 10.0)
        offset = target - float(np.median(signal_db + spk))
        for _ in range(4):  # thermal noise adds in power: iterate to the target median
            sim = 10.0 * np.log10(10.0 ** ((signal_db + offset) / 10.0) + nesz) + spk
            offset += target - float(np.median(sim))
        cal_offset[pol] = offset
    return cal_offset, tex_sd


def _static_levels(cfg, lc, cal_offset, tex_sd, tex) -> tuple[dict, dict]:
    """Static backscatter with texture, and the texture-free reference level of each pixel's class (dB)."""
    urng = _rng(cfg.seed, "urban")
    bright = (lc == 4) & (urng.random(lc.shape) < 0.03)
    urban_tex = urng.standard_normal(lc.shape) * 2.0
    static_db, ref_db = {}, {}
    for k, pol in enumerate(("VV", "VH")):
        ref = _class_arrays(lc, _COVER_OFFSET_DB, k) + cal_offset[pol]
        s = ref + np.where(lc == 1, tex_sd[pol] * tex, 0.6 * tex)
        s = np.where(lc == 4, s + urban_tex * 0.5 + np.where(bright, 10.0, 0.0), s)
        static_db[pol], ref_db[pol] = s, ref
    return static_db, ref_db


def _scene_texture(cfg, shape) -> np.ndarray:
    """Static speckle-free texture: unit-variance noise smoothed over about a resolution cell."""
    tex = ndimage.gaussian_filter(_rng(cfg.seed, "texture").standard_normal(shape), 1.0)
    return tex / max(tex.std(), 1e-9)


def _crop_calendar(cfg, parcels) -> dict:
    prng = _rng(cfg.seed, "parcels", 1)
    n_parcels = int(parcels.max()) + 1
    peak = prng.uniform(150.0, 230.0, n_parcels)
    return dict(parcels=parcels, peak=peak, width=prng.uniform(25.0, 50.0, n_parcels),
                harvest=peak + prng.uniform(10.0, 60.0, n_parcels),
                amp_vv=prng.uniform(1.0, 3.0, n_parcels), amp_vh=prng.uniform(3.0, 6.0, n_parcels))


def _build_scene(cfg: SimulationConfig, times=None, orbit_pass=None) -> _Scene:
    """The scene model of a resolved configuration, for its own acquisitions or for ``times`` (no-change)."""
    px = float(cfg.pixel_size)
    grid = _scene_grid(cfg)
    lc, slope, elev = grid["lc"], grid["slope"], grid["elev"]
    acq = _scene_acquisitions(cfg, grid["tracks"], times, orbit_pass)
    t_first, t_last = acq[0][0], acq[-1][0]
    south = bool(32701 <= cfg.epsg <= 32760)
    wetness = _wetness_fn(cfg, t_first, t_last, parse_time(cfg.event_time))
    acq_state = [_season_state(t, south, wetness) for t, _, _ in acq]
    mod_db = _terrain_modulation(lc, grid["tracks"], grid["geo"])
    tex = _scene_texture(cfg, lc.shape)
    cal_offset, tex_sd = _forest_calibration_offsets(cfg, lc, grid["geo"], grid["tracks"], mod_db, acq_state, tex)
    static_db, ref_db = _static_levels(cfg, lc, cal_offset, tex_sd, tex)
    labels, scar, records = _landslides(cfg, elev, slope, lc, px)
    slide_tex = _rng(cfg.seed, "texture", 1).standard_normal(lc.shape) * 0.7
    slide_change = {pol: np.zeros(lc.shape) for pol in ("VV", "VH")}
    for rec in records:
        m = labels == rec["slide_id"]
        fac = np.where(scar[m], 1.0, 0.7)
        slide_change["VV"][m] = rec["dvv"] * fac + 0.3 * slide_tex[m]
        slide_change["VH"][m] = rec["dvh"] * fac + 0.3 * slide_tex[m]
    wet_gain = {pol: _class_arrays(lc, _COVER_WET_GAIN, k) * cfg.wet_gain for k, pol in enumerate(("VV", "VH"))}
    persistent = exponential_field(_rng(cfg.seed, "change", 0), lc.shape, cfg.change_corr_m / px)
    return _Scene(
        cfg=cfg, elev=elev, slope=slope, aspect=grid["aspect"], lc=lc, dem=grid["dem"], crs=grid["crs"],
        transform=grid["transform"], dem_transform=grid["dem_transform"], tracks=grid["tracks"], acq=acq,
        acq_state=acq_state, geo=grid["geo"], mod_db=mod_db, static_db=static_db, ref_db=ref_db,
        wet_gain=wet_gain, wet_persistent=persistent, crops=_crop_calendar(cfg, _parcels(cfg, lc.shape)),
        patches=_logging_patches(cfg, lc, slope, t_first, t_last, px), labels=labels, scar=scar,
        records=records, slide_change=slide_change,
    )


# --------------------------------------------------------------------------- one acquisition


def _acquisition_key(t: _dt.datetime) -> int:
    """Minutes since 1970 of an acquisition: seeds its random streams, so adding dates changes no other date."""
    return int(t.timestamp()) // 60


def _date_fields(scene: _Scene, t: _dt.datetime) -> dict:
    """The random fields of one acquisition: wet pattern, dry-date change per polarisation, calibration shift."""
    cfg = scene.cfg
    shape = scene.lc.shape
    corr_px = cfg.change_corr_m / float(cfg.pixel_size)
    key = _acquisition_key(t)
    of_date = exponential_field(_rng(cfg.seed, "change", 1, key), shape, corr_px)
    drng = _rng(cfg.seed, "change", 2, key)
    f_vv = exponential_field(drng, shape, corr_px)
    f_other = exponential_field(drng, shape, corr_px)
    rho = DRY_CHANGE_POL_CORRELATION
    return {
        "interannual": cfg.interannual_sd_db * _interannual_field(scene, t),
        "pattern": wet_pattern(scene.wet_persistent, of_date, cfg.wet_pattern_sd, cfg.wet_pattern_persistence),
        "VV": cfg.change_sd_db * f_vv,
        "VH": cfg.change_sd_db * (rho * f_vv + math.sqrt(1.0 - rho * rho) * f_other),
        "shift_db": float(cfg.calibration_jitter_db * drng.standard_normal()),
    }


def _interannual_field(scene: _Scene, t: _dt.datetime) -> np.ndarray:
    """Unit field of the slow change of each resolution cell at ``t``: linear between independent yearly knots."""
    cfg = scene.cfg
    years = (t - INTERANNUAL_EPOCH).total_seconds() / (365.25 * 86400.0)
    knot = math.floor(years)
    frac = years - knot
    res_px = cfg.speckle_resolution_m / float(cfg.pixel_size)
    a, b = (resolution_cell_field(_rng(cfg.seed, "change", 3, knot + k), scene.lc.shape, res_px) for k in (0, 1))
    # (1 - f) a + f b has variance (1 - f)^2 + f^2: renormalise so that every date has unit variance
    return ((1.0 - frac) * a + frac * b) / math.sqrt((1.0 - frac) ** 2 + frac ** 2)


def _dry_db(scene: _Scene, ai: int, k: int, pol: str, fields: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Backscatter before the wet power (dB), and the reference level and wet gain of each pixel that date."""
    t, _, role = scene.acq[ai]
    doy, leaf, _ = scene.acq_state[ai]
    lc, crops = scene.lc, scene.crops
    db = scene.static_db[pol].copy()
    ref = scene.ref_db[pol].copy()
    gain = scene.wet_gain[pol].copy()
    g = np.exp(-((doy - crops["peak"]) / crops["width"]) ** 2)
    g = np.where(doy > crops["harvest"], 0.08, g)
    crop = lc == 3
    db[crop] += ((crops["amp_vv"] if pol == "VV" else crops["amp_vh"]) * g)[crops["parcels"][crop]]
    db[lc == 1] += 0.3 * leaf
    db[lc == 2] += (0.8 if pol == "VH" else 0.4) * leaf
    land = lc != 5
    db[land] += fields[pol][land] + fields["interannual"][land]
    bare = np.zeros(lc.shape, bool)
    for mask, when in scene.patches:
        if t > when:
            db[mask] += _BARE_DB[k]
            bare |= mask
    if role == "post":
        m = scene.slide_mask
        db[m] += scene.slide_change[pol][m]
        bare |= scene.scar
    ref[bare] = scene.ref_db[pol][bare] + _BARE_DB[k]
    gain[bare] = _BARE_WET_GAIN[k] * scene.cfg.wet_gain
    return db + fields["shift_db"], ref, gain


def _render_acquisition(scene: _Scene, ai: int) -> list[np.ndarray]:
    """The VV and VH bands (float32 dB) of acquisition ``ai``: terrain, change, geometry, noise, speckle."""
    cfg = scene.cfg
    t, tr, _ = scene.acq[ai]
    _, theta_loc, code = scene.geo[id(tr)]
    wetness = scene.acq_state[ai][2]
    fields = _date_fields(scene, t)
    wind = float(_rng(cfg.seed, "weather", 1000 + int(t.timestamp()) // 3600).uniform(0.0, 1.0))
    water = scene.lc == 5
    resolution_px = cfg.speckle_resolution_m / float(cfg.pixel_size)
    bands = []
    for k, pol in enumerate(("VV", "VH")):
        dry, ref, gain = _dry_db(scene, ai, k, pol, fields)
        db = wet_brightening_db(dry, ref, gain, wetness, fields["pattern"])
        db[water] += (7.0 if pol == "VV" else 4.0) * wind
        sig = 10.0 ** ((db + scene.mod_db[id(tr)]) / 10.0)
        lay = code == 1
        sig[lay] = 10.0 ** ((db[lay] + LAYOVER_GAIN_DB) / 10.0)
        sig[code == 2] = 0.0
        sig += 10.0 ** (tr.nesz_db / 10.0)
        sig *= correlated_speckle(_rng(cfg.seed, "speckle", _acquisition_key(t), k), sig.shape, cfg.enl,
                                  resolution_px)
        bands.append((10.0 * np.log10(sig)).astype(np.float32))
    return bands


# --------------------------------------------------------------------------- main entry


def _fmt_name(track: Track, t: _dt.datetime) -> str:
    return f"{SCENE_PREFIX}_{track.short}_R{track.relative_orbit:03d}_{t.strftime('%Y%m%dT%H%M%S')}.tif"


def _synthetic_sentence(cfg) -> str:
    return (f"SYNTHETIC: simulated by landslide_sar_plugin.core.simulate {GENERATOR_VERSION} with seed {cfg.seed}; "
            "not a real Sentinel-1 acquisition")


def simulate_stack(config: SimulationConfig, times=None, orbit_pass: str | None = None) -> dict:
    """One pass's simulated stacks in memory (no file written): the calibration's view of the simulator.

    ``times``: acquisition dates (aware datetimes) rendered on the primary
    track of ``orbit_pass`` (``ASCENDING``, the default, or ``DESCENDING``)
    at its time of day, all without landslides (a no-change stack, e.g. on
    the dates of a real stack); ``None``: the event's own acquisitions of
    that pass, slides imprinted in the post-event ones.  Returns ``times``,
    ``roles``, ``VV`` and ``VH`` (float32 dB, dates x rows x cols),
    ``landcover``, ``geometry`` (codes of :data:`GEOMETRY_CODES`),
    ``slide_mask``, ``soil_wetness`` and ``pixel_size_m``.  Rendering is the
    same as :func:`simulate_event`'s, acquisition by acquisition.
    """
    orbit_pass = orbit_pass or "ASCENDING"
    if orbit_pass not in _PASS_SHORT:
        raise ValueError(f"orbit_pass must be ASCENDING or DESCENDING, not {orbit_pass!r}")
    cfg = config.resolved()
    scene = _build_scene(cfg, list(times) if times is not None else None, orbit_pass)
    picked = [i for i, (_, tr, _) in enumerate(scene.acq) if tr.orbit_pass == orbit_pass and tr.primary]
    bands = [_render_acquisition(scene, i) for i in picked]
    track = scene.acq[picked[0]][1]
    return {
        "times": [scene.acq[i][0] for i in picked], "roles": [scene.acq[i][2] for i in picked],
        "VV": np.stack([b[0] for b in bands]), "VH": np.stack([b[1] for b in bands]),
        "landcover": scene.lc.copy(), "geometry": scene.geo[id(track)][2].copy(),
        "slide_mask": scene.slide_mask.copy(), "soil_wetness": [scene.acq_state[i][2] for i in picked],
        "pixel_size_m": float(cfg.pixel_size),
    }


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
    report(0.02, "terrain, geometry, land cover and landslides")
    scene = _build_scene(cfg)
    report(0.3, "acquisitions")
    scene_paths, scene_meta = [], []
    for ai in range(len(scene.acq)):
        path, meta = _write_acquisition(scene, ai, out / "scenes")
        scene_paths.append(path)
        scene_meta.append(meta)
        report(0.3 + 0.6 * (ai + 1) / len(scene.acq), f"acquisition {ai + 1}/{len(scene.acq)}")
    report(0.92, "truth")
    paths = _write_truth(scene, out)
    features = paths.pop("features")
    _remove_stale_scenes(out / "scenes", scene_paths)
    event_json = _write_event_json(scene, out, scene_meta, features)
    report(1.0, "done")
    areas = [f.properties["area_m2"] for f in features]
    return SimulationResult(
        out_dir=out, scene_paths=scene_paths, dem_path=paths["dem"], truth_mask_path=paths["truth_mask"],
        landslides_path=paths["landslides"], geometry_paths=paths["geometry"], landcover_path=paths["landcover"],
        event_json_path=event_json, config=cfg, n_landslides=len(features),
        total_landslide_area_m2=float(sum(areas)), n_visible_drop=_visible_drops(features), scenes=scene_meta,
        elapsed_s=time.perf_counter() - started,
    )


def _visible_drops(features) -> int:
    return sum(1 for f in features if f.properties["change_kind"] == "drop"
               and (f.properties["visible_asc"] or f.properties["visible_desc"]))


def _write_acquisition(scene: _Scene, ai: int, scene_dir: Path) -> tuple[Path, dict]:
    cfg = scene.cfg
    t, tr, role = scene.acq[ai]
    bands = _render_acquisition(scene, ai)
    name = _fmt_name(tr, t)
    path = scene_dir / name
    write_geotiff(
        path, np.stack(bands), transform=scene.transform, crs=scene.crs, nodata=float("nan"),
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
    meta = {"file": f"scenes/{name}", "acquisition_start": format_time(t), "orbit_pass": tr.orbit_pass,
            "relative_orbit": tr.relative_orbit, "role": role, "incidence_deg": round(tr.incidence_deg, 2),
            "soil_wetness": round(scene.acq_state[ai][2], 3)}
    return path, meta


def _write_truth(scene: _Scene, out: Path) -> dict:
    """DEM, truth mask, geometry and land cover rasters and the landslide GeoPackage."""
    cfg, crs, transform = scene.cfg, scene.crs, scene.transform
    synth = _synthetic_sentence(cfg)
    paths = {"dem": write_geotiff(
        out / "dem.tif", scene.dem, transform=scene.dem_transform, crs=crs, nodata=float("nan"),
        band_descriptions=["elevation"],
        tags={"UNITS": "m", "SYNTHETIC": synth, "PLATFORM": "SIMULATED",
              "DESCRIPTION": f"synthetic terrain block-averaged to {cfg.dem_pixel_size:g} m (like GLO-30/SRTM)"},
    )}
    truth = out / "truth"
    paths["truth_mask"] = write_geotiff(
        truth / "truth_mask.tif", scene.slide_mask.astype(np.uint8), transform=transform, crs=crs, nodata=None,
        band_descriptions=["landslide"], tags={"SYNTHETIC": synth, "VALUES": "1 = landslide (scar + deposit), 0 = not"},
    )
    primary = {tr.orbit_pass: tr for tr in scene.tracks if tr.primary}
    paths["geometry"] = {}
    for key, pas in (("asc", "ASCENDING"), ("desc", "DESCENDING")):
        tr = primary[pas]
        paths["geometry"][key] = write_geotiff(
            truth / f"geometry_{key}.tif", scene.geo[id(tr)][2], transform=transform, crs=crs, nodata=None,
            band_descriptions=["geometry"],
            tags={"SYNTHETIC": synth, "ORBIT_PASS": pas, "RELATIVE_ORBIT": tr.relative_orbit,
                  "CODES": "0 normal, 1 layover, 2 shadow, 3 strong foreshortening",
                  **{f"CODE_{c}": n for c, n in GEOMETRY_CODES.items()}},
        )
    paths["landcover"] = write_geotiff(
        truth / "landcover.tif", scene.lc, transform=transform, crs=crs, nodata=0, band_descriptions=["landcover"],
        tags={"SYNTHETIC": synth, "CODES": ", ".join(f"{c} {n}" for c, n in LANDCOVER_CLASSES.items()),
              **{f"CLASS_{c}": n for c, n in LANDCOVER_CLASSES.items()}},
    )
    features = _slide_features(cfg, scene.labels, scene.scar, scene.records, scene.slope, scene.aspect, scene.geo,
                               primary, transform)
    paths["landslides"] = write_features(
        truth / "landslides.gpkg", "landslides", features, crs=crs, fields=_SLIDE_FIELDS,
        description=f"SYNTHETIC landslide inventory (simulated, seed {cfg.seed})", timestamp=cfg.event_time,
    )
    paths["features"] = features
    return paths


def _remove_stale_scenes(scene_dir: Path, scene_paths: list[Path]) -> None:
    """Scenes of an earlier run into this folder that this run did not write."""
    written = {p.name for p in scene_paths}
    for stale in sorted(scene_dir.glob(f"{SCENE_PREFIX}_*.tif")):
        if stale.name not in written:
            stale.unlink()


def _change_model_doc(cfg: SimulationConfig) -> dict:
    return {"speckle_resolution_m": cfg.speckle_resolution_m, "wet_gain": cfg.wet_gain,
            "wet_pattern_sd": cfg.wet_pattern_sd, "wet_pattern_persistence": cfg.wet_pattern_persistence,
            "change_corr_m": cfg.change_corr_m, "change_sd_db": cfg.change_sd_db,
            "calibration_jitter_db": cfg.calibration_jitter_db, "interannual_sd_db": cfg.interannual_sd_db,
            "forest_vv_db": cfg.forest_level_db("VV"), "forest_vh_db": cfg.forest_level_db("VH")}


def _write_event_json(scene: _Scene, out: Path, scene_meta: list, features: list) -> Path:
    cfg = scene.cfg
    cal = CALIBRATIONS[cfg.calibration]
    px = float(cfg.pixel_size)
    ny, nx = scene.lc.shape
    areas = [f.properties["area_m2"] for f in features]
    kinds = [f.properties["change_kind"] for f in features]
    event_doc = {
        "synthetic": True,
        "note": "SYNTHETIC event simulated by landslide_sar_plugin; not real Sentinel-1 data",
        "generator": "landslide_sar_plugin.core.simulate",
        "generator_version": GENERATOR_VERSION,
        "seed": cfg.seed,
        "event_time": cfg.event_time,
        "regime": cfg.regime,
        "calibration": {"name": cal.name, "vv_db": cfg.forest_level_db("VV"), "vv_spread_db": cal.vv_spread_db,
                        "vh_db": cfg.forest_level_db("VH"), "vh_spread_db": cal.vh_spread_db, "source": cal.source,
                        "site_vv_db": cal.vv_db, "site_vh_db": cal.vh_db},
        "change_model": _change_model_doc(cfg),
        "config": cfg.to_dict(),
        "crs": f"EPSG:{cfg.epsg}",
        "grid": {"rows": ny, "cols": nx, "pixel_size_m": px, "transform": list(scene.transform)[:6]},
        "dem": {"file": "dem.tif", "pixel_size_m": cfg.dem_pixel_size, "rows": int(scene.dem.shape[0]),
                "cols": int(scene.dem.shape[1]), "transform": list(scene.dem_transform)[:6]},
        "truth": {"mask": "truth/truth_mask.tif", "landslides": "truth/landslides.gpkg",
                  "geometry_asc": "truth/geometry_asc.tif", "geometry_desc": "truth/geometry_desc.tif",
                  "landcover": "truth/landcover.tif",
                  "landcover_codes": {str(k): v for k, v in LANDCOVER_CLASSES.items()},
                  "geometry_codes": {str(k): v for k, v in GEOMETRY_CODES.items()}},
        "tracks": [{"orbit_pass": tr.orbit_pass, "relative_orbit": tr.relative_orbit,
                    "incidence_centre_deg": round(tr.incidence_deg, 2), "heading_deg": round(tr.heading_deg, 2),
                    "nesz_db": round(tr.nesz_db, 2), "primary": tr.primary} for tr in scene.tracks],
        "scenes": scene_meta,
        "landslides": {
            "count": len(features),
            "total_area_m2": float(sum(areas)),
            "median_area_m2": float(np.median(areas)) if areas else 0.0,
            "max_area_m2": float(max(areas)) if areas else 0.0,
            "by_change_kind": {k: kinds.count(k) for k in ("drop", "rise", "invisible")},
            "visible_drop": _visible_drops(features),
            "min_slope_deg": cfg.slide_min_slope_deg,
            "area_fraction": float(scene.slide_mask.mean()),
        },
        "distractors": {
            "logging_patches": [{"date": format_time(w), "area_m2": float(m.sum() * px * px)}
                                for m, w in scene.patches],
            "crop_parcels": True, "soil_moisture": True, "water_wind": True,
            "date_specific_change": True, "wet_brightening": True,
        },
        "ENL": cfg.enl,
    }
    out.mkdir(parents=True, exist_ok=True)
    event_json = out / "event.json"
    tmp = out / ".event.json.partial"
    tmp.write_text(json.dumps(event_doc, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, event_json)
    return event_json


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
