"""The simulated plant as Sparkplug B edge nodes: one edge node per line, one device per machine.

Sans-IO like the codec it uses: methods return ``(topic, payload)`` pairs to publish; the caller
owns the transport (an MQTT client, or the node's in-process entry point). Topic mapping, the one
the host reads back (see ``docs/sparkplug.md``): group id = site, edge node id = ``<area>.<line>``,
device id = machine.

Writable metrics (:data:`WRITABLE`, e.g. a CNC's ``Feed/Override``, an operator's setpoint) are
announced with the birth property ``Writable: true``; a DCMD writing one is applied and the new
value is reported in the device's next DDATA (and kept until the next write).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from millnet.errors import RejectedMessage
from millnet.model import DataType
from millnet.protocols.sparkplug import (
    BirthMetric,
    DataEncoder,
    MessageType,
    SpDataType,
    Topic,
    decode_payload,
    device_topic,
    encode_dbirth,
    encode_nbirth,
    encode_ndeath,
    metric_value,
    node_topic,
    parse_topic,
)
from millnet.sim.factory import FactorySignals, Machine

Publish = tuple[str, bytes]
#: Points a command may write (setpoints an operator sets; the others are measurements).
WRITABLE = frozenset({"Feed/Override"})


@dataclass
class _Device:
    machine: Machine
    rows: np.ndarray  # indices of its points in the plant value vector
    aliases: list[int]
    datatypes: list[int]
    encoder: DataEncoder
    written: dict[int, float] = field(default_factory=dict)  # point index -> value written


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
                BirthMetric(p.name, alias, dt, _scalar(p.datatype, self._value(dev, i)),
                            _properties(p.unit, p.low, p.high, p.name in WRITABLE))
                for i, (p, alias, dt) in enumerate(zip(dev.machine.points, dev.aliases,
                                                       dev.datatypes, strict=True))
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
            current = self.values[dev.rows]
            for i, v in dev.written.items():
                current[i] = v
            values = [_scalar_fast(dt, v) for dt, v in zip(dev.datatypes, current, strict=True)]
            out.append((device_topic(node.group, MessageType.DDATA, node.edge, dev.machine.name),
                        dev.encoder.encode(values, seq=node.next_seq(), timestamp_ms=now_ms)))
        return out

    def step(self, dt: float) -> None:
        self.values = self.signals.step(dt)

    def _value(self, dev: _Device, index: int) -> float:
        return dev.written.get(index, float(self.values[dev.rows[index]]))

    def rebirth(self, topic: str, now_ms: int) -> list[Publish]:
        """React to an NCMD on ``topic``: a rebirth request re-publishes that node's births."""
        parts = topic.split("/")
        if len(parts) != 4 or parts[2] != MessageType.NCMD:
            return []
        node = self.nodes.get((parts[1], parts[3]))
        return self.births(node, now_ms) if node is not None else []

    def command(self, topic: str, payload: bytes, now_ms: int) -> list[Publish]:
        """React to an NCMD (rebirth) or a DCMD (writes of writable metrics, reported in the
        device's next DDATA); a command that does not decode, or writes a metric that is not
        writable, changes nothing."""
        try:
            t = parse_topic(topic)
        except RejectedMessage:
            return []
        if not isinstance(t, Topic):
            return []
        if t.kind is MessageType.NCMD:
            return self.rebirth(topic, now_ms)
        node = self.nodes.get((t.group, t.edge))
        if t.kind is not MessageType.DCMD or node is None:
            return []
        dev = next((d for d in node.devices if d.machine.name == t.device), None)
        if dev is None:
            return []
        try:
            metrics = decode_payload(payload).metrics
        except RejectedMessage:
            return []
        names = [p.name for p in dev.machine.points]
        for m in metrics:
            if m.HasField("alias") and m.alias in dev.aliases:
                i = dev.aliases.index(m.alias)
            elif m.name in names:
                i = names.index(m.name)
            else:
                continue
            if names[i] not in WRITABLE:
                continue
            try:
                value = metric_value(m, dev.datatypes[i])
            except RejectedMessage:
                continue
            if isinstance(value, float):
                dev.written[i] = value
        return []


def _properties(unit: str, low: float, high: float,
                writable: bool = False) -> dict[str, float | str | bool]:
    props: dict[str, float | str | bool] = {"engLow": float(low), "engHigh": float(high)}
    if unit:
        props["engUnit"] = unit
    if writable:
        props["Writable"] = True
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
