"""Byte-budgeted, cached, retrying tiled downloads of Earth Engine images onto a :class:`~..grid.Grid`.

``ee.data.computePixels`` answers at most 48 MiB per request, and the server
counts one mask byte per pixel on top of the band bytes::

    bytes(tile) = width * height * (bands * dtype_size + 1)

:func:`tile_side` picks the largest square tile (a multiple of 256 pixels) under
the budget; a tile the server still refuses as too large is split in four,
recursively.  Quota and transient errors (429, 5xx, "Too many concurrent",
"Computation timed out") are retried with exponential backoff.  Every tile is
cached under ``sha256(serialized expression + tile grid + bands + format)``, so a
repeated run downloads nothing.  Tiles are written into a staged GeoTIFF and
converted to one COG only when all tiles arrived; a cancel or failure leaves no
file behind.

All server traffic goes through a *transport* with two methods,
``compute_pixels(request) -> ndarray | bytes`` and ``get_info(ee_object) ->
value``; tests replace only that.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rasterio.windows import Window

from ..grid import Grid
from ..staging import Cancelled, Progress, StagedRaster
from .auth import EarthEngineError, import_ee, redact

log = logging.getLogger(__name__)

REQUEST_LIMIT_BYTES = 48 * 1024 * 1024  # computePixels / getDownloadURL per-request limit
MAX_TILE_DIM = 32768  # computePixels grid dimension limit
TILE_MULTIPLE = 256
NODATA_SENTINEL = -32768.0  # masked pixels are unmasked to this server-side, NaN locally
CACHE_VERSION = 1

_SIZE_ERROR = re.compile(r"total request size|request payload size|must be less than or equal to|too large|"
                         r"user memory limit exceeded|response size exceeds", re.I)
_TRANSIENT = re.compile(r"\b(429|500|502|503|504)\b|too many concurrent|computation timed out|quota|rate limit|"
                        r"internal error|service unavailable|backend error|deadline exceeded|temporar|"
                        r"connection reset|try again", re.I)


# --------------------------------------------------------------------------- budget arithmetic


def bytes_per_pixel(n_bands: int, dtype_size: int = 4) -> int:
    """Bytes the server counts per pixel: every band plus one mask byte."""
    return n_bands * dtype_size + 1


def tile_bytes(width: int, height: int, n_bands: int, dtype_size: int = 4) -> int:
    return width * height * bytes_per_pixel(n_bands, dtype_size)


def tile_side(n_bands: int, dtype_size: int = 4, budget: int = REQUEST_LIMIT_BYTES, multiple: int = TILE_MULTIPLE,
              max_side: int = MAX_TILE_DIM) -> int:
    """Largest square tile side (a multiple of ``multiple`` when possible) with ``tile_bytes <= budget``."""
    max_px = budget // bytes_per_pixel(n_bands, dtype_size)
    if max_px < 1:
        raise ValueError(f"a budget of {budget} bytes cannot hold one pixel of {n_bands} bands")
    side = math.isqrt(max_px)
    if side >= multiple:
        side -= side % multiple
    return max(1, min(side, max_side))


def plan_tiles(grid: Grid, n_bands: int, dtype_size: int = 4, budget: int = REQUEST_LIMIT_BYTES) -> list[Window]:
    """Row-major tiles covering ``grid``, each under ``budget`` bytes."""
    return list(grid.blocks(tile_side(n_bands, dtype_size, budget)))


def split_window(w: Window) -> list[Window]:
    """A window cut into (up to) four quadrants."""
    c, r, width, height = int(w.col_off), int(w.row_off), int(w.width), int(w.height)
    w1, h1 = max(1, width // 2), max(1, height // 2)
    parts = []
    for rr, hh in ((r, h1), (r + h1, height - h1)):
        for cc, ww in ((c, w1), (c + w1, width - w1)):
            if hh > 0 and ww > 0:
                parts.append(Window(cc, rr, ww, hh))
    return parts


def request_grid(grid: Grid, window: Window) -> dict:
    """The computePixels ``grid`` (PixelGrid) of one tile of ``grid``."""
    t = grid.window_transform(window)
    out = {"dimensions": {"width": int(window.width), "height": int(window.height)},
           "affineTransform": {"scaleX": t.a, "shearX": t.b, "translateX": t.c,
                               "shearY": t.d, "scaleY": t.e, "translateY": t.f}}
    epsg = grid.crs.to_epsg()
    if epsg:
        out["crsCode"] = f"EPSG:{epsg}"
    else:
        out["crsWkt"] = grid.crs.to_wkt()
    return out


# --------------------------------------------------------------------------- transport


class EarthEngineTransport:
    """The real transport: ``ee.data.computePixels`` and ``getInfo`` (needs an initialised ``ee``)."""

    def compute_pixels(self, request: dict):
        ee = import_ee()
        return ee.data.computePixels(request)

    def get_info(self, obj):
        return obj.getInfo()


def serialize(obj) -> str:
    """Canonical JSON of an Earth Engine object (what the server receives)."""
    ee = import_ee()
    return json.dumps(ee.serializer.encode(obj, for_cloud_api=True), sort_keys=True, separators=(",", ":"))


# --------------------------------------------------------------------------- cache


class TileCache:
    """Content-addressed store of downloaded tiles (``.npy``) and listing answers (``.json``)."""

    def __init__(self, root: str | os.PathLike | None):
        self.root = Path(root) if root else None
        if self.root:
            self.root.mkdir(parents=True, exist_ok=True)

    @staticmethod
    def key(*parts) -> str:
        h = hashlib.sha256()
        for p in parts:
            h.update(json.dumps(p, sort_keys=True, default=str).encode("utf-8"))
            h.update(b"\x00")
        return h.hexdigest()

    def _path(self, key: str, suffix: str) -> Path:
        return self.root / key[:2] / f"{key}{suffix}"

    def get_array(self, key: str) -> np.ndarray | None:
        if not self.root:
            return None
        p = self._path(key, ".npy")
        if not p.is_file():
            return None
        try:
            return np.load(p, allow_pickle=False)
        except (OSError, ValueError):
            p.unlink(missing_ok=True)  # a damaged entry is downloaded again
            return None

    def put_array(self, key: str, arr: np.ndarray) -> None:
        if self.root:
            self._atomic(self._path(key, ".npy"), lambda fh: np.save(fh, arr, allow_pickle=False))

    def get_json(self, key: str):
        if not self.root:
            return None
        p = self._path(key, ".json")
        try:
            return json.loads(p.read_text(encoding="utf-8"))["value"] if p.is_file() else None
        except (OSError, ValueError, KeyError):
            return None

    def put_json(self, key: str, value) -> None:
        if self.root:
            self._atomic(self._path(key, ".json"),
                         lambda fh: fh.write(json.dumps({"value": value}).encode("utf-8")))

    def is_split(self, key: str) -> bool:
        return bool(self.root) and self._path(key, ".split").is_file()

    def mark_split(self, key: str) -> None:
        if self.root:
            self._atomic(self._path(key, ".split"), lambda fh: fh.write(b"split"))

    @staticmethod
    def _atomic(path: Path, write: Callable) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.partial")
        try:
            with open(tmp, "wb") as fh:
                write(fh)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)


# --------------------------------------------------------------------------- retry


@dataclass
class RetryPolicy:
    max_retries: int = 6
    base_s: float = 2.0
    max_s: float = 120.0
    sleep: Callable[[float], None] = time.sleep

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt`` (0-based): base * 2**attempt, capped."""
        return min(self.max_s, self.base_s * (2 ** attempt))


def is_size_error(exc: BaseException) -> bool:
    return bool(_SIZE_ERROR.search(str(exc)))


def is_transient(exc: BaseException) -> bool:
    status = getattr(getattr(exc, "resp", None), "status", None) or getattr(exc, "status_code", None)
    if status in (429, 500, 502, 503, 504):
        return True
    return not is_size_error(exc) and bool(_TRANSIENT.search(f"{type(exc).__name__}: {exc}"))


def call_with_retry(fn: Callable, policy: RetryPolicy, what: str, check_cancel: Callable[[], None] | None = None,
                    on_retry: Callable[[], None] | None = None):
    """``fn()``, retried on transient errors with exponential backoff; other errors propagate."""
    attempt = 0
    while True:
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001
            if not is_transient(exc) or attempt >= policy.max_retries:
                raise
            wait = policy.delay(attempt)
            log.warning("Earth Engine %s: %s; retrying in %.0f s (%d of %d)", what,
                        redact(str(exc))[:200], wait, attempt + 1, policy.max_retries)
            policy.sleep(wait)
            attempt += 1
            if on_retry is not None:
                on_retry()
            if check_cancel is not None:
                check_cancel()


# --------------------------------------------------------------------------- fetching


@dataclass
class DownloadStats:
    tiles: int = 0
    requests: int = 0
    cache_hits: int = 0
    splits: int = 0
    retries: int = 0
    bytes: int = 0
    expression_sha256: str = ""

    def add(self, other: DownloadStats) -> None:
        for k in ("tiles", "requests", "cache_hits", "splits", "retries", "bytes"):
            setattr(self, k, getattr(self, k) + getattr(other, k))


def decode_pixels(data, bands: list[str], width: int, height: int) -> np.ndarray:
    """computePixels answer (structured NUMPY_NDARRAY or GeoTIFF bytes) -> float32 ``(bands, h, w)``, NaN masked."""
    if isinstance(data, (bytes, bytearray)):
        from rasterio.io import MemoryFile

        with MemoryFile(bytes(data)) as mem, mem.open() as src:
            arr = src.read(out_dtype="float32")
            nodata = src.nodata
        if nodata is not None and not np.isnan(nodata):
            arr[arr == nodata] = np.nan
    else:
        a = np.asarray(data)
        if a.dtype.names:
            missing = [b for b in bands if b not in a.dtype.names]
            if missing:
                raise EarthEngineError(f"Earth Engine returned bands {list(a.dtype.names)}, not {bands}", "download")
            arr = np.stack([a[b].astype(np.float32) for b in bands])
        else:
            arr = a.astype(np.float32)
            if arr.ndim == 2:
                arr = arr[np.newaxis]
            elif arr.ndim == 3 and arr.shape[0] != len(bands):
                arr = np.moveaxis(arr, -1, 0)
    if arr.shape != (len(bands), height, width):
        raise EarthEngineError(f"Earth Engine returned a tile of shape {arr.shape}, expected "
                               f"{(len(bands), height, width)}", "download")
    arr[arr <= NODATA_SENTINEL + 0.5] = np.nan
    return arr


def _bump(stats: DownloadStats) -> None:
    stats.retries += 1


def _check_cancel(prog: Progress) -> None:
    is_cancelled = getattr(prog, "_is_cancelled", None)
    if is_cancelled is not None and is_cancelled():
        raise Cancelled("cancelled by the user")


class Fetcher:
    """Downloads one image's bands on a grid, tile by tile (see the module docstring)."""

    def __init__(self, transport, cache: TileCache, *, budget: int = REQUEST_LIMIT_BYTES,
                 retry: RetryPolicy | None = None, file_format: str = "NUMPY_NDARRAY"):
        self.transport = transport
        self.cache = cache
        self.budget = budget
        self.retry = retry or RetryPolicy()
        self.file_format = file_format

    def fetch(self, image, bands: list[str], grid: Grid, out_path: Path, prog: Progress, *, label: str,
              descriptions: list[str] | None = None, dtype: str = "float32", nodata=float("nan"),
              tags: dict | None = None, resampling: str = "average") -> DownloadStats:
        """Download ``bands`` of ``image`` on ``grid`` into the COG ``out_path``.

        ``image`` must already carry masked pixels as :data:`NODATA_SENTINEL`
        (see ``graph.for_download``).  Progress and cancel are checked per tile.
        """
        expr = serialize(image)
        stats = DownloadStats(expression_sha256=hashlib.sha256(expr.encode()).hexdigest())
        tiles = plan_tiles(grid, len(bands), 4, self.budget)
        stats.tiles = len(tiles)
        staging = out_path.parent / f".partial-download-{uuid.uuid4().hex[:8]}"
        staging.mkdir(parents=True)
        try:
            raster = StagedRaster(staging, out_path.stem, grid, count=len(bands), dtype=dtype, nodata=nodata,
                                  descriptions=descriptions or bands, tags=tags, resampling=resampling)
            try:
                for i, win in enumerate(tiles):
                    prog(i / len(tiles), f"downloading {label}: tile {i + 1} of {len(tiles)}")
                    arr = self._tile(image, expr, bands, grid, win, stats, prog)
                    if np.dtype(dtype).kind != "f":
                        arr = np.where(np.isfinite(arr), arr, 0)
                    raster.write(win, arr.astype(dtype))
                prog(1.0, f"downloaded {label}")
            finally:
                raster.close()
            cog = raster.to_cog(staging / out_path.name)
            os.replace(cog, out_path)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return stats

    def _tile(self, image, expr: str, bands, grid: Grid, win: Window, stats: DownloadStats, prog: Progress):
        rgrid = request_grid(grid, win)
        key = TileCache.key("computePixels", CACHE_VERSION, expr, rgrid, list(bands), self.file_format)
        cached = self.cache.get_array(key)
        if cached is not None:
            stats.cache_hits += 1
            return cached
        w, h = int(win.width), int(win.height)
        if not self.cache.is_split(key):
            request = {"expression": image, "fileFormat": self.file_format, "grid": rgrid, "bandIds": list(bands)}
            failure = None
            try:
                data = call_with_retry(lambda: self._counted(request, stats), self.retry, "download",
                                       lambda: _check_cancel(prog), lambda: _bump(stats))
            except Exception as exc:  # noqa: BLE001
                failure = exc
            if failure is None:
                arr = decode_pixels(data, list(bands), w, h)
                stats.bytes += tile_bytes(w, h, len(bands))
                self.cache.put_array(key, arr)
                return arr
            if not is_size_error(failure) or (w == 1 and h == 1):
                message = (f"Earth Engine download failed for a {w} x {h} tile: {type(failure).__name__}: "
                           f"{failure}")
                raise EarthEngineError(message, "download")
            log.info("tile %dx%d too large for one request; splitting in four", w, h)
            stats.splits += 1
            self.cache.mark_split(key)
        arr = np.full((len(bands), h, w), np.nan, np.float32)
        for part in split_window(win):
            sub = self._tile(image, expr, bands, grid, part, stats, prog)
            r0, c0 = int(part.row_off - win.row_off), int(part.col_off - win.col_off)
            arr[:, r0:r0 + int(part.height), c0:c0 + int(part.width)] = sub
        return arr

    def _counted(self, request, stats: DownloadStats):
        stats.requests += 1
        return self.transport.compute_pixels(request)


def cached_get_info(transport, cache: TileCache, obj, *, cacheable: bool, policy: RetryPolicy | None = None):
    """``transport.get_info(obj)`` with retry, cached under the serialized expression when ``cacheable``."""
    key = TileCache.key("getInfo", CACHE_VERSION, serialize(obj))
    if cacheable:
        hit = cache.get_json(key)
        if hit is not None:
            return hit
    failure = None
    try:
        value = call_with_retry(lambda: transport.get_info(obj), policy or RetryPolicy(), "listing")
    except EarthEngineError:
        raise
    except Exception as exc:  # noqa: BLE001
        failure = f"Earth Engine listing failed: {type(exc).__name__}: {exc}"
    if failure:
        raise EarthEngineError(failure, "download")
    if cacheable:
        cache.put_json(key, value)
    return value
