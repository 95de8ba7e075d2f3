"""Processing outputs load styled like the dock's layers (a layer post-processor per loaded output).

Processing adds an algorithm's outputs to the project after the run; the
post-processor then applies the same style as the dock (:mod:`..gui.layers`):
the A_ratio with its run's threshold in the legend, the probability ramp,
candidates by review status, the agreement categories, the radar evidence
(which, as in the dock, starts hidden: it would cover the score).  QGIS keeps only a
C++ pointer to a post-processor, so each one is also kept alive here until it
has run.
"""

from __future__ import annotations

from qgis.core import QgsProcessingLayerPostProcessorInterface

_PENDING: list = []  # post-processors waiting for their layer (QGIS does not own the Python objects)


class RunOutputStyle(QgsProcessingLayerPostProcessorInterface):
    """Styles one loaded output: ``key`` is the run output (a_ratio, probability, candidates, agreement, ...)."""

    def __init__(self, key: str, threshold: float | None = None):
        super().__init__()
        self.key, self.threshold = key, threshold

    def postProcessLayer(self, layer, context, feedback):  # noqa: N802 (QGIS API)
        from ..gui.layers import is_evidence, style_layer

        try:
            if layer is not None and layer.isValid():
                style_layer(layer, self.key, threshold=self.threshold)
                if is_evidence(self.key):
                    _hide(layer, context)
        finally:
            if self in _PENDING:
                _PENDING.remove(self)


def _hide(layer, context) -> None:
    project = context.project() if context is not None else None
    node = project.layerTreeRoot().findLayer(layer.id()) if project is not None else None
    if node is not None:
        node.setItemVisibilityChecked(False)


def post_processor(key: str, threshold: float | None = None) -> RunOutputStyle:
    styler = RunOutputStyle(key, threshold)
    _PENDING.append(styler)
    return styler
