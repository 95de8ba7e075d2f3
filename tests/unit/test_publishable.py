"""The release zip passes the QGIS plugin repository's upload scan (bandit, detect-secrets, flake8)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytest.importorskip("detect_secrets", reason="make setup installs detect-secrets")
pytest.importorskip("flake8", reason="make setup installs flake8")


def _scanner():
    spec = importlib.util.spec_from_file_location("plugin_scan", ROOT / ".ci" / "plugin_scan.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_release_zip_passes_the_repository_scan(tmp_path):
    assert _scanner().scan(tmp_path) == []


def test_the_scan_would_catch_what_blocked_the_last_upload(tmp_path):
    # The three hits of the issue: a *_KEY = "..." assignment and the sha256 values of the metrics file.
    sample = tmp_path / "pkg"
    sample.mkdir()
    (sample / "algorithms.py").write_text('SERVICE_ACCOUNT_KEY = "SERVICE_ACCOUNT_KEY"\n')
    (sample / "metrics.json").write_text('{"model_sha256": "1049523e8955ecb8611146d3fbaa6fb1589acc527dcb982ab23f9966'
                                         '938ccbf8"}\n')
    out = subprocess.run([sys.executable, "-m", "detect_secrets", "scan", "--all-files", "."], cwd=sample,
                         capture_output=True, text=True, check=True).stdout
    import json

    found = json.loads(out)["results"]
    assert set(found) == {"algorithms.py", "metrics.json"}


def test_the_metrics_file_stays_out_of_the_zip_but_the_deepness_model_and_the_weights_are_in(tmp_path):
    import zipfile

    spec = importlib.util.spec_from_file_location("package_plugin", ROOT / ".ci" / "package_plugin.py")
    packager = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(packager)
    names = zipfile.ZipFile(packager.build(tmp_path)).namelist()
    assert "landslide_sar_plugin/models/landslide_unet_deepness.onnx" in names
    assert not [n for n in names if n.endswith("_metrics.json")]
    # Retrain fine-tunes from the shipped weights with the training package the zip carries
    assert "landslide_sar_plugin/models/landslide_unet.pt" in names
    assert "landslide_sar_plugin/training/__main__.py" in names and "landslide_sar_plugin/training/retrain.py" in names
