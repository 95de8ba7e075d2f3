"""QGIS opens the GeoPackages we write, and the ones GDAL wrote and we exported into, with a spatial index.

And the other way round: a polygon QGIS adds to our candidates file (through GDAL, with our R-tree
triggers) is read back and exported by the engine.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

from landslide_sar_plugin.core import gpkg
from landslide_sar_plugin.core.gpkg import Feature
from landslide_sar_plugin.core.inventory import export_reviewed, inventory_counts
from landslide_sar_plugin.core.threshold import CANDIDATE_FIELDS, candidate_uuid

CRS = "EPSG:32654"
EVENT = "event_20180905T1807"


def square(i: int) -> dict:
    x, y = 559000.0 + 200.0 * i, 4748000.0
    return {"type": "Polygon", "coordinates": [[(x, y), (x + 50, y), (x + 50, y + 50), (x, y + 50), (x, y)]]}


def candidates(path, n, start=0):
    feats = [Feature(square(i), {"id": i, "method": "a_ratio", "threshold": 1.25, "event_id": EVENT,
                                 "status": "accepted", "uuid": candidate_uuid(EVENT, "a_ratio", 1.25, square(i))})
             for i in range(start, start + n)]
    return gpkg.write_features(path, "candidates", feats, crs=CRS, fields=CANDIDATE_FIELDS)


def open_layer(path, name):
    from qgis.core import QgsVectorLayer

    layer = QgsVectorLayer(f"{path}|layername={name}", name, "ogr")
    assert layer.isValid(), path
    return layer


def assert_indexed(layer, n):
    from qgis.core import QgsFeatureRequest, QgsFeatureSource, QgsRectangle

    assert layer.hasSpatialIndex() == QgsFeatureSource.SpatialIndexPresence.SpatialIndexPresent
    assert layer.featureCount() == n
    first = QgsRectangle(558990.0, 4747990.0, 559060.0, 4748060.0)  # around square(0) only
    hits = list(layer.getFeatures(QgsFeatureRequest().setFilterRect(first)))
    assert len(hits) == 1


def test_qgis_sees_the_spatial_index_of_our_files(qgis_app, tmp_path):
    cand = candidates(tmp_path / "run" / "candidates.gpkg", 3)
    inv = tmp_path / "inventory.gpkg"
    export_reviewed(cand, inv, reviewer="qgis-test")
    assert_indexed(open_layer(cand, "candidates"), 3)
    assert_indexed(open_layer(inv, "landslides"), 3)


@pytest.mark.skipif(shutil.which("ogr2ogr") is None, reason="GDAL's ogr2ogr is not installed")
def test_qgis_sees_the_index_of_a_gdal_inventory_after_our_export(qgis_app, tmp_path):
    ours = tmp_path / "ours.gpkg"
    export_reviewed(candidates(tmp_path / "a" / "candidates.gpkg", 2), ours, reviewer="x")
    theirs = tmp_path / "gdal.gpkg"
    subprocess.run(["ogr2ogr", "-f", "GPKG", str(theirs), str(ours), "landslides"], check=True, capture_output=True)
    export_reviewed(candidates(tmp_path / "b" / "candidates.gpkg", 2, start=5), theirs, reviewer="x")
    assert_indexed(open_layer(theirs, "landslides"), 4)


def test_a_polygon_added_in_qgis_is_indexed_and_exported(qgis_app, tmp_path):
    from qgis.core import QgsFeature, QgsGeometry

    cand = candidates(tmp_path / "run" / "candidates.gpkg", 1)
    layer = open_layer(cand, "candidates")
    feat = QgsFeature(layer.fields())
    feat.setGeometry(QgsGeometry.fromWkt("MultiPolygon (((560000 4748000, 560050 4748000, 560050 4748050, "
                                         "560000 4748000)))"))
    feat["status"], feat["method"] = "accepted", "manual"
    assert layer.dataProvider().addFeatures([feat])[0]
    del layer  # QGIS (GDAL) has committed the row through our file's R-tree triggers
    assert_indexed(open_layer(cand, "candidates"), 2)
    inv = tmp_path / "inventory.gpkg"
    summary = export_reviewed(cand, inv, reviewer="x")
    assert summary.added == 2 and inventory_counts(inv) == {"accepted": 2, "total": 2}
