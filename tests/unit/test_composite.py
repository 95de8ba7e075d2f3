"""Composite and ratio kernels against hand computations and numpy references."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from landslide_sar_plugin.core import composite


def test_nan_median_hand_computed_with_nans():
    stack = np.array([
        [[1.0, np.nan], [5.0, np.nan]],
        [[3.0, 2.0], [np.nan, np.nan]],
        [[2.0, 4.0], [7.0, np.nan]],
        [[10.0, np.nan], [np.nan, np.nan]],
    ], dtype=np.float32)
    med = composite.nan_median(stack)
    # pixel (0,0): 1,3,2,10 -> (2+3)/2; (0,1): 2,4 -> 3; (1,0): 5,7 -> 6; (1,1): no value -> NaN
    np.testing.assert_array_equal(med[0], [2.5, 3.0])
    assert med[1, 0] == 6.0 and np.isnan(med[1, 1])


@settings(max_examples=150, deadline=None)
@given(hnp.arrays(np.float32, st.tuples(st.integers(1, 9), st.integers(1, 5), st.integers(1, 5)),
                  elements=st.one_of(st.just(np.nan), st.floats(-40, 10, width=32))))
def test_nan_median_equals_numpy_nanmedian(stack):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        expected = np.nanmedian(stack.astype(np.float64), axis=0)
    np.testing.assert_allclose(composite.nan_median(stack), expected, rtol=1e-6, atol=1e-5)


def test_valid_count_counts_finite_dates():
    stack = np.array([[[1, np.nan]], [[np.nan, np.nan]], [[3, np.inf]]], dtype=np.float32)
    np.testing.assert_array_equal(composite.valid_count(stack), [[2, 0]])


def test_ratio_sign_is_positive_when_backscatter_drops():
    pre = np.array([[-10.0]], np.float32)
    post = np.array([[-14.0]], np.float32)
    assert composite.log_ratio(pre, post)[0, 0] == pytest.approx(4.0)


def test_to_db_linear_power_and_amplitude():
    lin = np.array([1.0, 0.1, 0.01, 0.0, -1.0], np.float32)
    db = composite.to_db(lin, "linear")
    np.testing.assert_allclose(db[:3], [0.0, -10.0, -20.0], atol=1e-5)
    assert np.isnan(db[3]) and np.isnan(db[4])
    np.testing.assert_allclose(composite.to_db(np.array([0.1], np.float32), "amplitude"), [-20.0], atol=1e-5)
    assert composite.to_db(np.array([-7.5], np.float32), "dB")[0] == -7.5
    with pytest.raises(ValueError, match="unknown units"):
        composite.to_db(lin, "furlongs")


def test_edge_noise_at_or_below_minus_30_db_is_masked():
    db = np.array([-35.0, -30.0, -29.99, -5.0, np.inf], np.float32)
    out = composite.mask_edge_noise(db)
    assert np.isnan(out[0]) and np.isnan(out[1]) and np.isnan(out[4])
    assert out[2] == pytest.approx(-29.99) and out[3] == -5.0


def test_pass_averaging_uses_the_available_pass_where_one_is_missing():
    asc = np.array([[2.0, np.nan, 1.0, np.nan]], np.float32)
    desc = np.array([[4.0, 3.0, np.nan, np.nan]], np.float32)
    avg = composite.mean_of_available([asc, desc])
    np.testing.assert_array_equal(avg[0, :3], [3.0, 3.0, 1.0])
    assert np.isnan(avg[0, 3])
