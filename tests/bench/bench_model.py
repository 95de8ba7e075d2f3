"""Benchmark of the SHIPPED model's inference on the 2346 x 3842 grid (the Iburi study area of seed_004).

What a user's run costs in the network, per event with both orbit passes, measured in one run for the
shipped model and for the model it replaced (read from git, ``--old REF:PATH``), on the same random
input (the network's speed does not depend on the values):

* a per-pass model (the old ``SAR4+terrain`` U-Net) runs once per pass: two tiled inferences;
* a joint model (``DCHANGE2P``, both passes in one input) runs once.

Both through :func:`core.inference.predict_array` (the engine's lattice, normalisation, blending, tile
cache, 1024 px blocks).  Goal (issue 11): the shipped model's time <= 1.5 x the old one's.  Writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from landslide_sar_plugin.core.inference import TiledModel, create_session, predict_array  # noqa: E402
from landslide_sar_plugin.core.model import read_model_info  # noqa: E402

SHIPPED = ROOT / "landslide_sar_plugin" / "models" / "landslide_unet.onnx"
OLD = "bdb72a2:landslide_sar_plugin/models/landslide_unet.onnx"  # the model before issue 11
GRID = (2346, 3842)


def runs_per_event(info) -> int:
    return 1 if info.get_recipe().joint_passes else 2


def _setup(path: Path, shape, threads: int):
    info = read_model_info(path)
    model = TiledModel(create_session(path, threads=threads, prefer_gpu=False), info, batch_size=8)
    stack = np.random.default_rng(0).normal(size=(info.n_bands, *shape)).astype(np.float32)
    predict_array(model, stack[:, :256, :256])  # warm-up
    return info, model, stack


def time_models(paths: dict[str, Path], shape, *, threads: int, repeat: int, block: int) -> dict:
    """Seconds per two-pass event for each model; the repeats alternate between the models, so that load
    from other processes falls on both alike; the median is reported."""
    setups = {name: _setup(path, shape, threads) for name, path in paths.items()}
    times = {name: [] for name in paths}
    for _ in range(repeat):
        for name, (info, model, stack) in setups.items():
            t0 = time.perf_counter()
            for _ in range(runs_per_event(info)):
                predict_array(model, stack, block_size=block)
            times[name].append(time.perf_counter() - t0)
    out = {}
    for name, (info, _, _) in setups.items():
        med = float(np.median(times[name]))
        out[name] = {"file": str(paths[name]), "composite": info.composite, "bands": info.n_bands,
                     "sha256": info.sha256, "network_runs_per_event": runs_per_event(info),
                     "seconds_per_event": med, "all_seconds": times[name],
                     "megapixels_per_second": shape[0] * shape[1] / 1e6 / med}
    return out


def old_model(ref: str, tmp: Path) -> Path | None:
    try:
        data = subprocess.run(["git", "-C", str(ROOT), "show", ref], capture_output=True, check=True).stdout
    except (subprocess.CalledProcessError, FileNotFoundError):
        return None
    path = tmp / "old_model.onnx"
    path.write_bytes(data)
    return path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "model.json")
    ap.add_argument("--model", type=Path, default=SHIPPED)
    ap.add_argument("--old", default=OLD, help="git REF:PATH of the model to compare with")
    ap.add_argument("--rows", type=int, default=GRID[0])
    ap.add_argument("--cols", type=int, default=GRID[1])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--block", type=int, default=1024)
    args = ap.parse_args(argv)
    threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    shape = (args.rows, args.cols)
    with tempfile.TemporaryDirectory() as tmp:
        report = {"benchmark": "shipped model inference per event (both passes)", "grid": list(shape),
                  "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "threads": threads},
                  "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        old = old_model(args.old, Path(tmp))
        paths = {"shipped": args.model, **({"old": old} if old else {})}
        report.update(time_models(paths, shape, threads=threads, repeat=args.repeat, block=args.block))
        if old:
            ratio = report["shipped"]["seconds_per_event"] / report["old"]["seconds_per_event"]
            report["ratio_shipped_over_old"] = ratio
            report["goal"] = "ratio <= 1.5"
            report["goal_met"] = report["ratio_shipped_over_old"] <= 1.5
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1), encoding="utf-8")
    print(json.dumps({k: v for k, v in report.items() if k not in ("machine",)}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
