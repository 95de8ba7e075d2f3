"""training/: chips on the grid, honest splits, losses, augmentation alignment, ONNX parity.  SYNTHETIC data."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from landslide_sar_plugin.core import simulate  # noqa: E402
from landslide_sar_plugin.core.model import read_model_info  # noqa: E402
from landslide_sar_plugin.core.recipes import get_recipe  # noqa: E402
from training.augment import AugmentConfig, Augmenter  # noqa: E402
from training.dataset import (  # noqa: E402
    EventSource,
    build_dataset,
    chip_offsets,
    chip_window_transform,
    load_dataset,
    normalisation_stats,
    pixel_of,
)
from training.experiment import make_info  # noqa: E402
from training.export import export_onnx, parity_check  # noqa: E402
from training.losses import LOSSES, get_loss  # noqa: E402
from training.models import AttentionUNet, UNet  # noqa: E402
from training.splits import event_split, leave_one_event_out, spatial_block_split, windows_overlap  # noqa: E402


@pytest.fixture(scope="module")
def tiny_event(tmp_path_factory):
    d = tmp_path_factory.mktemp("event")
    cfg = simulate.random_event_config(77, regime="earthquake", rows=160, cols=160)
    simulate.simulate_event(d, cfg)
    return EventSource.from_simulation(d)


# --------------------------------------------------------------------------- chips on the grid


def test_chips_line_up_with_the_rasters(tiny_event, tmp_path):
    man_path = build_dataset([tiny_event], "BAA", tmp_path / "chips", chip=64, stride=48, keep="all")
    manifest, chips = load_dataset(man_path)
    rec = manifest["events"][tiny_event.event_id]
    assert len(chips) == len(rec["chips"]) > 0
    doc = json.loads((tiny_event.scenes_dir.parent / "event.json").read_text())
    with rasterio.open(tiny_event.scenes_dir.parent / "truth" / "truth_mask.tif") as src:
        truth = src.read(1)
        truth_t = src.transform
    checked = 0
    for k in np.flatnonzero(chips.fraction > 0)[:3].tolist() + [0, len(chips) - 1]:
        meta = rec["chips"][k]
        r0, c0 = chips.offsets[k]
        assert (meta["row"], meta["col"]) == (r0, c0)
        t = chip_window_transform(meta["transform"], 0, 0)
        assert list(t)[:6] == pytest.approx(list(chip_window_transform(rec["grid"]["transform"], r0, c0))[:6])
        # the first post-event VV scene of the chip's pass holds band VV_post1 of the chip
        post = sorted((s for s in doc["scenes"] if s["role"] == "post" and s["orbit_pass"] == chips.passes[k]),
                      key=lambda s: s["acquisition_start"])[0]
        with rasterio.open(tiny_event.scenes_dir.parent / post["file"]) as src:
            vv = src.read(1)
            vv_t = src.transform
        for i, j in ((0, 0), (17, 40), (63, 63)):
            x, y = t * (j + 0.5, i + 0.5)  # centre of chip pixel (i, j) in map coordinates
            ri, ci = pixel_of(truth_t, x, y)
            assert chips.y[k, i, j] == truth[ri, ci]
            rv, cv = pixel_of(vv_t, x, y)
            assert chips.x[k, 1, i, j] == pytest.approx(vv[rv, cv], abs=1e-5)
            checked += 1
    assert checked >= 6


def test_chip_offsets_cover_the_grid_edges():
    offs = chip_offsets(130, 100, 64, 32)
    assert (130 - 64, 100 - 64) in offs and (0, 0) in offs
    assert all(r + 64 <= 130 and c + 64 <= 100 for r, c in offs)
    assert chip_offsets(50, 100, 64) == []


def test_keep_positive_only_and_normalisation_on_training_chips(tiny_event, tmp_path):
    man = build_dataset([tiny_event], "SAR4", tmp_path / "pos", chip=64, stride=32, keep="positive")
    _, chips = load_dataset(man)
    assert (chips.fraction > 0).all()
    norm = normalisation_stats(chips.x)
    assert norm["kind"] == "standard" and len(norm["mean"]) == 4 and all(s > 0 for s in norm["std"])


# --------------------------------------------------------------------------- splits


def test_event_split_never_shares_an_event():
    events = ["a"] * 5 + ["b"] * 3 + ["c"] * 4
    for split in leave_one_event_out(events):
        tr = {events[i] for i in split.train}
        te = {events[i] for i in split.test}
        assert tr.isdisjoint(te) and len(te) == 1
        assert len(split.train) + len(split.test) == len(events)
    s = event_split(events, ["b", "c"])
    assert {events[i] for i in s.train} == {"a"} and "unseen" in s.describe()


@settings(max_examples=25, deadline=None)
@given(rows=st.integers(128, 300), cols=st.integers(128, 300), chip=st.sampled_from([32, 64]),
       stride=st.sampled_from([16, 32]), extra=st.integers(0, 64), buffer=st.integers(0, 24), seed=st.integers(0, 99))
def test_spatial_block_split_keeps_sides_apart(rows, cols, chip, stride, extra, buffer, seed):
    offs = np.array(chip_offsets(rows, cols, chip, stride))
    block = chip + extra
    try:
        split = spatial_block_split(offs, chip, (rows, cols), block=block, buffer=buffer, seed=seed)
    except ValueError:
        return  # too few blocks for this grid: refused, fine
    assert set(split.train.tolist()).isdisjoint(split.test.tolist())
    for i in split.train:
        for j in split.test:
            assert not windows_overlap(tuple(offs[i]), tuple(offs[j]), chip, gap=buffer)


def test_block_must_be_at_least_the_chip():
    with pytest.raises(ValueError):
        spatial_block_split(np.array([[0, 0]]), 64, (256, 256), block=32, buffer=0)


# --------------------------------------------------------------------------- losses


@pytest.mark.parametrize("name", LOSSES)
def test_loss_is_zero_for_a_perfect_prediction_and_decreases(name):
    loss_fn = get_loss(name)
    g = torch.Generator().manual_seed(0)
    target = (torch.rand(2, 1, 16, 16, generator=g) > 0.7).float()
    perfect = (target * 2 - 1) * 60.0
    assert float(loss_fn(perfect, target)) == pytest.approx(0.0, abs=1e-6)
    weight = torch.ones_like(target)
    weight[:, :, :4] = 0  # ignored pixels do not count
    assert float(loss_fn(perfect, target, weight)) == pytest.approx(0.0, abs=1e-6)
    logits = torch.randn(2, 1, 16, 16, generator=g).requires_grad_(True)
    before = loss_fn(logits, target)
    before.backward()
    with torch.no_grad():
        after = loss_fn(logits - 0.5 * logits.grad / logits.grad.abs().max(), target)
    assert after.item() < before.item()
    assert before.item() > 0


# --------------------------------------------------------------------------- augmentation


def _aligned_batch():
    g = torch.Generator().manual_seed(3)
    y = torch.zeros(8, 1, 64, 64)
    for i in range(8):
        r, c = torch.randint(0, 40, (2,), generator=g).tolist()
        y[i, 0, r:r + 20, c:c + 14] = 1
    # band 0 SAR (a dB-like signal carrying the mask), band 1 terrain (the mask itself)
    x = torch.cat([y * 5.0 + 0.1 * torch.randn(8, 1, 64, 64, generator=g), y.clone()], dim=1)
    return x, y, torch.ones_like(y)


def test_flips_keep_mask_and_image_aligned():
    x, y, w = _aligned_batch()
    aug = Augmenter(AugmentConfig(p_flip=1.0, p_blur=0, p_noise=0, p_motion=0, p_crop=0), [0], [1.0, 1.0])
    xa, ya, wa = aug(x, y, w, torch.Generator().manual_seed(1))
    assert not torch.equal(ya, y)  # something moved
    assert torch.equal(xa[:, 1:2], ya)
    assert torch.equal((xa[:, 0:1] > 2.5).float(), ya)


def test_crop_resize_keeps_alignment_and_photometric_ops_leave_labels_alone():
    x, y, w = _aligned_batch()
    aug = Augmenter(AugmentConfig(p_flip=0.5, p_blur=0, p_noise=0, p_motion=0, p_crop=1.0), [0], [1.0, 1.0])
    xa, ya, wa = aug(x, y, w, torch.Generator().manual_seed(2))
    agree = ((xa[:, 1:2] > 0.5).float() == ya).float().mean()
    assert agree > 0.97  # bilinear vs nearest differ at most on the slide edges
    assert torch.equal(wa, torch.ones_like(wa))
    photo = Augmenter(AugmentConfig(p_flip=0, p_blur=1.0, p_noise=1.0, p_motion=1.0, p_crop=0), [0], [2.0, 1.0])
    xp, yp, wp = photo(x, y, w, torch.Generator().manual_seed(4))
    assert torch.equal(yp, y) and torch.equal(wp, w)
    assert torch.equal(xp[:, 1], x[:, 1])  # terrain band untouched
    assert not torch.equal(xp[:, 0], x[:, 0])


def test_rotation_is_off_by_default():
    assert AugmentConfig().rotate is False


# --------------------------------------------------------------------------- models and ONNX


@pytest.mark.parametrize("cls", [UNet, AttentionUNet])
def test_onnx_export_parity_and_metadata(cls, tmp_path):
    torch.manual_seed(0)
    model = cls(in_channels=4, base_filters=4, depth=2).eval()
    recipe = get_recipe("SAR4")
    norm = {"kind": "standard", "mean": [-8.0, -14.0, -8.0, -14.0], "std": [2.0, 2.0, 2.0, 2.0]}
    info = make_info(recipe, norm, chip=64, overlap=16, threshold=0.42, arch="unet", training_events=["e1"],
                     sha="0" * 64, model_name="t")
    path = export_onnx(model, tmp_path / "m.onnx", info, tile_size=64)
    assert parity_check(model, path, 4, 64, batch=3) < 1e-4
    read = read_model_info(path)
    assert read.composite == "SAR4" and read.threshold == pytest.approx(0.42) and read.opset == 17
    assert read.synthetic_training_data is True and read.normalisation == norm
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == ["input"] and [o.name for o in sess.get_outputs()] == ["output"]
    out = sess.run(None, {"input": np.zeros((3, 4, 64, 64), np.float32)})[0]
    assert out.shape == (3, 1, 64, 64) and 0 <= out.min() and out.max() <= 1


def test_unet_constructor_keywords():
    m = UNet(in_channels=3, base_filters=8, depth=3)
    assert m(torch.zeros(2, 3, 64, 64)).shape == (2, 1, 64, 64)


class _Payload:
    """What an attacker would place next to a model: unpickling it runs code (here: writes a file)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_checkpoint_that_would_run_code_is_refused_without_running_it(tmp_path):
    from training.export import CheckpointError, load_checkpoint

    marker = tmp_path / "pwned"
    evil = tmp_path / "landslide_unet.pt"
    torch.save({"arch": "unet", "config": {}, "state_dict": {}, "x": _Payload(marker)}, str(evil))
    with pytest.raises(CheckpointError, match="refused without running it"):
        load_checkpoint(evil)
    assert not marker.exists()


def test_the_shipped_checkpoint_loads_with_weights_only():
    from pathlib import Path

    from training.export import load_checkpoint

    shipped = Path(__file__).resolve().parents[2] / "landslide_sar_plugin/models/landslide_unet.pt"
    model, ck = load_checkpoint(shipped)
    assert ck["arch"] and sum(p.numel() for p in model.parameters()) > 100_000
