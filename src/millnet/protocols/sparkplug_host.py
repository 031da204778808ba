"""Sparkplug B 3.0 Primary Host Application session state, sans-IO.

The MQTT adapter feeds every message to :meth:`SparkplugHost.receive` and acts on the events:

* :class:`BirthEvent`: upsert ``specs`` in the registry, then :meth:`SparkplugHost.bind`
  ``{metric name: series id}`` *before feeding the next message*; ``bind`` appends the birth's
  own values (current values too) to the buffers it is given. Unmapped metrics stay unbound.
  Birth values are stored once: a value whose timestamp equals the newest the host already
  holds for its series (it saw that sample, in a DATA or an earlier BIRTH) is not stored again,
  and a null birth metric of a series the host holds nothing for is no sample at all (see
  "Birth values, once" in ``docs/edge.md``).
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

from collections import Counter
from collections.abc import Mapping
from typing import TypeAlias

from millnet.errors import InvalidInput, NotFound, RejectedMessage
from millnet.model import PointSpec, SampleBuffer
from millnet.protocols import sparkplug as sp
from millnet.protocols import sparkplug_b_pb2 as pb
from millnet.protocols.sparkplug import MessageType, StateTopic, Topic
from millnet.protocols.sparkplug_events import (
    BirthEvent,
    BirthValue,
    DeviceDeathEvent,
    Event,
    HostState,
    NodeDeathEvent,
    RebirthRequest,
    Rejected,
)
from millnet.protocols.sparkplug_samples import (
    _ALIVE,
    _DEAD,
    _MAX_MS,
    _RESYNC,
    _append,
    _bd_seq,
    _Device,
    _fast_pass,
    _flush,
    _Marks,
    _marks,
    _Node,
    _Point,
    _read_sample,
    _rollback,
    _slow_metric,
)

_DeviceKey: TypeAlias = tuple[str, str, str | None]


class SparkplugHost:
    """Session state of a Primary Host Application over all edge nodes it hears."""

    def __init__(self, host_id: str, *, rebirth_interval_s: float = 5.0) -> None:
        self.host_id = host_id
        self.rejected: Counter[str] = Counter()
        self.peers: dict[str, tuple[bool, int]] = {}  # host id -> (online, timestamp ms)
        self._nodes: dict[tuple[str, str], _Node] = {}
        self._topics: dict[str, Topic | StateTopic] = {}
        self._interval_ns = int(rebirth_interval_s * 1e9)
        # The newest timestamp of a sample the host has emitted, per series id: a birth value
        # at that very timestamp is the same sample announced again. In milliseconds, as on
        # the wire (every Sparkplug timestamp is), so that the hot path updates it straight
        # from its own lists.
        self._held: dict[int, int] = {}
        self._null_births: dict[_DeviceKey, frozenset[str]] = {}
        #: Birth values not stored: "repeat" (the host held that sample), "null" (nothing held).
        self.birth_values_skipped: Counter[str] = Counter()

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
             historical: SampleBuffer | None = None, held: Mapping[int, int] | None = None,
             ) -> None:
        """Give the metrics of the last BIRTH their series ids and emit the birth values.

        ``held`` (series id -> ts ns) names samples the node already stores for series this
        host has not seen since it started (the store's current values): birth values at those
        timestamps are not stored again either."""
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
        nulls = self._null_births.pop((group, edge, device), frozenset())
        known = self._held
        for bv in dev.pending:
            bound = dev.by_name[bv.name].series_id
            if bound is None:
                continue
            sid = bound
            last_ms = known.get(sid)
            last = None if last_ms is None else last_ms * 1_000_000
            if last is None and held is not None:
                last = held.get(sid)
            if last == bv.ts_ns:
                self.birth_values_skipped["repeat"] += 1
                continue
            if last is None and bv.name in nulls:
                self.birth_values_skipped["null"] += 1
                continue
            target = historical if bv.historical else out
            if target is None:
                self.rejected["historical_discarded"] += 1
                continue
            _append(target, sid, bv.ts_ns, bv.value, bv.quality)
            if last is None or bv.ts_ns > last:
                known[sid] = bv.ts_ns // 1_000_000
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
        nulls: set[str] = set()
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
            if m.is_null:
                nulls.add(name)
        dev.pending = tuple(values)
        self._null_births[(node.group, node.edge, device)] = frozenset(nulls)
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
        self._remember(out, historical, marks, sids, times, dropped)
        self._report(problems, events)

    def _remember(self, out: SampleBuffer, historical: SampleBuffer | None, marks: _Marks,
                  sids: list[int], times_ms: list[int], dropped: int) -> None:
        """Note the newest timestamp of each series in what one DATA message appended.

        Live samples: the last of each series (edge nodes send them in time order), those the
        slow path appended first from the columns, then the fast path's straight from its own
        lists (one ``dict.update``, no copy of the columns). Historical ones only raise what
        is held."""
        held = self._held
        (n, t), hmark = marks
        if dropped:  # rare (timestamps beyond 2262): the columns say what was kept
            held.update((sid, ts // 1_000_000) for sid, ts in
                        zip(out.series_id[n:], out.ts_ns[n:], strict=True))
        else:
            slow_end = len(out.series_id) - len(sids)
            if slow_end > n:
                held.update((sid, ts // 1_000_000) for sid, ts in
                            zip(out.series_id[n:slow_end], out.ts_ns[n:slow_end], strict=True))
            held.update(zip(sids, times_ms, strict=True))
        for sample in out.text[t:]:
            held[sample.series_id] = sample.ts_ns // 1_000_000
        if historical is None or hmark is None:
            return
        n, t = hmark
        pairs = list(zip(historical.series_id[n:], historical.ts_ns[n:], strict=True))
        pairs += [(s.series_id, s.ts_ns) for s in historical.text[t:]]
        for sid, ts in pairs:
            ms = ts // 1_000_000
            if ms > held.get(sid, -1):
                held[sid] = ms

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


__all__ = [
    'BirthEvent',
    'BirthValue',
    'DeviceDeathEvent',
    'Event',
    'HostState',
    'NodeDeathEvent',
    'RebirthRequest',
    'Rejected',
    'SparkplugHost',
]
