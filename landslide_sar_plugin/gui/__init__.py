"""Qt/QGIS user interface. Thin: every computation is delegated to ``core``."""
