"""The output grid and block-wise reading of any input raster onto it.

The grid is the area of interest (AOI) in a projected CRS (by default the UTM
zone of the AOI centre) at a chosen pixel size, snapped to whole multiples of
the pixel size so that runs over overlapping AOIs share one pixel lattice.

Inputs of any CRS, resolution and extent are brought onto the grid one window
at a time: a source already on the grid's lattice is read directly (a window
copy); any other is warped through a GDAL warped VRT with bilinear resampling,
which reads only the source pixels that the window needs.  Memory therefore
depends on the block size, never on the scene size.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.vrt import WarpedVRT
from rasterio.warp import transform_bounds
from rasterio.windows import Window


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
        return {
            "crs": self.crs.to_string(),
            "transform": list(self.transform)[:6],
            "width": self.width,
            "height": self.height,
            "pixel_size_m": self.pixel_size,
            "bounds": list(self.bounds),
        }


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


def parse_aoi(text: str) -> Aoi:
    """Parse ``xmin,ymin,xmax,ymax[,CRS]`` (CRS default EPSG:4326) or a polygon file (GeoPackage/GeoJSON)."""
    path = Path(text)
    if path.suffix.lower() in (".gpkg", ".geojson", ".json") or path.is_file():
        return _aoi_from_file(path)
    parts = [p.strip() for p in text.split(",")]
    if len(parts) not in (4, 5):
        raise GridError(
            f"--aoi {text!r}: give xmin,ymin,xmax,ymax[,CRS] (e.g. 141.9,42.6,142.1,42.8 or "
            "500000,4700000,510000,4710000,EPSG:32654) or a polygon file (.gpkg, .geojson)"
        )
    try:
        xmin, ymin, xmax, ymax = (float(p) for p in parts[:4])
    except ValueError:
        raise GridError(f"--aoi {text!r}: the four bounds must be numbers") from None
    crs = CRS.from_user_input(parts[4]) if len(parts) == 5 else CRS.from_epsg(4326)
    return Aoi((xmin, ymin, xmax, ymax), crs, None, text)


def _aoi_from_file(path: Path) -> Aoi:
    if not path.is_file():
        raise GridError(f"AOI file {path} does not exist")
    if path.suffix.lower() == ".gpkg":
        from .gpkg import read_features

        features, crs_text = read_features(path)
        geoms = [f.geometry for f in features if f.geometry]
        crs = CRS.from_user_input(crs_text) if crs_text else CRS.from_epsg(4326)
    else:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise GridError(f"AOI file {path} is not GeoJSON ({exc})") from None
        if not isinstance(data, dict):
            raise GridError(f"AOI file {path} is not a GeoJSON object (FeatureCollection, Feature or Polygon)")
        feats = data.get("features", [data]) if data.get("type") == "FeatureCollection" else [data]
        geoms = [f.get("geometry", f) for f in feats]
        geoms = [g for g in geoms if g and g.get("type") in ("Polygon", "MultiPolygon")]
        crs_name = (data.get("crs") or {}).get("properties", {}).get("name")
        crs = CRS.from_user_input(crs_name) if crs_name else CRS.from_epsg(4326)
    if not geoms:
        raise GridError(f"AOI file {path} holds no polygon")
    xs, ys = [], []
    for g in geoms:
        polys = [g["coordinates"]] if g["type"] == "Polygon" else g["coordinates"]
        for poly in polys:
            for x, y, *_ in poly[0]:
                xs.append(x)
                ys.append(y)
    return Aoi((min(xs), min(ys), max(xs), max(ys)), crs, geoms, str(path))


def footprint(path: str | Path, crs) -> tuple[float, float, float, float]:
    """Bounds of a raster file in ``crs``."""
    with rasterio.open(path) as src:
        if src.crs is None:
            raise GridError(f"{Path(path).name} has no coordinate reference system")
        return transform_bounds(src.crs, CRS.from_user_input(crs), *src.bounds, densify_pts=21)


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
            raise GridError(f"cannot read {self.path.name}: {str(exc).splitlines()[0]}") from None
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
        """Float32 array for ``window`` of the grid, grown by the halo on each side."""
        h = self.halo
        rows, cols = int(window.height) + 2 * h, int(window.width) + 2 * h
        if self._vrt is not None:
            win = Window(window.col_off, window.row_off, cols, rows)  # padded grid coordinates
            data = self._vrt.read(self.band, window=win, out_dtype="float32")
            return data
        out = np.full((rows, cols), np.nan, dtype="float32")
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
        out[sr0 - r0:sr1 - r0, sc0 - c0:sc1 - c0] = data
        return out

    def close(self) -> None:
        if self._vrt is not None:
            self._vrt.close()
        self._src.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
