"""Benchmark: the review queue's Next / Previous / Accept on a real QgsMapCanvas with 5,000 candidate polygons.

The run is SYNTHETIC and built once under ``bench/``: a 3000 x 3000 px score
raster at 10 m (30 km x 30 km) holding ``--polygons`` blobs above a 1.5 dB
threshold on a noisy background, its per-pass ratios and radar evidence, and
the candidates the engine derives from it (``core.candidates.candidates_from_score``).
The plugin's own dock shows it (``LandslideDock._show_run``: layers loaded and
styled as after a detection) beside a 1200 x 900 px ``QgsMapCanvas`` that a
layer-tree bridge keeps in sync, with QGIS's default caching and parallel
rendering.  The review queue is then opened and driven as an analyst does:

* ``next``: ``queue_next()`` (find the next unreviewed, select, zoom with a
  margin, the attribute panel with the passes that fired, the counter);
* ``previous``: ``queue_previous()``;
* ``accept``: ``set_selected_status("accepted")`` (status in the edit buffer,
  then the queue moves on to the next unreviewed candidate).

For each action: ``respond_ms``, the time the click keeps QGIS busy (p50, p95,
max), and ``image_ms``, from the click to the canvas's new image
(``mapCanvasRefreshed``).  Goal: respond p95 < 100 ms.  Writes a JSON report.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402
from bench_slider import stats_ms  # noqa: E402

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
SIZE, PX, THRESHOLD = 3000, 10.0, 1.5


def make_run(work: Path, n_polygons: int, seed: int = 7) -> Path:
    """The SYNTHETIC run folder (once): score, per-pass ratios, evidence, background, candidates."""
    import numpy as np
    import rasterio
    from rasterio.transform import from_origin

    out = work / f"review_run_{n_polygons}"
    if (out / "candidates.gpkg").is_file():
        return out
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    score = rng.normal(0.0, 0.4, (SIZE, SIZE)).astype(np.float32)
    side = int(np.ceil(np.sqrt(n_polygons)))
    cell = SIZE // side
    for k in range(n_polygons):
        r0, c0 = (k // side) * cell + 3, (k % side) * cell + 3
        h, w = rng.integers(4, cell - 6, 2)
        score[r0:r0 + h, c0:c0 + w] = rng.uniform(1.8, 6.0)
    profile = dict(driver="GTiff", width=SIZE, height=SIZE, dtype="float32", crs="EPSG:32654",
                   transform=from_origin(500000.0, 4800000.0, PX, PX), nodata=float("nan"), tiled=True,
                   blockxsize=512, blockysize=512, compress="deflate")

    def write(name, bands, tags=None, descriptions=None):
        with rasterio.open(out / f"{name}.tif", "w", count=len(bands), **profile) as dst:
            for i, band in enumerate(bands, start=1):
                dst.write(band.astype(np.float32), i)
                if descriptions:
                    dst.set_band_description(i, descriptions[i - 1])
            dst.update_tags(SYNTHETIC="benchmark data, SYNTHETIC", **(tags or {}))

    write("a_ratio", [score])
    write("background_change", [np.zeros_like(score)])
    for p, shift in (("ascending", 0.3), ("descending", -0.3)):
        write(f"a_ratio_{p}", [score + shift])
        pre = (-12.0 + rng.normal(0.0, 1.0, score.shape)).astype(np.float32)
        write(f"evidence_{p}", [pre, pre - score], {"POLARISATION": "VH", "ORBIT_PASS": p.upper()},
              ["VH pre-event median (dB)", "VH post-event median (dB)"])
    from landslide_sar_plugin.core.candidates import ThresholdSpec, candidates_from_score

    spec = ThresholdSpec(threshold=THRESHOLD, min_area_m2=0.0, heatmap_radius_m=0.0, method="a_ratio", units="dB",
                         event_id="bench_review_synthetic")
    candidates_from_score(out / "a_ratio.tif", out, spec)
    return out


class QueueBench:
    """The dock beside a canvas showing the run, and the timed actions."""

    def __init__(self, app, run: Path):
        from qgis.core import QgsProject
        from qgis.gui import QgsLayerTreeMapCanvasBridge, QgsMapCanvas, QgsMessageBar
        from qgis.PyQt.QtCore import QSize
        from qgis.PyQt.QtWidgets import QMainWindow

        from landslide_sar_plugin.core.candidates import grid_of
        from landslide_sar_plugin.core.detect import DetectResult
        from landslide_sar_plugin.core.histogram import raster_histogram
        from landslide_sar_plugin.gui.dock import LandslideDock

        self.app = app
        window = QMainWindow()
        canvas = QgsMapCanvas(window)
        canvas.setCachingEnabled(True)
        canvas.setParallelRenderingEnabled(True)
        window.setCentralWidget(canvas)

        class Iface:
            def mapCanvas(self):  # noqa: N802
                return canvas

            def messageBar(self):  # noqa: N802
                return bar

            def mainWindow(self):  # noqa: N802
                return window

        bar = QgsMessageBar()
        self.window, self.canvas = window, canvas
        self.bridge = QgsLayerTreeMapCanvasBridge(QgsProject.instance().layerTreeRoot(), canvas)
        self.dock = LandslideDock(Iface(), window)
        window.resize(QSize(1560, 900))
        window.show()
        files = {k: run / f"{k}.tif" for k in ("a_ratio", "a_ratio_ascending", "a_ratio_descending",
                                                "background_change", "evidence_ascending", "evidence_descending")}
        files["candidates"] = run / "candidates.gpkg"
        import sqlite3

        with sqlite3.connect(files["candidates"]) as conn:
            n = conn.execute("SELECT COUNT(*) FROM candidates").fetchone()[0]
        result = DetectResult(run, files, THRESHOLD, n, {}, grid_of(files["a_ratio"]), None, [], {}, True,
                              {"event_id": "bench_review_synthetic", "noise": None})
        histogram = raster_histogram(files["a_ratio"], bins=120, value_range=(-6.0, 8.0))
        self.dock._show_run({"result": result, "histogram": histogram, "score_key": "a_ratio"})
        self.n_polygons = n
        self.refreshed = []
        canvas.mapCanvasRefreshed.connect(lambda: self.refreshed.append(time.perf_counter()))

    def settle(self, timeout_s: float = 10.0) -> None:
        deadline = time.perf_counter() + timeout_s
        while time.perf_counter() < deadline:
            self.app.processEvents()
            if not self.canvas.isDrawing():
                self.app.processEvents()
                if not self.canvas.isDrawing():
                    return

    def timed(self, action, n: int) -> dict:
        """``n`` calls of ``action``: the call's own time, and the time to the canvas's next image."""
        respond, image = [], []
        for _ in range(n):
            self.settle()
            before = len(self.refreshed)
            t0 = time.perf_counter()
            action()
            respond.append(time.perf_counter() - t0)
            deadline = t0 + 10
            while len(self.refreshed) == before and time.perf_counter() < deadline:
                self.app.processEvents()
            if len(self.refreshed) > before:
                image.append(self.refreshed[-1] - t0)
        return {"respond_ms": stats_ms(respond), "image_ms": stats_ms(image) if image else None,
                "goal_met": sorted(respond)[int(0.95 * (len(respond) - 1))] < 0.1}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=benchlib.ROOT / "bench" / "review.json")
    ap.add_argument("--work", type=Path, default=benchlib.ROOT / "bench")
    ap.add_argument("--polygons", type=int, default=5000)
    ap.add_argument("--steps", type=int, default=60)
    args = ap.parse_args(argv)
    benchlib.use_engine_root(None)
    machine = benchlib.machine_info()
    run = make_run(args.work, args.polygons)

    from qgis.core import QgsApplication, QgsProject
    from qgis.PyQt.QtCore import QCoreApplication, QSettings

    QCoreApplication.setOrganizationName("LandslideSarBench")
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, tempfile.mkdtemp())
    app = QgsApplication([], True)
    app.setPrefixPath("/usr", True)
    app.initQgis()
    bench = QueueBench(app, run)
    dock = bench.dock
    t0 = time.perf_counter()
    dock.queue_button.click()  # builds the queue, shows the evidence, goes to the first candidate
    open_s = time.perf_counter() - t0
    report = {"what": f"review queue of the plugin's dock beside a 1200x900 QgsMapCanvas showing "
                      f"{bench.n_polygons} candidate polygons over a {SIZE}^2 A_ratio and its radar evidence "
                      "(SYNTHETIC bench run), caching and parallel rendering on",
              "machine": machine, "goal_respond_p95_ms": 100, "n_polygons": bench.n_polygons,
              "open_queue_ms": round(1000 * open_s, 1), "actions": {}}
    report["actions"]["next"] = bench.timed(dock.queue_next, args.steps)
    report["actions"]["previous"] = bench.timed(dock.queue_previous, args.steps // 2)
    report["actions"]["accept"] = bench.timed(lambda: dock.set_selected_status("accepted"), args.steps)
    report["counter"] = dock.queue_counter.text()
    for name, values in report["actions"].items():
        print(name, json.dumps(values), flush=True)
    print("open_queue_ms", report["open_queue_ms"], "counter", report["counter"], flush=True)
    benchlib.write_report(args.out, report)
    QgsProject.instance().clear()
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
