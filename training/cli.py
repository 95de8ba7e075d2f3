"""Command line: ``python -m training {train-demo,reevaluate,protocol,finetune,retrain,reexport}``."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from pathlib import Path

from . import retrain as retrain_
from .experiment import Plan
from .losses import LOSSES
from .pipeline import default_train_config, finetune, protocol, reevaluate_demo, train_demo


def _quiet_engine() -> None:
    # the engine's per-run warnings (inferred orbit passes of the OPERA crops, ...) are noise in a training log
    logging.getLogger("landslide_sar_plugin").setLevel(logging.ERROR)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training", description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)

    d = sub.add_parser("train-demo", help="train the shipped model from scratch (fixed seeds), evaluate every "
                       "family, export ONNX + .pt + card + metrics + report")
    d.add_argument("--out", required=True, help="folder for landslide_unet.onnx/.pt/.md/_metrics.json")
    d.add_argument("--work", help="keep the events, chips and runs here (default: a temporary folder)")
    d.add_argument("--recipe", default=Plan.recipe)
    d.add_argument("--arch", default="unet", choices=("unet", "attention_unet"))
    d.add_argument("--loss", default=default_train_config().loss, choices=LOSSES)
    d.add_argument("--epochs", type=int, default=default_train_config().max_epochs)
    d.add_argument("--max-minutes", type=float, default=default_train_config().max_minutes,
                   help="wall-clock cap on the training loop (minutes)")
    d.add_argument("--base-filters", type=int, default=default_train_config().base_filters)
    d.add_argument("--depth", type=int, default=default_train_config().depth)
    d.add_argument("--no-augment", action="store_true")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--stem", default="landslide_unet")

    r = sub.add_parser("reevaluate", help="re-run the test evaluation of a trained model (e.g. after the A_ratio "
                       "defaults changed) and rewrite its card/report/metrics; the ONNX file is not touched")
    r.add_argument("--out", required=True)
    r.add_argument("--work")
    r.add_argument("--stem", default="landslide_unet")

    p = sub.add_parser("protocol", help="design experiments compared on validation families only "
                       "(joint vs per-pass, detrend vs raw ratio, terrain dropout)")
    p.add_argument("--out", required=True)
    p.add_argument("--work")
    p.add_argument("--max-minutes", type=float, default=12.0, help="training cap per design (minutes)")

    f = sub.add_parser("finetune", help="fine-tune the current model on an inventory; writes a NEW model")
    f.add_argument("--inventory", required=True, help="inventory GeoPackage (layer landslides, field status)")
    f.add_argument("--scenes", required=True)
    f.add_argument("--dem", required=True)
    f.add_argument("--event", required=True, help="event time, ISO-8601 UTC")
    f.add_argument("--event-id", help="use only inventory rows of this event_id")
    f.add_argument("--model", required=True, help="current model .onnx (its .pt must lie next to it)")
    f.add_argument("--out", required=True, help="folder for the new model (never overwritten)")
    f.add_argument("--epochs", type=int, default=10)
    f.add_argument("--lr", type=float, default=3e-4)
    f.add_argument("--block", type=int, default=128, help="spatial block size (px) of the validation split")
    f.add_argument("--buffer", type=int, default=16, help="buffer (px) between training and validation blocks")
    f.add_argument("--name", help="file stem of the new model (default: <model>_ft_<UTC time>)")
    x = sub.add_parser("reexport", help="rewrite a model's .onnx (and its _deepness.onnx) from its .pt with today's "
                       "metadata, without retraining; refuses if the probabilities change")
    x.add_argument("--model", required=True, help="the .onnx to rewrite (its metadata is kept)")
    x.add_argument("--checkpoint", help="the .pt weights (default: the .pt next to the model)")

    t = sub.add_parser("retrain", help="a new model from one event's review in the plugin (held-out before/after "
                       "figures, card, metrics); the command the plugin's Retrain runs")
    retrain_.add_arguments(t)
    a = ap.parse_args(argv)
    _quiet_engine()
    if a.cmd == "retrain":
        return retrain_.run_command(a)

    if a.cmd == "train-demo":
        plan = dataclasses.replace(Plan(), recipe=a.recipe)
        cfg = default_train_config(arch=a.arch, loss=a.loss, max_epochs=a.epochs, max_minutes=a.max_minutes,
                                   base_filters=a.base_filters, depth=a.depth, augment=not a.no_augment, seed=a.seed)
        m = train_demo(a.out, work=a.work, plan=plan, cfg=cfg, stem=a.stem, keep_work=bool(a.work))
        for t in m["targets"]:
            print(f"{'met' if t['met'] else 'NOT met'}: {t['target']} ({t['note']})")
        return 0
    if a.cmd == "reevaluate":
        reevaluate_demo(a.out, work=a.work, stem=a.stem)
        return 0
    if a.cmd == "protocol":
        protocol(a.out, cfg=default_train_config(max_minutes=a.max_minutes, max_epochs=12), work=a.work)
        print(f"wrote {Path(a.out) / 'protocol.md'}")
        return 0
    if a.cmd == "reexport":
        from .export import reexport

        model = Path(a.model)
        diffs = reexport(a.checkpoint or model.with_suffix(".pt"), model)
        print(f"rewrote {model} and its Deepness variant; max |probability difference| vs the old file: "
              f"{max(diffs.values()):.2e}")
        return 0
    if a.cmd == "finetune":
        try:
            finetune(inventory=a.inventory, scenes=a.scenes, dem=a.dem, event=a.event, model=a.model, out_dir=a.out,
                     event_id=a.event_id, epochs=a.epochs, lr=a.lr, stem=a.name,
                     block=a.block, buffer=a.buffer)
        except (FileExistsError, FileNotFoundError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        except ValueError as exc:  # CheckpointError, InventoryError, DatasetError...: one line, no traceback
            print(f"error: {exc}", file=sys.stderr)
            return 1
        return 0
    return 1
