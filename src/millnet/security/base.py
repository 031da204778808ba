"""What the detectors share: where they report, and bounded per-key memory."""

from __future__ import annotations

import ipaddress
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol, TypeVar

from millnet.model.security import MAX_TEXT, SecurityEvent

V = TypeVar("V")


class Reporter(Protocol):
    """The monitor as the detectors see it (a test may hand them a list-backed one)."""

    def report(self, event: SecurityEvent, tenant_id: int | None = None,
               count: int = 1) -> bool: ...


class Bounded(OrderedDict[str, V]):
    """A dict of at most ``limit`` keys; the least recently touched is forgotten first, so an
    attacker spraying sources cannot grow a detector's memory without bound."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def touch(self, key: str, make: Callable[[], V]) -> V:
        value = self.get(key)
        if value is None:
            value = self[key] = make()
            while len(self) > self.limit:
                self.popitem(last=False)
        else:
            self.move_to_end(key)
        return value


def source_key(host: str) -> str:
    """Whom failures are counted against: an IPv4 address or the /64 of an IPv6 address (one
    end site holds a whole /64), anything else as given, cut to the event's field width."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return clip(host) or "unknown"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


def clip(text: str, width: int = MAX_TEXT) -> str:
    """``text`` fit for an event's source, target or detail (hostile input can be anything)."""
    cleaned = "".join(ch if ch.isprintable() else "?" for ch in text[:width])
    return cleaned
