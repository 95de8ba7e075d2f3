"""Earth Engine expression graphs: the same definitions as the local engine, built server-side.

Every builder takes the ``ee`` module as its first argument (imported lazily
by the caller) and returns ``ee`` objects; nothing here talks to the server.
The definitions mirror :mod:`..composite` and :mod:`..detect`:

* collection ``COPERNICUS/S1_GRD`` (sigma0 in dB), filtered by the AOI bounds,
  the dates, ``instrumentMode == 'IW'``, ``transmitterReceiverPolarisation``
  containing each chosen polarisation, optionally ``orbitProperties_pass``;
  each stack further by ``relativeOrbitNumber_start`` and pinned to the listed
  image ids (``system:index``) so a repeated run uses exactly the same images;
* per image: the polarisation band, bilinear resampling, values ``<= -30 dB``
  masked (kept where ``> edge_noise_db``), *before* the temporal median;
* per stack: ``median()`` and per-pixel ``count()``;
* ``A_ratio = pre - post`` per track and polarisation; polarisations, then the
  tracks of a pass, then the passes averaged over the available values
  (``ImageCollection.mean`` ignores masked pixels, like ``mean_of_available``);
* DEM ``COPERNICUS/DEM/GLO30`` band ``DEM`` mosaicked; slope
  ``ee.Terrain.slope``; curvature the Laplacian (``x_x + y_y`` of two
  ``gradient()``) of the Gaussian-smoothed DEM; mask bit flags as ``mask.tif``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from .. import catalog as cat
from ..detect import MASK_CURVATURE, MASK_NODATA, MASK_SLOPE
from ..grid import Grid
from .download import NODATA_SENTINEL

S1_COLLECTION = "COPERNICUS/S1_GRD"
DEM_COLLECTION = "COPERNICUS/DEM/GLO30"
DEM_BAND = "DEM"
LIST_COLUMNS = ["system:index", "system:time_start", "orbitProperties_pass", "relativeOrbitNumber_start"]


def to_ms(t: dt.datetime) -> int:
    return int((t - dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)) // dt.timedelta(milliseconds=1))


def end_ms_inclusive(t: dt.datetime) -> int:
    """Exclusive millisecond end for ``filterDate`` that still includes ``t``."""
    return to_ms(t) + 1


@dataclass
class S1Query:
    """What is asked of ``COPERNICUS/S1_GRD``: recorded in run.json so the run can be repeated."""

    bounds_lonlat: tuple[float, float, float, float]  # west, south, east, north (EPSG:4326)
    polarisations: tuple[str, ...]
    orbit_pass: str | None = None
    instrument_mode: str = "IW"
    collection: str = S1_COLLECTION

    def filters(self, start: dt.datetime, end: dt.datetime) -> dict:
        return {
            "bounds_lonlat": list(self.bounds_lonlat),
            "date_start_utc": cat.iso_utc(start),
            "date_end_utc_inclusive": cat.iso_utc(end),
            "filterDate_ms": [to_ms(start), end_ms_inclusive(end)],
            "instrumentMode": self.instrument_mode,
            "transmitterReceiverPolarisation_contains": list(self.polarisations),
            "orbitProperties_pass": self.orbit_pass,
        }


def region(ee, q: S1Query):
    return ee.Geometry.Rectangle(list(q.bounds_lonlat), "EPSG:4326", False)


def s1_filtered(ee, q: S1Query, start: dt.datetime, end: dt.datetime):
    """The filtered Sentinel-1 collection for ``[start, end]`` (inclusive)."""
    col = (ee.ImageCollection(q.collection)
           .filterBounds(region(ee, q))
           .filterDate(to_ms(start), end_ms_inclusive(end))
           .filter(ee.Filter.eq("instrumentMode", q.instrument_mode)))
    for pol in q.polarisations:
        col = col.filter(ee.Filter.listContains("transmitterReceiverPolarisation", pol))
    if q.orbit_pass:
        col = col.filter(ee.Filter.eq("orbitProperties_pass", q.orbit_pass))
    return col


def listing(ee, q: S1Query, start: dt.datetime, end: dt.datetime):
    """One dictionary ``{'list': [[id, time_ms, pass, relative_orbit], ...]}`` describing every image."""
    return s1_filtered(ee, q, start, end).reduceColumns(ee.Reducer.toList(len(LIST_COLUMNS)), LIST_COLUMNS)


def stack_collection(ee, q: S1Query, start: dt.datetime, end: dt.datetime, track: tuple[str, int | None],
                     ids: list[str]):
    """The images of one stack: the listing filters, this pass and relative orbit, pinned to ``ids``."""
    col = s1_filtered(ee, q, start, end)
    if not q.orbit_pass:
        col = col.filter(ee.Filter.eq("orbitProperties_pass", track[0]))
    if track[1] is not None:
        col = col.filter(ee.Filter.eq("relativeOrbitNumber_start", int(track[1])))
    return col.filter(ee.Filter.inList("system:index", list(ids)))


def edge_masked(ee, col, pol: str, edge_noise_db: float):
    """Per image: band ``pol``, bilinear, masked where ``<= edge_noise_db`` (kept where greater)."""

    def prep(img):
        band = ee.Image(img).select([pol]).resample("bilinear")
        return band.updateMask(band.gt(edge_noise_db))

    return col.map(prep)


def median_and_count(ee, col, pol: str, edge_noise_db: float):
    masked = edge_masked(ee, col, pol, edge_noise_db)
    return masked.median(), masked.count()


def on_grid(img, grid: Grid):
    epsg = grid.crs.to_epsg()
    crs = f"EPSG:{epsg}" if epsg else grid.crs.to_wkt()
    return img.reproject(crs=crs, crsTransform=list(grid.transform)[:6])


def mean_available(ee, images: list, name: str):
    """Per-pixel mean of the unmasked values among ``images`` (one image: itself)."""
    images = [i.rename(name) for i in images]
    if len(images) == 1:
        return images[0]
    return ee.ImageCollection(images).mean().rename(name)


def dem_image(ee):
    """GLO-30 mosaicked, band DEM, with the tiles' native projection (so slope is computed in metres)."""
    col = ee.ImageCollection(DEM_COLLECTION).select(DEM_BAND)
    return col.mosaic().setDefaultProjection(col.first().projection()).rename(DEM_BAND)


def curvature(ee, dem, sigma_m: float, radius_m: float):
    """Laplacian of the Gaussian-smoothed DEM, ``d2z/dx2 + d2z/dy2`` (1/m), as terrain.curvature."""
    smooth = dem.convolve(ee.Kernel.gaussian(radius=radius_m, sigma=sigma_m, units="meters", normalize=True))
    grad = smooth.gradient()
    return grad.select("x").gradient().select("x").add(grad.select("y").gradient().select("y")).rename("curvature")


def for_download(img):
    """Float32 with masked pixels as :data:`NODATA_SENTINEL` (computePixels has no NaN)."""
    return img.toFloat().unmask(NODATA_SENTINEL, False)


# --------------------------------------------------------------------------- the two processing modes


@dataclass
class StackSpec:
    track: tuple[str, int | None]
    role: str  # pre | post
    start: dt.datetime
    end: dt.datetime
    ids: list[str]


def stack_specs(selection: cat.StackSelection) -> list[StackSpec]:
    out = []
    for track in selection.tracks():
        for role, stacks, rng in (("pre", selection.pre, selection.pre_range),
                                  ("post", selection.post, selection.post_range)):
            out.append(StackSpec(track, role, rng[0], rng[1], [s.scene_id for s in stacks[track]]))
    return out


def track_composites(ee, q: S1Query, specs: list[StackSpec], track, polarisations, edge_noise_db: float):
    """Download mode: one image per track, bands ``{pol}_{role}`` (median) and ``{pol}_{role}_count``."""
    medians, counts = [], []
    for spec in (s for s in specs if s.track == track):
        col = stack_collection(ee, q, spec.start, spec.end, track, spec.ids)
        for pol in polarisations:
            med, cnt = median_and_count(ee, col, pol, edge_noise_db)
            medians.append(med.rename(f"{pol}_{spec.role}"))
            counts.append(cnt.unmask(0).rename(f"{pol}_{spec.role}_count"))
    return ee.Image.cat(medians + counts)


def track_band_names(polarisations) -> list[str]:
    roles = ("pre", "post")
    return [f"{p}_{r}" for r in roles for p in polarisations] + [f"{p}_{r}_count" for r in roles for p in polarisations]


def server_products(ee, q: S1Query, specs: list[StackSpec], params, grid: Grid):
    """Server mode: ``(image, band_names)`` with the averaged ratio, per-pass ratios, mask code and counts.

    Bands: ``a_ratio`` (unmasked by terrain), ``a_ratio_<pass>``, ``mask_code``
    (bit flags of detect.MASK_*; AOI polygon and water are added locally),
    ``count_<pass>_<role>`` (valid images per pixel, summed over tracks and
    polarisations as the local engine does).
    """
    pols = params.polarisations()
    tracks = sorted({s.track for s in specs}, key=lambda t: (t[0], t[1] or 0))
    speckle = (ee.Kernel.gaussian(radius=params.speckle_radius_m, sigma=params.speckle_sigma_m, units="meters",
                                  normalize=True) if params.speckle_sigma_m > 0 else None)
    by_pass: dict[str, list] = {}
    counts: dict[tuple[str, str], list] = {}
    for track in tracks:
        pol_ratios = []
        for pol in pols:
            comp = {}
            for spec in (s for s in specs if s.track == track):
                col = stack_collection(ee, q, spec.start, spec.end, track, spec.ids)
                med, cnt = median_and_count(ee, col, pol, params.edge_noise_db)
                med = on_grid(med, grid)
                if speckle is not None:
                    med = med.convolve(speckle)
                comp[spec.role] = med
                counts.setdefault((track[0], spec.role), []).append(on_grid(cnt.unmask(0), grid))
            pol_ratios.append(comp["pre"].subtract(comp["post"]))  # pre - post: positive = backscatter dropped
        by_pass.setdefault(track[0], []).append(mean_available(ee, pol_ratios, "a_ratio"))
    passes = sorted(by_pass)
    pass_ratio = {p: mean_available(ee, by_pass[p], "a_ratio") for p in passes}
    ratio = mean_available(ee, [pass_ratio[p] for p in passes], "a_ratio")

    dem = on_grid(dem_image(ee).resample("bilinear"), grid)
    code = ratio.mask().Not().multiply(MASK_NODATA)
    if params.slope_min_deg is not None:
        slope = ee.Terrain.slope(dem)
        code = code.add(slope.gte(params.slope_min_deg).unmask(0).Not().multiply(MASK_SLOPE))
    if params.curv_min is not None:
        curv = curvature(ee, dem, params.curv_sigma_m, params.curv_radius_m)
        code = code.add(curv.gte(params.curv_min).unmask(0).Not().multiply(MASK_CURVATURE))
    bands = [ratio] + [pass_ratio[p].rename(f"a_ratio_{p.lower()}") for p in passes]
    bands.append(code.rename("mask_code"))
    names = ["a_ratio"] + [f"a_ratio_{p.lower()}" for p in passes] + ["mask_code"]
    for p in passes:
        for role in ("pre", "post"):
            imgs = [i.rename("count") for i in counts[(p, role)]]
            total = imgs[0] if len(imgs) == 1 else ee.ImageCollection(imgs).sum()
            bands.append(total.rename(f"count_{p.lower()}_{role}"))
            names.append(f"count_{p.lower()}_{role}")
    return ee.Image.cat(bands), names
