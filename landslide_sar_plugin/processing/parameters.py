"""Processing parameters made from the shared declaration in :mod:`..core.params` (and read back from it).

The label, help, unit, limits and default of every detection parameter come
from :data:`..core.params.SPECS`, so the Processing algorithms, the command
line and the dock cannot drift apart.
"""

from __future__ import annotations

import os

from qgis.core import (
    QgsProcessingException,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterCrs,
    QgsProcessingParameterEnum,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
)
from qgis.PyQt.QtCore import QCoreApplication

from ..core import params as shared
from .compat import FLAG_ADVANCED, NUMBER_DOUBLE, NUMBER_INTEGER, WKT_PREFERRED

BY_PROCESSING_NAME = {spec.processing: spec for spec in shared.SPECS.values()}


def tr(text: str) -> str:
    return QCoreApplication.translate("LandslideSarProcessing", text)


def _label(spec: shared.ParamSpec) -> str:
    label = tr(spec.label)
    if spec.unit and spec.kind in (shared.NUMBER, shared.OPTIONAL_NUMBER):
        label += f" ({spec.unit})"
    if spec.kind == shared.OPTIONAL_NUMBER:
        label += tr(" — 0 = off") if spec.zero_is_off else tr(" — empty = off")
    if spec.kind == shared.NUMBER and spec.default() is None and spec.none_help:
        label += tr(" — empty = {}").format(tr(spec.none_help))
    return label


def make_parameter(spec: shared.ParamSpec):
    """A fresh QgsProcessingParameter for ``spec`` (flagged advanced when the spec says so)."""
    default = spec.default()
    label = _label(spec)
    if spec.kind in (shared.NUMBER, shared.OPTIONAL_NUMBER):
        param = QgsProcessingParameterNumber(
            spec.processing, label, NUMBER_INTEGER if spec.integer else NUMBER_DOUBLE, default,
            optional=default is None or (spec.kind == shared.OPTIONAL_NUMBER and not spec.zero_is_off),
            minValue=spec.minimum if spec.minimum is not None else -1e12,
            maxValue=spec.maximum if spec.maximum is not None else 1e12)
        if spec.kind == shared.OPTIONAL_NUMBER and spec.zero_is_off and default is None:
            param.setDefaultValue(0)
    elif spec.kind == shared.CHOICE:
        param = QgsProcessingParameterEnum(spec.processing, label, options=[tr(c) for c in spec.options()],
                                           defaultValue=spec.options().index(default))
    elif spec.kind == shared.SWITCH:
        param = QgsProcessingParameterBoolean(spec.processing, label, bool(default))
    elif spec.kind == shared.DATE_RANGE:
        param = QgsProcessingParameterString(spec.processing, label, optional=True)
    elif spec.kind == shared.RASTER_FILE:
        param = QgsProcessingParameterRasterLayer(spec.processing, label, optional=True)
    elif spec.kind == shared.CRS_TEXT:
        param = QgsProcessingParameterCrs(spec.processing, label, optional=True)
    else:  # pragma: no cover - a new kind must be handled here
        raise ValueError(f"unknown parameter kind {spec.kind!r}")
    param.setHelp(tr(spec.help))
    if spec.advanced:
        param.setFlags(param.flags() | FLAG_ADVANCED)
    return param


def _is_empty(parameters, name: str) -> bool:
    return parameters.get(name) in (None, "")


def read_value(alg, spec: shared.ParamSpec, parameters, context):
    """The front-end value of ``spec`` (as :func:`..core.params.detect_fields` expects it)."""
    name = spec.processing
    if spec.kind in (shared.NUMBER, shared.OPTIONAL_NUMBER):
        if _is_empty(parameters, name) and spec.optional():
            return None
        return alg.parameterAsInt(parameters, name, context) if spec.integer else \
            alg.parameterAsDouble(parameters, name, context)
    if spec.kind == shared.CHOICE:
        return spec.options()[alg.parameterAsEnum(parameters, name, context)]
    if spec.kind == shared.SWITCH:
        return alg.parameterAsBoolean(parameters, name, context)
    if spec.kind == shared.DATE_RANGE:
        text = alg.parameterAsString(parameters, name, context).strip()
        if not text:
            return None
        try:
            return shared.parse_date_range(text)
        except ValueError as exc:
            raise QgsProcessingException(tr("{}: {}").format(tr(spec.label), exc)) from None
    if spec.kind == shared.RASTER_FILE:
        if _is_empty(parameters, name):
            return None
        layer = alg.parameterAsRasterLayer(parameters, name, context)
        path = layer.source().split("|")[0] if layer is not None else ""
        if not os.path.isfile(path):
            raise QgsProcessingException(tr("{} must be a raster file on disk").format(tr(spec.label)))
        return path
    if spec.kind == shared.CRS_TEXT:
        crs = alg.parameterAsCrs(parameters, name, context)
        if not crs.isValid():
            return None
        authid = crs.authid()
        return authid if authid.upper().startswith("EPSG:") else crs.toWkt(WKT_PREFERRED)
    raise ValueError(f"unknown parameter kind {spec.kind!r}")  # pragma: no cover
