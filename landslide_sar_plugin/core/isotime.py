"""ISO-8601 times as aware UTC datetimes: the one parser behind the catalogue, the OPERA tags and the simulator."""

from __future__ import annotations

import datetime as dt
import re


def parse_iso_utc(text: str) -> dt.datetime:
    """``text`` (ISO-8601; ``Z`` or an offset; a space for ``T``; any number of fraction digits, cut to
    microseconds, which is what :class:`datetime.datetime` holds) as an aware UTC datetime.  A time without
    an offset is taken as UTC.  :class:`ValueError` if it is not ISO-8601; callers say what it was."""
    s = str(text).strip()
    if s[-1:] in ("Z", "z"):
        s = s[:-1] + "+00:00"
    s = re.sub(r"^(\d{4}-\d{2}-\d{2}) ", r"\1T", s)
    s = re.sub(r"(\.\d{6})\d+", r"\1", s)
    t = dt.datetime.fromisoformat(s)
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.timezone.utc)
    return t.astimezone(dt.timezone.utc)
