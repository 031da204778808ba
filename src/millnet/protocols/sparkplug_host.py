"""Sparkplug B 3.0 Primary Host Application session state, sans-IO.

The MQTT adapter feeds every message to :meth:`SparkplugHost.receive` and acts on the events:

* :class:`BirthEvent`: upsert ``specs`` in the registry, then :meth:`SparkplugHost.bind`
  ``{metric name: series id}`` *before feeding the next message*; ``bind`` appends the birth's
  own values (current values too) to the buffers it is given. Unmapped metrics stay unbound.
* :class:`RebirthRequest`: publish :func:`~millnet.protocols.sparkplug.rebirth_payload` on
  ``event.topic``. Rate-limited per edge node; until its next NBIRTH the node is ignored.
* :class:`NodeDeathEvent` / :class:`DeviceDeathEvent`: mark ``series_ids`` stale at ``ts_ns``.
* :class:`Rejected`: count ``reason`` ``count`` times (``SparkplugHost.rejected`` has the
  same totals). :class:`HostState`: a STATE message of another host, or of our own.

Accepted DATA goes straight into ``out`` and ``out.text``, without per-metric objects. Sample
time is the metric timestamp, else the payload's, else ``now_ns``. ``is_null`` gives NaN (text:
"") with Quality.BAD; a 'Quality' property sets the quality. ``is_historical`` metrics go to
the ``historical`` buffer, never to ``out`` (no buffer: dropped as ``historical_discarded``).

Choices: NBIRTH is accepted with any seq and the sequence restarts from it (the spec says 0);
a seq gap requests a rebirth at once instead of waiting for reordering; DATA may use aliases or
names; ``is_transient`` is not interpreted.
"""

from __future__ import annotations

import math
import sys
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TypeAlias

from millnet.errors import InvalidInput, NotFound, RejectedMessage
from millnet.model import PointSpec, Quality, SampleBuffer, TextSample
from millnet.protocols import sparkplug as sp
from millnet.protocols import sparkplug_b_pb2 as pb
from millnet.protocols.sparkplug import MessageType, StateTopic, Topic

_MAX_MS = (2**63 - 1) // 1_000_000  # latest ms timestamp whose ns still fits an int64
_DEAD, _ALIVE, _RESYNC = 0, 1, 2


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
        return sp.node_topic(self.group, MessageType.NCMD, self.edge)


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
# (series id, value field, mask, sign): mask is 0 unless the datatype is a signed integer.
_Fast: TypeAlias = tuple[int, str, int, int]


@dataclass(slots=True)
class _Point:
    name: str
    alias: int | None
    datatype: int
    series_id: int | None = None

    @property
    def storable(self) -> bool:
        return self.datatype in sp.VALUE_FIELD


@dataclass(slots=True)
class _Device:
    by_alias: dict[int, _Point] = field(default_factory=dict)
    by_name: dict[str, _Point] = field(default_factory=dict)
    # Numeric bound points only; alias 0 stays out because an absent alias reads as 0.
    fast_alias: dict[int, _Fast] = field(default_factory=dict)
    fast_name: dict[str, _Fast] = field(default_factory=dict)
    bound: bool = False
    pending: tuple[BirthValue, ...] = ()

    def series_ids(self) -> list[int]:
        return [p.series_id for p in self.by_name.values() if p.series_id is not None]


@dataclass(slots=True)
class _Node:
    group: str
    edge: str
    state: int = _DEAD
    bd_seq: int | None = None
    seq: int = 0
    devices: dict[str | None, _Device] = field(default_factory=dict)  # None: the node itself
    alias_owner: dict[int, str | None] = field(default_factory=dict)  # unique per edge node
    rebirth_ns: int | None = None


class SparkplugHost:
    """Session state of a Primary Host Application over all edge nodes it hears."""

    def __init__(self, host_id: str, *, rebirth_interval_s: float = 5.0) -> None:
        self.host_id = host_id
        self.rejected: Counter[str] = Counter()
        self.peers: dict[str, tuple[bool, int]] = {}  # host id -> (online, timestamp ms)
        self._nodes: dict[tuple[str, str], _Node] = {}
        self._topics: dict[str, Topic | StateTopic] = {}
        self._interval_ns = int(rebirth_interval_s * 1e9)

    def is_online(self, group: str, edge: str, device: str | None = None) -> bool:
        node = self._nodes.get((group, edge))
        return node is not None and node.state == _ALIVE and device in node.devices

    def receive(self, topic: str, payload: bytes, now_ns: int, out: SampleBuffer,
                historical: SampleBuffer | None = None) -> list[Event]:
        """Process one MQTT message; never raises for bad input (see :class:`Rejected`)."""
        try:
            t = self._topics.get(topic)
            if t is None:
                t = sp.parse_topic(topic)
                if len(self._topics) < 65536:  # a bound, not an LRU: real topics are few
                    self._topics[topic] = t
            if isinstance(t, StateTopic):
                return self._on_state(t.host_id, payload)
            kind = t.kind
            if kind is MessageType.NCMD or kind is MessageType.DCMD:
                return []  # commands of other hosts
            p = sp.decode_payload(payload)
        except RejectedMessage as exc:
            return [self._reject(exc.reason, str(exc))]
        events: list[Event] = []
        node = self._nodes.get((t.group, t.edge))
        if node is None:
            node = self._nodes[(t.group, t.edge)] = _Node(t.group, t.edge)
        if kind is MessageType.NBIRTH:
            self._on_nbirth(node, p, now_ns, events)
        elif kind is MessageType.NDEATH:
            self._on_ndeath(node, p, now_ns, events)
        elif node.state != _ALIVE:
            reason = "awaiting_rebirth" if node.state == _RESYNC else "data_before_birth"
            events.append(self._reject(reason, f"{kind} from {t.group}/{t.edge}"))
            self._resync(node, reason, now_ns, events)
        elif p.seq != (node.seq + 1) & 0xFF or not p.HasField("seq"):
            detail = f"{t.group}/{t.edge}: expected seq {(node.seq + 1) & 0xFF}, got {p.seq}"
            events.append(self._reject("seq_gap", detail))
            self._resync(node, "seq_gap", now_ns, events)
        else:
            node.seq = p.seq
            if kind is MessageType.DBIRTH:
                self._on_birth(node, t.device, p, now_ns, events)
            elif kind is MessageType.DDEATH:
                self._on_ddeath(node, t, p, now_ns, events)
            else:
                dev = node.devices.get(t.device)
                if dev is None:
                    events.append(self._reject("data_before_birth", f"{kind} {topic}"))
                    self._resync(node, "data_before_birth", now_ns, events)
                else:
                    self._on_data(node, dev, p, payload, now_ns=now_ns, out=out,
                                  historical=historical, events=events)
        return events

    def bind(self, group: str, edge: str, device: str | None,
             series_ids: Mapping[str, int], out: SampleBuffer,
             historical: SampleBuffer | None = None) -> None:
        """Give the metrics of the last BIRTH their series ids and emit the birth values."""
        node = self._nodes.get((group, edge))
        dev = node.devices.get(device) if node is not None else None
        if node is None or dev is None:
            raise NotFound(f"no birth for {group}/{edge}/{device or ''}")
        for name, sid in series_ids.items():
            point = dev.by_name.get(name)
            if point is None or not point.storable:
                raise InvalidInput(f"no storable metric {name!r} in the birth", "series_ids")
            if not 0 <= sid < 2**31:
                raise InvalidInput(f"series id {sid} out of int32 range", "series_ids")
            point.series_id = sid
            if point.datatype not in sp.TEXT_TYPES:
                bits = sp.SIGNED_BITS.get(point.datatype, 0)
                fast = (sid, sp.VALUE_FIELD[point.datatype], (1 << bits) - 1 if bits else 0,
                        1 << (bits - 1) if bits else 0)
                dev.fast_name[name] = fast
                if point.alias:
                    dev.fast_alias[point.alias] = fast
        dev.bound = True
        for bv in dev.pending:
            point = dev.by_name[bv.name]
            target = historical if bv.historical else out
            if target is None:
                self.rejected["historical_discarded"] += 1
            elif point.series_id is not None:
                _append(target, point.series_id, bv.ts_ns, bv.value, bv.quality)
        dev.pending = ()

    # ------------------------------------------------------------------ message handlers

    def _on_state(self, host_id: str, payload: bytes) -> list[Event]:
        try:
            online, ts = sp.parse_state_payload(payload)
        except RejectedMessage as exc:
            return [self._reject(exc.reason, str(exc))]
        self.peers[host_id] = (online, ts)
        return [HostState(host_id, online, ts)]

    def _on_nbirth(self, node: _Node, p: pb.Payload, now_ns: int, events: list[Event]) -> None:
        node.devices.clear()
        node.alias_owner.clear()
        node.state, node.seq, node.bd_seq = _ALIVE, p.seq & 0xFF, _bd_seq(p)
        self._on_birth(node, None, p, now_ns, events)

    def _on_ndeath(self, node: _Node, p: pb.Payload, now_ns: int, events: list[Event]) -> None:
        bd_seq = _bd_seq(p)
        if node.state == _DEAD or bd_seq != node.bd_seq:
            detail = f"{node.group}/{node.edge}: bdSeq {bd_seq}, session {node.bd_seq}"
            events.append(self._reject("stale_death", detail))
            return
        ids = [sid for dev in node.devices.values() for sid in dev.series_ids()]
        node.state = _DEAD
        node.devices.clear()
        node.alias_owner.clear()
        events.append(NodeDeathEvent(node.group, node.edge, tuple(ids), now_ns))

    def _on_ddeath(self, node: _Node, t: Topic, p: pb.Payload, now_ns: int,
                   events: list[Event]) -> None:
        dev = node.devices.pop(t.device, None)
        if dev is None or t.device is None:
            events.append(self._reject("data_before_birth", f"DDEATH of unknown {t.device}"))
            return
        for alias in dev.by_alias:
            node.alias_owner.pop(alias, None)
        ts = p.timestamp * 1_000_000 if 0 < p.timestamp <= _MAX_MS else now_ns
        events.append(DeviceDeathEvent(node.group, node.edge, t.device,
                                       tuple(dev.series_ids()), ts))

    def _on_birth(self, node: _Node, device: str | None, p: pb.Payload, now_ns: int,
                  events: list[Event]) -> None:
        old = node.devices.get(device)
        for old_alias in old.by_alias if old is not None else ():
            node.alias_owner.pop(old_alias, None)
        dev = node.devices[device] = _Device()
        specs: list[PointSpec] = []
        values: list[BirthValue] = []
        problems: dict[str, list[str]] = {}
        pts = p.timestamp or now_ns // 1_000_000
        for m in p.metrics:
            name, datatype = m.name, m.datatype
            if not isinstance(name, str) or not name or name in dev.by_name:
                problems.setdefault("malformed", []).append(f"birth metric name {name!r}")
                continue
            alias: int | None = m.alias if m.HasField("alias") else None
            if alias is not None:
                if alias in node.alias_owner:
                    problems.setdefault("duplicate_alias", []).append(f"{name}: {alias}")
                    alias = None
                else:
                    node.alias_owner[alias] = device
            point = dev.by_name[name] = _Point(name, alias, datatype)
            if alias is not None:
                dev.by_alias[alias] = point
            if not point.storable:
                problems.setdefault("unsupported_type", []).append(f"{name}: {datatype}")
                continue
            specs.append(sp.point_spec(name, datatype, sp.properties_of(m)))
            try:
                ts_ns, value, quality = _read_sample(m, datatype, pts)
            except RejectedMessage as exc:
                problems.setdefault(exc.reason, []).append(f"{name}: {exc}")
                continue
            values.append(BirthValue(name, ts_ns, value, quality, m.is_historical))
        dev.pending = tuple(values)
        events.append(BirthEvent(node.group, node.edge, device, node.bd_seq, tuple(specs),
                                 dev.pending))
        self._report(problems, events)

    def _on_data(self, node: _Node, dev: _Device, p: pb.Payload, payload: bytes, *,
                 now_ns: int, out: SampleBuffer, historical: SampleBuffer | None,
                 events: list[Event]) -> None:
        if not dev.bound:
            events.append(self._reject("unbound", f"{node.group}/{node.edge}: bind() missing"))
            return
        pts = p.timestamp or now_ns // 1_000_000
        marks = _marks(out, historical)
        problems: dict[str, list[str]] = {}
        sids: list[int] = []
        times: list[int] = []
        vals: list[float] = []
        f32: list[int] = []
        # A 'Quality' property can hide on any metric; its key is plain bytes in the payload,
        # so one substring test per message keeps the per-metric loop free of property reads.
        if b"uality" in payload:
            declined = list(p.metrics)
        else:
            declined = _fast_pass(dev, p.metrics, pts, sids, times, vals, f32)
        for m in declined:
            problem = _slow_metric(dev, m, pts, out, historical)
            if problem is None:
                continue
            reason, detail = problem
            if reason == "unknown_alias":
                # The edge node's metric set is not the one we know; aliases we do know may
                # have moved, so nothing of this message is trusted.
                _rollback(out, historical, marks)
                events.append(self._reject(reason, f"{node.group}/{node.edge}: {detail}"))
                self._resync(node, reason, now_ns, events)
                return
            problems.setdefault(reason, []).append(detail)
        dropped = _flush(out, sids, times, vals, f32)
        if dropped:
            problems.setdefault("timestamp", []).extend(["beyond year 2262"] * dropped)
        self._report(problems, events)

    def _resync(self, node: _Node, reason: str, now_ns: int, events: list[Event]) -> None:
        node.state = _RESYNC if node.state != _DEAD else _DEAD
        last = node.rebirth_ns
        if last is None or now_ns - last >= self._interval_ns:
            node.rebirth_ns = now_ns
            events.append(RebirthRequest(node.group, node.edge, reason))

    def _report(self, problems: dict[str, list[str]], events: list[Event]) -> None:
        """One Rejected event per reason and message, with a few examples as detail."""
        for reason, details in problems.items():
            events.append(self._reject(reason, "; ".join(details[:3]), len(details)))

    def _reject(self, reason: str, detail: str, count: int = 1) -> Rejected:
        self.rejected[reason] += count
        return Rejected(reason, detail, count)


# ---------------------------------------------------------------------------- helpers

_FLOAT_FIELD = sys.intern("float_value")  # the fast path compares field names by identity


def _bd_seq(p: pb.Payload) -> int | None:
    for m in p.metrics:
        if m.name == sp.BDSEQ_METRIC:
            present = m.WhichOneof("value")
            if present in ("long_value", "int_value"):
                return int(getattr(m, present))
    return None


def _read_sample(m: pb.Payload.Metric, datatype: int,
                 pts_ms: int) -> tuple[int, float | str, Quality]:
    value = sp.metric_value(m, datatype)
    quality = sp.quality_of(sp.properties_of(m)) if m.HasField("properties") else Quality.GOOD
    if value is None:
        value = "" if datatype in sp.TEXT_TYPES else math.nan
        quality = Quality.STALE if quality is Quality.STALE else Quality.BAD
    ts_ms = m.timestamp or pts_ms
    if ts_ms > _MAX_MS:
        raise RejectedMessage("timestamp", f"{ts_ms} ms is beyond year 2262")
    return ts_ms * 1_000_000, value, quality


def _fast_pass(dev: _Device, metrics: Iterable[pb.Payload.Metric], pts_ms: int,
               sids: list[int], times: list[int], vals: list[float],
               f32: list[int]) -> list[pb.Payload.Metric]:
    """The hot loop: plain numeric metrics go into the columns, the rest is returned.

    ``f32`` collects the positions of float32 values, made decimal in bulk by :func:`_flush`.
    """
    declined = []
    fast_alias, fast_name = dev.fast_alias.get, dev.fast_name.get
    add_sid, add_time, add_val = sids.append, times.append, vals.append
    for m in metrics:
        e = fast_alias(m.alias) or fast_name(m.name)
        if e is not None and not m.is_historical and not m.is_null:
            sid, fld, mask, sign = e
            v = getattr(m, fld)
            # Reading an unset oneof member gives 0 too, so a zero must prove it was sent.
            if v or m.WhichOneof("value") == fld:
                if fld is _FLOAT_FIELD:
                    f32.append(len(vals))
                add_sid(sid)
                add_time(m.timestamp or pts_ms)
                add_val(((v & mask) ^ sign) - sign if mask else v)
                continue
        declined.append(m)
    return declined


def _slow_metric(dev: _Device, m: pb.Payload.Metric, pts_ms: int, out: SampleBuffer,
                 historical: SampleBuffer | None) -> tuple[str, str] | None:
    """Store one metric the fast path declined; returns (reason, detail) if it was not."""
    point = dev.by_alias.get(m.alias) if m.HasField("alias") else None
    name = m.name
    if point is None and name and isinstance(name, str):
        point = dev.by_name.get(name)
    if point is None:
        return "unknown_alias", f"alias {m.alias} name {name!r}"
    if not point.storable:
        return "unsupported_type", point.name
    if point.series_id is None:
        return "unbound", point.name
    try:
        ts_ns, value, quality = _read_sample(m, point.datatype, pts_ms)
    except RejectedMessage as exc:
        return exc.reason, f"{point.name}: {exc}"
    target = historical if m.is_historical else out
    if target is None:
        return "historical_discarded", point.name
    _append(target, point.series_id, ts_ns, value, quality)
    return None


def _append(buf: SampleBuffer, sid: int, ts_ns: int, value: float | str,
            quality: Quality) -> None:
    if isinstance(value, str):
        buf.text.append(TextSample(sid, ts_ns, value, quality))
    else:
        buf.append(sid, ts_ns, value, quality)


def _flush(out: SampleBuffer, sids: list[int], times: list[int], vals: list[float],
           f32: list[int]) -> int:
    """Append the fast path's columns; returns how many had an unrepresentable timestamp."""
    n = len(out.ts_ns)
    try:
        out.ts_ns.extend([t * 1_000_000 for t in times])
    except OverflowError:
        del out.ts_ns[n:]
        keep = [i for i, t in enumerate(times) if t <= _MAX_MS]
        out.ts_ns.extend([times[i] * 1_000_000 for i in keep])
        sids, vals = [sids[i] for i in keep], [vals[i] for i in keep]
        was_f32 = set(f32)
        f32 = [j for j, i in enumerate(keep) if i in was_f32]
    if f32:  # made decimal in bulk when the batch is frozen
        out.float32_at.extend([n + i for i in f32])
    out.series_id.extend(sids)
    out.value.extend(vals)
    out.quality.frombytes(bytes(len(sids)))
    return len(times) - len(sids)


_Marks: TypeAlias = tuple[tuple[int, int], tuple[int, int] | None]


def _marks(out: SampleBuffer, historical: SampleBuffer | None) -> _Marks:
    h = historical
    return (len(out.series_id), len(out.text)), (
        (len(h.series_id), len(h.text)) if h is not None else None)


def _rollback(out: SampleBuffer, historical: SampleBuffer | None, marks: _Marks) -> None:
    for buf, mark in ((out, marks[0]), (historical, marks[1])):
        if buf is not None and mark is not None:
            for column in (buf.series_id, buf.ts_ns, buf.value, buf.quality):
                del column[mark[0]:]
            del buf.text[mark[1]:]
            while buf.float32_at and buf.float32_at[-1] >= mark[0]:
                buf.float32_at.pop()
