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
* blocks are only a memory device: each lattice tile is computed by the first
  block it touches (in row-major order), which reads the composite only where
  its own tiles lie (``BlockPlan.owned``); a tile reaching into later blocks
  is cached, with its invalid-input mask, until they are done.  The output is
  therefore identical for any block size (no block seams) and each tile is
  run exactly once.

Inputs are normalised as the model declares (``standard`` or ``minmax``);
NaN inputs become ``nodata_fill`` after normalisation so the network sees a
neutral value, but pixels where any input band is NaN, or that a
layover/shadow mask flags, get a NaN probability (masked, not predicted).

onnxruntime is imported lazily (:func:`.model.require_onnxruntime`); sessions
are tuned for CPU (intra-op threads = cores that sleep rather than spin when
idle, all graph optimisations, sequential execution) and use CUDA or DirectML
when that provider is present.
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
TILINGS = ("large", "model")
# Inference tiles for a fully convolutional model ("large" tiling; see TiledModel), chosen by measurement
# (tests/bench/bench_unet_accuracy.py, bench_unet.py): 1.31x the pixels computed instead of the 1.78x of
# 64 px tiles overlapping by 16; larger tiles make each block read a wider composite for no fewer
# computed pixels. At tile borders the output agrees with untiled inference within 0.16 (mean 1.5e-4).
LARGE_TILE = 256
LARGE_OVERLAP = 32


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
    """One processing block: its core window, the extent its tiles read, and those tiles' origins.

    ``owned`` is the part of ``extent`` that holds the tiles this block is the
    first to touch (``owned_rows`` x ``owned_cols``, origins inside the core);
    with a :class:`TileCache`, a composite read on ``owned`` suffices, since
    every other touching tile was computed by an earlier block.  It may be
    empty (``height`` or ``width`` 0) when the tiles are larger than a block.
    """

    core: Window
    extent: Window
    row_origins: tuple[int, ...]
    col_origins: tuple[int, ...]
    owned: Window = Window(0, 0, 0, 0)
    owned_rows: tuple[int, ...] = ()
    owned_cols: tuple[int, ...] = ()


def _touching(origins: np.ndarray, lo: int, hi: int, tile: int) -> tuple[int, ...]:
    sel = origins[(origins < hi) & (origins + tile > lo)]
    return tuple(int(o) for o in sel)


def _span(origins: tuple[int, ...], tile: int, length: int) -> tuple[int, int]:
    return (origins[0], min(length, origins[-1] + tile)) if origins else (0, 0)


def block_plans(rows: int, cols: int, tile: int, overlap: int, block_size: int) -> Iterator[BlockPlan]:
    """Row-major :class:`BlockPlan` s over a ``rows x cols`` grid (tiles on the grid-wide lattice)."""
    ro = np.asarray(tile_origins(rows, tile, overlap))
    co = np.asarray(tile_origins(cols, tile, overlap))
    for r0 in range(0, rows, block_size):
        r1 = min(rows, r0 + block_size)
        rsel = _touching(ro, r0, r1, tile)
        rown = tuple(int(o) for o in ro[(ro >= r0) & (ro < r1)])
        for c0 in range(0, cols, block_size):
            c1 = min(cols, c0 + block_size)
            csel = _touching(co, c0, c1, tile)
            cown = tuple(int(o) for o in co[(co >= c0) & (co < c1)])
            er0, ec0 = rsel[0], csel[0]
            er1, ec1 = min(rows, rsel[-1] + tile), min(cols, csel[-1] + tile)
            (or0, or1), (oc0, oc1) = _span(rown, tile, rows), _span(cown, tile, cols)
            if not (rown and cown):
                or0 = or1 = oc0 = oc1 = 0
            yield BlockPlan(Window(c0, r0, c1 - c0, r1 - r0), Window(ec0, er0, ec1 - ec0, er1 - er0), rsel, csel,
                            Window(oc0, or0, oc1 - oc0, or1 - or0), rown, cown)


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
    # Idle intra-op threads sleep instead of spinning: spinning burnt the core that the next block's
    # composites are built on (measured on the 2346 x 3842 U-Net run: 22-24 s instead of 35-37 s, CPU
    # 21 s instead of 30 s), and the one QGIS draws the map with.
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
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
    """An onnxruntime session plus the model's contract: runs batches of normalised tiles.

    :attr:`tile` and :attr:`overlap` are the tiling inference uses: the
    model's declared ``tile_size``/``tile_overlap`` with ``tiling="model"``;
    with ``tiling="large"`` a fully convolutional model (dynamic spatial input
    axes) runs on :data:`LARGE_TILE` px tiles overlapping by
    :data:`LARGE_OVERLAP` px: fewer pixels are computed twice, and more of
    each tile lies far from a zero-padded edge.  Explicit ``tile``/``overlap``
    override both.
    """

    def __init__(self, session, info: ModelInfo, *, batch_size: int = DEFAULT_BATCH, tile: int | None = None,
                 overlap: int | None = None, tiling: str = "model"):
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
        _check_tensor_types(inputs[0], outputs[0])
        channels = shape[1]
        if isinstance(channels, int) and channels != info.n_bands:
            raise ModelError(f"the model's input takes {channels} channels but its metadata declares "
                             f"{info.n_bands} bands ({', '.join(info.band_names)}); the model file is inconsistent")
        for dim in shape[2:]:
            if isinstance(dim, int) and dim != info.tile_size:
                raise ModelError(f"the model's input is fixed at {shape[2]} x {shape[3]} pixels but its metadata "
                                 f"declares tiles of {info.tile_size}; the model file is inconsistent")
        self.dynamic_size = not any(isinstance(dim, int) for dim in shape[2:])
        if tiling not in TILINGS:
            raise ModelError(f"tiling must be one of {', '.join(TILINGS)}, not {tiling!r}")
        large = tiling == "large" and self.dynamic_size
        self.tile = int(tile or (max(LARGE_TILE, info.tile_size) if large else info.tile_size))
        if overlap is None:
            overlap = max(LARGE_OVERLAP, info.tile_overlap) if large else info.tile_overlap
        self.overlap = int(overlap)
        if self.tile != info.tile_size and not self.dynamic_size:
            raise ModelError(f"the model's input is fixed at {info.tile_size} px; it cannot run on {self.tile} px "
                             "tiles")
        if not 0 <= self.overlap < self.tile:
            raise ModelError(f"a tile overlap of {self.overlap} px does not fit tiles of {self.tile} px")
        fixed_batch = isinstance(shape[0], int)
        # Batches keep about the pixels of batch_size training chips, so memory does not grow with the tile.
        scaled = max(1, round(batch_size * (info.tile_size / self.tile) ** 2))
        self.batch_size = max(1, shape[0]) if fixed_batch else scaled
        self.provider = session.get_providers()[0]

    @classmethod
    def load(cls, info: ModelInfo, *, threads: int | None = None, prefer_gpu: bool = True,
             batch_size: int = DEFAULT_BATCH, tile: int | None = None, overlap: int | None = None,
             tiling: str = "model") -> TiledModel:
        name = info.path.name if info.path else "the model"
        return cls(create_session(info.path, threads=threads, prefer_gpu=prefer_gpu, name=name), info,
                   batch_size=batch_size, tile=tile, overlap=overlap, tiling=tiling)

    def run(self, tiles: np.ndarray) -> np.ndarray:
        """``(n, bands, t, t)`` float32 -> ``(n, t, t)`` probabilities (batched as the model allows).

        :class:`ModelError` if the output is not one probability per pixel (two
        channels, or values outside 0..1: logits of a graph without its sigmoid).
        """
        out = []
        for i in range(0, len(tiles), self.batch_size):
            res = self.session.run([self.output_name], {self.input_name: tiles[i:i + self.batch_size]})[0]
            _check_probabilities(res, tiles.shape[-2:])
            out.append(res.reshape(res.shape[0], res.shape[-2], res.shape[-1]))
        return np.concatenate(out).astype(np.float32, copy=False)


def _check_tensor_types(inp, out) -> None:
    """One float32 input and one float output of (batch, 1, rows, cols), as the model contract says."""
    if inp.type != "tensor(float)":
        raise ModelError(f"the model's input is {inp.type}, not tensor(float) (float32); re-export it with a float32 "
                         "input")
    if out.type not in ("tensor(float)", "tensor(double)", "tensor(float16)"):
        raise ModelError(f"the model's output is {out.type}, not a float probability; re-export it")
    shape = list(out.shape or [])
    if len(shape) == 4 and isinstance(shape[1], int) and shape[1] != 1:
        raise ModelError(f"the model outputs {shape[1]} channels; this plugin needs one landslide probability per "
                         "pixel (batch, 1, rows, cols): re-export it with a single sigmoid output")
    if len(shape) not in (0, 3, 4):
        raise ModelError(f"the model's output must be (batch, 1, rows, cols), it is {shape}")


PROBABILITY_SLACK = 1e-3  # float rounding of a sigmoid


def _check_probabilities(res: np.ndarray, tile_shape) -> None:
    if res.ndim not in (3, 4) or (res.ndim == 4 and res.shape[1] != 1) or tuple(res.shape[-2:]) != tuple(tile_shape):
        raise ModelError(f"the model returned an output of shape {list(res.shape)} for tiles of {tile_shape[0]} x "
                         f"{tile_shape[1]}; it needs one probability per pixel (batch, 1, rows, cols)")
    finite = res[np.isfinite(res)]
    if finite.size and (finite.min() < -PROBABILITY_SLACK or finite.max() > 1 + PROBABILITY_SLACK):
        raise ModelError(f"the model's output runs from {finite.min():.3g} to {finite.max():.3g}, not a probability "
                         "in 0..1: the graph ends without its sigmoid (logits); re-export it with the sigmoid")


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
    """Probabilities on ``plan.core`` from the raw composite ``stack`` read on ``plan.extent`` or ``plan.owned``.

    ``stack`` is ``(bands, rows, cols)`` un-normalised on either window (the
    smaller ``owned`` one needs the ``cache`` that earlier blocks filled);
    ``flagged`` (True = layover/shadow) is optional, on the same window.
    ``valid`` (same window, True = predict here) replaces the rule "every band
    finite" for composites whose NaN bands are legitimate (a missing orbit pass
    or polarisation, flagged in the composite itself:
    :func:`.recipes.composite_valid`).  ``progress(fraction)`` is called after
    every batch (and may raise :class:`~.staging.Cancelled`).
    """
    t, o = model.tile, model.overlap
    owned_mode = stack.shape[1:] != (int(plan.extent.height), int(plan.extent.width))
    win = plan.owned if owned_mode else plan.extent
    if stack.shape[1:] != (int(win.height), int(win.width)):
        raise ValueError(f"stack shape {stack.shape[1:]} matches neither the extent {plan.extent} nor the owned "
                         f"window {plan.owned}")
    if owned_mode and cache is None:
        raise ValueError("a composite read on the owned window needs the tile cache of the earlier blocks")
    todo = ([(r, c) for r in plan.owned_rows for c in plan.owned_cols] if owned_mode else
            [(r, c) for r in plan.row_origins for c in plan.col_origins
             if cache is None or (r, c) not in cache.tiles])
    touching = [(r, c) for r in plan.row_origins for c in plan.col_origins]
    results = {key: cache.tiles[key] for key in touching if cache is not None and key in cache.tiles
               and key not in todo}
    missing = [key for key in touching if key not in results and key not in todo]
    if missing:
        raise ValueError(f"tiles {missing[:3]} are neither computed here nor cached: blocks ran out of order")
    results.update(_run_tiles(model, stack, flagged, win, todo, progress, valid))
    return _blend(results, plan, rows, cols, t, o, cache)


def _run_tiles(model: TiledModel, stack: np.ndarray, flagged, win: Window, todo: list, progress,
               valid: np.ndarray | None = None) -> dict:
    """``{origin: (probability tile, invalid tile)}`` for the ``todo`` tiles, batched through the model."""
    t = model.tile
    r0, c0, h, w = int(win.row_off), int(win.col_off), int(win.height), int(win.width)
    if not todo:
        if progress is not None:
            progress(1.0)
        return {}
    invalid = ~np.all(np.isfinite(stack), axis=0) if valid is None else ~np.asarray(valid, bool)
    if flagged is not None:
        invalid |= np.asarray(flagged, bool)
    x = normalise(stack, model.info)
    need_h = max(ro for ro, _ in todo) + t - r0
    need_w = max(co for _, co in todo) + t - c0
    if need_h > h or need_w > w:  # grid smaller than one tile: mirror-pad up to the tile
        pad = ((0, max(0, need_h - h)), (0, max(0, need_w - w)))
        x = np.pad(x, ((0, 0), *pad), mode="symmetric")
        invalid = np.pad(invalid, pad, constant_values=True)
    out = {}
    bs = model.batch_size
    n_batches = -(-len(todo) // bs)
    for b in range(0, len(todo), bs):
        keys = todo[b:b + bs]
        batch = np.stack([x[:, ro - r0:ro - r0 + t, co - c0:co - c0 + t] for ro, co in keys])
        probs = model.run(np.ascontiguousarray(batch))
        for (ro, co), p in zip(keys, probs):
            out[(ro, co)] = (p, invalid[ro - r0:ro - r0 + t, co - c0:co - c0 + t])
        if progress is not None:
            progress((b // bs + 1) / n_batches)
    return out


def _blend(results: dict, plan: BlockPlan, rows: int, cols: int, t: int, o: int, cache: TileCache | None
           ) -> np.ndarray:
    """Cosine-weighted mean of the tiles over the core; NaN where the inputs are invalid."""
    core_r0, core_c0 = int(plan.core.row_off), int(plan.core.col_off)
    ch, cw = int(plan.core.height), int(plan.core.width)
    acc = np.zeros((ch, cw), np.float64)
    wsum = np.zeros((ch, cw), np.float64)
    invalid = np.zeros((ch, cw), bool)
    wcache: dict = {}
    for (ro, co), (p, bad) in results.items():
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
        invalid[cs] |= bad[ts]  # a pixel's validity is the same in every tile that holds it
        if cache is not None and (ro + t > core_r0 + ch or co + t > core_c0 + cw):
            cache.tiles[(ro, co)] = (p, bad)
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
    for i, plan in enumerate(block_plans(rows, cols, model.tile, model.overlap, bsize)):
        e = plan.owned  # the tile cache holds every other tile this block needs
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
