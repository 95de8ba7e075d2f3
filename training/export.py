"""ONNX export (opset 17, dynamic batch, sigmoid inside), model-file metadata, parity check, checkpoint.

Two files per model: ``<name>.onnx`` (dynamic height and width: the plugin's
tiled inference may use any tile size) and, with ``with_deepness=True``,
``<name>_deepness.onnx``: the same weights and metadata with a fixed
``[batch, bands, tile, tile]`` input, because the Deepness QGIS plugin takes
its tile size from the input shape and needs a square output of known size.
:func:`reexport` rebuilds both from a saved checkpoint without retraining.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch

from landslide_sar_plugin.core.model import ModelInfo, metadata_props

from .models import WithSigmoid, build_model

OPSET = 17
INPUT_NAME, OUTPUT_NAME = "input", "output"


def deepness_path(path: str | Path) -> Path:
    """``<name>_deepness.onnx`` beside ``<name>.onnx``."""
    path = Path(path)
    return path.with_name(f"{path.stem}_deepness{path.suffix}")


def export_onnx(model: torch.nn.Module, path: str | Path, info: ModelInfo, *, tile_size: int,
                with_deepness: bool = False, fixed_size: bool = False) -> Path:
    """Write ``path`` (atomically) with ``metadata_props`` from :func:`core.model.metadata_props`.

    ``fixed_size`` fixes height and width at ``tile_size`` (the batch stays dynamic); ``with_deepness`` also
    writes that fixed-size variant as :func:`deepness_path`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial")
    wrapped = WithSigmoid(model).eval()
    dummy = torch.zeros(1, info.n_bands, tile_size, tile_size)
    axes = {0: "batch"} if fixed_size else {0: "batch", 2: "height", 3: "width"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(wrapped, (dummy,), str(tmp), dynamo=False, opset_version=OPSET,
                          input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], do_constant_folding=True,
                          dynamic_axes={INPUT_NAME: axes, OUTPUT_NAME: axes})
    _finish(tmp, path, info)
    if with_deepness:
        export_onnx(model, deepness_path(path), info, tile_size=tile_size, fixed_size=True)
    return path


def _finish(tmp: Path, path: Path, info: ModelInfo) -> None:
    import onnx

    proto = onnx.load(str(tmp))
    onnx.helper.set_model_props(proto, metadata_props(info))
    proto.producer_name = "landslide_sar_plugin.training"
    onnx.checker.check_model(proto)
    onnx.save(proto, str(tmp))
    os.replace(tmp, path)


def ort_session(path: str | Path):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    so.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def parity_check(model: torch.nn.Module, path: str | Path, n_bands: int, tile_size: int, *, batch: int = 2,
                 seed: int = 0) -> float:
    """Max abs difference of the ONNX probabilities vs PyTorch's on the same random inputs."""
    x = np.random.default_rng(seed).normal(size=(batch, n_bands, tile_size, tile_size)).astype(np.float32)
    with torch.no_grad():
        ref = torch.sigmoid(model.eval()(torch.from_numpy(x))).numpy()
    got = ort_session(path).run([OUTPUT_NAME], {INPUT_NAME: x})[0]
    if got.shape != ref.shape:
        raise AssertionError(f"ONNX output shape {got.shape} != PyTorch {ref.shape}")
    return float(np.abs(got - ref).max())


def save_checkpoint(model, path: str | Path, *, arch: str, norm: dict, recipe: dict, extra: dict | None = None) -> Path:
    """The PyTorch state dict + what is needed to rebuild the model (kept next to the shipped ONNX)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.partial")
    torch.save({"arch": arch, "config": model.config, "state_dict": model.state_dict(), "normalisation": norm,
                "recipe": recipe, **(extra or {})}, str(tmp))
    os.replace(tmp, path)
    return path


class CheckpointError(ValueError):
    """A checkpoint cannot be loaded safely; the message says why."""


def load_checkpoint(path: str | Path):
    """The model and the dict of a checkpoint written by :func:`save_checkpoint`.

    ``weights_only=True``: only tensors and plain containers are unpickled, so a
    ``.pt`` placed next to a model cannot run code when it is loaded (pickle
    would call whatever its ``__reduce__`` names).
    """
    import pickle  # noqa: S403  # nosec B403 (only for the exception type; torch's safe loader reads)

    try:
        ck = torch.load(str(path), map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{Path(path).name} is not a plain PyTorch checkpoint of this project, refused "
                              f"without running it ({first[:160]})") from None
    if not isinstance(ck, dict) or not {"arch", "config", "state_dict"} <= set(ck):
        raise CheckpointError(f"{Path(path).name} is not a checkpoint written by this project's training "
                              "(it lacks arch, config or state_dict)")
    cfg = ck["config"]
    model = build_model(ck["arch"], cfg["in_channels"], cfg["base_filters"], cfg["depth"], cfg.get("dropout", 0.0))
    model.load_state_dict(ck["state_dict"])
    return model.eval(), ck


def reexport(checkpoint: str | Path, model_path: str | Path, *, tile_size: int | None = None) -> dict:
    """Rewrite ``model_path`` (and its Deepness variant) from ``checkpoint``'s weights, without retraining.

    The metadata is the current model's own (training events, threshold, normalisation ...) written by today's
    :func:`core.model.metadata_props`; the new file must give the same probabilities as the old one (checked on
    random inputs before it replaces it).  Returns the largest probability differences.
    """
    from landslide_sar_plugin.core.model import read_model_info

    model_path = Path(model_path)
    info = read_model_info(model_path)
    info.path, info.sha256 = None, ""
    model, _ = load_checkpoint(checkpoint)
    cal = info.calibration or {}
    if cal.get("kind") == "platt":  # the calibration lives in the graph, not in the checkpoint's weights
        from .models import CalibratedLogits

        model = CalibratedLogits(model, cal["a"], cal["b"]).eval()
    tile = int(tile_size or info.tile_size)
    staged = model_path.with_name(f".{model_path.stem}.reexport{model_path.suffix}")
    export_onnx(model, staged, info, tile_size=tile, with_deepness=True)
    try:
        x = np.random.default_rng(0).normal(size=(2, info.n_bands, tile, tile)).astype(np.float32)
        old = ort_session(model_path).run([OUTPUT_NAME], {INPUT_NAME: x})[0]
        diffs = {"new_vs_old": float(np.abs(ort_session(staged).run([OUTPUT_NAME], {INPUT_NAME: x})[0] - old).max()),
                 "deepness_vs_old": float(np.abs(ort_session(deepness_path(staged)).run(
                     [OUTPUT_NAME], {INPUT_NAME: x})[0] - old).max())}
        if max(diffs.values()) > 1e-4:
            raise AssertionError(f"the re-exported model differs from the shipped one ({diffs}); not replaced")
    except BaseException:
        staged.unlink(missing_ok=True)
        deepness_path(staged).unlink(missing_ok=True)
        raise
    os.replace(staged, model_path)
    os.replace(deepness_path(staged), deepness_path(model_path))
    return diffs
