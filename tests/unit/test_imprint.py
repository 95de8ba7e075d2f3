"""Real-background cases (core/simulate/imprint.py) on the shipped REAL OPERA RTC-S1 fixture."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio

from landslide_sar_plugin.core.simulate import imprint
from tests.real_fixture import real_burst_dir

BURST = "T137-292320-IW2"


@pytest.fixture(scope="module")
def stack():
    return imprint.read_opera_burst(real_burst_dir(BURST))


def _read(path):
    with rasterio.open(path) as src:
        return src.read(1), src.tags()


def test_the_burst_is_read_from_its_file_names(stack):
    assert stack.burst == BURST and stack.track == 137
    assert len(stack.dates) == 21 and stack.polarisations == ["VH", "VV"]
    assert stack.pixel_size == 30.0 and stack.shape == (100, 100)


def test_a_no_change_case_keeps_every_real_value(stack, tmp_path):
    spec = imprint.CaseSpec("nc", BURST, ("2023-10-04", "2023-10-16"), ("2023-10-28",), "report")
    case = imprint.write_case(spec, stack, tmp_path / "nc")
    assert case.truth_mask is None and case.n_slides == 0
    files = sorted(case.scenes_dir.glob("*.tif"))
    assert len(files) == 6
    for f in files:
        values, tags = _read(f)
        original = stack.files[next(k for k, p in stack.files.items() if p.name == f.name)]
        assert np.array_equal(values, _read(original)[0], equal_nan=True)
        assert "REAL_BACKGROUND" in tags and "IMPRINTED" not in tags and "ACQUISITION_START" not in tags
    info = json.loads((tmp_path / "nc" / "case.json").read_text())
    assert info["real_background"] is True and info["synthetic_parts"] == ["terrain (dem.tif)"]
    assert case.pre_range[1] < case.event_time < case.post_range[0]


def test_imprinted_slides_change_only_post_event_pixels_inside_the_truth(stack, tmp_path):
    spec = imprint.CaseSpec("eq", BURST, ("2023-10-04", "2023-10-16", "2023-10-28"), ("2023-11-09", "2023-11-21"),
                            "report", "earthquake", seed=7)
    case = imprint.write_case(spec, stack, tmp_path / "eq")
    truth = _read(case.truth_mask)[0] > 0
    assert case.n_slides > 5 and 0.003 < truth.mean() < 0.15
    drops = []
    for f in sorted(case.scenes_dir.glob("*.tif")):
        values, tags = _read(f)
        original = _read(next(p for p in stack.files.values() if p.name == f.name))[0]
        post = "IMPRINTED" in tags
        assert post == any(d.replace("-", "") in f.name for d in spec.post)
        assert np.array_equal(values[~truth], original[~truth], equal_nan=True)
        change_db = 10 * np.log10(values[truth] / original[truth])
        if post:
            drops.append(np.median(change_db))
        else:
            assert np.allclose(change_db, 0.0)
    assert all(d < -0.5 for d in drops)  # most slide pixels lost backscatter (75 % of slides are drops)
    info = json.loads((tmp_path / "eq" / "case.json").read_text())
    kinds = [s["kind"] for s in info["slides"]]
    assert set(kinds) <= {"drop", "rise", "faint"} and kinds.count("drop") > len(kinds) / 2
    assert min(s["mean_slope_deg"] for s in info["slides"]) >= 8.0


def test_a_case_is_regenerated_bit_for_bit_and_another_seed_differs(stack, tmp_path):
    spec = imprint.CaseSpec("r", BURST, ("2023-10-04",), ("2023-10-16",), "report", "rain", seed=11)
    a = imprint.write_case(spec, stack, tmp_path / "a")
    b = imprint.write_case(spec, stack, tmp_path / "b")
    c = imprint.write_case(imprint.CaseSpec("r", BURST, ("2023-10-04",), ("2023-10-16",), "report", "rain", 12),
                           stack, tmp_path / "c")
    post = [p.name for p in a.scenes_dir.glob("*20231016T*.tif")]
    for name in post:
        assert np.array_equal(_read(a.scenes_dir / name)[0], _read(b.scenes_dir / name)[0])
    assert not np.array_equal(_read(a.truth_mask)[0], _read(c.truth_mask)[0])


def test_slides_follow_a_heavy_tailed_area_law():
    elev = imprint.crop_terrain((300, 300), 30.0, seed=5)
    areas = []
    for seed in range(6):
        _, _, slides = imprint.place_slides(elev, 30.0, seed, "earthquake")
        areas += [s.area_m2 for s in slides]
    areas = np.array(areas)
    assert areas.min() >= 900.0 and len(areas) > 100
    assert np.mean(areas) > 1.5 * np.median(areas)  # a long tail of large slides
    assert (areas > 10 * np.median(areas)).any()


def test_a_date_the_burst_lacks_is_refused_with_its_name(stack, tmp_path):
    with pytest.raises(imprint.ImprintError, match="2023-10-05"):
        imprint.write_case(imprint.CaseSpec("x", BURST, ("2023-10-05",), ("2023-10-16",), "report"), stack, tmp_path)


def test_the_benchmark_keeps_tuning_and_report_cases_apart():
    cases = imprint.benchmark_cases()
    tuning = {c.burst for c in cases if c.role == "tuning"}
    report = {c.burst for c in cases if c.role == "report"}
    assert tuning == set(imprint.TUNING_BURSTS) and report == set(imprint.REPORT_BURSTS) and not tuning & report
    tuning_dates = {d for c in cases if c.role == "tuning" for d in c.pre + c.post}
    assert all(d < "2023-01-02" for d in tuning_dates)  # tuning seasons 2021 and 2022 only
    assert any(c.polarisations == ("VH",) for c in cases if c.role == "report")
    assert len({c.name for c in cases}) == len(cases)
