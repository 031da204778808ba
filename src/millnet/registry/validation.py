"""Checks on names and texts before they reach the database; each failure names its field."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime

from millnet.errors import InvalidInput
from millnet.model.limits import RETENTION_DAYS_MAX, UNIT_MAX, name_problem, text_problem

__all__ = ["RETENTION_DAYS_MAX", "UNIT_MAX", "check_asset_name", "check_finite", "check_name",
           "check_retention", "check_slug", "check_text", "check_time"]

_SLUG = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")


def check_name(value: object, field: str, *, allow_slash: bool = True) -> str:
    """A display or lookup name: non-blank, at most 200 characters, no control characters."""
    problem = name_problem(value, allow_slash=allow_slash)
    if problem is not None:
        raise InvalidInput(problem, field)
    assert isinstance(value, str)
    return value


def check_asset_name(value: object, field: str) -> str:
    """Asset names form '/'-joined paths, so they may not contain '/'."""
    return check_name(value, field, allow_slash=False)


def check_slug(value: object, field: str) -> str:
    """A tenant name: lower-case letters, digits, '-' and '_', starting with a letter or digit."""
    if not isinstance(value, str) or not _SLUG.fullmatch(value):
        raise InvalidInput(
            f"must be 1 to 63 of a-z, 0-9, '-', '_', starting with a letter or digit; "
            f"got {value!r}", field)
    return value


def check_text(value: str | None, field: str, max_len: int | None = None) -> str | None:
    """Optional free text (a description, a unit): no NUL (PostgreSQL refuses it) or surrogates."""
    problem = text_problem(value, max_len)
    if problem is not None:
        raise InvalidInput(problem, field)
    return value


def check_finite(value: float | None, field: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput(f"must be a number or null, not {type(value).__name__}", field)
    if not math.isfinite(value):
        raise InvalidInput(f"must be finite, not {value}", field)
    return float(value)


def check_retention(value: int | None, field: str = "retention_days") -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or \
            not 1 <= value <= RETENTION_DAYS_MAX:
        raise InvalidInput(
            f"must be 1 to {RETENTION_DAYS_MAX} days or null, not {str(value)[:20]}", field)
    return value


def check_time(value: datetime, field: str) -> datetime:
    """A moment for a UTC column: aware, and within datetime's range once in UTC (0001-01-01
    at +01:00 is not)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInput("must have a UTC offset", field)
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise InvalidInput(f"out of range in UTC: {value.isoformat()}", field) from None
