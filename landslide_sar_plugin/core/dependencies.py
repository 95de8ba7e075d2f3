"""Which Python packages the plugin needs, which are missing, and the exact command to install them.

Imported by the plugin before anything heavy, so a missing package gives a
clear message in QGIS instead of a plugin that fails to load.
"""

from __future__ import annotations

import importlib.util
import sys

REQUIRED = {"numpy": "numpy", "scipy": "scipy", "rasterio": "rasterio"}
OPTIONAL = {"onnxruntime": "onnxruntime", "ee": "earthengine-api"}


def is_available(module: str) -> bool:
    if module in sys.modules:
        return sys.modules[module] is not None
    return importlib.util.find_spec(module) is not None


def missing_required() -> list[str]:
    """pip names of the required packages that cannot be imported."""
    return [pip for module, pip in REQUIRED.items() if not is_available(module)]


def install_command(packages: list[str]) -> str:
    """The command that installs ``packages`` into the Python running QGIS."""
    names = " ".join(packages)
    if sys.platform.startswith("win"):
        return f"python -m pip install {names}   (in the OSGeo4W Shell)"
    return f"{sys.executable or 'python3'} -m pip install --user {names}"
