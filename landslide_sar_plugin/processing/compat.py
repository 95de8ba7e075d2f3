"""Processing enum values spelled so they work on QGIS 3.22 and on QGIS 4 (Qt6).

QGIS 3.36 moved the Processing enums into ``Qgis`` (``Qgis.ProcessingSourceType.VectorPolygon``, ...) and
QGIS 4 drops the old unscoped spellings (``QgsProcessing.TypeVectorPolygon``).  QGIS 3.22 only knows the
scoped 3.x spellings (``QgsProcessing.SourceType.TypeVectorPolygon``).  Each name below takes the new enum
when the running QGIS has it, else the 3.22 one; the rest of the package uses only these names
(``tests/qgis/test_qgis4_enums.py`` checks that no unscoped enum value is used anywhere in the plugin).
"""

from __future__ import annotations

from qgis.core import (
    Qgis,
    QgsCoordinateReferenceSystem,
    QgsProcessing,
    QgsProcessingAlgorithm,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterFile,
    QgsProcessingParameterNumber,
    QgsProcessingUtils,
)


def _pick(new_enum: str, new_member: str, old):
    """``Qgis.<new_enum>.<new_member>`` when this QGIS has it (3.36+, QGIS 4), else ``old()`` (3.22)."""
    enum = getattr(Qgis, new_enum, None)
    if enum is not None and hasattr(enum, new_member):
        return getattr(enum, new_member)
    return old()


SOURCE_VECTOR_POLYGON = _pick("ProcessingSourceType", "VectorPolygon",
                              lambda: QgsProcessing.SourceType.TypeVectorPolygon)
SOURCE_RASTER = _pick("ProcessingSourceType", "Raster", lambda: QgsProcessing.SourceType.TypeRaster)
NUMBER_DOUBLE = _pick("ProcessingNumberParameterType", "Double", lambda: QgsProcessingParameterNumber.Type.Double)
NUMBER_INTEGER = _pick("ProcessingNumberParameterType", "Integer",
                       lambda: QgsProcessingParameterNumber.Type.Integer)
FILE_FOLDER = _pick("ProcessingFileParameterBehavior", "Folder", lambda: QgsProcessingParameterFile.Behavior.Folder)
FILE_FILE = _pick("ProcessingFileParameterBehavior", "File", lambda: QgsProcessingParameterFile.Behavior.File)
FLAG_ADVANCED = _pick("ProcessingParameterFlag", "Advanced",
                      lambda: QgsProcessingParameterDefinition.Flag.FlagAdvanced)
FLAG_NO_THREADING = _pick("ProcessingAlgorithmFlag", "NoThreading",
                          lambda: QgsProcessingAlgorithm.Flag.FlagNoThreading)
LAYER_HINT_RASTER = _pick("ProcessingLayerHint", "Raster", lambda: QgsProcessingUtils.LayerHint.Raster)
LAYER_HINT_VECTOR = _pick("ProcessingLayerHint", "Vector", lambda: QgsProcessingUtils.LayerHint.Vector)
WKT_PREFERRED = _pick("CrsWktVariant", "Preferred", lambda: QgsCoordinateReferenceSystem.WktVariant.WKT_PREFERRED)
