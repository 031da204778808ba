"""Sparkplug B writes (issue 11, scope 5), sans-IO: which metrics may be written, the NCMD/DCMD
payload, and the confirmations waiting for a device's next report.

**Which metrics are writable.** Read-only by default. A metric may be written when its BIRTH
(NBIRTH for node metrics, DBIRTH for device metrics) carries the property ``Writable`` (any case)
with the boolean value true, or when its ``site/area/line/device/point`` matches a pattern of the
host's allow-list (``fnmatch`` syntax: ``Suzhou/*/L1/*/Feed/Override``). Nothing else is
written: a property with the string ``"true"`` does not count.

**The command.** One metric per command, carrying the name, the alias (when the birth gave one)
and the datatype of the birth, the value encoded as that datatype prescribes, and a timestamp; no
``seq`` (commands have none). Published with QoS 0, not retained, as Sparkplug 3.0 requires.

**Confirmation.** A write is confirmed when the device next reports the metric (by alias or name,
in NDATA/DDATA or a new BIRTH) with the value written (floats compared as float32 when the
datatype is Float). A report of another value does not fail the command (the device may not
have applied it yet); the command's timeout does, and its detail names the last value seen.
"""

from __future__ import annotations

import asyncio
import fnmatch
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from millnet.errors import RejectedMessage
from millnet.protocols import sparkplug as sp
from millnet.protocols import sparkplug_b_pb2 as pb

WRITABLE_PROPERTY = "writable"
#: Which end of a device a command goes to: (group, edge node id, device id or None).
Target = tuple[str, str, str | None]
Value = float | int | bool | str


@dataclass(frozen=True, slots=True)
class BirthMetric:
    """A metric as its last BIRTH announced it: what a command must carry."""

    name: str
    alias: int | None
    datatype: int
    writable: bool  # the BIRTH's 'Writable' property


def birth_metrics(payload: bytes) -> dict[str, BirthMetric]:
    """The storable metrics of a BIRTH payload by name (RejectedMessage if it does not decode)."""
    p = sp.decode_payload(payload)
    out: dict[str, BirthMetric] = {}
    for m in p.metrics:
        if not m.name or m.datatype not in sp.VALUE_FIELD or m.name in out:
            continue
        props = {k.lower(): v for k, v in sp.properties_of(m).items()}
        flag = props.get(WRITABLE_PROPERTY)
        out[m.name] = BirthMetric(m.name, m.alias if m.HasField("alias") else None,
                                  m.datatype, flag is True)
    return out


def allowed(patterns: Sequence[str], path: str) -> bool:
    """Whether ``site/area/line/device/point`` matches one of the allow-list's patterns."""
    return any(fnmatch.fnmatchcase(path, pattern) for pattern in patterns)


def encode_command(metric: BirthMetric, value: Value, timestamp_ms: int) -> bytes:
    """The NCMD/DCMD payload writing ``value`` to ``metric`` (ValueError if it cannot be
    encoded as the metric's datatype)."""
    p = pb.Payload(timestamp=timestamp_ms)
    m = p.metrics.add(name=metric.name, datatype=metric.datatype, timestamp=timestamp_ms)
    if metric.alias is not None:
        m.alias = metric.alias
    sp.set_value(m, metric.datatype, coerce(metric.datatype, value))
    return p.SerializeToString()


def coerce(datatype: int, value: Value) -> Value:
    """``value`` as the Python type the datatype's field holds; ValueError when it does not fit."""
    fld = sp.VALUE_FIELD.get(datatype)
    if fld is None:
        raise ValueError(f"datatype {datatype} cannot be written")
    if fld == "string_value":
        if not isinstance(value, str):
            raise ValueError("expected text")
        return value
    if isinstance(value, str):
        raise ValueError("expected a number, not text")
    if fld == "boolean_value":
        if isinstance(value, bool) or value in (0, 1):
            return bool(value)
        raise ValueError("expected true or false")
    if fld in ("int_value", "long_value"):
        if isinstance(value, float) and not value.is_integer():
            raise ValueError("expected an integer")
        return int(value)
    if not math.isfinite(float(value)):
        raise ValueError("expected a finite number")
    return float(value)


def same_value(datatype: int, reported: float | str | None, written: Value) -> bool:
    """Whether a reported value (as the host decodes it) is the value written."""
    if reported is None:
        return False
    if isinstance(reported, str) or isinstance(written, str):
        return reported == written
    if datatype == sp.SpDataType.FLOAT:
        return math.isclose(reported, float(written), rel_tol=1e-6, abs_tol=1e-6)
    return float(reported) == float(written)


@dataclass(slots=True)
class _Waiter:
    metric: BirthMetric
    value: Value
    done: asyncio.Future[None]
    last_seen: float | str | None = None
    seen: bool = False


@dataclass(slots=True)
class Confirmations:
    """Writes waiting for their device's next report, by target."""

    _waiting: dict[Target, list[_Waiter]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self._waiting)

    def expect(self, target: Target, metric: BirthMetric, value: Value) -> _Waiter:
        waiter = _Waiter(metric, value, asyncio.get_running_loop().create_future())
        self._waiting.setdefault(target, []).append(waiter)
        return waiter

    def forget(self, target: Target, waiter: _Waiter) -> None:
        waiters = self._waiting.get(target)
        if waiters is not None and waiter in waiters:
            waiters.remove(waiter)
            if not waiters:
                del self._waiting[target]

    def report(self, target: Target, payload: bytes) -> None:
        """A DATA or BIRTH of ``target`` arrived: resolve the waiters it confirms."""
        waiters = self._waiting.get(target)
        if not waiters:
            return
        try:
            metrics = sp.decode_payload(payload).metrics
        except RejectedMessage:
            return
        for m in metrics:
            for w in waiters:
                if not _is(m, w.metric):
                    continue
                try:
                    reported = sp.metric_value(m, w.metric.datatype)
                except RejectedMessage:
                    continue
                w.seen, w.last_seen = True, reported
                if same_value(w.metric.datatype, reported, w.value) and not w.done.done():
                    w.done.set_result(None)

    def pending(self) -> Iterable[Target]:
        return self._waiting.keys()


def _is(m: pb.Payload.Metric, metric: BirthMetric) -> bool:
    if m.HasField("alias") and metric.alias is not None:
        return m.alias == metric.alias
    return bool(m.name) and m.name == metric.name
