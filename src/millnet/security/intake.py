"""What external sensors (the passive probe, a third-party IDS) post to a node: batches of
security events and of the hosts they saw. Network input: every field is checked and a refusal
names it (``events[3].occurred_at``), so a sensor's author can fix the one bad field.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from millnet.errors import InvalidInput
from millnet.model.security import (
    KIND_PATTERN,
    MAX_DETAIL_ITEMS,
    MAX_SUMMARY,
    MAX_TEXT,
    DetailValue,
    SecurityEvent,
    Severity,
)
from millnet.security.hosts import ReportedHost

MAX_EVENTS: Final = 500  # per request
MAX_HOSTS: Final = 2000  # per request
MAX_FUTURE: Final = timedelta(minutes=5)  # sensor clocks drift; a later time is a bad clock
#: A probe replaying an old capture posts old times: only what no capture holds is refused.
EARLIEST: Final = datetime(2000, 1, 1, tzinfo=UTC)
#: One detail item is the node's own: which token reported the event.
SENSOR_DETAIL: Final = "reported_by"
_MAC = re.compile(r"([0-9a-fA-F]{2}[:-]){5}[0-9a-fA-F]{2}")
_WORD_MAX: Final = 64
_LIST_MAX: Final = 32


def _fail(where: str, message: str) -> InvalidInput:
    return InvalidInput(message, where)


def _text(entry: Mapping[str, Any], name: str, where: str, limit: int, *,
          required: bool = False) -> str:
    value = entry.get(name, "")
    if value is None and not required:
        return ""
    if not isinstance(value, str) or len(value) > limit:
        raise _fail(f"{where}.{name}", f"must be a string of at most {limit} characters")
    if required and not value.strip():
        raise _fail(f"{where}.{name}", "must not be empty")
    if not value.isprintable():
        raise _fail(f"{where}.{name}", "must hold printable characters only")
    return value.strip()


def _time(entry: Mapping[str, Any], name: str, where: str, now: datetime) -> datetime | None:
    """An ISO 8601 time with its offset, or epoch seconds; from 2000 to ``MAX_FUTURE`` after
    ``now``."""
    raw = entry.get(name)
    if raw is None:
        return None
    field = f"{where}.{name}"
    if isinstance(raw, bool) or not isinstance(raw, (str, int, float)):
        raise _fail(field, "must be an ISO 8601 time with its offset or epoch seconds")
    try:
        if isinstance(raw, str):
            if len(raw) > 40:
                raise ValueError(raw)
            moment = datetime.fromisoformat(raw)
        else:
            moment = datetime.fromtimestamp(raw, UTC)
    except (ValueError, OverflowError, OSError):
        raise _fail(field, "must be an ISO 8601 time with its offset or epoch seconds") \
            from None
    if moment.tzinfo is None:
        raise _fail(field, "needs its UTC offset (2026-12-03T10:00:00Z)")
    if not EARLIEST <= moment <= now + MAX_FUTURE:
        raise _fail(field, "is before 2000 or in the future (the sensor's clock?)")
    return moment.astimezone(UTC)


def _severity(entry: Mapping[str, Any], where: str) -> Severity:
    raw = entry.get("severity")
    names = ", ".join(s.label for s in Severity)
    if isinstance(raw, int) and not isinstance(raw, bool) and 0 <= raw <= 4:
        return Severity(raw)
    if isinstance(raw, str) and len(raw) <= 16:
        try:
            return Severity.parse(raw)
        except ValueError:
            pass
    raise _fail(f"{where}.severity", f"must be one of {names} (or 0-4)")


def _detail(entry: Mapping[str, Any], where: str) -> dict[str, DetailValue]:
    raw = entry.get("detail", {})
    field = f"{where}.detail"
    if raw is None:
        return {}
    if not isinstance(raw, dict) or len(raw) > MAX_DETAIL_ITEMS - 1:
        raise _fail(field, f"must be an object of at most {MAX_DETAIL_ITEMS - 1} items")
    out: dict[str, DetailValue] = {}
    for key, value in raw.items():
        if not isinstance(key, str) or not key or len(key) > _WORD_MAX or key == SENSOR_DETAIL:
            raise _fail(field, f"keys are 1-{_WORD_MAX} characters, not {SENSOR_DETAIL!r}")
        ok = (isinstance(value, (bool, int)) and abs(value) < 2**63) or (
            isinstance(value, float) and math.isfinite(value)) or (
            isinstance(value, str) and len(value) <= MAX_TEXT and value.isprintable())
        if not ok:
            raise _fail(f"{field}.{key[:_WORD_MAX]}",
                        f"must be a finite number, a boolean or a string of at most {MAX_TEXT}")
        out[key] = value
    return out


def _items(body: Any, name: str, limit: int) -> list[Mapping[str, Any]]:
    if not isinstance(body, dict):
        raise _fail("body", f"must be an object with a list {name!r}")
    raw = body.get(name)
    if not isinstance(raw, list) or not 1 <= len(raw) <= limit:
        raise _fail(name, f"must be a list of 1-{limit} objects")
    for i, entry in enumerate(raw):
        if not isinstance(entry, dict):
            raise _fail(f"{name}[{i}]", "must be an object")
    return raw


def parse_events(body: Any, reporter: str, now: datetime | None = None) -> list[SecurityEvent]:
    """``{"events": [{kind, severity, summary, source?, target?, occurred_at?, detail?}]}`` as
    events, each tagged with ``reporter`` (whose token posted it); the whole batch or nothing."""
    now = now or datetime.now(UTC)
    out = []
    for i, entry in enumerate(_items(body, "events", MAX_EVENTS)):
        where = f"events[{i}]"
        kind = entry.get("kind")
        if not isinstance(kind, str) or not KIND_PATTERN.fullmatch(kind):
            raise _fail(f"{where}.kind", "must be a dotted lower-case name (network.scan)")
        detail = _detail(entry, where)
        detail[SENSOR_DETAIL] = reporter[:MAX_TEXT]
        out.append(SecurityEvent(
            kind, _severity(entry, where),
            _text(entry, "summary", where, MAX_SUMMARY, required=True),
            source=_text(entry, "source", where, MAX_TEXT),
            target=_text(entry, "target", where, MAX_TEXT),
            occurred_at=_time(entry, "occurred_at", where, now) or now, detail=detail))
    return out


def _words(entry: Mapping[str, Any], name: str, where: str) -> tuple[str, ...]:
    raw = entry.get(name, [])
    if raw is None:
        return ()
    if not isinstance(raw, list) or len(raw) > _LIST_MAX or not all(
            isinstance(w, str) and 0 < len(w) <= _WORD_MAX and w.isprintable() for w in raw):
        raise _fail(f"{where}.{name}",
                    f"must be a list of at most {_LIST_MAX} strings of 1-{_WORD_MAX} characters")
    return tuple(raw)


def parse_hosts(body: Any, now: datetime | None = None) -> list[ReportedHost]:
    """``{"hosts": [{address, mac?, roles?, protocols?, services?, vendor?, model?,
    firmware?, first_seen?, last_seen?}]}`` (the probe's inventory) as hosts."""
    now = now or datetime.now(UTC)
    out = []
    for i, entry in enumerate(_items(body, "hosts", MAX_HOSTS)):
        where = f"hosts[{i}]"
        address = _text(entry, "address", where, 64, required=True)
        try:
            address = str(ipaddress.ip_address(address))
        except ValueError:
            raise _fail(f"{where}.address", "must be an IPv4 or IPv6 address") from None
        mac = _text(entry, "mac", where, 17)
        if mac and not _MAC.fullmatch(mac):
            raise _fail(f"{where}.mac", "must be six hex pairs (aa:bb:cc:00:11:22)")
        out.append(ReportedHost(
            address, mac.lower().replace("-", ":"), _words(entry, "roles", where),
            _words(entry, "protocols", where), _words(entry, "services", where),
            _text(entry, "vendor", where, 128), _text(entry, "model", where, 128),
            _text(entry, "firmware", where, 128),
            _time(entry, "first_seen", where, now), _time(entry, "last_seen", where, now)))
    return out
