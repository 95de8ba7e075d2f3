"""Landslide SAR mapper: a QGIS plugin and a headless engine for Sentinel-1 landslide mapping.

QGIS calls :func:`classFactory`.  The engine in :mod:`landslide_sar_plugin.core`
and the command line (``python -m landslide_sar_plugin``) work without QGIS,
so importing this package must not import QGIS either.
"""

from .core.version import __version__

__all__ = ["__version__", "classFactory"]


def classFactory(iface):  # noqa: N802 (name fixed by QGIS)
    """Entry point called by QGIS when the plugin is loaded."""
    from .gui.installer import activate_private_packages

    activate_private_packages()  # packages the plugin's installer put into its private folder, before any import
    from .plugin import LandslideSarPlugin

    return LandslideSarPlugin(iface)
