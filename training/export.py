"""ONNX export (opset 17, dynamic batch, sigmoid inside), model-file metadata, parity check, checkpoint."""

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


def export_onnx(model: torch.nn.Module, path: str | Path, info: ModelInfo, *, tile_size: int) -> Path:
    """Write ``path`` (atomically) with ``metadata_props`` from :func:`core.model.metadata_props`."""
    import onnx

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial")
    wrapped = WithSigmoid(model).eval()
    dummy = torch.zeros(1, info.n_bands, tile_size, tile_size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(wrapped, (dummy,), str(tmp), dynamo=False, opset_version=OPSET,
                          input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], do_constant_folding=True,
                          dynamic_axes={INPUT_NAME: {0: "batch", 2: "height", 3: "width"},
                                        OUTPUT_NAME: {0: "batch", 2: "height", 3: "width"}})
    proto = onnx.load(str(tmp))
    onnx.helper.set_model_props(proto, metadata_props(info))
    proto.producer_name = "landslide_sar_plugin.training"
    onnx.checker.check_model(proto)
    onnx.save(proto, str(tmp))
    os.replace(tmp, path)
    return path


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
    import pickle  # noqa: S403 (only for the exception type; torch's safe loader does the reading)

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
