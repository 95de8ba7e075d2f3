"""Processing algorithms of the "Landslide SAR" provider."""

ALGORITHMS: list = []
