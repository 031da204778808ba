"""CPE 2.3 formatted strings (NISTIR 7695): ``cpe:2.3:h:siemens:s7-1200:4.2.1:*:*:*:*:*:*:*``.

A name has 11 attributes after the ``cpe:2.3`` prefix, separated by unescaped colons. Each is
``*`` (ANY), ``-`` (NA) or a value of letters, digits, ``_``, ``-`` and ``.``, where any other
printable character is escaped with a backslash (``\\:``, ``\\*``) and an unescaped ``*`` or run
of ``?`` may lead or end the value as a wildcard (``s7-*``). Names are case-insensitive: they are
kept in lower case. Attributes are stored in their escaped (bound) form, which is both what
:func:`format_cpe` writes back and what :func:`attribute_matches` reads wildcards from.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from millnet.errors import InvalidInput

PREFIX: Final = "cpe:2.3:"
FIELDS: Final = ("part", "vendor", "product", "version", "update", "edition", "language",
                 "sw_edition", "target_sw", "target_hw", "other")
MAX_CPE: Final = 512
ANY: Final = "*"
NA: Final = "-"
_ESCAPED_CHARS: Final = r"!-/:-@\[-`{-~"
_BODY = re.compile(rf"(?:\\[{_ESCAPED_CHARS}]|[a-z0-9_.\-])+")
_LEAD = re.compile(r"\*|\?+")
_TRAIL = re.compile(r"(?<!\\)(?:\*|\?+)$")


@dataclass(frozen=True, slots=True)
class Cpe:
    """One parsed CPE 2.3 name; attributes in bound (escaped, lower-case) form."""

    part: str
    vendor: str
    product: str
    version: str = ANY
    update: str = ANY
    edition: str = ANY
    language: str = ANY
    sw_edition: str = ANY
    target_sw: str = ANY
    target_hw: str = ANY
    other: str = ANY


def _split(text: str) -> list[str]:
    """Split on colons that are not escaped (a backslash escapes the next character)."""
    parts, current, i = [], [], 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            current.append(text[i:i + 2])
            i += 2
            continue
        if ch == ":":
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    parts.append("".join(current))
    return parts


def check_attribute(value: str, field: str) -> str:
    """``value`` in lower case if it is a well-formed bound attribute, else InvalidInput."""
    value = value.lower()
    if value in (ANY, NA):
        return value
    body = value
    lead = _LEAD.match(body)
    if lead:
        body = body[lead.end():]
    trail = _TRAIL.search(body)
    if trail:
        body = body[:trail.start()]
    if not _BODY.fullmatch(body):
        raise InvalidInput(f"{value[:64]!r} is not a CPE attribute value", f"cpe.{field}")
    return value


def parse_cpe(text: str) -> Cpe:
    """Parse a CPE 2.3 formatted string; errors name the attribute that is wrong."""
    if not isinstance(text, str) or len(text) > MAX_CPE:
        raise InvalidInput(f"a CPE name is a string of at most {MAX_CPE} characters", "cpe")
    if not text.lower().startswith(PREFIX):
        raise InvalidInput(f"{text[:32]!r} does not start with {PREFIX!r}", "cpe")
    values = _split(text[len(PREFIX):])
    if len(values) != len(FIELDS):
        raise InvalidInput(f"a CPE 2.3 name has {len(FIELDS)} attributes, not {len(values)}",
                           "cpe")
    checked = [check_attribute(v, f) for f, v in zip(FIELDS, values, strict=True)]
    if checked[0] not in ("a", "o", "h", ANY):
        raise InvalidInput(f"part {checked[0]!r} is not a, o or h", "cpe.part")
    return Cpe(*checked)


def format_cpe(cpe: Cpe) -> str:
    return PREFIX + ":".join(getattr(cpe, f) for f in FIELDS)


def unescape(value: str) -> str:
    """The logical value of a bound attribute (escapes removed; wildcards kept as written)."""
    return re.sub(r"\\(.)", r"\1", value)


def bind(value: str) -> str:
    """The bound form of a plain value (``Siemens AG`` -> ``siemens\\ ag``): every character
    other than letters, digits, ``_``, ``-`` and ``.`` escaped; an empty value is ANY."""
    if not value:
        return ANY
    return "".join(c if re.fullmatch(r"[a-z0-9_.\-]", c) else "\\" + c for c in value.lower())


def _pattern(bound: str) -> re.Pattern[str]:
    out, i = [], 0
    while i < len(bound):
        ch = bound[i]
        if ch == "\\" and i + 1 < len(bound):
            out.append(re.escape(bound[i + 1]))
            i += 2
            continue
        out.append(".*" if ch == "*" else "." if ch == "?" else re.escape(ch))
        i += 1
    return re.compile("".join(out))


def attribute_matches(pattern: str, value: str) -> bool:
    """Whether the bound ``pattern`` (ANY, NA, a value with leading/trailing wildcards)
    matches the plain ``value`` (case-insensitive; an empty value matches only ANY)."""
    if pattern == ANY:
        return True
    if pattern == NA:
        return value in ("", NA)
    return _pattern(pattern).fullmatch(value.lower()) is not None
