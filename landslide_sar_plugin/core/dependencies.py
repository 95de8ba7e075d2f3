"""Which Python packages the plugin needs, which are missing, and how to install them.

Imported by the plugin before anything heavy, so a missing package gives a
clear message in QGIS instead of a plugin that fails to load.  :data:`PACKAGES`
is the single list of pins: ``landslide_sar_plugin/requirements.txt`` mirrors it
(a test checks), the in-plugin installer (:mod:`.installer`) installs from it.

Pins: rasterio 1.3 is accepted so Debian 12's ``python3-rasterio`` (1.3.5)
serves; everything in ``core`` was checked against it (see the README).
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass

# Bump when a pin changes in a way that needs a fresh private package folder (see installer.site_dir).
DEPENDENCY_SET_VERSION = 1
PYTORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"


@dataclass(frozen=True)
class Package:
    """One Python dependency: import name, pip name, version spec, whether required, and what it is for."""

    module: str
    pip: str
    spec: str
    required: bool
    purpose: str
    index_url: str | None = None  # a package index of its own (PyTorch's CPU wheels)


PACKAGES: tuple[Package, ...] = (
    Package("numpy", "numpy", "numpy>=1.24", True, "arrays (usually shipped with QGIS)"),
    Package("scipy", "scipy", "scipy>=1.10", True, "filters and labelling (usually shipped with QGIS)"),
    Package("rasterio", "rasterio", "rasterio>=1.3,<1.5", True, "reading and writing rasters"),
    Package("onnxruntime", "onnxruntime", "onnxruntime>=1.17", False, "the U-Net method"),
    Package("ee", "earthengine-api", "earthengine-api>=1.0", False, "the Google Earth Engine source"),
    # The version the training code is tested with (tests/constraints.txt); its CPU wheel, not GBs of CUDA.
    Package("torch", "torch", "torch==2.13.0", False, "retraining the model (training/, CPU build)",
            index_url=PYTORCH_CPU_INDEX),
    Package("onnx", "onnx", "onnx>=1.15", False, "writing a retrained model (installed with PyTorch)"),
)
# installed together into the training folder (core.retrain_runner.training_site_dir), not into the plugin's own
TRAINING_PACKAGES = ("torch", "onnx")
BY_PIP = {p.pip: p for p in PACKAGES}
REQUIRED = {p.module: p.pip for p in PACKAGES if p.required}
OPTIONAL = {p.module: p.pip for p in PACKAGES if not p.required}


def is_available(module: str) -> bool:
    if module in sys.modules:
        return sys.modules[module] is not None
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a broken half-installed package
        return False


def missing_required() -> list[str]:
    """pip names of the required packages that cannot be imported."""
    return [p.pip for p in PACKAGES if p.required and not is_available(p.module)]


def missing_optional() -> list[str]:
    return [p.pip for p in PACKAGES if not p.required and not is_available(p.module)]


def install_command(packages: list[str]) -> str:
    """The command that installs ``packages`` for the Python running this plugin (also shown in messages).

    The plugin's own installer (Plugins > Landslide SAR mapper > Python packages) runs the same pip call
    into a private folder; this text is for users who prefer a terminal.
    """
    from .installer import InstallerError, choose_interpreter, pip_command, site_dir_hint

    try:
        python = choose_interpreter()
    except InstallerError:
        python = "python3" if not sys.platform.startswith("win") else "python"
    specs = [BY_PIP[p].spec if p in BY_PIP else p for p in packages]
    return " ".join(_quote(a) for a in pip_command(python, site_dir_hint(), specs))


def _quote(arg: str) -> str:
    return f'"{arg}"' if any(c in arg for c in " <>,;&|") else arg
