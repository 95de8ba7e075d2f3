"""Static check: the plugin spells every QGIS/Qt enum value so that QGIS 4 (Qt6, scoped enums only) still has it.

PyQt6 and QGIS 4 drop unscoped enum access (``QgsProcessing.TypeVectorPolygon``, ``Qt.AlignCenter``); the
scoped form (``QgsProcessing.SourceType.TypeVectorPolygon``, ``Qt.AlignmentFlag.AlignCenter``) or the
``processing/compat.py`` names work on both.  Every ``Name.Attr`` in the plugin whose ``Name`` is imported
from ``qgis.*`` is resolved in the running QGIS 3.22: if ``Attr`` is an enum *value* taken directly from a
class (not from its enum type), the spelling will not survive QGIS 4.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "landslide_sar_plugin"


def _qgis_imports(tree: ast.Module) -> dict[str, object]:
    names = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "qgis":
            module = importlib.import_module(node.module)
            for alias in node.names:
                if hasattr(module, alias.name):
                    names[alias.asname or alias.name] = getattr(module, alias.name)
    return names


def _is_enum_value(owner, value) -> bool:
    """True for an enum value read directly from a class (``QgsProcessing.TypeRaster``), not from its enum type."""
    import enum

    if isinstance(value, enum.Enum):  # Python enums (PyQt6 style): scoped when read from the enum class itself
        return not (isinstance(owner, type) and issubclass(owner, enum.Enum))
    # sip (PyQt5) enums: the value's type is the enum, whose metatype is sip.enumtype.
    return type(type(value)).__name__ == "enumtype" and type(owner).__name__ != "enumtype"


def unscoped_enum_uses() -> list[str]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = _qgis_imports(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in names:
                owner = names[node.value.id]
                value = getattr(owner, node.attr, None)
                if value is not None and _is_enum_value(owner, value):
                    found.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}: {node.value.id}.{node.attr}")
            if isinstance(node, ast.Attribute) and node.attr == "exec_":
                found.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}: exec_ (use exec)")
    return found


def test_no_unscoped_qgis_or_qt_enum_values(qgis_app):
    assert unscoped_enum_uses() == []


def test_the_check_catches_the_legacy_spellings(qgis_app, tmp_path, monkeypatch):
    import sys

    legacy = tmp_path / "landslide_sar_plugin"
    legacy.mkdir()
    (legacy / "old.py").write_text(
        "from qgis.core import QgsProcessing, QgsProcessingParameterNumber\nfrom qgis.PyQt.QtCore import Qt\n"
        "a = QgsProcessing.TypeVectorPolygon\nb = QgsProcessingParameterNumber.Double\nc = Qt.AlignCenter\n"
        "d = QgsProcessing.SourceType.TypeVectorPolygon\ne = Qt.AlignmentFlag.AlignCenter\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", legacy)
    found = unscoped_enum_uses()
    assert [f.split(": ")[1] for f in found] == ["QgsProcessing.TypeVectorPolygon",
                                                 "QgsProcessingParameterNumber.Double", "Qt.AlignCenter"]
