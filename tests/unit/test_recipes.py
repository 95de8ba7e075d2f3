"""Composite recipes against hand-built stacks."""

from __future__ import annotations

import numpy as np
import pytest

from landslide_sar_plugin.core import local_median
from landslide_sar_plugin.core.composite import nan_median
from landslide_sar_plugin.core.recipes import (
    RECIPES,
    RecipeError,
    assemble_joint,
    build_composite,
    build_pass_bands,
    composite_valid,
    get_recipe,
)

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
        if recipe.joint_passes:
            block = build_pass_bands(recipe, PRE, POST, pixel_size=10.0)
            out = assemble_joint(recipe, {"ASCENDING": block, "DESCENDING": block}, TERRAIN, (1, 2))
        else:
            out = build_composite(recipe, PRE, POST, TERRAIN, pixel_size=10.0)
        assert out.shape == (len(recipe.bands), 1, 2), name
        assert np.isfinite(out).all(), name


def test_detrended_ratio_is_the_ratio_minus_its_local_median():
    rng = np.random.default_rng(1)
    pre = {"VH": (-15.0 + rng.normal(0, 1, (3, 40, 40))).astype(np.float32)}
    post = {"VH": (pre["VH"][:2] - 2.0).astype(np.float32)}  # a scene-wide 2 dB drop: date-specific, not a slide
    post["VH"][:, 10:14, 10:14] -= 5.0  # a slide
    recipe = get_recipe("DCHANGE", detrend_radius_m=200.0)
    bands = build_pass_bands(recipe, pre, post, pixel_size=10.0)
    tokens = recipe.pass_tokens()
    raw = nan_median(pre["VH"]) - nan_median(post["VH"])
    d = bands[tokens.index("dratio_VH")]
    np.testing.assert_allclose(d, raw - local_median.local_median(raw, (0, 0), 200.0, 10.0), atol=1e-5)
    assert abs(np.median(d)) < 0.3 < 1.5 < abs(np.median(raw))  # the scene-wide drop is gone
    assert d[10:14, 10:14].mean() > 4.0  # the slide stays


def test_a_single_polarisation_stack_gives_flags_not_an_error():
    recipe = get_recipe("DCHANGE")
    assert recipe.optional_polarisations() and recipe.polarisations() == ("VH", "VV")
    bands = build_pass_bands(recipe, {"VH": PRE["VH"]}, {"VH": POST["VH"]}, pixel_size=10.0)
    t = recipe.pass_tokens()
    assert (bands[t.index("avail_VH")] == 1).all() and (bands[t.index("avail_VV")] == 0).all()
    assert np.isnan(bands[t.index("dratio_VV")]).all() and np.isfinite(bands[t.index("dratio_VH")]).all()
    with pytest.raises(RecipeError, match="needs VH or VV"):
        build_pass_bands(recipe, {}, {}, pixel_size=10.0)


def test_joint_recipe_layout_missing_pass_and_validity():
    recipe = get_recipe("DCHANGE2P")
    assert recipe.bands[:6] == tuple(f"ASC.{t}" for t in recipe.pass_tokens()) and recipe.bands[-1] == "slope"
    assert recipe.units()[recipe.bands.index("ASC.avail_VH")] == "1"
    block = build_pass_bands(recipe, PRE, POST, pixel_size=10.0)
    out = assemble_joint(recipe, {"ASCENDING": block}, TERRAIN, (1, 2))
    dsc = [i for i, b in enumerate(recipe.bands) if b.startswith("DSC.")]
    flags = [i for i in dsc if ".avail_" in recipe.bands[i]]
    assert (out[flags] == 0).all() and np.isnan(out[[i for i in dsc if i not in flags]]).all()
    assert composite_valid(recipe, out).all()  # one pass is enough
    out[recipe.bands.index("ASC.avail_VH")] = 0
    out[recipe.bands.index("ASC.avail_VV")] = 0
    assert not composite_valid(recipe, out).any()  # no pass left: not predicted
    with pytest.raises(RecipeError, match="joins both orbit passes"):
        build_composite(recipe, PRE, POST, TERRAIN, pixel_size=10.0)


def test_malformed_joint_recipes_are_refused():
    from landslide_sar_plugin.core.recipes import Recipe, validate_recipe

    with pytest.raises(RecipeError, match="pass prefix"):
        validate_recipe(Recipe("x", ("ASC.ratio_VH", "slope")))
    with pytest.raises(RecipeError, match="positive detrend radius"):
        validate_recipe(Recipe("x", ("dratio_VH",)))
    with pytest.raises(RecipeError, match="ASC block, the DSC block"):
        validate_recipe(Recipe("x", ("DSC.ratio_VH", "ASC.ratio_VH"), joint_passes=True))


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
