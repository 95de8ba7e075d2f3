"""Tiled, block-streamed ONNX inference: a composite stack in, a seamless probability raster out.

The model sees square tiles of its ``tile_size`` that overlap by its
``tile_overlap``.  Tiles lie on ONE lattice over the whole grid (origins
``0, s, 2s, ...`` with stride ``s = tile - overlap``, the last tile clamped
to the grid's end), whatever the processing block size.  Each tile's
probabilities are weighted by a 2-D cosine (Hann-tapered) window and the
output is ``sum(w * p) / sum(w)``:

* the window is 1 in the tile's centre and falls as ``sin^2`` over the overlap
  towards each edge, never reaching 0, so every pixel has positive weight and
  the normalisation is exact (a constant model gives a constant output);
* on sides where a tile touches the grid's border the window is clamped to 1,
  so edge pixels get full weight instead of the taper of a tile edge;
* blocks are only a memory device: a block reads the extent of every lattice
  tile that touches it, and a tile reaching into the next block (right or
  below) is computed once and cached until that block is done.  The output is
  therefore identical for any block size (no block seams) and each tile is
  run exactly once.

Inputs are normalised as the model declares (``standard`` or ``minmax``);
NaN inputs become ``nodata_fill`` after normalisation so the network sees a
neutral value, but pixels where any input band is NaN, or that a
layover/shadow mask flags, get a NaN probability (masked, not predicted).

onnxruntime is imported lazily (:func:`.model.require_onnxruntime`); sessions
are tuned for CPU (intra-op threads = cores, all graph optimisations,
sequential execution) and use CUDA or DirectML when that provider is present.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from rasterio.windows import Window

from .model import ModelError, ModelInfo, require_onnxruntime
from .staging import Progress

GPU_PROVIDERS = ("CUDAExecutionProvider", "DmlExecutionProvider")
DEFAULT_BATCH = 8


# --------------------------------------------------------------------------- pure geometry


def window_1d(tile: int, overlap: int, *, clamp_start: bool = False, clamp_end: bool = False) -> np.ndarray:
    """1-D weights of length ``tile``: ``sin^2`` ramps over ``overlap`` pixels at each end, 1 in between.

    ``w[i] = sin^2(pi * (i + 0.5) / (2 * overlap))`` for ``i < overlap``
    (mirrored at the end), so two ramps overlapping by exactly ``overlap``
    sum to 1 and no weight is ever 0.  ``clamp_start``/``clamp_end`` set the
    ramp on that side to 1 (the tile touches the grid's border there).
    """
    if tile < 1 or overlap < 0 or 2 * overlap > tile + 1:
        raise ValueError(f"tile {tile} and overlap {overlap} are inconsistent")
    w = np.ones(tile, np.float64)
    if overlap > 0:
        ramp = np.sin(np.pi * (np.arange(overlap) + 0.5) / (2 * overlap)) ** 2
        if not clamp_start:
            w[:overlap] = np.minimum(w[:overlap], ramp)
        if not clamp_end:
            w[tile - overlap:] = np.minimum(w[tile - overlap:], ramp[::-1])
    return w


def hann_weights(tile: int, overlap: int, edges: tuple[bool, bool, bool, bool] = (False, False, False, False)
                 ) -> np.ndarray:
    """2-D blending weights ``(tile, tile)`` float32, the outer product of two :func:`window_1d`.

    ``edges = (top, bottom, left, right)``: True where the tile touches the
    grid's border on that side (the window is clamped to 1 there).
    """
    top, bottom, left, right = edges
    wy = window_1d(tile, overlap, clamp_start=top, clamp_end=bottom)
    wx = window_1d(tile, overlap, clamp_start=left, clamp_end=right)
    return np.outer(wy, wx).astype(np.float32)


def tile_origins(length: int, tile: int, overlap: int) -> list[int]:
    """Tile start offsets along an axis of ``length`` pixels: stride ``tile - overlap``, last clamped to the end.

    The tiles cover ``[0, length)`` exactly (the last ends at ``length``),
    consecutive tiles overlap by at least ``overlap``.  An axis shorter than
    the tile gives ``[0]`` (the input is padded up to the tile).
    """
    if length <= 0:
        raise ValueError("the axis length must be positive")
    if tile <= overlap:
        raise ValueError(f"the tile ({tile}) must be larger than the overlap ({overlap})")
    if length <= tile:
        return [0]
    origins = list(range(0, length - tile, tile - overlap))
    origins.append(length - tile)
    return origins


@dataclass(frozen=True)
class BlockPlan:
    """One processing block: its core window, the extent its tiles read, and those tiles' origins."""

    core: Window
    extent: Window
    row_origins: tuple[int, ...]
    col_origins: tuple[int, ...]


def _touching(origins: np.ndarray, lo: int, hi: int, tile: int) -> tuple[int, ...]:
    sel = origins[(origins < hi) & (origins + tile > lo)]
    return tuple(int(o) for o in sel)


def block_plans(rows: int, cols: int, tile: int, overlap: int, block_size: int) -> Iterator[BlockPlan]:
    """Row-major :class:`BlockPlan` s over a ``rows x cols`` grid (tiles on the grid-wide lattice)."""
    ro = np.asarray(tile_origins(rows, tile, overlap))
    co = np.asarray(tile_origins(cols, tile, overlap))
    for r0 in range(0, rows, block_size):
        r1 = min(rows, r0 + block_size)
        rsel = _touching(ro, r0, r1, tile)
        for c0 in range(0, cols, block_size):
            c1 = min(cols, c0 + block_size)
            csel = _touching(co, c0, c1, tile)
            er0, ec0 = rsel[0], csel[0]
            er1, ec1 = min(rows, rsel[-1] + tile), min(cols, csel[-1] + tile)
            yield BlockPlan(Window(c0, r0, c1 - c0, r1 - r0), Window(ec0, er0, ec1 - ec0, er1 - er0), rsel, csel)


def n_block_plans(rows: int, cols: int, block_size: int) -> int:
    return -(-rows // block_size) * -(-cols // block_size)


# --------------------------------------------------------------------------- normalisation


def normalise(stack: np.ndarray, info: ModelInfo) -> np.ndarray:
    """``(bands, rows, cols)`` raw composite -> the model's input scale; NaN -> ``nodata_fill``."""
    x = np.asarray(stack, np.float32)
    if x.ndim != 3 or x.shape[0] != info.n_bands:
        raise ModelError(f"the composite has {x.shape[0] if x.ndim == 3 else '?'} bands, the model expects "
                         f"{info.n_bands} ({', '.join(info.band_names)})")
    norm = info.normalisation
    if norm["kind"] == "standard":
        offset = np.asarray(norm["mean"], np.float32)
        scale = np.asarray(norm["std"], np.float32)
    else:
        offset = np.asarray(norm["min"], np.float32)
        scale = np.asarray(norm["max"], np.float32) - offset
    scale = np.where(scale == 0, np.float32(1), scale).astype(np.float32)
    out = (x - offset[:, None, None]) / scale[:, None, None]
    out[~np.isfinite(out)] = np.float32(info.nodata_fill)
    return out.astype(np.float32, copy=False)


# --------------------------------------------------------------------------- sessions


def session_options(threads: int | None = None):
    """onnxruntime SessionOptions tuned for CPU inference on this machine."""
    ort = require_onnxruntime()
    so = ort.SessionOptions()
    if threads is None:
        try:
            threads = len(os.sched_getaffinity(0))
        except AttributeError:  # not on Linux
            threads = os.cpu_count() or 1
    so.intra_op_num_threads = max(1, int(threads))
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.log_severity_level = 3  # errors only (the opset warning of new exporters is noise here)
    return so


def choose_providers(available: Sequence[str] | None = None, *, prefer_gpu: bool = True) -> list[str]:
    """CUDA or DirectML first when present, CPU always last."""
    if available is None:
        available = require_onnxruntime().get_available_providers()
    chosen = [p for p in GPU_PROVIDERS if prefer_gpu and p in available]
    return chosen + ["CPUExecutionProvider"]


_IR_RE = re.compile(r"Unsupported model IR version: (\d+), max supported IR version: (\d+)")
_OPSET_RE = re.compile(r"Opset (\d+) is under development.*?support for domain ai\.onnx is till opset (\d+)", re.S)


def create_session(model: str | os.PathLike | bytes, *, threads: int | None = None, prefer_gpu: bool = True,
                   name: str = "the model"):
    """An onnxruntime InferenceSession; version incompatibilities become one-sentence :class:`ModelError` s."""
    ort = require_onnxruntime()
    source = model if isinstance(model, bytes) else str(model)
    try:
        return ort.InferenceSession(source, sess_options=session_options(threads),
                                    providers=choose_providers(prefer_gpu=prefer_gpu))
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph/... types
        text = str(exc)
        m = _IR_RE.search(text)
        if m:
            raise ModelError(f"{name} uses ONNX IR version {m.group(1)}, newer than onnxruntime {ort.__version__} "
                             f"supports (up to IR {m.group(2)}); upgrade onnxruntime (python -m pip install -U "
                             "onnxruntime) or re-export the model for an older IR version") from None
        m = _OPSET_RE.search(text)
        if m:
            raise ModelError(f"{name} uses ONNX opset {m.group(1)}, newer than onnxruntime {ort.__version__} "
                             f"supports (up to opset {m.group(2)}); upgrade onnxruntime (python -m pip install -U "
                             "onnxruntime) or re-export the model with opset 17") from None
        first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
        raise ModelError(f"onnxruntime cannot load {name}: {first}") from None


class TiledModel:
    """An onnxruntime session plus the model's contract: runs batches of normalised tiles."""

    def __init__(self, session, info: ModelInfo, *, batch_size: int = DEFAULT_BATCH):
        self.session = session
        self.info = info
        inputs, outputs = session.get_inputs(), session.get_outputs()
        if len(inputs) != 1 or not outputs:
            raise ModelError(f"the model must have one input and one output, it has {len(inputs)} and "
                             f"{len(outputs)}")
        self.input_name = inputs[0].name
        self.output_name = outputs[0].name
        shape = list(inputs[0].shape)
        if len(shape) != 4:
            raise ModelError(f"the model's input must be (batch, bands, rows, cols), it is {shape}")
        channels = shape[1]
        if isinstance(channels, int) and channels != info.n_bands:
            raise ModelError(f"the model's input takes {channels} channels but its metadata declares "
                             f"{info.n_bands} bands ({', '.join(info.band_names)}); the model file is inconsistent")
        for dim in shape[2:]:
            if isinstance(dim, int) and dim != info.tile_size:
                raise ModelError(f"the model's input is fixed at {shape[2]} x {shape[3]} pixels but its metadata "
                                 f"declares tiles of {info.tile_size}; the model file is inconsistent")
        self.batch_size = batch_size if not isinstance(shape[0], int) else max(1, shape[0])
        self.provider = session.get_providers()[0]

    @classmethod
    def load(cls, info: ModelInfo, *, threads: int | None = None, prefer_gpu: bool = True,
             batch_size: int = DEFAULT_BATCH) -> TiledModel:
        name = info.path.name if info.path else "the model"
        return cls(create_session(info.path, threads=threads, prefer_gpu=prefer_gpu, name=name), info,
                   batch_size=batch_size)

    def run(self, tiles: np.ndarray) -> np.ndarray:
        """``(n, bands, t, t)`` float32 -> ``(n, t, t)`` probabilities (batched as the model allows)."""
        out = []
        for i in range(0, len(tiles), self.batch_size):
            res = self.session.run([self.output_name], {self.input_name: tiles[i:i + self.batch_size]})[0]
            out.append(res.reshape(res.shape[0], res.shape[-2], res.shape[-1]))
        return np.concatenate(out).astype(np.float32, copy=False)


# --------------------------------------------------------------------------- blending


class TileCache:
    """Tile probabilities that a later block will need again (one cache per input stream)."""

    def __init__(self):
        self.tiles: dict[tuple[int, int], np.ndarray] = {}

    def evict_done(self, core: Window, tile: int) -> None:
        r1, c1 = core.row_off + core.height, core.col_off + core.width
        for key in [k for k in self.tiles if k[0] + tile <= r1 and k[1] + tile <= c1]:
            del self.tiles[key]


def _weights_for(cache: dict, tile: int, overlap: int, ro: int, co: int, rows: int, cols: int) -> np.ndarray:
    edges = (ro == 0, ro + tile >= rows, co == 0, co + tile >= cols)
    if edges not in cache:
        cache[edges] = hann_weights(tile, overlap, edges)
    return cache[edges]


def predict_plan(model: TiledModel, stack: np.ndarray, plan: BlockPlan, rows: int, cols: int, *,
                 flagged: np.ndarray | None = None, cache: TileCache | None = None,
                 progress: Callable[[float], None] | None = None, valid: np.ndarray | None = None) -> np.ndarray:
    """Probabilities on ``plan.core`` from the raw composite ``stack`` read on ``plan.extent``.

    ``stack`` is ``(bands, extent rows, extent cols)`` un-normalised;
    ``flagged`` (same rows/cols as the extent, True = layover/shadow) is
    optional.  ``valid`` (same rows/cols, True = predict here) replaces the
    rule "every band finite" for composites whose NaN bands are legitimate
    (a missing orbit pass or polarisation, flagged in the composite itself:
    :func:`.recipes.composite_valid`).  ``progress(fraction)`` is called after
    every batch (and may raise :class:`~.staging.Cancelled`).
    """
    info = model.info
    t, o = info.tile_size, info.tile_overlap
    er0, ec0 = int(plan.extent.row_off), int(plan.extent.col_off)
    eh, ew = int(plan.extent.height), int(plan.extent.width)
    if stack.shape[1:] != (eh, ew):
        raise ValueError(f"stack shape {stack.shape[1:]} does not match the extent {eh} x {ew}")
    cr0, cc0 = int(plan.core.row_off) - er0, int(plan.core.col_off) - ec0
    ch, cw = int(plan.core.height), int(plan.core.width)
    if valid is None:
        invalid = ~np.all(np.isfinite(stack[:, cr0:cr0 + ch, cc0:cc0 + cw]), axis=0)
    else:
        invalid = ~np.asarray(valid[cr0:cr0 + ch, cc0:cc0 + cw], bool)
    if flagged is not None:
        invalid |= np.asarray(flagged[cr0:cr0 + ch, cc0:cc0 + cw], bool)

    x = normalise(stack, info)
    need_h, need_w = plan.row_origins[-1] + t - er0, plan.col_origins[-1] + t - ec0
    if need_h > eh or need_w > ew:  # grid smaller than one tile: mirror-pad up to the tile
        x = np.pad(x, ((0, 0), (0, max(0, need_h - eh)), (0, max(0, need_w - ew))), mode="symmetric")

    acc = np.zeros((ch, cw), np.float64)
    wsum = np.zeros((ch, cw), np.float64)
    wcache: dict = {}
    todo = []
    results: dict[tuple[int, int], np.ndarray] = {}
    for ro in plan.row_origins:
        for co in plan.col_origins:
            if cache is not None and (ro, co) in cache.tiles:
                results[(ro, co)] = cache.tiles[(ro, co)]
            else:
                todo.append((ro, co))
    bs = model.batch_size
    n_batches = max(1, -(-len(todo) // bs))
    for b in range(0, len(todo), bs):
        keys = todo[b:b + bs]
        batch = np.stack([x[:, ro - er0:ro - er0 + t, co - ec0:co - ec0 + t] for ro, co in keys])
        probs = model.run(np.ascontiguousarray(batch))
        for key, p in zip(keys, probs):
            results[key] = p
        if progress is not None:
            progress((b // bs + 1) / n_batches)
    if progress is not None and not todo:
        progress(1.0)

    core_r0, core_c0 = int(plan.core.row_off), int(plan.core.col_off)
    for (ro, co), p in results.items():
        w = _weights_for(wcache, t, o, ro, co, rows, cols)
        # Intersection of the tile with the core, in grid coordinates.
        r_lo, r_hi = max(ro, core_r0), min(ro + t, core_r0 + ch, rows)
        c_lo, c_hi = max(co, core_c0), min(co + t, core_c0 + cw, cols)
        if r_hi <= r_lo or c_hi <= c_lo:
            continue
        ts = (slice(r_lo - ro, r_hi - ro), slice(c_lo - co, c_hi - co))
        cs = (slice(r_lo - core_r0, r_hi - core_r0), slice(c_lo - core_c0, c_hi - core_c0))
        acc[cs] += w[ts] * p[ts]
        wsum[cs] += w[ts]
        if cache is not None and (ro + t > core_r0 + ch or co + t > core_c0 + cw):
            cache.tiles[(ro, co)] = p
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (acc / wsum).astype(np.float32)
    out[invalid] = np.nan
    if cache is not None:
        cache.evict_done(plan.core, t)
    return out


def predict_array(model_or_session, stack: np.ndarray, info: ModelInfo | None = None, *,
                  block_size: int | None = None, flagged: np.ndarray | None = None,
                  batch_size: int = DEFAULT_BATCH, progress=None, is_cancelled=None,
                  valid: np.ndarray | None = None) -> np.ndarray:
    """Tiled, blended probabilities ``(rows, cols)`` for an in-memory raw composite ``(bands, rows, cols)``.

    ``model_or_session`` is a :class:`TiledModel` or an onnxruntime session
    (then ``info`` is required).  ``block_size`` streams the array in blocks
    exactly as the raster driver does (the result does not depend on it).
    ``valid`` as in :func:`predict_plan` (rows, cols).
    """
    model = model_or_session if isinstance(model_or_session, TiledModel) else TiledModel(
        model_or_session, info, batch_size=batch_size)
    stack = np.asarray(stack, np.float32)
    rows, cols = stack.shape[1:]
    bsize = block_size or max(rows, cols)
    prog = Progress(progress, is_cancelled)
    out = np.full((rows, cols), np.nan, np.float32)
    cache = TileCache()
    n = n_block_plans(rows, cols, bsize)
    for i, plan in enumerate(block_plans(rows, cols, model.info.tile_size, model.info.tile_overlap, bsize)):
        e = plan.extent
        sl = (slice(e.row_off, e.row_off + e.height), slice(e.col_off, e.col_off + e.width))
        fl = flagged[sl] if flagged is not None else None
        p = predict_plan(model, stack[(slice(None), *sl)], plan, rows, cols, flagged=fl, cache=cache,
                         progress=lambda f, i=i: prog((i + f) / n, f"model inference: block {i + 1} of {n}"),
                         valid=valid[sl] if valid is not None else None)
        c = plan.core
        out[c.row_off:c.row_off + c.height, c.col_off:c.col_off + c.width] = p
    return out


def combine_passes(probs_by_pass: dict[str, list[np.ndarray]]) -> np.ndarray:
    """Mean of the tracks within each pass, then of the passes; NaN only where every input is NaN."""
    import warnings

    per_pass = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for arrays in probs_by_pass.values():
            per_pass.append(np.nanmean(np.stack(arrays), axis=0))
        return np.nanmean(np.stack(per_pass), axis=0).astype(np.float32)
