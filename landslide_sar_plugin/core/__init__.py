"""Pure-Python engine of the Landslide SAR mapper.

Nothing in this package imports QGIS or Qt: the QGIS dock, the Processing
algorithms, the command line and ``training/`` all call these functions, so
every algorithm has exactly one implementation and is tested without QGIS.
"""
