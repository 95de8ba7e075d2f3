"""End-to-end pipelines: the shipped model (``train-demo``), its re-evaluation, design experiments, fine-tuning.

* :func:`train_demo`: the plan of :mod:`training.experiment` (families -> chips -> train -> calibrate and
  threshold on validation -> ONNX), then every test family through the plugin's own runs, the model card,
  metrics and report; fixed seeds (``make train-demo``).
* :func:`reevaluate_demo`: the test evaluation of an already trained model again (when the A_ratio defaults
  change, the card's baseline columns must follow); the ONNX file is not touched.
* :func:`protocol`: design experiments (recipes, terrain and pass handling) trained on a smaller plan and
  compared on VALIDATION families only, including altgen validation seeds (never its test seeds).
* :func:`finetune`: the analyst loop: a new model from reviewed polygons, never over the old one.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from landslide_sar_plugin.core.model import file_sha256, read_model_info

from . import card as card_
from . import evaluate as ev_
from . import family_eval as fe
from .augment import BandLayout
from .dataset import EventSource, build_dataset, load_dataset
from .experiment import Plan, evaluation_summary, make_info, run_experiment, test_events, write_json  # noqa: F401
from .export import export_onnx, load_checkpoint, parity_check, save_checkpoint
from .models import CalibratedLogits
from .splits import spatial_block_split
from .train import TrainConfig, train_model

MODEL_STEM = "landslide_unet"
DEMO_COMMAND = "make train-demo"


def default_train_config(**overrides) -> TrainConfig:
    # max_epochs and early stopping end the shipped run (deterministic from the seed); the time cap is a safety
    base = TrainConfig(arch="unet", base_filters=16, depth=3, loss="bce_dice", lr=2e-3, batch_size=16,
                       max_epochs=36, patience=6, lr_patience=2, augment=True, seed=0, threads=2, max_minutes=35.0)
    return dataclasses.replace(base, **overrides)


# --------------------------------------------------------------------------- outputs


def write_outputs(*, model, info, context: dict, records, out_dir: Path, stem: str, command: str,
                  design: dict | None = None) -> dict:
    """``<stem>.pt``, ``<stem>.md`` (card), ``<stem>_metrics.json`` and ``<stem>_report/`` beside the ONNX file."""
    onnx_path = out_dir / f"{stem}.onnx"
    cal = context["calibration"]
    design = design or load_design(out_dir / f"{stem}_report" / "protocol.json")
    save_checkpoint(model, out_dir / f"{stem}.pt", arch=info.architecture, norm=info.normalisation,
                    recipe=context["recipe"], extra={"threshold": info.threshold, "tile_size": info.tile_size,
                                                     "tile_overlap": info.tile_overlap,
                                                     "calibration": {"a": cal["a"], "b": cal["b"]}})
    context = {**context, "a_ratio_defaults": card_.a_ratio_defaults()}
    summary = evaluation_summary(records)
    text = card_.model_card(info=info, context=context, records=records, summary=summary, onnx_path=onnx_path,
                            command=command, design=design)
    (out_dir / f"{stem}.md").write_text(text, encoding="utf-8")
    report = out_dir / f"{stem}_report"
    report.mkdir(exist_ok=True)
    _pr_plot(records, report / "pr_curve.png")
    (report / "report.md").write_text(text.replace("](", "](../") + "\n![precision-recall, altgen test events]"
                                      "(pr_curve.png)\n", encoding="utf-8")
    metrics = {"model_file": onnx_path.name, "model_sha256": file_sha256(onnx_path),
               "model_size_bytes": onnx_path.stat().st_size, "synthetic_training_data": info.synthetic_training_data,
               "real_background_training": True, "validated_on_real_landslide_event": False,
               "threshold": info.threshold, "calibration": info.calibration,
               "targets": card_.targets(summary, records), "summary": summary,
               "one_pass_vs_both": card_.one_pass_summary(records), "context": context, "events": records,
               "design": design or {}}
    write_json(out_dir / f"{stem}_metrics.json", metrics)
    write_json(report / "report.json", metrics)
    return metrics


def _pr_plot(records, path: Path) -> None:
    """Precision-recall of both methods pooled over the altgen test events (the family never seen)."""
    from landslide_sar_plugin.core import metrics as M  # noqa: N812
    from landslide_sar_plugin.core.png import write_png

    rs = [r for r in records if r["family"] == "altgen" and r.get("_truth") is not None]
    if not rs:
        return
    truth = np.concatenate([r["_truth"].ravel() for r in rs])
    model = np.concatenate([np.nan_to_num(r["_score"], nan=-1.0).ravel() for r in rs])
    curves = {"model": M.precision_recall_curve(model, truth, bins=2000)}
    write_png(path, ev_.draw_pr_plot(curves, M.no_skill_baseline(truth)))


# --------------------------------------------------------------------------- train-demo


def train_demo(out_dir: str | Path, *, work: str | Path | None = None, plan: Plan | None = None,
               cfg: TrainConfig | None = None, stem: str = MODEL_STEM, log=print, keep_work: bool = False,
               design: dict | None = None) -> dict:
    """Train the shipped model from fixed seeds and write ``<stem>.onnx`` + ``.pt`` + card + metrics + report."""
    plan = plan or Plan()
    cfg = cfg or default_train_config()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    own_work = work is None
    work = Path(work) if work else Path(tempfile.mkdtemp(prefix="training_demo_"))
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    try:
        exp = run_experiment(plan, cfg, work, out_dir / f"{stem}.onnx", model_name=stem, log=log)
        exp["context"]["wall_clock_s"] = round(time.perf_counter() - t0, 1)
        metrics = write_outputs(model=exp["model"], info=exp["info"], context=exp["context"], records=exp["records"],
                                out_dir=out_dir, stem=stem, command=DEMO_COMMAND, design=design)
        log(f"wrote {out_dir / (stem + '.onnx')} ({metrics['model_size_bytes'] / 1e6:.2f} MB) in "
            f"{(time.perf_counter() - t0) / 60:.1f} min")
        return metrics
    finally:
        if own_work and not keep_work:
            shutil.rmtree(work, ignore_errors=True)


def reevaluate_demo(out_dir: str | Path, *, work: str | Path | None = None, stem: str = MODEL_STEM,
                    log=print) -> dict:
    """Re-run the test evaluation of a trained model (ONNX untouched) and rewrite its card, report and metrics;
    the training context is read back from the previous ``<stem>_metrics.json``."""
    out_dir = Path(out_dir)
    onnx_path = out_dir / f"{stem}.onnx"
    prev = json.loads((out_dir / f"{stem}_metrics.json").read_text())
    info = read_model_info(onnx_path)
    model, _ = load_checkpoint(out_dir / f"{stem}.pt")
    own = work is None
    work = Path(work) if work else Path(tempfile.mkdtemp(prefix="training_reeval_"))
    try:
        plan = Plan(**{k: v for k, v in prev["context"]["plan"].items() if k in Plan.__dataclass_fields__})
        events = test_events(plan, work / "events")
        records = fe.evaluate_events(events, onnx_path, work / "runs", one_pass=plan.test_one_pass, keep_scores=True,
                                     log=log)
        return write_outputs(model=model, info=info, context=prev["context"], records=records, out_dir=out_dir,
                             stem=stem, command=DEMO_COMMAND, design=prev.get("design") or None)
    finally:
        if own:
            shutil.rmtree(work, ignore_errors=True)


# --------------------------------------------------------------------------- design experiments


DESIGNS = {
    "joint + detrend + terrain dropout (shipped design)": {},
    "joint, no detrend (raw log ratio)": {"recipe": "RCHANGE2P"},
    "joint + detrend, no terrain dropout": {"aug": {"p_terrain_drop": 0.0}},
    "per pass + detrend, probabilities averaged, threshold on validation": {"recipe": "DCHANGE"},
    "joint + detrend, BCE loss (no Dice)": {"train": {"loss": "bce"}},
}


def protocol(out_dir: str | Path, *, designs: dict | None = None, plan: Plan | None = None,
             cfg: TrainConfig | None = None, work: str | Path | None = None, log=print) -> dict:
    """Train each design on ``plan`` and compare them on VALIDATION events only (real-background tuning burst
    T137-292321-IW2, simulator validation seeds, altgen validation seeds); writes protocol.json/.md."""
    designs = designs or DESIGNS
    plan = plan or Plan(sim_train=12, sim_train_30m=12, real_train_per_window=1, sim_val=3, altgen_val=4,
                        sim_test=0, altgen_test=0, real_test=False)
    cfg = cfg or default_train_config(max_minutes=12.0, max_epochs=12)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    work = Path(work) if work else Path(tempfile.mkdtemp(prefix="training_protocol_"))
    rows = {}
    for name, change in designs.items():
        log(f"== {name}")
        p = dataclasses.replace(plan, **{k: v for k, v in change.items() if k not in ("aug", "train")})
        c = dataclasses.replace(cfg, **change.get("train", {}))
        if change.get("aug"):
            c = dataclasses.replace(c, aug=dataclasses.replace(cfg.aug, **change["aug"]))
        key = name.split(" (")[0].replace(" ", "_").replace(",", "").replace("+", "p")
        exp = run_experiment(p, c, work / key, work / key / "model.onnx", model_name=key, data=work / "events",
                             evaluate_test=False, log=log)
        recs = fe.evaluate_events(exp["sources"].val + exp["sources"].select, exp["onnx"], work / key / "val_eval",
                                  one_pass=False, keep_scores=True, log=log)
        hist = exp["context"]["history"]
        rows[name] = {"summary": fe.summarise(recs), "calibration_ece": fe.calibration_by_family(recs),
                      "threshold": exp["info"].threshold, "platt": exp["context"]["calibration"],
                      "train_s": hist["train_seconds"], "epochs": len(hist["epochs"])}
    doc = {"synthetic": True, "plan": plan.to_dict(), "train_config": cfg.to_dict(), "results": rows,
           "note": "validation families only: no test event and no REPORT case was looked at"}
    write_json(out_dir / "protocol.json", doc)
    (out_dir / "protocol.md").write_text(protocol_table(rows) + "\n", encoding="utf-8")
    return doc


def load_design(path: Path) -> dict | None:
    """The design experiments' table for the card, from ``python -m training protocol``'s protocol.json."""
    if not path.is_file():
        return None
    doc = json.loads(path.read_text())
    plan = doc.get("plan", {})
    text = (f"Each design trained on a smaller plan ({plan.get('sim_train')} + {plan.get('sim_train_30m')} simulated "
            f"events at 10 / 30 m, {plan.get('real_train_per_window')} real-background case per window, at most "
            f"{doc.get('train_config', {}).get('max_epochs')} epochs) and compared on VALIDATION families only: the "
            "real-background tuning burst T137-292321-IW2, simulator validation seeds and altgen VALIDATION seeds "
            "(7100-7103; the altgen test seeds of the tables above were never looked at). Mean F1 at each design's own "
            "threshold (chosen on the real-background and simulator validation events), and AUPRC. Reproduce with "
            "`python -m training protocol --out DIR`; the full numbers are in `" + path.name + "`.")
    return {"table": protocol_table(doc["results"]), "text": text, "source": path.name}


def protocol_table(rows: dict) -> str:
    head = ["| design | real-bg val F1 model / A_ratio | real-bg val no-change land | altgen val F1 model / A_ratio | "
            "altgen val AUPRC model / A_ratio | simulator val F1 model / A_ratio |", "|---|---|---|---|---|---|"]
    f = card_._f
    for name, r in rows.items():
        s = r["summary"]
        cells = []
        for fam in ("real_background", "altgen", "simulator"):
            x = s.get(fam, {})
            m, a = x.get("model", {}), x.get("a_ratio", {})
            if fam == "real_background":
                cells.append(f"{f(m.get('mean_f1'))} / {f(a.get('mean_f1'))}")
                cells.append(card_._pct(m.get("no_change_land_share_mean")))
            elif fam == "altgen":
                cells.append(f"{f(m.get('mean_f1'))} / {f(a.get('mean_f1'))}")
                cells.append(f"{f(m.get('mean_auprc'))} / {f(a.get('mean_auprc'))}")
            else:
                cells.append(f"{f(m.get('mean_f1'))} / {f(a.get('mean_f1'))}")
        head.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(head)


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
                      label_event_id=event_id, pixel_size=None, family="inventory")
    cal = info.calibration or {}
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
        layout = BandLayout.from_recipe(recipe)
        model_ft, hist = train_model(train, val, norm, cfg, sar_bands=layout.sar_db,
                                     init_state=base_model.state_dict(), log=log, layout=layout)
        if cal.get("kind") == "platt":  # keep the parent's calibration of the logits
            model_ft = CalibratedLogits(model_ft, cal["a"], cal["b"]).eval()
            base_model = CalibratedLogits(base_model, cal["a"], cal["b"]).eval()
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
        raw = model_ft.model if isinstance(model_ft, CalibratedLogits) else model_ft
        save_checkpoint(raw, out_dir / f"{stem}.pt", arch=ck["arch"], norm=norm, recipe=recipe.to_dict(),
                        extra={"threshold": float(thr), "parent_model": str(model_path), "parent_sha256": info.sha256,
                               **({"calibration": {"a": cal["a"], "b": cal["b"]}} if cal else {})})
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
                " The parent was trained on simulated scenes and real backgrounds with synthetic slides; it was not "
                "validated on a real landslide event beyond this inventory's validation blocks.",
                f"- Calibration: {'the parent' + chr(39) + 's Platt scaling kept' if cal else 'none'}.", ""]
        (out_dir / f"{stem}.md").write_text("\n".join(card), encoding="utf-8")
        log(f"wrote {target}")
        return metrics
    finally:
        shutil.rmtree(work, ignore_errors=True)
