"""Primary Host Application session rules, driven through ``SparkplugHost.receive``."""

from __future__ import annotations

import math
import struct

import pytest

from millnet.errors import InvalidInput, NotFound
from millnet.model import DataType, Quality, SampleBuffer, TextSample
from millnet.protocols import sparkplug as sp
from millnet.protocols import sparkplug_b_pb2 as pb
from millnet.protocols.sparkplug import BirthMetric
from millnet.protocols.sparkplug_host import (
    BirthEvent,
    DeviceDeathEvent,
    Event,
    HostState,
    NodeDeathEvent,
    RebirthRequest,
    Rejected,
    SparkplugHost,
)

G, E, D = "Plant", "Edge1", "Press"
NT = f"spBv1.0/{G}/%s/{E}"
DT = f"spBv1.0/{G}/%s/{E}/{D}"
T0 = 1_700_000_000_000  # ms
NOW = 1_800_000_000_000_000_000  # ns, distinct from T0 so fallbacks show
SEC = 1_000_000_000

NODE_METRICS = [BirthMetric("Supply Voltage", 1, sp.SpDataType.FLOAT, 12.5,
                            {"engUnit": "V", "engLow": 0, "engHigh": 30})]
DEVICE_METRICS = [
    BirthMetric("Temp", 10, sp.SpDataType.DOUBLE, 20.5, {"engUnit": "degC"}),
    BirthMetric("Count", 11, sp.SpDataType.INT32, -3),
    BirthMetric("Small", 12, sp.SpDataType.INT8, -1),
    BirthMetric("Running", 13, sp.SpDataType.BOOLEAN, True),
    BirthMetric("State", 14, sp.SpDataType.STRING, "RUN"),
    BirthMetric("Big", 15, sp.SpDataType.UINT64, 2**64 - 1),
    BirthMetric("Blob", 16, sp.SpDataType.BYTES, None),
]
IDS = {"Supply Voltage": 100, "Temp": 1, "Count": 2, "Small": 3, "Running": 4, "State": 5,
       "Big": 6}


def rows(buf: SampleBuffer) -> list[tuple[int, int, float, int]]:
    return list(zip(buf.series_id, buf.ts_ns, buf.value, buf.quality, strict=True))


def reasons(events: list[Event]) -> dict[str, int]:
    return {e.reason: e.count for e in events if isinstance(e, Rejected)}


class Session:
    """A host with one edge node and one device, born and bound; tracks the edge seq."""

    def __init__(self, *, bind: bool = True, interval_s: float = 5.0) -> None:
        self.host = SparkplugHost("millnet", rebirth_interval_s=interval_s)
        self.out, self.hist = SampleBuffer(), SampleBuffer()
        self.seq, self.bd_seq = 0, 0
        self.events = self.birth(bind=bind)

    def birth(self, *, bind: bool = True, bd_seq: int | None = None) -> list[Event]:
        self.bd_seq = self.bd_seq if bd_seq is None else bd_seq
        self.seq = 0
        nb = sp.encode_nbirth(NODE_METRICS, bd_seq=self.bd_seq, timestamp_ms=T0)
        events = self.rx(NT % "NBIRTH", nb)
        if bind:
            self.host.bind(G, E, None, {"Supply Voltage": 100}, self.out, historical=self.hist)
        db = sp.encode_dbirth(DEVICE_METRICS, seq=self.next_seq(), timestamp_ms=T0)
        events += self.rx(DT % "DBIRTH", db)
        if bind:
            ids = {k: v for k, v in IDS.items() if k != "Supply Voltage"}
            self.host.bind(G, E, D, ids, self.out, historical=self.hist)
        return events

    def next_seq(self) -> int:
        self.seq = (self.seq + 1) & 0xFF
        return self.seq

    def rx(self, topic: str, payload: bytes, now: int = NOW) -> list[Event]:
        return self.host.receive(topic, payload, now, self.out, self.hist)

    def ddata(self, values: list[tuple[int, int, sp.Scalar | None]], now: int = NOW,
              seq: int | None = None, historical: bool = False) -> list[Event]:
        payload = sp.encode_data(values, seq=self.next_seq() if seq is None else seq,
                                 timestamp_ms=T0 + 1, historical=historical)
        return self.rx(DT % "DDATA", payload, now)


def test_birth_events_carry_specs_and_values() -> None:
    s = Session(bind=False)
    births = [e for e in s.events if isinstance(e, BirthEvent)]
    assert [(b.group, b.edge, b.device, b.bd_seq) for b in births] == [
        (G, E, None, 0), (G, E, D, 0)]
    node_specs = {p.name: p for p in births[0].specs}
    assert set(node_specs) == {"bdSeq", "Node Control/Rebirth", "Supply Voltage"}
    volt = node_specs["Supply Voltage"]
    assert (volt.datatype, volt.unit, volt.eng_low, volt.eng_high) == (DataType.FLOAT, "V",
                                                                       0.0, 30.0)
    dev_specs = {p.name: p.datatype for p in births[1].specs}
    assert "Blob" not in dev_specs and dev_specs["State"] is DataType.STRING
    assert reasons(s.events) == {"unsupported_type": 1}
    values = {v.name: v.value for v in births[1].values}
    assert values == {"Temp": 20.5, "Count": -3.0, "Small": -1.0, "Running": 1.0,
                      "State": "RUN", "Big": float(2**64 - 1)}
    assert len(s.out) == 0  # nothing is emitted before bind


def test_bind_emits_birth_values_then_data_by_alias_lands_in_buffer() -> None:
    s = Session()
    ts0 = T0 * 1_000_000
    assert sorted(rows(s.out)) == sorted([
        (100, ts0, 12.5, 0), (1, ts0, 20.5, 0), (2, ts0, -3.0, 0), (3, ts0, -1.0, 0),
        (4, ts0, 1.0, 0), (6, ts0, float(2**64 - 1), 0)])
    assert s.out.text == [TextSample(5, ts0, "RUN", Quality.GOOD)]
    s.out = SampleBuffer()
    events = s.ddata([(10, 10, 21.25), (11, 3, -70000), (12, 1, -128), (13, 11, False),
                      (14, 12, "STOP"), (15, 8, 7)])
    assert events == []
    ts1 = (T0 + 1) * 1_000_000
    assert sorted(rows(s.out)) == [(1, ts1, 21.25, 0), (2, ts1, -70000.0, 0),
                                   (3, ts1, -128.0, 0), (4, ts1, 0.0, 0), (6, ts1, 7.0, 0)]
    assert s.out.text == [TextSample(5, ts1, "STOP", Quality.GOOD)]
    ndata = sp.encode_data([(1, 9, 11.5)], seq=s.next_seq(), timestamp_ms=T0 + 2)
    assert s.rx(NT % "NDATA", ndata) == []
    assert rows(s.out)[-1] == (100, (T0 + 2) * 1_000_000, 11.5, 0)


def test_data_by_name_and_timestamp_fallbacks() -> None:
    s = Session()
    s.out = SampleBuffer()
    p = pb.Payload(seq=s.next_seq())  # no payload timestamp
    p.metrics.add(name="Temp", double_value=1.5)  # no metric timestamp either
    p.metrics.add(name="Count", int_value=5, timestamp=T0 + 9)
    p.metrics.add(name="State", string_value="IDLE", timestamp=T0)
    assert s.rx(DT % "DDATA", p.SerializeToString()) == []
    assert s.out.text == [TextSample(5, T0 * 1_000_000, "IDLE", Quality.GOOD)]
    assert sorted(rows(s.out)) == [(1, NOW // 1_000_000 * 1_000_000, 1.5, 0),
                                   (2, (T0 + 9) * 1_000_000, 5.0, 0)]


def test_seq_gap_requests_rebirth_and_ignores_data_until_nbirth() -> None:
    s = Session()
    s.out = SampleBuffer()
    events = s.ddata([(10, 10, 1.0)], seq=s.seq + 2)
    assert reasons(events) == {"seq_gap": 1}
    assert [e for e in events if isinstance(e, RebirthRequest)] == [
        RebirthRequest(G, E, "seq_gap")]
    assert RebirthRequest(G, E, "seq_gap").topic == f"spBv1.0/{G}/NCMD/{E}"
    # Rate-limited: the node stays ignored, no second request within the interval.
    for i in range(3):
        events = s.ddata([(10, 10, 2.0)], now=NOW + i * SEC)
        assert reasons(events) == {"awaiting_rebirth": 1}
        assert not any(isinstance(e, RebirthRequest) for e in events)
    events = s.ddata([(10, 10, 2.0)], now=NOW + 5 * SEC)
    assert any(isinstance(e, RebirthRequest) for e in events)
    assert len(s.out) == 0 and not s.host.is_online(G, E)
    s.birth(bd_seq=1)
    assert s.host.is_online(G, E, D)
    s.out = SampleBuffer()
    assert s.ddata([(10, 10, 3.0)]) == []
    assert rows(s.out) == [(1, (T0 + 1) * 1_000_000, 3.0, 0)]


def test_seq_wraps_and_missing_seq_is_a_gap() -> None:
    s = Session()
    for _ in range(300):
        assert s.ddata([(10, 10, 1.5)]) == []
    assert len(s.out.series_id) >= 300
    p = pb.Payload(timestamp=T0)
    p.metrics.add(alias=10, double_value=1.0)
    assert reasons(s.rx(DT % "DDATA", p.SerializeToString())) == {"seq_gap": 1}


def test_nbirth_seq_is_accepted_and_restarts_the_sequence() -> None:
    host, out = SparkplugHost("h"), SampleBuffer()
    nb = sp.encode_nbirth(NODE_METRICS, bd_seq=0, timestamp_ms=T0, seq=17)
    host.receive(NT % "NBIRTH", nb, NOW, out)
    host.bind(G, E, None, {"Supply Voltage": 1}, out)
    assert host.receive(NT % "NDATA", sp.encode_data([(1, 9, 1.0)], seq=18, timestamp_ms=T0),
                        NOW, out) == []


def test_unknown_alias_requests_rebirth_and_drops_the_whole_message() -> None:
    s = Session()
    s.out = SampleBuffer()
    events = s.ddata([(10, 10, 1.0), (14, 12, "X"), (1, 9, 2.0), (99, 10, 3.0)])
    assert reasons(events) == {"unknown_alias": 1}
    assert RebirthRequest(G, E, "unknown_alias") in events
    assert len(s.out) == 0  # rolled back, including the text sample


def test_data_before_birth_requests_rebirth_once_per_interval() -> None:
    host, out = SparkplugHost("h", rebirth_interval_s=10), SampleBuffer()
    ndata = sp.encode_data([(1, 10, 1.0)], seq=1, timestamp_ms=T0)
    first = host.receive(NT % "NDATA", ndata, NOW, out)
    assert reasons(first) == {"data_before_birth": 1}
    assert RebirthRequest(G, E, "data_before_birth") in first
    second = host.receive(DT % "DDATA", ndata, NOW + 9 * SEC, out)
    assert not any(isinstance(e, RebirthRequest) for e in second)
    third = host.receive(NT % "NDATA", ndata, NOW + 10 * SEC, out)
    assert any(isinstance(e, RebirthRequest) for e in third)
    assert len(out) == 0 and host.rejected["data_before_birth"] == 3


def test_ddata_for_device_without_dbirth_requests_rebirth() -> None:
    s = Session()
    payload = sp.encode_data([(10, 10, 1.0)], seq=s.next_seq(), timestamp_ms=T0)
    events = s.rx(f"spBv1.0/{G}/DDATA/{E}/Other", payload)
    assert reasons(events) == {"data_before_birth": 1}
    assert RebirthRequest(G, E, "data_before_birth") in events


def test_stale_ndeath_is_ignored_and_current_ndeath_gives_all_series() -> None:
    s = Session()
    events = s.rx(NT % "NDEATH", sp.encode_ndeath(s.bd_seq + 1))
    assert reasons(events) == {"stale_death": 1} and s.host.is_online(G, E)
    (death,) = s.rx(NT % "NDEATH", sp.encode_ndeath(s.bd_seq), now=NOW + 1)
    assert isinstance(death, NodeDeathEvent)
    assert (death.group, death.edge, death.ts_ns) == (G, E, NOW + 1)
    assert sorted(death.series_ids) == sorted(IDS.values())
    assert not s.host.is_online(G, E)
    # A repeated death of the same session is stale too; data afterwards needs a birth.
    assert reasons(s.rx(NT % "NDEATH", sp.encode_ndeath(s.bd_seq))) == {"stale_death": 1}
    assert "data_before_birth" in reasons(s.ddata([(10, 10, 1.0)]))


def test_ddeath_gives_device_series_and_later_ddata_is_refused() -> None:
    s = Session()
    payload = sp.encode_ddeath(seq=s.next_seq(), timestamp_ms=T0 + 5)
    (death,) = s.rx(DT % "DDEATH", payload)
    assert isinstance(death, DeviceDeathEvent)
    assert (death.device, death.ts_ns) == (D, (T0 + 5) * 1_000_000)
    assert sorted(death.series_ids) == [1, 2, 3, 4, 5, 6]
    assert s.host.is_online(G, E) and not s.host.is_online(G, E, D)
    again = s.rx(DT % "DDEATH", sp.encode_ddeath(seq=s.next_seq(), timestamp_ms=T0))
    assert reasons(again) == {"data_before_birth": 1}  # no rebirth: the device is gone anyway
    assert "data_before_birth" in reasons(s.ddata([(10, 10, 1.0)]))


def test_historical_metrics_are_kept_apart() -> None:
    s = Session()
    s.out, s.hist = SampleBuffer(), SampleBuffer()
    assert s.ddata([(10, 10, 5.5), (14, 12, "OLD")], historical=True) == []
    assert len(s.out) == 0
    assert rows(s.hist) == [(1, (T0 + 1) * 1_000_000, 5.5, 0)]
    assert s.hist.text == [TextSample(5, (T0 + 1) * 1_000_000, "OLD", Quality.GOOD)]
    payload = sp.encode_data([(10, 10, 1.0)], seq=s.next_seq(), timestamp_ms=T0,
                             historical=True)
    events = s.host.receive(DT % "DDATA", payload, NOW, s.out)  # no historical buffer
    assert reasons(events) == {"historical_discarded": 1} and len(s.out) == 0


def test_datatype_mismatch_rejects_one_metric_and_keeps_the_rest() -> None:
    s = Session()
    s.out = SampleBuffer()
    p = pb.Payload(timestamp=T0, seq=s.next_seq())
    p.metrics.add(alias=10, timestamp=T0, string_value="hot")  # Temp is a Double
    p.metrics.add(alias=11, timestamp=T0, int_value=4)
    p.metrics.add(alias=13, timestamp=T0, double_value=1.0)  # Running is a Boolean
    events = s.rx(DT % "DDATA", p.SerializeToString())
    assert reasons(events) == {"datatype": 2}
    assert rows(s.out) == [(2, T0 * 1_000_000, 4.0, 0)]
    assert s.host.is_online(G, E, D)  # no rebirth for a bad value


def test_null_quality_property_and_unsupported_type() -> None:
    s = Session()
    s.out = SampleBuffer()
    p = pb.Payload(timestamp=T0, seq=s.next_seq())
    p.metrics.add(alias=10, timestamp=T0, is_null=True)
    m = p.metrics.add(alias=11, timestamp=T0, int_value=9)
    m.properties.keys.append("Quality")
    m.properties.values.add(type=3, int_value=500)
    p.metrics.add(alias=16, timestamp=T0, bytes_value=b"\x00")
    p.metrics.add(alias=14, timestamp=T0, is_null=True)
    events = s.rx(DT % "DDATA", p.SerializeToString())
    assert reasons(events) == {"unsupported_type": 1}
    got = rows(s.out)
    assert got[0][:2] == (1, T0 * 1_000_000) and math.isnan(got[0][2])
    assert got[0][3] == Quality.BAD
    assert got[1] == (2, T0 * 1_000_000, 9.0, Quality.STALE)
    assert s.out.text == [TextSample(5, T0 * 1_000_000, "", Quality.BAD)]


def test_unbound_data_and_bind_errors() -> None:
    s = Session(bind=False)
    assert reasons(s.ddata([(10, 10, 1.0)])) == {"unbound": 1}
    with pytest.raises(NotFound):
        s.host.bind(G, E, "nope", {}, s.out)
    with pytest.raises(InvalidInput):
        s.host.bind(G, E, D, {"Blob": 1}, s.out)
    with pytest.raises(InvalidInput):
        s.host.bind(G, E, D, {"Temp": 2**31}, s.out)
    s.host.bind(G, E, D, {"Temp": 1}, s.out)  # partial binding
    s.out = SampleBuffer()
    events = s.ddata([(10, 10, 1.0), (11, 3, 2)])
    assert reasons(events) == {"unbound": 1} and rows(s.out) == [(1, (T0 + 1) * 10**6, 1.0, 0)]


def test_bad_birth_value_keeps_the_point() -> None:
    s = Session()
    p = pb.Payload(timestamp=T0, seq=s.next_seq())
    p.metrics.add(name="Temp", alias=40, datatype=10, string_value="hot")
    p.metrics.add(name="", alias=41, datatype=10, double_value=1.0)
    events = s.rx(f"spBv1.0/{G}/DBIRTH/{E}/Second", p.SerializeToString())
    (birth,) = [e for e in events if isinstance(e, BirthEvent)]
    assert [spec.name for spec in birth.specs] == ["Temp"] and birth.values == ()
    assert reasons(events) == {"datatype": 1, "malformed": 1}


def test_aliases_are_unique_across_node_and_devices() -> None:
    s = Session()
    dup = [BirthMetric("Other", 1, sp.SpDataType.DOUBLE, 0.5)]  # alias 1 is the node's
    payload = sp.encode_dbirth(dup, seq=s.next_seq(), timestamp_ms=T0)
    events = s.rx(f"spBv1.0/{G}/DBIRTH/{E}/Second", payload)
    assert reasons(events) == {"duplicate_alias": 1}


def test_timestamp_beyond_int64_ns_is_rejected_per_metric() -> None:
    s = Session()
    s.out = SampleBuffer()
    p = pb.Payload(timestamp=T0, seq=s.next_seq())
    p.metrics.add(alias=10, timestamp=2**64 - 1, double_value=1.0)
    p.metrics.add(alias=11, timestamp=T0, int_value=3)
    assert reasons(s.rx(DT % "DDATA", p.SerializeToString())) == {"timestamp": 1}
    assert rows(s.out) == [(2, T0 * 10**6, 3.0, 0)]
    p = pb.Payload(timestamp=T0, seq=s.next_seq())  # the exact path checks it as well
    p.metrics.add(alias=10, timestamp=2**64 - 1, is_null=True)
    assert reasons(s.rx(DT % "DDATA", p.SerializeToString())) == {"timestamp": 1}


def test_state_messages_and_bad_input() -> None:
    host, out = SparkplugHost("h"), SampleBuffer()
    assert host.receive("spBv1.0/STATE/other", sp.state_payload(True, 5), NOW, out) == [
        HostState("other", True, 5)]
    assert host.peers == {"other": (True, 5)}
    assert reasons(host.receive("spBv1.0/STATE/x", b"ONLINE", NOW, out)) == {"malformed": 1}
    assert reasons(host.receive("a/b", b"", NOW, out)) == {"topic": 1}
    assert reasons(host.receive(NT % "NDATA", b"\xff\xff", NOW, out)) == {"malformed": 1}
    assert host.receive(NT % "NCMD", sp.rebirth_payload(1), NOW, out) == []
    assert host.rejected == {"malformed": 2, "topic": 1}


# ------------------------------------------------------------- frames built without millnet


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _vfield(number: int, value: int) -> bytes:  # wire type 0
    return _varint(number << 3) + _varint(value)


def _lfield(number: int, data: bytes) -> bytes:  # wire type 2
    return _varint(number << 3 | 2) + _varint(len(data)) + data


def _metric(*, name: str | None = None, alias: int | None = None, datatype: int | None = None,
            ts: int | None = None, value: bytes = b"") -> bytes:
    # Metric: name=1, alias=2, timestamp=3, datatype=4, then value fields 10..16.
    body = _lfield(1, name.encode()) if name is not None else b""
    body += _vfield(2, alias) if alias is not None else b""
    body += _vfield(3, ts) if ts is not None else b""
    body += _vfield(4, datatype) if datatype is not None else b""
    return _lfield(2, body + value)


def _payload(metrics: list[bytes], *, seq: int | None, ts: int = T0) -> bytes:
    # Payload: timestamp=1, metrics=2, seq=3.
    return _vfield(1, ts) + b"".join(metrics) + (_vfield(3, seq) if seq is not None else b"")


def test_hand_built_frames_from_an_independent_writer() -> None:
    host, out = SparkplugHost("h"), SampleBuffer()
    double = b"\x69" + struct.pack("<d", 98.25)  # field 13, wire type 1
    nbirth = _payload([
        _metric(name="bdSeq", datatype=8, ts=T0, value=_vfield(11, 4)),
        _metric(name="Level", alias=5, datatype=10, ts=T0, value=double),
        _metric(name="Delta", alias=6, datatype=2, ts=T0, value=_vfield(10, 0xFFFFFFFF)),
        _metric(name="Mode", alias=7, datatype=14, ts=T0, value=_lfield(15, b"auto")),
        _metric(name="Pct", alias=8, datatype=9, ts=T0,
                value=b"\x65" + struct.pack("<f", 0.5)),  # field 12, wire type 5
    ], seq=0)
    (birth,) = host.receive(NT % "NBIRTH", nbirth, NOW, out)
    assert isinstance(birth, BirthEvent) and birth.bd_seq == 4
    assert [(p.name, p.datatype) for p in birth.specs] == [
        ("bdSeq", DataType.UINT64), ("Level", DataType.DOUBLE), ("Delta", DataType.INT16),
        ("Mode", DataType.TEXT), ("Pct", DataType.FLOAT)]
    host.bind(G, E, None, {"Level": 50, "Delta": 51, "Mode": 52, "Pct": 53}, out)
    ndata = _payload([
        _metric(alias=6, ts=T0 + 1, value=_vfield(10, 0xFFFF8000)),  # Int16 -32768
        _metric(alias=5, ts=T0 + 1, value=b"\x69" + struct.pack("<d", -1.5)),
        _metric(alias=7, ts=T0 + 1, value=_lfield(15, "läuft".encode())),
    ], seq=1)
    assert host.receive(NT % "NDATA", ndata, NOW, out) == []
    assert rows(out)[-2:] == [(51, (T0 + 1) * 10**6, -32768.0, 0),
                              (50, (T0 + 1) * 10**6, -1.5, 0)]
    assert out.text[-1] == TextSample(52, (T0 + 1) * 10**6, "läuft", Quality.GOOD)
    gap = _payload([_metric(alias=5, value=double)], seq=3)
    assert RebirthRequest(G, E, "seq_gap") in host.receive(NT % "NDATA", gap, NOW, out)
    death = _payload([_metric(name="bdSeq", datatype=8, value=_vfield(11, 4))], seq=None)
    (dead,) = host.receive(NT % "NDEATH", death, NOW, out)
    assert isinstance(dead, NodeDeathEvent) and sorted(dead.series_ids) == [50, 51, 52, 53]
