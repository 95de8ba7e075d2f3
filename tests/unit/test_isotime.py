"""The one ISO-8601 parser (core.isotime) behind the catalogue, the OPERA tags and the simulator."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from landslide_sar_plugin.core import catalog, simulate
from landslide_sar_plugin.core.isotime import parse_iso_utc
from landslide_sar_plugin.core.sources import opera

UTC = dt.timezone.utc


@given(st.datetimes(min_value=dt.datetime(1990, 1, 1), max_value=dt.datetime(2100, 1, 1)),
       st.integers(0, 999), st.sampled_from(["Z", "z", "+00:00", "+05:30", "-03:00", ""]), st.sampled_from("T "))
def test_any_iso_spelling_gives_the_same_utc_instant(naive, extra, zone, sep):
    tz = UTC if zone in ("Z", "z", "+00:00", "") else dt.datetime.strptime(zone, "%z").tzinfo
    local = naive.replace(tzinfo=tz)
    text = local.strftime(f"%Y-%m-%d{sep}%H:%M:%S") + f".{local.microsecond:06d}{extra:03d}" + zone
    got = parse_iso_utc(text)
    assert got == local and got.tzinfo == UTC  # nanoseconds cut to microseconds, never rounded into the next one


def test_the_three_callers_agree_and_keep_their_own_messages():
    text = "2023-12-03T01:59:11.123456789Z"
    want = dt.datetime(2023, 12, 3, 1, 59, 11, 123456, tzinfo=UTC)
    assert opera.parse_tag_time(text) == want == catalog.parse_time(text)
    assert simulate.parse_time(text) == want.replace(microsecond=0)
    assert catalog.parse_time("20231203T015911") == want.replace(microsecond=0)
    with pytest.raises(ValueError, match="ZERO_DOPPLER_START_TIME"):
        opera.parse_tag_time("yesterday")
    with pytest.raises(catalog.CatalogError, match="not an ISO-8601 date or time"):
        catalog.parse_time("yesterday")
    with pytest.raises(ValueError, match="event time 'yesterday' is not ISO-8601"):
        simulate.parse_time("yesterday")
