"""``python -m training retrain``: a new model from one event's review, with honest before/after figures.

The training side of the analyst loop (issue 12); the plugin's side is
``landslide_sar_plugin/core/retrain_runner.py``, which runs::

    python -m training retrain --run RUN_DIR --inventory INV.gpkg --out MODELS_DIR
           [--model CURRENT.onnx] [--event-id ID] [--seed N] [--progress-json]

What is learnt from what
------------------------
* **Labels only where the analyst spoke**: pixels of accepted / edited /
  manual polygons are 1, pixels of rejected polygons are 0 (optionally a thin
  ring just outside the accepted polygons is 0 too, ``ring_px``).  Every other
  pixel is *not* background: it carries a low-weight distillation term towards
  the BASE model's probability (a KL divergence, 0 where the new model agrees
  with the base), so the model keeps what it knew outside the reviewed area.
  Treating unreviewed pixels as background is what made the old ``finetune``
  lose recall everywhere (issue 12: east-half F1 0.275 -> 0.045).
* **Chips only around reviewed polygons**, plus a few elsewhere for the
  distillation term, read with the engine's own composite readers on the
  run's grid (bounded memory: the reviewed area, not the scene).
* **Few steps**: low learning rate, BatchNorm in eval mode (a few chips must
  not re-estimate the statistics of a network trained on thousands), early
  stopping on the held-out fold; the parent's Platt calibration is kept.

Before / after
--------------
The reviewed polygons are grouped by spatial blocks and the blocks dealt into
K folds.  For each fold a model is fine-tuned on the other folds (the held-out
polygons' pixels, grown by a buffer, carry no loss at all) and scored on the
held-out polygons' pixels: "before" = the parent at its threshold, "after" =
the fold model.  Pooled over the folds these say what the analyst can expect
elsewhere in the AOI.  The shipped model is then fine-tuned on every reviewed
polygon for the median of the folds' best epoch counts.  The threshold stays
the parent's unless a threshold chosen on the other folds beats it on each
held-out fold's pixels pooled (cross-validated) by ``REFIT_MARGIN`` F1; the
card says which.

Failure: exit 1 and one sentence on stderr, nothing in MODELS_DIR; SIGTERM:
exit 143, temporaries removed, MODELS_DIR as it was.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import datetime as dt
import importlib.util
import json
import math
import os
import re
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# the plugin's models folder, from the package itself: training/ sits beside it in a checkout and inside it in
# the plugin zip (landslide_sar_plugin/training/)
SHIPPED_MODEL = Path(importlib.util.find_spec("landslide_sar_plugin").origin).parent / "models" / "landslide_unet.onnx"
POSITIVE_STATUS = ("accepted", "edited")
NEGATIVE_STATUS = ("rejected",)
REFIT_MARGIN = 0.02  # F1 a cross-validated threshold must gain over the parent's to replace it
EXIT_TERMINATED = 143


class RetrainRefused(ValueError):
    """Retraining cannot start or did not succeed; the message is one sentence for the user."""


class Terminated(BaseException):
    """SIGTERM (the plugin's cancel) arrived."""


@dataclass
class RetrainConfig:
    """How the fine-tune runs.  Learning rate per Adam step; pixels for ``ring_px``/``buffer_px``."""

    folds: int = 5
    max_epochs: int = 8
    patience: int = 2
    lr: float = 1e-4
    batch_size: int = 16
    distill_weight: float = 0.3
    balance: bool = True  # landslide and background pixels weigh the same in the label term
    ring_px: int = 0
    buffer_px: int = 8
    background_share: float = 0.5  # distillation chips elsewhere, per chip around a reviewed polygon
    max_chips: int = 1200
    fold_block_chips: int = 2  # spatial blocks of the fold split, in chips
    seed: int = 0
    threads: int = 2

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# --------------------------------------------------------------------------- progress


class Reporter:
    """Progress as JSON lines (``--progress-json``) or as human lines, on stdout."""

    def __init__(self, json_lines: bool, stream=None):
        self.json_lines = json_lines
        self.stream = stream or sys.stdout

    def __call__(self, fraction: float, message: str) -> None:
        fraction = min(max(float(fraction), 0.0), 1.0)
        if self.json_lines:
            self._emit({"progress": round(fraction, 4), "message": message})
        else:
            print(f"[{100 * fraction:3.0f}%] {message}", file=self.stream, flush=True)

    def done(self, model: Path, card: Path, metrics: Path) -> None:
        if self.json_lines:
            self._emit({"done": True, "model": str(model), "card": str(card), "metrics": str(metrics)})
        else:
            print(f"new model: {model}\nmodel card: {card}\nmetrics: {metrics}", file=self.stream, flush=True)

    def _emit(self, obj: dict) -> None:
        print(json.dumps(obj), file=self.stream, flush=True)


# --------------------------------------------------------------------------- inputs and refusals


@dataclass
class RetrainInputs:
    """Everything the fine-tune needs, checked: the run, the model, the reviewed polygons on the run's grid."""

    run_dir: Path
    run: dict
    model_path: Path
    checkpoint_path: Path
    event_id: str
    grid: object  # core.grid.Grid
    positives: list = field(default_factory=list)  # geometries in the grid CRS
    negatives: list = field(default_factory=list)
    manual: int = 0
    reprojected_from: str | None = None


def read_run(run_dir: str | os.PathLike) -> dict:
    path = Path(run_dir) / "run.json"
    if not Path(run_dir).is_dir():
        raise RetrainRefused(f"the run folder {run_dir} does not exist: choose the folder a detection wrote")
    if not path.is_file():
        raise RetrainRefused(f"the run folder {run_dir} has no run.json (the run is incomplete or is not a "
                             "detection run): choose the folder of a finished detection")
    try:
        run = json.loads(path.read_text(encoding="utf-8"))
        for key in ("grid", "inputs", "parameters"):
            run[key]  # noqa: B018 (presence check)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise RetrainRefused(f"the run record {path} cannot be read ({exc}); run the detection again") from None
    return run


def default_model(run: dict) -> Path:
    """The model the run used (its recorded path) when it still exists, else the shipped model."""
    recorded = (run.get("model") or {}).get("path")
    if recorded and Path(recorded).is_file():
        return Path(recorded)
    return SHIPPED_MODEL


def grid_of_run(run: dict):
    from affine import Affine
    from rasterio.crs import CRS

    from landslide_sar_plugin.core.grid import Grid

    g = run["grid"]
    try:
        return Grid(CRS.from_user_input(g["crs"]), Affine(*g["transform"][:6]), int(g["width"]), int(g["height"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise RetrainRefused(f"the run's grid in run.json is unreadable ({exc}); run the detection again") from None


def check_model(model: Path) -> Path:
    """The ``.pt`` checkpoint beside ``model`` (the weights a fine-tune starts from)."""
    if not model.is_file():
        raise RetrainRefused(f"the model {model} does not exist; choose an existing model with --model")
    checkpoint = model.with_suffix(".pt")
    if not checkpoint.is_file():
        raise RetrainRefused(f"this model has no PyTorch weights; retrain needs {checkpoint.name} beside "
                             f"{model.name} (choose the shipped model or one made by retrain)")
    return checkpoint


def read_reviewed(inventory: Path, event_id: str, grid) -> tuple[list, list, int, str | None]:
    """(positives, negatives, manual count, CRS reprojected from) of ``event_id``, in the grid's CRS.

    Rows in another CRS are reprojected onto the run's grid (an inventory accumulates events of many
    AOIs); rows that then miss the grid are refused below, as rows of another AOI.
    """
    from rasterio.crs import CRS
    from rasterio.warp import transform_geom

    from landslide_sar_plugin.core.inventory import InventoryError, read_inventory

    if not inventory.is_file():
        raise RetrainRefused(f"the inventory {inventory} does not exist: export the reviewed polygons first")
    try:
        rows, crs_text = read_inventory(inventory, statuses=None)
    except (InventoryError, OSError, ValueError) as exc:
        raise RetrainRefused(f"the inventory {inventory.name} cannot be read ({exc}); export the review again"
                             ) from None
    mine = [f for f in rows if f.properties.get("event_id") == event_id and f.geometry is not None]
    status = [str(f.properties.get("status") or "").strip().lower() for f in mine]
    pos = [f for f, s in zip(mine, status) if s in POSITIVE_STATUS]
    neg = [f for f, s in zip(mine, status) if s in NEGATIVE_STATUS]
    if not pos and not neg:
        others = sorted({str(f.properties.get("event_id")) for f in rows})
        held = f"it holds {', '.join(others[:3])}{'...' if len(others) > 3 else ''}" if others else "it is empty"
        raise RetrainRefused(f"the inventory {inventory.name} holds no reviewed polygon of event {event_id} "
                             f"({held}): review candidates of this run and export them, or give --event-id")
    if not pos:
        raise RetrainRefused(f"the inventory holds only rejected polygons of event {event_id} ({len(neg)}), nothing "
                             "to learn a landslide from: accept, edit or draw at least one landslide and export again")
    src = CRS.from_user_input(crs_text) if crs_text else grid.crs
    moved = None if src == grid.crs else src.to_string()

    def geoms(features):
        return [transform_geom(src, grid.crs, f.geometry) if moved else f.geometry for f in features]

    manual = sum(str(f.properties.get("source") or "").lower() == "manual" for f in pos)
    return geoms(pos), geoms(neg), manual, moved


def resolve_inputs(run_dir, inventory, *, model=None, event_id=None) -> RetrainInputs:
    """Every refusal that needs no composite: run folder, model and its weights, the inventory's rows."""
    run = read_run(run_dir)
    grid = grid_of_run(run)
    model_path = Path(model) if model else default_model(run)
    checkpoint = check_model(model_path)
    eid = event_id or run.get("event_id")
    if not eid:
        raise RetrainRefused("the run records no event id: give the event of the reviewed polygons with --event-id")
    pos, neg, manual, moved = read_reviewed(Path(inventory), str(eid), grid)
    inputs = RetrainInputs(Path(run_dir), run, model_path, checkpoint, str(eid), grid, pos, neg, manual, moved)
    boxes = polygon_boxes(pos, grid)
    if not any(b is not None for b in boxes):
        raise RetrainRefused(f"no accepted polygon of event {eid} lies on the run's grid (the inventory rows belong "
                             "to another area or run): retrain with the run these polygons were reviewed on")
    return inputs


# --------------------------------------------------------------------------- polygons -> pixels, folds, chips


def _coords(geom) -> np.ndarray:
    out = []

    def walk(c):
        if c and isinstance(c[0], (int, float)):
            out.append(c[:2])
        else:
            for x in c:
                walk(x)

    walk(geom["coordinates"])
    return np.asarray(out, np.float64).reshape(-1, 2)


def polygon_boxes(geoms: Sequence, grid) -> list[tuple[int, int, int, int] | None]:
    """(row0, col0, row1, col1) pixel box of each polygon clipped to the grid (end exclusive); None if off it."""
    inv = ~grid.transform
    out = []
    for g in geoms:
        xy = _coords(g)
        if not len(xy):
            out.append(None)
            continue
        cols, rows = inv * (xy[:, 0], xy[:, 1])
        r0, r1 = int(math.floor(np.min(rows))), int(math.ceil(np.max(rows)))
        c0, c1 = int(math.floor(np.min(cols))), int(math.ceil(np.max(cols)))
        r0, c0, r1, c1 = max(r0, 0), max(c0, 0), min(r1, grid.height), min(c1, grid.width)
        out.append((r0, c0, r1, c1) if r1 > r0 and c1 > c0 else None)
    return out


def assign_folds(boxes: Sequence, k: int, block_px: int) -> tuple[np.ndarray, int]:
    """Fold of each polygon (-1: off the grid) and the number of folds actually formed.

    Polygons are grouped by the spatial block (``block_px``) of their box centre; whole blocks are dealt
    to the folds, largest first, each to the fold with the fewest polygons so far.  Polygons of one block
    are never on two sides.  Fewer blocks than ``k`` -> fewer folds (0 when only one block).
    """
    centres = {i: ((b[0] + b[2]) // 2 // block_px, (b[1] + b[3]) // 2 // block_px)
               for i, b in enumerate(boxes) if b is not None}
    blocks: dict[tuple, list[int]] = {}
    for i, key in centres.items():
        blocks.setdefault(key, []).append(i)
    folds = np.full(len(boxes), -1, np.int64)
    k = min(int(k), len(blocks))
    if k < 2:
        return folds, 0
    load = [0] * k
    for key in sorted(blocks, key=lambda b: (-len(blocks[b]), b)):
        f = min(range(k), key=lambda j: (load[j], j))
        folds[blocks[key]] = f
        load[f] += len(blocks[key])
    return folds, k


def fold_split(boxes: Sequence, k: int, block_px: int, chip: int) -> tuple[np.ndarray, int]:
    """:func:`assign_folds` with blocks of ``block_px``, halved (down to half a chip) while the polygons
    fall into fewer than ``k`` blocks: a small AOI still gets held-out folds."""
    block = block_px
    folds, got = assign_folds(boxes, k, block)
    while got < k and block // 2 >= chip // 2:
        block //= 2
        folds, got = assign_folds(boxes, k, block)
    return folds, got


def windows_for_box(box, chip: int, shape: tuple[int, int], margin: int = 8) -> list[tuple[int, int]]:
    """Top-left (row, col) of the chips covering ``box`` grown by ``margin`` (one centred chip if it fits)."""
    rows, cols = shape
    r0, c0, r1, c1 = box[0] - margin, box[1] - margin, box[2] + margin, box[3] + margin

    def starts(a, b, size):
        if b - a <= chip:
            return [min(max((a + b) // 2 - chip // 2, 0), size - chip)]
        step = chip - 16
        out = list(range(a, b - chip + 1, step))
        if out[-1] + chip < b:
            out.append(b - chip)
        return [min(max(s, 0), size - chip) for s in out]

    return sorted({(r, c) for r in starts(r0, r1, rows) for c in starts(c0, c1, cols)})


def background_windows(n: int, chip: int, shape: tuple[int, int], taken: set, rng) -> list[tuple[int, int]]:
    """``n`` random chip windows on the grid, at stride-8 positions not already in ``taken``."""
    rows, cols = shape
    out: list[tuple[int, int]] = []
    tries = 0
    while len(out) < n and tries < 20 * n + 20:
        tries += 1
        r = int(rng.integers(0, rows - chip + 1)) // 8 * 8
        c = int(rng.integers(0, cols - chip + 1)) // 8 * 8
        if (r, c) not in taken:
            taken.add((r, c))
            out.append((r, c))
    return out


def rasterize_ids(geoms: Sequence, boxes: Sequence, grid, row: int, col: int, chip: int) -> np.ndarray:
    """(chip, chip) int32: index of the reviewed polygon covering each pixel, -1 where none (later polygons win)."""
    from rasterio.features import rasterize
    from rasterio.windows import Window

    shapes = [(g, i) for i, (g, b) in enumerate(zip(geoms, boxes))
              if b is not None and b[0] < row + chip and b[2] > row and b[1] < col + chip and b[3] > col]
    if not shapes:
        return np.full((chip, chip), -1, np.int32)
    return rasterize(shapes, out_shape=(chip, chip), transform=grid.window_transform(Window(col, row, chip, chip)),
                     fill=-1, dtype="int32")


# --------------------------------------------------------------------------- composites on chip windows


@dataclass
class Chips:
    """Chips around the reviewed polygons (and elsewhere), in memory, with what each pixel means.

    ``ids``: reviewed polygon index per pixel (-1 none); polygons ``0..n_pos-1`` are landslides, the rest
    rejected.  ``valid``: the model predicts there.  ``teacher``: the base model's (calibrated) probability.
    """

    x: np.ndarray  # (n, bands, chip, chip) float32, normalised
    ids: np.ndarray  # (n, chip, chip) int32
    valid: np.ndarray  # (n, chip, chip) bool
    offsets: np.ndarray  # (n, 2)
    keys: list  # composite key ("joint" or orbit pass) per chip
    n_pos: int
    teacher: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.x)


def _selection(run: dict, recipe):
    from landslide_sar_plugin.core import catalog as cat

    from .dataset import DatasetError, _chosen_tracks, _select

    p = run["parameters"]
    event_time = cat.parse_time(p["event_time"])
    rng = [tuple(cat.parse_time(t) for t in p[k]) if p.get(k) else None for k in ("pre_range", "post_range")]
    catalog = cat.read_catalog(run["inputs"]["scenes_dir"])
    if not catalog.scenes:
        raise DatasetError(f"no usable scene in {run['inputs']['scenes_dir']}")
    selection, pols = _select(catalog, recipe, event_time, p.get("pre_days", 90.0), p.get("post_days", 30.0),
                              *rng)
    chosen = _chosen_tracks(recipe, selection, None)
    if not chosen:
        raise DatasetError(f"no orbit pass has the {recipe.min_post_scenes()} post-event scene(s) of "
                           f"{'+'.join(recipe.polarisations())} it needs")
    return selection, pols, chosen


def read_chip_composites(run: dict, recipe, grid, windows: Sequence[tuple[int, int]], chip: int,
                         check: Callable[[], None] = lambda: None) -> dict[tuple, np.ndarray]:
    """``{(key, row, col): (bands, chip, chip)}`` composites, read with the engine's readers.

    Windows are read in groups of at most ``GROUP_PX`` per side (the SAR and DEM halos are read once per
    group, not per chip).  Raises :class:`RetrainRefused` when the composite cannot be built.
    """
    from rasterio.windows import Window

    from landslide_sar_plugin.core.detect import open_stack_readers
    from landslide_sar_plugin.core.detect_model import composite_dem_halo, read_joint_composite, read_track_composite
    from landslide_sar_plugin.core.grid import RasterOnGrid

    from .dataset import DatasetError

    try:
        selection, pols, chosen = _selection(run, recipe)
    except (DatasetError, ValueError, OSError, KeyError) as exc:
        raise RetrainRefused(f"the model's composite {recipe.name} cannot be built from the run's scenes ({exc}); "
                             "choose a model made for these scenes") from None
    tracks = [t for ts in chosen.values() for t in ts]
    px = grid.pixel_size
    halo, sar_halo = composite_dem_halo(recipe, px), recipe.sar_halo_px(px)
    readers: dict = {}
    out: dict[tuple, np.ndarray] = {}
    dem_reader = RasterOnGrid(run["inputs"]["dem"], 1, grid, halo=halo)
    try:
        by_track = open_stack_readers(selection, tracks, pols, grid, readers, halo=sar_halo)
        for (r0, c0, r1, c1), members in group_windows(windows, chip):
            check()
            window = Window(c0, r0, c1 - c0, r1 - r0)
            if recipe.joint_passes:
                comps = {"joint": read_joint_composite(recipe, {t: by_track[t] for t in tracks}, window, dem_reader,
                                                       halo, px, sar_halo=sar_halo)}
            else:
                comps = {p: read_track_composite(recipe, by_track[ts[0]], window, dem_reader, halo, px,
                                                 sar_halo=sar_halo) for p, ts in chosen.items()}
            for key, comp in comps.items():
                for r, c in members:
                    out[(key, r, c)] = comp[:, r - r0:r - r0 + chip, c - c0:c - c0 + chip].copy()
    finally:
        dem_reader.close()
        for rd in readers.values():
            rd.close()
    return out


GROUP_PX = 384


def group_windows(windows: Sequence[tuple[int, int]], chip: int, limit: int = GROUP_PX):
    """Greedy groups of chip windows whose bounding box stays within ``limit`` px: [(box, members)]."""
    groups: list[list] = []
    for r, c in sorted(windows):
        for g in groups:
            b = g[0]
            nb = (min(b[0], r), min(b[1], c), max(b[2], r + chip), max(b[3], c + chip))
            if nb[2] - nb[0] <= limit and nb[3] - nb[1] <= limit:
                g[0] = nb
                g[1].append((r, c))
                break
        else:
            groups.append([(r, c, r + chip, c + chip), [(r, c)]])
    return [(tuple(g[0]), g[1]) for g in groups]


def build_chips(inputs: RetrainInputs, info, cfg: RetrainConfig, check=lambda: None) -> Chips:
    """Chips around every reviewed polygon plus ``background_share`` as many elsewhere (distillation)."""
    from landslide_sar_plugin.core.recipes import composite_valid

    from .dataset import normalise

    grid, chip = inputs.grid, info.tile_size
    shape = (grid.height, grid.width)
    if grid.height < chip or grid.width < chip:
        raise RetrainRefused(f"the run's grid ({grid.width} x {grid.height} px) is smaller than one model tile "
                             f"({chip} px): run the detection on a larger area")
    geoms = list(inputs.positives) + list(inputs.negatives)
    boxes = polygon_boxes(geoms, grid)
    wins: set = set()
    for b in boxes:
        if b is not None:
            wins.update(windows_for_box(b, chip, shape))
    rng = np.random.default_rng(cfg.seed)
    review = sorted(wins)
    if len(review) > cfg.max_chips:
        review = sorted(review[i] for i in rng.choice(len(review), cfg.max_chips, replace=False))
    extra = background_windows(int(round(cfg.background_share * len(review))), chip, shape, set(review), rng)
    recipe = info.get_recipe()
    comps = read_chip_composites(inputs.run, recipe, grid, review + extra, chip, check)
    xs, ids, valid, offs, keys = [], [], [], [], []
    for (key, r, c), comp in sorted(comps.items(), key=lambda kv: (kv[0][1], kv[0][2], kv[0][0])):
        ok = composite_valid(recipe, comp)
        if ok.mean() < 0.25:
            continue
        xs.append(normalise(comp, info.normalisation, fill=info.nodata_fill))
        ids.append(rasterize_ids(geoms, boxes, grid, r, c, chip))
        valid.append(ok)
        offs.append((r, c))
        keys.append(key)
    if not xs:
        raise RetrainRefused("the scenes hold no valid data around the reviewed polygons: check the run's scenes")
    return Chips(np.stack(xs), np.stack(ids), np.stack(valid), np.array(offs, np.int64), keys,
                 len(inputs.positives))


# --------------------------------------------------------------------------- the loss


def review_loss(logits, target, label_w, teacher, distill_w, distill_weight: float = 0.3, balance: bool = False):
    """Masked loss of a fine-tune on a review, on (calibrated) logits; every tensor (n, 1, h, w).

    ``mean BCE(logits, target) over label_w`` + ``distill_weight * mean KL(teacher || p) over distill_w``,
    each mean over its own pixels (0 when it has none).  With ``balance`` the label term is the mean of
    the landslide pixels' and the background pixels' mean BCE (a class with no pixel drops out), so a
    few large drawn slides do not outweigh the rejected polygons.  The KL term is ``BCE(logits, teacher)
    - H(teacher)``: 0 where the new probability equals the teacher's, positive elsewhere.  Pixels with
    both weights 0 contribute nothing and get no gradient.
    """
    import torch
    import torch.nn.functional as F  # noqa: N812

    lw, dw, tg = label_w.float(), distill_w.float(), target.float()
    bce = F.binary_cross_entropy_with_logits(logits, tg, reduction="none")
    if balance:
        terms = [(bce * w).sum() / w.sum() for w in (lw * tg, lw * (1 - tg)) if float(w.sum()) > 0]
        label_term = torch.stack(terms).mean() if terms else bce.sum() * 0.0
    else:
        label_term = (bce * lw).sum() / lw.sum().clamp_min(1.0)
    t = teacher.float().clamp(1e-6, 1 - 1e-6)
    soft = F.binary_cross_entropy_with_logits(logits, t, reduction="none")
    entropy = -(t * torch.log(t) + (1 - t) * torch.log1p(-t))
    distill_term = ((soft - entropy) * dw).sum() / dw.sum().clamp_min(1.0)
    return label_term + distill_weight * distill_term


def pixel_roles(chips: Chips, train_fold_of_polygon: np.ndarray, heldout: np.ndarray | None, cfg: RetrainConfig):
    """(target, label weight, distill weight) arrays (n, chip, chip) for training.

    ``train_fold_of_polygon``: bool per polygon, True where its labels train; ``heldout``: bool per
    polygon whose pixels (grown by ``buffer_px``) carry no loss at all (None: none held out).
    """
    from scipy import ndimage

    ids = chips.ids
    known = ids >= 0
    safe = np.where(known, ids, 0)
    trains = known & train_fold_of_polygon[safe]
    target = (trains & (safe < chips.n_pos)).astype(np.float32)
    label_w = trains & chips.valid
    if cfg.ring_px > 0:
        pos = trains & (safe < chips.n_pos)
        ring = ndimage.binary_dilation(pos, structure=np.ones((1, 3, 3), bool), iterations=cfg.ring_px) & ~known
        label_w = label_w | (ring & chips.valid)
    blocked = np.zeros(ids.shape, bool)
    if heldout is not None and heldout.any():
        held = known & heldout[safe]
        blocked = ndimage.binary_dilation(held, structure=np.ones((1, 3, 3), bool), iterations=max(cfg.buffer_px, 1))
        label_w &= ~blocked
    distill_w = chips.valid & ~label_w & ~blocked & ~known
    return target, label_w.astype(np.float32), distill_w.astype(np.float32)


# --------------------------------------------------------------------------- models


def load_parent(checkpoint: Path, info):
    """The parent network (raw logits), its Platt-calibrated wrapper, and the checkpoint dict."""
    import torch

    from .models import CalibratedLogits, build_model

    try:
        ck = torch.load(str(checkpoint), map_location="cpu", weights_only=True)
        cfg = ck["config"]
        model = build_model(ck["arch"], cfg["in_channels"], cfg["base_filters"], cfg["depth"], cfg.get("dropout", 0.0))
        model.load_state_dict(ck["state_dict"])
    except Exception as exc:  # noqa: BLE001 (any unreadable checkpoint is one user-facing sentence)
        raise RetrainRefused(f"the PyTorch weights {checkpoint.name} cannot be loaded ({type(exc).__name__}: "
                             f"{str(exc)[:120]}); choose the shipped model or one made by retrain") from None
    if cfg["in_channels"] != info.n_bands:
        raise RetrainRefused(f"{checkpoint.name} takes {cfg['in_channels']} bands but the ONNX model {info.n_bands}: "
                             "the weights do not belong to this model")
    cal = info.calibration or {}
    wrapped = CalibratedLogits(model, cal["a"], cal["b"]) if cal.get("kind") == "platt" else model
    return model.eval(), wrapped.eval(), ck


def predict(model, x: np.ndarray, batch: int = 64) -> np.ndarray:
    """Probabilities (n, chip, chip) of ``model`` (logits) on normalised chips."""
    import torch

    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            out.append(torch.sigmoid(model(torch.from_numpy(x[i:i + batch]))).numpy()[:, 0])
    return np.concatenate(out) if out else np.zeros((0,) + x.shape[2:], np.float32)


def fine_tune(start, chips: Chips, roles, cfg: RetrainConfig, *, epochs: int, val=None, check=lambda: None,
              on_epoch=lambda e, loss: None):
    """Fine-tune a copy of ``start`` (calibrated wrapper) for at most ``epochs``; BatchNorm stays in eval mode.

    ``val``: (chip indices, target, label weight) of the held-out fold: early stopping on its labelled
    BCE with ``cfg.patience``.  Returns (model, epochs run, best epoch).
    """
    import torch

    model = copy.deepcopy(start)
    model.eval()  # BatchNorm statistics (and dropout) of the parent, whatever the batch holds
    for p in model.parameters():
        p.requires_grad_(True)
    for _name, buf in model.named_buffers():  # the calibration (a, b) and BN statistics are not trained
        buf.requires_grad_(False)
    target, label_w, distill_w = (torch.from_numpy(a[:, None]) for a in roles)
    x, teacher = torch.from_numpy(chips.x), torch.from_numpy(chips.teacher[:, None])
    useful = np.flatnonzero((roles[1].reshape(len(chips), -1).sum(1) + roles[2].reshape(len(chips), -1).sum(1)) > 0)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=cfg.lr)
    gen = torch.Generator().manual_seed(cfg.seed)
    best, best_state, best_epoch, bad, ran = math.inf, copy.deepcopy(model.state_dict()), 0, 0, 0
    for epoch in range(epochs):
        order = useful[torch.randperm(len(useful), generator=gen).numpy()]
        for s in range(0, len(order), cfg.batch_size):
            check()
            idx = torch.from_numpy(order[s:s + cfg.batch_size])
            opt.zero_grad()
            loss = review_loss(model(x[idx]), target[idx], label_w[idx], teacher[idx], distill_w[idx],
                               cfg.distill_weight, cfg.balance)
            loss.backward()
            opt.step()
        ran = epoch + 1
        score = _val_loss(model, chips, val) if val is not None else -ran
        on_epoch(ran, score)
        if score < best - 1e-5:
            best, best_state, best_epoch, bad = score, copy.deepcopy(model.state_dict()), ran, 0
        else:
            bad += 1
            if bad >= cfg.patience:
                break
    if val is not None:
        model.load_state_dict(best_state)
    model.eval()
    return model, ran, best_epoch if val is not None else ran


def _val_loss(model, chips: Chips, val) -> float:
    import torch
    import torch.nn.functional as F  # noqa: N812

    idx, target, weight = val
    if not len(idx):
        return 0.0
    with torch.no_grad():
        logits = torch.cat([model(torch.from_numpy(chips.x[idx[i:i + 64]])) for i in range(0, len(idx), 64)])
    t, w = torch.from_numpy(target[:, None]), torch.from_numpy(weight[:, None])
    per = F.binary_cross_entropy_with_logits(logits, t, reduction="none")
    return float((per * w).sum() / w.sum().clamp_min(1.0))


# --------------------------------------------------------------------------- held-out evaluation


def heldout_pixels(chips: Chips, heldout: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(chip index, flat pixel index in the chip, truth) of the held-out polygons' valid pixels, each grid
    pixel once (the first chip that holds it)."""
    chip = chips.ids.shape[-1]
    known = chips.ids >= 0
    safe = np.where(known, chips.ids, 0)
    sel = known & heldout[safe] & chips.valid
    n, rr, cc = np.nonzero(sel)
    key = (chips.offsets[n, 0] + rr).astype(np.int64) * 10_000_019 + chips.offsets[n, 1] + cc
    names = sorted(set(chips.keys))
    key = key * len(names) + np.array([names.index(k) for k in chips.keys], np.int64)[n]  # once per composite
    _, first = np.unique(key, return_index=True)
    n, rr, cc = n[first], rr[first], cc[first]
    truth = safe[n, rr, cc] < chips.n_pos
    return n, rr * chip + cc, truth


def counts(prob: np.ndarray, truth: np.ndarray, threshold: float) -> np.ndarray:
    pred = prob >= threshold
    return np.array([(pred & truth).sum(), (pred & ~truth).sum(), (~pred & truth).sum()], np.int64)


def scores(c: np.ndarray) -> dict:
    tp, fp, fn = (int(v) for v in c)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"f1": round(f1, 4), "precision": round(precision, 4), "recall": round(recall, 4), "tp": tp, "fp": fp,
            "fn": fn}


THRESHOLDS = np.round(np.arange(0.02, 0.981, 0.01), 2)


def best_threshold(probs: Sequence[np.ndarray], truths: Sequence[np.ndarray], lowest: float = 0.0) -> float:
    """The threshold (of ``THRESHOLDS``, at least ``lowest``) with the best pooled F1."""
    p, t = np.concatenate(probs), np.concatenate(truths)
    grid = [th for th in THRESHOLDS if th >= lowest - 1e-9] or [float(lowest)]
    f1s = [scores(counts(p, t, th))["f1"] for th in grid]
    return float(grid[int(np.argmax(f1s))])


def threshold_decision(folds: list[dict], parent_threshold: float) -> dict:
    """Keep the parent's threshold unless a threshold chosen on the OTHER folds wins on each held-out fold
    (pooled) by ``REFIT_MARGIN`` F1; then the threshold best on all folds pooled.

    Only thresholds at or ABOVE the parent's are considered: the held-out pixels are those of reviewed
    polygons, mostly candidates the parent already found plus a few drawn slides, and almost no
    unreviewed background, so they always favour a lower threshold, which would flood the unreviewed
    area with false alarms.  Evidence for a higher threshold (rejected polygons above it) has no such bias.
    """
    usable = [f for f in folds if f["truth"].any()]
    parent = scores(sum(counts(f["after_p"], f["truth"], parent_threshold) for f in folds))
    out = {"parent_threshold": parent_threshold, "threshold": parent_threshold, "refit": False,
           "after_at_parent_threshold": parent}
    if len(usable) < 2:
        out["why"] = "fewer than two held-out folds with landslide pixels: the parent's threshold is kept"
        return out
    cv = np.zeros(3, np.int64)
    for f in folds:
        others = [g for g in usable if g is not f]
        th = best_threshold([g["after_p"] for g in others], [g["truth"] for g in others], parent_threshold)
        cv += counts(f["after_p"], f["truth"], th)
    cv_scores = scores(cv)
    out["after_cross_validated_threshold"] = cv_scores
    if cv_scores["f1"] >= parent["f1"] + REFIT_MARGIN:
        out.update(threshold=best_threshold([f["after_p"] for f in folds], [f["truth"] for f in folds],
                                            parent_threshold), refit=True,
                   why=f"a threshold chosen on the other folds gained {cv_scores['f1'] - parent['f1']:+.3f} F1 on "
                       "the held-out folds: re-fitted on all folds")
    else:
        gain = cv_scores["f1"] - parent["f1"]
        out["why"] = (f"a threshold chosen on the other folds changed held-out F1 by {gain:+.3f} (less than "
                      f"{REFIT_MARGIN}): the parent's threshold is kept")
    return out


def cross_validate(base, chips: Chips, folds: np.ndarray, k: int, cfg: RetrainConfig, parent_threshold: float,
                   report, check) -> tuple[list[dict], list[int]]:
    """Per fold: fine-tune on the other folds, predict the held-out polygons' pixels with both models."""
    results, best_epochs = [], []
    base_prob = chips.teacher
    for f in range(k):
        heldout = folds == f
        roles = pixel_roles(chips, (folds >= 0) & ~heldout, heldout, cfg)
        n, flat, truth = heldout_pixels(chips, heldout)
        val_chips = np.unique(n)
        val_roles = pixel_roles(chips, heldout, None, dataclasses.replace(cfg, ring_px=0))
        val = (val_chips, val_roles[0][val_chips], val_roles[1][val_chips])

        def epoch_note(e, loss, f=f):
            report(0.15 + 0.6 * (f + e / cfg.max_epochs) / (k + 1),
                   f"fold {f + 1} of {k}: epoch {e}, held-out loss {loss:.4f}")

        model, _, best_epoch = fine_tune(base, chips, roles, cfg, epochs=cfg.max_epochs, val=val, check=check,
                                         on_epoch=epoch_note)
        after = predict(model, chips.x[val_chips]) if len(val_chips) else np.zeros((0,) + chips.ids.shape[1:])
        pos = np.searchsorted(val_chips, n)
        after_p = after.reshape(len(val_chips), -1)[pos, flat] if len(n) else np.zeros(0)
        before_p = base_prob.reshape(len(chips), -1)[n, flat]
        best_epochs.append(best_epoch)
        results.append({"fold": f + 1, "n_polygons": int(heldout.sum()), "truth": truth, "after_p": after_p,
                        "before_p": before_p, "best_epoch": best_epoch,
                        "before": scores(counts(before_p, truth, parent_threshold)),
                        "after": scores(counts(after_p, truth, parent_threshold))})
    return results, best_epochs


# --------------------------------------------------------------------------- outputs


def new_stem(parent: Path, event_id: str, out_dir: Path) -> str:
    """``<parent>_rt_<event>_<n>``: the first n whose files do not exist (a model is never overwritten)."""
    base = re.sub(r"_rt_.*$", "", parent.stem)
    slug = re.sub(r"[^A-Za-z0-9]+", "-", event_id).strip("-")[:40] or "event"
    n = 1
    suffixes = (".onnx", ".pt", ".md", "_metrics.json", "_deepness.onnx")
    while any((out_dir / f"{base}_rt_{slug}_{n}{s}").exists() for s in suffixes):
        n += 1
    return f"{base}_rt_{slug}_{n}"


class Publisher:
    """Files written into MODELS_DIR under temporary names, renamed at the end (the model last); on any
    failure every file this run wrote there is removed, and MODELS_DIR too if this run created it."""

    def __init__(self, out_dir: Path):
        self.out_dir = out_dir
        self.created_dir = not out_dir.exists()
        self.temps: list[Path] = []
        self.finals: list[Path] = []

    def temp(self, name: str) -> Path:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        path = self.out_dir / f".{name}.retrain-partial"
        self.temps.append(path)
        return path

    def publish(self, pairs: Sequence[tuple[Path, Path]]) -> None:
        for tmp, final in pairs:
            if final.exists():
                raise RetrainRefused(f"{final} appeared while retraining; nothing was overwritten, retrain again")
            os.replace(tmp, final)
            self.finals.append(final)

    def discard(self) -> None:
        for p in self.temps + self.finals:
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
        for p in list(self.out_dir.glob(".*.retrain-partial*")) if self.out_dir.is_dir() else []:
            if any(str(p).startswith(str(t)) for t in self.temps):
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()
        if self.created_dir and self.out_dir.is_dir() and not any(self.out_dir.iterdir()):
            self.out_dir.rmdir()


def model_card(stem: str, inputs: RetrainInputs, info, metrics: dict) -> str:
    b, a = metrics["before"], metrics["after"]
    th = metrics["threshold_decision"]

    def f(v):
        return "n/a" if v is None else f"{v:.3f}"

    lines = [
        f"# Model card: {stem} (fine-tuned on an analyst's review)", "",
        f"- Parent model: `{inputs.model_path.name}` (sha256 `{info.sha256}`).",
        f"- Event: `{inputs.event_id}`; run folder `{inputs.run_dir}`.",
        f"- Reviewed polygons: {metrics['n_landslides']} landslides (accepted / edited / manual; {inputs.manual} drawn "
        f"by hand) and {metrics['n_rejected']} rejected.",
        f"- Held-out figures, {metrics['folds']} spatial folds of the reviewed polygons (each fold's model never saw "
        "the held-out polygons' labels), pixels of the held-out polygons pooled:",
        f"  before (parent at {th['parent_threshold']:.3f}): F1 {f(b['f1'])}, precision {f(b['precision'])}, "
        f"recall {f(b['recall'])};",
        f"  after (fine-tuned at {metrics['threshold']:.3f}): F1 {f(a['f1'])}, precision {f(a['precision'])}, "
        f"recall {f(a['recall'])}.",
        f"- Threshold: {th['why']}.",
        "- What was trained: every weight of the parent network, starting from its weights, BatchNorm in eval mode "
        f"(the parent's statistics), Adam lr {metrics['config']['lr']:g}, {metrics['epochs']} epoch(s) on "
        f"{metrics['n_chips']} chips of {info.tile_size} px around the reviewed polygons and elsewhere. Loss: BCE on "
        "the reviewed pixels (landslide = 1, rejected = 0), plus a distillation term (weight "
        f"{metrics['config']['distill_weight']:g}) towards the parent's probabilities on every other pixel. The "
        "parent's Platt calibration and normalisation are kept.",
        f"- Composite {info.composite} ({len(info.band_names)} bands), tile {info.tile_size} px.",
        "- Fine-tuned on an analyst's review; not validated on an independent real event.",
        ""]
    if inputs.reprojected_from:
        lines.insert(-1, f"- The inventory's polygons were reprojected from {inputs.reprojected_from} onto the run's "
                         "grid.")
    return "\n".join(lines)


def export_all(model, inputs: RetrainInputs, info, ck: dict, metrics: dict, out_dir: Path, report) -> tuple:
    """Write .pt, metrics, card, ONNX (+ parity check) under temporary names, then rename, the model last."""
    from landslide_sar_plugin.core.model import read_model_info

    from .export import export_onnx, parity_check, save_checkpoint

    stem = new_stem(inputs.model_path, inputs.event_id, out_dir)
    pub = Publisher(out_dir)
    try:
        final = {k: out_dir / f"{stem}{s}" for k, s in
                 (("pt", ".pt"), ("metrics", "_metrics.json"), ("card", ".md"), ("onnx", ".onnx"))}
        tmp = {k: pub.temp(v.name) for k, v in final.items()}
        new_info = dataclasses.replace(info, threshold=float(metrics["threshold"]), model_name=stem,
                                       training_events=list(info.training_events) + [inputs.event_id],
                                       synthetic_training_data=bool(info.synthetic_training_data and
                                                                    inputs.run.get("synthetic_input")),
                                       path=None, sha256="")
        report(0.92, "exporting the new model (ONNX)")
        export_onnx(model, tmp["onnx"], new_info, tile_size=info.tile_size)
        metrics["onnx_parity_max_abs_diff"] = parity_check(model, tmp["onnx"], new_info.n_bands, info.tile_size)
        raw = model.model if hasattr(model, "model") else model
        save_checkpoint(raw, tmp["pt"], arch=ck["arch"], norm=ck.get("normalisation", info.normalisation),
                        recipe=ck.get("recipe", info.recipe),
                        extra={"threshold": float(metrics["threshold"]), "parent_model": inputs.model_path.name,
                               "parent_sha256": info.sha256, "calibration": ck.get("calibration") or
                               {k: v for k, v in (info.calibration or {}).items() if k in ("a", "b")},
                               "tile_size": info.tile_size, "tile_overlap": info.tile_overlap})
        metrics["model_file"] = final["onnx"].name
        tmp["metrics"].write_text(json.dumps(_clean(metrics), indent=2) + "\n", encoding="utf-8")
        tmp["card"].write_text(model_card(stem, inputs, info, metrics), encoding="utf-8")
        read_model_info(tmp["onnx"])  # the plugin must be able to read what we ship
        pub.publish([(tmp[k], final[k]) for k in ("pt", "metrics", "card", "onnx")])
        return final["onnx"], final["card"], final["metrics"]
    except BaseException:
        pub.discard()
        raise


def _clean(obj):
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items() if not k.startswith("_")}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        return None if not math.isfinite(float(obj)) else float(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj


# --------------------------------------------------------------------------- the whole retrain


def _require_onnx() -> None:
    """The new model is written with the ``onnx`` package; say so before any training, not after it."""
    if importlib.util.find_spec("onnx") is None:
        raise RetrainRefused("retraining writes the new model with the onnx package, which this Python lacks: "
                             f"install it ({sys.executable} -m pip install onnx) or let the plugin install PyTorch "
                             "again (it installs onnx beside it)")


def retrain(run_dir, inventory, out_dir, *, model=None, event_id=None, cfg: RetrainConfig | None = None,
            report=None, check=lambda: None) -> tuple[Path, Path, Path, dict]:
    """Check, build chips, cross-validate, fine-tune on everything, export.

    Returns (model, card, metrics file, metrics)."""
    import torch

    from landslide_sar_plugin.core.model import ModelError, read_model_info

    cfg = cfg or RetrainConfig()
    report = report or Reporter(False)
    _require_onnx()
    t0, c0 = time.perf_counter(), time.process_time()
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed % 2 ** 32)
    torch.set_num_threads(max(1, cfg.threads))
    report(0.0, "checking the run, the model and the inventory")
    inputs = resolve_inputs(run_dir, inventory, model=model, event_id=event_id)
    try:
        info = read_model_info(inputs.model_path)
    except ModelError as exc:
        raise RetrainRefused(f"the model {inputs.model_path.name} cannot be read ({exc}); choose another model"
                             ) from None
    _, base, ck = load_parent(inputs.checkpoint_path, info)
    report(0.03, f"building chips around {len(inputs.positives) + len(inputs.negatives)} reviewed polygons")
    chips = build_chips(inputs, info, cfg, check)
    chips.teacher = predict(base, chips.x)
    boxes = polygon_boxes(list(inputs.positives) + list(inputs.negatives), inputs.grid)
    folds, k = fold_split(boxes, cfg.folds, cfg.fold_block_chips * info.tile_size, info.tile_size)
    report(0.15, f"{len(chips)} chips; {k} held-out folds")
    results, best_epochs = cross_validate(base, chips, folds, k, cfg, info.threshold, report, check) if k else ([], [])
    decision = threshold_decision(results, info.threshold) if results else {
        "parent_threshold": info.threshold, "threshold": info.threshold, "refit": False,
        "why": "the reviewed polygons lie in one spatial block, so no fold could be held out: the parent's "
               "threshold is kept and no before/after figure exists"}
    epochs = int(np.median(best_epochs)) if best_epochs else max(1, cfg.max_epochs // 2)
    epochs = max(epochs, 1)
    report(0.78, f"fine-tuning on every reviewed polygon ({epochs} epochs)")
    everyone = np.ones(len(boxes), bool) & (np.array([b is not None for b in boxes]))

    def on_epoch(e, loss):
        report(0.78 + 0.12 * e / epochs, f"final model: epoch {e} of {epochs}")

    final_model, _, _ = fine_tune(base, chips, pixel_roles(chips, everyone, None, cfg), cfg, epochs=epochs,
                                  check=check, on_epoch=on_epoch)
    metrics = _metrics(inputs, info, cfg, chips, k, results, decision, epochs, t0, c0)
    return export_all(final_model, inputs, info, ck, metrics, Path(out_dir), report) + (metrics,)


def _metrics(inputs, info, cfg, chips, k, results, decision, epochs, t0, c0) -> dict:
    thr = decision["threshold"]
    if results:
        before = scores(sum(counts(f["before_p"], f["truth"], info.threshold) for f in results))
        after = scores(sum(counts(f["after_p"], f["truth"], thr) for f in results))
    else:
        before = after = {"f1": None, "precision": None, "recall": None}
    per_fold = [{k_: v for k_, v in f.items() if k_ not in ("truth", "after_p", "before_p")} for f in results]
    return {"before": before, "after": after, "folds": k, "n_landslides": len(inputs.positives),
            "n_rejected": len(inputs.negatives), "n_manual": inputs.manual, "event_id": inputs.event_id,
            "base_model": str(inputs.model_path), "base_model_sha256": info.sha256,
            "threshold": thr, "threshold_decision": {k_: v for k_, v in decision.items()},
            "epochs": epochs, "per_fold": per_fold, "n_chips": len(chips),
            "heldout_pixels": int(sum(len(f["truth"]) for f in results)),
            "config": cfg.to_dict(), "inventory_reprojected_from": inputs.reprojected_from,
            "synthetic_input": bool(inputs.run.get("synthetic_input")),
            "validated_on_real_landslide_event": False,
            "seconds": round(time.perf_counter() - t0, 1), "cpu_seconds": round(time.process_time() - c0, 1),
            "created_utc": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}


# --------------------------------------------------------------------------- command line


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run", required=True, help="the plugin's run folder (holds run.json)")
    p.add_argument("--inventory", required=True, help="the training inventory GeoPackage the plugin exports")
    p.add_argument("--out", required=True, help="folder for the new model (an existing model is never overwritten)")
    p.add_argument("--model", help="model to start from (default: the run's model, else the shipped one); its .pt "
                   "must lie beside it")
    p.add_argument("--event-id", help="event of the reviewed polygons (default: the run's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--progress-json", action="store_true", help="JSON progress lines on stdout (for the plugin)")
    p.add_argument("--folds", type=int, default=RetrainConfig.folds, help="held-out folds K (default %(default)s)")
    p.add_argument("--epochs", type=int, default=RetrainConfig.max_epochs, help="most epochs per fine-tune")
    p.add_argument("--lr", type=float, default=RetrainConfig.lr)
    p.add_argument("--distill-weight", type=float, default=RetrainConfig.distill_weight)
    p.add_argument("--ring", type=int, default=RetrainConfig.ring_px, help="px outside accepted polygons taken as 0")
    p.add_argument("--no-balance", action="store_true", help="label term: plain mean over reviewed pixels")


def _on_sigterm(signum, frame):
    raise Terminated()


def run_command(a: argparse.Namespace) -> int:
    """The ``retrain`` subcommand: exit 0 with the done line, 1 with one sentence on stderr, 143 on SIGTERM."""
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    report = Reporter(a.progress_json)
    cfg = RetrainConfig(folds=a.folds, max_epochs=max(1, a.epochs), lr=a.lr, distill_weight=a.distill_weight,
                        ring_px=max(0, a.ring), seed=a.seed, balance=not a.no_balance)
    try:
        model, card, metrics_path, _ = retrain(a.run, a.inventory, a.out, model=a.model, event_id=a.event_id,
                                               cfg=cfg, report=report)
        report(1.0, "done")
        report.done(model, card, metrics_path)
        return 0
    except Terminated:
        print("retraining was stopped (terminated); no new model was written", file=sys.stderr)
        return EXIT_TERMINATED
    except RetrainRefused as exc:
        print(_sentence(str(exc)), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("retraining was interrupted; no new model was written", file=sys.stderr)
        return 1
    except MemoryError:
        print("retraining ran out of memory; close other programs or review a smaller area, then retry",
              file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 (a bug must still be one sentence, not a traceback)
        print(f"retraining failed unexpectedly ({type(exc).__name__}: {str(exc)[:200]}); no new model was written; "
              "please report this with the run folder", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGTERM, previous)


def _sentence(text: str) -> str:
    text = " ".join(text.split())
    return text[0].upper() + text[1:] + ("" if text.endswith(".") else ".") if text else "Retraining failed."
