"""Sparkplug B 3.0 codec, sans-IO: topics, payloads, datatype conversion, edge-node encoders.

Decoding is for the host (:mod:`millnet.protocols.sparkplug_host` drives it); the encoders
exist for the simulator, the benchmark and the tests, and for the host's own NCMD and STATE
messages. Nothing here does I/O.

Value conventions (what a host turns a metric into):

* Int8/16/32/64 travel as two's complement in ``int_value`` (uint32) or ``long_value``
  (uint64). Only the low 8/16/32/64 bits are significant, so both sign-extended senders
  (Tahu Java writes Int8 -1 as 0xFFFFFFFF) and width-exact ones (0xFF) decode to -1.
* Boolean becomes 0.0/1.0, DateTime its milliseconds since the epoch as a float.
* String, Text and UUID are text values.
* DataSet, Bytes, File, Template, PropertySet(List) and the array types are not stored:
  :class:`RejectedMessage` with reason ``unsupported_type``.
* A value field that is not the one the datatype prescribes (``string_value`` on a Double)
  raises reason ``datatype``; ``is_null`` yields ``None``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from typing import TypeAlias

from google.protobuf.message import DecodeError

from millnet.errors import RejectedMessage
from millnet.model import DataType, PointSpec, Quality
from millnet.model.float32 import float32_decimal
from millnet.protocols import sparkplug_b_pb2 as pb

NAMESPACE = "spBv1.0"
REBIRTH_METRIC = "Node Control/Rebirth"
BDSEQ_METRIC = "bdSeq"

Scalar: TypeAlias = float | int | bool | str


class SpDataType(IntEnum):
    """Sparkplug datatype codes (the ``datatype`` field of a metric)."""

    INT8 = 1
    INT16 = 2
    INT32 = 3
    INT64 = 4
    UINT8 = 5
    UINT16 = 6
    UINT32 = 7
    UINT64 = 8
    FLOAT = 9
    DOUBLE = 10
    BOOLEAN = 11
    STRING = 12
    DATETIME = 13
    TEXT = 14
    UUID = 15
    DATASET = 16
    BYTES = 17
    FILE = 18
    TEMPLATE = 19
    PROPERTYSET = 20
    PROPERTYSETLIST = 21
    # 22..34 are the packed array types; none of them is stored.


#: The value field each storable datatype must use; anything else is ``unsupported_type``.
VALUE_FIELD: dict[int, str] = {
    1: "int_value", 2: "int_value", 3: "int_value", 4: "long_value",
    5: "int_value", 6: "int_value", 7: "int_value", 8: "long_value",
    9: "float_value", 10: "double_value", 11: "boolean_value", 12: "string_value",
    13: "long_value", 14: "string_value", 15: "string_value",
}
#: Bit width of the signed integer datatypes.
SIGNED_BITS: dict[int, int] = {1: 8, 2: 16, 3: 32, 4: 64}
TEXT_TYPES = frozenset((12, 14, 15))
MODEL_TYPE: dict[int, DataType] = {code: DataType[SpDataType(code).name] for code in range(1, 16)}

# The codes of the 'Quality' property (Sparkplug 3.0, payloads, 'Quality Codes').
_QUALITY_CODE: dict[float, Quality] = {0: Quality.BAD, 192: Quality.GOOD, 500: Quality.STALE}


class MessageType(StrEnum):
    NBIRTH = "NBIRTH"
    NDEATH = "NDEATH"
    NDATA = "NDATA"
    NCMD = "NCMD"
    DBIRTH = "DBIRTH"
    DDEATH = "DDEATH"
    DDATA = "DDATA"
    DCMD = "DCMD"


# Topic levels per message type: N* messages name an edge node, D* a device under it.
_LEVELS = {str(t): 4 if t.startswith("N") else 5 for t in MessageType}


@dataclass(frozen=True, slots=True)
class Topic:
    """An edge-node or device topic; ``device`` is None for the N* message types."""

    kind: MessageType
    group: str
    edge: str
    device: str | None = None


@dataclass(frozen=True, slots=True)
class StateTopic:
    """``spBv1.0/STATE/{host_id}``: a host application's online state."""

    host_id: str


def _valid_id(part: str) -> bool:
    return bool(part) and "+" not in part and "#" not in part


def parse_topic(topic: str) -> Topic | StateTopic:
    """Split a Sparkplug topic; anything else raises ``RejectedMessage('topic', ...)``."""
    parts = topic.split("/")
    if parts[0] == NAMESPACE and all(_valid_id(p) for p in parts[1:]):
        n = len(parts)
        if n == 3 and parts[1] == "STATE":
            return StateTopic(parts[2])
        if n in (4, 5) and _LEVELS.get(parts[2]) == n:
            return Topic(MessageType(parts[2]), parts[1], parts[3], parts[4] if n == 5 else None)
    raise RejectedMessage("topic", f"not a Sparkplug B topic: {topic[:200]!r}")


def node_topic(group: str, kind: MessageType, edge: str) -> str:
    return f"{NAMESPACE}/{group}/{kind}/{edge}"


def device_topic(group: str, kind: MessageType, edge: str, device: str) -> str:
    return f"{NAMESPACE}/{group}/{kind}/{edge}/{device}"


def state_topic(host_id: str) -> str:
    return f"{NAMESPACE}/STATE/{host_id}"


def state_payload(online: bool, timestamp_ms: int) -> bytes:
    """The 3.0 STATE payload; publish retained, QoS 1 (and the offline one as the will)."""
    return json.dumps({"online": online, "timestamp": timestamp_ms},
                      separators=(",", ":")).encode()


def parse_state_payload(data: bytes) -> tuple[bool, int]:
    """``(online, timestamp_ms)`` of a STATE payload; ``RejectedMessage('malformed')``."""
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise RejectedMessage("malformed", "STATE payload is not JSON") from exc
    if not isinstance(doc, dict):
        raise RejectedMessage("malformed", "STATE payload is not a JSON object")
    online, ts = doc.get("online"), doc.get("timestamp")
    if not isinstance(online, bool) or not isinstance(ts, int) or isinstance(ts, bool):
        raise RejectedMessage("malformed", "STATE payload needs online: bool, timestamp: int")
    return online, ts


# ---------------------------------------------------------------------------- decoding


def decode_payload(data: bytes) -> pb.Payload:
    """Parse a protobuf payload; size limits are the caller's business."""
    try:
        return pb.Payload.FromString(data)
    except (DecodeError, RecursionError) as exc:
        raise RejectedMessage("malformed", "payload is not a Sparkplug B protobuf") from exc


def to_signed(value: int, bits: int) -> int:
    """Two's complement of the low ``bits`` bits of ``value``."""
    sign = 1 << (bits - 1)
    return ((value & ((1 << bits) - 1)) ^ sign) - sign


def metric_value(metric: pb.Payload.Metric, datatype: int) -> float | str | None:
    """The stored value of ``metric`` read as ``datatype``: float, str, or None if is_null."""
    expected = VALUE_FIELD.get(datatype)
    if expected is None:
        raise RejectedMessage("unsupported_type", f"datatype {datatype}")
    if metric.is_null:
        return None
    present = metric.WhichOneof("value")
    if present != expected:
        raise RejectedMessage("datatype", f"datatype {datatype} carried in {present}")
    value = getattr(metric, expected)
    if datatype in TEXT_TYPES:
        if not isinstance(value, str):  # upb hands back bytes for invalid UTF-8
            raise RejectedMessage("malformed", "string value is not UTF-8")
        return value
    bits = SIGNED_BITS.get(datatype)
    if bits:
        return float(to_signed(value, bits))
    return float32_decimal(value) if expected == "float_value" else float(value)


def property_value(value: pb.Payload.PropertyValue) -> Scalar | None:
    """A scalar property value (nested property sets are not interpreted: None)."""
    if value.is_null:
        return None
    present = value.WhichOneof("value")
    if present is None or present in ("propertyset_value", "propertysets_value",
                                      "extension_value"):
        return None
    raw: Scalar = getattr(value, present)
    bits = SIGNED_BITS.get(value.type)
    if bits and isinstance(raw, int) and not isinstance(raw, bool):
        return to_signed(raw, bits)
    return raw


def properties_of(metric: pb.Payload.Metric) -> dict[str, Scalar | None]:
    """The metric's property set as a dict (keys that are not valid UTF-8 are dropped)."""
    if not metric.HasField("properties"):
        return {}
    props = metric.properties
    return {k: property_value(v) for k, v in zip(props.keys, props.values, strict=False)
            if isinstance(k, str)}


def quality_of(props: Mapping[str, Scalar | None]) -> Quality:
    """Quality from the 'Quality' property; a code Sparkplug does not define is UNCERTAIN."""
    code = props.get("Quality", props.get("quality"))
    if code is None or isinstance(code, (str, bool)):
        return Quality.GOOD
    return _QUALITY_CODE.get(code, Quality.UNCERTAIN)


# Property keys seen in the wild: Ignition/Tahu write engUnit, engLow, engHigh, Documentation
# and Tooltip; others capitalise or spell them out. Matched case-insensitively, first wins.
_UNIT_KEYS = ("engunit", "engunits", "engineeringunits", "unit", "units")
_LOW_KEYS = ("englow", "engineeringlow")
_HIGH_KEYS = ("enghigh", "engineeringhigh")
_DESCRIPTION_KEYS = ("description", "documentation", "tooltip")


def _pick(props: Mapping[str, Scalar | None], keys: tuple[str, ...]) -> Scalar | None:
    for key in keys:
        if props.get(key) is not None:
            return props[key]
    return None


def _as_float(value: Scalar | None) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        result = float(value)
    except ValueError:
        return None
    return result if math.isfinite(result) else None


def point_spec(name: str, datatype: int, props: Mapping[str, Scalar | None]) -> PointSpec:
    """What a BIRTH metric says about its point; ``datatype`` must be in ``MODEL_TYPE``."""
    folded = {k.lower(): v for k, v in props.items()}
    unit, description = _pick(folded, _UNIT_KEYS), _pick(folded, _DESCRIPTION_KEYS)
    return PointSpec(
        name=name,
        datatype=MODEL_TYPE[datatype],
        unit=unit if isinstance(unit, str) and unit else None,
        description=description if isinstance(description, str) and description else None,
        eng_low=_as_float(_pick(folded, _LOW_KEYS)),
        eng_high=_as_float(_pick(folded, _HIGH_KEYS)),
    )


# ---------------------------------------------------------------------------- encoding


@dataclass(frozen=True, slots=True)
class BirthMetric:
    """A metric as an edge node announces it in NBIRTH/DBIRTH."""

    name: str
    alias: int | None
    datatype: int
    value: Scalar | None = None
    properties: Mapping[str, Scalar] = field(default_factory=dict)
    timestamp_ms: int | None = None
    is_historical: bool = False


def set_value(metric: pb.Payload.Metric, datatype: int, value: Scalar | None) -> None:
    """Write ``value`` into the field ``datatype`` prescribes (signed ints as two's complement)."""
    if value is None:
        metric.is_null = True
        return
    fld = VALUE_FIELD.get(datatype)
    if fld is None:
        raise ValueError(f"cannot encode datatype {datatype}")
    if fld in ("int_value", "long_value"):
        value = int(value) & (0xFFFFFFFF if fld == "int_value" else 0xFFFFFFFFFFFFFFFF)
    setattr(metric, fld, value)


def _set_property(pv: pb.Payload.PropertyValue, value: Scalar) -> None:
    if isinstance(value, bool):
        pv.type, pv.boolean_value = SpDataType.BOOLEAN, value
    elif isinstance(value, int):
        pv.type, pv.long_value = SpDataType.INT64, value & 0xFFFFFFFFFFFFFFFF
    elif isinstance(value, float):
        pv.type, pv.double_value = SpDataType.DOUBLE, value
    else:
        pv.type, pv.string_value = SpDataType.STRING, value


def _add_birth_metric(payload: pb.Payload, bm: BirthMetric, timestamp_ms: int) -> None:
    m = payload.metrics.add(name=bm.name, datatype=bm.datatype,
                            timestamp=bm.timestamp_ms or timestamp_ms)
    if bm.alias is not None:
        m.alias = bm.alias
    if bm.is_historical:
        m.is_historical = True
    set_value(m, bm.datatype, bm.value)
    for key, value in bm.properties.items():
        m.properties.keys.append(key)
        _set_property(m.properties.values.add(), value)


def encode_nbirth(metrics: Iterable[BirthMetric], *, bd_seq: int, timestamp_ms: int,
                  seq: int = 0) -> bytes:
    """NBIRTH with the ``bdSeq`` and ``Node Control/Rebirth`` metrics the spec requires first."""
    p = pb.Payload(timestamp=timestamp_ms, seq=seq)
    p.metrics.add(name=BDSEQ_METRIC, datatype=SpDataType.INT64, timestamp=timestamp_ms,
                  long_value=bd_seq & 0xFFFFFFFFFFFFFFFF)
    p.metrics.add(name=REBIRTH_METRIC, datatype=SpDataType.BOOLEAN, timestamp=timestamp_ms,
                  boolean_value=False)
    for bm in metrics:
        _add_birth_metric(p, bm, timestamp_ms)
    return p.SerializeToString()


def encode_dbirth(metrics: Iterable[BirthMetric], *, seq: int, timestamp_ms: int) -> bytes:
    p = pb.Payload(timestamp=timestamp_ms, seq=seq)
    for bm in metrics:
        _add_birth_metric(p, bm, timestamp_ms)
    return p.SerializeToString()


def encode_data(values: Iterable[tuple[int, int, Scalar | None]], *, seq: int,
                timestamp_ms: int, historical: bool = False) -> bytes:
    """NDATA/DDATA from ``(alias, datatype, value)`` triples; see :class:`DataEncoder`."""
    p = pb.Payload(timestamp=timestamp_ms, seq=seq)
    for alias, datatype, value in values:
        m = p.metrics.add(alias=alias, timestamp=timestamp_ms, datatype=datatype)
        if historical:
            m.is_historical = True
        set_value(m, datatype, value)
    return p.SerializeToString()


def encode_ndeath(bd_seq: int, timestamp_ms: int | None = None) -> bytes:
    """NDEATH (the edge node's MQTT will): bdSeq, no seq."""
    p = pb.Payload()
    if timestamp_ms is not None:
        p.timestamp = timestamp_ms
    p.metrics.add(name=BDSEQ_METRIC, datatype=SpDataType.INT64,
                  long_value=bd_seq & 0xFFFFFFFFFFFFFFFF)
    return p.SerializeToString()


def encode_ddeath(*, seq: int, timestamp_ms: int) -> bytes:
    return pb.Payload(timestamp=timestamp_ms, seq=seq).SerializeToString()


def rebirth_payload(timestamp_ms: int) -> bytes:
    """The NCMD a host sends to make an edge node re-publish its births (no seq)."""
    p = pb.Payload(timestamp=timestamp_ms)
    p.metrics.add(name=REBIRTH_METRIC, datatype=SpDataType.BOOLEAN, timestamp=timestamp_ms,
                  boolean_value=True)
    return p.SerializeToString()


class DataEncoder:
    """Encodes NDATA/DDATA for a fixed list of ``(alias, datatype)`` metrics, fast.

    Building protobuf objects per message costs about 0.6 us a metric; this keeps one
    payload and only rewrites timestamps and values, which is about four times faster.
    Not thread-safe.
    """

    def __init__(self, metrics: Sequence[tuple[int, int]]) -> None:
        self._payload = pb.Payload(timestamp=0, seq=0)
        self._slots: list[tuple[pb.Payload.Metric, str, int]] = []
        for alias, datatype in metrics:
            fld = VALUE_FIELD.get(datatype)
            if fld is None:
                raise ValueError(f"cannot encode datatype {datatype}")
            m = self._payload.metrics.add(alias=alias, timestamp=0, datatype=datatype)
            mask = {"int_value": 0xFFFFFFFF, "long_value": 0xFFFFFFFFFFFFFFFF}.get(fld, 0)
            self._slots.append((m, fld, mask))

    def __len__(self) -> int:
        return len(self._slots)

    def encode(self, values: Sequence[Scalar], *, seq: int, timestamp_ms: int) -> bytes:
        """One value per metric, in constructor order (no nulls; use :func:`encode_data`)."""
        if len(values) != len(self._slots):
            raise ValueError(f"expected {len(self._slots)} values, got {len(values)}")
        p = self._payload
        p.timestamp, p.seq = timestamp_ms, seq
        for (m, fld, mask), value in zip(self._slots, values, strict=True):
            m.timestamp = timestamp_ms
            setattr(m, fld, int(value) & mask if mask else value)
        return p.SerializeToString()
