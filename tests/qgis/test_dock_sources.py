"""The dock's scene table on the REAL OPERA RTC-S1 fixture: one row per acquisition, the product type shown,
and the pixel size left to the finest input resolution unless the user sets it."""

from __future__ import annotations

from pathlib import Path

import pytest
from qgis.PyQt.QtCore import QDateTime, Qt

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "opera_rtc_s1_t137"


@pytest.fixture
def dock(fake_iface, clean_project):
    from qgis.core import QgsSettings

    from landslide_sar_plugin.gui.dock import SETTINGS_PREFIX, LandslideDock

    settings = QgsSettings()
    for key in settings.allKeys():
        if key.startswith(SETTINGS_PREFIX):
            settings.remove(key)
    d = LandslideDock(fake_iface)
    yield d
    d.deleteLater()


def test_opera_bursts_are_one_row_per_acquisition_with_their_product(dock, tmp_path):
    scenes = tmp_path / "scenes"  # both bursts (one fixture sub-folder each) in one folder, as downloaded
    scenes.mkdir()
    for path in FIXTURE.glob("T137-*/*.tif"):
        (scenes / path.name).symlink_to(path)
    dock.event_time.setDateTime(QDateTime.fromString("2023-11-25T00:00:00", Qt.DateFormat.ISODate))
    dock.scene_dir.setFilePath(str(scenes))
    dock.refresh_scenes()
    table = dock.scene_table
    headers = [table.horizontalHeaderItem(c).text() for c in range(table.columnCount())]
    assert headers[-1] == "Product"
    assert table.rowCount() == 21  # 2 bursts x 21 dates are 21 acquisitions
    products = {table.item(r, headers.index("Product")).text() for r in range(table.rowCount())}
    assert products == {"OPERA RTC-S1"}
    files = table.item(0, headers.index("File")).text().split(", ")
    assert len(files) == 4 and all(f.startswith("OPERA_L2_RTC-S1_T137-29232") for f in files)
    roles = [table.item(r, headers.index("Role")).text() for r in range(table.rowCount())]
    assert roles.count("pre") == 5 and roles.count("post") == 2
    assert "OPERA RTC-S1; bursts T137-292320-IW2, T137-292321-IW2" in dock.scene_summary.text()


def test_pixel_size_defaults_to_the_finest_input(dock):
    from landslide_sar_plugin.gui import dock_build

    assert dock_build.spin_value(dock.pixel_size) is None and "finest" in dock.pixel_size.text()
    dock.event_time.setDateTime(QDateTime.fromString("2023-11-25T00:00:00", Qt.DateFormat.ISODate))
    assert dock.collect_params().pixel_size is None
    dock.pixel_size.setValue(10)
    assert dock.collect_params().pixel_size == 10.0
