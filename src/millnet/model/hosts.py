"""A host seen on a plant network by a sensor (the passive probe), as the node keeps it and the
federation's inventory reads it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class ObservedHost:
    address: str
    mac: str = ""
    roles: tuple[str, ...] = ()
    protocols: tuple[str, ...] = ()
    services: tuple[str, ...] = ()  # "tcp/502", ...
    vendor: str = ""
    model: str = ""
    firmware: str = ""
    first_seen: datetime | None = None
    last_seen: datetime | None = None
