"""Benchmark: the threshold slider on a real QgsMapCanvas holding a 4096^2 A_ratio layer and its candidates.

The layers are the outputs of an A_ratio run of the engine on the 4096^2
benchmark stacks (SYNTHETIC; cloud-optimised ratio with overviews, the
candidates GeoPackage with its polygons), generated once under ``bench/``.
They are loaded as the dock loads them (``gui.layers.load_run_layers``: styled
candidates above the styled ratio) into a ``QgsMapCanvas`` of 1200 x 900 px
with QGIS's default render caching and parallel rendering.

For each view (the whole layer; a 1:1 zoom), after warm-up renders:

* ``update``: one slider step = ``style_score_layer`` (a new renderer) until
  the canvas emits ``mapCanvasRefreshed`` (the new image is on screen), over
  ``--steps`` threshold values: p50, p95, max;
* ``drag``: a drag of 30 slider values at 60 Hz through the dock's
  :class:`gui.debounce.Debouncer` (40 ms): renders started, and the time from
  the last move to the final image (p50/p95 over the repeats).

Goal: update p95 < 100 ms.  Writes a JSON report.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def run_outputs(work: Path, size: int) -> Path:
    """An engine run on the bench stacks (once): the layers the analyst sees."""
    import bench_engine

    out = work / f"slider_run_{size}"
    if (out / "run.json").is_file():
        return out
    from landslide_sar_plugin.core.detect import run_detection

    data = bench_engine.make_data(work / f"data_{size}", size)
    run_detection(data / "scenes", data / "dem.tif", out, bench_engine.params())
    return out


def percentile(values, q):
    vals = sorted(values)
    k = (len(vals) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(vals) - 1)
    return vals[lo] + (vals[hi] - vals[lo]) * (k - lo)


def stats_ms(values) -> dict:
    return {"p50": round(1000 * percentile(values, 50), 1), "p95": round(1000 * percentile(values, 95), 1),
            "max": round(1000 * max(values), 1), "n": len(values)}


class CanvasBench:
    """A QgsMapCanvas showing the run's candidates above its ratio, and the two measurements."""

    def __init__(self, app, out: Path):
        from qgis.gui import QgsMapCanvas
        from qgis.PyQt.QtCore import QSize

        from landslide_sar_plugin.gui.layers import load_run_layers

        self.app = app
        files = {"a_ratio": out / "a_ratio.tif", "candidates": out / "candidates.gpkg"}
        layers = load_run_layers(files, "bench", threshold=1.25, vmin=-5.0, vmax=5.0)
        self.ratio, self.candidates = layers["a_ratio"], layers["candidates"]
        self.canvas = canvas = QgsMapCanvas()
        canvas.setCachingEnabled(True)  # QGIS's defaults: render caching and parallel rendering
        canvas.setParallelRenderingEnabled(True)
        canvas.resize(QSize(1200, 900))
        canvas.show()
        canvas.setDestinationCrs(self.ratio.crs())
        canvas.setLayers([self.candidates, self.ratio])
        self.renders, self.refreshed, self.styled = [], [], []  # render starts, finished images, restyles

    def views(self) -> dict:
        from qgis.core import QgsRectangle

        full = self.ratio.extent()
        cx, cy = full.center().x(), full.center().y()
        px = self.ratio.rasterUnitsPerPixelX()
        return {"whole_layer": full,
                "zoom_1to1": QgsRectangle(cx - 600 * px, cy - 450 * px, cx + 600 * px, cy + 450 * px)}

    def wait_refresh(self, timeout_ms: int = 10_000) -> None:
        from qgis.PyQt.QtCore import QEventLoop, QTimer

        loop = QEventLoop()
        self.canvas.mapCanvasRefreshed.connect(loop.quit)
        QTimer.singleShot(timeout_ms, loop.quit)
        loop.exec()
        self.canvas.mapCanvasRefreshed.disconnect(loop.quit)

    def restyle(self, value: float) -> None:
        from landslide_sar_plugin.gui.layers import style_score_layer

        self.styled.append(time.perf_counter())
        style_score_layer(self.ratio, value, -5.0, 5.0)

    def updates(self, extent, values) -> list[float]:
        """Seconds from each restyle to the new image on the canvas (after warm-up renders)."""
        self.canvas.setExtent(extent)
        self.canvas.refresh()
        self.wait_refresh()
        for v in values[:5]:  # warm-up: GDAL cache, overviews, the candidates' cached image
            self.restyle(v)
            self.wait_refresh()
        out = []
        for v in values:
            t0 = time.perf_counter()
            self.restyle(v)
            self.wait_refresh()
            out.append(time.perf_counter() - t0)
        return out

    def drag(self, offset: float) -> tuple[float, int]:
        """A 30-value drag at 60 Hz through the dock's debounce: (last move -> final image s, renders)."""
        from landslide_sar_plugin.gui.debounce import Debouncer

        self.renders.clear()
        debounce = Debouncer(self.restyle, 40)
        for k in range(30):
            debounce(0.5 + 0.1 * k + offset)
            step_end = time.perf_counter() + 1 / 60
            while time.perf_counter() < step_end:
                self.app.processEvents()
        t_last = time.perf_counter()
        deadline = t_last + 10
        # done when the trailing restyle has happened and a render finished after it
        while time.perf_counter() < deadline and (debounce._timer.isActive() or self.canvas.isDrawing()
                                                  or not self.refreshed or self.refreshed[-1] < self.styled[-1]):
            self.app.processEvents()
        return self.refreshed[-1] - t_last, len(self.renders)

    def drags(self, n: int) -> tuple[list[float], list[int]]:
        def on_start():
            self.renders.append(1)

        def on_done():
            self.refreshed.append(time.perf_counter())

        self.canvas.renderStarting.connect(on_start)
        self.canvas.mapCanvasRefreshed.connect(on_done)
        try:
            results = [self.drag(0.01 * d) for d in range(n)]
        finally:
            self.canvas.renderStarting.disconnect(on_start)
            self.canvas.mapCanvasRefreshed.disconnect(on_done)
        return [r[0] for r in results], [r[1] for r in results]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=benchlib.ROOT / "bench" / "slider.json")
    ap.add_argument("--work", type=Path, default=benchlib.ROOT / "bench")
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--drags", type=int, default=5)
    args = ap.parse_args(argv)
    benchlib.use_engine_root(None)
    machine = benchlib.machine_info()
    out = run_outputs(args.work, args.size)

    from qgis.core import QgsApplication, QgsProject

    app = QgsApplication([], True)
    app.setPrefixPath("/usr", True)
    app.initQgis()
    bench = CanvasBench(app, out)
    report = {"what": f"threshold slider on a QgsMapCanvas 1200x900 with a {args.size}^2 A_ratio COG and "
                      f"{bench.candidates.featureCount()} candidate polygons (SYNTHETIC bench run), caching and "
                      "parallel rendering on", "machine": machine, "goal_update_p95_ms": 100, "views": {}}
    values = [-1.0 + 5.0 * i / max(1, args.steps - 1) for i in range(args.steps)]
    for name, extent in bench.views().items():
        updates = bench.updates(extent, values)
        finals, counts = bench.drags(args.drags)
        report["views"][name] = {"update_ms": stats_ms(updates),
                                 "drag_last_move_to_final_image_ms": stats_ms(finals),
                                 "drag_renders_started_for_30_moves": statistics.median(counts),
                                 "goal_met": percentile(updates, 95) < 0.1}
        print(name, json.dumps(report["views"][name]), flush=True)
    benchlib.write_report(args.out, report)
    QgsProject.instance().clear()
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
