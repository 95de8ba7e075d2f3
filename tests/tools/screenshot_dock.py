"""Screenshot of the dock after a run on the SYNTHETIC sample scene (``make screenshot``).

Builds a main window with a real QGIS map canvas, the Layers panel (the
legend the styles produce) and the plugin's dock at 360 px, clicks "Detect
landslides" on the sample scene, waits for the background task, zooms to the
result and grabs the window offscreen into a PNG.  With ``--review``: the
review queue instead, after a few decisions (accept, reject, accept), on the
next candidate with the radar evidence layer shown and a threshold suggested.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "dock.png")
    parser.add_argument("--review", action="store_true", help="the review queue with the radar evidence")
    args = parser.parse_args(argv)

    from qgis.core import QgsApplication
    from qgis.gui import QgsMapCanvas, QgsMessageBar
    from qgis.PyQt.QtCore import QCoreApplication, QSettings, Qt
    from qgis.PyQt.QtWidgets import QMainWindow

    QCoreApplication.setOrganizationName("LandslideSarScreenshot")
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, tempfile.mkdtemp())
    app = QgsApplication([], True)
    app.setPrefixPath("/usr", True)
    app.initQgis()

    from landslide_sar_plugin.gui.dock import LandslideDock

    class Iface:
        def __init__(self):
            self.window = QMainWindow()
            self.canvas = QgsMapCanvas(self.window)
            self.bar = QgsMessageBar()  # not shown: messages also go to the dock's status line
            self.window.setCentralWidget(self.canvas)

        def mapCanvas(self):  # noqa: N802
            return self.canvas

        def messageBar(self):  # noqa: N802
            return self.bar

    iface = Iface()
    window = iface.window
    window.resize(1600, 1000)
    from qgis.core import QgsLayerTreeModel, QgsProject
    from qgis.gui import QgsLayerTreeMapCanvasBridge, QgsLayerTreeView
    from qgis.PyQt.QtWidgets import QDockWidget

    root = QgsProject.instance().layerTreeRoot()
    model = QgsLayerTreeModel(root)
    model.setFlag(QgsLayerTreeModel.Flag.AllowNodeChangeVisibility)
    view = QgsLayerTreeView()
    view.setModel(model)
    layers_dock = QDockWidget("Layers", window)
    layers_dock.setWidget(view)
    window.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, layers_dock)
    bridge = QgsLayerTreeMapCanvasBridge(root, iface.canvas)  # noqa: F841 (keeps the canvas in sync)
    dock = LandslideDock(iface, window)
    window.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)
    window.resizeDocks([layers_dock, dock], [300, 360], Qt.Orientation.Horizontal)
    dock.use_sample_scene()
    dock.out_dir.setFilePath(tempfile.mkdtemp(prefix="landslide_screenshot_"))
    window.show()
    dock.detect_button.click()
    deadline = time.monotonic() + 300
    while dock.task is not None:
        if time.monotonic() > deadline:
            print("error: the detection did not finish in 5 minutes", file=sys.stderr)
            return 1
        QCoreApplication.processEvents()
        time.sleep(0.02)
    if dock.run_result is None:
        print(f"error: the detection failed: {dock.status_label.text()}", file=sys.stderr)
        return 1
    ratio = dock.run_layers["a_ratio"]
    iface.canvas.setDestinationCrs(ratio.crs())
    iface.canvas.setExtent(ratio.extent())
    # the run's own threshold (the default rule), as a user sees it after a run
    view.expandAll()
    if args.review:
        for _ in range(10):  # the layer-tree bridge zooms to the first layers' extent in a deferred call
            QCoreApplication.processEvents()
        review(dock)
    else:
        dock.scroll_to(dock.threshold_group)
    iface.canvas.refresh()
    for _ in range(50):
        QCoreApplication.processEvents()
        iface.canvas.waitWhileRendering()
        time.sleep(0.02)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if not window.grab().save(str(args.out)):
        print(f"error: could not write {args.out}", file=sys.stderr)
        return 1
    print(f"screenshot: {args.out}")
    sys.stdout.flush()
    # PyQGIS can crash while tearing down a canvas with layers at interpreter exit; the file is
    # written, so leave without running the Qt/QGIS destructors.
    os._exit(0)


def review(dock) -> None:
    """The analyst's first decisions in the queue; the next candidate shown with its radar evidence."""
    dock.queue_button.click()
    for status in ("accepted", "rejected", "accepted", "rejected"):
        dock.set_selected_status(status)
    dock.suggest_button.click()
    dock.scroll_to(dock.review_group)


if __name__ == "__main__":
    sys.exit(main())
