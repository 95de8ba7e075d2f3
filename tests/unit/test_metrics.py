"""Tests of core.metrics and the ``evaluate`` command (numbers computed by hand in comments)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from rasterio.transform import from_origin

from landslide_sar_plugin import cli
from landslide_sar_plugin.core import gpkg
from landslide_sar_plugin.core.metrics import (
    average_precision,
    best_f1_threshold,
    confusion_counts,
    detect_kind,
    evaluate_files,
    label_objects,
    no_skill_baseline,
    object_metrics,
    object_metrics_from_labels,
    pixel_metrics,
    precision_recall_curve,
    scores_from_counts,
)
from landslide_sar_plugin.core.raster_io import write_geotiff

# --------------------------------------------------------------------------- pixel metrics

TRUTH_4 = np.array(
    [
        [1, 1, 0, 0],
        [1, 1, 0, 0],
        [0, 0, 0, 0],
        [0, 0, 0, 1],
    ],
    bool,
)
PRED_4 = np.array(
    [
        [1, 1, 1, 0],
        [1, 0, 0, 0],
        [0, 0, 0, 0],
        [0, 0, 0, 0],
    ],
    bool,
)


def test_pixel_metrics_4x4_by_hand():
    # TP: (0,0) (0,1) (1,0) = 3; FP: (0,2) = 1; FN: (1,1) (3,3) = 2; TN = 16 - 6 = 10
    m = pixel_metrics(PRED_4, TRUTH_4)
    assert (m["tp"], m["fp"], m["fn"], m["tn"], m["n_valid"]) == (3, 1, 2, 10, 16)
    assert m["precision"] == pytest.approx(3 / 4)
    assert m["recall"] == pytest.approx(3 / 5)
    assert m["f1"] == pytest.approx(2 * 3 / (2 * 3 + 1 + 2))  # 2/3
    assert m["iou"] == pytest.approx(3 / 6)
    # MCC = (3*10 - 1*2) / sqrt((3+1)(3+2)(10+1)(10+2)) = 28 / sqrt(2640)
    assert m["mcc"] == pytest.approx(28 / math.sqrt(2640))
    assert all(type(m[k]) is int for k in ("tp", "fp", "fn", "tn"))


def test_pixel_metrics_valid_mask_excludes_pixels():
    valid = np.ones((4, 4), bool)
    valid[0, 2] = False  # removes the only FP
    valid[3, 3] = False  # removes one FN
    m = pixel_metrics(PRED_4, TRUTH_4, valid)
    # TP 3, FP 0, FN 1, TN 10
    assert (m["tp"], m["fp"], m["fn"], m["tn"], m["n_valid"]) == (3, 0, 1, 10, 14)
    assert m["precision"] == 1.0
    assert m["recall"] == pytest.approx(0.75)
    assert m["f1"] == pytest.approx(6 / 7)
    assert m["iou"] == pytest.approx(0.75)
    assert m["mcc"] == pytest.approx(30 / math.sqrt(3 * 4 * 10 * 11))
    # all-True valid mask == no valid mask
    assert pixel_metrics(PRED_4, TRUTH_4, np.ones((4, 4))) == pixel_metrics(PRED_4, TRUTH_4)


def test_empty_prediction():
    m = pixel_metrics(np.zeros((4, 4)), TRUTH_4)
    assert (m["tp"], m["fp"], m["fn"], m["tn"]) == (0, 0, 5, 11)
    assert (m["precision"], m["recall"], m["f1"], m["iou"], m["mcc"]) == (
        0.0,
        0.0,
        0.0,
        0.0,
        0.0,
    )


def test_empty_truth():
    m = pixel_metrics(PRED_4, np.zeros((4, 4)))
    assert (m["tp"], m["fp"], m["fn"], m["tn"]) == (0, 4, 0, 12)
    assert (m["precision"], m["recall"], m["f1"], m["iou"], m["mcc"]) == (
        0.0,
        0.0,
        0.0,
        0.0,
        0.0,
    )


def test_both_empty_is_perfect_but_mcc_undefined():
    m = pixel_metrics(np.zeros((3, 3)), np.zeros((3, 3)))
    assert (m["tp"], m["fp"], m["fn"], m["tn"]) == (0, 0, 0, 9)
    assert (m["precision"], m["recall"], m["f1"], m["iou"]) == (1.0, 1.0, 1.0, 1.0)
    assert m["mcc"] == 0.0


def test_perfect_prediction_mcc_one():
    m = pixel_metrics(TRUTH_4, TRUTH_4)
    assert (m["precision"], m["recall"], m["f1"], m["iou"], m["mcc"]) == (
        1.0,
        1.0,
        1.0,
        1.0,
        1.0,
    )
    assert pixel_metrics(TRUTH_4, ~TRUTH_4)["mcc"] == pytest.approx(-1.0)


def test_large_counts_do_not_overflow():
    # 4e10 pixels: products of marginals exceed int64 but MCC stays exact enough.
    m = scores_from_counts(tp=10**10, fp=10**10, fn=10**10, tn=10**10)
    assert m["mcc"] == 0.0 and m["f1"] == pytest.approx(0.5)
    m = scores_from_counts(tp=3 * 10**9, fp=10**9, fn=2 * 10**9, tn=10**10)
    assert m["mcc"] == pytest.approx(28e18 / math.sqrt(4 * 5 * 11 * 12) / 1e18)
    big = np.ones((10_000, 10_000), bool)  # 10^8 pixels
    assert confusion_counts(big, big)["tp"] == 10**8


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="shape"):
        pixel_metrics(np.zeros((3, 3)), np.zeros((3, 4)))


# --------------------------------------------------------------------------- ranking metrics


def test_average_precision_by_hand():
    # thresholds 0.9: P 1,   R 1/2
    #            0.8: P 1/2, R 1/2   (recall does not move: no contribution)
    #            0.7: P 2/3, R 1
    #            0.6: P 1/2, R 1
    # AP = (1/2 - 0) * 1 + 0 + (1 - 1/2) * 2/3 + 0 = 1/2 + 1/3 = 5/6
    assert average_precision([0.9, 0.8, 0.7, 0.6], [1, 0, 1, 0]) == pytest.approx(5 / 6)
    p, r, t = precision_recall_curve(np.array([0.9, 0.8, 0.7, 0.6]), np.array([1, 0, 1, 0]))
    np.testing.assert_allclose(t, [0.9, 0.8, 0.7, 0.6])
    np.testing.assert_allclose(p, [1, 1 / 2, 2 / 3, 1 / 2])
    np.testing.assert_allclose(r, [1 / 2, 1 / 2, 1, 1])


def test_average_precision_ties_form_one_step():
    # 0.9: P 1, R 1/2;  0.5 (two tied pixels, one positive): P 2/3, R 1;  0.1: P 1/2, R 1
    # AP = 1/2 * 1 + 1/2 * 2/3 = 5/6 (a per-pixel order would give 1 or 2/3 depending on the tie)
    assert average_precision([0.9, 0.5, 0.5, 0.1], [1, 1, 0, 0]) == pytest.approx(5 / 6)
    assert average_precision([0.9, 0.5, 0.5, 0.1], [1, 0, 1, 0]) == pytest.approx(5 / 6)


def test_average_precision_perfect_nan_and_valid():
    truth = np.array([[0, 1, 1], [0, 0, 1]])
    assert average_precision(truth.astype(float) * 0.3 + 0.2, truth) == 1.0
    assert math.isnan(average_precision([0.1, 0.2], [0, 0]))
    # NaN scores are ignored: same AP as without those pixels
    s = np.array([0.9, np.nan, 0.8, 0.7, 0.6])
    y = np.array([1, 1, 0, 1, 0])
    assert average_precision(s, y) == pytest.approx(5 / 6)
    # the valid mask drops pixels too: keep only 0.9 (pos) and 0.6 (neg) -> AP 1
    assert average_precision(s, y, np.array([1, 1, 0, 0, 1])) == 1.0


def test_no_skill_is_prevalence():
    truth = np.zeros((10, 10), bool)
    truth[:2, :5] = True  # 10 of 100
    assert no_skill_baseline(truth) == pytest.approx(0.10)
    valid = np.ones((10, 10), bool)
    valid[5:, :] = False  # 10 of 50
    assert no_skill_baseline(truth, valid) == pytest.approx(0.20)
    # a constant score has AP = prevalence
    assert average_precision(np.ones((10, 10)), truth, valid) == pytest.approx(0.20)


def test_best_f1_threshold():
    # thresholds 0.9 (F1 2/3), 0.8 (F1 1/2), 0.7 (P 2/3, R 1: F1 0.8), 0.6 (F1 2/3)
    best = best_f1_threshold([0.9, 0.8, 0.7, 0.6], [1, 0, 1, 0])
    assert best["threshold"] == pytest.approx(0.7)
    assert best["f1"] == pytest.approx(0.8)
    assert (best["precision"], best["recall"]) == (pytest.approx(2 / 3), 1.0)


def test_binned_average_precision_close_to_exact():
    rng = np.random.default_rng(0)
    truth = rng.random(200_000) < 0.05
    scores = rng.normal(size=truth.size) + 1.5 * truth
    exact = average_precision(scores, truth)
    binned = average_precision(scores, truth, bins=4096)
    assert 0.2 < exact < 0.9
    assert binned == pytest.approx(exact, abs=2e-3)


def _reference_ap(scores, truth):
    """Slow, obvious AP: one threshold per distinct score."""
    scores = np.asarray(scores, float).ravel()
    truth = np.asarray(truth, bool).ravel()
    n_pos = truth.sum()
    ap, prev_r = 0.0, 0.0
    for t in sorted(set(scores.tolist()), reverse=True):
        pred = scores >= t
        p = (pred & truth).sum() / pred.sum()
        r = (pred & truth).sum() / n_pos
        ap += (r - prev_r) * p
        prev_r = r
    return ap


# --------------------------------------------------------------------------- objects


def test_object_metrics_three_blobs_two_hit_one_false():
    truth = np.zeros((12, 12), bool)
    truth[1:3, 1:3] = True  # blob A
    truth[1:3, 8:11] = True  # blob B
    truth[8:11, 1:3] = True  # blob C
    pred = np.zeros_like(truth)
    pred[2, 2] = True  # hits A with one pixel
    pred[1:3, 9:12] = True  # hits B and spills out
    pred[9:11, 8:10] = True  # isolated false blob
    m = object_metrics(pred, truth)
    assert (
        m["n_truth"],
        m["n_detected"],
        m["n_pred_objects"],
        m["n_false_alarms"],
    ) == (3, 2, 3, 1)
    assert m["detection_rate"] == pytest.approx(2 / 3)
    assert m["false_alarm_fraction"] == pytest.approx(1 / 3)
    # min_overlap 0.5: A is hit on 1 of 4 pixels -> missed; pred pixel (2,2) lies fully on truth.
    m = object_metrics(pred, truth, min_overlap=0.5)
    assert (m["n_detected"], m["n_false_alarms"]) == (1, 1)
    # the valid mask hides the false blob entirely: it is not counted at all
    valid = np.ones_like(truth)
    valid[8:, 6:] = False
    m = object_metrics(pred, truth, valid)
    assert (m["n_truth"], m["n_pred_objects"], m["n_false_alarms"]) == (3, 2, 0)


def test_objects_use_8_connectivity():
    diag = np.eye(4, dtype=bool)
    assert label_objects(diag)[1] == 1
    assert label_objects(diag, connectivity=4)[1] == 4
    m = object_metrics(np.zeros((4, 4)), diag)
    assert (m["n_truth"], m["n_detected"], m["detection_rate"]) == (1, 0, 0.0)
    m = object_metrics(np.zeros((4, 4)), np.zeros((4, 4)))
    assert m["n_truth"] == 0 and math.isnan(m["detection_rate"])


def test_object_metrics_from_labels_counts_each_polygon():
    truth = np.array([[1, 1, 2, 2], [0, 0, 0, 0]])  # two touching polygons
    pred = np.array([[1, 0, 0, 0], [0, 0, 0, 3]])
    m = object_metrics_from_labels(pred, truth)
    assert (
        m["n_truth"],
        m["n_detected"],
        m["n_pred_objects"],
        m["n_false_alarms"],
    ) == (2, 1, 2, 1)


# --------------------------------------------------------------------------- property-based

masks = hnp.arrays(bool, hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=12))


@st.composite
def mask_pairs(draw):
    a = draw(masks)
    b = draw(hnp.arrays(bool, a.shape))
    return a, b


@settings(max_examples=150, deadline=None)
@given(mask_pairs())
def test_property_ranges_and_identities(pair):
    pred, truth = pair
    m = pixel_metrics(pred, truth)
    for k in ("precision", "recall", "f1", "iou"):
        assert 0.0 <= m[k] <= 1.0
    assert -1.0 <= m["mcc"] <= 1.0
    assert m["f1"] >= m["iou"]
    assert m["f1"] == pytest.approx(2 * m["iou"] / (1 + m["iou"]))
    if m["precision"] + m["recall"] > 0:
        assert m["f1"] == pytest.approx(2 * m["precision"] * m["recall"] / (m["precision"] + m["recall"]))
    swapped = pixel_metrics(truth, pred)
    assert (swapped["precision"], swapped["recall"]) == (m["recall"], m["precision"])
    assert (swapped["f1"], swapped["iou"], swapped["mcc"]) == (
        m["f1"],
        m["iou"],
        m["mcc"],
    )


@st.composite
def score_truth(draw):
    n = draw(st.integers(2, 40))
    scores = np.array(draw(st.lists(st.integers(0, 15), min_size=n, max_size=n)), float)
    truth = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    return scores, truth


@settings(max_examples=150, deadline=None)
@given(score_truth())
def test_property_auprc(data):
    scores, truth = data
    ap = average_precision(scores, truth)
    if not truth.any():
        assert math.isnan(ap)
        return
    assert ap == pytest.approx(_reference_ap(scores, truth))
    assert no_skill_baseline(truth) <= 1.0 and 0.0 < ap <= 1.0
    assert average_precision(truth.astype(float), truth) == 1.0
    # invariant to strictly increasing transforms of the score
    for f in (lambda s: 3 * s - 7, np.exp, lambda s: s**3 + s):
        assert average_precision(f(scores), truth) == pytest.approx(ap, rel=1e-12)


# --------------------------------------------------------------------------- files

CRS = "EPSG:32633"
X0, Y0, RES = 500000.0, 4000100.0, 10.0
TRANSFORM = from_origin(X0, Y0, RES, RES)


def _box(col0, row0, col1, row1):
    """Polygon on pixel edges covering columns col0..col1-1 and rows row0..row1-1."""
    x0, x1 = X0 + col0 * RES, X0 + col1 * RES
    y0, y1 = Y0 - row1 * RES, Y0 - row0 * RES
    return {
        "type": "Polygon",
        "coordinates": [[(x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0)]],
    }


BOXES = [
    (1, 1, 4, 3),
    (6, 1, 9, 4),
    (2, 6, 4, 9),
]  # three truth landslides (col0, row0, col1, row1)


@pytest.fixture()
def scene(tmp_path):
    truth = np.zeros((10, 10), np.uint8)
    for c0, r0, c1, r1 in BOXES:
        truth[r0:r1, c0:c1] = 1
    rng = np.random.default_rng(1)
    prob = np.clip(0.35 * truth + rng.random((10, 10)) * 0.6, 0, 1).astype(np.float32)
    prob[0, 9] = np.nan  # nodata pixel
    prob[1, 1] = prob[5, 5] = 0.5  # exactly on the default threshold: predicted (score >= t)
    pred_mask = (prob >= 0.5).astype(np.uint8)
    paths = {
        "truth_tif": write_geotiff(tmp_path / "truth.tif", truth, transform=TRANSFORM, crs=CRS, nodata=255),
        "prob_tif": write_geotiff(tmp_path / "prob.tif", prob, transform=TRANSFORM, crs=CRS, nodata=np.nan),
        "mask_tif": write_geotiff(tmp_path / "mask.tif", pred_mask, transform=TRANSFORM, crs=CRS, nodata=255),
        "truth_gpkg": gpkg.write_features(
            tmp_path / "truth.gpkg",
            "landslides",
            [gpkg.Feature(_box(*b)) for b in BOXES],
            crs=CRS,
            fields=[],
        ),
    }
    return paths, truth, prob, pred_mask


def test_detect_kind(scene):
    paths, *_ = scene
    assert detect_kind(paths["truth_tif"]) == "mask"
    assert detect_kind(paths["mask_tif"]) == "mask"
    assert detect_kind(paths["prob_tif"]) == "score"
    assert detect_kind(paths["truth_gpkg"]) == "polygons"


def test_evaluate_files_score_raster(scene):
    paths, truth, prob, _ = scene
    rep = evaluate_files(paths["prob_tif"], paths["truth_tif"])
    valid = np.isfinite(prob)
    assert rep["inputs"]["pred"]["kind"] == "score"
    assert rep["inputs"]["pred"]["threshold"] == 0.5
    assert rep["n_valid"] == 99 and rep["n_pixels"] == 100
    assert rep["pixel"] == pixel_metrics(prob >= 0.5, truth, valid)
    assert rep["pixel"]["tp"] + rep["pixel"]["fp"] == int(np.count_nonzero(prob >= 0.5))
    assert rep["ranking"]["average_precision"] == pytest.approx(average_precision(prob, truth))
    assert rep["ranking"]["no_skill"] == pytest.approx(truth.sum() / 99)
    assert rep["objects"]["n_truth"] == 3
    json.dumps(rep, allow_nan=False)


def test_polygons_match_equivalent_mask(scene, tmp_path):
    paths, *_ = scene
    a = evaluate_files(paths["prob_tif"], paths["truth_tif"])
    b = evaluate_files(paths["prob_tif"], paths["truth_gpkg"])
    assert b["inputs"]["truth"]["kind"] == "polygons"
    assert a["pixel"] == b["pixel"]
    assert a["ranking"] == b["ranking"]
    for k in ("n_truth", "n_detected", "n_pred_objects", "n_false_alarms"):
        assert a["objects"][k] == b["objects"][k]
    # polygons as the prediction, rasterized on the truth grid: perfect score
    c = evaluate_files(paths["truth_gpkg"], paths["truth_tif"])
    assert c["inputs"]["pred"]["kind"] == "polygons"
    assert (c["pixel"]["f1"], c["pixel"]["tp"], c["objects"]["n_detected"]) == (
        1.0,
        21,
        3,
    )
    assert c["ranking"] is None
    # pixel centres decide (all_touched=False): a 2x2-pixel square shifted by a quarter
    # pixel contains 4 centres but touches 9 pixels
    shifted = _box(1.25, 1.25, 3.25, 3.25)
    spath = gpkg.write_features(tmp_path / "shifted.gpkg", "p", [gpkg.Feature(shifted)], crs=CRS, fields=[])
    e = evaluate_files(spath, paths["truth_tif"])
    assert e["pixel"]["tp"] + e["pixel"]["fp"] == 4
    # both polygons need a grid
    with pytest.raises(ValueError, match="grid"):
        evaluate_files(paths["truth_gpkg"], paths["truth_gpkg"])
    d = evaluate_files(paths["truth_gpkg"], paths["truth_gpkg"], grid=paths["truth_tif"])
    assert d["pixel"]["iou"] == 1.0 and d["n_valid"] == 100


def test_mask_raster_nodata_and_valid_file(scene, tmp_path):
    paths, truth, _, pred_mask = scene
    rep = evaluate_files(paths["mask_tif"], paths["truth_tif"])
    assert rep["inputs"]["pred"]["kind"] == "mask"
    assert rep["pixel"] == pixel_metrics(pred_mask, truth)  # mask has no nodata pixel: all 100 valid
    valid = np.ones((10, 10), np.uint8)
    valid[:, :5] = 0
    vpath = write_geotiff(tmp_path / "valid.tif", valid, transform=TRANSFORM, crs=CRS)
    rep = evaluate_files(paths["mask_tif"], paths["truth_tif"], valid=vpath)
    assert rep["n_valid"] == 50
    assert rep["pixel"] == pixel_metrics(pred_mask, truth, valid)


def test_prediction_on_finer_grid_is_reprojected(scene, tmp_path):
    paths, truth, _, pred_mask = scene
    fine = np.repeat(np.repeat(pred_mask, 2, axis=0), 2, axis=1)  # 5 m pixels, same area
    fpath = write_geotiff(
        tmp_path / "fine.tif",
        fine,
        transform=from_origin(X0, Y0, 5, 5),
        crs=CRS,
        nodata=255,
    )
    rep = evaluate_files(fpath, paths["truth_tif"])
    assert rep["grid"]["width"] == 10
    assert rep["pixel"] == pixel_metrics(pred_mask, truth)


def test_prediction_in_another_crs_is_reprojected(scene, tmp_path):
    from rasterio.warp import transform_bounds

    paths = scene[0]
    w, _, e, n = transform_bounds(CRS, "EPSG:4326", X0, Y0 - 10 * RES, X0 + 10 * RES, Y0)
    res = (e - w) / 8
    ones = np.ones((14, 14), np.uint8)  # margin of 3 pixels on each side: covers the whole truth grid
    geo = write_geotiff(
        tmp_path / "geo.tif",
        ones,
        transform=from_origin(w - 3 * res, n + 3 * res, res, res),
        crs="EPSG:4326",
        nodata=255,
    )
    rep = evaluate_files(geo, paths["truth_tif"])
    assert rep["n_valid"] == 100
    assert (rep["pixel"]["tp"], rep["pixel"]["fn"], rep["pixel"]["fp"]) == (21, 0, 79)


def test_file_errors(scene, tmp_path):
    paths, *_ = scene
    with pytest.raises(ValueError, match="does not exist"):
        evaluate_files(tmp_path / "nope.tif", paths["truth_tif"])
    far = write_geotiff(
        tmp_path / "far.tif",
        np.ones((10, 10), np.uint8),
        transform=from_origin(0, 0, 10, 10),
        crs=CRS,
    )
    with pytest.raises(ValueError, match="does not overlap"):
        evaluate_files(far, paths["truth_tif"])
    empty = write_geotiff(
        tmp_path / "empty.tif",
        np.zeros((10, 10), np.uint8),
        transform=TRANSFORM,
        crs=CRS,
    )
    with pytest.raises(ValueError, match="no pixel is valid"):
        evaluate_files(paths["mask_tif"], paths["truth_tif"], valid=empty)
    db = write_geotiff(
        tmp_path / "db.tif",
        np.full((10, 10), 3.5, np.float32),
        transform=TRANSFORM,
        crs=CRS,
        nodata=np.nan,
    )
    with pytest.raises(ValueError, match="threshold"):
        evaluate_files(db, paths["truth_tif"])
    with pytest.raises(ValueError, match="not a GeoPackage"):
        evaluate_files(db, paths["truth_tif"], kind="polygons")
    with pytest.raises(ValueError, match="only to scores"):
        evaluate_files(paths["mask_tif"], paths["truth_tif"], threshold=0.5)
    rep = evaluate_files(db, paths["truth_tif"], threshold=2.5)  # dB threshold: everything predicted
    assert rep["pixel"]["recall"] == 1.0 and rep["inputs"]["pred"]["threshold_source"] == "given"


# --------------------------------------------------------------------------- CLI


@pytest.fixture()
def only_evaluate(monkeypatch):
    """Register only this command, so the test does not depend on the other sub-commands."""
    monkeypatch.setattr(cli, "COMMAND_MODULES", ("evaluate",))


def test_cli_end_to_end(scene, tmp_path, capsys, only_evaluate):
    paths, truth, prob, _ = scene
    out = tmp_path / "reports" / "eval.json"
    out.parent.mkdir()
    code = cli.main(
        [
            "evaluate",
            "--pred",
            str(paths["prob_tif"]),
            "--truth",
            str(paths["truth_gpkg"]),
            "--json",
            str(out),
        ]
    )
    assert code == 0
    text = capsys.readouterr().out
    assert "F1" in text and "AUPRC" in text and "false alarms" in text
    rep = json.loads(out.read_text())
    assert rep["pixel"] == pixel_metrics(prob >= 0.5, truth, np.isfinite(prob))
    assert rep["ranking"]["no_skill"] == pytest.approx(21 / 99)
    assert rep["objects"]["n_truth"] == 3
    assert [p.name for p in out.parent.iterdir()] == ["eval.json"]  # no temporary left behind


def test_cli_missing_file(tmp_path, capsys, only_evaluate):
    code = cli.main(
        [
            "evaluate",
            "--pred",
            str(tmp_path / "missing.tif"),
            "--truth",
            str(tmp_path / "t.tif"),
        ]
    )
    assert code == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "missing.tif" in err and "\n" not in err
