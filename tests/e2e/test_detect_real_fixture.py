"""End to end: the detect command on the shipped REAL OPERA RTC-S1 fixture (two bursts of track 137, no event).

The scenes are REAL backscatter (tests/fixtures/opera_rtc_s1_t137, see its README); the DEM is SYNTHETIC
(a flat plane written here, because the fixture ships no DEM), so the slope mask is switched off
(``--slope-min off``).  Nothing here asserts detection quality or a false-alarm rate: there is no event in
these stacks, and the A_ratio defaults are being re-chosen on real data elsewhere (issue 10).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from landslide_sar_plugin import cli

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "opera_rtc_s1_t137"
EVENT = "2023-11-25T00:00Z"  # between the 2023-11-21 and 2023-12-03 acquisitions
pytestmark = pytest.mark.slow


def synthetic_flat_dem(path: Path) -> Path:
    """A SYNTHETIC flat DEM (500 m) at 30 m in UTM 11N covering both fixture bursts."""
    x0, y0, px = 239_000.0, 3_854_000.0, 30.0
    width, height = int((245_500 - x0) / px), int((y0 - 3_831_500) / px)
    with rasterio.open(path, "w", driver="GTiff", width=width, height=height, count=1, dtype="float32",
                       crs="EPSG:32611", transform=from_origin(x0, y0, px, px)) as dst:
        dst.write(np.full((1, height, width), 500.0, np.float32))
        dst.update_tags(SYNTHETIC="flat test DEM, not real terrain")
    return path


@pytest.fixture
def vh_only(tmp_path):
    """The fixture's VH files only (a VH-only stack, as many OPERA downloads are) and a synthetic DEM."""
    folder = tmp_path / "scenes"
    folder.mkdir()
    for path in FIXTURE.glob("T137-*/*_VH.tif"):  # both bursts (one sub-folder each) in one scene folder
        shutil.copy(path, folder / path.name)
    return folder, synthetic_flat_dem(tmp_path / "dem.tif")


def detect(capsys, scenes, dem, out, *extra):
    code = cli.main(["detect", "--scenes", str(scenes), "--dem", str(dem), "--event", EVENT, "--slope-min", "off",
                     "--out", str(out), *extra])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_vh_only_a_ratio_run_on_real_opera_bursts(vh_only, tmp_path, capsys):
    scenes, dem = vh_only
    out = tmp_path / "out"
    code, printed, err = detect(capsys, scenes, dem, out)
    assert code == 0, err
    assert (out / "candidates.gpkg").is_file() and (out / "a_ratio.tif").is_file()
    run = json.loads((out / "run.json").read_text())
    assert run["synthetic_input"] is False
    # 21 dates, each ONE scene of the two bursts (not 42 dates); every file read as OPERA RTC-S1.
    assert len(run["inputs"]["scenes"]) == 21 and run["inputs"]["skipped"] == []
    for s in run["inputs"]["scenes"]:
        assert s["bursts"] == ["T137-292320-IW2", "T137-292321-IW2"] and s["pieces"] == {"VH": 2}
        assert s["polarisations"] == ["VH"] and s["relative_orbit"] == 137 and s["orbit_pass"] == "ASCENDING"
        assert len(s["file_products"]) == 2 and set(s["file_products"].values()) == {"OPERA RTC-S1"}
    (pre,) = run["stacks"]["pre"]
    (post,) = run["stacks"]["post"]
    # 90 days before 2023-11-25: 2023-10-04, -16, -28, 11-09, 11-21; 30 days after: 12-03, 12-15.
    assert len(pre["dates"]) == 5 and len(post["dates"]) == 2
    # Not given: the grid keeps the products' 30 m (it used to be upsampled to 10 m).
    assert run["grid"]["pixel_size_m"] == 30.0 and run["parameters"]["pixel_size"] is None
    assert run["grid"]["pixel_size_reason"].startswith("not given: the finest input resolution (30 m, OPERA_L2")
    # Both bursts' footprints: x 239250..245070, y 3832110..3853590 -> 194 x 716 px of 30 m.
    assert (run["grid"]["width"], run["grid"]["height"]) == (194, 716)
    with rasterio.open(out / "counts.tif") as src:
        counts = src.read()
    assert counts[0].max() == 5 and counts[1].max() == 2  # every date of both bursts reached the stacks
    assert "OPERA RTC-S1; bursts T137-292320-IW2, T137-292321-IW2" in printed
    assert "grid: 194 x 716 px at 30 m (not given: the finest input resolution" in printed


@pytest.mark.parametrize("polarisation", ["VV", "both"])
def test_vv_on_a_vh_only_stack_is_one_clear_sentence(vh_only, tmp_path, capsys, polarisation):
    scenes, dem = vh_only
    out = tmp_path / "out"
    code, _, err = detect(capsys, scenes, dem, out, "--polarisation", polarisation)
    assert code == 1
    line = err.strip().splitlines()[-1]
    assert "none holds VV: choose a polarisation they hold (--polarisation VH" in line
    assert "Traceback" not in err and (not out.exists() or list(out.iterdir()) == [])


def test_given_pixel_size_wins_and_coarser_products_are_named(vh_only, tmp_path, capsys):
    scenes, dem = vh_only
    out = tmp_path / "out"
    code, _, err = detect(capsys, scenes, dem, out, "--pixel-size", "15")
    assert code == 0, err
    run = json.loads((out / "run.json").read_text())
    assert run["grid"]["pixel_size_m"] == 15.0 and run["grid"]["pixel_size_reason"] == "given by the user"
    (w,) = [w for w in run["warnings"] if "resampled" in w]
    # The 7 selected dates x 2 bursts = 14 files: three named, "and 11 more".
    assert "and 11 more: 30 m pixels, not the grid's 15 m; resampled (bilinear) onto the grid" in w


def test_a_product_of_another_resolution_is_named_and_resampled(vh_only, tmp_path, capsys):
    scenes, dem = vh_only
    # Replace one REAL file by its 2 x 2 block mean at 60 m (as if a 60 m product had been mixed in).
    (victim,) = scenes.glob("*T137-292320-IW2_20231121*_VH.tif")
    with rasterio.open(victim) as src:
        data, profile = src.read(1), src.profile
    coarse = data.reshape(50, 2, 50, 2).mean(axis=(1, 3)).astype(np.float32)
    victim.unlink()
    name = victim.name.replace("_30_v1.0", "_60_v1.0")
    t = profile["transform"]
    with rasterio.open(scenes / name, "w", **dict(profile, width=50, height=50,
                                                   transform=from_origin(t.c, t.f, 60.0, 60.0))) as dst:
        dst.write(coarse, 1)
    out = tmp_path / "out"
    code, _, err = detect(capsys, scenes, dem, out)
    assert code == 0, err
    run = json.loads((out / "run.json").read_text())
    assert run["grid"]["pixel_size_m"] == 30.0  # the finest input, not the odd one out
    assert f"{name}: 60 m pixels, not the grid's 30 m; resampled (bilinear) onto the grid" in run["warnings"]
