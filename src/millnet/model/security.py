"""Security events: what the enterprise node's detectors and the passive probe observe, and what
the federation reports upward (issue 13).

An event is a fact with a kind, a severity and the parties involved; it is immutable once made.
Kinds are dotted names grouped by family (``auth.*``, ``device.*``, ``protocol.*``, ``field.*``,
``network.*``, ``config.*``, ``anomaly.*``, ``federation.*``); :class:`EventKind` lists the ones
millnet raises itself, and a parent accepts any well-formed kind from a child so a newer child can
report kinds an older parent does not know yet.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import IntEnum, StrEnum
from typing import Final

DetailValue = str | int | float | bool

KIND_PATTERN: Final = re.compile(r"[a-z][a-z0-9_]{0,31}(\.[a-z][a-z0-9_]{0,31}){1,3}")
MAX_SUMMARY: Final = 500
MAX_DETAIL_ITEMS: Final = 32
MAX_TEXT: Final = 256


class Severity(IntEnum):
    """Ordered: a policy such as "incidents at high and above" compares severities."""

    INFO = 0
    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4

    @classmethod
    def parse(cls, text: str) -> Severity:
        try:
            return cls[text.strip().upper()]
        except KeyError:
            names = ", ".join(s.name.lower() for s in cls)
            raise ValueError(f"unknown severity {text!r} (one of {names})") from None

    @property
    def label(self) -> str:
        return self.name.lower()


class EventKind(StrEnum):
    AUTH_BRUTE_FORCE = "auth.brute_force"
    AUTH_CREDENTIAL_STUFFING = "auth.credential_stuffing"
    AUTH_TOKEN_MISUSE = "auth.token_misuse"  # noqa: S105 (an event kind, not a secret)
    DEVICE_UNKNOWN = "device.unknown"
    DEVICE_FINGERPRINT_CHANGED = "device.fingerprint_changed"
    DEVICE_RATE_ANOMALY = "device.rate_anomaly"
    PROTOCOL_MALFORMED = "protocol.malformed"
    PROTOCOL_SEQUENCE_ABUSE = "protocol.sequence_abuse"
    FIELD_WRITE_UNUSUAL = "field.write_unusual"
    FIELD_PLC_STOP = "field.plc_stop"
    FIELD_PROGRAM_DOWNLOAD = "field.program_download"
    NETWORK_SCAN = "network.scan"
    CONFIG_CHANGE = "config.change"
    ANOMALY_ALARM = "anomaly.alarm"
    FEDERATION_REJECTED = "federation.rejected"


@dataclass(frozen=True, slots=True)
class SecurityEvent:
    """One observation. ``source`` is who acted (an address, a principal, a node); ``target`` what
    was acted on (a device, a service, an asset path); ``detail`` holds small scalar facts."""

    kind: str
    severity: Severity
    summary: str
    source: str = ""
    target: str = ""
    occurred_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    detail: dict[str, DetailValue] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not KIND_PATTERN.fullmatch(self.kind):
            raise ValueError(f"security event kind {self.kind!r} is not a dotted lower-case name")
        if self.occurred_at.tzinfo is None:
            raise ValueError("security event time must be timezone-aware")
        if not self.summary or len(self.summary) > MAX_SUMMARY:
            raise ValueError(f"security event summary must be 1-{MAX_SUMMARY} characters")
        if len(self.source) > MAX_TEXT or len(self.target) > MAX_TEXT:
            raise ValueError(f"security event source and target are at most {MAX_TEXT} characters")
        if len(self.detail) > MAX_DETAIL_ITEMS:
            raise ValueError(f"security event detail holds at most {MAX_DETAIL_ITEMS} items")
        for key, value in self.detail.items():
            if not isinstance(key, str) or not isinstance(value, DetailValue):
                raise ValueError(f"security event detail {key!r} must be a scalar")
            if isinstance(value, str) and len(value) > MAX_TEXT:
                raise ValueError(f"security event detail {key!r} is over {MAX_TEXT} characters")
