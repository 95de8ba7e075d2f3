"""An independent generator of Sentinel-1-like landslide events, for EVALUATION ONLY ("altgen").

EVERYTHING THIS MODULE WRITES IS SYNTHETIC (GeoTIFF tags ``SYNTHETIC`` and ``PLATFORM=ALTGEN``,
``event.json: "synthetic": true``, file names starting ``ALTGEN_``).

Why a second generator: a model trained on the project's simulator can learn that simulator's quirks
instead of landslides.  Events of a generator that no model ever trained on, and whose results no
threshold or default was chosen on, show whether what was learnt carries over.  So every modelling
choice here differs on purpose from :mod:`landslide_sar_plugin.core.simulate` (and from :mod:`.imprint`):

=====================  ======================================  =========================================
what                   the simulator                           altgen
=====================  ======================================  =========================================
terrain                spectral (power-law) synthesis, ridged  value-noise octaves on random lattices,
                       noise, flattened valley floors          domain-warped, optionally ridged or
                                                               terraced, a power-law height remap
land cover             5 classes from slope and valley floors  7 classes from elevation belts (treeline,
                                                               snow line), a moisture field and Voronoi
                                                               fields: broadleaf, conifer, alpine meadow,
                                                               rock/scree, pasture, settlement, lakes
radiometry             GRD sigma0: cos^m and the Ulander area  RTC-like gamma0: a weak residual
                       factor, bright layover, NESZ in shadow  (cos ratio)^q, layover and shadow masked
                                                               as no data (as RTC products do)
texture / speckle      gamma speckle correlated over the       K-distributed: a static gamma texture
                       resolution cell (ENL 4.4)               (per-class order 1.2-30) times speckle of
                                                               low order smoothed by a 3-tap kernel
                                                               (ENL 4-6 after smoothing)
date-to-date change    exponential-covariance fields, a rain   per-date offsets; storm cells (Gaussian
                       wetness process adding power            blobs 250 m - 2.5 km) and storm dates in
                                                               dB per class; a seasonal cycle per class;
                                                               field work (mowing, ploughing) on
                                                               pastures; wind on lakes
distractors            crops, logging, built-up                burn scars (0.3-2.5 km^2, dark VH), wet
                                                               snow above a snow line, construction
landslide areas        inverse gamma (Malamud et al. 2004)     log-normal (median 600-6000 m^2)
landslide shapes       tear-drops along the smoothed           paths down the steepest descent of the
                       downslope direction                     DEM, widened by a profile
landslide placement    weight (slope - min)^1.5                logistic susceptibility in slope (midpoint
                                                               18-28 deg), concavity and land cover
landslide change       drop / rise / invisible kinds           change by the land cover destroyed
                                                               (forest loses most VH; rock gets rougher),
                                                               bright blocky or dark muddy run-out,
                                                               recovery over 60-600 days, fresh texture
files                  dB GeoTIFF per pass and polarisation    linear-power two-band GeoTIFFs (VV, VH)
                                                               with tags; a 20 m DEM
=====================  ======================================  =========================================

What is the same is what Sentinel-1 is: C band, VV and VH, right-looking, ascending passes looking east
in the evening and descending passes looking west in the morning, 6 or 12 day revisits, 10 m pixels.

Determinism: every draw comes from ``numpy.random.default_rng([seed, component])``; the same
:class:`AltConfig` gives the same files on the same software stack.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import math
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from ..raster_io import write_geotiff

ALTGEN_VERSION = "1.0.0"
CLASSES = {1: "broadleaf", 2: "conifer", 3: "alpine_meadow", 4: "rock_scree", 5: "pasture", 6: "settlement",
           7: "lake"}
# gamma0 (dB, VV, VH), texture order (K distribution), residual terrain exponent q, storm gain (dB per unit)
_CLASS = {
    1: dict(db=(-7.5, -13.0), nu=10.0, q=0.3, storm=0.6, season=(0.6, 1.0)),
    2: dict(db=(-8.5, -14.2), nu=7.0, q=0.3, storm=0.5, season=(0.2, 0.3)),
    3: dict(db=(-11.0, -18.5), nu=15.0, q=0.7, storm=1.4, season=(0.8, 1.2)),
    4: dict(db=(-9.5, -17.5), nu=3.0, q=0.9, storm=0.3, season=(0.0, 0.0)),
    5: dict(db=(-12.0, -19.5), nu=12.0, q=0.7, storm=1.6, season=(1.2, 2.0)),
    6: dict(db=(-3.0, -9.5), nu=1.2, q=0.1, storm=0.2, season=(0.0, 0.0)),
    7: dict(db=(-21.0, -27.0), nu=30.0, q=2.0, storm=0.0, season=(0.0, 0.0)),
}
_COMPONENTS = {"world": 1, "terrain": 2, "cover": 3, "texture": 4, "slides": 5, "change": 6, "dates": 7,
               "speckle": 8, "distractors": 9}
_LOOK = {"ASCENDING": (-12.0, 78.0), "DESCENDING": (192.0, 282.0)}  # heading, look azimuth (deg)
_EPSG = 32633  # UTM 33N (central meridian 15 E): another part of the world than the simulator's sites


def _lut(key: str, index: int | None = None) -> np.ndarray:
    """A per-class property as a lookup table indexed by class code (0 unused)."""
    vals = [0.0] * (max(_CLASS) + 1)
    for c, prm in _CLASS.items():
        vals[c] = prm[key] if index is None else prm[key][index]
    return np.asarray(vals, np.float64)


def _rng(seed: int, component: str, *extra: int) -> np.random.Generator:
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, _COMPONENTS[component], *extra])


@dataclass
class AltConfig:
    """The few fixed settings of an altgen event; everything else is drawn from ``seed`` (:func:`draw_world`)."""

    seed: int = 0
    rows: int = 448
    cols: int = 448
    pixel_size: float = 10.0
    dem_pixel_size: float = 20.0

    def validate(self) -> None:
        if not (64 <= self.rows <= 3000 and 64 <= self.cols <= 3000):
            raise ValueError(f"rows and cols must be 64..3000 pixels, got {self.rows} x {self.cols}")
        ratio = self.dem_pixel_size / self.pixel_size
        if self.pixel_size <= 0 or abs(ratio - round(ratio)) > 1e-9 or round(ratio) < 1:
            raise ValueError("dem_pixel_size must be a whole multiple of pixel_size")


def draw_world(seed: int) -> dict:
    """Everything about an event that the seed decides (stored in ``event.json``)."""
    r = _rng(seed, "world")
    trigger = str(r.choice(["storm", "quake"]))
    both = r.random() < 0.75
    passes = ["ASCENDING", "DESCENDING"] if both else [str(r.choice(["ASCENDING", "DESCENDING"]))]
    start = _dt.datetime(2016, 3, 1, tzinfo=_dt.timezone.utc)
    event = start + _dt.timedelta(seconds=int(r.integers(0, 8 * 365 * 86400)))
    return {
        "trigger": trigger, "passes": passes, "event_time": event.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "relief_m": float(np.round(math.exp(r.uniform(math.log(150.0), math.log(1200.0))), 1)),
        "base_elevation_m": float(np.round(r.uniform(200.0, 1500.0), 1)),
        "lattice_m": float(np.round(r.uniform(1500.0, 4000.0), 1)),
        "roughness": float(np.round(r.uniform(0.55, 0.85), 3)),
        "ridged": bool(r.random() < 0.4), "terraced": bool(r.random() < 0.25),
        "height_power": float(np.round(r.uniform(0.8, 1.7), 3)),
        "treeline": float(np.round(r.uniform(0.55, 0.95), 3)),
        "site_offset_db": float(np.round(r.uniform(-2.0, 2.0), 2)),
        "enl": float(np.round(r.uniform(4.0, 6.0), 2)),
        "revisit_days": int(r.choice([6, 12])),
        "n_pre": int(r.integers(3, 10)), "n_post": int(r.integers(1, 5)),
        "incidence_deg": {p: float(np.round(r.uniform(31.0, 45.0), 2)) for p in passes},
        "relative_orbit": {p: int(r.integers(1, 176)) for p in passes},
        "storm_date_prob": float(np.round(r.uniform(0.1, 0.35), 3)),
        "offset_sd_db": float(np.round(r.uniform(0.15, 0.5), 3)),
        "storm_cells_per_date": float(np.round(r.uniform(1.0, 7.0), 2)),
        "storm_cell_sd_db": float(np.round(r.uniform(0.4, 1.3), 3)),
        "burn_scar": bool(r.random() < 0.35), "wet_snow": bool(r.random() < 0.25),
        "slide_density_per_km2": float(np.round(r.uniform(8.0, 25.0) if trigger == "quake"
                                                else r.uniform(3.0, 10.0), 2)),
        "slide_median_m2": float(np.round(r.uniform(600.0, 1500.0) if trigger == "quake"
                                          else r.uniform(2000.0, 6000.0), 1)),
        "slide_sigma_ln": float(np.round(r.uniform(0.8, 1.2), 3)),
        "susceptibility_mid_deg": float(np.round(r.uniform(18.0, 28.0), 2)),
        "recovery_days": float(np.round(math.exp(r.uniform(math.log(60.0), math.log(600.0))), 1)),
    }


# --------------------------------------------------------------------------- terrain and land cover


def value_noise(rng: np.random.Generator, shape: tuple[int, int], spacing_px: float) -> np.ndarray:
    """Zero-mean, unit-sd noise: a random lattice every ``spacing_px`` pixels, cubic-interpolated."""
    ny, nx = shape
    gy, gx = int(math.ceil(ny / spacing_px)) + 4, int(math.ceil(nx / spacing_px)) + 4
    lattice = rng.standard_normal((gy, gx))
    yy = np.arange(ny) / spacing_px + 1.5
    xx = np.arange(nx) / spacing_px + 1.5
    out = ndimage.map_coordinates(lattice, np.meshgrid(yy, xx, indexing="ij"), order=3, mode="nearest")
    return (out - out.mean()) / max(out.std(), 1e-9)


def make_terrain(world: dict, shape: tuple[int, int], px: float, seed: int) -> np.ndarray:
    """Elevation (m): warped value-noise octaves, optionally ridged/terraced, remapped by a power law."""
    r = _rng(seed, "terrain")
    big = (shape[0] + 32, shape[1] + 32)
    h = np.zeros(big)
    spacing = world["lattice_m"] / px
    for k in range(6):
        h += world["roughness"] ** k * value_noise(r, big, max(spacing / 2 ** k, 2.0))
    warp = [value_noise(r, big, spacing * 0.8) * (300.0 / px) for _ in range(2)]
    yy, xx = np.meshgrid(np.arange(big[0], dtype=float), np.arange(big[1], dtype=float), indexing="ij")
    h = ndimage.map_coordinates(h, [yy + warp[0], xx + warp[1]], order=1, mode="reflect")
    h = (h - h.min()) / max(np.ptp(h), 1e-9)
    if world["ridged"]:
        h = 1.0 - np.abs(2.0 * h - 1.0)
    if world["terraced"]:
        steps = 6.0
        h = h + 0.6 * (np.round(h * steps) / steps - h)
    h = ndimage.gaussian_filter(h, 1.0) ** world["height_power"]
    h = h[16:16 + shape[0], 16:16 + shape[1]]
    h = (h - h.min()) / max(np.ptp(h), 1e-9)
    return world["base_elevation_m"] + world["relief_m"] * h


def slope_aspect(elev: np.ndarray, px: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Slope (deg), and the east / north components of the surface gradient."""
    dz_drow, dz_dcol = np.gradient(elev, px)
    dzdx, dzdy = dz_dcol, -dz_drow  # east, north
    return np.degrees(np.arctan(np.hypot(dzdx, dzdy))), dzdx, dzdy, dz_drow


def make_cover(world: dict, elev: np.ndarray, slope: np.ndarray, seed: int) -> np.ndarray:
    """Land cover classes 1-7 (see :data:`CLASSES`)."""
    r = _rng(seed, "cover")
    ny, nx = elev.shape
    z = (elev - elev.min()) / max(np.ptp(elev), 1e-9)
    moist = value_noise(r, elev.shape, 60.0)
    cover = np.where(z < world["treeline"] - 0.3 + 0.08 * moist, 1, 2).astype(np.uint8)
    cover[z > world["treeline"] + 0.05 * moist] = 3
    cover[(slope > 38.0 + 4.0 * moist) | (z > 0.97)] = 4
    # Voronoi fields on gentle low ground: pastures and a few settlements
    n_cells = max(8, int(ny * nx / 900))
    pts = np.column_stack([r.uniform(0, ny, n_cells), r.uniform(0, nx, n_cells)])
    from scipy.spatial import cKDTree

    yy, xx = np.mgrid[0:ny, 0:nx]
    _, cell = cKDTree(pts).query(np.column_stack([yy.ravel(), xx.ravel()]))
    cell = cell.reshape(ny, nx)
    kind = r.random(n_cells)
    gentle = (slope < 9.0) & (z < 0.45)
    cover[gentle & (kind[cell] < 0.7)] = 5
    cover[(slope < 6.0) & (z < 0.35) & (kind[cell] > 0.94)] = 6
    smooth = ndimage.gaussian_filter(elev, 6.0)
    cover[(smooth < np.quantile(smooth, 0.03)) & (slope < 4.0)] = 7
    return cover


# --------------------------------------------------------------------------- geometry and radiometry


def geometry(dzdx: np.ndarray, dzdy: np.ndarray, orbit_pass: str, incidence_deg: float):
    """(cos of the local incidence, layover-or-shadow mask) for one pass (right-looking SAR)."""
    _, look_az = _LOOK[orbit_pass]
    th = math.radians(incidence_deg)
    az = math.radians(look_az)
    # unit vector from the ground to the sensor (east, north, up): opposite the look direction, tilted up
    lx, ly, lz = -math.sin(th) * math.sin(az), -math.sin(th) * math.cos(az), math.cos(th)
    norm = np.sqrt(dzdx ** 2 + dzdy ** 2 + 1.0)
    nx_, ny_, nz_ = -dzdx / norm, -dzdy / norm, 1.0 / norm
    cos_loc = nx_ * lx + ny_ * ly + nz_ * lz
    range_slope = np.degrees(np.arctan(-(dzdx * math.sin(az) + dzdy * math.cos(az))))  # rising towards the radar
    layover = range_slope > incidence_deg
    shadow = (cos_loc <= 0.05) | (-range_slope > 90.0 - incidence_deg)
    return np.clip(cos_loc, 0.05, 1.0), layover | shadow


def static_texture(cover: np.ndarray, seed: int, salt: int = 0) -> np.ndarray:
    """K-distribution texture: gamma(nu, 1/nu) per pixel with the class order, correlated over 2 pixels."""
    r = _rng(seed, "texture", salt)
    ny, nx = cover.shape
    nu = _lut("nu")[cover][::2, ::2]
    coarse = r.gamma(nu, 1.0) / nu
    up = ndimage.zoom(coarse, 2, order=1)[:ny, :nx]
    if up.shape != (ny, nx):
        up = np.pad(up, ((0, ny - up.shape[0]), (0, nx - up.shape[1])), mode="edge")
    return np.clip(up, 0.02, None)


def speckle(rng: np.random.Generator, shape, enl: float) -> np.ndarray:
    """Mean-1 speckle of equivalent number of looks ``enl``: low-order gamma smoothed by [1, 2, 1] / 4."""
    order = enl / 7.11  # the 3x3 kernel [1,2,1]x[1,2,1]/16 multiplies the number of looks by 7.11
    g = rng.gamma(order, 1.0 / order, size=(shape[0] + 2, shape[1] + 2))
    k = np.array([0.25, 0.5, 0.25])
    g = ndimage.convolve1d(ndimage.convolve1d(g, k, axis=0), k, axis=1)
    return g[1:-1, 1:-1]


# --------------------------------------------------------------------------- slides


def _steepest_path(elev: np.ndarray, r0: int, c0: int, length: int) -> list[tuple[int, int]]:
    ny, nx = elev.shape
    path = [(r0, c0)]
    seen = {(r0, c0)}
    r, c = r0, c0
    for _ in range(max(length - 1, 0)):
        best, best_z = None, elev[r, c]
        for dr in (-1, 0, 1):
            for dc in (-1, 0, 1):
                rr, cc = r + dr, c + dc
                if (dr or dc) and 0 <= rr < ny and 0 <= cc < nx and (rr, cc) not in seen and elev[rr, cc] < best_z:
                    best, best_z = (rr, cc), elev[rr, cc]
        if best is None:
            break
        r, c = best
        seen.add(best)
        path.append(best)
    return path


def place_slides(world: dict, elev: np.ndarray, slope: np.ndarray, cover: np.ndarray, px: float, seed: int):
    """Label raster (0 none, i slide i), source-zone mask, and per-slide records."""
    r = _rng(seed, "slides")
    ny, nx = elev.shape
    lap = ndimage.laplace(ndimage.gaussian_filter(elev, 3.0)) / (px * px)
    concave = np.clip(lap / (np.std(lap) + 1e-12), -2.0, 2.0)
    cls_f = np.array([0.0, 1.0, 1.0, 0.8, 0.4, 0.3, 0.0, 0.0])[cover]
    susc = cls_f / (1.0 + np.exp(-(slope - world["susceptibility_mid_deg"]) / 4.0)) * (1.0 + 0.25 * concave)
    susc = np.clip(susc, 0.0, None)
    area_km2 = ny * nx * px * px / 1e6
    n = int(r.poisson(world["slide_density_per_km2"] * area_km2 * float(susc.mean()) * 1.2))
    labels = np.zeros((ny, nx), np.int32)
    source = np.zeros((ny, nx), bool)
    smooth = ndimage.gaussian_filter(elev, 1.5)
    weights = susc.ravel() / max(susc.sum(), 1e-12)
    records = []
    for _ in range(8 * max(n, 1)):
        if len(records) >= n or susc.sum() <= 0:
            break
        area = float(np.clip(world["slide_median_m2"] * math.exp(world["slide_sigma_ln"] * r.standard_normal()),
                             200.0, 2.5e5))
        elong = r.uniform(2.0, 6.0)
        length_px = max(2, int(round(math.sqrt(area * elong) / px)))
        r0, c0 = divmod(int(r.choice(weights.size, p=weights)), nx)
        path = _steepest_path(smooth, r0, c0, length_px)
        if len(path) < 2:
            continue
        s = np.linspace(0.0, 1.0, len(path))
        profile = 0.5 + 0.8 * np.sin(np.pi * np.clip(s * 0.9 + 0.05, 0, 1)) ** 0.7
        # half-width (px) at profile 1 from the planned length: a path that stops early (a pit) gives a
        # smaller slide, never a wider one; and never wider than a third of its length
        half_w = min(area / (2.0 * length_px * px * profile.mean()) / px, length_px / 3.0)
        foot = np.zeros((ny, nx), bool)
        src = np.zeros((ny, nx), bool)
        for (pr, pc), prof, si in zip(path, profile, s):
            rad = max(half_w * prof, 0.5)
            ri = int(math.ceil(rad))
            ra, rb, ca, cb = max(pr - ri, 0), min(pr + ri + 1, ny), max(pc - ri, 0), min(pc + ri + 1, nx)
            yy, xx = np.mgrid[ra:rb, ca:cb]
            disk = (yy - pr) ** 2 + (xx - pc) ** 2 <= rad * rad + 0.25
            foot[ra:rb, ca:cb] |= disk
            if si <= 0.55:
                src[ra:rb, ca:cb] |= disk
        foot &= (labels == 0) & (cover != 7) & (cover != 6)
        if foot.sum() < 2:
            continue
        sid = len(records) + 1
        labels[foot] = sid
        source |= src & foot
        cls = int(np.bincount(cover[foot]).argmax())
        records.append({"slide_id": sid, "area_m2": float(foot.sum() * px * px), "cover": CLASSES[cls],
                        "mean_slope_deg": float(slope[foot].mean()), **_slide_change(r, cls)})
    return labels, source, records


def _slide_change(r: np.random.Generator, cls: int) -> dict:
    """Change (dB) of the source zone and of the run-out, by the land cover the slide destroyed."""
    if cls in (1, 2):
        src = {"VH": r.uniform(-7.0, -2.5), "VV": r.uniform(-4.0, -0.5)}
    elif cls == 3:
        src = {"VH": r.uniform(-3.5, -0.5), "VV": r.uniform(-1.0, 1.5)}
    elif cls == 4:
        src = {"VH": r.uniform(0.0, 2.5), "VV": r.uniform(0.5, 3.0)}
    else:
        src = {"VH": r.uniform(-3.0, 0.0), "VV": r.uniform(-1.5, 1.5)}
    if r.random() < 0.5:
        runout, kind = {"VH": r.uniform(0.5, 3.0), "VV": r.uniform(1.0, 4.0)}, "blocky"
    else:
        runout, kind = {k: 0.6 * v for k, v in src.items()}, "muddy"
    return {"source_db": src, "runout_db": runout, "runout_kind": kind}


# --------------------------------------------------------------------------- dates and distractors


def acquisition_times(world: dict, seed: int) -> list[tuple[str, _dt.datetime]]:
    r = _rng(seed, "dates")
    event = _dt.datetime.strptime(world["event_time"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=_dt.timezone.utc)
    out = []
    rev = _dt.timedelta(days=world["revisit_days"])
    for p in world["passes"]:
        hour = 16.67 if p == "ASCENDING" else 4.67  # about 17:40 / 05:40 local solar time at 15 E
        day0 = event.replace(hour=0, minute=0, second=0) + _dt.timedelta(days=int(r.integers(1, world["revisit_days"])))
        first_post = day0 + _dt.timedelta(hours=hour, seconds=int(r.integers(0, 60)))
        if first_post <= event:
            first_post += rev
        for i in range(-world["n_pre"], world["n_post"]):
            out.append((p, first_post + i * rev))
    return sorted(out, key=lambda x: x[1])


def _burn_scar(world, cover, seed, shape, px):
    if not world["burn_scar"]:
        return None
    r = _rng(seed, "distractors", 1)
    forest = np.isin(cover, (1, 2))
    if forest.sum() < 100:
        return None
    field = value_noise(r, shape, 400.0 / px) + 0.8 * value_noise(r, shape, 120.0 / px)
    target = r.uniform(0.3, 2.5) * 1e6 / (px * px)
    thr = np.quantile(field[forest], max(0.0, 1.0 - target / forest.sum()))
    mask = forest & (field >= thr)
    lab, n = ndimage.label(mask)
    if n == 0:
        return None
    keep = np.argsort(np.bincount(lab.ravel())[1:])[::-1][:2] + 1
    event = _dt.datetime.strptime(world["event_time"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=_dt.timezone.utc)
    start = event + _dt.timedelta(days=float(r.uniform(-80, 40)))
    return {"mask": np.isin(lab, keep), "start": start, "vh": r.uniform(-4.5, -2.5), "vv": r.uniform(-2.5, -1.0)}


def _storm_cells(r: np.random.Generator, shape, px: float, n_mean: float, sd_db: float) -> np.ndarray:
    ny, nx = shape
    out = np.zeros(shape)
    yy, xx = np.mgrid[0:ny, 0:nx]
    for _ in range(int(r.poisson(n_mean))):
        sigma = math.exp(r.uniform(math.log(250.0), math.log(2500.0))) / px
        cy, cx = r.uniform(-0.2 * ny, 1.2 * ny), r.uniform(-0.2 * nx, 1.2 * nx)
        out += r.normal(0.0, sd_db) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sigma * sigma))
    return out


@dataclass
class _World:
    cfg: AltConfig
    world: dict
    elev: np.ndarray
    slope: np.ndarray
    cover: np.ndarray
    labels: np.ndarray
    source: np.ndarray
    slides: list
    geo: dict
    base_db: dict
    texture: np.ndarray
    fresh_texture: np.ndarray
    burn: dict | None
    fields: np.ndarray
    field_events: list


def _build(cfg: AltConfig) -> _World:
    w = draw_world(cfg.seed)
    shape, px = (cfg.rows, cfg.cols), cfg.pixel_size
    elev = make_terrain(w, shape, px, cfg.seed)
    slope, dzdx, dzdy, _ = slope_aspect(elev, px)
    cover = make_cover(w, elev, slope, cfg.seed)
    labels, source, slides = place_slides(w, elev, slope, cover, px, cfg.seed)
    geo = {p: geometry(dzdx, dzdy, p, w["incidence_deg"][p]) for p in w["passes"]}
    base_db = {}
    for k, pol in enumerate(("VV", "VH")):
        base_db[pol] = (_lut("db", k)[cover] + w["site_offset_db"], _lut("q")[cover])
    tex = static_texture(cover, cfg.seed)
    fresh = static_texture(np.full(shape, 4, np.uint8), cfg.seed, salt=1)
    burn = _burn_scar(w, cover, cfg.seed, shape, px)
    r = _rng(cfg.seed, "distractors", 2)
    fields = np.where(cover == 5, (value_noise(r, shape, 8.0) * 3).astype(int) % 5 + 1, 0)
    field_events = [(float(r.uniform(-120, 60)), float(r.choice([-1, 1]) * r.uniform(2.0, 5.0)),
                     float(r.uniform(10, 40))) for _ in range(5)]
    return _World(cfg, w, elev, slope, cover, labels, source, slides, geo, base_db, tex, fresh, burn, fields,
                  field_events)


def _slide_change_db(wd: _World, pol: str, days_after: float) -> np.ndarray:
    out = np.zeros(wd.labels.shape)
    if days_after < 0 or not wd.slides:
        return out
    src = np.zeros(len(wd.slides) + 1)
    run = np.zeros(len(wd.slides) + 1)
    for s in wd.slides:
        src[s["slide_id"]] = s["source_db"][pol]
        run[s["slide_id"]] = s["runout_db"][pol]
    delta = np.where(wd.source, src[wd.labels], run[wd.labels])
    r = _rng(wd.cfg.seed, "change", 1 if pol == "VV" else 2)
    hetero = np.exp(0.5 * ndimage.gaussian_filter(r.standard_normal(wd.labels.shape), 1.0) * 2.0 - 0.25)
    return delta * hetero * math.exp(-days_after / wd.world["recovery_days"])


def _render(wd: _World, orbit_pass: str, t: _dt.datetime, index: int) -> dict[str, np.ndarray]:
    """Linear gamma0 (VV, VH) of one acquisition; NaN in layover/shadow."""
    w, shape, px = wd.world, wd.labels.shape, wd.cfg.pixel_size
    event = _dt.datetime.strptime(w["event_time"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=_dt.timezone.utc)
    days = (t - event).total_seconds() / 86400.0
    key = int(t.timestamp() // 60) % (2 ** 31)
    r = _rng(wd.cfg.seed, "dates", key)
    storm = r.exponential(1.0) if r.random() < w["storm_date_prob"] else 0.0
    storm = min(storm, 2.5)
    offset = r.normal(0.0, w["offset_sd_db"])
    cells = _storm_cells(r, shape, px, w["storm_cells_per_date"], w["storm_cell_sd_db"])
    cells_vh = 0.7 * cells + 0.3 * _storm_cells(r, shape, px, w["storm_cells_per_date"], w["storm_cell_sd_db"])
    doy = t.timetuple().tm_yday
    cos_loc, masked = wd.geo[orbit_pass]
    th = math.radians(w["incidence_deg"][orbit_pass])
    snow_line = None
    if w["wet_snow"] and r.random() < 0.3:
        snow_line = np.quantile(wd.elev, r.uniform(0.3, 0.8))
    out = {}
    for k, pol in enumerate(("VV", "VH")):
        lvl, q = wd.base_db[pol]
        db = lvl + 10.0 * q * np.log10(cos_loc / math.cos(th))
        gain = _lut("storm")[wd.cover]
        season = _lut("season", k)[wd.cover]
        db = db + offset + storm * gain + (cells if pol == "VV" else cells_vh)
        db = db + season * math.sin(2 * math.pi * (doy - 100) / 365.25)
        for f in range(1, 6):
            start, step, dur = wd.field_events[f - 1]
            if start <= days <= start + dur:
                db[wd.fields == f] += step
        lake = wd.cover == 7
        db[lake] += r.normal(0.0, 3.0)
        if wd.burn is not None and t >= wd.burn["start"]:
            age = (t - wd.burn["start"]).total_seconds() / 86400.0
            db[wd.burn["mask"]] += wd.burn["vh" if pol == "VH" else "vv"] * math.exp(-age / 400.0)
        if snow_line is not None:
            wet = 1.0 / (1.0 + np.exp(-(wd.elev - snow_line) / 30.0))
            db -= wet * r.uniform(3.0, 6.0)
        db = db + _slide_change_db(wd, pol, days)
        tex = wd.texture
        if days >= 0:
            tex = np.where(wd.labels > 0, wd.fresh_texture, tex)
        lin = 10.0 ** (db / 10.0) * tex * speckle(_rng(wd.cfg.seed, "speckle", key, k), shape, w["enl"])
        lin[masked] = np.nan
        out[pol] = lin.astype(np.float32)
    return out


# --------------------------------------------------------------------------- files


@dataclass
class AltResult:
    out_dir: Path
    scene_paths: list[Path]
    dem_path: Path
    truth_mask_path: Path
    event_json_path: Path
    n_slides: int
    slide_area_m2: float


def _transform(cfg: AltConfig, seed: int):
    from rasterio.transform import Affine

    r = _rng(seed, "world", 99)
    x0 = float(round(r.uniform(400_000, 600_000) / cfg.dem_pixel_size) * cfg.dem_pixel_size)
    y0 = float(round(r.uniform(5_000_000, 5_200_000) / cfg.dem_pixel_size) * cfg.dem_pixel_size)
    return Affine(cfg.pixel_size, 0.0, x0, 0.0, -cfg.pixel_size, y0)


def _write_dem(path: Path, elev: np.ndarray, cfg: AltConfig, transform, crs) -> Path:
    from rasterio.transform import Affine

    f = int(round(cfg.dem_pixel_size / cfg.pixel_size))
    pad = 2 * f
    big = np.pad(elev, pad, mode="reflect")
    ny, nx = (big.shape[0] // f) * f, (big.shape[1] // f) * f
    coarse = big[:ny, :nx].reshape(ny // f, f, nx // f, f).mean(axis=(1, 3)).astype(np.float32)
    t = Affine(cfg.dem_pixel_size, 0.0, transform.c - pad * cfg.pixel_size, 0.0, -cfg.dem_pixel_size,
               transform.f + pad * cfg.pixel_size)
    return write_geotiff(path, coarse, transform=t, crs=crs, nodata=None,
                         tags={"SYNTHETIC": "altgen terrain (independent evaluation generator); not a real DEM",
                               "UNITS": "m"})


def generate_event(out_dir: str | Path, cfg: AltConfig | None = None) -> AltResult:
    """Write one altgen event: ``scenes/``, ``dem.tif``, ``truth/truth_mask.tif``, ``truth/landcover.tif``,
    ``event.json``.  SYNTHETIC."""
    from rasterio.crs import CRS

    cfg = cfg or AltConfig()
    cfg.validate()
    out = Path(out_dir)
    if out.exists():
        shutil.rmtree(out)
    (out / "scenes").mkdir(parents=True)
    (out / "truth").mkdir()
    wd = _build(cfg)
    crs = CRS.from_epsg(_EPSG)
    transform = _transform(cfg, cfg.seed)
    sentence = (f"SYNTHETIC: altgen {ALTGEN_VERSION} (an independent evaluation generator, "
                "landslide_sar_plugin.core.simulate.altgen); not a real acquisition")
    paths = []
    for i, (p, t) in enumerate(acquisition_times(wd.world, cfg.seed)):
        img = _render(wd, p, t, i)
        name = f"ALTGEN_{p[:3]}_R{wd.world['relative_orbit'][p]:03d}_{t:%Y%m%dT%H%M%S}.tif"
        tags = {"ACQUISITION_START": t.strftime("%Y-%m-%dT%H:%M:%SZ"), "ORBIT_PASS": p,
                "RELATIVE_ORBIT": wd.world["relative_orbit"][p], "UNITS": "linear", "POLARISATIONS": "VV,VH",
                "SYNTHETIC": sentence, "PLATFORM": "ALTGEN", "PRODUCT": "gamma0 (RTC-like), linear power"}
        paths.append(write_geotiff(out / "scenes" / name, np.stack([img["VV"], img["VH"]]), transform=transform,
                                   crs=crs, nodata=float("nan"), band_descriptions=["VV", "VH"], tags=tags))
    dem = _write_dem(out / "dem.tif", wd.elev, cfg, transform, crs)
    truth = write_geotiff(out / "truth" / "truth_mask.tif", (wd.labels > 0).astype(np.uint8), transform=transform,
                          crs=crs, nodata=None, tags={"SYNTHETIC": sentence, "DEFINITION": "1 landslide, 0 not"})
    write_geotiff(out / "truth" / "landcover.tif", wd.cover, transform=transform, crs=crs, nodata=0,
                  tags={"SYNTHETIC": sentence, "CLASSES": json.dumps(CLASSES)})
    area = float(sum(s["area_m2"] for s in wd.slides))
    doc = {"synthetic": True, "generator": f"altgen {ALTGEN_VERSION}", "seed": cfg.seed,
           "config": dataclasses.asdict(cfg), "world": wd.world, "event_time": wd.world["event_time"],
           "passes": wd.world["passes"], "trigger": wd.world["trigger"], "n_slides": len(wd.slides),
           "slide_area_m2": area, "slides": wd.slides,
           "scenes": [p.name for p in paths]}
    ej = out / "event.json"
    ej.write_text(json.dumps(doc, indent=1, sort_keys=True), encoding="utf-8")
    return AltResult(out, paths, dem, truth, ej, len(wd.slides), area)
