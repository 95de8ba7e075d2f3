"""End-to-end pipelines: simulate -> chips -> train -> export -> evaluate; train-demo, protocol, finetune."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from landslide_sar_plugin.core import simulate
from landslide_sar_plugin.core.model import ModelInfo, file_sha256, read_model_info
from landslide_sar_plugin.core.recipes import TERRAIN_TOKENS, get_recipe

from . import evaluate as ev_
from .dataset import EventSource, build_dataset, load_dataset, normalisation_stats
from .export import export_onnx, load_checkpoint, ort_session, parity_check, save_checkpoint
from .models import n_parameters
from .splits import spatial_block_split
from .train import TrainConfig, train_model

MODEL_STEM = "landslide_unet"


@dataclass
class EventSpec:
    seed: int
    regime: str
    size: int = 512

    @property
    def event_id(self) -> str:
        return f"sim_{self.regime}_{self.seed}"


@dataclass
class DemoPlan:
    """The events and settings of the shipped model (fixed seeds: the command reproduces the file)."""

    train: list[EventSpec] = field(default_factory=lambda: [
        EventSpec(1001, "earthquake"), EventSpec(1002, "earthquake"), EventSpec(1003, "earthquake"),
        EventSpec(1004, "earthquake"), EventSpec(2001, "rain"), EventSpec(2002, "rain"), EventSpec(2003, "rain"),
        EventSpec(2004, "rain")])
    val: list[EventSpec] = field(default_factory=lambda: [EventSpec(3001, "earthquake"), EventSpec(3002, "rain")])
    test: list[EventSpec] = field(default_factory=lambda: [
        EventSpec(4001, "earthquake"), EventSpec(4002, "earthquake"), EventSpec(4003, "rain"), EventSpec(4004, "rain")])
    recipe: str = "SAR4+terrain"
    recipe_pre: str | None = "median"
    recipe_post: str | None = "median"
    chip: int = 64
    train_stride: int = 32
    keep: str = "ratio"
    neg_ratio: float = 1.0
    tile_overlap: int = 16


def simulate_events(specs: Sequence[EventSpec], work: Path, log=print) -> list[EventSource]:
    out = []
    for s in specs:
        d = work / "events" / s.event_id
        if not (d / "event.json").is_file():
            cfg = simulate.random_event_config(s.seed, regime=s.regime, rows=s.size, cols=s.size)
            res = simulate.simulate_event(d, cfg)
            log(f"  simulated {s.event_id}: {res.n_landslides} landslides, {len(res.scene_paths)} scenes")
        out.append(EventSource.from_simulation(d, s.event_id))
    return out


def _recipe(name, pre=None, post=None):
    return get_recipe(name, pre=pre, post=post)


def sar_band_indices(recipe) -> list[int]:
    return [i for i, t in enumerate(recipe.bands) if t not in TERRAIN_TOKENS]


def make_info(recipe, norm, *, chip, overlap, threshold, arch, training_events, sha, model_name,
              synthetic=True) -> ModelInfo:
    return ModelInfo(composite=recipe.name, band_names=list(recipe.bands), normalisation=norm, tile_size=chip,
                     tile_overlap=overlap, threshold=float(threshold), units=recipe.units(), orbit_pass="any",
                     nodata_fill=0.0, pixel_size_m=10.0, model_name=model_name, architecture=arch,
                     training_events=list(training_events), training_data_sha256=sha,
                     synthetic_training_data=synthetic, recipe=recipe.to_dict())


def choose_threshold(run, sources, recipe, norm, chip, overlap, log=print) -> dict:
    """Best-F1 threshold of the pass-averaged probability pooled over the validation events."""
    res = ev_.evaluate_events(run, sources, recipe, norm, tile=chip, overlap=overlap, threshold=0.5,
                            workdir=Path(tempfile.gettempdir()), baseline=False, log=lambda *_: None)
    best = res["pooled"]["model"]["best_f1"]
    thr = best["threshold"] if np.isfinite(best["threshold"]) else 0.5
    log(f"  validation: best-F1 threshold {thr:.3f} (F1 {best['f1']:.3f}, AUPRC "
        f"{res['pooled']['model']['auprc']:.3f})")
    return {"threshold": float(thr), "val_f1": best["f1"], "val_auprc": res["pooled"]["model"]["auprc"]}


def run_experiment(train_src, val_src, test_src, *, recipe, chip, train_stride, keep, neg_ratio, overlap,
                   cfg: TrainConfig, work: Path, out_model: Path | None, model_name: str, log=print,
                   baseline: bool = True, init_state=None, norm=None, split_text: str = "") -> dict:
    """Chips -> train -> ONNX -> threshold on validation -> evaluation on the test events."""
    t0 = time.perf_counter()
    ids = [[s.event_id for s in side] for side in (train_src, val_src, test_src)]
    for a, b in ((0, 1), (0, 2), (1, 2)):
        if set(ids[a]) & set(ids[b]):
            raise ValueError(f"event(s) {sorted(set(ids[a]) & set(ids[b]))} on two sides of the split")
    ds_dir = work / f"chips_{recipe.name}_{recipe.pre}_{recipe.post}_{chip}".replace("+", "_")
    log(f"building chips ({recipe.name}, chip {chip}) ...")
    man_tr = build_dataset(train_src, recipe, ds_dir / "train", chip=chip, stride=train_stride, keep=keep,
                           neg_ratio=neg_ratio, log=log)
    man_va = build_dataset(val_src, recipe, ds_dir / "val", chip=chip, stride=chip, keep="all", log=log)
    _, train = load_dataset(man_tr)
    _, val = load_dataset(man_va)
    if norm is None:
        norm = normalisation_stats(train.x)  # TRAINING split only
    t_data = time.perf_counter() - t0
    log(f"training {cfg.arch} ({len(train)} train chips, {len(val)} val chips, loss {cfg.loss}, "
        f"augment {cfg.augment}) ...")
    model, hist = train_model(train, val, norm, cfg, sar_bands=sar_band_indices(recipe), init_state=init_state,
                              log=log)
    tmp_onnx = work / f"{model_name}.tmp.onnx"
    info = make_info(recipe, norm, chip=chip, overlap=overlap, threshold=0.5, arch=cfg.arch,
                     training_events=[s.event_id for s in train_src], sha=train.sha256(), model_name=model_name,
                     synthetic=all(s.synthetic for s in train_src))
    export_onnx(model, tmp_onnx, info, tile_size=chip)
    run = ev_.onnx_runner(ort_session(tmp_onnx))
    thr = choose_threshold(run, val_src, recipe, norm, chip, overlap, log)
    info.threshold = thr["threshold"]
    final = out_model or tmp_onnx
    export_onnx(model, final, info, tile_size=chip, with_deepness=final != tmp_onnx)
    if final != tmp_onnx:
        tmp_onnx.unlink(missing_ok=True)
    parity = parity_check(model, final, len(recipe.bands), chip)
    log(f"  ONNX parity max |diff| {parity:.2e}")
    log("evaluating on held-out events ...")
    results = ev_.evaluate_events(ev_.onnx_runner(ort_session(final)), test_src, recipe, norm, tile=chip,
                                overlap=overlap, threshold=info.threshold, workdir=work / f"baseline_{model_name}",
                                baseline=baseline, log=log)
    context = {
        "synthetic": True, "split": split_text or (
            f"split by event (no event on two sides): train on {', '.join(s.event_id for s in train_src)}; "
            f"validation (early stopping, threshold) on {', '.join(s.event_id for s in val_src)}; "
            f"test on unseen {', '.join(s.event_id for s in test_src)}"),
        "recipe": recipe.to_dict(), "chip_size": chip, "tile_overlap": overlap, "train_config": cfg.to_dict(),
        "history": hist, "threshold": thr, "onnx_parity_max_abs_diff": parity,
        "n_parameters": n_parameters(model), "training_events": [s.to_dict() for s in train_src],
        "validation_events": [s.to_dict() for s in val_src], "test_events": [s.to_dict() for s in test_src],
        "training_data_sha256": info.training_data_sha256, "normalisation": norm,
        "timings_s": {"data": round(t_data, 1), "train": hist["train_seconds"],
                      "total": round(time.perf_counter() - t0, 1)},
    }
    return {"model": model, "info": info, "results": results, "context": context, "onnx": final, "norm": norm}


# --------------------------------------------------------------------------- model card


def model_card(exp: dict, *, plan_text: str, command: str, onnx_path: Path) -> str:
    ctx, res, info = exp["context"], exp["results"], exp["info"]
    regimes = sorted({e["regime"] for e in ctx["training_events"]})
    pm, pa = res["pooled"]["model"], res["pooled"].get("a_ratio")
    lines = [
        f"# Model card: {info.model_name}", "",
        "**Trained on SYNTHETIC data only. It has NOT been validated on real Sentinel-1 data.** Every training, "
        "validation and test scene was produced by the project's Sentinel-1 simulator "
        "(`landslide_sar_plugin.core.simulate`); real radar has effects the simulator lacks. Treat its output "
        "as a candidate map for an analyst to review, never as a finished inventory.", "",
        "## What it is", "",
        f"- Architecture: {info.architecture} ({ctx['train_config']['depth']} levels, "
        f"{ctx['train_config']['base_filters']} base filters, {ctx['n_parameters']:,} parameters), sigmoid inside "
        f"the graph; ONNX opset 17, dynamic batch; file `{onnx_path.name}` "
        f"({onnx_path.stat().st_size / 1e6:.2f} MB, sha256 `{file_sha256(onnx_path)[:16]}...`).",
        f"- Input: composite **{info.composite}** (pre {ctx['recipe']['pre']}, post {ctx['recipe']['post']}), bands "
        f"{', '.join(info.band_names)} ({', '.join(info.units)}), ONE orbit pass per composite (run per pass; "
        "the evaluation averages the ascending and descending probabilities).",
        f"- Normalisation: per-band standardisation, mean/std from the training chips only: mean "
        f"{[round(v, 3) for v in info.normalisation['mean']]}, std {[round(v, 3) for v in info.normalisation['std']]}; "
        "NaN -> 0 after normalisation.",
        f"- Tiles {info.tile_size} px, overlap {info.tile_overlap} px, 10 m pixels; threshold "
        f"{info.threshold:.3f} = best F1 on the validation events.", "",
        "## Data", "",
        f"- Training: {len(ctx['training_events'])} simulated events, regimes {', '.join(regimes)} "
        f"({', '.join(e['event_id'] for e in ctx['training_events'])}); labels = the simulator's truth polygons.",
        f"- Validation (early stopping, threshold): {', '.join(e['event_id'] for e in ctx['validation_events'])}.",
        f"- Test (never seen in training or validation): {', '.join(e['event_id'] for e in ctx['test_events'])}.",
        f"- Split: {ctx['split']}.",
        f"- Training chips: {ctx['history']['n_train_chips']} (all chips with landslides plus negatives 1:1, stride "
        f"{plan_text}); training data sha256 `{ctx['training_data_sha256'][:16]}...`.", "",
        "## Training", "",
        f"- Loss {ctx['train_config']['loss']}, Adam lr {ctx['train_config']['lr']}, ReduceLROnPlateau, stopped by "
        f"{ctx['history']['stopped']} (best epoch {ctx['history']['best_epoch']}), seed "
        f"{ctx['train_config']['seed']}, SAR augmentation {'on' if ctx['train_config']['augment'] else 'off'} "
        "(blur, noise in dB, motion blur, crop+resize, flips; no rotation).",
        f"- Trained on CPU in {ctx['history']['train_seconds'] / 60:.1f} min; reproduce with `{command}`.", "",
        "## Metrics on held-out simulated events", "",
        ev_.results_table(res), "",
        f"Pooled: model F1 {ev_._f(pm['pixel']['f1'])} at the shipped threshold, AUPRC {ev_._f(pm['auprc'])} "
        f"(no-skill {ev_._f(pm['no_skill_auprc'], 4)})"
        + (f"; A_ratio (core.detect defaults) F1 {ev_._f(pa['default']['pixel']['f1'])}, at its best single "
           f"threshold over these events {ev_._f(pa['best']['f1'])}, AUPRC {ev_._f(pa['auprc'])}." if pa else "."), "",
        "A_ratio 'best' uses the threshold that maximises F1 on the evaluated events themselves (an oracle the "
        "analyst does not have); the model's threshold was fixed on the validation events.", "",
        "## Intended use", "",
        "Rapid, analyst-reviewed mapping of candidate event landslides (earthquake or rainfall triggered) from "
        "Sentinel-1 GRD pre/post stacks in the QGIS plugin, next to the A_ratio method; candidates go to review "
        "and corrected polygons back into the inventory (`python -m training finetune`).", "",
        "## Limitations", "",
        "- **Not validated on real Sentinel-1 data; all training data synthetic.** Expect lower skill on real "
        "scenes until it is fine-tuned on reviewed real inventories.",
        "- Simulated physics: landslides mostly lower VH/VV backscatter; distractors are crops, soil moisture, "
        "logging, wind on water. Real scenes add more (snow, wet snow, urban change, processing artefacts).",
        "- Landslides in radar shadow or with no backscatter change are not detectable.",
        "- 10 m pixels; trained at 10 m only.", "",
    ]
    return "\n".join(lines)


def _write_outputs(exp: dict, out_dir: Path, stem: str, command: str, plan_text: str, extra: dict) -> dict:
    onnx_path = out_dir / f"{stem}.onnx"
    save_checkpoint(exp["model"], out_dir / f"{stem}.pt", arch=exp["info"].architecture, norm=exp["norm"],
                    recipe=exp["context"]["recipe"], extra={"threshold": exp["info"].threshold,
                                                            "tile_size": exp["info"].tile_size,
                                                            "tile_overlap": exp["info"].tile_overlap})
    report_dir = out_dir / f"{stem}_report"
    doc = ev_.write_report(exp["results"], report_dir, title=f"Evaluation of {stem}",
                         context={**exp["context"], **extra, "command": command})
    (out_dir / f"{stem}.md").write_text(model_card(exp, plan_text=plan_text, command=command, onnx_path=onnx_path),
                                        encoding="utf-8")
    metrics = {"model_file": onnx_path.name, "model_sha256": file_sha256(onnx_path),
               "model_size_bytes": onnx_path.stat().st_size, "synthetic_training_data": True,
               "validated_on_real_data": False, **{k: v for k, v in doc.items() if k != "history"},
               "history": exp["context"]["history"]}
    (out_dir / f"{stem}_metrics.json").write_text(json.dumps(ev_._clean(metrics), indent=2) + "\n", encoding="utf-8")
    return metrics


# --------------------------------------------------------------------------- train-demo


def default_train_config(**overrides) -> TrainConfig:
    base = TrainConfig(arch="unet", base_filters=16, depth=3, loss="bce_dice", lr=2e-3, batch_size=16,
                       max_epochs=30, patience=6, lr_patience=2, augment=True, seed=0, threads=2, max_minutes=25.0)
    return dataclasses.replace(base, **overrides)


def train_demo(out_dir: str | Path, *, work: str | Path | None = None, plan: DemoPlan | None = None,
               cfg: TrainConfig | None = None, stem: str = MODEL_STEM, log=print, keep_work: bool = False) -> dict:
    """Simulate the demo events, train, export ``<stem>.onnx`` + ``.pt`` + card + metrics into ``out_dir``."""
    plan = plan or DemoPlan()
    cfg = cfg or default_train_config()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    own_work = work is None
    work = Path(work) if work else Path(tempfile.mkdtemp(prefix="training_demo_"))
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    try:
        log(f"simulating events into {work} ...")
        tr = simulate_events(plan.train, work, log)
        va = simulate_events(plan.val, work, log)
        te = simulate_events(plan.test, work, log)
        recipe = _recipe(plan.recipe, plan.recipe_pre, plan.recipe_post)
        exp = run_experiment(tr, va, te, recipe=recipe, chip=plan.chip, train_stride=plan.train_stride,
                             keep=plan.keep, neg_ratio=plan.neg_ratio, overlap=plan.tile_overlap, cfg=cfg, work=work,
                             out_model=out_dir / f"{stem}.onnx", model_name=stem, log=log)
        command = "python -m training train-demo --out " + str(out_dir)
        metrics = _write_outputs(exp, out_dir, stem, command, f"{plan.train_stride} px",
                                 {"wall_clock_s": round(time.perf_counter() - t0, 1)})
        log(f"wrote {out_dir / (stem + '.onnx')} ({metrics['model_size_bytes'] / 1e6:.2f} MB) in "
            f"{(time.perf_counter() - t0) / 60:.1f} min")
        return metrics
    finally:
        if own_work and not keep_work:
            shutil.rmtree(work, ignore_errors=True)


def reevaluate_demo(out_dir: str | Path, *, work: str | Path | None = None, plan: DemoPlan | None = None,
                    stem: str = MODEL_STEM, log=print) -> dict:
    """Re-run the held-out evaluation of an already trained demo model (ONNX untouched) and rewrite its card,
    report and metrics; the training context is read back from the previous ``<stem>_metrics.json``."""
    plan = plan or DemoPlan()
    out_dir = Path(out_dir)
    onnx_path = out_dir / f"{stem}.onnx"
    prev = json.loads((out_dir / f"{stem}_metrics.json").read_text())
    info = read_model_info(onnx_path)
    model, _ = load_checkpoint(out_dir / f"{stem}.pt")
    work = Path(work) if work else Path(tempfile.mkdtemp(prefix="training_reeval_"))
    te = simulate_events(plan.test, work, log)
    va = simulate_events(plan.val, work, log)
    tr = simulate_events(plan.train, work, log)
    recipe = info.get_recipe()
    results = ev_.evaluate_events(ev_.onnx_runner(ort_session(onnx_path)), te, recipe, info.normalisation,
                                  tile=info.tile_size, overlap=info.tile_overlap, threshold=info.threshold,
                                  workdir=work / f"baseline_{stem}", log=log)
    keys = ("recipe", "chip_size", "tile_overlap", "train_config", "history", "threshold", "onnx_parity_max_abs_diff",
            "n_parameters", "training_events", "validation_events", "test_events", "training_data_sha256",
            "normalisation", "timings_s")
    context = {k: prev[k] for k in keys if k in prev}
    context["synthetic"] = True
    context["split"] = (f"split by event (no event on two sides): train on {', '.join(s.event_id for s in tr)}; "
                        f"validation (early stopping, threshold) on {', '.join(s.event_id for s in va)}; "
                        f"test on unseen {', '.join(s.event_id for s in te)}")
    exp = {"model": model, "info": info, "results": results, "context": context, "norm": info.normalisation}
    return _write_outputs(exp, out_dir, stem, "python -m training train-demo --out " + str(out_dir),
                          f"{plan.train_stride} px", {"wall_clock_s": prev.get("wall_clock_s")})


# --------------------------------------------------------------------------- seed_001 protocol


def protocol(out_dir: str | Path, *, train_specs, val_specs, test_specs, recipe: str, terrain_recipe: str,
             cfg: TrainConfig, work: str | Path | None = None, chip: int = 64, pre: str | None = None,
             post: str | None = None, log=print) -> dict:
    """Train on events A, test on unseen events B: {no aug, aug} x {SAR only, SAR + terrain}."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    work = Path(work) if work else Path(tempfile.mkdtemp(prefix="training_protocol_"))
    tr, va, te = (simulate_events(s, work, log) for s in (train_specs, val_specs, test_specs))
    rows = {}
    for rname in (recipe, terrain_recipe):
        for aug in (False, True):
            key = f"{rname}{' (AUG)' if aug else ''}"
            log(f"== {key}")
            exp = run_experiment(tr, va, te, recipe=get_recipe(rname, pre=pre, post=post), chip=chip,
                                 train_stride=chip // 2,
                                 keep="ratio", neg_ratio=1.0, overlap=chip // 4,
                                 cfg=dataclasses.replace(cfg, augment=aug), work=work / key.replace(" ", "_"),
                                 out_model=None, model_name="protocol", log=log, baseline=not rows)
            pm = exp["results"]["pooled"]["model"]
            rows[key] = {"f1": pm["pixel"]["f1"], "best_f1": pm["best_f1"]["f1"], "auprc": pm["auprc"],
                         "no_skill": pm["no_skill_auprc"], "threshold": pm["threshold"],
                         "per_event": {k: v["model"]["pixel"]["f1"] for k, v in exp["results"]["events"].items()}}
            if "a_ratio" in exp["results"]["pooled"]:
                rows["A_ratio (defaults / best)"] = {
                    "f1": exp["results"]["pooled"]["a_ratio"]["default"]["pixel"]["f1"],
                    "best_f1": exp["results"]["pooled"]["a_ratio"]["best"]["f1"],
                    "auprc": exp["results"]["pooled"]["a_ratio"]["auprc"]}
    doc = {"synthetic": True, "protocol": "seed_001: train on events A, test on unseen events B",
           "train_events": [s.event_id for s in tr], "validation_events": [s.event_id for s in va],
           "test_events": [s.event_id for s in te], "train_config": cfg.to_dict(), "results": rows}
    (out_dir / "protocol.json").write_text(json.dumps(ev_._clean(doc), indent=2) + "\n", encoding="utf-8")
    md = ["# seed_001 protocol (SYNTHETIC events)", "",
          f"Train {', '.join(doc['train_events'])}; validate {', '.join(doc['validation_events'])}; "
          f"test on unseen {', '.join(doc['test_events'])}.", "",
          "| setting | pooled F1 @val thr | best F1 | AUPRC |", "|---|---|---|---|"]
    for k, v in rows.items():
        md.append(f"| {k} | {ev_._f(v['f1'])} | {ev_._f(v['best_f1'])} | {ev_._f(v['auprc'])} |")
    (out_dir / "protocol.md").write_text("\n".join(md) + "\n", encoding="utf-8")
    return doc


# --------------------------------------------------------------------------- analyst loop: fine-tune


def finetune(*, inventory: str | Path, scenes: str | Path, dem: str | Path, event: str, model: str | Path,
             out_dir: str | Path, event_id: str | None = None, epochs: int = 10, lr: float = 3e-4, seed: int = 0,
             block: int = 128, buffer: int = 16, log=print, stem: str | None = None) -> dict:
    """Fine-tune the current model on an inventory; write a NEW model (+ .pt, card, metrics) into ``out_dir``.

    The validation side is a spatially blocked split of the inventory event (blocks of ``block`` px,
    ``buffer`` px between the sides): early stopping, threshold and the reported metrics all come from it.
    Refuses to write over an existing model file.
    """
    model_path = Path(model)
    ck_path = model_path.with_suffix(".pt")
    if not ck_path.is_file():
        raise FileNotFoundError(f"fine-tuning needs the PyTorch weights next to the model: {ck_path} is missing")
    info = read_model_info(model_path)
    out_dir = Path(out_dir)
    stem = stem or f"{info.model_name}_ft_{dt.datetime.now(dt.timezone.utc):%Y%m%dT%H%M%S}"
    target = out_dir / f"{stem}.onnx"
    if target.exists() or (out_dir / f"{stem}.pt").exists() or target.resolve() == model_path.resolve():
        raise FileExistsError(f"{target} already exists; fine-tuning never overwrites a model (choose another --out)")
    base_model, ck = load_checkpoint(ck_path)
    recipe = info.get_recipe()
    norm = info.normalisation  # the weights were trained on this normalisation: keep it
    chip = info.tile_size
    eid = event_id or f"inventory_{Path(inventory).stem}"
    src = EventSource(eid, Path(scenes), Path(dem), event, Path(inventory), synthetic=False,
                      label_event_id=event_id)
    work = Path(tempfile.mkdtemp(prefix="training_finetune_"))
    try:
        man = build_dataset([src], recipe, work / "chips", chip=chip, stride=chip // 2, keep="all", log=log)
        manifest, chips = load_dataset(man)
        g = manifest["events"][eid]["grid"]
        split = spatial_block_split(chips.offsets, chip, (g["height"], g["width"]), block=max(block, chip),
                                    buffer=buffer, seed=seed, event_id=eid)
        labelled = (chips.fraction > 0) | chips.reviewed_negative
        tr_idx = split.train[labelled[split.train] | (np.arange(len(chips))[split.train] % 4 == 0)]
        train, val = chips.subset(tr_idx), chips.subset(split.test)
        if len(train) == 0 or len(val) == 0:
            raise ValueError("the inventory gives too few chips for a blocked split; map a larger area")
        log(f"fine-tuning on {len(train)} chips, validating on {len(val)} ({split.describe()})")
        cfg = default_train_config(lr=lr, max_epochs=epochs, patience=4, max_minutes=30.0, seed=seed,
                                   arch=ck["arch"], base_filters=ck["config"]["base_filters"],
                                   depth=ck["config"]["depth"])
        model_ft, hist = train_model(train, val, norm, cfg, sar_bands=sar_band_indices(recipe),
                                     init_state=base_model.state_dict(), log=log)
        # threshold and metrics on the validation blocks (chip level, full chips)
        import torch

        from .train import predict_logits, to_tensors
        xv, yv, wv = to_tensors(val, norm)
        pv = torch.sigmoid(predict_logits(model_ft, xv)).numpy()[:, 0]
        pb = torch.sigmoid(predict_logits(base_model, xv)).numpy()[:, 0]
        truth, valid = yv.numpy()[:, 0] > 0.5, wv.numpy()[:, 0] > 0.5
        best = ev_.M.best_f1_threshold(pv, truth, valid)
        thr = best["threshold"] if np.isfinite(best["threshold"]) else info.threshold
        new_info = dataclasses.replace(info, threshold=float(thr), model_name=stem,
                                       training_events=list(info.training_events) + [eid],
                                       training_data_sha256=train.sha256(),
                                       synthetic_training_data=info.synthetic_training_data and src.synthetic,
                                       path=None, sha256="")
        out_dir.mkdir(parents=True, exist_ok=True)
        export_onnx(model_ft, target, new_info, tile_size=chip, with_deepness=True)
        parity = parity_check(model_ft, target, new_info.n_bands, chip)
        save_checkpoint(model_ft, out_dir / f"{stem}.pt", arch=ck["arch"], norm=norm, recipe=recipe.to_dict(),
                        extra={"threshold": float(thr), "parent_model": str(model_path), "parent_sha256": info.sha256})
        metrics = {
            "model_file": target.name, "parent_model": model_path.name, "parent_sha256": info.sha256,
            "inventory": str(inventory), "event": event, "event_id": eid, "split": split.describe(),
            "threshold": float(thr), "onnx_parity_max_abs_diff": parity, "history": hist,
            "validation": {"fine_tuned": ev_.score_summary(pv, truth, valid, thr),
                           "parent_at_its_threshold": ev_.score_summary(pb, truth, valid, info.threshold)},
            "synthetic_training_data": new_info.synthetic_training_data,
        }
        (out_dir / f"{stem}_metrics.json").write_text(json.dumps(ev_._clean(metrics), indent=2) + "\n",
                                                      encoding="utf-8")
        fv, pvv = metrics["validation"]["fine_tuned"], metrics["validation"]["parent_at_its_threshold"]
        card = [f"# Model card: {stem} (fine-tuned)", "",
                f"Fine-tuned from `{model_path.name}` (sha256 `{info.sha256[:16]}...`) on the inventory "
                f"`{Path(inventory).name}` (accepted/edited = landslide, rejected = background, proposed = ignored), "
                f"event {event}.", "",
                f"- Composite {recipe.name}, bands {', '.join(recipe.bands)}; normalisation kept from the parent.",
                f"- Split: {split.describe()}.",
                f"- Validation blocks: fine-tuned F1 {ev_._f(fv['pixel']['f1'])} at threshold {thr:.3f}, AUPRC "
                f"{ev_._f(fv['auprc'])}; parent F1 {ev_._f(pvv['pixel']['f1'])} at its threshold {info.threshold:.3f}, "
                f"AUPRC {ev_._f(pvv['auprc'])}; no-skill {ev_._f(fv['no_skill_auprc'], 4)}.",
                f"- Synthetic training data: {'yes' if new_info.synthetic_training_data else 'partly (parent)'}."
                " The parent was trained on simulated scenes only; not validated on real Sentinel-1 data beyond "
                "this inventory's validation blocks.", ""]
        (out_dir / f"{stem}.md").write_text("\n".join(card), encoding="utf-8")
        log(f"wrote {target}")
        return metrics
    finally:
        shutil.rmtree(work, ignore_errors=True)
