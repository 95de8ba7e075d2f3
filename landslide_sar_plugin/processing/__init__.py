"""QGIS Processing provider: the same core steps as toolbox/modeler algorithms."""
