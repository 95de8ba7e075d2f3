"""The dock's three ways of expressing the A_ratio threshold, and their conversions (pure Python, no Qt).

* ``value``: the score itself (dB for A_ratio, 0..1 for a probability);
* ``percentile``: the share of valid pixels below it, estimated from the run's histogram;
* ``ksigma``: ``center_dB + k * sigma_dB``, the scene's own robust noise level (``run.json``'s
  ``"noise": {"center_db": c, "sigma_db": s}``; sigma = 1.4826 x MAD of the masked, detrended ratio),
  available only when the run recorded it.

The map always shows one threshold in score units; every mode converts to
and from it, and :func:`describe` says it in all the units the run supports
("1.25 dB = p97.3 = 0.9 σ"), for the info line and the histogram.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

VALUE, PERCENTILE, KSIGMA = "value", "percentile", "ksigma"
PERCENTILE_RANGE = (50.0, 99.99)
K_RANGE = (0.0, 10.0)


@dataclass(frozen=True)
class Noise:
    """The scene's robust noise level from run.json (dB)."""

    center_db: float
    sigma_db: float

    @classmethod
    def from_run(cls, run_info: dict | None) -> Noise | None:
        noise = (run_info or {}).get("noise")
        try:
            center, sigma = float(noise["center_db"]), float(noise["sigma_db"])
        except (TypeError, KeyError, ValueError):
            return None
        return cls(center, sigma) if math.isfinite(center) and math.isfinite(sigma) and sigma > 0 else None


def available_modes(score_key: str, noise: Noise | None) -> list[str]:
    modes = [VALUE, PERCENTILE]
    if score_key == "a_ratio" and noise is not None:
        modes.append(KSIGMA)
    return modes


def control_range(mode: str, histogram) -> tuple[float, float]:
    """The slider/spin box range of ``mode``."""
    if mode == PERCENTILE:
        return PERCENTILE_RANGE
    if mode == KSIGMA:
        return K_RANGE
    return float(histogram.edges[0]), float(histogram.edges[-1])


def to_score(mode: str, x: float, histogram, noise: Noise | None) -> float:
    """The threshold in score units (dB or probability) that the control value ``x`` of ``mode`` means."""
    if mode == PERCENTILE:
        return histogram.value_at_percentile(x)
    if mode == KSIGMA:
        return noise.center_db + x * noise.sigma_db
    return x


def from_score(mode: str, score: float, histogram, noise: Noise | None) -> float:
    """The control value of ``mode`` for the score threshold ``score``."""
    if mode == PERCENTILE:
        return 100.0 * (1.0 - histogram.fraction_above(score))
    if mode == KSIGMA:
        return (score - noise.center_db) / noise.sigma_db
    return score


def describe(score: float, units: str, histogram, noise: Noise | None) -> str:
    """The threshold in every unit this run supports: ``1.25 dB = p97.3 = k 0.9 (σ 1.40 dB)``."""
    parts = [f"{score:.2f} {units}".strip()]
    if histogram is not None and histogram.n_valid:
        parts.append(f"p{from_score(PERCENTILE, score, histogram, noise):.1f}")
    if noise is not None and units == "dB":
        parts.append(f"k = {from_score(KSIGMA, score, histogram, noise):.1f} σ (σ = {noise.sigma_db:.2f} dB)")
    return " = ".join(parts)


def suffix(mode: str, units: str) -> str:
    if mode == PERCENTILE:
        return " %"
    if mode == KSIGMA:
        return " σ"
    return f" {units}" if units else ""
