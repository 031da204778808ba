"""Sparkplug B codec: topics, STATE, datatype conversion and encoder/decoder round trips."""

from __future__ import annotations

import math
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from millnet.errors import RejectedMessage
from millnet.model import DataType, Quality
from millnet.model.float32 import float32_decimal
from millnet.protocols import sparkplug as sp
from millnet.protocols import sparkplug_b_pb2 as pb
from millnet.protocols.sparkplug import BirthMetric, MessageType, SpDataType, StateTopic, Topic

# ---------------------------------------------------------------------------- topics


@pytest.mark.parametrize(
    ("topic", "expected"),
    [
        ("spBv1.0/G1/NBIRTH/E1", Topic(MessageType.NBIRTH, "G1", "E1")),
        ("spBv1.0/G1/NDATA/E1", Topic(MessageType.NDATA, "G1", "E1")),
        ("spBv1.0/G1/NDEATH/E1", Topic(MessageType.NDEATH, "G1", "E1")),
        ("spBv1.0/G1/NCMD/E1", Topic(MessageType.NCMD, "G1", "E1")),
        ("spBv1.0/Plant A/DBIRTH/Edge 1/Press 3",
         Topic(MessageType.DBIRTH, "Plant A", "Edge 1", "Press 3")),
        ("spBv1.0/G/DDATA/E/D", Topic(MessageType.DDATA, "G", "E", "D")),
        ("spBv1.0/G/DDEATH/E/D", Topic(MessageType.DDEATH, "G", "E", "D")),
        ("spBv1.0/G/DCMD/E/D", Topic(MessageType.DCMD, "G", "E", "D")),
        ("spBv1.0/STATE/host-1", StateTopic("host-1")),
    ],
)
def test_parse_topic(topic: str, expected: Topic | StateTopic) -> None:
    assert sp.parse_topic(topic) == expected


@pytest.mark.parametrize(
    "topic",
    [
        "", "spBv1.0", "spBv1.0/G", "spBv1.0/G/NDATA", "spAv1.0/G/NDATA/E",
        "spBv1.0/G/NDATA/E/D",  # node message with a device
        "spBv1.0/G/DDATA/E",  # device message without one
        "spBv1.0/G/XDATA/E", "spBv1.0/G/ndata/E", "spBv1.0//NDATA/E", "spBv1.0/G/NDATA/",
        "spBv1.0/G/NDATA/E+", "spBv1.0/#/NDATA/E", "spBv1.0/G/DDATA/E/D/x",
        "spBv1.0/STATE", "spBv1.0/STATE/", "spBv1.0/STATE/a/b", "STATE/host",
        "spBv1.0/G/STATE/E",
    ],
)
def test_bad_topics_are_rejected(topic: str) -> None:
    with pytest.raises(RejectedMessage) as info:
        sp.parse_topic(topic)
    assert info.value.reason == "topic"


def test_topic_builders_round_trip() -> None:
    t = sp.device_topic("G", MessageType.DDATA, "E", "D")
    assert sp.parse_topic(t) == Topic(MessageType.DDATA, "G", "E", "D")
    assert sp.parse_topic(sp.node_topic("G", MessageType.NCMD, "E")) == Topic(
        MessageType.NCMD, "G", "E")
    assert sp.parse_topic(sp.state_topic("h")) == StateTopic("h")


def test_state_payload() -> None:
    data = sp.state_payload(True, 1_700_000_000_123)
    assert data == b'{"online":true,"timestamp":1700000000123}'
    assert sp.parse_state_payload(data) == (True, 1_700_000_000_123)
    assert sp.parse_state_payload(sp.state_payload(False, 5)) == (False, 5)
    for bad in (b"ONLINE", b"[]", b'{"online":1,"timestamp":1}', b'{"online":true}',
                b"\xff", b'{"online":true,"timestamp":true}'):
        with pytest.raises(RejectedMessage):
            sp.parse_state_payload(bad)


# ---------------------------------------------------------------------------- values


def test_signed_conversion_accepts_both_encodings() -> None:
    # Tahu Java sign-extends Int8 -1 to 32 bits; width-exact senders write 0xFF.
    assert sp.to_signed(0xFFFFFFFF, 8) == -1
    assert sp.to_signed(0xFF, 8) == -1
    assert sp.to_signed(0x7F, 8) == 127
    assert sp.to_signed(0x8000, 16) == -32768
    assert sp.to_signed(0xFFFFFFFF, 32) == -1
    assert sp.to_signed(2**64 - 1, 64) == -1
    assert sp.to_signed(2**63, 64) == -(2**63)


def _metric(datatype: int, **fields: object) -> pb.Payload.Metric:
    return pb.Payload.Metric(datatype=datatype, **fields)  # type: ignore[arg-type]


def test_metric_value_conversions() -> None:
    assert sp.metric_value(_metric(1, int_value=0xFFFFFFFE), 1) == -2.0
    assert sp.metric_value(_metric(4, long_value=2**64 - 5), 4) == -5.0
    assert sp.metric_value(_metric(8, long_value=2**64 - 5), 8) == float(2**64 - 5)
    assert sp.metric_value(_metric(11, boolean_value=True), 11) == 1.0
    assert sp.metric_value(_metric(11, boolean_value=False), 11) == 0.0
    assert sp.metric_value(_metric(13, long_value=1_700_000_000_000), 13) == 1.7e12
    assert sp.metric_value(_metric(12, string_value="RUN"), 12) == "RUN"
    assert sp.metric_value(_metric(10, is_null=True), 10) is None


@pytest.mark.parametrize(
    ("datatype", "fields", "reason"),
    [
        (10, {"string_value": "x"}, "datatype"),
        (3, {"long_value": 5}, "datatype"),
        (12, {"int_value": 5}, "datatype"),
        (10, {}, "datatype"),
        (17, {"bytes_value": b"x"}, "unsupported_type"),
        (16, {}, "unsupported_type"),
        (19, {}, "unsupported_type"),
        (27, {"bytes_value": b"\x01\x02"}, "unsupported_type"),
        (0, {"double_value": 1.0}, "unsupported_type"),
    ],
)
def test_metric_value_rejections(datatype: int, fields: dict[str, object], reason: str) -> None:
    with pytest.raises(RejectedMessage) as info:
        sp.metric_value(_metric(datatype, **fields), datatype)
    assert info.value.reason == reason


def test_point_spec_reads_ignition_and_tahu_properties() -> None:
    spec = sp.point_spec("Temp", 10, {"engUnit": "degC", "engLow": 0, "engHigh": 150.5,
                                      "Documentation": "spindle temperature"})
    assert (spec.name, spec.datatype, spec.unit) == ("Temp", DataType.DOUBLE, "degC")
    assert (spec.eng_low, spec.eng_high) == (0.0, 150.5)
    assert spec.description == "spindle temperature"
    spec = sp.point_spec("X", 3, {"EngUnit": "rpm", "Tooltip": "t", "description": "d"})
    assert (spec.datatype, spec.unit, spec.description) == (DataType.INT32, "rpm", "d")
    assert sp.point_spec("Z", 10, {"EngineeringLow": "n/a", "unit": ""}).eng_low is None
    spec = sp.point_spec("Y", 15, {"engLow": "nan", "engHigh": "12"})
    assert (spec.datatype, spec.eng_low, spec.eng_high, spec.unit) == (
        DataType.UUID, None, 12.0, None)


def test_quality_property() -> None:
    assert sp.quality_of({}) is Quality.GOOD
    assert sp.quality_of({"Quality": 192}) is Quality.GOOD
    assert sp.quality_of({"Quality": 0}) is Quality.BAD
    assert sp.quality_of({"Quality": 500}) is Quality.STALE
    assert sp.quality_of({"Quality": 7}) is Quality.UNCERTAIN
    assert sp.quality_of({"Quality": math.inf}) is Quality.UNCERTAIN


def test_decode_malformed() -> None:
    with pytest.raises(RejectedMessage) as info:
        sp.decode_payload(b"\x12\x05\x01")
    assert info.value.reason == "malformed"


# ---------------------------------------------------------------------------- round trips

_INT_RANGES = {1: (-(2**7), 2**7 - 1), 2: (-(2**15), 2**15 - 1), 3: (-(2**31), 2**31 - 1),
               4: (-(2**63), 2**63 - 1), 5: (0, 2**8 - 1), 6: (0, 2**16 - 1),
               7: (0, 2**32 - 1), 8: (0, 2**64 - 1), 13: (0, 2**53)}


@st.composite
def typed_values(draw: st.DrawFn) -> tuple[int, float | int | bool | str]:
    datatype = draw(st.sampled_from(sorted(sp.VALUE_FIELD)))
    if datatype in _INT_RANGES:
        lo, hi = _INT_RANGES[datatype]
        return datatype, draw(st.integers(lo, hi))
    if datatype == 9:
        return datatype, draw(st.floats(width=32, allow_nan=False))
    if datatype == 10:
        return datatype, draw(st.floats(allow_nan=False))
    if datatype == 11:
        return datatype, draw(st.booleans())
    return datatype, draw(st.text())


def _expected(datatype: int, value: float | int | bool | str) -> float | str:
    if datatype == 9:  # float32 is stored as its shortest decimal (same float32)
        return float32_decimal(float(value))
    return value if isinstance(value, str) else float(value)


@settings(max_examples=300, deadline=None)
@given(st.lists(typed_values(), min_size=1, max_size=20), st.integers(0, 255))
def test_encode_data_round_trip(values: list[tuple[int, float | int | bool | str]],
                                seq: int) -> None:
    data = sp.encode_data([(i + 1, dt, v) for i, (dt, v) in enumerate(values)], seq=seq,
                          timestamp_ms=1_700_000_000_000)
    p = sp.decode_payload(data)
    assert p.seq == seq
    for m, (datatype, value) in zip(p.metrics, values, strict=True):
        assert sp.metric_value(m, datatype) == _expected(datatype, value)


@settings(max_examples=200, deadline=None)
@given(st.lists(typed_values(), min_size=1, max_size=20))
def test_data_encoder_matches_generic_encoder(
        values: list[tuple[int, float | int | bool | str]]) -> None:
    layout = [(i + 1, dt) for i, (dt, _) in enumerate(values)]
    enc = sp.DataEncoder(layout)
    fast = enc.encode([v for _, v in values], seq=7, timestamp_ms=123)
    generic = sp.encode_data([(a, dt, v) for (a, dt), (_, v) in zip(layout, values,
                                                                    strict=True)],
                             seq=7, timestamp_ms=123)
    assert sp.decode_payload(fast) == sp.decode_payload(generic)


@settings(max_examples=100, deadline=None)
@given(st.lists(typed_values(), min_size=1, max_size=10), st.integers(0, 255))
def test_nbirth_round_trip(values: list[tuple[int, float | int | bool | str]],
                           bd_seq: int) -> None:
    metrics = [BirthMetric(f"m{i}", i + 10, dt, v, {"engUnit": "u", "engHigh": 2.5})
               for i, (dt, v) in enumerate(values)]
    p = sp.decode_payload(sp.encode_nbirth(metrics, bd_seq=bd_seq, timestamp_ms=99))
    assert [m.name for m in p.metrics[:2]] == [sp.BDSEQ_METRIC, sp.REBIRTH_METRIC]
    assert p.metrics[0].long_value == bd_seq and p.seq == 0
    for m, (datatype, value) in zip(p.metrics[2:], values, strict=True):
        assert sp.metric_value(m, datatype) == _expected(datatype, value)
        assert sp.properties_of(m) == {"engUnit": "u", "engHigh": 2.5}


def test_rebirth_and_death_payloads() -> None:
    p = sp.decode_payload(sp.rebirth_payload(42))
    assert not p.HasField("seq") and p.timestamp == 42
    (m,) = p.metrics
    assert (m.name, m.datatype, m.boolean_value) == (sp.REBIRTH_METRIC, SpDataType.BOOLEAN,
                                                     True)
    death = sp.decode_payload(sp.encode_ndeath(3))
    assert not death.HasField("seq") and death.metrics[0].long_value == 3
    assert sp.decode_payload(sp.encode_ddeath(seq=9, timestamp_ms=1)).seq == 9


def test_null_and_property_types_encode() -> None:
    bm = BirthMetric("n", 1, 10, None, {"b": True, "i": -3, "s": "x"})
    p = sp.decode_payload(sp.encode_dbirth([bm], seq=1, timestamp_ms=5))
    m = p.metrics[0]
    assert m.is_null and sp.metric_value(m, 10) is None
    assert sp.properties_of(m) == {"b": True, "i": -3, "s": "x"}
    with pytest.raises(ValueError, match="datatype"):
        sp.encode_data([(1, 17, 1)], seq=0, timestamp_ms=0)
    with pytest.raises(ValueError, match="expected 1"):
        sp.DataEncoder([(1, 10)]).encode([], seq=0, timestamp_ms=0)


def test_float_is_float32_read_as_its_decimal() -> None:
    data = sp.encode_data([(1, 9, 0.1)], seq=0, timestamp_ms=0)
    value = sp.metric_value(sp.decode_payload(data).metrics[0], 9)
    assert value == 0.1  # not 0.10000000149011612, the float32 widened
    assert struct.pack("<f", value) == struct.pack("<f", 0.1)


def test_invalid_utf8_and_nested_properties() -> None:
    # upb hands back bytes for a proto2 string that is not UTF-8: a text value must refuse it.
    inner = b"\x20\x0c" + b"\x7a\x02\xff\xfe"  # datatype=12, string_value=b"\xff\xfe"
    m = sp.decode_payload(b"\x12" + bytes([len(inner)]) + inner).metrics[0]
    with pytest.raises(RejectedMessage) as info:
        sp.metric_value(m, 12)
    assert info.value.reason == "malformed"
    metric = pb.Payload.Metric()
    for key, value in (("null", pb.Payload.PropertyValue(type=12, is_null=True)),
                       ("nested", pb.Payload.PropertyValue(type=20, propertyset_value={})),
                       ("empty", pb.Payload.PropertyValue(type=12))):
        metric.properties.keys.append(key)
        metric.properties.values.append(value)
    assert sp.properties_of(metric) == {"null": None, "nested": None, "empty": None}


def test_encoder_edges() -> None:
    bm = BirthMetric("h", 1, 10, 1.0, timestamp_ms=7, is_historical=True)
    m = sp.decode_payload(sp.encode_dbirth([bm], seq=1, timestamp_ms=5)).metrics[0]
    assert (m.is_historical, m.timestamp) == (True, 7)
    assert sp.decode_payload(sp.encode_ndeath(1, timestamp_ms=9)).timestamp == 9
    with pytest.raises(ValueError, match="datatype"):
        sp.DataEncoder([(1, 16)])
    assert len(sp.DataEncoder([(1, 10), (2, 3)])) == 2
