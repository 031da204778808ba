"""Events the Sparkplug host state machine returns (see :mod:`.sparkplug_host`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

from millnet.model import PointSpec, Quality
from millnet.protocols.sparkplug import MessageType, node_topic


@dataclass(frozen=True, slots=True)
class BirthValue:
    name: str
    ts_ns: int
    value: float | str
    quality: Quality
    historical: bool


@dataclass(frozen=True, slots=True)
class BirthEvent:
    group: str
    edge: str
    device: str | None
    bd_seq: int | None
    specs: tuple[PointSpec, ...]
    values: tuple[BirthValue, ...]


@dataclass(frozen=True, slots=True)
class RebirthRequest:
    group: str
    edge: str
    reason: str

    @property
    def topic(self) -> str:
        return node_topic(self.group, MessageType.NCMD, self.edge)


@dataclass(frozen=True, slots=True)
class NodeDeathEvent:
    group: str
    edge: str
    series_ids: tuple[int, ...]
    ts_ns: int


@dataclass(frozen=True, slots=True)
class DeviceDeathEvent:
    group: str
    edge: str
    device: str
    series_ids: tuple[int, ...]
    ts_ns: int


@dataclass(frozen=True, slots=True)
class Rejected:
    reason: str
    detail: str
    count: int = 1


@dataclass(frozen=True, slots=True)
class HostState:
    host_id: str
    online: bool
    timestamp_ms: int


Event: TypeAlias = (BirthEvent | RebirthRequest | NodeDeathEvent | DeviceDeathEvent
                    | Rejected | HostState)
