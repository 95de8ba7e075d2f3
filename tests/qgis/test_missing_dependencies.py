"""Without rasterio in QGIS's Python the plugin still loads and says exactly how to install it."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_plugin_loads_without_rasterio_and_shows_the_install_command():
    script = textwrap.dedent(f"""
        import sys
        sys.modules["rasterio"] = None  # any `import rasterio` now raises ImportError
        sys.path.insert(0, {str(ROOT)!r})
        sys.path.insert(0, {str(ROOT / "tests" / "qgis")!r})
        from qgis.core import QgsApplication
        app = QgsApplication([], True)
        app.initQgis()
        from conftest import FakeIface
        import landslide_sar_plugin
        iface = FakeIface()
        plugin = landslide_sar_plugin.classFactory(iface)
        plugin.initGui()
        plugin.action.setChecked(True)
        print("DOCK", type(plugin.dock).__name__)
        print("MESSAGE", plugin.dock.message_label.text())
        print("RASTERIO_IMPORTED", "rasterio" in sys.modules and sys.modules["rasterio"] is not None)
        plugin.unload()
        import os
        sys.stdout.flush()
        os._exit(0)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          env={"QT_QPA_PLATFORM": "offscreen", "PATH": "/usr/bin:/bin", "HOME": "/tmp"})
    out = proc.stdout
    assert "DOCK MissingDependenciesDock" in out, proc.stderr[-2000:]
    assert "rasterio" in out and "-m pip install --user rasterio" in out
    assert "RASTERIO_IMPORTED False" in out
