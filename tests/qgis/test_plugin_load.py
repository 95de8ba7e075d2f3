"""The plugin loads, shows its dock and unloads the way QGIS's plugin manager drives it."""

from __future__ import annotations

import importlib.util
import sys
import zipfile
from pathlib import Path

import pytest

PACKAGE = "landslide_sar_plugin"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def installed_from_zip(tmp_path, monkeypatch):
    """Build the release zip, unpack it into a fresh QGIS plugin folder and make QGIS discover it."""
    import qgis.utils

    spec = importlib.util.spec_from_file_location("package_plugin", ROOT / ".ci" / "package_plugin.py")
    packager = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(packager)
    zip_path = packager.build(tmp_path / "dist")
    plugins_dir = tmp_path / "plugins"
    with zipfile.ZipFile(zip_path) as zf:
        zf.extractall(plugins_dir)

    saved = {name: mod for name, mod in sys.modules.items() if name.split(".")[0] == PACKAGE}
    for name in saved:
        del sys.modules[name]
    monkeypatch.syspath_prepend(str(plugins_dir))
    monkeypatch.setattr(qgis.utils, "plugin_paths", [str(plugins_dir)])
    qgis.utils.updateAvailablePlugins()
    yield plugins_dir / PACKAGE
    for name in [n for n in sys.modules if n.split(".")[0] == PACKAGE]:
        del sys.modules[name]
    sys.modules.update(saved)


def test_release_zip_loads_initgui_and_unloads_through_qgis_utils(installed_from_zip, fake_iface, plugin_errors):
    import qgis.utils
    from qgis.core import QgsApplication

    assert (installed_from_zip / "metadata.txt").is_file()
    assert PACKAGE in qgis.utils.available_plugins
    assert qgis.utils.pluginMetadata(PACKAGE, "name") == "Landslide SAR mapper"
    qgis.utils.iface = fake_iface
    assert qgis.utils.loadPlugin(PACKAGE), plugin_errors
    assert Path(sys.modules[PACKAGE].__file__).parent == installed_from_zip
    assert qgis.utils.startPlugin(PACKAGE), plugin_errors
    try:
        plugin = qgis.utils.plugins[PACKAGE]
        assert PACKAGE in qgis.utils.active_plugins

        # One toolbar button and one Raster menu entry.
        assert [a.objectName() for a in fake_iface.toolbar.actions()] == ["LandslideSarMapperAction"]
        assert list(fake_iface.raster_menu) == ["&Landslide SAR mapper"]

        # The Processing provider is registered under its id.
        assert QgsApplication.processingRegistry().providerById("landslidesar") is not None

        # Toggling the action creates and shows the dock, and hides it again.
        plugin.action.setChecked(True)
        assert len(fake_iface.docks) == 1
        dock = fake_iface.docks[0]
        assert dock.windowTitle() == "Landslide SAR mapper"
        assert not dock.isHidden()
        assert "SYNTHETIC" in dock.synthetic_label.text()
        plugin.action.setChecked(False)
        assert dock.isHidden()
    finally:
        assert qgis.utils.unloadPlugin(PACKAGE), plugin_errors

    assert plugin_errors == []
    assert PACKAGE not in qgis.utils.active_plugins
    assert fake_iface.toolbar.actions() == []
    assert fake_iface.raster_menu == {}
    assert fake_iface.docks == []
    assert QgsApplication.processingRegistry().providerById("landslidesar") is None


def test_class_factory_has_no_side_effects_before_initgui(fake_iface):
    import landslide_sar_plugin

    plugin = landslide_sar_plugin.classFactory(fake_iface)
    assert plugin.action is None and plugin.dock is None and plugin.provider is None
    assert fake_iface.toolbar.actions() == []


def test_metadata_has_every_field_the_plugin_repository_asks_for():
    import configparser
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    meta = configparser.ConfigParser(interpolation=None)
    meta.read(root / "metadata.txt", encoding="utf-8")
    general = meta["general"]
    required = [
        "name", "qgisMinimumVersion", "qgisMaximumVersion", "description", "about", "version",
        "author", "email", "repository", "tracker", "homepage", "tags", "category", "icon",
        "hasProcessingProvider", "experimental", "changelog",
    ]
    missing = [key for key in required if not general.get(key, "").strip()]
    assert missing == []
    assert general["qgisMinimumVersion"] == "3.22"
    assert general["qgisMaximumVersion"] == "4.99"
    # QGIS 4 support is declared by the maximum version; supportsQt6 is deprecated by the plugin repository.
    assert "supportsQt6" not in general
    assert "later Google Earth Engine" not in general["about"] and "Earth Engine" in general["about"]
    assert general["category"] == "Raster"
    assert general["hasProcessingProvider"] == "yes"
    for dependency in ("numpy", "scipy", "rasterio", "onnxruntime", "earthengine-api"):
        assert dependency in general["about"]
    assert "SYNTHETIC" in general["about"]
    assert (root / "landslide_sar_plugin" / general["icon"]).is_file()


def test_make_install_dev_links_the_checkout_the_way_qgis_finds_it(tmp_path, monkeypatch, fake_iface, plugin_errors):
    import subprocess

    import qgis.utils

    profile = tmp_path / "profile"
    subprocess.run(["make", "-s", "-C", str(ROOT), "install-dev", f"QGIS_PROFILE={profile}"], check=True,
                   capture_output=True, text=True)
    plugin_dir = profile / "python" / "plugins" / PACKAGE
    assert (plugin_dir / "metadata.txt").resolve() == ROOT / "metadata.txt"
    assert (plugin_dir / "plugin.py").resolve() == ROOT / PACKAGE / "plugin.py"  # live edits: links, not copies
    # Running it again replaces its own folder; a folder it did not make is refused.
    again = subprocess.run(["make", "-s", "-C", str(ROOT), "install-dev", f"QGIS_PROFILE={profile}"],
                           capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    other = tmp_path / "other" / "python" / "plugins" / PACKAGE
    other.mkdir(parents=True)
    refused = subprocess.run(["make", "-s", "-C", str(ROOT), "install-dev", f"QGIS_PROFILE={tmp_path / 'other'}"],
                             capture_output=True, text=True)
    assert refused.returncode != 0 and "was not made by make install-dev" in refused.stdout + refused.stderr

    saved = {name: mod for name, mod in sys.modules.items() if name.split(".")[0] == PACKAGE}
    for name in saved:
        del sys.modules[name]
    monkeypatch.syspath_prepend(str(plugin_dir.parent))
    monkeypatch.setattr(qgis.utils, "plugin_paths", [str(plugin_dir.parent)])
    try:
        qgis.utils.updateAvailablePlugins()
        assert PACKAGE in qgis.utils.available_plugins
        assert qgis.utils.pluginMetadata(PACKAGE, "name") == "Landslide SAR mapper"
        qgis.utils.iface = fake_iface
        assert qgis.utils.loadPlugin(PACKAGE) and qgis.utils.startPlugin(PACKAGE), plugin_errors
        assert qgis.utils.unloadPlugin(PACKAGE)
    finally:
        for name in [n for n in sys.modules if n.split(".")[0] == PACKAGE]:
            del sys.modules[name]
        sys.modules.update(saved)
    assert plugin_errors == []
