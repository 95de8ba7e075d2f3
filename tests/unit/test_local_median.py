"""The km-scale local median of the model's detrended change bands: exact on any block, robust to slides."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from landslide_sar_plugin.core import local_median as lm


def _field(rows, cols, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:rows, 0:cols]
    values = 0.01 * xx - 0.02 * yy + rng.normal(0.0, 1.0, (rows, cols))
    values[rng.random((rows, cols)) < 0.05] = np.nan
    return values.astype(np.float32)


@settings(max_examples=20, deadline=None)
@given(r0=st.integers(0, 60), c0=st.integers(0, 60), h=st.integers(10, 50), w=st.integers(10, 50),
       radius=st.sampled_from([150.0, 300.0, 600.0]), px=st.sampled_from([10.0, 30.0]))
def test_a_window_read_with_the_halo_gives_the_whole_raster_values(r0, c0, h, w, radius, px):
    rows, cols = 130, 140
    full = _field(rows, cols)
    halo = lm.halo_px(radius, px)
    # the raster surrounded by no data, as every read with a halo sees it (RasterOnGrid: NaN outside)
    padded = np.pad(full, halo + 5, constant_values=np.nan)
    whole = lm.local_median(padded, (-halo - 5, -halo - 5), radius, px)[halo + 5:halo + 5 + rows,
                                                                         halo + 5:halo + 5 + cols]
    win = padded[r0 + 5:r0 + 5 + h + 2 * halo, c0 + 5:c0 + 5 + w + 2 * halo]
    got = lm.local_median(win, (r0 - halo, c0 - halo), radius, px)[halo:halo + h, halo:halo + w]
    want = whole[r0:r0 + h, c0:c0 + w]
    ok = np.isfinite(want)
    np.testing.assert_array_equal(got[ok], want[ok])


def test_broad_change_is_removed_and_a_slide_survives():
    rows = cols = 200
    px = 10.0
    yy, xx = np.mgrid[0:rows, 0:cols]
    background = 2.0 * np.sin(xx / 60.0) + 0.01 * yy  # broad, km-scale change of +-2 dB
    values = background.copy()
    values[90:110, 90:110] += 4.0  # a 200 m slide, 4 dB
    out = lm.detrended(values.astype(np.float32), (0, 0), 600.0, px)
    assert np.abs(out[20:60, 20:60]).mean() < 0.35  # the background is gone
    assert out[95:105, 95:105].mean() > 3.0  # the slide is not (the median ignores it)


def test_no_radius_means_no_trend_and_nan_stays_nan():
    v = np.array([[1.0, np.nan], [3.0, 4.0]], np.float32)
    assert (lm.local_median(v, (0, 0), 0.0, 10.0) == 0).all()
    out = lm.detrended(v, (0, 0), 100.0, 10.0)
    assert np.isnan(out[0, 1]) and np.isfinite(out[1, 1])
    assert lm.halo_px(0.0, 10.0) == 0 and lm.halo_px(600.0, 30.0) > 600.0 / 30.0
