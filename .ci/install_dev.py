"""Link this source checkout into a QGIS profile so QGIS loads the plugin from it (``make install-dev``).

QGIS finds a plugin as ``<profile>/python/plugins/<name>/`` holding ``metadata.txt``.  The repository keeps
``metadata.txt`` (and ``LICENSE``) at its top level, the single source of truth that the release packager
(``.ci/package_plugin.py``) also copies into the zip's plugin folder.  So this script does not link the
package folder itself (QGIS would ignore it: no metadata.txt inside); it creates a real plugin folder whose
entries are symbolic links to every entry of ``landslide_sar_plugin/`` plus ``metadata.txt`` and ``LICENSE``.
Edits in the checkout are live (restart QGIS or use the Plugin Reloader); a file or folder added at the top
of the package needs another ``make install-dev``.

An existing plugin folder that this script did not create (a plugin installed from the repository or a zip)
is never replaced unless ``--force`` is given.  Where symbolic links are not allowed (Windows without
developer mode), the entries are copied and the script says so.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PLUGIN = "landslide_sar_plugin"
MARKER = ".installed-by-make-install-dev"
SKIP = {"__pycache__"}


def default_profile() -> Path:
    if sys.platform.startswith("win"):
        base = Path(os.environ.get("APPDATA", Path.home() / "AppData" / "Roaming")) / "QGIS" / "QGIS3"
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support" / "QGIS" / "QGIS3"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share")) / "QGIS" / "QGIS3"
    return base / "profiles" / "default"


def install(profile: Path, *, force: bool = False) -> Path:
    target = profile / "python" / "plugins" / PLUGIN
    if target.is_symlink() or (target.exists() and not (target / MARKER).exists()):
        if not force:
            raise SystemExit(f"error: {target} exists and was not made by make install-dev (a plugin installed "
                             "from the repository or a zip?); remove it or run with --force")
    if target.is_symlink() or target.is_file():
        target.unlink()
    elif target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    sources = [p for p in sorted((ROOT / PLUGIN).iterdir()) if p.name not in SKIP]
    sources += [ROOT / "metadata.txt", ROOT / "LICENSE"]
    copied = False
    for source in sources:
        link = target / source.name
        try:
            link.symlink_to(source, target_is_directory=source.is_dir())
        except OSError:
            copied = True
            (shutil.copytree if source.is_dir() else shutil.copy2)(source, link)
    (target / MARKER).write_text(f"{ROOT}\n", encoding="utf-8")
    how = "copied (symbolic links are not allowed here; run again after edits)" if copied else "linked"
    print(f"{PLUGIN} {how} into {target}; restart QGIS and enable it in Plugins > Manage and Install Plugins")
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile-dir", type=Path, default=None,
                        help=f"QGIS profile folder (default: {default_profile()})")
    parser.add_argument("--force", action="store_true", help="replace a plugin folder not made by this script")
    args = parser.parse_args(argv)
    install(args.profile_dir or default_profile(), force=args.force)
    return 0


if __name__ == "__main__":
    sys.exit(main())
