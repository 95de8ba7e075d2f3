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


# --------------------------------------------------------------------------- the fast median (issue 15)

_VALUES = st.one_of(st.just(np.nan), st.sampled_from([-12.5, -7.0, 0.0, 3.25]), st.floats(-40, 10, width=32))


@settings(max_examples=300, deadline=None)
@given(hnp.arrays(np.float32, st.tuples(st.integers(1, 40), st.integers(1, 4), st.integers(1, 4)), elements=_VALUES))
def test_network_median_equals_nanmedian_with_ties_and_all_nan_pixels(stack):
    """Up to 40 dates (network below 33, sort above), ties from a small value set, NaN anywhere."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        expected = np.nanmedian(stack.astype(np.float64), axis=0)
    med, count = composite.median_and_count(stack)
    np.testing.assert_allclose(med, expected, rtol=1e-6, atol=1e-5)
    np.testing.assert_array_equal(np.isnan(med), np.isnan(stack).all(axis=0))
    np.testing.assert_array_equal(count, np.isfinite(stack).sum(axis=0))
    # bit for bit what the sort median gave, so outputs of earlier runs do not move
    np.testing.assert_array_equal(med, composite.sort_nan_median(stack))


def test_every_pixel_nan_and_every_pixel_tied():
    stack = np.full((6, 3, 3), np.nan, np.float32)
    med, count = composite.median_and_count(stack)
    assert np.isnan(med).all() and (count == 0).all()
    tied = np.full((6, 3, 3), -7.5, np.float32)
    assert (composite.nan_median(tied) == -7.5).all()


def test_infinite_values_count_as_missing():
    stack = np.array([[[np.inf]], [[1.0]], [[-np.inf]], [[3.0]]], np.float32)
    med, count = composite.median_and_count(stack)
    assert med[0, 0] == 2.0 and count[0, 0] == 2


@pytest.mark.parametrize("n", range(1, 13))
def test_sorting_network_sorts_every_zero_one_input(n):
    """The 0-1 principle: a comparator network that sorts every 0/1 input sorts everything."""
    import itertools

    net = composite.sorting_network(n)
    for bits in itertools.product((0, 1), repeat=n):
        v = list(bits)
        for i, j in net:
            if v[i] > v[j]:
                v[i], v[j] = v[j], v[i]
        assert v == sorted(v), (n, bits)


def test_sorting_network_sizes():
    assert [len(composite.sorting_network(n)) for n in (2, 3, 4, 5, 8, 16)] == [1, 3, 5, 9, 19, 63]


def test_median_in_place_memory_does_not_grow_with_the_dates():
    """With overwrite_input the stack's own memory is reordered: the extra memory is a few rows whatever the
    number of dates (a copy of a 16-date stack would be 12 rows more than one of 4 dates)."""
    import tracemalloc

    rng = np.random.default_rng(1)
    peaks = {}
    for n in (4, 16):
        stack = rng.normal(-12, 3, (n, 256, 256)).astype(np.float32)
        stack[0][rng.random((256, 256)) < 0.3] = np.nan  # the same share of incomplete pixels at any depth
        expected = composite.sort_nan_median(stack)
        tracemalloc.start()
        med, _ = composite.median_and_count(stack, overwrite_input=True)
        peaks[n] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        np.testing.assert_array_equal(med, expected)
    row_bytes = 256 * 256 * 4
    assert peaks[16] - peaks[4] < 3 * row_bytes, (peaks, row_bytes)
    assert peaks[16] < 10 * row_bytes


@pytest.mark.parametrize("units", ["dB", "linear", "amplitude"])
def test_stack_db_into_equals_to_db_then_edge_noise(units):
    rng = np.random.default_rng(2)
    raw = rng.uniform(-0.01, 0.2, (3, 5, 7)).astype(np.float32)
    raw[0, 0, 0], raw[1, 1, 1], raw[2, 2, 2] = np.nan, np.inf, -np.inf
    if units == "dB":
        raw = raw * 200 - 35
    out = np.empty_like(raw)
    got = composite.stack_db_into(out, ((r, units) for r in raw))
    assert got is out
    expected = np.stack([composite.mask_edge_noise(composite.to_db(r, units)) for r in raw])
    np.testing.assert_array_equal(got, expected)
    with pytest.raises(ValueError, match="2 readings for a stack of 3"):
        composite.stack_db_into(out, ((r, units) for r in raw[:2]))
