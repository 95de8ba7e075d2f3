"""A small PNG encoder (standard library + numpy), so previews need no imaging library."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import numpy as np

from .raster_io import atomic_output


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def encode_png(image: np.ndarray) -> bytes:
    """Encode a ``(rows, cols, 3)`` RGB or ``(rows, cols, 4)`` RGBA uint8 array as PNG bytes."""
    img = np.asarray(image)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] not in (3, 4):
        raise ValueError(f"expected a uint8 (rows, cols, 3|4) array, got {img.dtype} {img.shape}")
    rows, cols, channels = img.shape
    color_type = 2 if channels == 3 else 6
    # Filter type 0 (None) per scanline: simple and deterministic.
    raw = np.concatenate([np.zeros((rows, 1), np.uint8), img.reshape(rows, cols * channels)], axis=1)
    header = struct.pack(">IIBBBBB", cols, rows, 8, color_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(raw.tobytes(), 6))
        + _chunk(b"IEND", b"")
    )


def write_png(path: str | os.PathLike, image: np.ndarray) -> Path:
    """Write ``image`` as a PNG file, atomically."""
    with atomic_output(path) as tmp:
        tmp.write_bytes(encode_png(image))
    return Path(path)
