"""Cloud-optimised GeoTIFFs written once: streamed overviews, then a byte-level assembly into the COG layout.

GDAL's COG driver only copies: a raster computed block by block would be
written once in a staging file, then read back, its overviews computed into a
temporary file, and everything compressed a second time.  Here instead:

1. :class:`CogWriter` writes each block once, compressed as it will be
   published (tiles of :data:`COG_BLOCK` px), into a plain tiled GeoTIFF, and
   halves the block into each overview level on the fly (NaN-aware 2 x 2 mean,
   or the top-left pixel for classes and counts), each level into its own
   tiled GeoTIFF; the overview levels stop where the image fits in one tile,
   as GDAL's COG driver does.
2. :func:`assemble_cog` writes the final file without decompressing anything:
   the header, GDAL's structural-metadata "ghost area" (``LAYOUT=COG``), all
   image file directories (full resolution first, then the overviews), then
   the compressed tiles, smallest overview first and full resolution last,
   each with GDAL's 4-byte size leader and repeated 4-byte trailer.  Only the
   tile offsets change; every other tag (georeferencing, nodata, band
   descriptions, tags) is copied byte for byte.

The result passes GDAL's ``validate_cloud_optimized_geotiff.py --full-check``
(tested) and reads in GDAL as ``LAYOUT=COG``.
"""

from __future__ import annotations

import errno
import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from rasterio.windows import Window

from .blocks import resolve_workers

COG_BLOCK = 512
# Chosen by measurement (tests/bench/bench_compression.py, README "Performance"): DEFLATE level 1 without
# predictor takes 0.44-0.72x the CPU time of level 6 with the predictor (the old COG setting) for files
# 1.8 % smaller (sample scene) to 3.5 % larger (speckled bench stacks): the floating-point predictor only
# costs time on speckled ratios and makes smooth heatmaps larger. Per raster it pays on the smooth ones:
# the evidence medians 11-12 % smaller and the background change 42-46 % smaller, at 0.90-1.14x the time
# (bench/compression.json, sample and 2048^2), so those two keep it. ZSTD 1 would be 4x faster still, but
# not every GIS reads it; DEFLATE does.
DEFLATE_LEVEL = 1

_TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4, 16: 8, 17: 8, 18: 8}
_TILE_OFFSETS, _TILE_BYTE_COUNTS, _NEW_SUBFILE_TYPE = 324, 325, 254
# Tags an overview directory keeps (structure, sample format, nodata); georeferencing lives in the first.
_OVERVIEW_TAGS = {256, 257, 258, 259, 262, 277, 284, 317, 322, 323, 324, 325, 338, 339, 42113}
_GHOST = ("LAYOUT=IFDS_BEFORE_DATA\nBLOCK_ORDER=ROW_MAJOR\nBLOCK_LEADER=SIZE_AS_UINT4\n"
          "BLOCK_TRAILER=LAST_4_BYTES_REPEATED\nKNOWN_INCOMPATIBLE_EDITION=NO\n ")


def overview_factors(width: int, height: int, block: int = COG_BLOCK) -> list[int]:
    """Overview decimation factors 2, 4, ... until the image fits in one ``block`` (as GDAL's COG driver)."""
    factors, f = [], 1
    while math.ceil(width / f) > block or math.ceil(height / f) > block:
        f *= 2
        factors.append(f)
    return factors


def cog_profile(width: int, height: int, count: int, dtype: str, crs, transform, nodata, *,
                compress: bool = True, threads: int = 1, predictor: int | None = None) -> dict:
    """The GTiff creation profile of a published raster: tiled, DEFLATE at :data:`DEFLATE_LEVEL`, no predictor
    (``compress=False``: the same tiles uncompressed).

    ``threads`` > 1 lets GDAL compress the tiles in that many threads of its own while the caller goes on
    computing (GTiff ``NUM_THREADS``): the bytes written are the same, only their order in the staged file
    changes, and :func:`assemble_cog` puts them in the COG order anyway.  ``predictor`` 3 (floating point)
    is for smooth float rasters (the evidence medians, the background change), see :data:`DEFLATE_LEVEL`.
    """
    profile = {"driver": "GTiff", "width": int(width), "height": int(height), "count": int(count), "dtype": dtype,
               "crs": crs, "transform": transform, "nodata": nodata, "tiled": True, "blockxsize": COG_BLOCK,
               "blockysize": COG_BLOCK, "interleave": "pixel", "BIGTIFF": "IF_SAFER"}
    if compress:
        profile.update(compress="deflate", zlevel=DEFLATE_LEVEL)
        if threads > 1:
            profile["num_threads"] = int(threads)
        if predictor:
            profile["predictor"] = int(predictor)
    return profile


def halve(data: np.ndarray, resampling: str, nodata=None) -> np.ndarray:
    """One overview step of ``(bands, rows, cols)``: 2 x 2 mean ignoring NaN/nodata, or the top-left pixel.

    ``resampling`` is ``"average"`` (float rasters; a 2 x 2 cell without a
    valid value is NaN) or ``"nearest"`` (classes, counts, codes).  Odd edges
    take what is there.
    """
    if resampling != "average" or data.dtype.kind != "f":
        return data[..., ::2, ::2]
    rows, cols = data.shape[-2:]
    pad = ((0, 0),) * (data.ndim - 2) + ((0, rows % 2), (0, cols % 2))
    x = np.pad(data, pad, constant_values=np.nan) if rows % 2 or cols % 2 else data
    valid = np.isfinite(x)
    if nodata is not None and not np.isnan(nodata):
        valid &= x != nodata
    z = np.where(valid, x, x.dtype.type(0))
    total = z[..., 0::2, :] + z[..., 1::2, :]  # pairwise sums on strided views: no reshape reduction
    total = total[..., 0::2] + total[..., 1::2]
    v = valid.view(np.uint8)
    n = v[..., 0::2, :] + v[..., 1::2, :]
    n = n[..., 0::2] + n[..., 1::2]
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (total / n).astype(data.dtype, copy=False)  # 0 / 0 = NaN where a cell has no valid value
    if nodata is not None and not np.isnan(nodata):
        out[n == 0] = nodata
    return out


class CogWriter:
    """A raster written block by block into its final compression, overviews streamed alongside.

    ``path`` is the full-resolution tiled GeoTIFF (readable once closed).
    Overviews can be streamed when every window's offsets are multiples of the
    largest factor (blocks of 1024 px give 10 levels); windows that break this
    switch the writer to building the overviews with GDAL at :meth:`assemble`.
    ``threads``: compression threads (see :func:`cog_profile`); the default is every available core.
    """

    def __init__(self, path: Path, grid, *, count: int, dtype: str, nodata, resampling: str = "average",
                 descriptions=None, tags=None, compress: bool = True, threads: int | None = None,
                 predictor: int | None = None):
        self.path = Path(path)
        self.resampling = resampling
        self.nodata = nodata
        # An uncompressed (intermediate) raster gets no streamed overviews; assemble() still can build them.
        self.factors = overview_factors(grid.width, grid.height)
        profile = cog_profile(grid.width, grid.height, count, dtype, grid.crs, grid.transform, nodata,
                              compress=compress, threads=resolve_workers(threads), predictor=predictor)
        self._profile = profile
        self.dataset = rasterio.open(self.path, "w", **profile)
        if descriptions:
            for i, d in enumerate(descriptions, start=1):
                self.dataset.set_band_description(i, d)
        if tags:
            self.dataset.update_tags(**{k: str(v) for k, v in tags.items()})
        self._levels: list = []
        self.streamed = compress
        for f in (self.factors if compress else []):
            w, h = math.ceil(grid.width / f), math.ceil(grid.height / f)
            level = {**profile, "width": w, "height": h, "transform": grid.transform @ Affine.scale(f)}
            self._levels.append(rasterio.open(self.path.with_name(f"{self.path.stem}.ovr{f}.tif"), "w", **level))

    def write(self, window: Window, data: np.ndarray) -> None:
        arr = data if data.ndim == 3 else data[np.newaxis]
        self.dataset.write(arr, window=window)
        if not (self.streamed and self._levels):
            return
        col, row = int(window.col_off), int(window.row_off)
        if col % self.factors[-1] or row % self.factors[-1]:
            self._stop_streaming()
            return
        piece = arr
        for f, level in zip(self.factors, self._levels):
            piece = halve(piece, self.resampling, self.nodata)
            level.write(piece, window=Window(col // f, row // f, piece.shape[-1], piece.shape[-2]))

    def _stop_streaming(self) -> None:
        for level in self._levels:
            level.close()
            Path(level.name).unlink(missing_ok=True)
        self._levels = []
        self.streamed = False

    def close(self) -> None:
        datasets = [d for d in (self.dataset, *self._levels) if not d.closed]
        for dataset in datasets:
            dataset.close()
        for dataset in datasets:
            check_complete(Path(dataset.name))

    def assemble(self, final: Path) -> Path:
        """Write the COG at ``final`` (no recompression) and delete the staged files."""
        self.close()
        if "compress" not in self._profile:  # an intermediate raster published after all: let GDAL compress it
            from rasterio.shutil import copy

            copy(self.path, final, driver="COG", COMPRESS="DEFLATE", LEVEL=DEFLATE_LEVEL, BLOCKSIZE=COG_BLOCK,
                 OVERVIEW_RESAMPLING=self.resampling.upper(), BIGTIFF="IF_SAFER")
            self.path.unlink(missing_ok=True)
            return final
        if self.streamed:
            overviews = [Path(level.name) for level in self._levels]
        else:
            overviews = []
            self._build_overviews_with_gdal()
        assemble_cog(self.path, overviews, final)
        for p in (self.path, *overviews):
            p.unlink(missing_ok=True)
        return final

    def _build_overviews_with_gdal(self) -> None:
        if not self.factors:
            return
        with rasterio.Env(COMPRESS_OVERVIEW="DEFLATE", ZLEVEL_OVERVIEW=str(DEFLATE_LEVEL),
                          GDAL_TIFF_OVR_BLOCKSIZE=str(COG_BLOCK), INTERLEAVE_OVERVIEW="PIXEL"):
            with rasterio.open(self.path, "r+") as dst:
                dst.build_overviews(self.factors, rasterio.enums.Resampling[self.resampling])


def check_complete(path: Path) -> None:
    """Raise OSError (ENOSPC) unless every tile of the TIFF at ``path`` was written inside the file.

    GDAL writes cached tiles when they leave its block cache or the file is
    closed, and a failure then (a full disk, a file size limit) is only
    logged; rasterio's ``close`` does not raise it.  GDAL writes every tile of
    a new GeoTIFF (``SPARSE_OK`` is off), so a tile with no bytes, or one that
    ends past the end of the file, means a write failed.
    """
    size = path.stat().st_size
    for ifd in _read_ifds(path):
        if any(c == 0 or o + c > size for o, c in zip(ifd.offsets, ifd.counts)):
            raise OSError(errno.ENOSPC, f"{path.name} was not written completely: the disk is full or a file "
                                        "size limit was reached")


# --------------------------------------------------------------------------- TIFF structure


@dataclass
class _Ifd:
    """One image file directory: raw tag values and where its tiles are in its source file."""

    source: Path
    tags: dict  # tag -> (type, count, raw bytes)
    offsets: list[int]
    counts: list[int]


def _read_ifds(path: Path) -> list[_Ifd]:
    """Every IFD of a little- or big-endian TIFF or BigTIFF file."""
    with open(path, "rb") as fh:
        head = fh.read(16)
        if head[:2] != b"II":  # GDAL writes little-endian TIFFs on every platform QGIS runs on
            raise ValueError(f"{path.name} is not a little-endian TIFF file")
        bo = "<"
        magic = struct.unpack(bo + "H", head[2:4])[0]
        big = magic == 43
        offset = struct.unpack(bo + ("Q" if big else "I"), head[8:16] if big else head[4:8])[0]
        ifds = []
        while offset:
            fh.seek(offset)
            n = struct.unpack(bo + ("Q" if big else "H"), fh.read(8 if big else 2))[0]
            entry_fmt, field = (bo + "HHQ8s", 8) if big else (bo + "HHI4s", 4)
            size = struct.calcsize(entry_fmt)
            raw = fh.read(n * size)
            nxt = struct.unpack(bo + ("Q" if big else "I"), fh.read(8 if big else 4))[0]
            tags = {}
            for k in range(n):
                tag, typ, count, value = struct.unpack(entry_fmt, raw[k * size:(k + 1) * size])
                nbytes = _TYPE_SIZES.get(typ, 1) * count
                if nbytes > field:
                    pos = struct.unpack(bo + ("Q" if big else "I"), value)[0]
                    here = fh.tell()
                    fh.seek(pos)
                    data = fh.read(nbytes)
                    fh.seek(here)
                else:
                    data = value[:nbytes]
                tags[tag] = (typ, count, data, bo)
            ifds.append(_Ifd(path, tags, _ints(tags[_TILE_OFFSETS]), _ints(tags[_TILE_BYTE_COUNTS])))
            offset = nxt
    return ifds


def _ints(entry) -> list[int]:
    typ, count, data, bo = entry
    code = {3: "H", 4: "I", 16: "Q"}[typ]
    return list(struct.unpack(f"{bo}{count}{code}", data))


def _overview_ifd(ifd: _Ifd) -> _Ifd:
    tags = {t: v for t, v in ifd.tags.items() if t in _OVERVIEW_TAGS}
    tags[_NEW_SUBFILE_TYPE] = (4, 1, struct.pack("<I", 1), "<")  # reduced-resolution image
    return _Ifd(ifd.source, tags, ifd.offsets, ifd.counts)


def _layout_ifds(ifds: list[_Ifd], start: int, big: bool, tile_offsets: list[list[int]]) -> bytes:
    """All IFDs with their external values, starting at file offset ``start``, chained in order."""
    field = 8 if big else 4
    entry = 20 if big else 12
    blobs, pos = [], start
    sizes = []
    for ifd in ifds:
        n = len(ifd.tags)
        size = (8 if big else 2) + n * entry + field
        ext = sum(_align(len(_payload(ifd, t, big, None)), 8) for t in ifd.tags
                  if len(_payload(ifd, t, big, None)) > field)
        sizes.append(_align(size, 8) + ext)
    for k, (ifd, offsets) in enumerate(zip(ifds, tile_offsets)):
        n = len(ifd.tags)
        head = (8 if big else 2) + n * entry + field
        ext_pos = pos + _align(head, 8)
        entries, externals = [], []
        for tag in sorted(ifd.tags):
            typ, count, _, _ = ifd.tags[tag]
            data = _payload(ifd, tag, big, offsets)
            if tag in (_TILE_OFFSETS, _TILE_BYTE_COUNTS):
                typ, count = (16 if big else 4), len(offsets)
            prefix = struct.pack("<HHQ" if big else "<HHI", tag, typ, count)
            if len(data) > field:
                entries.append(prefix + struct.pack("<Q" if big else "<I", ext_pos))
                externals.append(data + b"\0" * (_align(len(data), 8) - len(data)))
                ext_pos += _align(len(data), 8)
            else:
                entries.append(prefix + data + b"\0" * (field - len(data)))
        nxt = pos + sizes[k] if k + 1 < len(ifds) else 0
        block = struct.pack("<Q" if big else "<H", n) + b"".join(entries) + struct.pack("<Q" if big else "<I", nxt)
        block += b"\0" * (_align(head, 8) - head)
        blob = block + b"".join(externals)
        if len(blob) != sizes[k]:  # the offsets written above assumed this size
            raise RuntimeError(f"TIFF directory {k} is {len(blob)} bytes, {sizes[k]} were laid out")
        blobs.append(blob)
        pos += sizes[k]
    return b"".join(blobs)


def _payload(ifd: _Ifd, tag: int, big: bool, offsets) -> bytes:
    code = "Q" if big else "I"
    if tag == _TILE_OFFSETS:
        vals = offsets if offsets is not None else ifd.offsets
        return struct.pack(f"<{len(vals)}{code}", *vals)
    if tag == _TILE_BYTE_COUNTS:
        return struct.pack(f"<{len(ifd.counts)}{code}", *ifd.counts)
    return ifd.tags[tag][2]


def _align(n: int, to: int) -> int:
    return -(-n // to) * to


def assemble_cog(main: Path, overviews: list[Path], out: Path, *, bigtiff: bool | None = None) -> Path:
    """Copy ``main`` (its first IFD and any overview IFDs after it) plus the first IFD of each file in
    ``overviews`` (largest first) into a cloud-optimised GeoTIFF at ``out``, without recompressing.

    The output is a classic TIFF when it fits in 4 GiB (readable everywhere), else a BigTIFF;
    ``bigtiff=True`` forces BigTIFF.
    """
    main_ifds = _read_ifds(main)
    ifds = [main_ifds[0]] + [_overview_ifd(d) for d in main_ifds[1:]]
    ifds += [_overview_ifd(_read_ifds(p)[0]) for p in overviews]
    ghost = f"GDAL_STRUCTURAL_METADATA_SIZE={len(_GHOST):06d} bytes\n{_GHOST}".encode("ascii")
    data_bytes = sum(c + 8 for d in ifds for c in d.counts if c)
    for big in ((True,) if bigtiff else (False, True)):
        header = 16 if big else 8
        ifd_start = _align(header + len(ghost), 8)
        zero = [[0] * len(d.counts) for d in ifds]
        ifd_size = len(_layout_ifds(ifds, ifd_start, big, zero))
        data_start = ifd_start + ifd_size
        if big or data_start + data_bytes < 2 ** 32 - 1:
            break
    # Tile offsets: smallest overview first, full resolution last; each tile behind its 4-byte size.
    offsets = [[0] * len(d.counts) for d in ifds]
    pos = data_start
    order = list(range(len(ifds)))[::-1]
    for k in order:
        for t, count in enumerate(ifds[k].counts):
            if count:
                offsets[k][t] = pos + 4
                pos += count + 8
    directory = _layout_ifds(ifds, ifd_start, big, offsets)
    tmp = out.with_name(f".{out.name}.partial")
    handles = {}
    try:
        with open(tmp, "wb") as dst:
            if big:
                dst.write(b"II" + struct.pack("<HHHQ", 43, 8, 0, ifd_start))
            else:
                dst.write(b"II" + struct.pack("<HI", 42, ifd_start))
            dst.write(ghost)
            dst.write(b"\0" * (ifd_start - dst.tell()))
            dst.write(directory)
            for k in order:
                ifd = ifds[k]
                src = handles.get(ifd.source) or handles.setdefault(ifd.source, open(ifd.source, "rb"))
                for off, count in zip(ifd.offsets, ifd.counts):
                    if not count:
                        continue
                    src.seek(off)
                    tile = src.read(count)
                    dst.write(struct.pack("<I", count) + tile + tile[-4:].rjust(4, b"\0"))
        os.replace(tmp, out)
    finally:
        for h in handles.values():
            h.close()
        tmp.unlink(missing_ok=True)
    return out
