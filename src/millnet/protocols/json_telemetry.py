"""Plain JSON telemetry over MQTT: the topic scheme and the payload decoder (sans-IO).

Topic: ``<root>/<site>/<area>/<line>/<device>`` (exactly four levels under the root).

Payload, UTF-8 JSON, one of:

* one sample:
  ``{"point": "spindle_temp", "value": 41.5, "ts": 1767225600000, "quality": "good"}``
* one timestamp, many points:
  ``{"ts": 1767225600000, "values": {"spindle_temp": 41.5, "state": "RUN"}}``
* a batch: a JSON array of either form.

``ts`` is epoch milliseconds (an integral number, 0 to 2262-04-11) or an RFC 3339 string in the
same range; when absent the receive time is used. Names follow the registry's rules (non-blank,
at most 200 characters, no control characters; topic levels without '/'), ``unit`` at most 64
characters: the decoder refuses here what the registry or the store would refuse later.
``value`` is a number, a boolean (stored as 0/1) or a string (a text sample); ``quality`` is one of
``good``, ``uncertain``, ``bad`` (default ``good``). ``unit`` may accompany a single sample.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime

import msgspec

from millnet.errors import RejectedMessage
from millnet.model import Quality
from millnet.model.limits import (
    MAX_TS_MS,
    MAX_TS_NS,
    UNIT_MAX,
    has_surrogates,
    name_problem,
    text_problem,
)

MAX_SAMPLES_PER_MESSAGE = 100_000
_QUALITY = {"good": Quality.GOOD, "uncertain": Quality.UNCERTAIN, "bad": Quality.BAD}


@dataclass(frozen=True, slots=True)
class DevicePath:
    site: str
    area: str
    line: str
    device: str


@dataclass(frozen=True, slots=True)
class JsonSample:
    point: str
    ts_ns: int
    value: float | str
    quality: Quality
    unit: str | None = None


_Scalar = float | bool | str | None


class _Item(msgspec.Struct, forbid_unknown_fields=True):
    point: str | None = None
    value: _Scalar | msgspec.UnsetType = msgspec.UNSET
    values: dict[str, _Scalar] | None = None
    ts: int | float | str | None = None
    quality: str = "good"
    unit: str | None = None


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_decoder = msgspec.json.Decoder(_Item | list[_Item])


def parse_topic(topic: str, root: str) -> DevicePath:
    parts = topic.split("/")
    if len(parts) != 5 or parts[0] != root:
        raise RejectedMessage("topic",
                              f"expected {root}/<site>/<area>/<line>/<device>: {topic[:300]!r}")
    for level, part in zip(("site", "area", "line", "device"), parts[1:], strict=True):
        problem = name_problem(part, allow_slash=False)
        if problem is not None:
            raise RejectedMessage("topic", f"{level} level {part[:40]!r} {problem}")
    return DevicePath(*parts[1:])


def _ts_ns(ts: int | float | str | None, now_ns: int) -> int:
    if ts is None:
        return now_ns
    if isinstance(ts, float):  # 1767225600000.0: a JSON number, as JSON Schema's integer
        if not ts.is_integer():
            raise RejectedMessage("timestamp", f"ts {ts!r} is not whole milliseconds")
        ts = int(ts)
    if isinstance(ts, int):
        if not 0 <= ts <= MAX_TS_MS:
            raise RejectedMessage("timestamp", f"ts {ts} ms out of range (1970 to 2262)")
        return ts * 1_000_000
    try:
        parsed = datetime.fromisoformat(ts)
    except ValueError as exc:
        raise RejectedMessage("timestamp", f"ts is not RFC 3339: {ts[:40]!r}") from exc
    if parsed.tzinfo is None:
        raise RejectedMessage("timestamp", f"ts has no timezone: {ts[:40]!r}")
    delta = parsed - _EPOCH
    ns = (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000
    if not 0 <= ns <= MAX_TS_NS:
        raise RejectedMessage("timestamp", f"ts {ts[:40]!r} out of range (1970 to 2262)")
    return ns


def _quality(q: str) -> Quality:
    try:
        return _QUALITY[q]
    except KeyError:
        raise RejectedMessage("malformed", f"quality must be good|uncertain|bad, got {q[:20]!r}") \
            from None


def _value(v: _Scalar, q: Quality) -> tuple[float | str, Quality]:
    if v is None:
        return float("nan"), Quality.BAD
    if isinstance(v, bool):
        return (1.0 if v else 0.0), q
    if isinstance(v, str):
        if has_surrogates(v):
            raise RejectedMessage("malformed", "text value holds lone surrogates")
        return v, q
    if not math.isfinite(v):
        raise RejectedMessage("datatype", f"value is not a finite number: {v}")
    return float(v), q


def _pairs(item: _Item) -> list[tuple[str, _Scalar]]:
    if item.values is not None:
        if item.point is not None or item.value is not msgspec.UNSET:
            raise RejectedMessage("malformed", "give either point/value or values, not both")
        return list(item.values.items())
    if item.point is None or item.value is msgspec.UNSET:
        raise RejectedMessage("malformed", "a sample needs point and value (or a values object)")
    return [(item.point, item.value)]


def decode_payload(payload: bytes, now_ns: int) -> list[JsonSample]:
    """Decode a JSON telemetry payload; raises :class:`RejectedMessage` naming what was wrong."""
    try:
        doc = _decoder.decode(payload)
    except msgspec.ValidationError as exc:
        raise RejectedMessage("malformed", f"JSON telemetry: {exc}") from exc
    except msgspec.DecodeError as exc:
        raise RejectedMessage("malformed", f"not JSON: {exc}") from exc
    items = doc if isinstance(doc, list) else [doc]
    out: list[JsonSample] = []
    for item in items:
        ts = _ts_ns(item.ts, now_ns)
        q = _quality(item.quality)
        pairs = _pairs(item)
        unit = item.unit
        problem = text_problem(unit, UNIT_MAX)
        if problem is not None:
            raise RejectedMessage("malformed", f"unit {problem}")
        for name, raw in pairs:
            problem = name_problem(name)
            if problem is not None:
                raise RejectedMessage("malformed", f"point name {name[:40]!r} {problem}")
            value, quality = _value(raw, q)
            out.append(JsonSample(name, ts, value, quality, unit))
        if len(out) > MAX_SAMPLES_PER_MESSAGE:
            raise RejectedMessage("oversized", f"more than {MAX_SAMPLES_PER_MESSAGE} samples")
    return out
