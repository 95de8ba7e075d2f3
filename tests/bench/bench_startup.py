"""Benchmark: start-up cost of the command line and of the QGIS plugin.

* ``detect --help``: wall time of ``python -m landslide_sar_plugin detect --help``
  against a bare ``python -c pass``, interleaved, ``--repeats`` times (median,
  min, max); goal < 0.3 s;
* the modules it imports (``-X importtime``): the slowest, and whether the
  simulator, the metrics, scipy.signal, onnxruntime or earthengine-api appear;
* plugin start-up (QGIS headless: ``classFactory`` + ``initGui``): wall time
  and which heavy packages (rasterio, scipy, numpy, onnxruntime, ee, torch)
  and engine modules it loads.

Writes a JSON report.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402

HEAVY = ("rasterio", "scipy", "numpy", "onnxruntime", "ee", "torch", "osgeo")
PLUGIN_SCRIPT = r"""
import json, os, sys, time
os.environ["QT_QPA_PLATFORM"] = "offscreen"
sys.path[:0] = [{root!r}, {qgis_tests!r}]
from qgis.core import QgsApplication
app = QgsApplication([], True); app.setPrefixPath("/usr", True); app.initQgis()
from conftest import FakeIface
iface = FakeIface()
before = set(sys.modules)
t0 = time.perf_counter()
import landslide_sar_plugin
plugin = landslide_sar_plugin.classFactory(iface)
plugin.initGui()
seconds = time.perf_counter() - t0
new = set(sys.modules) - before
print(json.dumps({{"seconds": round(seconds, 3),
                  "heavy_packages": sorted({{m.split(".")[0] for m in new}} & set({heavy!r})),
                  "engine_modules": sorted(m for m in new if m.startswith("landslide_sar_plugin.core"))}}))
sys.stdout.flush()
os._exit(0)
"""


def wall(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, cwd=benchlib.ROOT)
    return time.perf_counter() - t0


def import_profile() -> dict:
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "landslide_sar_plugin", "detect", "--help"],
                          capture_output=True, text=True, check=True, cwd=benchlib.ROOT)
    rows = []
    for line in proc.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            _, cumulative, name = (p.strip() for p in line[len("import time:"):].split("|"))
            if cumulative.isdigit():
                rows.append((int(cumulative), name))
    names = {n.strip() for _, n in rows}
    unwanted = ["landslide_sar_plugin.core.simulate", "landslide_sar_plugin.core.metrics", "scipy.signal",
                "onnxruntime", "ee"]
    return {"slowest_ms": [[n.strip(), round(c / 1000, 1)] for c, n in sorted(rows, reverse=True)[:8]],
            "imported_unwanted": [u for u in unwanted if u in names]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=benchlib.ROOT / "bench" / "startup.json")
    ap.add_argument("--repeats", type=int, default=10)
    args = ap.parse_args(argv)
    help_cmd = [sys.executable, "-m", "landslide_sar_plugin", "detect", "--help"]
    bare_cmd = [sys.executable, "-c", "pass"]
    helps, bares = [], []
    for _ in range(args.repeats):
        helps.append(wall(help_cmd))
        bares.append(wall(bare_cmd))
    report = {"what": "start-up of `detect --help` and of the QGIS plugin", "machine": benchlib.machine_info(),
              "detect_help_s": benchlib.summary(helps), "bare_python_s": benchlib.summary(bares),
              "goal_detect_help_s": 0.3, "imports": import_profile()}
    report["goal_met"] = report["detect_help_s"]["median"] < 0.3
    script = PLUGIN_SCRIPT.format(root=str(benchlib.ROOT), qgis_tests=str(benchlib.ROOT / "tests" / "qgis"),
                                  heavy=HEAVY)
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=False)
    lines = [x for x in proc.stdout.splitlines() if x.startswith("{")]
    report["plugin_start"] = json.loads(lines[-1]) if lines else {"error": proc.stderr[-2000:]}
    benchlib.write_report(args.out, report)
    print(json.dumps({k: report[k] for k in ("detect_help_s", "bare_python_s", "imports", "plugin_start")}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
