"""Dataset builder: scenes + DEM + polygons + event -> georeferenced chips of a composite recipe.

The composites are built with the engine's own code (catalogue, stack selection,
grid, block-wise reading onto the grid, :func:`core.recipes.build_composite`),
so a chip holds exactly what inference will see.  One composite per orbit pass
(the track with the most scenes when a pass has several).

Labels come from either

* an inventory GeoPackage (layer ``landslides`` with a ``status`` field):
  ``accepted``/``edited`` = landslide, ``rejected`` = reviewed background (kept
  as negatives with confidence: chips touching them are always included),
  ``proposed`` = ignored (label 255, excluded from the loss and the metrics);
* the simulator's truth ``truth/landslides.gpkg`` (no ``status``: all positive).

Store: one ``<event>.npz`` per event (chips ``x`` float32 dB/terrain, unnormalised;
``y`` uint8 0/1/255; ``offsets`` (row, col) of each chip's top-left pixel on
the event grid; ``passes``; ``landslide_fraction``; ``reviewed_negative``) and
a ``manifest.json`` with the grid (CRS, geotransform, size) and per-chip
metadata, so every chip can be put back on the map: the chip's geotransform is
``grid_transform @ Affine.translation(col, row)``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from affine import Affine
from rasterio.crs import CRS

from landslide_sar_plugin.core import catalog as cat
from landslide_sar_plugin.core.detect import open_stack_readers
from landslide_sar_plugin.core.detect_model import composite_dem_halo, read_track_composite
from landslide_sar_plugin.core.gpkg import list_layers, read_features
from landslide_sar_plugin.core.grid import Grid, RasterOnGrid
from landslide_sar_plugin.core.recipes import Recipe, composite_valid, get_recipe, split_token

IGNORE = 255
POSITIVE_STATUS = ("accepted", "edited")
NEGATIVE_STATUS = ("rejected",)
IGNORED_STATUS = ("proposed",)
CHIP_SIZES = (64, 128, 256)


class DatasetError(ValueError):
    """The inputs cannot give a training set; the message says why."""


# --------------------------------------------------------------------------- scene composites


@dataclass
class EventComposites:
    """The composites of one event on its grid: one per orbit pass, or ``{"joint": ...}`` for a joint recipe."""

    event_id: str
    grid: Grid
    recipe: Recipe
    event_time: dt.datetime
    composites: dict[str, np.ndarray]  # pass (or "joint") -> (bands, rows, cols) float32
    tracks: dict[str, tuple] = field(default_factory=dict)
    synthetic: bool = False
    polarisations: tuple[str, ...] = ()


def event_grid(scenes: list[cat.Scene], dem_path: Path, event_time: dt.datetime,
               pixel_size: float | None) -> Grid:
    """The grid the A_ratio engine would use (scenes' union clipped to the DEM, on the scenes' lattice)."""
    from landslide_sar_plugin.core.detect import DetectParams, _output_grid

    grid, _ = _output_grid(DetectParams(event_time=event_time, pixel_size=pixel_size), scenes, dem_path)
    return grid


def _as_time(value):
    if value is None or isinstance(value, dt.datetime):
        return value
    return cat.parse_time(value)


def _select(catalog, recipe: Recipe, event_time, pre_days, post_days, pre_range, post_range):
    """Stacks and polarisations as the model run chooses them (:func:`core.detect_model.choose_polarisations`)."""
    from landslide_sar_plugin.core.detect import DetectParams
    from landslide_sar_plugin.core.detect_model import choose_polarisations

    params = DetectParams(event_time=event_time, pre_days=pre_days, post_days=post_days, pre_range=pre_range,
                          post_range=post_range)
    pols = choose_polarisations(recipe, params)(catalog)
    try:
        selection = cat.select_stacks(catalog.scenes, event_time, pre_days=pre_days, post_days=post_days,
                                      pre_range=pre_range, post_range=post_range, polarisations=pols)
    except cat.CatalogError as exc:
        raise DatasetError(str(exc)) from None
    return selection, tuple(pols)


def _chosen_tracks(recipe: Recipe, selection, passes) -> dict[str, list[tuple]]:
    """Tracks per pass: every track with enough post scenes for a joint recipe (inference averages them into
    the pass block), the one with the most scenes for a per-pass recipe."""
    chosen: dict[str, list[tuple]] = {}
    for track in selection.tracks():
        n = len(selection.pre[track]) + len(selection.post[track])
        if len(selection.post[track]) < recipe.min_post_scenes() or (passes and track[0] not in passes):
            continue
        if recipe.joint_passes:
            chosen.setdefault(track[0], []).append(track)
        elif track[0] not in chosen or n > len(selection.pre[chosen[track[0]][0]]) + len(
                selection.post[chosen[track[0]][0]]):
            chosen[track[0]] = [track]
    return chosen


def load_event_composites(
    scenes_dir: str | Path,
    dem_path: str | Path,
    event_time: dt.datetime | str,
    recipe: Recipe | str,
    *,
    event_id: str = "",
    pixel_size: float | None = 10.0,
    pre_days: float = 90.0,
    post_days: float = 30.0,
    pre_range=None,
    post_range=None,
    passes: Sequence[str] | None = None,
    block_size: int = 1024,
    grid: Grid | None = None,
) -> EventComposites:
    """Build the recipe's composite(s) on the event grid, block by block, with the engine's own readers.

    ``pixel_size`` None = the finest input resolution (as the engine); ``passes`` restricts the orbit passes
    (a joint recipe then sees the others as missing: the one-pass evaluation).
    """
    from landslide_sar_plugin.core.detect_model import read_joint_composite

    event_time = _as_time(event_time)
    pre_range = tuple(_as_time(t) for t in pre_range) if pre_range else None
    post_range = tuple(_as_time(t) for t in post_range) if post_range else None
    if isinstance(recipe, str):
        recipe = get_recipe(recipe)
    dem_path = Path(dem_path)
    catalog = cat.read_catalog(scenes_dir)
    if not catalog.scenes:
        raise DatasetError(f"no usable scene in {scenes_dir}")
    selection, pols = _select(catalog, recipe, event_time, pre_days, post_days, pre_range, post_range)
    chosen = _chosen_tracks(recipe, selection, passes)
    if not chosen:
        raise DatasetError(f"no orbit pass has the scenes composite {recipe.name} needs "
                           f"({recipe.min_post_scenes()} post-event scene(s) of {'+'.join(recipe.polarisations())})")
    tracks = [t for ts in chosen.values() for t in ts]
    used = [s for t in tracks for stacks in (selection.pre, selection.post) for s in stacks[t]]
    if grid is None:
        grid = event_grid(used, dem_path, event_time, pixel_size)
    px = grid.pixel_size
    halo = composite_dem_halo(recipe, px)
    sar_halo = recipe.sar_halo_px(px)
    keys = ["joint"] if recipe.joint_passes else list(chosen)
    out = {k: np.full((len(recipe.bands), grid.height, grid.width), np.nan, np.float32) for k in keys}
    readers: dict[str, RasterOnGrid] = {}
    dem_reader = RasterOnGrid(dem_path, 1, grid, halo=halo)
    try:
        by_track = open_stack_readers(selection, tracks, pols, grid, readers, halo=sar_halo)
        for window in grid.blocks(block_size):
            r0, c0 = int(window.row_off), int(window.col_off)
            h, w = int(window.height), int(window.width)
            # The same functions inference uses, so the model is trained on exactly what it will see.
            if recipe.joint_passes:
                out["joint"][:, r0:r0 + h, c0:c0 + w] = read_joint_composite(
                    recipe, {t: by_track[t] for t in tracks}, window, dem_reader, halo, px, sar_halo=sar_halo)
            else:
                for p, (track,) in chosen.items():
                    out[p][:, r0:r0 + h, c0:c0 + w] = read_track_composite(recipe, by_track[track], window,
                                                                           dem_reader, halo, px, sar_halo=sar_halo)
    finally:
        dem_reader.close()
        for rd in readers.values():
            rd.close()
    synthetic = any(s.synthetic for s in used)
    return EventComposites(event_id or f"event_{event_time:%Y%m%dT%H%M}", grid, recipe, event_time, out,
                           {p: ts[0] for p, ts in chosen.items()}, synthetic, pols)


# --------------------------------------------------------------------------- labels


def read_label_polygons(path: str | Path, *, event_id: str | None = None):
    """(positives, negatives, ignored, crs) geometries from an inventory or the simulator's truth."""
    path = Path(path)
    layers = list_layers(path)
    layer = "landslides" if "landslides" in layers else layers[0]
    feats, crs = read_features(path, layer)
    pos, neg, ign = [], [], []
    for f in feats:
        if f.geometry is None:
            continue
        props = f.properties
        if event_id is not None and props.get("event_id") not in (None, "", event_id):
            continue
        status = props.get("status")
        status = str(status).strip().lower() if status is not None else None
        if status is None or status in POSITIVE_STATUS:
            pos.append(f.geometry)
        elif status in NEGATIVE_STATUS:
            neg.append(f.geometry)
        else:  # proposed, or anything unreviewed
            ign.append(f.geometry)
    return pos, neg, ign, crs


def raster_labels(path: str | Path, grid: Grid) -> np.ndarray:
    """Labels from a 0/1 truth raster: 1 where at least half of the grid pixel is landslide (area average)."""
    from rasterio.enums import Resampling
    from rasterio.windows import Window

    with RasterOnGrid(path, 1, grid, resampling=Resampling.average) as rd:
        frac = rd.read(Window(0, 0, grid.width, grid.height))
    labels = np.zeros((grid.height, grid.width), np.uint8)
    labels[np.nan_to_num(frac, nan=0.0) >= 0.5] = 1
    return labels


def rasterize_labels(path: str | Path, grid: Grid, *, event_id: str | None = None):
    """``(labels, reviewed_negative)`` on ``grid``: labels 0 background, 1 landslide, 255 ignored.

    ``path`` is an inventory / truth GeoPackage, or a 0/1 truth raster (GeoTIFF: the real-background cases).
    """
    from rasterio.features import rasterize
    from rasterio.warp import transform_geom

    if path is None:
        return np.zeros((grid.height, grid.width), np.uint8), np.zeros((grid.height, grid.width), bool)
    if Path(path).suffix.lower() in (".tif", ".tiff"):
        labels = raster_labels(path, grid)
        return labels, np.zeros(labels.shape, bool)

    pos, neg, ign, crs = read_label_polygons(path, event_id=event_id)
    src = CRS.from_user_input(crs) if crs else grid.crs
    shape = (grid.height, grid.width)

    def burn(geoms, value):
        if not geoms:
            return np.zeros(shape, np.uint8)
        if src != grid.crs:
            geoms = [transform_geom(src, grid.crs, g) for g in geoms]
        return rasterize([(g, value) for g in geoms], out_shape=shape, transform=grid.transform, fill=0,
                         dtype="uint8")

    negative = burn(neg, 1).astype(bool)
    labels = np.zeros(shape, np.uint8)
    labels[burn(ign, 1) > 0] = IGNORE
    labels[negative] = 0
    labels[burn(pos, 1) > 0] = 1
    return labels, negative & (labels == 0)


# --------------------------------------------------------------------------- chips


def chip_offsets(rows: int, cols: int, chip: int, stride: int | None = None) -> list[tuple[int, int]]:
    """Top-left (row, col) of every chip window lying wholly inside a rows x cols grid."""
    stride = stride or chip
    if rows < chip or cols < chip:
        return []
    rr = list(range(0, rows - chip + 1, stride))
    cc = list(range(0, cols - chip + 1, stride))
    if rr[-1] != rows - chip:
        rr.append(rows - chip)
    if cc[-1] != cols - chip:
        cc.append(cols - chip)
    return [(r, c) for r in rr for c in cc]


@dataclass
class EventSource:
    """Where one event's data lives, and how to read it.

    ``labels_path`` is a truth/inventory GeoPackage or a 0/1 truth raster.  ``pre_range``/``post_range``
    (ISO strings) fix the stack windows (the real-background cases); ``pixel_size`` None = the finest input
    resolution.  ``family`` names the generator (``simulator``, ``real_background``, ``altgen``,
    ``inventory``); ``land_mask`` (real-background cases) is the land the false-alarm share is counted on.
    """

    event_id: str
    scenes_dir: Path
    dem_path: Path
    event_time: str
    labels_path: Path | None  # None: a no-change case (every pixel background)
    regime: str = ""
    synthetic: bool = True
    label_event_id: str | None = None  # filter inventory rows by event_id
    pre_range: tuple[str, str] | None = None
    post_range: tuple[str, str] | None = None
    pixel_size: float | None = 10.0
    family: str = "simulator"
    land_mask: Path | None = None
    kind: str = "event"  # "event" (slides) or "no_change"

    @classmethod
    def from_simulation(cls, sim_dir: str | Path, event_id: str | None = None, *,
                        pixel_size: float | None = 10.0) -> EventSource:
        sim_dir = Path(sim_dir)
        doc = json.loads((sim_dir / "event.json").read_text())
        return cls(event_id or f"sim_{doc['regime']}_{doc['seed']}", sim_dir / "scenes", sim_dir / "dem.tif",
                   doc["event_time"], sim_dir / "truth" / "landslides.gpkg", doc["regime"], True,
                   pixel_size=pixel_size)

    @classmethod
    def from_family_event(cls, ev) -> EventSource:
        """From a :class:`landslide_sar_plugin.core.simulate.families.FamilyEvent`."""
        rng = [None, None]
        for i, r in enumerate((ev.pre_range, ev.post_range)):
            if r is not None:
                rng[i] = tuple(cat.iso_utc(t) for t in r)
        labels = ev.labels or ev.truth_mask
        return cls(ev.event_id, Path(ev.scenes_dir), Path(ev.dem), cat.iso_utc(ev.event_time),
                   Path(labels) if labels else None, ev.regime or "", ev.synthetic, pre_range=rng[0],
                   post_range=rng[1], pixel_size=ev.pixel_size, family=ev.family, land_mask=ev.land_mask,
                   kind=ev.kind)

    def to_dict(self) -> dict:
        out = {"event_id": self.event_id, "scenes_dir": str(self.scenes_dir), "dem": str(self.dem_path),
               "event_time": self.event_time, "labels": str(self.labels_path), "regime": self.regime,
               "synthetic": self.synthetic, "family": self.family, "kind": self.kind,
               "pixel_size": self.pixel_size}
        if self.pre_range:
            out.update(pre_range=list(self.pre_range), post_range=list(self.post_range))
        return out

    def composites(self, recipe, **kw) -> EventComposites:
        """:func:`load_event_composites` with this event's windows and pixel size."""
        return load_event_composites(self.scenes_dir, self.dem_path, self.event_time, recipe,
                                     event_id=self.event_id, pixel_size=kw.pop("pixel_size", self.pixel_size),
                                     pre_range=self.pre_range, post_range=self.post_range, **kw)


@dataclass
class ChipSet:
    """Chips of one or more events, in memory."""

    x: np.ndarray  # (n, bands, chip, chip) float32, unnormalised
    y: np.ndarray  # (n, chip, chip) uint8: 0, 1, 255 ignored
    offsets: np.ndarray  # (n, 2) row, col on the event grid
    events: np.ndarray  # (n,) event ids
    passes: np.ndarray  # (n,) orbit pass
    fraction: np.ndarray  # (n,) landslide fraction of labelled pixels
    reviewed_negative: np.ndarray  # (n,) chip touches a rejected (reviewed non-landslide) polygon

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def subset(self, idx) -> ChipSet:
        idx = np.asarray(idx, dtype=np.int64)
        return ChipSet(self.x[idx], self.y[idx], self.offsets[idx], self.events[idx], self.passes[idx],
                       self.fraction[idx], self.reviewed_negative[idx])

    @staticmethod
    def concat(sets: Sequence[ChipSet]) -> ChipSet:
        sets = [s for s in sets if len(s)]
        if not sets:
            raise DatasetError("no chip at all: the events gave no chip with the chosen options")
        return ChipSet(*(np.concatenate([getattr(s, f) for s in sets]) for f in
                         ("x", "y", "offsets", "events", "passes", "fraction", "reviewed_negative")))

    def sha256(self) -> str:
        h = hashlib.sha256()
        for arr in (self.x, self.y, self.offsets):
            h.update(np.ascontiguousarray(arr).tobytes())
        return h.hexdigest()


def extract_chips(ev: EventComposites, labels: np.ndarray, reviewed_negative: np.ndarray, *, chip: int,
                  stride: int | None = None, keep: str = "all", neg_ratio: float = 1.0, seed: int = 0,
                  min_valid: float = 0.5) -> tuple[ChipSet, list[dict]]:
    """Cut chips of every pass.  ``keep``: ``all``, ``positive`` (only chips with landslides) or
    ``ratio`` (all positive chips plus ``neg_ratio`` negatives per positive).  Chips touching a reviewed
    negative polygon are always kept.  Returns the chips and their per-chip metadata records."""
    if keep not in ("all", "positive", "ratio"):
        raise DatasetError("keep must be 'all', 'positive' or 'ratio'")
    offs = chip_offsets(ev.grid.height, ev.grid.width, chip, stride)
    rng = np.random.default_rng(seed)
    xs, ys, oo, pp, ff, nn = [], [], [], [], [], []
    for p, comp in sorted(ev.composites.items()):
        # pixels the model does not predict (no data) are ignored by the loss, as inference masks them
        valid = composite_valid(ev.recipe, comp)
        comp_labels = np.where(valid, labels, IGNORE).astype(np.uint8)
        cand = []
        for r, c in offs:
            if valid[r:r + chip, c:c + chip].mean() < min_valid:
                continue
            lab = comp_labels[r:r + chip, c:c + chip]
            known = lab != IGNORE
            frac = float((lab == 1).sum() / max(known.sum(), 1))
            neg = bool(reviewed_negative[r:r + chip, c:c + chip].any())
            cand.append((r, c, frac, neg))
        pos = [k for k in cand if k[2] > 0 or k[3]]
        negs = [k for k in cand if not (k[2] > 0 or k[3])]
        if keep == "positive":
            sel = pos
        elif keep == "ratio":
            n = min(len(negs), int(round(neg_ratio * max(len(pos), 1))))
            pick = rng.choice(len(negs), n, replace=False) if n else []
            sel = pos + [negs[i] for i in sorted(pick)]
        else:
            sel = cand
        sel.sort(key=lambda k: (k[0], k[1]))
        for r, c, frac, neg in sel:
            xs.append(comp[:, r:r + chip, c:c + chip])
            ys.append(comp_labels[r:r + chip, c:c + chip])
            oo.append((r, c))
            pp.append(p)
            ff.append(frac)
            nn.append(neg)
    nb = len(ev.recipe.bands)
    chips = ChipSet(
        np.stack(xs).astype(np.float32) if xs else np.zeros((0, nb, chip, chip), np.float32),
        np.stack(ys).astype(np.uint8) if ys else np.zeros((0, chip, chip), np.uint8),
        np.array(oo, np.int64).reshape(-1, 2), np.array([ev.event_id] * len(xs), dtype=object),
        np.array(pp, dtype=object), np.array(ff, np.float64), np.array(nn, bool))
    t = ev.grid.transform
    records = [{"row": int(r), "col": int(c), "pass": p, "landslide_fraction": round(float(f), 6),
                "reviewed_negative": bool(n), "transform": list(t @ Affine.translation(int(c), int(r)))[:6]}
               for (r, c), p, f, n in zip(oo, pp, ff, nn)]
    return chips, records


def grid_record(grid: Grid) -> dict:
    return {"crs": grid.crs.to_wkt(), "crs_name": grid.crs.to_string(), "transform": list(grid.transform)[:6],
            "width": grid.width, "height": grid.height, "pixel_size_m": grid.pixel_size}


def build_dataset(sources: Sequence[EventSource], recipe: Recipe | str, out_dir: str | Path, *, chip: int = 64,
                  stride: int | None = None, keep: str = "all", neg_ratio: float = 1.0, seed: int = 0,
                  pre_days: float = 90.0, post_days: float = 30.0, log=None, reuse: bool = False) -> Path:
    """Write ``<event>.npz`` per event and ``manifest.json`` into ``out_dir``; return the manifest path.

    ``reuse``: events already in an existing manifest built with the same settings are kept as they are.
    """
    if chip not in CHIP_SIZES:
        raise DatasetError(f"chip size must be one of {CHIP_SIZES}, not {chip}")
    recipe = get_recipe(recipe) if isinstance(recipe, str) else recipe
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    manifest = {"format": "landslide_sar.training_chips/1", "recipe": recipe.to_dict(), "chip_size": chip,
                "stride": stride or chip, "keep": keep, "neg_ratio": neg_ratio, "seed": seed,
                "label_values": {"0": "background", "1": "landslide", str(IGNORE): "ignored"}, "events": {}}
    old = {}
    if reuse and (out / "manifest.json").is_file():
        prev = json.loads((out / "manifest.json").read_text())
        if all(prev.get(k) == manifest[k] for k in ("recipe", "chip_size", "stride", "keep", "neg_ratio", "seed")):
            old = prev["events"]
    for i, src in enumerate(sources):
        if src.event_id in old and (out / old[src.event_id]["file"]).is_file():
            manifest["events"][src.event_id] = old[src.event_id]
            continue
        ev = src.composites(recipe, pre_days=pre_days, post_days=post_days)
        labels, negative = rasterize_labels(src.labels_path, ev.grid, event_id=src.label_event_id)
        chips, records = extract_chips(ev, labels, negative, chip=chip, stride=stride, keep=keep,
                                       neg_ratio=neg_ratio, seed=seed + i)
        fname = f"{src.event_id}.npz"
        np.savez(out / fname, x=chips.x, y=chips.y, offsets=chips.offsets,
                 passes=chips.passes.astype(str), landslide_fraction=chips.fraction,
                 reviewed_negative=chips.reviewed_negative)
        manifest["events"][src.event_id] = {
            "file": fname, "source": src.to_dict(), "grid": grid_record(ev.grid), "passes": sorted(ev.composites),
            "tracks": {p: list(t) for p, t in ev.tracks.items()}, "synthetic": bool(ev.synthetic or src.synthetic),
            "n_chips": len(chips), "landslide_fraction": float(np.mean(labels == 1)),
            "sha256": chips.sha256(), "family": src.family, "chips": records}
        if log:
            log(f"  {src.event_id}: {len(chips)} chips ({', '.join(sorted(ev.composites))})")
    path = out / "manifest.json"
    path.write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    return path


def load_dataset(manifest_path: str | Path, events: Sequence[str] | None = None) -> tuple[dict, ChipSet]:
    """The manifest and the chips of ``events`` (all when None)."""
    manifest_path = Path(manifest_path)
    manifest = json.loads(manifest_path.read_text())
    sets = []
    for eid, rec in manifest["events"].items():
        if events is not None and eid not in events:
            continue
        with np.load(manifest_path.parent / rec["file"], allow_pickle=False) as z:
            n = z["x"].shape[0]
            sets.append(ChipSet(z["x"], z["y"], z["offsets"], np.array([eid] * n, dtype=object),
                                z["passes"].astype(object), z["landslide_fraction"], z["reviewed_negative"]))
    return manifest, ChipSet.concat(sets)


# --------------------------------------------------------------------------- normalisation


def normalisation_stats(x: np.ndarray, recipe: Recipe | None = None) -> dict:
    """Per-band mean/std over the finite values of ``x`` (n, bands, rows, cols): the TRAINING chips only.

    With ``recipe``: ``avail_*`` flags keep mean 0 / std 1 (a flag is 0 or 1, also after normalisation), and
    the two pass blocks of a joint recipe share their statistics per token, so swapping the passes (the
    flip augmentation) keeps every band on its scale.
    """
    nb = x.shape[1]
    groups: dict[str, list[int]] = {}
    for b in range(nb):
        token = split_token(recipe.bands[b])[1] if recipe is not None else str(b)
        groups.setdefault(token, []).append(b)
    mean, std = [0.0] * nb, [1.0] * nb
    for token, idx in groups.items():
        if token.startswith("avail_"):
            continue
        v = x[:, idx][np.isfinite(x[:, idx])].astype(np.float64)
        if v.size == 0:
            raise DatasetError(f"band {token} has no finite value in the training chips")
        for b in idx:
            mean[b], std[b] = float(v.mean()), float(max(v.std(), 1e-6))
    return {"kind": "standard", "mean": mean, "std": std}


def normalise(x: np.ndarray, norm: dict, fill: float = 0.0) -> np.ndarray:
    """Standardise (band axis -3) and replace NaN by ``fill``, as the model contract declares."""
    mean = np.asarray(norm["mean"], np.float32).reshape(-1, 1, 1)
    std = np.asarray(norm["std"], np.float32).reshape(-1, 1, 1)
    out = (x.astype(np.float32) - mean) / std
    out[~np.isfinite(out)] = fill
    return out.astype(np.float32)


def chip_window_transform(grid_transform, row: int, col: int) -> Affine:
    t = Affine(*grid_transform[:6]) if not isinstance(grid_transform, Affine) else grid_transform
    return t @ Affine.translation(col, row)


def pixel_of(transform, x: float, y: float) -> tuple[int, int]:
    """(row, col) of the pixel containing map coordinate (x, y)."""
    t = Affine(*transform[:6]) if not isinstance(transform, Affine) else transform
    col, row = ~t * (x, y)
    return int(math.floor(row)), int(math.floor(col))
