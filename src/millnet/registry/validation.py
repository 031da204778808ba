"""Checks on names and texts before they reach the database; each failure names its field."""

from __future__ import annotations

import math
import re

from millnet.errors import InvalidInput
from millnet.registry.schema import NAME_MAX

UNIT_MAX = 64
# C0 and C1 control characters, DEL, and lone surrogates (which cannot be stored as UTF-8).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_SLUG = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")


def check_name(value: object, field: str, *, allow_slash: bool = True) -> str:
    """A display or lookup name: non-blank, at most 200 characters, no control characters."""
    if not isinstance(value, str):
        raise InvalidInput(f"must be a string, not {type(value).__name__}", field)
    if not value.strip():
        raise InvalidInput("must not be empty", field)
    if len(value) > NAME_MAX:
        raise InvalidInput(f"must be at most {NAME_MAX} characters, not {len(value)}", field)
    if _CONTROL.search(value):
        raise InvalidInput("must not contain control characters", field)
    if not allow_slash and "/" in value:
        raise InvalidInput("must not contain '/'", field)
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
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"must be a string or null, not {type(value).__name__}", field)
    if "\x00" in value or re.search(r"[\ud800-\udfff]", value):
        raise InvalidInput("must not contain NUL or surrogate characters", field)
    if max_len is not None and len(value) > max_len:
        raise InvalidInput(f"must be at most {max_len} characters, not {len(value)}", field)
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
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidInput(f"must be a positive number of days or null, not {value!r}", field)
    return value
