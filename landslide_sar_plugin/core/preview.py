"""A quick-look PNG of a run: A_ratio in a diverging palette, candidates and truth outlined.

Colours: A_ratio from blue (backscatter rose, -5 dB) through white (0) to red
(backscatter dropped, +5 dB); masked or empty pixels dark grey; candidate
polygons outlined in yellow; reference (truth) landslides outlined in cyan.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from rasterio.enums import Resampling
from rasterio.features import rasterize
from scipy import ndimage

from .gpkg import read_features
from .grid import compose
from .png import write_png

CANDIDATE_RGB = (255, 221, 0)
TRUTH_RGB = (0, 230, 255)
MASKED_RGB = (60, 60, 60)


def diverging_rgb(values: np.ndarray, vmin: float = -5.0, vmax: float = 5.0) -> np.ndarray:
    """Blue-white-red colours for ``values`` (NaN -> dark grey), uint8 ``(rows, cols, 3)``."""
    t = np.clip((np.nan_to_num(values, nan=0.0) - vmin) / (vmax - vmin), 0, 1) * 2 - 1  # -1..1
    rgb = np.empty(values.shape + (3,), np.float32)
    neg, pos = np.clip(-t, 0, 1), np.clip(t, 0, 1)
    rgb[..., 0] = 255 * (1 - neg * 0.85)
    rgb[..., 1] = 255 * (1 - np.maximum(neg, pos) * 0.85)
    rgb[..., 2] = 255 * (1 - pos * 0.85)
    out = rgb.astype(np.uint8)
    out[~np.isfinite(values)] = MASKED_RGB
    return out


def _outline(mask: np.ndarray) -> np.ndarray:
    return mask & ~ndimage.binary_erosion(mask, structure=np.ones((3, 3), bool), border_value=0)


def _truth_on(path: Path, shape, transform, crs) -> np.ndarray:
    if path.suffix.lower() == ".gpkg":
        feats, _ = read_features(path)
        geoms = [f.geometry for f in feats if f.geometry]
        if not geoms:
            return np.zeros(shape, bool)
        return rasterize(geoms, out_shape=shape, transform=transform, fill=0, default_value=1).astype(bool)
    with rasterio.open(path) as src:
        from rasterio.vrt import WarpedVRT

        with WarpedVRT(src, crs=crs, transform=transform, width=shape[1], height=shape[0],
                       resampling=Resampling.max) as vrt:
            return vrt.read(1) > 0


def render_preview(
    ratio_path: str | os.PathLike,
    out_png: str | os.PathLike,
    *,
    candidates_path: str | os.PathLike | None = None,
    truth_path: str | os.PathLike | None = None,
    max_size: int = 1200,
    vmin: float = -5.0,
    vmax: float = 5.0,
) -> Path:
    """Write the quick-look PNG; the image is at most ``max_size`` pixels on its long side."""
    with rasterio.open(ratio_path) as src:
        scale = max(1.0, max(src.width, src.height) / max_size)
        shape = (max(1, round(src.height / scale)), max(1, round(src.width / scale)))
        ratio = src.read(1, out_shape=shape, resampling=Resampling.average if scale > 1 else Resampling.nearest)
        transform = compose(src.transform, Affine.scale(src.width / shape[1], src.height / shape[0]))
        crs = src.crs
    img = diverging_rgb(ratio.astype(np.float32), vmin, vmax)
    if truth_path is not None:
        img[_outline(_truth_on(Path(truth_path), shape, transform, crs))] = TRUTH_RGB
    if candidates_path is not None:
        feats, _ = read_features(candidates_path)
        geoms = [f.geometry for f in feats if f.geometry]
        if geoms:
            cand = rasterize(geoms, out_shape=shape, transform=transform, fill=0, default_value=1,
                             all_touched=True).astype(bool)
            img[_outline(cand)] = CANDIDATE_RGB
    return write_png(out_png, img)
