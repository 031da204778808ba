"""A Sparkplug B edge node's session, sans-IO: births, data messages, seq and bdSeq.

The uplink asks :class:`EdgeSession` for the ``(topic, payload)`` pairs to publish; it keeps the
message ``seq`` (0-255, NBIRTH is 0) and knows which series the current session announced.

* Every device the edge forwards is one Sparkplug device of this edge node; its device id is the
  local device's name (``area.line.device`` when two local lines have a device of that name).
  The central host maps ``group_id`` to the site and ``edge_node_id`` (``area.line``) to area
  and line, so devices of several local lines land under one line upstream.
* A metric's name is the point's name, its alias the series id, its datatype the point's.
* Timestamps travel as Sparkplug's milliseconds: samples of one series closer than 1 ms apart
  arrive with the same timestamp.
* Quality travels as the ``Quality`` property (BAD 0, UNCERTAIN 64, STALE 500; GOOD has none);
  NaN travels as ``is_null``.
* A birth carries each point's latest value the broker acknowledged (at that value's own
  timestamp), as Sparkplug requires: a sample the central host already holds, which it does not
  store again (``protocols/sparkplug_host.py``); a value still in the backlog is not announced
  (the replay sends it once). A point with nothing delivered is announced null.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping

from millnet.connectivity.edge.records import BatchRecord, SeriesName
from millnet.model import DataType, Quality
from millnet.protocols import sparkplug as sp
from millnet.protocols import sparkplug_b_pb2 as pb

Message = tuple[str, bytes]
Current = tuple[int, float | str, Quality]

QUALITY_CODE = {Quality.BAD: 0, Quality.UNCERTAIN: 64, Quality.STALE: 500}
_NONE: Current = (-1, 0.0, Quality.GOOD)
SP_TYPE: dict[DataType, int] = {dt: code for code, dt in sp.MODEL_TYPE.items()}


def wire_type(datatype: DataType) -> int:
    """The Sparkplug datatype a point travels as (BYTES, never stored, as a double)."""
    return SP_TYPE.get(datatype, sp.SpDataType.DOUBLE)


def _value(datatype: int, value: float | str) -> float | int | bool | str | None:
    if isinstance(value, str):
        return value
    if math.isnan(value):
        return None
    if datatype == sp.SpDataType.BOOLEAN:
        return value != 0.0
    if datatype in (sp.SpDataType.FLOAT, sp.SpDataType.DOUBLE):
        return value
    return int(value) if math.isfinite(value) else None


def _wire_spec(datatype: DataType) -> tuple[int, str, int]:
    """(Sparkplug datatype, value field, mask): mask -1 for floats, 0 for booleans."""
    dt = wire_type(datatype)
    fld = sp.VALUE_FIELD.get(dt, "double_value")
    if fld in ("float_value", "double_value"):
        return dt, fld, -1
    if fld == "boolean_value":
        return dt, fld, 0
    return dt, fld, 0xFFFFFFFF if fld == "int_value" else 0xFFFFFFFFFFFFFFFF


class EdgeSession:
    def __init__(self, group: str, edge: str, bd_seq: int, metrics_per_message: int = 2000):
        self.group = group
        self.edge = edge
        self.bd_seq = bd_seq
        self.per_message = metrics_per_message
        self.seq = 0
        self.device_ids: dict[tuple[str, str, str, str], str] = {}
        self.born: set[int] = set()  # series announced in this session's births
        self._wire: dict[int, tuple[int, str, int]] = {}

    def _next_seq(self) -> int:
        seq = self.seq
        self.seq = (seq + 1) & 0xFF
        return seq

    def device_id(self, path: tuple[str, str, str, str]) -> str:
        did = self.device_ids.get(path)
        if did is None:
            taken = set(self.device_ids.values())
            did = path[3] if path[3] not in taken else ".".join(path[1:])
            self.device_ids[path] = did
        return did

    def death(self) -> Message:
        """The NDEATH for this bdSeq (the MQTT will)."""
        return sp.node_topic(self.group, sp.MessageType.NDEATH, self.edge), \
            sp.encode_ndeath(self.bd_seq)

    def births(self, names: Mapping[int, SeriesName], current: Mapping[int, Current],
               now_ms: int) -> list[Message]:
        """NBIRTH (seq 0) and a DBIRTH per device for every series known."""
        self.seq = 0
        self.born.clear()
        out = [(sp.node_topic(self.group, sp.MessageType.NBIRTH, self.edge),
                sp.encode_nbirth([], bd_seq=self.bd_seq, timestamp_ms=now_ms,
                                 seq=self._next_seq()))]
        devices: dict[tuple[str, str, str, str], list[SeriesName]] = defaultdict(list)
        for info in names.values():
            devices[info.device].append(info)
        for path in sorted(devices):
            out.append(self._dbirth(path, devices[path], current, now_ms))
        return out

    def device_births(self, series: list[int], names: Mapping[int, SeriesName],
                      current: Mapping[int, Current], now_ms: int) -> list[Message]:
        """DBIRTHs for the devices of ``series`` not yet announced (all their points)."""
        paths = sorted({names[s].device for s in series if s in names and s not in self.born})
        out = []
        for path in paths:
            infos = [i for i in names.values() if i.device == path]
            out.append(self._dbirth(path, infos, current, now_ms))
        return out

    def _dbirth(self, path: tuple[str, str, str, str], infos: list[SeriesName],
                current: Mapping[int, Current], now_ms: int) -> Message:
        metrics = []
        for info in sorted(infos, key=lambda i: i.series_id):
            dt = wire_type(info.datatype)
            cur = current.get(info.series_id)
            value, ts_ms, props = None, now_ms, {}
            if cur is not None:
                ts_ms = cur[0] // 1_000_000
                value = _value(dt, cur[1])
                if cur[2] is not Quality.GOOD:
                    props = {"Quality": QUALITY_CODE[cur[2]]}
            metrics.append(sp.BirthMetric(info.point, info.series_id, dt, value, props,
                                          timestamp_ms=ts_ms or now_ms))
            self.born.add(info.series_id)
        topic = sp.device_topic(self.group, sp.MessageType.DBIRTH, self.edge,
                                self.device_id(path))
        return topic, sp.encode_dbirth(metrics, seq=self._next_seq(), timestamp_ms=now_ms)

    def plan(self, record: BatchRecord, names: Mapping[int, SeriesName]) -> list[
            tuple[tuple[str, str, str, str], list[int], list[int]]]:
        """How a record splits into messages: ``(device, numeric rows, text rows)`` each, in a
        fixed order (the same record always gives the same messages)."""
        by_device: dict[tuple[str, str, str, str], tuple[list[int], list[int]]] = {}
        for row, sid in enumerate(record.batch.series_id.tolist()):
            by_device.setdefault(names[sid].device, ([], []))[0].append(row)
        for row, t in enumerate(record.text):
            by_device.setdefault(names[t.series_id].device, ([], []))[1].append(row)
        plan = []
        n = self.per_message
        for path in sorted(by_device):
            rows, text_rows = by_device[path]
            for i in range(0, max(len(rows), 1), n):
                chunk = rows[i:i + n]
                plan.append((path, chunk, text_rows if i == 0 else []))
        return [p for p in plan if p[1] or p[2]]

    def data(self, record: BatchRecord, names: Mapping[int, SeriesName],
             part: tuple[tuple[str, str, str, str], list[int], list[int]], *,
             historical: bool, now_ms: int, current: Mapping[int, Current] | None = None,
             ) -> Message:
        """One DDATA of a record's :meth:`plan` part.

        With ``historical``, a sample that is its series' newest one buffered (in ``current``)
        is sent as current data all the same: after an outage the backlog's last readings are
        the current values, and the central store never moves a current value back in time.
        """
        path, rows, text_rows = part
        newest = current if historical and current is not None else {}
        p = pb.Payload(timestamp=now_ms, seq=self._next_seq())
        b = record.batch
        sids, times = b.series_id.tolist(), b.ts_ns.tolist()
        values, qualities = b.value.tolist(), b.quality.tolist()
        add = p.metrics.add
        wire = self._wire
        for row in rows:
            sid = sids[row]
            spec = wire.get(sid)
            if spec is None:
                spec = wire[sid] = _wire_spec(names[sid].datatype)
            dt, fld, mask = spec
            ts = times[row]
            m = add(alias=sid, timestamp=ts // 1_000_000, datatype=dt,
                    is_historical=historical and newest.get(sid, _NONE)[0] != ts)
            v = values[row]
            if v != v:  # NaN  # noqa: PLR0124
                m.is_null = True
            elif mask < 0:
                setattr(m, fld, v)
            elif mask == 0:
                m.boolean_value = v != 0.0
            elif math.isfinite(v):
                setattr(m, fld, int(v) & mask)
            else:
                m.is_null = True
            if qualities[row]:
                m.properties.keys.append("Quality")
                pv = m.properties.values.add()
                pv.type, pv.long_value = sp.SpDataType.INT64, QUALITY_CODE[Quality(qualities[row])]
        for row in text_rows:
            t = record.text[row]
            dt = wire_type(names[t.series_id].datatype)
            m = add(alias=t.series_id, timestamp=t.ts_ns // 1_000_000, datatype=dt)
            if historical and newest.get(t.series_id, _NONE)[0] != t.ts_ns:
                m.is_historical = True
            if dt in sp.TEXT_TYPES:
                m.string_value = t.value
            else:
                m.is_null = True
            if t.quality:
                m.properties.keys.append("Quality")
                pv = m.properties.values.add()
                pv.type, pv.long_value = sp.SpDataType.INT64, QUALITY_CODE[t.quality]
        topic = sp.device_topic(self.group, sp.MessageType.DDATA, self.edge,
                                self.device_id(path))
        return topic, p.SerializeToString()
