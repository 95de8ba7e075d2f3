"""TEST DOUBLE of ``python -m training retrain`` (the contract of issue 12); it trains nothing.

    python -m training retrain --run RUN_DIR --inventory INV.gpkg --out MODELS_DIR [--model M.onnx]
                               [--event-id ID] [--seed N] [--progress-json]

``LANDSLIDE_RETRAIN_DOUBLE`` picks the behaviour:

* ``success`` (default): progress lines, then a "new model" (a copy of ``--model`` whose ONNX metadata
  names it ``<name>_ft``, so its sha256 differs), a ``.pt``, a card and a metrics JSON in MODELS_DIR, each
  written under a temporary name and renamed; then the "done" line;
* ``fail``: progress, then one sentence on stderr and exit 1, nothing written;
* ``slow``: progress every 0.1 s for a minute, with a child process (its pid written to
  ``LANDSLIDE_RETRAIN_DOUBLE_CHILD``) that a cancel must stop too; SIGTERM exits 143, nothing written;
* ``crash``: a Python traceback (an unexpected bug), exit 1;
* ``no_done``: progress and exit 0 without the "done" line.

``LANDSLIDE_RETRAIN_DOUBLE_ARGS``, when set, is a file that receives the arguments as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path


def emit(**obj) -> None:
    print(json.dumps(obj), flush=True)


def parse(argv):
    ap = argparse.ArgumentParser(prog="python -m training")
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("retrain")
    r.add_argument("--run", required=True)
    r.add_argument("--inventory", required=True)
    r.add_argument("--out", required=True)
    r.add_argument("--model")
    r.add_argument("--event-id")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--progress-json", action="store_true")
    return ap.parse_args(argv)


def write_model(src: Path, dst: Path, name: str) -> None:
    import onnx

    model = onnx.load(str(src))
    props = {p.key: p for p in model.metadata_props}
    if "model_name" in props:
        props["model_name"].value = name
    else:
        model.metadata_props.add(key="model_name", value=name)
    tmp = dst.with_name(dst.name + ".partial")
    onnx.save(model, str(tmp))
    os.replace(tmp, dst)


def success(args) -> int:
    out = Path(args.out)
    for k in range(1, 5):
        emit(progress=k / 5, message=f"fine-tuning: epoch {k} of 4")
        time.sleep(0.05)
    src = Path(args.model)
    stem = f"{src.stem}_ft_s{args.seed}"
    model = out / f"{stem}.onnx"
    write_model(src, model, f"{src.stem}_ft")
    shutil.copyfile(src.with_suffix(".pt"), out / f"{stem}.pt")
    card = out / f"{stem}.md"
    card.write_text(f"# {stem}\n\nTEST DOUBLE: a copy of {src.name}; nothing was trained.\n", encoding="utf-8")
    metrics = out / f"{stem}_metrics.json"
    metrics.write_text(json.dumps({
        "before": {"f1": 0.41, "precision": 0.35, "recall": 0.5}, "after": {"f1": 0.58, "precision": 0.52,
                                                                           "recall": 0.66},
        "folds": 3, "n_landslides": 14, "n_rejected": 9, "event_id": args.event_id, "base_model": src.name}),
        encoding="utf-8")
    emit(progress=1.0, message="exported")
    emit(done=True, model=str(model), card=str(card), metrics=str(metrics))
    return 0


def slow(args) -> int:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    marker = os.environ.get("LANDSLIDE_RETRAIN_DOUBLE_CHILD")
    if marker:
        Path(marker).write_text(str(child.pid), encoding="utf-8")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # nothing was written: nothing to clean up
    for k in range(600):
        emit(progress=k / 600, message=f"fine-tuning: step {k}")
        time.sleep(0.1)
    return 0


def main(argv=None) -> int:
    args = parse(argv if argv is not None else sys.argv[1:])
    record = os.environ.get("LANDSLIDE_RETRAIN_DOUBLE_ARGS")
    if record:
        Path(record).write_text(json.dumps(sys.argv[1:] if argv is None else argv), encoding="utf-8")
    mode = os.environ.get("LANDSLIDE_RETRAIN_DOUBLE", "success")
    if mode == "fail":
        emit(progress=0.1, message="reading the inventory")
        print(f"the inventory holds no reviewed polygon of event {args.event_id} on the run's grid", file=sys.stderr)
        return 1
    if mode == "slow":
        return slow(args)
    if mode == "crash":
        raise ZeroDivisionError("division by zero")
    if mode == "no_done":
        emit(progress=0.5, message="half way")
        return 0
    return success(args)


if __name__ == "__main__":
    sys.exit(main())
