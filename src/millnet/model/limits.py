"""Bounds every source and store agree on: names, units, timestamps and digit strings.

One definition, used by the decoders (which reject a message before it costs anything), by the
registry (which refuses what does not fit its columns) and by the API's parameter parsers. A
decoder that accepts what the store refuses is how a single message used to stop a node.
"""

from __future__ import annotations

import re

NAME_MAX = 200  # asset, point and tenant display names (the registry's column width)
UNIT_MAX = 64  # a point's engineering unit
# Latest epoch millisecond whose nanoseconds still fit an int64 (2262-04-11T23:47:16.854Z).
MAX_TS_MS = (2**63 - 1) // 1_000_000
MAX_TS_NS = MAX_TS_MS * 1_000_000
# A tenant's telemetry retention: at most a century (its cutoff stays within int64 nanoseconds).
RETENTION_DAYS_MAX = 36_500
# C0 and C1 control characters, DEL, and lone surrogates (which cannot be stored as UTF-8).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_NUL_OR_SURROGATE = re.compile(r"[\x00\ud800-\udfff]")
_ASCII_DIGITS = re.compile(r"[0-9]+")
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def name_problem(value: object, *, allow_slash: bool = True) -> str | None:
    """Why ``value`` is not a valid name (non-blank, at most 200 characters, no control
    characters, no '/' unless allowed), or None when it is."""
    if not isinstance(value, str):
        return f"must be a string, not {type(value).__name__}"
    if not value.strip():
        return "must not be empty"
    if len(value) > NAME_MAX:
        return f"must be at most {NAME_MAX} characters, not {len(value)}"
    if _CONTROL.search(value):
        return "must not contain control characters"
    if not allow_slash and "/" in value:
        return "must not contain '/'"
    return None


def text_problem(value: object, max_len: int | None = None) -> str | None:
    """Why optional free text (a unit, a description) cannot be stored, or None."""
    if value is None:
        return None
    if not isinstance(value, str):
        return f"must be a string or null, not {type(value).__name__}"
    if _NUL_OR_SURROGATE.search(value):
        return "must not contain NUL or surrogate characters"
    if max_len is not None and len(value) > max_len:
        return f"must be at most {max_len} characters, not {len(value)}"
    return None


def has_surrogates(text: str) -> bool:
    """Lone surrogates (JSON can carry them as escapes) cannot be stored as UTF-8."""
    return _SURROGATE.search(text) is not None


def ascii_digits(text: str, max_len: int) -> bool:
    """True when ``text`` is 1 to ``max_len`` ASCII digits.

    ``str.isdigit`` also accepts '²' and other Unicode digits that ``int()`` refuses, and an
    unbounded digit string costs quadratic time in ``int()`` (or a ValueError past 4,300
    digits): every parser of numbers off the network goes through here instead."""
    return len(text) <= max_len and _ASCII_DIGITS.fullmatch(text) is not None
