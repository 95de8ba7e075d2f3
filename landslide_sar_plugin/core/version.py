"""The plugin's version, read once from ``metadata.txt`` (the single source of truth)."""

from __future__ import annotations

import configparser
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent.parent


def _metadata_path() -> Path:
    # Inside a release zip metadata.txt sits in the plugin folder; in a source
    # checkout it sits at the repository root, one level up.
    for candidate in (_PACKAGE_DIR / "metadata.txt", _PACKAGE_DIR.parent / "metadata.txt"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError("metadata.txt not found next to or above the plugin package")


def read_metadata() -> dict[str, str]:
    """Return the ``[general]`` section of ``metadata.txt`` as a dict."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(_metadata_path(), encoding="utf-8")
    return dict(parser["general"])


try:
    __version__ = read_metadata()["version"]
except (FileNotFoundError, KeyError):  # a broken install must still import
    __version__ = "0+unknown"
