"""Block-streamed histogram of a raster band (for the dock's threshold histogram)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio


@dataclass
class Histogram:
    """Counts of finite values in ``bins`` equal bins over ``[edges[0], edges[-1]]``."""

    counts: np.ndarray
    edges: np.ndarray
    n_valid: int
    minimum: float
    maximum: float

    def to_dict(self) -> dict:
        return {"counts": self.counts.tolist(), "edges": self.edges.tolist(), "n_valid": self.n_valid,
                "minimum": self.minimum, "maximum": self.maximum}

    def value_at_percentile(self, percentile: float) -> float:
        """Value below which ``percentile`` % of the valid values lie, interpolated within a bin.

        An estimate good to one bin width, for instant display; the exact
        percentile is computed by :func:`.threshold.exact_percentile`.
        """
        if self.n_valid == 0:
            return float("nan")
        target = min(max(percentile, 0.0), 100.0) / 100.0 * self.n_valid
        cumulative = np.concatenate([[0], np.cumsum(self.counts)])
        i = int(np.clip(np.searchsorted(cumulative, target, side="left") - 1, 0, len(self.counts) - 1))
        inside = (target - cumulative[i]) / self.counts[i] if self.counts[i] else 0.0
        return float(self.edges[i] + inside * (self.edges[i + 1] - self.edges[i]))

    def fraction_above(self, threshold: float) -> float:
        """Share of valid values above ``threshold``, interpolated within a bin (display only).

        The inverse of :meth:`value_at_percentile`: ``100 * (1 - fraction_above(value_at_percentile(p)))`` is ``p``,
        so a percentile the user types is shown back as typed.
        """
        if self.n_valid == 0:
            return 0.0
        cumulative = np.concatenate([[0], np.cumsum(self.counts)]).astype(np.float64)
        edges = self.edges
        if not threshold > edges[0]:  # clamped at the ends (NaN counts as below everything)
            below = 0.0
        elif threshold >= edges[-1]:
            below = float(cumulative[-1])
        else:  # linear within the bin, as a fraction of its width: np.interp's slope overflows on tiny widths
            i = int(np.clip(np.searchsorted(edges, threshold, side="right") - 1, 0, len(self.counts) - 1))
            width = edges[i + 1] - edges[i]
            inside = (threshold - edges[i]) / width if width > 0 else 1.0
            below = float(cumulative[i] + inside * self.counts[i])
        return float(min(max(1.0 - below / self.n_valid, 0.0), 1.0))


def raster_histogram(path: str | Path, *, bins: int = 120, value_range: tuple[float, float] | None = None,
                     band: int = 1) -> Histogram:
    """Histogram of the finite values of ``band``; two streamed passes when no range is given.

    Values outside ``value_range`` are clipped into the end bins, so the counts
    always sum to the number of valid pixels.
    """
    with rasterio.open(path) as src:
        windows = [w for _, w in src.block_windows(band)]
        lo, hi, n = np.inf, -np.inf, 0
        for w in windows:
            v = src.read(band, window=w, masked=True).filled(np.nan).astype(np.float64)
            v = v[np.isfinite(v)]
            if v.size:
                lo, hi, n = min(lo, v.min()), max(hi, v.max()), n + v.size
        if n == 0:
            return Histogram(np.zeros(bins, np.int64), np.linspace(0.0, 1.0, bins + 1), 0, float("nan"),
                             float("nan"))
        r0, r1 = value_range if value_range is not None else (lo, hi if hi > lo else lo + 1.0)
        edges = np.linspace(r0, r1, bins + 1)
        counts = np.zeros(bins, np.int64)
        for w in windows:
            v = src.read(band, window=w, masked=True).filled(np.nan).astype(np.float64)
            v = np.clip(v[np.isfinite(v)], r0, r1)
            counts += np.histogram(v, bins=edges)[0]
    return Histogram(counts, edges, int(n), float(lo), float(hi))
