"""The output grid and block-wise reading of any input raster onto it.

The grid is the area of interest (AOI) in a projected CRS (by default the UTM
zone of the AOI centre) at a chosen pixel size, snapped to whole multiples of
the pixel size so that runs over overlapping AOIs share one pixel lattice.

Inputs of any CRS, resolution and extent are brought onto the grid one window
at a time: a source already on the grid's lattice is read directly (a window
copy); any other is warped through a GDAL warped VRT with bilinear resampling,
which reads only the source pixels that the window needs.  Memory therefore
depends on the block size, never on the scene size.

One polarisation of one acquisition stored in several files (OPERA bursts,
GRD frames, tiles) is read as one image by :class:`MosaicOnGrid`.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.vrt import WarpedVRT
from rasterio.warp import transform_bounds
from rasterio.windows import Window

log = logging.getLogger(__name__)


class GridError(ValueError):
    """The AOI or an input cannot be placed on the output grid; the message says why."""


def compose(first: Affine, second: Affine) -> Affine:
    """``first @ second``; affine < 3 (Debian 12's python3-affine 2.4) has no ``@`` and composes with ``*``."""
    return first @ second if hasattr(type(first), "__matmul__") else first * second


@dataclass(frozen=True)
class Grid:
    """A north-up raster grid: CRS, affine transform and size in pixels."""

    crs: CRS
    transform: Affine
    width: int
    height: int
    pixel_size_reason: str = field(default="", compare=False)  # why this pixel size (recorded in run.json)

    @property
    def pixel_size(self) -> float:
        return float(self.transform.a)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        left, top = self.transform.c, self.transform.f
        return (left, top + self.height * self.transform.e, left + self.width * self.transform.a, top)

    def window_transform(self, window: Window) -> Affine:
        return rasterio.windows.transform(window, self.transform)

    def padded(self, halo: int) -> Grid:
        """The grid grown by ``halo`` pixels on every side (for neighbourhood operations)."""
        return Grid(
            self.crs,
            compose(self.transform, Affine.translation(-halo, -halo)),
            self.width + 2 * halo,
            self.height + 2 * halo,
        )

    def blocks(self, block_size: int) -> Iterator[Window]:
        """Row-major windows of at most ``block_size`` x ``block_size`` pixels covering the grid."""
        for row in range(0, self.height, block_size):
            for col in range(0, self.width, block_size):
                yield Window(col, row, min(block_size, self.width - col), min(block_size, self.height - row))

    def n_blocks(self, block_size: int) -> int:
        return math.ceil(self.height / block_size) * math.ceil(self.width / block_size)

    def to_dict(self) -> dict:
        out = {
            "crs": self.crs.to_string(),
            "transform": list(self.transform)[:6],
            "width": self.width,
            "height": self.height,
            "pixel_size_m": self.pixel_size,
            "bounds": list(self.bounds),
        }
        if self.pixel_size_reason:
            out["pixel_size_reason"] = self.pixel_size_reason
        return out


def utm_crs(lon: float, lat: float) -> CRS:
    """The WGS 84 / UTM zone CRS containing (lon, lat)."""
    zone = int((lon + 180.0) // 6.0) % 60 + 1
    return CRS.from_epsg((32600 if lat >= 0 else 32700) + zone)


def grid_from_bounds(
    bounds: tuple[float, float, float, float],
    bounds_crs,
    pixel_size: float,
    crs=None,
    anchor: tuple[float, float] = (0.0, 0.0),
) -> Grid:
    """A grid covering ``bounds`` (in ``bounds_crs``) at ``pixel_size`` metres.

    ``crs`` defaults to the UTM zone of the AOI centre.  Edges are snapped
    outwards to the lattice ``anchor + k * pixel_size``.
    """
    if not pixel_size or pixel_size <= 0:
        raise GridError(f"the pixel size must be positive, not {pixel_size}")
    left, bottom, right, top = bounds
    if not (right > left and top > bottom):
        raise GridError(f"the AOI {bounds} is empty (xmin must be < xmax and ymin < ymax)")
    src_crs = CRS.from_user_input(bounds_crs)
    if crs is None:
        lon0, lat0, lon1, lat1 = transform_bounds(src_crs, "EPSG:4326", *bounds, densify_pts=21)
        crs = utm_crs((lon0 + lon1) / 2, (lat0 + lat1) / 2)
    dst_crs = CRS.from_user_input(crs)
    if not dst_crs.is_projected:
        raise GridError(f"the output CRS {dst_crs.to_string()} is not projected; pixel sizes are in metres")
    x0, y0, x1, y1 = transform_bounds(src_crs, dst_crs, *bounds, densify_pts=21)
    ax, ay = anchor
    x0 = ax + math.floor((x0 - ax) / pixel_size + 1e-9) * pixel_size
    y0 = ay + math.floor((y0 - ay) / pixel_size + 1e-9) * pixel_size
    x1 = ax + math.ceil((x1 - ax) / pixel_size - 1e-9) * pixel_size
    y1 = ay + math.ceil((y1 - ay) / pixel_size - 1e-9) * pixel_size
    width, height = round((x1 - x0) / pixel_size), round((y1 - y0) / pixel_size)
    if width * height > 50_000 * 50_000:
        raise GridError(f"the grid would be {width} x {height} pixels; choose a smaller AOI or a larger pixel size")
    return Grid(dst_crs, Affine(pixel_size, 0, x0, 0, -pixel_size, y1), width, height)


@dataclass
class Aoi:
    """An area of interest: a bounding box in some CRS, optionally a polygon inside it."""

    bounds: tuple[float, float, float, float]
    crs: CRS
    geometries: list[dict] | None = None  # GeoJSON-like polygons in ``crs``
    source: str = ""


AOI_SUFFIXES = (".gpkg", ".geojson", ".json")
MAX_CHECKED_VERTICES = 20_000  # rings longer than this skip the self-intersection check (quadratic)


def parse_aoi(text: str) -> Aoi:
    """Parse ``xmin,ymin,xmax,ymax[,CRS]`` (CRS default EPSG:4326) or a polygon file (GeoPackage/GeoJSON).

    Refused with one sentence each: an empty or zero-area AOI, latitude and
    longitude swapped, a self-intersecting polygon, a polygon file of another
    format (shapefile, KML...), unreadable geometries.  A longitude box or
    polygon that crosses the antimeridian (xmin > xmax, e.g. 179.5,-17,-179.5,-16)
    is accepted: its eastern longitudes are continued past 180.
    """
    path = Path(text)
    if path.suffix.lower() in AOI_SUFFIXES + _OTHER_VECTOR_SUFFIXES or path.is_file():
        return _aoi_from_file(path)
    parts = [p.strip() for p in text.split(",")]
    if len(parts) not in (4, 5):
        raise GridError(
            f"--aoi {text!r}: give xmin,ymin,xmax,ymax[,CRS] (e.g. 141.9,42.6,142.1,42.8 or "
            "500000,4700000,510000,4710000,EPSG:32654) or a polygon file (.gpkg, .geojson)"
        )
    try:
        bounds = [float(p) for p in parts[:4]]
    except ValueError:
        raise GridError(f"--aoi {text!r}: the four bounds must be numbers") from None
    if not all(math.isfinite(b) for b in bounds):
        raise GridError(f"--aoi {text!r}: the four bounds must be finite numbers")
    try:
        crs = CRS.from_user_input(parts[4]) if len(parts) == 5 else CRS.from_epsg(4326)
    except rasterio.errors.CRSError:
        raise GridError(f"--aoi {text!r}: {parts[4]!r} is not a coordinate reference system (e.g. EPSG:32654)") \
            from None
    xmin, ymin, xmax, ymax = bounds
    if crs.is_geographic:
        _check_lon_lat([xmin, xmax], [ymin, ymax], f"--aoi {text!r}")
        if xmin > xmax:  # crosses the antimeridian: continue the eastern edge past 180
            xmax += 360.0
    if xmin == xmax or ymin == ymax:
        raise GridError(f"--aoi {text!r} has zero area (xmin = xmax or ymin = ymax); give a box with extent")
    if xmin > xmax or ymin > ymax:
        raise GridError(f"--aoi {text!r} is empty: give xmin,ymin,xmax,ymax with xmin < xmax and ymin < ymax")
    return Aoi((xmin, ymin, xmax, ymax), crs, None, text)


_OTHER_VECTOR_SUFFIXES = (".shp", ".kml", ".kmz", ".gml", ".zip", ".tab", ".mif", ".csv", ".fgb", ".sqlite")


def _check_lon_lat(xs, ys, where: str) -> None:
    """Longitudes within -180..180 and latitudes within -90..90, with a hint when they look swapped."""
    if all(abs(y) <= 90 for y in ys) and all(abs(x) <= 180 for x in xs):
        return
    if all(abs(x) <= 90 for x in xs) and all(abs(y) <= 180 for y in ys):
        raise GridError(f"{where}: latitude {max(ys, key=abs):g} is beyond 90 degrees; latitude and longitude "
                        "look swapped: give longitude first (xmin = west, ymin = south, xmax = east, ymax = north)")
    raise GridError(f"{where}: coordinates beyond -180..180 longitude or -90..90 latitude; in EPSG:4326 give "
                    "degrees, or add the CRS of projected coordinates (e.g. ...,EPSG:32654)")


def _aoi_from_file(path: Path) -> Aoi:
    suffix = path.suffix.lower()
    if suffix in _OTHER_VECTOR_SUFFIXES:
        raise GridError(f"AOI file {path} is a {suffix[1:].upper()} file; this tool reads polygons from a GeoPackage "
                        "(.gpkg) or GeoJSON: save it as GeoPackage in QGIS (Export > Save Features As) or run "
                        f"ogr2ogr -f GPKG aoi.gpkg {path.name}")
    if not path.is_file():
        raise GridError(f"AOI file {path} does not exist")
    if suffix == ".gpkg" or path.read_bytes()[:16] == b"SQLite format 3\x00":
        geoms, crs = _gpkg_polygons(path)
    else:
        geoms, crs = _geojson_polygons(path)
    if not geoms:
        raise GridError(f"AOI file {path} holds no polygon")
    for k, g in enumerate(geoms):
        _check_polygon(g, f"AOI file {path}, polygon {k + 1}")
    if crs.is_geographic:
        geoms = _across_antimeridian(geoms, path)
    xs = [p[0] for g in geoms for poly in _polys(g) for p in poly[0]]
    ys = [p[1] for g in geoms for poly in _polys(g) for p in poly[0]]
    if crs.is_geographic:
        _check_lon_lat([min(xs), max(xs) - (360 if max(xs) > 180 else 0)], ys, f"AOI file {path}")
    return Aoi((min(xs), min(ys), max(xs), max(ys)), crs, geoms, str(path))


def _gpkg_polygons(path: Path) -> tuple[list[dict], CRS]:
    from .gpkg import GeoPackageError, read_features

    try:
        features, crs_text = read_features(path)
    except GeoPackageError as exc:
        raise GridError(f"AOI file {path} cannot be read: {exc}") from None
    return [f.geometry for f in features if f.geometry], _crs_or_wgs84(crs_text, path)


def _geojson_polygons(path: Path) -> tuple[list[dict], CRS]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise GridError(f"AOI file {path} is not GeoJSON ({str(exc)[:80]}); give a GeoPackage or GeoJSON polygon "
                        "file") from None
    if not isinstance(data, dict):
        raise GridError(f"AOI file {path} is not a GeoJSON object (FeatureCollection, Feature or Polygon)")
    feats = data.get("features") if data.get("type") == "FeatureCollection" else [data]
    if not isinstance(feats, list):
        raise GridError(f"AOI file {path}: 'features' must be a list")
    geoms = [f.get("geometry", f) if isinstance(f, dict) else None for f in feats]
    geoms = [g for g in geoms if isinstance(g, dict) and g.get("type") in ("Polygon", "MultiPolygon")]
    crs_member = data.get("crs")
    crs_name = crs_member.get("properties", {}).get("name") if isinstance(crs_member, dict) else None
    return geoms, _crs_or_wgs84(crs_name, path)


def _crs_or_wgs84(text, path: Path) -> CRS:
    if not text:
        return CRS.from_epsg(4326)
    try:
        return CRS.from_user_input(text)
    except rasterio.errors.CRSError:
        raise GridError(f"AOI file {path} declares an unknown coordinate reference system {str(text)[:60]!r}") \
            from None


def _polys(geometry: dict) -> list:
    return [geometry["coordinates"]] if geometry["type"] == "Polygon" else geometry["coordinates"]


def _check_polygon(geometry: dict, where: str) -> None:
    """Well-formed rings of finite numbers, a positive area, no self-crossing outer ring."""
    coords = geometry.get("coordinates")
    polys = [coords] if geometry["type"] == "Polygon" else coords
    if not isinstance(polys, list) or not polys:
        raise GridError(f"{where} has no coordinates; draw the area again")
    area = 0.0
    for poly in polys:
        if not isinstance(poly, list) or not poly:
            raise GridError(f"{where} has a polygon without coordinates; draw the area again")
        for ring in poly:
            if not isinstance(ring, list) or len(ring) < 4 or not all(_is_position(p) for p in ring):
                raise GridError(f"{where} has a ring that is not a list of at least 4 [x, y] positions of finite "
                                "numbers")
        area += _ring_area(poly[0]) - sum(_ring_area(h) for h in poly[1:])
        _check_simple(poly[0], where)
    if not area > 0:
        raise GridError(f"{where} has zero area (its points lie on a line or repeat); draw an area, not a line")


def _is_position(p) -> bool:
    return (isinstance(p, (list, tuple)) and len(p) >= 2 and all(isinstance(v, (int, float)) for v in p[:2])
            and all(math.isfinite(v) for v in p[:2]))


def _ring_area(ring) -> float:
    xy = np.asarray([(p[0], p[1]) for p in ring], dtype="float64")
    x, y = xy[:, 0] - xy[:, 0].mean(), xy[:, 1] - xy[:, 1].mean()
    return abs(float(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y))) / 2.0


def _check_simple(ring, where: str) -> None:
    """GridError if two non-adjacent edges of ``ring`` cross or touch (a bow tie, a figure eight)."""
    pts = np.asarray([(p[0], p[1]) for p in ring], dtype="float64")
    if len(pts) > 1 and np.array_equal(pts[0], pts[-1]):
        pts = pts[:-1]
    keep = np.r_[True, np.any(np.diff(pts, axis=0) != 0, axis=1)]  # repeated vertices are not crossings
    pts = pts[keep]
    n = len(pts)
    if n < 4 or n > MAX_CHECKED_VERTICES:
        return
    a, b = pts, np.roll(pts, -1, axis=0)  # edge i runs a[i] -> b[i]
    for lo in range(0, n, 256):
        i = np.arange(lo, min(lo + 256, n))[:, None]
        j = np.arange(n)[None, :]
        cand = (j > i + 1) & ~((i == 0) & (j == n - 1))  # non-adjacent pairs, each once
        if not cand.any():
            continue
        ai, bi, aj, bj = a[i[:, 0]][:, None], b[i[:, 0]][:, None], a[None], b[None]
        d1, d2 = _orient(aj, bj, ai), _orient(aj, bj, bi)
        d3, d4 = _orient(ai, bi, aj), _orient(ai, bi, bj)
        crossing = (d1 * d2 <= 0) & (d3 * d4 <= 0)
        collinear = (d1 == 0) & (d2 == 0)
        overlap = collinear & _boxes_touch(ai, bi, aj, bj)
        hit = cand & ((crossing & ~collinear) | overlap)
        if hit.any():
            k, m = np.argwhere(hit)[0]
            raise GridError(f"{where} crosses itself (edges {lo + k + 1} and {m + 1}); fix it (QGIS: Vector > "
                            "Geometry Tools > Fix Geometries, or draw it again)")


def _orient(p, q, r) -> np.ndarray:
    """Sign of the turn p -> q -> r (+1 left, -1 right, 0 collinear), broadcast over leading axes."""
    cross = (q[..., 0] - p[..., 0]) * (r[..., 1] - p[..., 1]) - (q[..., 1] - p[..., 1]) * (r[..., 0] - p[..., 0])
    return np.sign(cross)


def _boxes_touch(a1, b1, a2, b2) -> np.ndarray:
    lo1, hi1 = np.minimum(a1, b1), np.maximum(a1, b1)
    lo2, hi2 = np.minimum(a2, b2), np.maximum(a2, b2)
    return np.all((lo1 <= hi2) & (lo2 <= hi1), axis=-1)


def _across_antimeridian(geoms: list[dict], path: Path) -> list[dict]:
    """Geographic polygons spanning more than 180 degrees of longitude cross the antimeridian: shift the west."""
    xs = [p[0] for g in geoms for poly in _polys(g) for ring in poly for p in ring]
    if max(xs) - min(xs) <= 180:
        return geoms

    def shift(obj):
        if _is_position(obj):
            return [obj[0] + 360.0 if obj[0] < 0 else obj[0], *obj[1:]]
        return [shift(o) for o in obj]

    log.info("AOI file %s crosses the antimeridian; its western longitudes are continued past 180", path)
    return [{"type": g["type"], "coordinates": shift(g["coordinates"])} for g in geoms]


def check_dem(path: str | Path) -> None:
    """GridError unless ``path`` is a georeferenced raster whose heights are in metres."""
    p = Path(path)
    try:
        with rasterio.open(p) as src:
            crs, units = src.crs, (src.units[0] if src.units else "") or ""
            tags = {k.upper(): str(v) for k, v in src.tags().items()}
            tags.update({k.upper(): str(v) for k, v in src.tags(1).items()})
    except (rasterio.errors.RasterioError, rasterio.errors.RasterioIOError) as exc:  # unrelated in 1.3
        raise GridError(f"the DEM {p.name} is not a raster GDAL can read ({_first_line(exc)}); give a GeoTIFF DEM "
                        "(e.g. Copernicus GLO-30)") from None
    if crs is None:
        raise GridError(f"the DEM {p.name} has no coordinate reference system; give a georeferenced DEM")
    stated = " ".join([units] + [tags.get(k, "") for k in ("UNITS", "UNIT", "VERTICAL_UNITS", "UNITTYPE")]).lower()
    if any(word in stated.replace("_", " ").split() for word in ("ft", "feet", "foot", "us-ft", "ftus")) or \
            "us survey foot" in stated:
        raise GridError(f"the DEM {p.name} is tagged in feet; heights must be in metres: convert it first "
                        f"(gdal_calc.py -A {p.name} --calc=\"A*0.3048\" --outfile=dem_m.tif)")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def footprint(path: str | Path, crs) -> tuple[float, float, float, float]:
    """Bounds of a raster file in ``crs``."""
    with rasterio.open(path) as src:
        if src.crs is None:
            raise GridError(f"{Path(path).name} has no coordinate reference system")
        return transform_bounds(src.crs, CRS.from_user_input(crs), *src.bounds, densify_pts=21)


def pixel_size_m(src) -> float:
    """The pixel size of an open raster in metres (the coarser axis; degrees converted at its centre latitude)."""
    dx, dy = abs(src.transform.a), abs(src.transform.e)
    crs = src.crs
    if crs is not None and crs.is_geographic:
        lat = math.radians((src.bounds.bottom + src.bounds.top) / 2)
        # Metres per degree on WGS 84: ~111.32 km of longitude at the equator (times cos lat), ~110.57 km of latitude.
        dx, dy = dx * 111_320.0 * math.cos(lat), dy * 110_574.0
    elif crs is not None and crs.is_projected:
        factor = crs.linear_units_factor[1]
        dx, dy = dx * factor, dy * factor
    return round(max(dx, dy), 6)


def overlap_fraction(inner: tuple, outer: tuple) -> float:
    """Share of the area of box ``inner`` that lies inside box ``outer`` (same CRS)."""
    ix0, iy0 = max(inner[0], outer[0]), max(inner[1], outer[1])
    ix1, iy1 = min(inner[2], outer[2]), min(inner[3], outer[3])
    area = (inner[2] - inner[0]) * (inner[3] - inner[1])
    if area <= 0:
        return 0.0
    return max(0.0, ix1 - ix0) * max(0.0, iy1 - iy0) / area


class RasterOnGrid:
    """Reads one band of a raster file onto windows of a grid (optionally with a halo).

    Values equal to the source's nodata become NaN; pixels outside the
    source's extent are NaN.  Open once, read many windows; close when done.
    """

    def __init__(self, path: str | Path, band: int, grid: Grid, *, halo: int = 0,
                 resampling: Resampling = Resampling.bilinear):
        self.path = Path(path)
        self.band = band
        self.grid = grid
        self.halo = halo
        try:
            self._src = rasterio.open(self.path)
        except (rasterio.errors.RasterioError, rasterio.errors.RasterioIOError) as exc:  # 1.3: unrelated
            raise GridError(f"cannot read {self.path.name}: {_first_line(exc)}") from None
        if self._src.crs is None:
            self._src.close()
            raise GridError(f"{self.path.name} has no coordinate reference system")
        self._offset = self._aligned_offset()
        self._vrt = None
        if self._offset is None:
            padded = grid.padded(halo)
            self._vrt = WarpedVRT(
                self._src,
                crs=grid.crs,
                transform=padded.transform,
                width=padded.width,
                height=padded.height,
                resampling=resampling,
                src_nodata=self._src.nodata,
                nodata=np.nan,
                dtype="float32",
            )

    @property
    def aligned(self) -> bool:
        return self._offset is not None

    def _aligned_offset(self) -> tuple[int, int] | None:
        src, g = self._src, self.grid
        if src.crs != g.crs:
            return None
        t = src.transform
        if t.b != 0 or t.d != 0 or not math.isclose(t.a, g.transform.a) or not math.isclose(t.e, g.transform.e):
            return None
        col = (t.c - g.transform.c) / g.transform.a
        row = (t.f - g.transform.f) / g.transform.e
        if abs(col - round(col)) > 1e-6 or abs(row - round(row)) > 1e-6:
            return None
        return round(col), round(row)  # source origin in grid pixel coordinates

    def read(self, window: Window) -> np.ndarray:
        """Float32 array for ``window`` of the grid, grown by the halo on each side (a band axis first when
        ``band`` is a list)."""
        h = self.halo
        rows, cols = int(window.height) + 2 * h, int(window.width) + 2 * h
        try:
            return self._read(window, rows, cols)
        except (rasterio.errors.RasterioError, rasterio.errors.RasterioIOError) as exc:  # unrelated in 1.3
            raise GridError(f"cannot read {self.path.name}: {_first_line(exc)}; the file is damaged (re-download "
                            "it, or move it out of the folder to run without it)") from None

    def _read(self, window: Window, rows: int, cols: int) -> np.ndarray:
        h = self.halo
        if self._vrt is not None:
            win = Window(window.col_off, window.row_off, cols, rows)  # padded grid coordinates
            data = self._vrt.read(self.band, window=win, out_dtype="float32")
            return data
        # ``band`` may be a list of bands: one read (one decode of a pixel-interleaved file) for all of them.
        out = np.full((rows, cols) if isinstance(self.band, int) else (len(self.band), rows, cols), np.nan,
                      dtype="float32")
        # Window in source pixel coordinates.
        c0 = int(window.col_off) - h - self._offset[0]
        r0 = int(window.row_off) - h - self._offset[1]
        sc0, sr0 = max(c0, 0), max(r0, 0)
        sc1, sr1 = min(c0 + cols, self._src.width), min(r0 + rows, self._src.height)
        if sc1 <= sc0 or sr1 <= sr0:
            return out
        data = self._src.read(self.band, window=Window(sc0, sr0, sc1 - sc0, sr1 - sr0), out_dtype="float32")
        nodata = self._src.nodata
        if nodata is not None and not np.isnan(nodata):
            data[data == nodata] = np.nan
        out[..., sr0 - r0:sr1 - r0, sc0 - c0:sc1 - c0] = data
        return out

    def close(self) -> None:
        if self._vrt is not None:
            self._vrt.close()
        self._src.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


_TO_LINEAR = {
    "linear": lambda x: x,
    "dB": lambda x: np.power(np.float32(10.0), x / np.float32(10.0)),
    "amplitude": lambda x: x * x,
}


class MosaicOnGrid:
    """Reads one polarisation of one acquisition stored in several files (bursts, frames) as one image.

    Each piece is read onto the grid with :class:`RasterOnGrid` and converted to
    **linear power**; where pieces overlap, the result is the **mean of their
    valid values in linear power**; elsewhere the one piece that has data.
    Why the mean in power: overlapping bursts of one acquisition image the same
    ground at the same moment with almost the same geometry, so they are two
    looks of one backscatter; averaging intensities is the unbiased estimate
    (averaging dB is biased low under speckle) and leaves no seam, where
    "first valid piece wins" would draw the burst boundary into every
    ratio.  A piece value is valid when finite and positive; values at or below
    ``noise_floor_db`` (frame-edge noise, -30 dB) count only where no piece
    has a value above it, so a noisy burst edge does not darken its neighbour.

    :meth:`read` returns linear power (:attr:`units` is ``"linear"``), NaN where
    no piece has data; the interface is that of :class:`RasterOnGrid`.
    """

    units = "linear"

    def __init__(self, pieces: Sequence[tuple[str | Path, int, str]], grid: Grid, *, halo: int = 0,
                 resampling: Resampling = Resampling.bilinear, noise_floor_db: float = -30.0):
        if not pieces:
            raise GridError("a mosaic needs at least one file")
        for _, _, units in pieces:
            if units not in _TO_LINEAR:
                raise GridError(f"unknown units {units!r}; expected dB, linear or amplitude")
        self.grid, self.halo = grid, halo
        self.paths = [Path(p) for p, _, _ in pieces]
        self._floor = np.float32(10.0 ** (noise_floor_db / 10.0))
        self._readers: list[tuple[RasterOnGrid, str]] = []
        self._extents: list[tuple[float, float, float, float]] = []  # piece bounds in grid pixels (col0, row0, ...)
        try:
            for path, band, units in pieces:
                self._readers.append((RasterOnGrid(path, band, grid, halo=halo, resampling=resampling), units))
                self._extents.append(self._pixel_extent(path))
        except GridError:
            self.close()
            raise

    def _pixel_extent(self, path: Path) -> tuple[float, float, float, float]:
        """The piece's bounding box in (fractional) grid pixel coordinates, one pixel wider for the resampling."""
        left, bottom, right, top = footprint(path, self.grid.crs)
        t = self.grid.transform
        return ((left - t.c) / t.a - 1, (top - t.f) / t.e - 1, (right - t.c) / t.a + 1, (bottom - t.f) / t.e + 1)

    def _touches(self, extent: tuple, window: Window) -> bool:
        h = self.halo
        c0, r0 = window.col_off - h, window.row_off - h
        c1, r1 = window.col_off + window.width + h, window.row_off + window.height + h
        return extent[0] < c1 and extent[2] > c0 and extent[1] < r1 and extent[3] > r0

    def read(self, window: Window) -> np.ndarray:
        """Float32 linear power for ``window`` of the grid, grown by the halo on each side."""
        h = self.halo
        shape = (int(window.height) + 2 * h, int(window.width) + 2 * h)
        sum_good, n_good = np.zeros(shape, np.float32), np.zeros(shape, np.uint16)
        sum_noise, n_noise = np.zeros(shape, np.float32), np.zeros(shape, np.uint16)
        for (reader, units), extent in zip(self._readers, self._extents):
            if not self._touches(extent, window):
                continue  # a burst far from this block: no read (a large mosaic has dozens)
            with np.errstate(invalid="ignore", over="ignore"):
                power = _TO_LINEAR[units](reader.read(window).astype(np.float32, copy=False))
                good = (power > self._floor) & (power < np.inf)  # NaN compares False: no data is neither
                noise = (power > 0) & (power <= self._floor)
            np.add(sum_good, power, out=sum_good, where=good)
            n_good += good
            np.add(sum_noise, power, out=sum_noise, where=noise)
            n_noise += noise
        with np.errstate(invalid="ignore", divide="ignore"):
            out = np.where(n_good > 0, sum_good / n_good, sum_noise / n_noise)  # 0/0 = NaN: no piece has data
        return out.astype(np.float32, copy=False)

    def close(self) -> None:
        for reader, _ in self._readers:
            reader.close()
        self._readers = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
