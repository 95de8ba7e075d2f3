"""Training for the deep-learning method: chips, splits, U-Net / Attention U-Net, evaluation, ONNX export.

Imports ``landslide_sar_plugin.core`` (never the GUI).  ``python -m training --help`` lists the commands.
Everything trained here so far used SYNTHETIC (simulated) Sentinel-1 scenes only.
"""
