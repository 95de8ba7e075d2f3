"""``python -m training retrain`` (issue 12): refusals, progress lines, the masked loss, the fold split.

The refusals run the real command in-process on a real run record of the SYNTHETIC sample scene's grid
(the scenes are only read by the last refusal, which points at an empty folder)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from landslide_sar_plugin.core.gpkg import Feature, write_features  # noqa: E402
from landslide_sar_plugin.core.inventory import export_reviewed  # noqa: E402
from training import cli  # noqa: E402
from training import retrain as rt  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "landslide_sar_plugin" / "sample_data"
SHIPPED = ROOT / "landslide_sar_plugin" / "models" / "landslide_unet.onnx"
CRS = "EPSG:32654"
X0, Y0 = 558630.0, 4750800.0  # the sample grid's top-left corner (10 m, 540 x 540 px)


def _square(col, row, size=6, x0=X0, y0=Y0):
    x, y = x0 + 10 * col, y0 - 10 * row
    return {"type": "Polygon", "coordinates": [[[x, y], [x + 10 * size, y], [x + 10 * size, y - 10 * size],
                                                [x, y - 10 * size], [x, y]]]}


def _run_dir(tmp_path: Path, scenes: Path | None = None) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    doc = {"event_id": "ev1", "method": "model", "synthetic_input": True,
           "inputs": {"scenes_dir": str(scenes or SAMPLE / "scenes"), "dem": str(SAMPLE / "dem.tif")},
           "parameters": {"event_time": "2018-09-05T18:07:59Z", "pre_days": 90.0, "post_days": 30.0,
                          "pre_range": None, "post_range": None, "noise": {"sigma_db": 1.0}},
           "grid": {"crs": CRS, "transform": [10.0, 0.0, X0, 0.0, -10.0, Y0], "width": 540, "height": 540},
           "model": {"path": str(SHIPPED), "file": SHIPPED.name}, "model_choice": {"reason": "x"},
           "polarisation_choice": "both", "product_types": ["SIM"]}
    (run / "run.json").write_text(json.dumps(doc))
    return run


def _inventory(tmp_path: Path, rows, *, event_id="ev1", crs=CRS, name="inv.gpkg") -> Path:
    """An inventory exported by the plugin's own code from candidates with the given (geometry, status)."""
    cand = tmp_path / f"cand_{name}"
    feats = [Feature(g, {"status": s, "event_id": event_id, "method": "model"}) for g, s in rows]
    write_features(cand, "candidates", feats, crs=crs,
                   fields=[("status", "TEXT"), ("event_id", "TEXT"), ("method", "TEXT")])
    inv = tmp_path / name
    export_reviewed(cand, inv, reviewer="test")
    return inv


def _call(args, capsys):
    code = cli.main(["retrain", *map(str, args)])
    out = capsys.readouterr()
    return code, out.out, out.err


def _entries(folder: Path):
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else None


# --------------------------------------------------------------------------- refusals


def _case(tmp_path, kind):
    """(run folder, inventory, extra args) of one refusal case."""
    good = [(_square(100, 100), "accepted"), (_square(300, 300), "rejected")]
    if kind == "no_run_json":
        run = tmp_path / "run"
        run.mkdir()
        return run, _inventory(tmp_path, good), []
    if kind == "missing_run":
        return tmp_path / "nowhere", _inventory(tmp_path, good), []
    run = _run_dir(tmp_path, tmp_path / "empty_scenes" if kind == "no_composite" else None)
    if kind == "no_composite":
        (tmp_path / "empty_scenes").mkdir()
    if kind == "other_event":
        return run, _inventory(tmp_path, good, event_id="another_event"), []
    if kind == "only_rejected":
        return run, _inventory(tmp_path, [(_square(100, 100), "rejected"), (_square(200, 200), "rejected")]), []
    if kind == "missing_inventory":
        return run, tmp_path / "missing.gpkg", []
    if kind == "off_grid":  # right event, but polygons of another area
        return run, _inventory(tmp_path, [(_square(10, 10, x0=X0 + 50_000), "accepted")]), []
    if kind == "no_pt":
        bare = tmp_path / "bare" / "bare.onnx"
        bare.parent.mkdir()
        shutil.copy(SHIPPED, bare)
        return run, _inventory(tmp_path, good), ["--model", bare]
    if kind == "missing_model":
        return run, _inventory(tmp_path, good), ["--model", tmp_path / "none.onnx"]
    return run, _inventory(tmp_path, good), []


REFUSALS = {
    "no_run_json": "has no run.json",
    "missing_run": "does not exist",
    "other_event": "holds no reviewed polygon of event ev1 (it holds another_event)",
    "only_rejected": "only rejected polygons",
    "missing_inventory": "does not exist: export the reviewed polygons first",
    "off_grid": "lies on the run's grid",
    "no_pt": "this model has no PyTorch weights; retrain needs bare.pt",
    "missing_model": "does not exist",
    "no_composite": "cannot be built from the run's scenes",
}


@pytest.mark.parametrize("kind", sorted(REFUSALS))
@pytest.mark.parametrize("existing", [False, True])
def test_each_refusal_exits_1_with_one_sentence_and_writes_nothing(tmp_path, capsys, kind, existing):
    run, inv, extra = _case(tmp_path, kind)
    models = tmp_path / "models"
    if existing:
        models.mkdir()
        (models / "older.onnx").write_bytes(b"x")
    before = _entries(models)
    code, out, err = _call(["--run", run, "--inventory", inv, "--out", models, "--progress-json", *extra], capsys)
    assert code == 1
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert REFUSALS[kind].lower() in lines[0].lower() and "Traceback" not in err
    assert lines[0][0].isupper() and lines[0].endswith(".")
    assert _entries(models) == before
    assert all(json.loads(ln).keys() <= {"progress", "message"} for ln in out.splitlines())


def test_inventory_in_another_crs_is_reprojected_onto_the_run_grid(tmp_path):
    from rasterio.warp import transform_geom

    run = _run_dir(tmp_path)
    square = _square(100, 120)
    wgs = transform_geom(CRS, "EPSG:4326", square)
    inv = _inventory(tmp_path, [(wgs, "accepted")], crs="EPSG:4326")
    inputs = rt.resolve_inputs(run, inv)
    assert inputs.reprojected_from == "EPSG:4326"
    (box,) = rt.polygon_boxes(inputs.positives, inputs.grid)
    assert abs(box[0] - 120) <= 1 and abs(box[1] - 100) <= 1 and abs(box[2] - 126) <= 1


def test_defaults_model_of_the_run_and_event_of_the_run(tmp_path):
    run = _run_dir(tmp_path)
    inv = _inventory(tmp_path, [(_square(100, 100), "accepted")])
    inputs = rt.resolve_inputs(run, inv)
    assert inputs.model_path == SHIPPED and inputs.checkpoint_path == SHIPPED.with_suffix(".pt")
    assert inputs.event_id == "ev1" and len(inputs.positives) == 1 and not inputs.negatives
    doc = json.loads((run / "run.json").read_text())
    doc["model"]["path"] = str(tmp_path / "gone.onnx")  # a model that no longer exists: the shipped one
    (run / "run.json").write_text(json.dumps(doc))
    assert rt.resolve_inputs(run, inv).model_path == SHIPPED


def test_an_unexpected_error_is_one_sentence_too(tmp_path, capsys, monkeypatch):
    run = _run_dir(tmp_path)
    inv = _inventory(tmp_path, [(_square(100, 100), "accepted")])

    def boom(*a, **k):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(rt, "build_chips", boom)
    code, _, err = _call(["--run", run, "--inventory", inv, "--out", tmp_path / "m"], capsys)
    assert code == 1 and len(err.strip().splitlines()) == 1 and "ZeroDivisionError" in err
    assert not (tmp_path / "m").exists()


# --------------------------------------------------------------------------- progress lines


def test_progress_json_lines_and_the_done_line(capsys):
    r = rt.Reporter(True)
    r(0.25, "building chips")
    r(1.7, "clamped")
    r.done(Path("/m/a.onnx"), Path("/m/a.md"), Path("/m/a_metrics.json"))
    lines = [json.loads(ln) for ln in capsys.readouterr().out.splitlines()]
    assert lines[0] == {"progress": 0.25, "message": "building chips"}
    assert lines[1]["progress"] == 1.0
    assert lines[2] == {"done": True, "model": "/m/a.onnx", "card": "/m/a.md", "metrics": "/m/a_metrics.json"}


def test_human_lines_without_progress_json(capsys):
    r = rt.Reporter(False)
    r(0.5, "fold 1 of 3")
    assert capsys.readouterr().out.strip() == "[ 50%] fold 1 of 3"


# --------------------------------------------------------------------------- the masked loss


def _bce(z, t):
    return np.maximum(z, 0) - z * t + np.log1p(np.exp(-np.abs(z)))


arrays = st.lists(st.floats(-8, 8, allow_nan=False), min_size=16, max_size=16)


@settings(max_examples=60, deadline=None)
@given(arrays, st.lists(st.booleans(), min_size=16, max_size=16), st.lists(st.booleans(), min_size=16, max_size=16))
def test_label_term_is_the_mean_bce_over_reviewed_pixels(logits, target, label):
    z = np.array(logits).reshape(1, 1, 4, 4)
    t = np.array(target, float).reshape(z.shape)
    w = np.array(label, float).reshape(z.shape)
    got = float(rt.review_loss(torch.tensor(z), torch.tensor(t), torch.tensor(w), torch.full(z.shape, 0.5),
                               torch.zeros(z.shape), distill_weight=0.7))
    want = (_bce(z, t) * w).sum() / max(w.sum(), 1.0)
    assert got == pytest.approx(want, rel=1e-6, abs=1e-6)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0.01, 0.99), min_size=16, max_size=16), arrays)
def test_distillation_is_zero_at_the_teacher_and_positive_elsewhere(teacher, logits):
    p = torch.tensor(teacher, dtype=torch.float64).reshape(1, 1, 4, 4)
    zeros, ones = torch.zeros_like(p), torch.ones_like(p)
    at_teacher = rt.review_loss(torch.logit(p), zeros, zeros, p, ones, distill_weight=1.0)
    assert float(at_teacher) == pytest.approx(0.0, abs=1e-6)
    z = torch.tensor(logits, dtype=torch.float64).reshape(p.shape)
    assert float(rt.review_loss(z, zeros, zeros, p, ones, distill_weight=1.0)) >= -1e-9


def test_pixels_without_weight_get_no_gradient():
    z = torch.zeros(1, 1, 4, 4, requires_grad=True)
    lw, dw = torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 4)
    lw[..., 0, :] = 1  # row 0: reviewed
    dw[..., 1, :] = 1  # row 1: distillation
    rt.review_loss(z, torch.ones_like(z), lw, torch.full_like(z, 0.9), dw, distill_weight=0.3).backward()
    g = z.grad[0, 0]
    assert (g[0] != 0).all() and (g[1] != 0).all() and (g[2:] == 0).all()
    # the label term pulls towards 1 (negative gradient), the distillation towards 0.9 from 0.5 (weaker)
    assert (g[0] < g[1]).all()


# --------------------------------------------------------------------------- folds and chips


def test_folds_keep_a_block_on_one_side_and_balance_counts():
    boxes = [(10, 10, 20, 20), (15, 30, 25, 40), (300, 300, 310, 310), (300, 10, 310, 20), (10, 300, 20, 310), None]
    folds, k = rt.assign_folds(boxes, 3, 128)
    assert k == 3 and folds[5] == -1
    assert folds[0] == folds[1]  # same 128 px block
    assert len({int(f) for f in folds[:5]}) == 3
    assert sorted(np.bincount(folds[:5], minlength=3)) == [1, 2, 2]
    assert rt.assign_folds([(0, 0, 5, 5), (3, 3, 9, 9)], 5, 128) == (pytest.approx(np.array([-1, -1])), 0)


def _chips_with(ids: np.ndarray, n_pos: int) -> rt.Chips:
    n = ids.shape[0]
    return rt.Chips(np.zeros((n, 1) + ids.shape[1:], np.float32), ids, np.ones(ids.shape, bool),
                    np.array([(0, 64 * i) for i in range(n)]), ["joint"] * n, n_pos)


def test_held_out_polygons_carry_no_loss_in_training_not_even_distillation():
    ids = np.full((1, 64, 64), -1, np.int32)
    ids[0, 10:20, 10:20] = 0  # landslide, training fold
    ids[0, 40:50, 40:50] = 1  # landslide, held out
    ids[0, 10:20, 40:50] = 2  # rejected, training fold
    chips = _chips_with(ids, n_pos=2)
    cfg = rt.RetrainConfig(buffer_px=3)
    heldout = np.array([False, True, False])
    target, lw, dw = rt.pixel_roles(chips, ~heldout, heldout, cfg)
    assert (lw[0, 10:20, 10:20] == 1).all() and (target[0, 10:20, 10:20] == 1).all()
    assert (lw[0, 10:20, 40:50] == 1).all() and (target[0, 10:20, 40:50] == 0).all()
    blocked = slice(37, 53)
    assert (lw[0, blocked, blocked] == 0).all() and (dw[0, blocked, blocked] == 0).all()
    assert dw[0, 30, 5] == 1 and lw[0, 30, 5] == 0  # unreviewed pixel: distillation only
    assert not ((lw > 0) & (dw > 0)).any()


def test_ring_outside_accepted_polygons_is_background_when_asked():
    ids = np.full((1, 64, 64), -1, np.int32)
    ids[0, 20:30, 20:30] = 0
    target, lw, _ = rt.pixel_roles(_chips_with(ids, 1), np.array([True]), None, rt.RetrainConfig(ring_px=2))
    assert lw[0, 18, 25] == 1 and target[0, 18, 25] == 0 and lw[0, 17, 25] == 0


def test_held_out_pixels_count_each_grid_pixel_once():
    ids = np.full((2, 64, 64), -1, np.int32)
    ids[:, 0:4, 0:4] = 0
    chips = _chips_with(ids, 1)
    chips.offsets = np.array([(0, 0), (0, 0)])  # the same window twice
    n, flat, truth = rt.heldout_pixels(chips, np.array([True]))
    assert len(n) == 16 and truth.all()


def test_windows_cover_each_polygon_box():
    for box in [(0, 0, 5, 5), (100, 100, 250, 130), (530, 530, 540, 540)]:
        wins = rt.windows_for_box(box, 64, (540, 540))
        cover = np.zeros((540, 540), bool)
        for r, c in wins:
            assert 0 <= r <= 540 - 64 and 0 <= c <= 540 - 64
            cover[r:r + 64, c:c + 64] = True
        assert cover[box[0]:box[2], box[1]:box[3]].all()


def test_threshold_is_kept_unless_other_folds_support_a_higher_one():
    rng = np.random.default_rng(0)
    truth = rng.random(400) < 0.5
    good = np.where(truth, 0.8, 0.3)  # negatives at 0.3: a parent threshold of 0.2 takes them all
    folds = [{"truth": truth[i::2], "after_p": good[i::2]} for i in range(2)]
    d = rt.threshold_decision(folds, 0.2)
    assert d["refit"] and 0.3 < d["threshold"] <= 0.8
    low = np.where(truth, 0.15, 0.01)  # only a LOWER threshold would help: the parent's is kept
    d = rt.threshold_decision([{"truth": truth[i::2], "after_p": low[i::2]} for i in range(2)], 0.2)
    assert not d["refit"] and d["threshold"] == 0.2


def test_new_model_names_never_reuse_an_existing_file(tmp_path):
    parent = tmp_path / "landslide_unet.onnx"
    first = rt.new_stem(parent, "ev 1/x", tmp_path)
    assert first == "landslide_unet_rt_ev-1-x_1"
    (tmp_path / f"{first}.pt").write_bytes(b"")
    assert rt.new_stem(parent, "ev 1/x", tmp_path) == "landslide_unet_rt_ev-1-x_2"
    assert rt.new_stem(tmp_path / f"{first}.onnx", "ev 1/x", tmp_path) == "landslide_unet_rt_ev-1-x_2"


def test_publisher_removes_everything_it_wrote_on_failure(tmp_path):
    out = tmp_path / "models"
    pub = rt.Publisher(out)
    a, b = pub.temp("a.pt"), pub.temp("a.onnx")
    a.write_bytes(b"1")
    b.write_bytes(b"2")
    pub.publish([(a, out / "a.pt")])
    pub.discard()
    assert not out.exists()
