"""Plain JSON telemetry over MQTT: the topic scheme and the payload decoder (sans-IO).

Topic: ``<root>/<site>/<area>/<line>/<device>`` (exactly four levels under the root).

Payload, UTF-8 JSON, one of:

* one sample:
  ``{"point": "spindle_temp", "value": 41.5, "ts": 1767225600000, "quality": "good"}``
* one timestamp, many points:
  ``{"ts": 1767225600000, "values": {"spindle_temp": 41.5, "state": "RUN"}}``
* a batch: a JSON array of either form.

``ts`` is epoch milliseconds (integer) or an RFC 3339 string; when absent the receive time is used.
``value`` is a number, a boolean (stored as 0/1) or a string (a text sample); ``quality`` is one of
``good``, ``uncertain``, ``bad`` (default ``good``). ``unit`` may accompany a single sample.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

import msgspec

from millnet.errors import RejectedMessage
from millnet.model import Quality

MAX_SAMPLES_PER_MESSAGE = 100_000
MAX_NAME = 200
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
    ts: int | str | None = None
    quality: str = "good"
    unit: str | None = None


_decoder = msgspec.json.Decoder(_Item | list[_Item])


def _valid_name(name: str) -> bool:
    return 0 < len(name) <= MAX_NAME and name.isprintable()


def parse_topic(topic: str, root: str) -> DevicePath:
    parts = topic.split("/")
    if len(parts) != 5 or parts[0] != root:
        raise RejectedMessage("topic", f"expected {root}/<site>/<area>/<line>/<device>: {topic!r}")
    if not all(_valid_name(p) for p in parts[1:]):
        raise RejectedMessage("topic", f"empty or unprintable level in {topic!r}")
    return DevicePath(*parts[1:])


def _ts_ns(ts: int | str | None, now_ns: int) -> int:
    if ts is None:
        return now_ns
    if isinstance(ts, int):
        if not 0 <= ts < 2**53:
            raise RejectedMessage("timestamp", f"ts out of range: {ts}")
        return ts * 1_000_000
    try:
        parsed = datetime.fromisoformat(ts)
    except ValueError as exc:
        raise RejectedMessage("timestamp", f"ts is not RFC 3339: {ts[:40]!r}") from exc
    if parsed.tzinfo is None:
        raise RejectedMessage("timestamp", f"ts has no timezone: {ts[:40]!r}")
    return int(parsed.timestamp() * 1_000_000) * 1000


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
        for name, raw in pairs:
            if not _valid_name(name):
                raise RejectedMessage("malformed", f"bad point name {name[:40]!r}")
            value, quality = _value(raw, q)
            out.append(JsonSample(name, ts, value, quality, unit))
        if len(out) > MAX_SAMPLES_PER_MESSAGE:
            raise RejectedMessage("oversized", f"more than {MAX_SAMPLES_PER_MESSAGE} samples")
    return out
