"""Headless QGIS for the tests in this folder: one QgsApplication per session and a QgisInterface stand-in."""

from __future__ import annotations

import os
import sys

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

qgis_core = pytest.importorskip("qgis.core", reason="QGIS Python bindings are not installed (run `make setup`)")


@pytest.fixture(scope="session")
def qgis_app(tmp_path_factory):
    from qgis.core import QgsApplication
    from qgis.PyQt.QtCore import QCoreApplication, QSettings

    # Keep QgsSettings written by the tests out of the user's real QGIS profile.
    QCoreApplication.setOrganizationName("LandslideSarTests")
    QCoreApplication.setApplicationName("LandslideSarTests")
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(tmp_path_factory.mktemp("settings")))
    app = QgsApplication.instance()
    if app is None:
        app = QgsApplication([], True)
        app.setPrefixPath("/usr", True)
        app.initQgis()
    # QGIS's own Processing plugin lives outside site-packages.
    plugins_dir = "/usr/share/qgis/python/plugins"
    if os.path.isdir(plugins_dir) and plugins_dir not in sys.path:
        sys.path.append(plugins_dir)
    from processing.core.Processing import Processing

    Processing.initialize()
    yield app


class FakeIface:
    """The part of ``QgisInterface`` the plugin uses, backed by a real QMainWindow."""

    def __init__(self):
        from qgis.PyQt.QtWidgets import QMainWindow, QToolBar

        self._window = QMainWindow()
        self.toolbar = QToolBar(self._window)
        self.raster_menu: dict[str, list] = {}
        self.docks = []
        from qgis.gui import QgsMapCanvas, QgsMessageBar

        self._message_bar = QgsMessageBar(self._window)
        self._canvas = QgsMapCanvas(self._window)
        self._window.setCentralWidget(self._canvas)

    def mapCanvas(self):  # noqa: N802
        return self._canvas

    def messageBar(self):  # noqa: N802
        return self._message_bar

    def mainWindow(self):  # noqa: N802
        return self._window

    def addToolBarIcon(self, action):  # noqa: N802
        self.toolbar.addAction(action)

    def removeToolBarIcon(self, action):  # noqa: N802
        self.toolbar.removeAction(action)

    def addPluginToRasterMenu(self, name, action):  # noqa: N802
        self.raster_menu.setdefault(name, []).append(action)

    def removePluginRasterMenu(self, name, action):  # noqa: N802
        self.raster_menu.get(name, []).remove(action)
        if not self.raster_menu.get(name):
            self.raster_menu.pop(name, None)

    def addDockWidget(self, area, dock):  # noqa: N802
        self._window.addDockWidget(area, dock)
        self.docks.append(dock)

    def removeDockWidget(self, dock):  # noqa: N802
        self._window.removeDockWidget(dock)
        self.docks.remove(dock)


@pytest.fixture
def fake_iface(qgis_app):
    return FakeIface()


@pytest.fixture
def plugin_errors(monkeypatch):
    """Collect what qgis.utils would show in its error dialog, so a test can assert there was none."""
    import qgis.utils

    errors: list[str] = []

    def record(type_, value, tb, msg, *args, **kwargs):
        import traceback

        errors.append(f"{msg}: " + "".join(traceback.format_exception(type_, value, tb)))

    monkeypatch.setattr(qgis.utils, "showException", record)
    return errors


def wait_until(predicate, timeout_s: float = 120.0) -> None:
    """Process Qt events until ``predicate()`` is true (tasks report back through the event loop)."""
    import time

    from qgis.PyQt.QtCore import QCoreApplication

    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached in time")
        QCoreApplication.processEvents()
        time.sleep(0.01)


@pytest.fixture
def clean_project(qgis_app):
    from qgis.core import QgsProject

    QgsProject.instance().clear()
    yield QgsProject.instance()
    QgsProject.instance().clear()
