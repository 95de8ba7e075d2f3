"""Run the QGIS plugin repository's upload scan on the release zip, as plugins.qgis.org runs it (``make lint``).

plugins.qgis.org (QGIS-Plugins-Website, ``qgis-app/plugins/security_scanner.py``) unpacks the uploaded zip and
runs, each a separate check:

* Bandit ``-r <dir> -f json`` (critical: a finding blocks the version);
* detect-secrets ``scan --all-files --exclude-files metadata\\.txt .`` (critical: a finding blocks);
* flake8 ``--max-line-length=120`` (informational);

plus file checks (executables, hidden files).  This script builds the zip with ``.ci/package_plugin.py``,
unpacks it and runs the same three commands on it, failing on any finding.  flake8 also gets the
``flake8-qgis`` rules (QGS1xx imports and API misuse, QGS4xx Qt6/QGIS 4 removals) with ``.ci/flake8.cfg``,
which lists the few ignored codes and why.  There is no detect-secrets baseline: the zip must be clean.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess  # nosec B404
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _packager():
    spec = importlib.util.spec_from_file_location("package_plugin", ROOT / ".ci" / "package_plugin.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)  # noqa: S603  # nosec B603


def scan(work: Path) -> list[str]:
    """The findings of the three checks on the unpacked release zip (empty when it would pass)."""
    zip_path = _packager().build(work / "dist")
    unpacked = work / "unpacked"
    with zipfile.ZipFile(zip_path) as zf:
        zf.extractall(unpacked)
        executables = [i.filename for i in zf.infolist() if (i.external_attr >> 16) & 0o111]
    problems = [f"executable file in the zip: {name}" for name in executables]
    py = sys.executable
    bandit = _run([py, "-m", "bandit", "-r", ".", "-f", "json", "-q", "-c", str(ROOT / ".ci" / "bandit.yaml")],
                  unpacked)
    for issue in json.loads(bandit.stdout or "{}").get("results", []):
        problems.append(f"bandit {issue['test_id']} {issue['filename']}:{issue['line_number']}: {issue['issue_text']}")
    secrets = _run([py, "-m", "detect_secrets", "scan", "--all-files", "--exclude-files", r"metadata\.txt", "."],
                   unpacked)
    if secrets.returncode != 0:
        problems.append(f"detect-secrets failed: {secrets.stderr.strip()[-300:]}")
    for filename, found in json.loads(secrets.stdout or "{}").get("results", {}).items():
        problems += [f"detect-secrets {s['type']} {filename}:{s['line_number']}" for s in found]
    flake8 = _run([py, "-m", "flake8", "--max-line-length=120", "--config", str(ROOT / ".ci" / "flake8.cfg"), "."],
                  unpacked)
    problems += [f"flake8 {line}" for line in flake8.stdout.splitlines() if line.strip()]
    if flake8.returncode not in (0, 1):
        problems.append(f"flake8 failed: {flake8.stderr.strip()[-300:]}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="plugin-scan-") as tmp:
        problems = scan(Path(tmp))
    for line in problems:
        print(line)
    print(f"plugin repository scan of the release zip: {len(problems)} finding(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
