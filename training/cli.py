"""Command line: ``python -m training {train-demo,reevaluate,protocol,finetune,reexport}``."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from .pipeline import DemoPlan, EventSpec, default_train_config, finetune, protocol, reevaluate_demo, train_demo


def _specs(text: str, size: int) -> list[EventSpec]:
    """``1001:earthquake,2001:rain`` -> event specs."""
    out = []
    for item in text.split(","):
        seed, _, regime = item.strip().partition(":")
        out.append(EventSpec(int(seed), regime or "earthquake", size))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training", description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)

    d = sub.add_parser("train-demo", help="simulate events, train the shipped model from scratch, evaluate, export")
    d.add_argument("--out", required=True, help="folder for landslide_unet.onnx/.pt/.md/_metrics.json")
    d.add_argument("--work", help="keep simulated events and chips here (default: a temporary folder)")
    d.add_argument("--recipe", default=DemoPlan.recipe)
    d.add_argument("--pre", default=DemoPlan.recipe_pre)
    d.add_argument("--post", default=DemoPlan.recipe_post)
    d.add_argument("--arch", default="unet", choices=("unet", "attention_unet"))
    d.add_argument("--loss", default="bce_dice", choices=("dice", "bce_dice", "focal_tversky"))
    d.add_argument("--epochs", type=int, default=default_train_config().max_epochs)
    d.add_argument("--max-minutes", type=float, default=default_train_config().max_minutes)
    d.add_argument("--base-filters", type=int, default=16)
    d.add_argument("--depth", type=int, default=3)
    d.add_argument("--no-augment", action="store_true")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--stem", default="landslide_unet")

    r = sub.add_parser("reevaluate", help="re-run the held-out evaluation of a trained demo model, rewrite its "
                       "card/report/metrics (the ONNX file is not touched)")
    r.add_argument("--out", required=True)
    r.add_argument("--work")
    r.add_argument("--stem", default="landslide_unet")

    p = sub.add_parser("protocol", help="seed_001: train on events A, test on unseen B, +/-aug, +/-terrain")
    p.add_argument("--out", required=True)
    p.add_argument("--work")
    p.add_argument("--train", default="1001:earthquake,1002:earthquake,2001:rain,2002:rain")
    p.add_argument("--val", default="3001:earthquake,3002:rain")
    p.add_argument("--test", default="4001:earthquake,4003:rain")
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--recipe", default="SAR4")
    p.add_argument("--terrain-recipe", default="SAR4+terrain")
    p.add_argument("--pre", default="median", help="pre-event reduction of both recipes")
    p.add_argument("--post", default="median", help="post-event reduction of both recipes")
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--max-minutes", type=float, default=6.0)

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
    a = ap.parse_args(argv)

    if a.cmd == "train-demo":
        plan = dataclasses.replace(DemoPlan(), recipe=a.recipe, recipe_pre=a.pre, recipe_post=a.post)
        cfg = default_train_config(arch=a.arch, loss=a.loss, max_epochs=a.epochs, max_minutes=a.max_minutes,
                                   base_filters=a.base_filters, depth=a.depth, augment=not a.no_augment, seed=a.seed)
        m = train_demo(a.out, work=a.work, plan=plan, cfg=cfg, stem=a.stem, keep_work=bool(a.work))
        pooled = m["results"]["pooled"]
        print(f"pooled held-out F1: model {pooled['model']['pixel']['f1']:.3f}, A_ratio best "
              f"{pooled['a_ratio']['best']['f1']:.3f} (SYNTHETIC events)")
        return 0
    if a.cmd == "reevaluate":
        reevaluate_demo(a.out, work=a.work, stem=a.stem)
        return 0
    if a.cmd == "protocol":
        cfg = default_train_config(max_epochs=a.epochs, max_minutes=a.max_minutes)
        protocol(a.out, train_specs=_specs(a.train, a.size), val_specs=_specs(a.val, a.size),
                 test_specs=_specs(a.test, a.size), recipe=a.recipe, terrain_recipe=a.terrain_recipe, cfg=cfg,
                 work=a.work, pre=a.pre, post=a.post)
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
