"""Readers of the metadata that scene products carry in their file names and GeoTIFF tags.

One module per product family; each turns a name or a tag dictionary into
plain values (times in UTC, track numbers, polarisations, units) and knows
nothing of the catalogue that uses them (:mod:`..catalog`), so it can be
tested on names alone.

- :mod:`.opera`: NASA/JPL OPERA L2 RTC-S1 (radiometrically terrain-corrected
  Sentinel-1 bursts, linear gamma0, 30 m), as ASF and NASA Earthdata hand them out.
"""
