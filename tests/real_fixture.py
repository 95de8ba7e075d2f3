"""Where tests find the REAL OPERA RTC-S1 fixture (shipped in tests/fixtures; see its README)."""

from __future__ import annotations

from pathlib import Path

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "opera_rtc_s1_t137"
_SHARED = Path(__file__).resolve().parents[2] / "shared" / "realdata" / "opera_rtc_s1_california_t137"


def real_burst_dir(burst: str) -> Path:
    """The folder of one real burst: the shipped fixture, else (development only) ../shared/realdata."""
    for root in (FIXTURES, _SHARED):
        if (root / burst).is_dir():
            return root / burst
    raise FileNotFoundError(f"real fixture burst {burst} is missing from {FIXTURES}")
