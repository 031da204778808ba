"""Parsing of query parameters shared by routes: times, bucket widths, series lists, limits.

Every failure raises :class:`~millnet.errors.InvalidInput` naming the parameter (answered 400).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Path

from millnet.errors import InvalidInput
from millnet.model.limits import ascii_digits

NS_PER_MS = 1_000_000
_UNIT_NS = {"ms": NS_PER_MS, "s": 1_000_000_000, "m": 60_000_000_000, "h": 3_600_000_000_000,
            "d": 86_400_000_000_000}
# ASCII digits only, and few of them: int() of thousands of digits raises (and is slow).
_WIDTH = re.compile(r"^\s*([0-9]{1,15})\s*(ms|s|m|h|d)\s*$")
_EPOCH_MS = re.compile(r"^(-?)([0-9]+)(?:\.([0-9]{1,6}))?$")
_MAX_WIDTH_NS = 36_500 * 86_400_000_000_000  # a century: the store computes in int64 ns
_MAX_EPOCH_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z
INT32_MAX = 2**31 - 1  # registry ids are 32-bit integers

ObjectId = Annotated[int, Path(ge=1, le=INT32_MAX, description="Id of the object")]


@dataclass(frozen=True, slots=True)
class Limits:
    """Upper bounds on one request's size; exceeding one answers 400 naming the parameter."""

    max_series: int = 100
    max_last_series: int = 1_000
    max_raw_rows: int = 100_000
    default_raw_rows: int = 10_000
    max_buckets: int = 10_000
    default_range_ns: int = 3_600_000_000_000  # one hour back from ``end`` when no ``start``


def parse_time(raw: str, field: str) -> int:
    """ISO 8601 (naive means UTC) or epoch milliseconds -> epoch nanoseconds.

    Epoch milliseconds may carry a fraction (``1700000000123.456``), as telemetry answers do.
    """
    text = raw.strip()
    epoch = _EPOCH_MS.match(text)
    if epoch is not None:
        sign, whole, frac = epoch.groups()
        if len(whole) > 15 or int(whole) > _MAX_EPOCH_MS:
            raise InvalidInput(f"epoch milliseconds out of range: {text[:40]}", field)
        ns = int(whole) * NS_PER_MS + int((frac or "").ljust(6, "0"))
        return -ns if sign else ns
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(
            f"not an ISO 8601 time or epoch milliseconds: {text[:40]!r}", field) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    ns = (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000
    if not -(2**63) <= ns < 2**63:
        raise InvalidInput(f"time out of range (1677 to 2262): {text[:40]!r}", field)
    return ns


def parse_width(raw: str, field: str = "width") -> int:
    """A bucket width such as ``15s``, ``1m``, ``1h``, ``500ms``, ``1d`` -> nanoseconds."""
    match = _WIDTH.match(raw)
    if match is None:
        raise InvalidInput(
            f"bucket width must be a number and a unit (ms, s, m, h, d), e.g. 1m; got "
            f"{raw[:20]!r}", field)
    width = int(match.group(1)) * _UNIT_NS[match.group(2)]
    if width <= 0:
        raise InvalidInput("bucket width must be positive", field)
    if width > _MAX_WIDTH_NS:
        raise InvalidInput("bucket width must be at most 36500d", field)
    return width


def time_range(start: str | None, end: str | None, limits: Limits) -> tuple[int, int]:
    """Half-open ``[start, end)`` in nanoseconds; ``end`` defaults to now, ``start`` to an hour
    before ``end``."""
    end_ns = parse_time(end, "end") if end is not None else time.time_ns()
    start_ns = (parse_time(start, "start") if start is not None
                else end_ns - limits.default_range_ns)
    if start_ns >= end_ns:
        raise InvalidInput("start must be before end", "start")
    return start_ns, end_ns


def parse_series(values: Iterable[str], max_series: int, field: str = "series") -> list[int]:
    """Series ids from repeated and/or comma-separated parameters, deduplicated, in order."""
    ids: dict[int, None] = {}
    for value in values:
        for part in value.split(","):
            token = part.strip()
            if not token:
                continue
            if not ascii_digits(token, 10) or int(token) > INT32_MAX:
                raise InvalidInput(
                    f"series ids are integers from 0 to {INT32_MAX}; got {token[:20]!r}", field)
            ids[int(token)] = None
            if len(ids) > max_series:
                raise InvalidInput(
                    f"too many series in one request (at most {max_series})", field)
    if not ids:
        raise InvalidInput("at least one series id is required", field)
    return list(ids)


def check_buckets(start_ns: int, end_ns: int, width_ns: int, limits: Limits) -> int:
    count = -(-(end_ns - start_ns) // width_ns)
    if count > limits.max_buckets:
        raise InvalidInput(
            f"{count} buckets requested, at most {limits.max_buckets}: widen the bucket or "
            "shorten the range", "width")
    return count


def raw_limit(limit: int | None, n_series: int, limits: Limits) -> int:
    """Rows per series: at most ``max_raw_rows`` over all the series of one request."""
    most = limits.max_raw_rows // n_series
    if limit is None:
        return max(1, min(limits.default_raw_rows, most))
    if limit < 1:
        raise InvalidInput("limit must be at least 1", "limit")
    if limit > most:
        raise InvalidInput(
            f"limit × series must not exceed {limits.max_raw_rows}: at most {most} rows per "
            f"series for {n_series} series", "limit")
    return limit


def to_ms(ts_ns: int) -> float:
    """Epoch nanoseconds -> epoch milliseconds, microseconds in the fraction.

    Exact for microsecond timestamps until the year 2248 (2**43 ms): the shortest repr of the
    float, which JSON encoders print, parses back to the same microsecond with :func:`parse_time`.
    """
    return ts_ns / NS_PER_MS
