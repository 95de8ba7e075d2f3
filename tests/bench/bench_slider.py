"""Benchmark: how fast the threshold slider updates the map for a 4096 x 4096 A_ratio layer (goal < 100 ms).

Moving the slider calls ``style_score_layer`` (a new renderer, nothing
recomputed) and QGIS re-renders the canvas.  This measures both on a
synthetic 4096^2 float32 layer rendered into a 1200 x 900 map image (a
typical canvas), over 15 slider positions, and writes a JSON report.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "slider.json")
    parser.add_argument("--size", type=int, default=4096)
    args = parser.parse_args(argv)

    import numpy as np
    import rasterio
    from rasterio.transform import from_origin

    from landslide_sar_plugin.core.raster_io import write_geotiff

    work = Path(tempfile.mkdtemp(prefix="slider_bench_"))
    rng = np.random.default_rng(0)
    ratio = rng.normal(0.0, 1.0, (args.size, args.size)).astype(np.float32)
    ratio[rng.random(ratio.shape) < 0.3] = np.nan
    path = write_geotiff(work / "a_ratio.tif", ratio, transform=from_origin(500000, 4700000, 10, 10),
                         crs="EPSG:32654", nodata=float("nan"))
    with rasterio.open(path, "r+") as dst:  # overviews, as the COG outputs have
        dst.build_overviews([2, 4, 8, 16], rasterio.enums.Resampling.average)

    from qgis.core import QgsApplication, QgsMapRendererSequentialJob, QgsMapSettings, QgsRasterLayer
    from qgis.PyQt.QtCore import QSize

    app = QgsApplication([], False)
    app.setPrefixPath("/usr", True)
    app.initQgis()
    from landslide_sar_plugin.gui.layers import style_score_layer

    layer = QgsRasterLayer(str(path), "a_ratio", "gdal")
    assert layer.isValid()
    settings = QgsMapSettings()
    settings.setLayers([layer])
    settings.setDestinationCrs(layer.crs())
    settings.setExtent(layer.extent())
    settings.setOutputSize(QSize(1200, 900))

    def render() -> float:
        t0 = time.perf_counter()
        job = QgsMapRendererSequentialJob(settings)
        job.start()
        job.waitForFinished()
        return time.perf_counter() - t0

    style_score_layer(layer, 1.0, -5.0, 5.0)
    render()  # warm the GDAL cache, as a canvas already showing the layer has
    restyle, redraw = [], []
    for value in np.linspace(-1.0, 4.0, 15):
        t0 = time.perf_counter()
        style_score_layer(layer, float(value), -5.0, 5.0)
        restyle.append(time.perf_counter() - t0)
        redraw.append(render())
    total = [a + b for a, b in zip(restyle, redraw)]
    report = {
        "what": f"threshold slider update, {args.size}x{args.size} float32 layer rendered at 1200x900",
        "restyle_ms_median": round(1000 * statistics.median(restyle), 2),
        "render_ms_median": round(1000 * statistics.median(redraw), 1),
        "update_ms_median": round(1000 * statistics.median(total), 1),
        "update_ms_max": round(1000 * max(total), 1),
        "goal_ms": 100,
        "goal_met": statistics.median(total) < 0.1,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report))
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
