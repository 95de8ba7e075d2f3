"""rasterio (with its own GDAL) and QGIS (with the system GDAL) work in one Python process.

The plugin's engine writes rasters with rasterio inside QGIS, and the dock loads
them as QGIS layers; this checks that both libraries agree on coordinates,
extents and pixel values, whichever is imported first.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEM = ROOT / "landslide_sar_plugin" / "sample_data" / "dem.tif"

CHECK = r"""
import json, sys
from pathlib import Path

def warp_with_rasterio(src_path, dst_path):
    import numpy as np
    import rasterio
    from rasterio.warp import Resampling, calculate_default_transform, reproject

    with rasterio.open(src_path) as src:
        transform, width, height = calculate_default_transform(src.crs, "EPSG:4326", src.width, src.height,
                                                               *src.bounds)
        profile = dict(src.profile, crs="EPSG:4326", transform=transform, width=width, height=height,
                       nodata=np.nan, dtype="float32", driver="GTiff")
        profile.pop("blockxsize", None), profile.pop("blockysize", None), profile.pop("tiled", None)
        with rasterio.open(dst_path, "w", **profile) as dst:
            reproject(rasterio.band(src, 1), rasterio.band(dst, 1), resampling=Resampling.nearest,
                      dst_nodata=np.nan)
    with rasterio.open(dst_path) as dst:
        return dst.bounds, dst.width, dst.height, dst.read(1)

def check(src_path, dst_path, order):
    import numpy as np
    if order == "rasterio-first":
        import rasterio
        bounds, width, height, data = warp_with_rasterio(src_path, dst_path)
    from qgis.core import (QgsApplication, QgsCoordinateReferenceSystem, QgsCoordinateTransform, QgsPointXY,
                           QgsProject, QgsRasterLayer, QgsRectangle)
    app = QgsApplication.instance()
    own_app = app is None
    if own_app:
        app = QgsApplication([], False)
        app.setPrefixPath("/usr", True)
        app.initQgis()
    if order != "rasterio-first":
        bounds, width, height, data = warp_with_rasterio(src_path, dst_path)
    import rasterio
    from rasterio.warp import transform as rio_transform

    # The same point transformed by QGIS (PROJ of the system) and by rasterio (PROJ of its wheel).
    utm, wgs = QgsCoordinateReferenceSystem("EPSG:32654"), QgsCoordinateReferenceSystem("EPSG:4326")
    xf = QgsCoordinateTransform(utm, wgs, QgsProject.instance())
    x, y = 561300.0, 4748100.0
    p = xf.transform(QgsPointXY(x, y))
    lons, lats = rio_transform("EPSG:32654", "EPSG:4326", [x], [y])
    assert abs(p.x() - lons[0]) < 1e-9 and abs(p.y() - lats[0]) < 1e-9, (p.toString(), lons, lats)

    layer = QgsRasterLayer(str(dst_path), "warped")
    assert layer.isValid()
    assert layer.crs().authid() == "EPSG:4326", layer.crs().authid()
    assert (layer.width(), layer.height()) == (width, height)
    e = layer.extent()
    for a, b in zip((e.xMinimum(), e.yMinimum(), e.xMaximum(), e.yMaximum()), bounds):
        assert abs(a - b) < 1e-9, (e.toString(), bounds)
    provider = layer.dataProvider()
    # Pixel value at the transformed point: QGIS sample() vs rasterio's array.
    value, ok = provider.sample(p, 1)
    with rasterio.open(dst_path) as dst:
        row, col = dst.index(lons[0], lats[0])
    assert ok and abs(value - float(data[row, col])) < 1e-4, (value, data[row, col])
    # The whole band through a QGIS block equals the rasterio array (NaN = nodata in both).
    block = provider.block(1, e, width, height)
    got = np.array([[block.value(r, c) if not block.isNoData(r, c) else np.nan for c in range(width)]
                    for r in range(height)], dtype="float32")
    assert np.array_equal(np.isnan(got), np.isnan(data))
    assert np.allclose(got[~np.isnan(got)], data[~np.isnan(data)])
    assert np.isfinite(data).mean() > 0.5
    return {"order": order, "rasterio_gdal": rasterio.__gdal_version__, "size": [width, height],
            "value": value}

if __name__ == "__main__":
    print(json.dumps(check(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3])))
"""


def _load_check(folder: Path):
    import runpy

    script = folder / "rasterio_qgis_check.py"
    script.write_text(CHECK)
    return runpy.run_path(str(script))["check"]


def test_rasterio_warp_and_qgis_layer_agree_in_this_process(qgis_app, tmp_path):
    result = _load_check(tmp_path)(DEM, tmp_path / "dem_wgs84.tif", "qgis-first")
    assert result["size"][0] > 100 and 0 < result["value"] < 2000


def test_rasterio_imported_before_qgis_in_a_fresh_process(tmp_path):
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    proc = subprocess.run([sys.executable, "-c", CHECK, str(DEM), str(tmp_path / "w.tif"), "rasterio-first"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["order"] == "rasterio-first" and result["size"][0] > 100

