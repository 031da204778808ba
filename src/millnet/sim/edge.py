"""The simulated plant as Sparkplug B edge nodes: one edge node per line, one device per machine.

Sans-IO like the codec it uses: methods return ``(topic, payload)`` pairs to publish; the caller
owns the transport (an MQTT client, or the node's in-process entry point). Topic mapping, the one
the host reads back (see ``docs/sparkplug.md``): group id = site, edge node id = ``<area>.<line>``,
device id = machine.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from millnet.model import DataType
from millnet.protocols.sparkplug import (
    BirthMetric,
    DataEncoder,
    MessageType,
    SpDataType,
    device_topic,
    encode_dbirth,
    encode_nbirth,
    encode_ndeath,
    node_topic,
)
from millnet.sim.factory import FactorySignals, Machine

Publish = tuple[str, bytes]


@dataclass
class _Device:
    machine: Machine
    rows: np.ndarray  # indices of its points in the plant value vector
    aliases: list[int]
    datatypes: list[int]
    encoder: DataEncoder


@dataclass
class EdgeNode:
    group: str
    edge: str
    devices: list[_Device] = field(default_factory=list)
    bd_seq: int = 0
    seq: int = 0

    def next_seq(self) -> int:
        self.seq = (self.seq + 1) & 0xFF
        return self.seq

    @property
    def death(self) -> Publish:
        """The NDEATH to register as this node's MQTT will (matching the next NBIRTH)."""
        return node_topic(self.group, MessageType.NDEATH, self.edge), encode_ndeath(self.bd_seq)


class EdgeFleet:
    """All edge nodes of a plant, fed by one :class:`FactorySignals`."""

    def __init__(self, signals: FactorySignals) -> None:
        self.signals = signals
        self.values = signals.step(0.0)
        self.nodes: dict[tuple[str, str], EdgeNode] = {}
        row = 0
        for machine in signals.machines:
            key = (machine.site, f"{machine.area}.{machine.line}")
            node = self.nodes.setdefault(key, EdgeNode(*key))
            points = machine.points
            first_alias = 1 + sum(len(d.aliases) for d in node.devices)
            aliases = list(range(first_alias, first_alias + len(points)))
            datatypes = [int(SpDataType[p.datatype.name]) for p in points]
            node.devices.append(_Device(
                machine, np.arange(row, row + len(points)), aliases, datatypes,
                DataEncoder(list(zip(aliases, datatypes, strict=True)))))
            row += len(points)

    def births(self, node: EdgeNode, now_ms: int) -> list[Publish]:
        """NBIRTH then every DBIRTH of ``node``; starts a new session (bdSeq, seq 0)."""
        node.seq = 0
        out = [(node_topic(node.group, MessageType.NBIRTH, node.edge),
                encode_nbirth([], bd_seq=node.bd_seq, timestamp_ms=now_ms))]
        for dev in node.devices:
            metrics = [
                BirthMetric(p.name, alias, dt, _scalar(p.datatype, self.values[r]),
                            _properties(p.unit, p.low, p.high))
                for p, alias, dt, r in zip(dev.machine.points, dev.aliases, dev.datatypes,
                                           dev.rows, strict=True)
            ]
            out.append((device_topic(node.group, MessageType.DBIRTH, node.edge,
                                     dev.machine.name),
                        encode_dbirth(metrics, seq=node.next_seq(), timestamp_ms=now_ms)))
        return out

    def all_births(self, now_ms: int) -> list[Publish]:
        return [msg for node in self.nodes.values() for msg in self.births(node, now_ms)]

    def data(self, node: EdgeNode, now_ms: int) -> list[Publish]:
        """One DDATA per device of ``node`` with every current value."""
        out = []
        for dev in node.devices:
            values = [_scalar_fast(dt, v) for dt, v in zip(dev.datatypes, self.values[dev.rows],
                                                             strict=True)]
            out.append((device_topic(node.group, MessageType.DDATA, node.edge, dev.machine.name),
                        dev.encoder.encode(values, seq=node.next_seq(), timestamp_ms=now_ms)))
        return out

    def step(self, dt: float) -> None:
        self.values = self.signals.step(dt)

    def rebirth(self, topic: str, now_ms: int) -> list[Publish]:
        """React to an NCMD on ``topic``: a rebirth request re-publishes that node's births."""
        parts = topic.split("/")
        if len(parts) != 4 or parts[2] != MessageType.NCMD:
            return []
        node = self.nodes.get((parts[1], parts[3]))
        return self.births(node, now_ms) if node is not None else []


def _properties(unit: str, low: float, high: float) -> dict[str, float | str]:
    props: dict[str, float | str] = {"engLow": float(low), "engHigh": float(high)}
    if unit:
        props["engUnit"] = unit
    return props


def _scalar(datatype: DataType, value: float) -> float | int | bool:
    if datatype is DataType.BOOLEAN:
        return bool(value)
    if datatype in (DataType.INT32, DataType.INT64):
        return int(value)
    return float(value)


_INT_TYPES = frozenset((int(SpDataType.INT32), int(SpDataType.INT64)))


def _scalar_fast(datatype: int, value: float) -> float | int | bool:
    if datatype in _INT_TYPES:
        return int(value)
    if datatype == SpDataType.BOOLEAN:
        return bool(value)
    return float(value)
