"""What the probe's layers hand each other: decoded PDUs, hosts of the inventory, counters."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Final

DetailValue = str | int | float | bool

#: What a PDU does, as the detectors see it. "write" covers every change of a device's state
#: or data (Modbus FC 5/6/15/16/22/23, OPC UA Write/Call, Sparkplug NCMD/DCMD).
ACTIONS: Final = frozenset({
    "read", "write", "diagnostic", "identify", "stop", "download", "connect", "publish",
    "subscribe", "session", "response", "exception", "other",
})


@dataclass(frozen=True, slots=True)
class Pdu:
    """One application message decoded off a TCP stream."""

    protocol: str
    action: str
    name: str
    from_client: bool
    detail: dict[str, DetailValue] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ProbedHost:
    """One host of the inventory, in the shape the federation's inventory uses."""

    address: str
    mac: str
    roles: tuple[str, ...]
    protocols: tuple[str, ...]
    services: tuple[str, ...]
    vendor: str
    model: str
    firmware: str
    first_seen: float
    last_seen: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "address": self.address, "mac": self.mac, "roles": list(self.roles),
            "protocols": list(self.protocols), "services": list(self.services),
            "vendor": self.vendor, "model": self.model, "firmware": self.firmware,
            "first_seen": self.first_seen, "last_seen": self.last_seen,
        }


@dataclass(slots=True)
class ProbeStats:
    """Counters; every rejected packet or PDU lands in exactly one of them."""

    packets: int = 0
    bytes: int = 0
    non_ip: int = 0
    decode_errors: Counter[str] = field(default_factory=Counter)
    pdus: Counter[str] = field(default_factory=Counter)
    flows: int = 0
    evictions: int = 0
    resyncs: int = 0
    skipped_bytes: int = 0
    events: Counter[str] = field(default_factory=Counter)

    def to_dict(self) -> dict[str, Any]:
        return {
            "packets": self.packets, "bytes": self.bytes, "non_ip": self.non_ip,
            "decode_errors": dict(self.decode_errors),
            "decode_errors_total": sum(self.decode_errors.values()),
            "pdus": dict(self.pdus), "flows": self.flows, "evictions": self.evictions,
            "resyncs": self.resyncs, "skipped_bytes": self.skipped_bytes,
            "events": dict(self.events),
        }
