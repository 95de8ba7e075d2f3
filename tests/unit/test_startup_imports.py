"""`detect --help` stays light: it loads neither scipy, the simulator, the metrics nor the optional packages."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = """
import contextlib, io, json, sys
from landslide_sar_plugin import cli
with contextlib.redirect_stdout(io.StringIO()) as out:
    try:
        cli.main(["detect", "--help"])
    except SystemExit:
        pass
print(json.dumps({"modules": sorted(sys.modules), "help": out.getvalue()}))
"""


def test_detect_help_imports_nothing_heavy():
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, cwd=ROOT, check=True)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    modules = set(result["modules"])
    assert "--workers" in result["help"] and "--model-tiles" in result["help"]
    roots = {m.split(".")[0] for m in modules}
    assert not roots & {"scipy", "onnxruntime", "ee", "torch", "qgis"}, roots & {"scipy", "onnxruntime", "ee"}
    for name in ("landslide_sar_plugin.core.simulate", "landslide_sar_plugin.core.metrics",
                 "landslide_sar_plugin.commands.simulate", "landslide_sar_plugin.commands.evaluate",
                 "landslide_sar_plugin.core.candidates", "landslide_sar_plugin.core.detect_model"):
        assert name not in modules, name


def test_every_command_is_listed_without_a_command():
    proc = subprocess.run([sys.executable, "-m", "landslide_sar_plugin", "--help"], capture_output=True, text=True,
                          cwd=ROOT, check=True)
    for name in ("simulate", "detect", "evaluate"):
        assert name in proc.stdout
