"""Terrain kernels for the A_ratio masks: slope, aspect, smoothing, curvature.

Pure functions on numpy arrays (no I/O, no QGIS).  They are called block by
block by the raster pipeline, so every function documents the halo a block
needs for its result to equal the whole-array result (:func:`halo_px`).

Conventions shared by all functions
-----------------------------------
* ``dem`` is a 2-D array ``(rows, cols)`` of elevations in **metres** on a
  **projected** grid whose pixel size is in metres (a DEM in a geographic CRS
  must be warped first).  Rows are assumed to run north to south (the usual
  north-up GeoTIFF, ``transform.e < 0``); only :func:`aspect_deg` depends on
  that.
* ``pixel_size_m`` is either one number (square pixels) or ``(dx, dy)``: the
  column spacing then the row spacing, in metres.  Signs are ignored, so
  ``(transform.a, transform.e)`` can be passed as is.
* Missing data are NaN (any non-finite value counts as missing).  Results are
  float64.
* Derivatives use :func:`numpy.gradient`: second-order central differences in
  the interior (``(z[i+1] - z[i-1]) / (2 d)``), first-order one-sided
  differences on the outermost row/column of the array.  This is the
  4-neighbour scheme of Earth Engine's ``ee.Terrain.slope`` and
  ``Image.gradient()``, not the 3x3 Horn (1981) scheme that GDAL's
  ``gdaldem slope`` / the QGIS Slope tool use by default, so values can differ
  slightly from QGIS on rough terrain (they are identical on planes).
* Block processing: give a block the halo returned by :func:`halo_px` on every
  side that lies *inside* the image, and no padding on sides that are the
  image's own border (crop the halo window to the image, as
  ``rasterio.windows.Window.intersection`` does).  Then cropping the block
  result reproduces the whole-array result (to floating-point rounding).
  A pipeline that instead pads blocks with NaN beyond the image (a boundless
  read) gets the whole-array result *of the NaN-padded image*: smoothing is
  unchanged (outside already counts as missing), but slope/aspect become NaN
  on the outermost image row/column and curvature on the outer 2, so the
  terrain mask drops a 1-2 pixel frame around the scene.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Union

import numpy as np
from scipy import ndimage

__all__ = [
    "HANDWERGER_2021",
    "HANDWERGER_2022",
    "pixel_size_xy",
    "gaussian_kernel_1d",
    "gaussian_radius_px",
    "gaussian_smooth",
    "slope_deg",
    "aspect_deg",
    "curvature",
    "halo_px",
    "terrain_mask",
]

PixelSize = Union[float, Sequence[float]]

#: Handwerger et al.'s mask parameters (curvature in 1/m, sign of :func:`curvature`).
#: 2022 slope thresholds vary by case: 5 deg Hiroshima, 10 Hokkaido/Haiti, 12 Vietnam.
HANDWERGER_2021 = {"slope_min_deg": 0.5, "curv_min": -0.005, "sigma_m": 60.0, "radius_m": 120.0}
HANDWERGER_2022 = {"slope_min_deg": 10.0, "curv_min": -0.005, "sigma_m": 30.0, "radius_m": 60.0}


def pixel_size_xy(pixel_size_m: PixelSize) -> tuple[float, float]:
    """``(dx, dy)`` in metres, both positive, from a number or a ``(dx, dy)`` pair."""
    if np.ndim(pixel_size_m) == 0:
        dx = dy = float(pixel_size_m)
    else:
        if len(pixel_size_m) != 2:
            raise ValueError(f"pixel_size_m must be a number or (dx, dy), not {pixel_size_m!r}")
        dx, dy = (float(v) for v in pixel_size_m)
    dx, dy = abs(dx), abs(dy)
    if not (math.isfinite(dx) and math.isfinite(dy) and dx > 0 and dy > 0):
        raise ValueError(f"pixel size must be finite and non-zero, got {pixel_size_m!r}")
    return dx, dy


def _as_2d_float(arr, name: str) -> np.ndarray:
    a = np.asarray(arr, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (rows, cols), got shape {a.shape}")
    return a


def gaussian_radius_px(radius_m: float, pixel_m: float) -> int:
    """Kernel truncation radius in pixels along one axis: ``round(radius_m / pixel_m)``.

    Halves round up (``floor(x + 0.5)``), so 120 m at 10 m gives 12 px and
    60 m at 30 m gives 2 px.  A radius under half a pixel gives 0 (no
    smoothing along that axis).
    """
    if not (math.isfinite(radius_m) and radius_m >= 0):
        raise ValueError(f"radius_m must be finite and >= 0, got {radius_m!r}")
    return int(math.floor(radius_m / pixel_m + 0.5))


def gaussian_kernel_1d(sigma_m: float, radius_m: float, pixel_m: float) -> np.ndarray:
    """Normalised 1-D Gaussian weights ``exp(-x^2 / (2 sigma^2))`` for ``x = k * pixel_m``.

    ``k`` runs over ``-r..r`` with ``r = gaussian_radius_px(radius_m, pixel_m)``;
    the weights sum to 1.  ``sigma_m`` and ``radius_m`` are in metres.
    """
    if not (math.isfinite(sigma_m) and sigma_m > 0):
        raise ValueError(f"sigma_m must be finite and > 0, got {sigma_m!r}")
    r = gaussian_radius_px(radius_m, pixel_m)
    x = np.arange(-r, r + 1, dtype=np.float64) * pixel_m
    w = np.exp(-0.5 * (x / sigma_m) ** 2)
    return w / w.sum()


def gaussian_smooth(arr, sigma_m: float, radius_m: float, pixel_size_m: PixelSize) -> np.ndarray:
    """NaN-aware Gaussian smoothing with sigma and truncation radius in metres.

    The kernel is the separable (square-support) Gaussian of
    :func:`gaussian_kernel_1d` along each axis, truncated at ``radius_m`` and
    normalised to sum 1, like Earth Engine's
    ``ee.Kernel.gaussian(radius, sigma, 'meters')``.  Handwerger et al. use
    radius 120 m / sigma 60 m (2021) and 60 m / 30 m (2022).

    Missing values are handled by normalised convolution: with ``v`` the
    finite-value indicator, the result is ``G*(arr*v) / G*v``, i.e. the
    Gaussian-weighted mean of the finite values inside the kernel.  Outside the
    array counts as missing (no reflection, no padding), so the image border is
    treated exactly like a NaN hole.  Pixels that are NaN in ``arr`` stay NaN
    (holes are not filled), and a hole influences nothing beyond the kernel
    radius.

    Parameters
    ----------
    arr : array_like, shape (rows, cols)
        Values to smooth (any unit; the result has the same unit).
    sigma_m, radius_m : float
        Gaussian standard deviation and truncation radius, metres.
    pixel_size_m : float or (dx, dy)
        Pixel size in metres.

    Returns
    -------
    ndarray of float64, same shape.  Block halo: ``halo_px(..., op="smooth")``.
    """
    a = _as_2d_float(arr, "arr")
    dx, dy = pixel_size_xy(pixel_size_m)
    kx = gaussian_kernel_1d(sigma_m, radius_m, dx)
    ky = gaussian_kernel_1d(sigma_m, radius_m, dy)
    valid = np.isfinite(a)
    num = np.where(valid, a, 0.0)
    den = valid.astype(np.float64)
    for k, axis in ((ky, 0), (kx, 1)):
        num = ndimage.correlate1d(num, k, axis=axis, mode="constant", cval=0.0)
        den = ndimage.correlate1d(den, k, axis=axis, mode="constant", cval=0.0)
    out = np.full(a.shape, np.nan)
    # den > 0 wherever the pixel itself is valid (its own weight is > 0).
    np.divide(num, den, out=out, where=valid)
    return out


def _gradients(z: np.ndarray, dx: float, dy: float) -> tuple[np.ndarray, np.ndarray]:
    """(dz/dcol, dz/drow) in units of z per metre; rows increase downwards."""
    if z.shape[0] < 2 or z.shape[1] < 2:
        raise ValueError(f"need at least 2 rows and 2 columns for derivatives, got shape {z.shape}")
    dz_drow, dz_dcol = np.gradient(z, dy, dx)
    return dz_dcol, dz_drow


def slope_deg(dem, pixel_size_m: PixelSize) -> np.ndarray:
    """Slope angle in degrees, ``atan(|grad z|)``, from central differences.

    Parameters
    ----------
    dem : array_like, shape (rows, cols)
        Elevation in metres (NaN = no data).  At least 2 x 2.
    pixel_size_m : float or (dx, dy)
        Pixel size in metres.

    Returns
    -------
    ndarray of float64 in [0, 90), same shape.  NaN where the DEM is NaN and
    on the (up to 4) neighbours whose central difference uses a NaN pixel.
    A plane rising ``tan(30 deg)`` metres per metre gives 30.0 everywhere.
    Block halo: 1 pixel (``halo_px(..., op="slope")``).
    """
    z = _as_2d_float(dem, "dem")
    dx, dy = pixel_size_xy(pixel_size_m)
    valid = np.isfinite(z)
    gx, gy = _gradients(np.where(valid, z, np.nan), dx, dy)
    out = np.degrees(np.arctan(np.hypot(gx, gy)))
    out[~valid] = np.nan  # its own central difference skips the pixel itself
    return out


def aspect_deg(dem, pixel_size_m: PixelSize) -> np.ndarray:
    """Aspect in degrees clockwise from north of the *downslope* direction.

    0 = the slope faces north (elevation decreases northwards), 90 = east,
    180 = south, 270 = west; values in [0, 360).  Assumes a north-up grid
    (row index increases southwards).  NaN on flat pixels (zero gradient) and
    where :func:`slope_deg` is NaN.  Same differences and halo as
    :func:`slope_deg`.
    """
    z = _as_2d_float(dem, "dem")
    dx, dy = pixel_size_xy(pixel_size_m)
    valid = np.isfinite(z)
    dz_deast, dz_drow = _gradients(np.where(valid, z, np.nan), dx, dy)
    dz_dnorth = -dz_drow
    # Downslope vector is -grad z = (-dz/dE, -dz/dN); azimuth = atan2(east, north).
    az = np.degrees(np.arctan2(-dz_deast, -dz_dnorth)) % 360.0
    flat = (dz_deast == 0) & (dz_dnorth == 0)
    az[flat | ~valid] = np.nan
    return az


def curvature(dem, pixel_size_m: PixelSize, sigma_m: float = 60.0, radius_m: float = 120.0) -> np.ndarray:
    """Laplacian curvature ``d2z/dx2 + d2z/dy2`` (1/m) of the Gaussian-smoothed DEM.

    This reproduces Handwerger et al.'s Earth Engine recipe: smooth the DEM
    with :func:`gaussian_smooth` (``sigma_m``/``radius_m``; 2021: 60/120 m,
    2022: 30/60 m), take the gradient, take the gradient of each component,
    and add ``x_x + y_y``.  Each derivative is :func:`numpy.gradient`, so the
    second derivative in the interior is ``(z[i+2] - 2 z[i] + z[i-2]) / (4 d^2)``,
    exact for quadratic surfaces.

    SIGN CONVENTION (plain Laplacian, no sign flip):

    * concave-up surfaces (bowls, valleys, hollows, channels; ``z = a (x^2 + y^2)``
      with ``a > 0``) have **positive** curvature (``4 a``);
    * convex-up surfaces (domes, hilltops, ridges, spur crests;
      ``z = -a (x^2 + y^2)``) have **negative** curvature (``-4 a``);
    * a plane has 0.

    The sign does not depend on the orientation of the row axis (a second
    derivative is unchanged by ``y -> -y``).  This is the geomorphology
    convention of hillslope curvature (``C_ht = laplacian(z) < 0`` on hilltops).
    It is the *opposite* of the ArcGIS / QGIS-SAGA "Curvature" convention
    (positive = convex), so a curvature raster from those tools must be negated
    (and ArcGIS's is in 1/100 m) before using Handwerger's ``-0.005`` threshold.

    Returns float64 (1/m), same shape.  NaN where the DEM is NaN and at
    pixels 2 rows or 2 columns away from such a pixel (the chained central
    differences reach them).  The outermost 2 rows/columns of the *image* use
    one-sided differences and are less accurate.  Block halo:
    ``halo_px(sigma_m, radius_m, pixel_size_m)`` (kernel radius + 2).
    """
    z = _as_2d_float(dem, "dem")
    dx, dy = pixel_size_xy(pixel_size_m)
    zs = gaussian_smooth(z, sigma_m, radius_m, (dx, dy))
    gx, gy = _gradients(zs, dx, dy)
    gxx, _ = _gradients(gx, dx, dy)
    _, gyy = _gradients(gy, dx, dy)
    out = gxx + gyy
    out[~np.isfinite(z)] = np.nan
    return out


def halo_px(sigma_m: float, radius_m: float, pixel_size_m: PixelSize, *, op: str = "curvature") -> int:
    """Halo (pixels, same on every side) a block needs for exact block-wise results.

    ``op``:

    * ``"smooth"``: :func:`gaussian_smooth` -> kernel radius ``r`` (pixels);
    * ``"slope"``: :func:`slope_deg` / :func:`aspect_deg` -> 1 (sigma/radius ignored);
    * ``"curvature"`` (default): :func:`curvature` -> ``r + 2`` (two chained
      central differences).  This is the largest, so a block read with it
      serves all three.

    ``r = gaussian_radius_px(radius_m, d)`` for the smaller pixel dimension
    ``d`` (one number for both axes).  ``sigma_m`` does not change the halo
    (the truncation radius does); it is validated and accepted so callers pass
    the same triple as to :func:`curvature`.
    """
    dx, dy = pixel_size_xy(pixel_size_m)
    if op == "slope":
        return 1
    gaussian_kernel_1d(sigma_m, radius_m, min(dx, dy))  # validation only
    r = max(gaussian_radius_px(radius_m, dx), gaussian_radius_px(radius_m, dy))
    if op == "smooth":
        return r
    if op == "curvature":
        return r + 2
    raise ValueError(f"op must be 'smooth', 'slope' or 'curvature', not {op!r}")


def terrain_mask(
    slope,
    curv,
    *,
    slope_min_deg: float | None,
    curv_min: float | None,
    water=None,
) -> np.ndarray:
    """Boolean keep-mask ``slope >= slope_min_deg & curv >= curv_min & ~water``.

    Parameters
    ----------
    slope : array_like or None
        Slope in degrees (:func:`slope_deg`).  ``None`` (or ``slope_min_deg``
        None) skips the slope test.  Handwerger et al.: 0.5 deg (2021),
        5-12 deg (2022).
    curv : array_like or None
        Laplacian curvature in 1/m with the sign convention of
        :func:`curvature` (bowl/valley > 0, dome/ridge < 0).  ``None`` (or
        ``curv_min`` None) skips the curvature test.
    slope_min_deg, curv_min : float or None
        Keyword-only thresholds; both comparisons are inclusive (``>=``).
    water : array_like of bool, optional
        True where there is water (excluded).  Non-boolean input is cast with
        ``astype(bool)`` (non-zero and NaN count as water).

    Returns
    -------
    ndarray of bool: True = keep.  NaN slope or curvature -> False.

    What ``curv >= -0.005`` (Handwerger's value, 1/m) keeps
    -------------------------------------------------------
    With the plain Laplacian, negative = convex.  The test therefore **removes
    strongly convex terrain** (hilltops, ridge crests, spur noses of the
    smoothed DEM) and keeps everything planar, mildly convex or concave
    (valleys, hollows, channels).  For scale: a dome ``z = -r^2 / (2R)`` has
    Laplacian ``-2/R`` and a cylindrical ridge ``-1/R``, so with -0.005 a dome
    is removed when its radius of curvature is under 400 m and a ridge when it
    is under 200 m (after smoothing with sigma 30-60 m, which flattens smaller
    features).  The claim "the curvature mask removes strongly convex
    ridges/hilltops" is correct under this convention; with the ArcGIS sign
    (positive = convex) the same number would instead remove concave hollows,
    which is why the sign must be fixed and tested.

    Comment/code mismatch in Handwerger et al.'s Earth Engine scripts: the
    comment says "Exclude areas with hillslope curvature > curv_threshold",
    but the code keeps ``curvature >= curv_threshold`` (i.e. it excludes
    curvature *below* -0.005).  We follow the **code**: keep ``>=``.
    """
    shape = None
    keep = None
    with np.errstate(invalid="ignore"):
        if slope is not None and slope_min_deg is not None:
            s = np.asarray(slope, dtype=np.float64)
            keep = s >= slope_min_deg
            shape = s.shape
        if curv is not None and curv_min is not None:
            c = np.asarray(curv, dtype=np.float64)
            if shape is not None and c.shape != shape:
                raise ValueError(f"slope {shape} and curvature {c.shape} shapes differ")
            ck = c >= curv_min
            keep = ck if keep is None else keep & ck
            shape = c.shape
    if water is not None:
        w = np.asarray(water).astype(bool)
        if keep is None:
            keep = ~w
        else:
            if w.shape != keep.shape:
                raise ValueError(f"water mask shape {w.shape} differs from {keep.shape}")
            keep = keep & ~w
    if keep is None:
        raise ValueError("terrain_mask needs at least one of slope, curvature or water")
    return keep
