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

from millnet.errors import InvalidInput, NotFound
from millnet.model.limits import ascii_digits

NS_PER_MS = 1_000_000
_UNIT_NS = {"ms": NS_PER_MS, "s": 1_000_000_000, "m": 60_000_000_000, "h": 3_600_000_000_000,
            "d": 86_400_000_000_000}
# The OpenAPI document states these patterns, and the server checks exactly them: a request
# the document calls valid is parsed, one it calls invalid is refused (see api/contract.py).
# ASCII digits only, and few of them: int() of thousands of digits raises (and is slow).
# At most 99999 of a unit, and of days at most 36500 (a century: the store computes in int64 ns).
WIDTH_PATTERN = (r"^([1-9][0-9]{0,4})(ms|s|m|h)$|"
                 r"^([1-9][0-9]{0,3}|[12][0-9]{4}|3[0-5][0-9]{3}|36[0-4][0-9]{2}|36500)(d)$")
_WIDTH = re.compile(WIDTH_PATTERN)
EPOCH_MS_PATTERN = r"^-?[0-9]{1,15}(\.[0-9]{1,6})?$"
_EPOCH_MS = re.compile(r"^(-?)([0-9]{1,15})(?:\.([0-9]{1,6}))?$")
INT32_MAX = 2**31 - 1  # registry ids are 32-bit integers
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
SERIES_PATTERN = r"^[0-9]{1,10}(,[0-9]{1,10})*$"

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
    Well-formed times beyond what int64 nanoseconds hold (before 1677, after 2262) are clamped
    to those bounds: no sample lies there, and the document allows any year.
    """
    text = raw.strip()
    epoch = _EPOCH_MS.fullmatch(text)
    if epoch is not None:
        sign, whole, frac = epoch.groups()
        ns = int(whole) * NS_PER_MS + int((frac or "").ljust(6, "0"))
        return _clamp(-ns if sign else ns)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(
            f"not an ISO 8601 time or epoch milliseconds: {text[:40]!r}", field) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return _clamp((delta.days * 86_400 + delta.seconds) * 1_000_000_000
                  + delta.microseconds * 1_000)


def _clamp(ns: int) -> int:
    return min(max(ns, _INT64_MIN), _INT64_MAX)


def parse_width(raw: str, field: str = "width") -> int:
    """A bucket width such as ``15s``, ``1m``, ``1h``, ``500ms``, ``1d`` -> nanoseconds."""
    match = _WIDTH.fullmatch(raw)
    if match is None:
        raise InvalidInput(
            "bucket width must be a number (1 to 99999; days at most 36500) and a unit "
            f"(ms, s, m, h, d), e.g. 1m; got {raw[:20]!r}", field)
    number, unit = (match.group(1), match.group(2)) if match.group(1) else match.group(3, 4)
    return int(number) * _UNIT_NS[unit]


def time_range(start: str | None, end: str | None, limits: Limits) -> tuple[int, int]:
    """Half-open ``[start, end)`` in nanoseconds; ``end`` defaults to now, ``start`` to an hour
    before ``end``. A ``start`` at or after ``end`` is an empty range, answered empty."""
    end_ns = parse_time(end, "end") if end is not None else time.time_ns()
    start_ns = (parse_time(start, "start") if start is not None
                else _clamp(end_ns - limits.default_range_ns))
    return start_ns, max(start_ns, end_ns)


def parse_series(values: Iterable[str], max_series: int, field: str = "series") -> list[int]:
    """Series ids from repeated and/or comma-separated parameters (at most ``max_series``
    given), deduplicated, in order.

    Ids are 1 to 10 ASCII digits; an id above the registry's range is answered like any id that
    does not exist (404), since the document states no upper bound a client could check.
    """
    ids: dict[int, None] = {}
    given = 0
    for value in values:
        for token in value.split(","):
            # Ids given, not distinct ids, count: the document bounds the array's length.
            given += 1
            if given > max_series:
                raise InvalidInput(
                    f"too many series in one request (at most {max_series})", field)
            if not ascii_digits(token, 10):
                raise InvalidInput(
                    f"series ids are comma-separated integers from 0 to {INT32_MAX}; got "
                    f"{token[:20]!r}", field)
            if int(token) > INT32_MAX:
                raise NotFound(f"series {token} not found")
            ids[int(token)] = None
    if not ids:
        raise InvalidInput("at least one series id is required", field)
    return list(ids)


def bucket_range(start_ns: int, end_ns: int, width_ns: int, limits: Limits) -> tuple[int, bool]:
    """The end of the range the answer covers, and whether that cuts the requested range: at
    most ``max_buckets`` buckets, the answer's ``end_ms`` saying where to continue."""
    first = start_ns - start_ns % width_ns  # buckets are aligned to the epoch
    last_end = _clamp(first + limits.max_buckets * width_ns)
    if end_ns <= last_end:
        return end_ns, False
    return last_end, True


def raw_limit(limit: int | None, n_series: int, limits: Limits) -> int:
    """Rows per series: ``limit``, at most ``max_raw_rows`` over all the series of one request
    (a larger ``limit`` is lowered; the answer's ``limit`` says what was applied)."""
    most = max(1, limits.max_raw_rows // n_series)
    if limit is None:
        return min(limits.default_raw_rows, most)
    if limit < 1:
        raise InvalidInput("limit must be at least 1", "limit")
    return min(limit, most)


def to_ms(ts_ns: int) -> float:
    """Epoch nanoseconds -> epoch milliseconds, microseconds in the fraction.

    Exact for microsecond timestamps until the year 2248 (2**43 ms): the shortest repr of the
    float, which JSON encoders print, parses back to the same microsecond with :func:`parse_time`.
    """
    return ts_ns / NS_PER_MS
