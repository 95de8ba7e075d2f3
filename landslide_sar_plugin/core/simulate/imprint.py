"""Real-background cases: real Sentinel-1 stacks with landslides imprinted into the post-event scenes.

No real post-event Sentinel-1 scene with a landslide inventory can be reached
from the project's machines (DESIGN.md, "Data we have").  What we do have are
real stacks without an event: NASA OPERA RTC-S1 bursts, many dates, VV and VH.
This module turns them into the most realistic detection test we can build:

* **no-change cases**: an event date splits the real dates into a pre and a
  post window; nothing is imprinted, so every candidate polygon is a false
  alarm, and the share of land inside candidates is the false-alarm rate;
* **imprinted cases**: the same split, with synthetic landslides multiplied
  into the real post-event backscatter; the truth mask is kept.

Everything written here is labelled: GeoTIFF tag ``REAL_BACKGROUND`` on every
scene, ``IMPRINTED`` on the post-event scenes of imprinted cases, and
``case.json`` saying which parts are real and which are synthetic.  Results on
these cases are "real-background" results, never accuracy on a real event.

Imprint physics
===============

Background
    The real linear gamma0 of every date is kept as it is: its speckle, its
    texture and its real date-to-date change (rain, soil moisture, vegetation)
    all stay real.  Pre-event scenes are copied unchanged.

Terrain
    The crops carry no DEM, and none can be downloaded here, so a synthetic
    terrain is generated per burst (seeded by the burst id): a fractal surface
    (power spectrum ``(k^2 + k0^2)^(-beta/2)``, ``beta`` 5.5, roll-off at a
    1.5 km ridge spacing) scaled to ``relief_m`` (default 500 m over the 3 km
    crop, steep chaparral ridges like the Santa Ynez Mountains').  At 30 m that
    gives a median slope of about 23 deg, a 95th percentile of about 40 deg and
    about 12 % of the land below 10 deg.  The
    terrain decides where slides go and feeds the engine's slope mask; it is
    NOT the real topography under the radar, so the slope mask removes pixels
    that are not physically flat.

Landslides
    The number of slides per case is Poisson with a regime's density per km^2;
    areas follow the inverse-gamma distribution of Malamud et al. (2004),
    ``rho = 1.4``, ``s = -132 m^2``, ``a = 1280 m^2`` (earthquake) or
    ``6000 m^2`` (rain), truncated to ``[2 pixels, 0.15 km^2]`` (smaller slides
    are below what a 30 m product resolves).  Each slide is an elongated
    tear-drop along the smoothed downslope direction (length/width 1.5-3.5 for
    earthquakes, 3-7 for rain) with its crown at a seed drawn with weight
    ``max(slope - 8 deg, 0)^1.5``: steep slopes host most slides, gentle slopes
    (down to about 10 deg) some.  The upper ``scar_fraction`` of the length is
    the scar, the rest the deposit.

Backscatter change (post-event scenes only)
    Each slide multiplies the real linear backscatter by ``10^(delta/10)``:

    * ``drop`` (75 %): vegetation stripped to soil and rock, ``delta_VH``
      uniform in -1.5..-6 dB, ``delta_VV`` 35-80 % of it;
    * ``rise`` (12 %): rough debris and blocks, ``delta_VV`` +1..+3.5 dB,
      ``delta_VH`` 50-90 % of it;
    * ``faint`` (13 %): a change below 0.8 dB in both polarisations (slides that
      a backscatter change cannot reveal; they stay in the truth).

    The deposit carries 60-80 % of the scar's change.  Within a slide the change
    varies per pixel by ``(1 + 0.35 n)``, ``n`` unit-variance noise smoothed
    over about one pixel (remnant vegetation, soil patches), clipped at zero so
    a drop never turns into a rise; each post-event date scales the change by
    ``1 + 0.1 e`` (``e`` standard normal): the scar persists, its contrast
    varies with moisture.  The spread of scar changes this gives (about
    1-6 dB in VH) is an assumption in line with the C-band literature the
    project's research digests cite, not a measurement on a real inventory.

Determinism
    Every random draw comes from a ``numpy.random.Generator`` seeded by the
    case's seed and a component name, so a case is regenerated bit for bit.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import math
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage

from ..raster_io import write_geotiff

IMPRINT_VERSION = "1.0.0"
"""Bumped whenever the same case specification would give different files."""

REGIMES = {
    "earthquake": dict(a=1280.0, density_per_km2=4.0, elong=(1.5, 3.5), scar_fraction=0.6),
    "rain": dict(a=6000.0, density_per_km2=1.5, elong=(3.0, 7.0), scar_fraction=0.5),
}
_RHO, _S_M2, _MAX_AREA_M2 = 1.4, -132.0, 1.5e5
_KIND_P = {"drop": 0.75, "rise": 0.12, "faint": 0.13}
_COMPONENTS = {"terrain": 1, "slides": 2, "change": 3, "dates": 4}


class ImprintError(ValueError):
    """A real stack or a case specification cannot give a case; the message says why."""


def _rng(seed: int, component: str) -> np.random.Generator:
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, _COMPONENTS[component]])


# --------------------------------------------------------------------------- the real stack


@dataclass
class RealStack:
    """One burst of real scenes: ``files[(date, pol)]`` and the grid they share."""

    burst: str  # e.g. "T137-292320-IW2"
    track: int
    files: dict[tuple[_dt.datetime, str], Path]
    crs: object
    transform: object
    shape: tuple[int, int]
    pixel_size: float

    @property
    def dates(self) -> list[_dt.datetime]:
        return sorted({d for d, _ in self.files})

    @property
    def polarisations(self) -> list[str]:
        return sorted({p for _, p in self.files})

    def read_linear(self, date: _dt.datetime, pol: str) -> np.ndarray:
        import rasterio

        with rasterio.open(self.files[(date, pol)]) as src:
            return src.read(1).astype(np.float32)


def read_opera_burst(folder: str | Path) -> RealStack:
    """The OPERA RTC-S1 files of one burst folder (one file per date and polarisation, one grid)."""
    import rasterio

    from ..sources import opera

    root = Path(folder)
    files: dict[tuple[_dt.datetime, str], Path] = {}
    bursts = set()
    for path in sorted(root.glob("OPERA_L2_RTC-S1_*.tif")):
        name = opera.parse_name(path.name)
        if name is None or name.polarisation is None:
            continue
        date = name.start.replace(microsecond=0)
        files[(date, name.polarisation)] = path
        bursts.add((name.track, name.burst_id))
    if not files:
        raise ImprintError(f"no OPERA RTC-S1 file in {root}")
    if len(bursts) != 1:
        raise ImprintError(f"{root} holds several bursts ({sorted(b for _, b in bursts)}); give one burst folder")
    (track, burst), = bursts
    with rasterio.open(next(iter(files.values()))) as src:
        crs, transform, shape = src.crs, src.transform, (src.height, src.width)
    return RealStack(burst, track, files, crs, transform, shape, float(abs(transform.a)))


# --------------------------------------------------------------------------- terrain


def crop_terrain(shape: tuple[int, int], pixel_size: float, seed: int, *, relief_m: float = 500.0,
                 ridge_spacing_m: float = 1500.0, beta: float = 5.5) -> np.ndarray:
    """Synthetic elevation (m) for a crop: a fractal surface scaled to ``relief_m``.

    Generated on a larger field and cropped so it does not wrap around.
    """
    from . import _spectral_field

    rng = _rng(seed, "terrain")
    ny, nx = shape
    big = (int(ny * 1.5) + 16, int(nx * 1.5) + 16)
    h = _spectral_field(rng, big, pixel_size / ridge_spacing_m, beta)
    oy, ox = (big[0] - ny) // 2, (big[1] - nx) // 2
    h = h[oy:oy + ny, ox:ox + nx]
    lo, hi = np.percentile(h, [0.5, 99.5])
    return (200.0 + relief_m * np.clip((h - lo) / max(hi - lo, 1e-9), 0.0, 1.0)).astype(np.float64)


def slope_deg(elev: np.ndarray, pixel_size: float) -> np.ndarray:
    dz_drow, dz_dcol = np.gradient(elev, pixel_size)
    return np.degrees(np.arctan(np.hypot(dz_drow, dz_dcol)))


# --------------------------------------------------------------------------- slides


@dataclass
class Slide:
    """One imprinted slide: its kind and its scar change in dB per polarisation."""

    slide_id: int
    kind: str
    delta_db: dict[str, float]
    area_m2: float
    deposit_gain: float
    mean_slope_deg: float


def _sample_areas(rng: np.random.Generator, n: int, a: float, min_area: float) -> np.ndarray:
    out = np.empty(0)
    while out.size < n:
        areas = a / rng.gamma(_RHO, 1.0, size=max(4 * n, 64)) + _S_M2
        out = np.concatenate([out, areas[(areas >= min_area) & (areas <= _MAX_AREA_M2)]])
    return out[:n]


def _slide_change(rng: np.random.Generator) -> tuple[str, dict[str, float]]:
    kind = str(rng.choice(list(_KIND_P), p=list(_KIND_P.values())))
    if kind == "drop":
        vh = -rng.uniform(1.5, 6.0)
        return kind, {"VH": vh, "VV": vh * rng.uniform(0.35, 0.8)}
    if kind == "rise":
        vv = rng.uniform(1.0, 3.5)
        return kind, {"VV": vv, "VH": vv * rng.uniform(0.5, 0.9)}
    return kind, {"VV": rng.uniform(-0.8, 0.8), "VH": rng.uniform(-0.8, 0.8)}


def _teardrop(shape, r0: int, c0: int, down: tuple[float, float], length: float, width: float, px: float,
              rng: np.random.Generator) -> tuple[tuple[slice, slice], np.ndarray, np.ndarray]:
    """Window, footprint and along-slope coordinate (0 crown .. 1 toe) of one tear-drop slide."""
    ny, nx = shape
    half = int(length / px) + 3
    ra, rb, ca, cb = max(r0 - half, 0), min(r0 + half + 1, ny), max(c0 - half, 0), min(c0 + half + 1, nx)
    yy, xx = np.mgrid[ra:rb, ca:cb]
    de, dn = (xx - c0) * px, -(yy - r0) * px
    ue, un = down
    s = (de * ue + dn * un + 0.1 * length) / length
    v = -de * un + dn * ue
    k, phase, amp = rng.uniform(1.0, 3.0), rng.uniform(0, 2 * np.pi), rng.uniform(0.05, 0.25)
    sc = np.clip(s, 0, 1)
    half_width = 0.5 * width * np.sqrt(np.sin(np.pi * sc)) * (1.0 + amp * np.sin(2 * np.pi * k * s + phase))
    return (slice(ra, rb), slice(ca, cb)), (s > 0) & (s < 1) & (np.abs(v) <= half_width), s


def place_slides(elev: np.ndarray, pixel_size: float, seed: int, regime: str, *,
                 land: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, list[Slide]]:
    """Label raster (0 none, i slide i), scar mask and the slides of one case."""
    if regime not in REGIMES:
        raise ImprintError(f"regime must be one of {tuple(REGIMES)}, not {regime!r}")
    p = REGIMES[regime]
    rng = _rng(seed, "slides")
    px = float(pixel_size)
    slope = slope_deg(elev, px)
    dz_drow, dz_dcol = np.gradient(ndimage.gaussian_filter(elev, 2.0), px)
    land = np.ones(elev.shape, bool) if land is None else land
    weight = np.where(land, np.clip(slope - 8.0, 0.0, None) ** 1.5, 0.0).ravel()
    labels = np.zeros(elev.shape, np.int32)
    scar = np.zeros(elev.shape, bool)
    slides: list[Slide] = []
    if weight.sum() <= 0:
        return labels, scar, slides
    weight /= weight.sum()
    n_target = int(rng.poisson(p["density_per_km2"] * land.sum() * px * px / 1e6))
    areas = _sample_areas(rng, n_target, p["a"], 2.0 * px * px)
    for _attempt in range(20 * max(n_target, 1)):
        if len(slides) >= n_target:
            break
        area = float(areas[len(slides)])
        r0, c0 = divmod(int(rng.choice(weight.size, p=weight)), elev.shape[1])
        ratio = rng.uniform(*p["elong"])
        width = math.sqrt(4.0 * area / (math.pi * ratio))
        gx, gy = dz_dcol[r0, c0], -dz_drow[r0, c0]  # uphill (east, north)
        norm = math.hypot(gx, gy)
        if norm < 1e-6:
            continue
        win, foot, s = _teardrop(elev.shape, r0, c0, (-gx / norm, -gy / norm), ratio * width, width, px, rng)
        foot &= land[win] & (labels[win] == 0)
        if foot.sum() < max(2, int(0.5 * area / (px * px))):
            continue
        kind, delta = _slide_change(rng)
        slide_id = len(slides) + 1
        labels[win][foot] = slide_id
        scar[win] |= foot & (s < p["scar_fraction"])
        slides.append(Slide(slide_id, kind, {k: float(v) for k, v in delta.items()}, float(foot.sum() * px * px),
                            float(rng.uniform(0.6, 0.8)), float(slope[win][foot].mean())))
    return labels, scar, slides


def change_db(labels: np.ndarray, scar: np.ndarray, slides: Sequence[Slide], pol: str, seed: int) -> np.ndarray:
    """Per-pixel change (dB) of one polarisation: each slide's change, deposit gain, per-pixel spread."""
    rng = _rng(seed, "change")
    per_slide = np.zeros(len(slides) + 1)
    gain = np.ones(len(slides) + 1)
    for s in slides:
        per_slide[s.slide_id] = s.delta_db[pol]
        gain[s.slide_id] = s.deposit_gain
    base = per_slide[labels] * np.where(scar, 1.0, gain[labels])
    spread = ndimage.gaussian_filter(rng.standard_normal(labels.shape), 0.8)
    spread /= max(float(spread.std()), 1e-9)
    return (base * np.clip(1.0 + 0.35 * spread, 0.0, None)).astype(np.float32)


# --------------------------------------------------------------------------- cases


@dataclass
class CaseSpec:
    """One benchmark case: a burst, the pre and post dates, and what is imprinted.

    ``role`` is ``tuning`` (defaults may be chosen on it) or ``report`` (held
    out: only reported).  ``regime`` is None for a no-change case.
    """

    name: str
    burst: str
    pre: tuple[str, ...]  # dates YYYY-mm-dd
    post: tuple[str, ...]
    role: str
    regime: str | None = None
    seed: int = 0
    polarisations: tuple[str, ...] = ("VV", "VH")

    @property
    def kind(self) -> str:
        return "no_change" if self.regime is None else "imprinted"


@dataclass
class CaseFiles:
    """Where a written case lives and what the engine needs to run on it."""

    spec: CaseSpec
    scenes_dir: Path
    dem: Path
    truth_mask: Path | None
    land_mask: Path
    event_time: _dt.datetime
    pre_range: tuple[_dt.datetime, _dt.datetime]
    post_range: tuple[_dt.datetime, _dt.datetime]
    n_slides: int = 0
    slide_area_m2: float = 0.0
    extra: dict = field(default_factory=dict)


def _pick(stack: RealStack, days: Sequence[str]) -> list[_dt.datetime]:
    by_day = {d.strftime("%Y-%m-%d"): d for d in stack.dates}
    missing = [d for d in days if d not in by_day]
    if missing:
        raise ImprintError(f"burst {stack.burst} has no acquisition on {', '.join(missing)}")
    return [by_day[d] for d in days]


def land_mask(stack: RealStack, water_db: float = -22.0) -> np.ndarray:
    """Land = temporal median VH (else VV) above ``water_db`` over every date (calm water is darker)."""
    pol = "VH" if "VH" in stack.polarisations else stack.polarisations[0]
    meds = np.nanmedian([_to_db(stack.read_linear(d, pol)) for d in stack.dates], axis=0)
    return np.isfinite(meds) & (meds > water_db)


def _to_db(linear: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(linear > 0, 10.0 * np.log10(linear), np.nan).astype(np.float32)


def _scene_tags(stack: RealStack, imprinted: bool) -> dict:
    """Labels only: like a user's OPERA download, the scene is described by its file name alone."""
    tags = {"REAL_BACKGROUND": f"real OPERA RTC-S1 backscatter, burst {stack.burst} (NASA/JPL OPERA; contains "
                               "modified Copernicus Sentinel data)"}
    if imprinted:
        tags["IMPRINTED"] = "SYNTHETIC landslides multiplied into this real scene (core/simulate/imprint.py)"
    return tags


def write_case(spec: CaseSpec, stack: RealStack, out_dir: str | Path, *, relief_m: float = 500.0) -> CaseFiles:
    """Write one case: scenes (real pre, real or imprinted post), synthetic DEM, truth and land masks."""
    out = Path(out_dir)
    if out.exists():
        shutil.rmtree(out)
    scenes = out / "scenes"
    scenes.mkdir(parents=True)
    pre, post = _pick(stack, spec.pre), _pick(stack, spec.post)
    if max(pre) >= min(post):
        raise ImprintError(f"case {spec.name}: every pre-event date must precede every post-event date")
    px = stack.pixel_size
    burst_seed = int(re.sub(r"\D", "", stack.burst)) % (2 ** 31)
    elev = crop_terrain(stack.shape, px, burst_seed, relief_m=relief_m)
    land = land_mask(stack)
    labels = np.zeros(stack.shape, np.int32)
    scar = np.zeros(stack.shape, bool)
    slides: list[Slide] = []
    if spec.regime is not None:
        labels, scar, slides = place_slides(elev, px, spec.seed, spec.regime, land=land)
    changes = {pol: change_db(labels, scar, slides, pol, spec.seed) for pol in spec.polarisations}
    date_rng = _rng(spec.seed, "dates")
    for date in pre + post:
        imprinted = date in post and bool(slides)
        scale = 1.0 + 0.1 * date_rng.standard_normal() if imprinted else 0.0
        for pol in spec.polarisations:
            src = stack.files[(date, pol)]
            values = stack.read_linear(date, pol)
            if imprinted:
                values = values * np.power(10.0, changes[pol] * scale / 10.0, dtype=np.float32)
            tags = _scene_tags(stack, imprinted)
            write_geotiff(scenes / src.name, values.astype(np.float32), transform=stack.transform, crs=stack.crs,
                          nodata=float("nan"), band_descriptions=[pol], tags=tags)
    files = _write_rasters(out, stack, elev, labels, land, spec)
    half_gap = (min(post) - max(pre)) / 2
    event = max(pre) + half_gap
    case = CaseFiles(spec, scenes, files["dem"], files.get("truth"), files["land"], event,
                     (min(pre) - _dt.timedelta(hours=1), max(pre) + _dt.timedelta(hours=1)),
                     (min(post) - _dt.timedelta(hours=1), max(post) + _dt.timedelta(hours=1)),
                     len(slides), float(sum(s.area_m2 for s in slides)))
    _write_case_json(out / "case.json", case, slides)
    return case


def _write_rasters(out: Path, stack: RealStack, elev: np.ndarray, labels: np.ndarray, land: np.ndarray,
                   spec: CaseSpec) -> dict[str, Path]:
    from rasterio.transform import Affine

    px, margin = stack.pixel_size, 2
    t = stack.transform
    dem_transform = Affine(t.a, t.b, t.c - margin * px, t.d, t.e, t.f + margin * px)
    dem = np.pad(elev, margin, mode="reflect").astype(np.float32)
    files = {"dem": write_geotiff(out / "dem.tif", dem, transform=dem_transform, crs=stack.crs, nodata=None,
                                  tags={"SYNTHETIC": "synthetic terrain generated for a real-background case; "
                                                     "not the real topography", "UNITS": "m"}),
             "land": write_geotiff(out / "land_mask.tif", land.astype(np.uint8), transform=t, crs=stack.crs,
                                   nodata=None, tags={"DEFINITION": "1 land (median VH > -22 dB), 0 water"})}
    if spec.regime is not None:
        files["truth"] = write_geotiff(out / "truth_mask.tif", (labels > 0).astype(np.uint8), transform=t,
                                       crs=stack.crs, nodata=None,
                                       tags={"SYNTHETIC": "imprinted landslides (synthetic) on a real background"})
    return files


def _write_case_json(path: Path, case: CaseFiles, slides: Sequence[Slide]) -> None:
    info = {
        "real_background": True,
        "synthetic_parts": ["terrain (dem.tif)"] + (["landslides and their change"] if slides else []),
        "imprint_version": IMPRINT_VERSION,
        "spec": dataclasses.asdict(case.spec),
        "event_time": case.event_time.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "n_slides": case.n_slides,
        "slide_area_m2": case.slide_area_m2,
        "slides": [dataclasses.asdict(s) for s in slides],
    }
    path.write_text(json.dumps(info, indent=1, sort_keys=True), encoding="utf-8")


# --------------------------------------------------------------------------- the benchmark's cases

TUNING_BURSTS = ("T137-292319-IW2", "T137-292321-IW2")
SEEDS_PER_REGIME = 2
REPORT_BURSTS = ("T137-292320-IW2", "T137-292322-IW2")

# Date splits (pre | post).  Tuning splits use the 2021 and 2022 seasons, report splits the 2023 season
# and the windows a year or more apart that end in it or after it.
_S2021 = ("2021-11-19", "2021-11-25", "2021-12-01", "2021-12-07", "2021-12-13", "2021-12-19")
_S2022 = ("2022-11-02", "2022-11-14", "2022-11-26", "2022-12-08", "2022-12-20", "2023-01-01")
_S2023 = ("2023-10-04", "2023-10-16", "2023-10-28", "2023-11-09", "2023-11-21", "2023-12-03", "2023-12-15",
          "2023-12-27")
TUNING_SPLITS = {
    "2021_in_season": (_S2021[:3], _S2021[3:]),
    "2022_in_season": (_S2022[:3], _S2022[3:]),
    "2021_to_2022": (_S2021, _S2022[:2]),
}
REPORT_SPLITS = {
    "2023_early": (_S2023[:3], _S2023[3:5]),
    "2023_late": (_S2023[2:6], _S2023[6:]),
    "2022_to_2023": (_S2022, _S2023[:2]),
    "2023_to_2025": (_S2023[3:], ("2025-01-02",)),
}


def benchmark_cases(roles: Sequence[str] = ("tuning", "report")) -> list[CaseSpec]:
    """The real-background benchmark: no-change and imprinted cases per burst and split.

    Tuning cases (bursts ``TUNING_BURSTS`` x ``TUNING_SPLITS``) may be used to
    choose defaults; report cases (``REPORT_BURSTS`` x ``REPORT_SPLITS``, plus
    VH-only variants) are held out and only reported.  Each split gets
    ``SEEDS_PER_REGIME`` imprinted cases per regime with their own seeds: the
    pixel F1 of one case hangs on its few largest slides, so one case per split
    would be mostly luck.
    """
    cases: list[CaseSpec] = []
    plan = {"tuning": (TUNING_BURSTS, TUNING_SPLITS), "report": (REPORT_BURSTS, REPORT_SPLITS)}
    for role in roles:
        bursts, splits = plan[role]
        for b_i, burst in enumerate(bursts):
            for s_i, (split, (pre, post)) in enumerate(splits.items()):
                base = f"{role}_{burst}_{split}"
                cases.append(CaseSpec(f"{base}_no_change", burst, pre, post, role))
                for r_i, regime in enumerate(REGIMES):
                    for rep in range(SEEDS_PER_REGIME):
                        seed = 1000 * (1 + b_i) + 10 * s_i + 2 * r_i + rep + (0 if role == "tuning" else 500_000)
                        cases.append(CaseSpec(f"{base}_{regime}_{rep + 1}", burst, pre, post, role, regime, seed))
            if role == "report":
                pre, post = splits["2023_early"]
                cases.append(CaseSpec(f"report_{burst}_2023_early_earthquake_vh_only", burst, pre, post, role,
                                      "earthquake", 900_000 + b_i, ("VH",)))
    return cases
