"""Areas of interest from QGIS objects (rectangles, polygon features) as the core's :class:`~..core.grid.Aoi`.

Shared by the dock and the Processing algorithms, so a polygon layer masks a
run by its polygons (not by their bounding box) wherever it is chosen, as the
command line's ``--aoi FILE`` does.
"""

from __future__ import annotations

import json
from collections.abc import Iterable


def _rio_crs(crs):
    from rasterio.crs import CRS

    authid = crs.authid()
    if authid.upper().startswith("EPSG:"):
        return CRS.from_user_input(authid)
    return CRS.from_wkt(crs.toWkt())


def aoi_from_rect(rect, crs, source: str):
    """A rectangular AOI (a QgsRectangle in ``crs``)."""
    from ..core.grid import Aoi

    if not crs.isValid():
        raise ValueError("the area of interest has no valid coordinate reference system")
    return Aoi((rect.xMinimum(), rect.yMinimum(), rect.xMaximum(), rect.yMaximum()), _rio_crs(crs), None, source)


def aoi_from_features(features: Iterable, crs, source: str):
    """The AOI of polygon features: their bounding box plus the polygons themselves (GeoJSON in ``crs``)."""
    from qgis.core import QgsRectangle

    from ..core.grid import Aoi

    geoms, extent = [], QgsRectangle()
    for feature in features:
        if not feature.hasGeometry() or feature.geometry().isEmpty():
            continue
        geom = json.loads(feature.geometry().asJson())
        if geom.get("type") not in ("Polygon", "MultiPolygon"):
            continue
        geoms.append(geom)
        extent.combineExtentWith(feature.geometry().boundingBox())
    if not geoms:
        raise ValueError("the area-of-interest layer has no (selected) polygon; choose a polygon layer with at least "
                         "one polygon, or select one")
    rect = aoi_from_rect(extent, crs, source)
    return Aoi(rect.bounds, rect.crs, geoms, source)
