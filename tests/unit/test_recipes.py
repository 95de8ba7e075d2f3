"""Composite recipes against hand-built stacks."""

from __future__ import annotations

import numpy as np
import pytest

from landslide_sar_plugin.core.recipes import RECIPES, RecipeError, build_composite, get_recipe

# Three pre dates and two post dates, 1 x 2 pixels; values chosen so every reduction differs.
PRE = {"VV": np.array([[[-8.0, -9.0]], [[-6.0, -7.0]], [[-10.0, -5.0]]]),
       "VH": np.array([[[-14.0, -15.0]], [[-12.0, -13.0]], [[-16.0, -11.0]]])}
POST = {"VV": np.array([[[-11.0, -12.0]], [[-13.0, -10.0]]]),
        "VH": np.array([[[-17.0, -18.0]], [[-19.0, -16.0]]])}
TERRAIN = {"slope": np.array([[30.0, 5.0]]), "aspect": np.array([[90.0, 180.0]]),
           "curvature": np.array([[0.001, -0.002]])}


def build(name, **kw):
    return build_composite(get_recipe(name, **kw), PRE, POST, TERRAIN)


def test_baa_is_pre_median_then_first_and_second_post():
    out = build("BAA")
    np.testing.assert_array_equal(out[0], [[-8.0, -7.0]])   # medians of (-8,-6,-10) and (-9,-7,-5)
    np.testing.assert_array_equal(out[1], POST["VV"][0])
    np.testing.assert_array_equal(out[2], POST["VV"][1])


def test_bah_bac_and_ratioslope():
    bah = build("BAH")
    np.testing.assert_array_equal(bah[2], POST["VH"][0])
    bac = build("BAC")
    np.testing.assert_array_equal(bac[2], [[-11.0 - -8.0, -12.0 - -7.0]])   # post - pre
    rs = build("ratioslope")
    np.testing.assert_array_equal(rs[0], [[-14.0 - -17.0, -13.0 - -18.0]])  # VH pre median - VH first post
    np.testing.assert_array_equal(rs[1], TERRAIN["slope"])


def test_post_reduction_parameter_changes_the_post_band():
    med = build("BA_S", post="median")
    np.testing.assert_array_equal(med[1], [[-12.0, -11.0]])  # median of two = mean
    assert build("BA_S")[1].tolist() == [[-11.0, -12.0]]


def test_ampslope_uses_last_pre_and_first_post_images():
    out = build("ampslope")
    np.testing.assert_array_equal(out[0], PRE["VH"][-1])
    np.testing.assert_array_equal(out[1], POST["VH"][0])
    np.testing.assert_array_equal(out[2], TERRAIN["slope"])


def test_sar4_terrain_has_seven_bands_with_pre_means():
    out = build("SAR4+terrain")
    assert out.shape == (7, 1, 2) and out.dtype == np.float32
    np.testing.assert_allclose(out[0], [[-8.0, -7.0]])     # mean of VV pre
    np.testing.assert_allclose(out[1], [[-14.0, -13.0]])   # mean of VH pre
    np.testing.assert_array_equal(out[6], TERRAIN["curvature"].astype(np.float32))
    assert get_recipe("SAR4+terrain").units() == ["dB"] * 4 + ["deg", "deg", "1/m"]


def test_every_registered_recipe_builds():
    for name, recipe in RECIPES.items():
        out = build_composite(recipe, PRE, POST, TERRAIN)
        assert out.shape == (len(recipe.bands), 1, 2), name
        assert np.isfinite(out).all(), name


def test_missing_inputs_are_named():
    with pytest.raises(RecipeError, match="needs VH before and after"):
        build_composite(get_recipe("BAH"), {"VV": PRE["VV"]}, {"VV": POST["VV"]}, TERRAIN)
    with pytest.raises(RecipeError, match="needs 2 post-event scenes"):
        build_composite(get_recipe("BAA"), PRE, {"VV": POST["VV"][:1]}, TERRAIN)
    with pytest.raises(RecipeError, match="terrain layer"):
        build_composite(get_recipe("BA_S"), PRE, POST, {})
    with pytest.raises(RecipeError, match="unknown composite recipe"):
        get_recipe("RGB")
    with pytest.raises(RecipeError, match="pre reduction"):
        get_recipe("BAA", pre="max")
