"""One training experiment: families -> chips -> train -> calibrate and threshold on validation -> test.

The plan (:class:`Plan`) names, per generator family (:mod:`core.simulate.families`), which events train
the model, which validate it (early stopping, Platt calibration, the threshold) and which test it.  Its
defaults are the shipped model's (``make train-demo``):

* training: simulated events of the calibrated simulator (``random`` preset, both regimes, gentle to
  steep terrain), each cut into chips on a 10 m grid AND on a 30 m grid (the model runs on 10 m GRD and
  30 m OPERA RTC stacks alike), plus real-background chips: real OPERA backscatter of the tuning burst
  T137-292319-IW2 (2021/2022 dates only) with imprinted slides, and real no-change ocean bursts;
* validation: the real-background tuning cases of burst T137-292321-IW2 (a background the model never
  trained on) and simulated events of other seeds;
* test: the real-background REPORT cases, simulated events of other seeds, and the independent
  generator (altgen) that no training or choice ever saw.

Nothing of a test event reaches training, the calibration or the threshold.
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from landslide_sar_plugin.core.model import ModelInfo
from landslide_sar_plugin.core.recipes import get_recipe
from landslide_sar_plugin.core.simulate import families

from . import family_eval as fe
from .augment import BandLayout
from .calibration import apply_platt, choose_threshold, fit_platt
from .dataset import ChipSet, EventSource, build_dataset, load_dataset, normalisation_stats
from .export import export_onnx, parity_check
from .models import CalibratedLogits, n_parameters
from .train import TrainConfig, train_model

PIXEL_SIZES = (10.0, 30.0)


@dataclass
class Plan:
    """Which events of which family go where, and the input settings (the shipped model's defaults)."""

    recipe: str = "DCHANGE2P"
    detrend_radius_m: float | None = None  # None: the recipe's
    chip: int = 64
    stride: int = 32
    tile_overlap: int = 16
    sim_train: int = 28
    sim_train_30m: int = 28  # the same events, cut again on a 30 m grid
    sim_size: int = 384
    sim_val: int = 4
    real_train_per_window: int = 2
    real_val: bool = True
    sim_test: int = 6
    altgen_test: int = 6
    altgen_val: int = 0  # only the design protocol looks at altgen validation events
    altgen_size: int = families.ALTGEN_SIZE_PX
    real_test: bool = True
    neg_ratio: float = 1.0
    max_false_alarm: float = 0.008
    test_one_pass: bool = True

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def get_recipe(self):
        return get_recipe(self.recipe, detrend_radius_m=self.detrend_radius_m)


@dataclass
class Sources:
    train_sim: list[EventSource] = field(default_factory=list)
    train_real: list[EventSource] = field(default_factory=list)
    val: list = field(default_factory=list)  # FamilyEvents: early stopping, calibration, threshold
    select: list = field(default_factory=list)  # altgen validation seeds: design comparisons only, never thresholds
    test: list = field(default_factory=list)

    def counts(self) -> dict:
        return {"train_sim_events": len({s.event_id.rsplit("@", 1)[0] for s in self.train_sim}),
                "train_sim_sources": len(self.train_sim), "train_real_cases": len(self.train_real),
                "val_events": len(self.val), "test_events": len(self.test)}


def _source(ev, pixel_size=None, suffix="") -> EventSource:
    src = EventSource.from_family_event(ev)
    if suffix:
        src = dataclasses.replace(src, event_id=src.event_id + suffix, pixel_size=pixel_size)
    return src


def gather_sources(plan: Plan, data: Path, *, test: bool = True, log=print) -> Sources:
    """Write (or reuse) every event the plan needs under ``data``; return them by role."""
    out = Sources()
    t0 = time.perf_counter()
    sims = families.family_events("simulator", range(max(plan.sim_train, plan.sim_train_30m)), data,
                                  split="train", size=plan.sim_size)
    for i, ev in enumerate(sims):
        if i < plan.sim_train:
            out.train_sim.append(_source(ev, 10.0, "@10m"))
        if i < plan.sim_train_30m:
            out.train_sim.append(_source(ev, 30.0, "@30m"))
    if plan.real_train_per_window:
        specs = families.training_real_cases(plan.real_train_per_window)
        for k, spec in enumerate(specs):
            ev = families._real_event(spec, "train", k, data, None)
            out.train_real.append(_source(ev))
    log(f"  training events ready ({time.perf_counter() - t0:.0f} s)")
    out.val += families.family_events("simulator", range(plan.sim_val), data, split="val", size=plan.sim_size)
    if plan.real_val:
        n = families.n_events("real_background", "val", "all")
        out.val += families.family_events("real_background", range(n), data, split="val", kind="all")
    if plan.altgen_val:
        out.select = families.family_events("altgen", range(plan.altgen_val), data, split="val",
                                            size=plan.altgen_size)
    if test:
        out.test = test_events(plan, data)
    log(f"  validation and test events ready ({time.perf_counter() - t0:.0f} s)")
    return out


def test_events(plan: Plan, data: Path) -> list:
    evs = []
    if plan.real_test:
        n = families.n_events("real_background", "test", "all")
        evs += families.family_events("real_background", range(n), data, split="test", kind="all")
    evs += families.family_events("simulator", range(plan.sim_test), data, split="test", size=plan.sim_size)
    evs += families.family_events("altgen", range(plan.altgen_test), data, split="test", size=plan.altgen_size)
    return evs


def build_chips(plan: Plan, sources: Sources, work: Path, log=print) -> tuple[ChipSet, ChipSet, dict]:
    recipe = plan.get_recipe()
    tag = f"{recipe.name}_r{int(recipe.detrend_radius_m)}_{plan.chip}".replace("+", "_")
    root = work / f"chips_{tag}"
    val_src = [EventSource.from_family_event(ev) for ev in sources.val]
    mans = {
        "sim": build_dataset(sources.train_sim, recipe, root / "train_sim", chip=plan.chip, stride=plan.stride,
                             keep="ratio", neg_ratio=plan.neg_ratio, log=log, reuse=True),
        "real": build_dataset(sources.train_real, recipe, root / "train_real", chip=plan.chip, stride=plan.stride,
                              keep="all", log=log, reuse=True) if sources.train_real else None,
        "val": build_dataset(val_src, recipe, root / "val", chip=plan.chip, stride=plan.chip, keep="all", log=log,
                             reuse=True),
    }
    parts = [load_dataset(m)[1] for k, m in mans.items() if k != "val" and m is not None]
    train = ChipSet.concat(parts)
    val = load_dataset(mans["val"])[1]
    counts = {"train_chips": len(train), "val_chips": len(val),
              "train_chips_by_kind": {"simulator_10m": int(sum(str(e).endswith("@10m") for e in train.events)),
                                      "simulator_30m": int(sum(str(e).endswith("@30m") for e in train.events)),
                                      "real_background_imprinted": int(sum("_no_change" not in str(e)
                                                                           and str(e).startswith("train_")
                                                                           for e in train.events)),
                                      "real_background_no_change_ocean": int(sum("_no_change" in str(e)
                                                                                 for e in train.events))},
              "train_positive_chips": int((train.fraction > 0).sum())}
    return train, val, counts


EITHER_PASS = ModelInfo.__dataclass_fields__["orbit_pass"].default  # "any": ascending and descending alike


def make_info(recipe, norm, *, chip, overlap, threshold, arch, training_events, sha, model_name,
              synthetic=True, calibration=None, real_background=False) -> ModelInfo:
    return ModelInfo(composite=recipe.name, band_names=list(recipe.bands), normalisation=norm, tile_size=chip,
                     tile_overlap=overlap, threshold=float(threshold), units=recipe.units(), orbit_pass=EITHER_PASS,
                     nodata_fill=0.0, pixel_size_m=PIXEL_SIZES[0], model_name=model_name, architecture=arch,
                     training_events=list(training_events), training_data_sha256=sha,
                     synthetic_training_data=synthetic, recipe=recipe.to_dict(),
                     pixel_size_range_m=list(PIXEL_SIZES), calibration=calibration or {},
                     real_background_training=real_background)


def calibrate_and_threshold(model, info: ModelInfo, val_events, work: Path, plan: Plan, log=print) -> dict:
    """Platt scaling and the threshold from the validation events (engine runs of the uncalibrated model)."""
    tmp = work / "uncalibrated.onnx"
    export_onnx(model, tmp, info, tile_size=plan.chip)
    recs = fe.evaluate_events(val_events, tmp, work / "val_runs", baseline=False, one_pass=False, keep_scores=True,
                              log=lambda *_: None)
    scores = np.concatenate([r["_score"].ravel() for r in recs])
    truth = np.concatenate([(r["_truth"] if r["_truth"] is not None else np.zeros(r["_score"].shape, bool)).ravel()
                            for r in recs])
    # every validation family has the same say (a 30 m real crop has 10,000 pixels, a 10 m simulated event 150,000)
    per_family: dict[str, int] = {}
    for r in recs:
        per_family[r["family"]] = per_family.get(r["family"], 0) + r["_score"].size
    weights = np.concatenate([np.full(r["_score"].size, 1.0 / per_family[r["family"]]) for r in recs])
    cal = fit_platt(scores, truth, weights=weights)
    for r in recs:
        r["_score"] = apply_platt(r["_score"], cal)
    choice = choose_threshold(fe.sweeps(recs), max_false_alarm=plan.max_false_alarm)
    log(f"  calibration a={cal['a']:.3f} b={cal['b']:.3f}; threshold {choice['threshold']:.2f} (validation mean F1 "
        f"{choice['validation_mean_f1']:.3f}, no-change land share {choice['validation_no_change_land_share']:.2%})")
    tmp.unlink(missing_ok=True)
    return {"calibration": cal, "threshold": choice, "validation_events": [r["event_id"] for r in recs]}


def run_experiment(plan: Plan, cfg: TrainConfig, work: Path, out_model: Path, *, model_name: str,
                   data: Path | None = None, evaluate_test: bool = True, log=print) -> dict:
    """Chips -> train -> calibrate/threshold on validation -> export ``out_model`` -> test evaluation."""
    t0 = time.perf_counter()
    data = data or work / "events"
    log("gathering events ...")
    sources = gather_sources(plan, data, test=evaluate_test, log=log)
    log("building chips ...")
    train, val, counts = build_chips(plan, sources, work, log=lambda *_: None)
    recipe = plan.get_recipe()
    norm = normalisation_stats(train.x, recipe)  # TRAINING chips only
    t_data = time.perf_counter() - t0
    log(f"training {cfg.arch} on {len(train)} chips ({counts['train_chips_by_kind']}), {len(val)} validation chips")
    layout = BandLayout.from_recipe(recipe)
    model, hist = train_model(train, val, norm, cfg, sar_bands=layout.sar_db, log=log, layout=layout)
    training_ids = [s.event_id for s in sources.train_sim + sources.train_real]
    info = make_info(recipe, norm, chip=plan.chip, overlap=plan.tile_overlap, threshold=0.5, arch=cfg.arch,
                     training_events=training_ids, sha=train.sha256(), model_name=model_name,
                     real_background=bool(sources.train_real))
    log("calibrating and choosing the threshold on the validation events ...")
    chosen = calibrate_and_threshold(model, info, sources.val, work, plan, log)
    cal = chosen["calibration"]
    final = CalibratedLogits(model, cal["a"], cal["b"]).eval()
    info = dataclasses.replace(info, threshold=chosen["threshold"]["threshold"],
                               calibration={k: cal[k] for k in ("kind", "a", "b")})
    export_onnx(final, out_model, info, tile_size=plan.chip, with_deepness=True)
    parity = parity_check(final, out_model, len(recipe.bands), plan.chip)
    log(f"  wrote {out_model} (ONNX parity max |diff| {parity:.2e})")
    records = []
    if evaluate_test:
        log("evaluating on the test events of every family ...")
        records = fe.evaluate_events(sources.test, out_model, work / "test_runs", one_pass=plan.test_one_pass,
                                     keep_scores=True, log=log)
    context = {
        "plan": plan.to_dict(), "recipe": recipe.to_dict(), "train_config": cfg.to_dict(), "history": hist,
        "counts": {**counts, **sources.counts()}, "normalisation": norm, "n_parameters": n_parameters(model),
        "threshold": chosen["threshold"], "calibration": cal, "onnx_parity_max_abs_diff": parity,
        "validation_events": chosen["validation_events"], "training_events": training_ids,
        "training_data_sha256": info.training_data_sha256,
        "timings_s": {"data": round(t_data, 1), "train": hist["train_seconds"],
                      "total": round(time.perf_counter() - t0, 1)},
    }
    return {"model": model, "final": final, "info": info, "records": records, "context": context,
            "onnx": out_model, "norm": norm, "sources": sources}


def evaluation_summary(records) -> dict:
    return {"families": fe.summarise(records), "calibration": fe.calibration_by_family(records)}


def clean(obj):
    """JSON-safe copy: NaN -> None, numpy scalars -> Python, keys starting with ``_`` dropped."""
    if isinstance(obj, dict):
        return {k: clean(v) for k, v in obj.items() if not str(k).startswith("_")}
    if isinstance(obj, (list, tuple)):
        return [clean(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        return None if not math.isfinite(float(obj)) else round(float(obj), 6)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, Path):
        return str(obj)
    return obj


def write_json(path: Path, doc) -> None:
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(json.dumps(clean(doc), indent=1) + "\n", encoding="utf-8")
    tmp.replace(path)


def remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
