"""The review queue of one candidates layer: the order (:func:`..core.review.review_order`) and the position.

No widgets here: the dock (:mod:`.dock_queue`) moves through the queue and
shows what it points at.  The queue keeps each queued feature's review status
in memory, updated from the layer's ``attributeValueChanged`` signal, so that
"next unreviewed" and the counter cost a scan of a list, not a query of the
layer: on a 5,000-polygon layer a step stays far below the 100 ms a click may
take (``tests/bench/bench_review.py``).

Next goes to the next *unreviewed* candidate after the current one (wrapping
round to the start); Previous steps back one place in the order, reviewed or
not, so a decision can be revisited.  Polygons drawn by hand are not queued;
they are counted apart.
"""

from __future__ import annotations

from qgis.core import QgsFeatureRequest, QgsVectorLayer

from ..core.review import review_order

UNREVIEWED = ("", "proposed")


def _status_text(value) -> str:
    if value is None:
        return ""
    text = str(value)
    return "" if text == "NULL" else text.lower()


class ReviewQueue:
    """Candidates of ``layer`` in review order around ``threshold`` (the score the polygons were cut at)."""

    def __init__(self, layer: QgsVectorLayer, threshold: float):
        self.layer = layer
        self.threshold = float(threshold)
        fields = layer.fields()
        self.status_index = fields.indexFromName("status")
        names = [n for n in ("mean_score", "area_m2", "status", "method") if fields.indexFromName(n) >= 0]
        request = QgsFeatureRequest().setFlags(QgsFeatureRequest.Flag.NoGeometry).setSubsetOfAttributes(
            names, fields)
        rows, fids, self.status, manual = [], [], {}, set()
        for f in layer.getFeatures(request):
            values = {n: f[n] for n in names}
            if _status_text(values.get("method")) == "manual":
                manual.add(f.id())  # drawn by hand: reviewed by construction, never queued
                continue
            rows.append({"mean_score": values.get("mean_score"), "area_m2": values.get("area_m2")})
            fids.append(f.id())
            self.status[f.id()] = _status_text(values.get("status"))
        self.order = [fids[i] for i in review_order(rows, self.threshold)]
        self.index_of = {fid: i for i, fid in enumerate(self.order)}
        self.manual = manual
        self.position = -1
        self.n_reviewed = sum(1 for s in self.status.values() if s not in UNREVIEWED)

    # ------------------------------------------------------------------ state

    @property
    def total(self) -> int:
        return len(self.order)

    def current(self) -> int | None:
        """The feature id the queue points at, or None before the first step."""
        return self.order[self.position] if 0 <= self.position < len(self.order) else None

    def is_reviewed(self, fid: int) -> bool:
        return self.status.get(fid, "") not in UNREVIEWED

    def note_status(self, fid: int, status) -> None:
        """Keep the counter right when a queued feature's status changes (any tool, any widget)."""
        if fid not in self.status:
            return
        was, now = self.is_reviewed(fid), _status_text(status) not in UNREVIEWED
        self.status[fid] = _status_text(status)
        self.n_reviewed += int(now) - int(was)

    def note_added(self, fid: int) -> None:
        self.manual.add(fid)

    def note_deleted(self, fid: int) -> None:
        self.manual.discard(fid)
        if fid not in self.index_of:
            return
        if self.is_reviewed(fid):
            self.n_reviewed -= 1
        i = self.index_of.pop(fid)
        self.order.pop(i)
        self.status.pop(fid, None)
        self.index_of = {f: k for k, f in enumerate(self.order)}
        if self.position >= i:
            self.position -= 1

    # ------------------------------------------------------------------ moving

    def next_unreviewed(self) -> int | None:
        """Move to the next unreviewed candidate after the current one (wrapping); None when all are reviewed."""
        n = len(self.order)
        for step in range(1, n + 1):
            i = (self.position + step) % n
            if not self.is_reviewed(self.order[i]):
                self.position = i
                return self.order[i]
        return None

    def previous(self) -> int | None:
        """Move one place back in the order (None at the start)."""
        if self.position <= 0:
            return None
        self.position -= 1
        return self.order[self.position]

    def go_to(self, fid: int) -> bool:
        """Point at ``fid`` if it is queued (a polygon the analyst selected on the map)."""
        i = self.index_of.get(fid)
        if i is None:
            return False
        self.position = i
        return True

    def counter_text(self) -> str:
        drawn = f" (+{len(self.manual)} drawn)" if self.manual else ""
        return f"{self.n_reviewed} of {self.total} reviewed{drawn}"
