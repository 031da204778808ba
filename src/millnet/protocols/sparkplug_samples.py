"""Per-edge-node session records and the sample-extraction helpers of the Sparkplug host.

The hot path lives here: :func:`_fast_pass` turns DATA metrics of bound points into column
appends with one dictionary lookup per metric; everything else takes :func:`_slow_metric`.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TypeAlias

from millnet.errors import RejectedMessage
from millnet.model import Quality, SampleBuffer, TextSample
from millnet.protocols import sparkplug as sp
from millnet.protocols import sparkplug_b_pb2 as pb
from millnet.protocols.sparkplug_events import BirthValue

_MAX_MS = (2**63 - 1) // 1_000_000  # latest ms timestamp whose ns still fits an int64
_DEAD, _ALIVE, _RESYNC = 0, 1, 2
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
