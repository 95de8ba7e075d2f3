"""Accuracy of the U-Net inference options on the shipped model's HELD-OUT events (all SIMULATED).

The four test events of the shipped model (``training.pipeline.DemoPlan.test``:
seeds 4001/4002 earthquake, 4003/4004 rain, 512 x 512 px, never seen in
training or validation) are simulated once under ``bench/``.  For each
inference option the full engine path runs (:func:`run_model_detection`:
composites -> tiled inference -> candidates), and the report gives

* pooled and per-event pixel F1 of the candidates against the simulated truth;
* the probability raster's largest and mean absolute difference from the
  model's own tiling (64 px tiles, 16 px overlap) and from untiled inference
  (the whole 512 x 512 event in one tile), over all pixels and over the
  pixels within 8 px of an inference-tile border.

Options: the model's tiling; large tiles (256 and 512 px, overlap 32/64); and,
with ``--int8``, the model statically quantised to int8 (QDQ, calibrated on
composites of TRAINING events, never the test events) at the model's tiling.
Used to choose the engine's default tiling and to decide whether int8 ships
(only if its pooled F1 stays within 0.01 of float32).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402

MODEL = benchlib.ROOT / "landslide_sar_plugin" / "models" / "landslide_unet.onnx"
TEST_EVENTS = [(4001, "earthquake"), (4002, "earthquake"), (4003, "rain"), (4004, "rain")]
CALIBRATION_EVENTS = [(1001, "earthquake"), (2001, "rain")]  # training events of the shipped model
OPTIONS = {"model_64_16": ("model", None, None), "large_256_32": ("large", 256, 32),
           "large_256_64": ("large", 256, 64), "large_512_64": ("large", 512, 64), "untiled_512": ("large", 512, 0)}
SIZE = 512


def simulate(work: Path, seed: int, regime: str) -> Path:
    from landslide_sar_plugin.core import simulate as sim

    folder = work / "heldout" / f"sim_{regime}_{seed}"
    if not (folder / "event.json").is_file():
        sim.simulate_event(folder, sim.random_event_config(seed, regime=regime, rows=SIZE, cols=SIZE))
    return folder


def run(event: Path, out: Path, model: Path, tiling, tile, overlap) -> dict:
    from landslide_sar_plugin.core.catalog import parse_time
    from landslide_sar_plugin.core.detect import DetectParams
    from landslide_sar_plugin.core.detect_model import run_model_detection
    from landslide_sar_plugin.core.metrics import evaluate_files

    shutil.rmtree(out, ignore_errors=True)
    params = DetectParams(event_time=parse_time(json.loads((event / "event.json").read_text())["event_time"]))
    t0 = time.perf_counter()
    res = run_model_detection(event / "scenes", event / "dem.tif", out, params, model, prefer_gpu=False,
                              tiling=tiling, tile_size=tile, tile_overlap=overlap)
    seconds = time.perf_counter() - t0
    px = evaluate_files(res.files["candidates"], event / "truth" / "truth_mask.tif")["pixel"]
    return {"seconds": round(seconds, 2), "inference_s": round(res.timings_s["inference_s"], 2),
            **{k: px[k] for k in ("tp", "fp", "fn")}, "f1": round(px["f1"], 4), "n_candidates": res.n_candidates,
            "tile": res.run_info["blending"]["tile_size"], "overlap": res.run_info["blending"]["tile_overlap"]}


def probability(out: Path) -> np.ndarray:
    import rasterio

    with rasterio.open(out / "probability.tif") as src:
        return src.read(1)


def border_mask(shape, tile: int, overlap: int, width: int = 8) -> np.ndarray:
    """Pixels within ``width`` px of an edge of some inference tile (grid borders excluded)."""
    from landslide_sar_plugin.core.inference import tile_origins

    mask = np.zeros(shape, bool)
    for axis, n in enumerate(shape):
        edges = set()
        for o in tile_origins(n, tile, overlap):
            edges.update(e for e in (o, o + tile) if 0 < e < n)
        for e in edges:
            sl = [slice(None), slice(None)]
            sl[axis] = slice(max(0, e - width), e + width)
            mask[tuple(sl)] = True
    return mask


def diff(a: np.ndarray, b: np.ndarray, where: np.ndarray | None = None) -> dict:
    both = np.isfinite(a) & np.isfinite(b)
    if where is not None:
        both &= where
    d = np.abs(a[both] - b[both])
    return {"max": round(float(d.max()), 5), "mean": round(float(d.mean()), 6)} if d.size else {}


def quantize_int8(work: Path, model: Path) -> Path:
    """Static int8 (QDQ) quantisation calibrated on composites of two TRAINING events (never the test ones)."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    from landslide_sar_plugin.core.catalog import parse_time
    from landslide_sar_plugin.core.detect import DetectParams, prepare_run
    from landslide_sar_plugin.core.detect_model import _ModelPass
    from landslide_sar_plugin.core.inference import block_plans, normalise
    from landslide_sar_plugin.core.model import read_model_info
    from landslide_sar_plugin.core.staging import Progress

    info = read_model_info(model)
    recipe = info.get_recipe()
    chips = []
    for seed, regime in CALIBRATION_EVENTS:
        ev = simulate(work, seed, regime)
        params = DetectParams(event_time=parse_time(json.loads((ev / "event.json").read_text())["event_time"]))
        prep = prepare_run(ev / "scenes", ev / "dem.tif", params, Progress(), polarisations=recipe.polarisations())
        ctx = _ModelPass(prep.grid, params, prep.selection.tracks(), recipe, ev / "dem.tif", 6, {}, prep.selection)
        readers = ctx.open_readers()
        try:
            for plan in block_plans(prep.grid.height, prep.grid.width, info.tile_size, 0, 1024):
                _, inputs = ctx.compute(readers, plan)
                for comp in inputs.composites.values():
                    x = normalise(comp, info)
                    rng = np.random.default_rng(seed)
                    for _ in range(24):
                        r, c = rng.integers(0, x.shape[1] - info.tile_size, 2)
                        chips.append(x[np.newaxis, :, r:r + info.tile_size, c:c + info.tile_size])
        finally:
            readers.close()

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter({"input": c} for c in chips)

        def get_next(self):
            return next(self.it, None)

    out = work / "landslide_unet_int8.onnx"
    quantize_static(str(model), str(out), Reader(), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    m, src = onnx.load(str(out)), onnx.load(str(model))  # keep the metadata contract
    del m.metadata_props[:]
    for p in src.metadata_props:
        m.metadata_props.add(key=p.key, value=p.value)
    onnx.save(m, str(out))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=benchlib.ROOT / "bench" / "unet_accuracy.json")
    ap.add_argument("--work", type=Path, default=benchlib.ROOT / "bench")
    ap.add_argument("--model", type=Path, default=MODEL)
    ap.add_argument("--int8", action="store_true", help="also measure a static int8 quantisation")
    args = ap.parse_args(argv)
    benchlib.use_engine_root(None)
    options = dict(OPTIONS)
    models = {k: args.model for k in options}
    if args.int8:
        models["int8_model_64_16"] = quantize_int8(args.work, args.model)
        options["int8_model_64_16"] = ("model", None, None)
    report = {"what": "inference options of the shipped U-Net on its 4 held-out SIMULATED events (512 x 512 px)",
              "machine": benchlib.machine_info(), "model": str(args.model), "events": {}, "pooled": {}}
    totals = {k: {"tp": 0, "fp": 0, "fn": 0, "inference_s": 0.0} for k in options}
    for seed, regime in TEST_EVENTS:
        event = simulate(args.work, seed, regime)
        rec, probs = {}, {}
        for name, (tiling, tile, overlap) in options.items():
            out = args.work / "heldout_out" / f"{event.name}_{name}"
            rec[name] = run(event, out, models[name], tiling, tile, overlap)
            probs[name] = probability(out)
            for k in ("tp", "fp", "fn", "inference_s"):
                totals[name][k] += rec[name][k]
        ref, untiled = probs["model_64_16"], probs["untiled_512"]
        for name, p in probs.items():
            tile, overlap = rec[name]["tile"], rec[name]["overlap"]
            near = border_mask(p.shape, tile, overlap) if tile < SIZE else None
            rec[name]["vs_model_tiling"] = diff(p, ref)
            rec[name]["vs_untiled"] = diff(p, untiled)
            if near is not None:
                rec[name]["vs_untiled_at_tile_borders"] = diff(p, untiled, near)
        report["events"][event.name] = rec
        print(event.name, json.dumps({k: (v["f1"], v.get("vs_model_tiling"), v.get("vs_untiled_at_tile_borders"))
                                      for k, v in rec.items()}), flush=True)
    for name, t in totals.items():
        f1 = 2 * t["tp"] / max(1, 2 * t["tp"] + t["fp"] + t["fn"])
        report["pooled"][name] = {"f1": round(f1, 4), "inference_s": round(t["inference_s"], 2)}
    base = report["pooled"]["model_64_16"]["f1"]
    for rec in report["pooled"].values():
        rec["f1_minus_model_tiling"] = round(rec["f1"] - base, 4)
    if args.int8:
        report["int8_within_0.01_f1"] = abs(report["pooled"]["int8_model_64_16"]["f1_minus_model_tiling"]) <= 0.01
    benchlib.write_report(args.out, report)
    print(json.dumps(report["pooled"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
