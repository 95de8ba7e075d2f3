"""The threshold slider's debounce: instant when idle, one trailing call with the latest value in a drag."""

from __future__ import annotations

import time

from landslide_sar_plugin.gui.debounce import Debouncer


def _spin(app, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.002)


def test_first_call_is_immediate_and_a_burst_ends_on_the_last_value(qgis_app):
    calls = []
    d = Debouncer(calls.append, 50)
    d(1)
    assert calls == [1]  # idle: no delay
    for v in range(2, 30):  # a drag: 28 values within the interval
        d(v)
    assert calls == [1]
    _spin(qgis_app, 0.2)
    assert calls == [1, 29]  # one trailing call, with the value where the slider stopped
    _spin(qgis_app, 0.1)
    d(30)
    assert calls == [1, 29, 30]


def test_flush_delivers_the_pending_value_now(qgis_app):
    calls = []
    d = Debouncer(calls.append, 10_000)
    d("a")
    d("b")
    d.flush()
    assert calls == ["a", "b"]
    d("c")  # idle again after the flush
    assert calls == ["a", "b", "c"]


def test_dock_slider_drag_restyles_at_most_once_per_interval(qgis_app, monkeypatch):
    from landslide_sar_plugin.gui import dock as dock_module

    seen = []
    monkeypatch.setattr(dock_module.LandslideDock, "_slider_moved", lambda self, pos: seen.append(pos))

    from tests.qgis.conftest import FakeIface

    dock = dock_module.LandslideDock(FakeIface(), None)
    try:
        for pos in range(10, 60):
            dock.threshold_slider.setValue(pos)
        assert seen == [10]
        _spin(qgis_app, 0.2)
        assert seen == [10, 59]
    finally:
        dock.deleteLater()
