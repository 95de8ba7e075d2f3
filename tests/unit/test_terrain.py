"""Terrain kernels: slope, aspect, NaN-aware Gaussian smoothing, curvature sign, halo, mask."""

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from landslide_sar_plugin.core import terrain
from landslide_sar_plugin.core.terrain import (
    aspect_deg,
    curvature,
    gaussian_kernel_1d,
    gaussian_smooth,
    halo_px,
    pixel_size_xy,
    slope_deg,
    terrain_mask,
)


def grid(rows, cols, dx, dy):
    """x east (m) along columns, y north (m): rows run north -> south."""
    x = np.arange(cols) * dx
    y = -np.arange(rows) * dy
    return np.meshgrid(x, y)


def blockwise(func, arr, block, halo):
    """Apply ``func`` per block with ``halo`` (clipped at the image border) and stitch."""
    rows, cols = arr.shape
    out = np.full(arr.shape, np.nan)
    for r0 in range(0, rows, block[0]):
        for c0 in range(0, cols, block[1]):
            r1, c1 = min(r0 + block[0], rows), min(c0 + block[1], cols)
            R0, C0 = max(r0 - halo, 0), max(c0 - halo, 0)
            R1, C1 = min(r1 + halo, rows), min(c1 + halo, cols)
            res = func(arr[R0:R1, C0:C1])
            out[r0:r1, c0:c1] = res[r0 - R0 : r1 - R0, c0 - C0 : c1 - C0]
    return out


# ---------------------------------------------------------------- pixel size


def test_pixel_size_forms():
    assert pixel_size_xy(10) == (10.0, 10.0)
    assert pixel_size_xy((10, -20)) == (10.0, 20.0)  # (transform.a, transform.e)
    with pytest.raises(ValueError):
        pixel_size_xy(0)
    with pytest.raises(ValueError):
        pixel_size_xy((1, 2, 3))


# ---------------------------------------------------------------- slope / aspect


@pytest.mark.parametrize("pixel", [10.0, (10.0, 30.0), (30.0, 5.0)])
@pytest.mark.parametrize("direction", ["east", "north", "diagonal"])
def test_30_degree_plane_gives_30(pixel, direction):
    dx, dy = pixel_size_xy(pixel)
    x, y = grid(12, 9, dx, dy)
    t = math.tan(math.radians(30))
    if direction == "east":
        z = 100 + t * x
    elif direction == "north":
        z = 100 + t * y
    else:
        z = 100 + t * (x + y) / math.sqrt(2)
    s = slope_deg(z, pixel)
    np.testing.assert_allclose(s, 30.0, atol=1e-9)  # everywhere, edges included (plane)


def test_flat_is_zero_and_steep_plane():
    assert np.all(slope_deg(np.full((4, 5), 7.0), 10) == 0)
    x, _ = grid(4, 5, 10, 10)
    np.testing.assert_allclose(slope_deg(x * 1.0, 10), 45.0, atol=1e-12)  # 1 m per m


def test_slope_nan_propagates_only_to_4_neighbours():
    x, y = grid(7, 7, 10, 10)
    z = 0.3 * x + 0.1 * y
    z[3, 3] = np.nan
    s = slope_deg(z, 10)
    nan = np.isnan(s)
    expected = np.zeros_like(nan)
    expected[3, 3] = expected[2, 3] = expected[4, 3] = expected[3, 2] = expected[3, 4] = True
    assert np.array_equal(nan, expected)


def test_slope_needs_2x2():
    with pytest.raises(ValueError):
        slope_deg(np.zeros((1, 5)), 10)
    with pytest.raises(ValueError):
        slope_deg(np.zeros(5), 10)


@pytest.mark.parametrize(
    "zfun, expected",
    [
        (lambda x, y: -x, 90.0),  # lower to the east -> faces east
        (lambda x, y: x, 270.0),  # faces west
        (lambda x, y: -y, 0.0),  # lower to the north -> faces north
        (lambda x, y: y, 180.0),  # faces south
        (lambda x, y: -x - y, 45.0),  # faces north-east
    ],
)
def test_aspect_directions(zfun, expected):
    x, y = grid(5, 6, 10, 10)
    a = aspect_deg(zfun(x, y) * 0.2, 10)
    np.testing.assert_allclose(a, expected, atol=1e-9)


def test_aspect_flat_is_nan():
    assert np.all(np.isnan(aspect_deg(np.zeros((3, 3)), 10)))


# ---------------------------------------------------------------- Gaussian smoothing


def test_kernel_radius_and_normalisation():
    k = gaussian_kernel_1d(60, 120, 10)
    assert k.shape == (25,)  # 12 px each side
    assert math.isclose(k.sum(), 1.0, rel_tol=1e-15)
    np.testing.assert_array_equal(k, k[::-1])
    assert gaussian_kernel_1d(30, 60, 30).shape == (5,)  # 2022 parameters on a 30 m DEM
    assert gaussian_kernel_1d(30, 10, 30).shape == (1,)  # radius < half a pixel: identity
    with pytest.raises(ValueError):
        gaussian_kernel_1d(0, 60, 10)
    with pytest.raises(ValueError):
        gaussian_kernel_1d(10, -1, 10)


def test_impulse_response_is_the_hand_computed_kernel():
    # pixel 10 m, sigma 10 m, radius 10 m -> 1-D weights [e^-1/2, 1, e^-1/2] / sum.
    w = np.array([math.exp(-0.5), 1.0, math.exp(-0.5)])
    w /= w.sum()
    a = np.zeros((7, 7))
    a[3, 3] = 1.0
    # Away from the border the denominator is 1, so the result is the kernel itself.
    out = gaussian_smooth(a, 10, 10, 10)
    np.testing.assert_allclose(out[2:5, 2:5], np.outer(w, w), rtol=1e-14)
    assert np.all(out[:2] == 0) and np.all(out[:, 5:] == 0)


def test_anisotropic_pixels_use_metres():
    # dx = 10 m, dy = 20 m, radius 20 m: 2 px along x, 1 px along y.
    a = np.zeros((9, 9))
    a[4, 4] = 1.0
    out = gaussian_smooth(a, 15, 20, (10, 20))
    support = out > 0
    assert np.array_equal(np.argwhere(support.any(axis=1)).ravel(), [3, 4, 5])
    assert np.array_equal(np.argwhere(support.any(axis=0)).ravel(), [2, 3, 4, 5, 6])


def test_constant_stays_constant_at_borders_and_next_to_holes():
    a = np.full((10, 12), 5.0)
    a[4:6, 4:6] = np.nan
    out = gaussian_smooth(a, 60, 120, 30)
    assert np.array_equal(np.isnan(out), np.isnan(a))  # holes stay holes, nothing else NaN
    np.testing.assert_allclose(out[~np.isnan(a)], 5.0, rtol=1e-14)


def test_nan_hole_does_not_spread_beyond_kernel():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(30, 30))
    b = a.copy()
    b[15, 15] = np.nan
    r = 3  # radius 30 m at 10 m
    oa, ob = gaussian_smooth(a, 20, 30, 10), gaussian_smooth(b, 20, 30, 10)
    far = np.ones(a.shape, bool)
    far[15 - r : 15 + r + 1, 15 - r : 15 + r + 1] = False
    np.testing.assert_array_equal(oa[far], ob[far])
    assert np.isnan(ob[15, 15]) and np.isfinite(ob[14, 15])
    assert oa[14, 15] != ob[14, 15]


# ---------------------------------------------------------------- curvature sign


@pytest.mark.parametrize("pixel", [10.0, (10.0, 20.0)])
@pytest.mark.parametrize("a_coef", [0.001, -0.001, 0.0025, -0.0025])
def test_curvature_bowl_positive_dome_negative(pixel, a_coef):
    """z = a (x^2 + y^2): Laplacian 4a. Bowl (a > 0) positive, dome (a < 0) negative."""
    dx, dy = pixel_size_xy(pixel)
    x, y = grid(60, 60, dx, dy)
    x, y = x - x.mean(), y - y.mean()
    z = 500 + a_coef * (x**2 + y**2)
    sigma, radius = 30, 60
    c = curvature(z, pixel, sigma_m=sigma, radius_m=radius)
    h = halo_px(sigma, radius, pixel)
    np.testing.assert_allclose(c[h:-h, h:-h], 4 * a_coef, rtol=1e-7)
    assert np.sign(c[30, 30]) == np.sign(a_coef)


def test_curvature_units_are_per_metre_and_default_parameters():
    # A valley (trough along y): z = a x^2 -> laplacian 2a, independent of pixel size.
    for px in (5.0, 30.0):
        x, y = grid(80, 80, px, px)
        z = 0.002 * (x - x.mean()) ** 2
        c = curvature(z, px)  # 2021 defaults sigma 60 m, radius 120 m
        h = halo_px(60, 120, px)
        np.testing.assert_allclose(c[h:-h, h:-h], 0.004, rtol=1e-7)


def test_plane_has_zero_curvature():
    x, y = grid(30, 30, 10, 10)
    c = curvature(0.3 * x - 0.2 * y + 50, 10, sigma_m=20, radius_m=40)
    h = halo_px(20, 40, 10)
    np.testing.assert_allclose(c[h:-h, h:-h], 0.0, atol=1e-12)


# ---------------------------------------------------------------- halo


def test_halo_values():
    assert halo_px(60, 120, 10) == 14  # 12 + 2
    assert halo_px(30, 60, 30) == 4
    assert halo_px(60, 120, 10, op="smooth") == 12
    assert halo_px(60, 120, 10, op="slope") == 1
    assert halo_px(30, 60, (10, 30)) == 8  # the finer axis decides
    with pytest.raises(ValueError):
        halo_px(30, 60, 10, op="bogus")


def _random_dem(seed, shape, nan_frac):
    rng = np.random.default_rng(seed)
    z = np.cumsum(np.cumsum(rng.normal(size=shape), axis=0), axis=1) + 1000
    if nan_frac:
        z[rng.random(shape) < nan_frac] = np.nan
    return z


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    rows=st.integers(2, 40),
    cols=st.integers(2, 40),
    brows=st.integers(1, 17),
    bcols=st.integers(1, 17),
    pixel=st.sampled_from([10.0, 30.0, (10.0, 20.0)]),
    params=st.sampled_from([(60, 120), (30, 60), (20, 50)]),
    nan_frac=st.sampled_from([0.0, 0.02, 0.2]),
)
def test_blockwise_equals_whole(seed, rows, cols, brows, bcols, pixel, params, nan_frac):
    z = _random_dem(seed, (rows, cols), nan_frac)
    sigma, radius = params
    cases = [
        (lambda a: gaussian_smooth(a, sigma, radius, pixel), halo_px(sigma, radius, pixel, op="smooth"), 1e-9),
        (lambda a: slope_deg(a, pixel), halo_px(sigma, radius, pixel, op="slope"), 1e-9),
        (lambda a: curvature(a, pixel, sigma, radius), halo_px(sigma, radius, pixel), 1e-12),
    ]
    for func, h, atol in cases:
        # A block thinner than 2 px cannot be differentiated on its own; the
        # halo always makes it at least 2 px unless the image itself is that thin.
        whole = func(z)
        parts = blockwise(func, z, (brows, bcols), h)
        np.testing.assert_array_equal(np.isnan(parts), np.isnan(whole))
        np.testing.assert_allclose(parts, whole, rtol=0, atol=atol, equal_nan=True)


def test_curvature_halo_is_tight():
    """One pixel less halo than halo_px breaks block-wise equality (so the helper is not padded)."""
    z = _random_dem(1, (60, 60), 0.0)
    sigma, radius, pixel = 30, 60, 10
    h = halo_px(sigma, radius, pixel)
    whole = curvature(z, pixel, sigma, radius)
    func = lambda a: curvature(a, pixel, sigma, radius)  # noqa: E731
    assert np.allclose(blockwise(func, z, (20, 20), h), whole, rtol=0, atol=1e-12)
    assert not np.allclose(blockwise(func, z, (20, 20), h - 1), whole, rtol=0, atol=1e-6)


# ---------------------------------------------------------------- mask


def test_terrain_mask_by_hand():
    slope = np.array([[0.4, 0.5, 10.0, np.nan], [20.0, 20.0, 20.0, 20.0]])
    curv = np.array([[0.0, 0.0, 0.0, 0.0], [-0.0051, -0.005, 0.01, np.nan]])
    water = np.array([[False, False, True, False], [False, False, False, False]])
    keep = terrain_mask(slope, curv, slope_min_deg=0.5, curv_min=-0.005, water=water)
    expected = np.array([[False, True, False, False], [False, True, True, False]])
    np.testing.assert_array_equal(keep, expected)
    assert keep.dtype == bool


def test_terrain_mask_optional_parts():
    slope = np.array([[1.0, 10.0, np.nan]])
    np.testing.assert_array_equal(terrain_mask(slope, None, slope_min_deg=5, curv_min=-0.005), [[False, True, False]])
    curv = np.array([[-1.0, 0.0, np.nan]])
    np.testing.assert_array_equal(terrain_mask(None, curv, slope_min_deg=None, curv_min=-0.005), [[False, True, False]])
    np.testing.assert_array_equal(
        terrain_mask(None, None, slope_min_deg=None, curv_min=None, water=np.array([[1, 0, 0]])), [[False, True, True]]
    )
    with pytest.raises(ValueError):
        terrain_mask(None, None, slope_min_deg=None, curv_min=None)
    with pytest.raises(ValueError):
        terrain_mask(slope, np.zeros((2, 2)), slope_min_deg=5, curv_min=0)


def test_handwerger_threshold_removes_sharp_hilltops_keeps_valleys():
    """Sign check end to end: curv >= -0.005 drops a sharp dome, keeps the same-shaped bowl."""
    x, y = grid(60, 60, 10, 10)
    r2 = (x - x.mean()) ** 2 + (y - y.mean()) ** 2
    a = 0.002  # |laplacian| = 0.008 > 0.005
    for z, kept in ((500 - a * r2, False), (500 + a * r2, True), (500 - 0.0005 * r2, True)):
        c = curvature(z, 10, sigma_m=30, radius_m=60)
        keep = terrain_mask(None, c, slope_min_deg=None, curv_min=-0.005)
        assert keep[30, 30] == kept


def test_core_does_not_import_qgis():
    import re

    src = open(terrain.__file__, encoding="utf-8").read()
    assert not re.search(r"^\s*(import|from)\s+(qgis|PyQt\d?|qgis\.PyQt)\b", src, re.M)
