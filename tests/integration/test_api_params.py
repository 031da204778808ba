"""Query parameter parsing of the API (pure functions; here beside the API tests they serve)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from millnet.api.params import (
    Limits,
    bucket_range,
    parse_series,
    parse_time,
    parse_width,
    raw_limit,
    time_range,
    to_ms,
)
from millnet.errors import InvalidInput, NotFound

T0_NS = 1_735_689_600_000_000_000  # 2025-01-01T00:00:00Z


@pytest.mark.parametrize(("text", "ns"), [
    ("1735689600000", T0_NS),
    ("1735689600000.5", T0_NS + 500_000),
    ("1735689600000.000001", T0_NS + 1),
    ("0", 0),
    ("-1000", -1_000_000_000),
    ("2025-01-01T00:00:00Z", T0_NS),
    ("2025-01-01T00:00:00+00:00", T0_NS),
    ("2025-01-01T01:00:00+01:00", T0_NS),
    ("2025-01-01T00:00:00", T0_NS),  # naive: UTC
    ("2025-01-01", T0_NS),
    ("2025-01-01T00:00:00.123456Z", T0_NS + 123_456_000),
    (" 2025-01-01T00:00:00Z ", T0_NS),
])
def test_parse_time(text: str, ns: int) -> None:
    assert parse_time(text, "start") == ns


@pytest.mark.parametrize(("text", "ns"), [
    ("999999999999999", 2**63 - 1), ("-999999999999999", -(2**63)),
    ("0001-01-01T00:00:00Z", -(2**63)), ("9999-12-31T23:59:59Z", 2**63 - 1)])
def test_parse_time_clamps_to_int64_nanoseconds(text: str, ns: int) -> None:
    """The document allows any year; no sample lies beyond what int64 nanoseconds hold."""
    assert parse_time(text, "start") == ns


@pytest.mark.parametrize("text", ["", "now", "1735689600000.1234567", "1e12", "2025-02-30",
                                  "99999999999999999", "12:00", "0x10"])
def test_parse_time_rejects(text: str) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_time(text, "end")
    assert info.value.field == "end"


@given(st.integers(min_value=-(2**43) * 1_000 + 1, max_value=2**43 * 1_000 - 1))
def test_returned_timestamps_parse_back_exactly(us: int) -> None:
    """Stores keep microseconds; ``ts_ms`` printed by JSON selects the same instant (exact for
    |ts| < 2**43 ms, until the year 2248)."""
    ns = us * 1_000
    assert parse_time(repr(to_ms(ns)), "start") == ns


@pytest.mark.parametrize(("text", "ns"), [("500ms", 500_000_000), ("15s", 15 * 10**9),
                                          ("1m", 60 * 10**9), ("2h", 7_200 * 10**9),
                                          ("1d", 86_400 * 10**9),
                                          ("36500d", 36_500 * 86_400 * 10**9),
                                          ("99999h", 99_999 * 3_600 * 10**9)])
def test_parse_width(text: str, ns: int) -> None:
    assert parse_width(text) == ns


@pytest.mark.parametrize("text", ["", "0s", "1", "m", "1w", "1.5m", "-1m", "1 minute", " 5 m ",
                                  "01m", "36501d", "100000s", "1m\n"])
def test_parse_width_rejects(text: str) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_width(text)
    assert info.value.field == "width"


def test_parse_series() -> None:
    assert parse_series(["3,1", "2", "1", "4"], 10) == [3, 1, 2, 4]
    with pytest.raises(InvalidInput, match="at most 2"):
        parse_series(["1,2,3"], 2)
    for bad in (["x"], ["1.5"], ["-2"], [], [","], [" 4"], ["1,"], ["12345678901"]):
        with pytest.raises(InvalidInput):
            parse_series(bad, 10)
    with pytest.raises(InvalidInput, match="at most 2"):  # the ids given count, as documented
        parse_series(["1", "1", "1"], 2)
    with pytest.raises(NotFound):  # a well-formed id no series can have
        parse_series(["2147483648"], 10)


def test_time_range_defaults_and_order() -> None:
    limits = Limits(default_range_ns=60 * 10**9)
    start, end = time_range(None, "1735689600000", limits)
    assert (start, end) == (T0_NS - 60 * 10**9, T0_NS)
    # start at or after end: an empty range, answered empty
    assert time_range("1735689600000", "1735689600000", limits) == (T0_NS, T0_NS)
    assert time_range("1735689600001", "1735689600000", limits) == (T0_NS + 10**6,) * 2


def test_raw_limit_and_buckets() -> None:
    limits = Limits(max_raw_rows=100, default_raw_rows=40, max_buckets=10)
    assert raw_limit(None, 1, limits) == 40
    assert raw_limit(None, 4, limits) == 25
    assert raw_limit(50, 2, limits) == 50
    assert raw_limit(51, 2, limits) == 50  # lowered to what the node answers at once
    with pytest.raises(InvalidInput):
        raw_limit(0, 1, limits)
    minute = 60 * 10**9
    assert bucket_range(0, 10 * minute, minute, limits) == (10 * minute, False)
    assert bucket_range(0, 1, minute, limits) == (1, False)
    assert bucket_range(0, 10 * minute + 1, minute, limits) == (10 * minute, True)
    # aligned to the epoch: 10 buckets from the one holding start
    assert bucket_range(30 * 10**9, 11 * minute, minute, limits) == (10 * minute, True)
