"""TCP reassembly under the probe: PDUs across segments, reordering, holes, bounds."""

from __future__ import annotations

import dpkt  # type: ignore[import-untyped]
from pymodbus.pdu.register_message import WriteMultipleRegistersRequest

from millnet.probe import Probe
from millnet.probe.flows import Direction
from tests.support import pcapgen as g

WRITE = g.modbus(WriteMultipleRegistersRequest(address=3, registers=list(range(20)), dev_id=1))


def feed(probe: Probe, frames: list[g.Frame]) -> Probe:
    for ts, frame in frames:
        probe.feed(ts, frame)
    return probe


def test_a_pdu_in_many_segments_is_decoded_once() -> None:
    conv = g.Conversation("10.0.0.5", "10.0.0.10", 502).handshake()
    conv.send(WRITE, size=3).send(WRITE, size=7)
    probe = feed(Probe(), conv.frames)
    assert probe.stats.pdus["modbus"] == 2
    assert sum(probe.stats.decode_errors.values()) == 0


def test_out_of_order_segments_are_put_back_in_order() -> None:
    conv = g.Conversation("10.0.0.5", "10.0.0.10", 502).handshake()
    count = len(conv.segments(WRITE, size=5))
    conv.client_seq -= len(WRITE)  # segments() advanced it; send the same bytes reordered
    conv.send(WRITE, size=5, order=list(reversed(range(count))))
    probe = feed(Probe(), conv.frames)
    assert probe.stats.pdus["modbus"] == 1 and probe.stats.resyncs == 0


def test_retransmissions_are_not_decoded_twice() -> None:
    conv = g.Conversation("10.0.0.5", "10.0.0.10", 502).handshake()
    packets = conv.segments(WRITE, size=10)
    for packet in [packets[0], packets[0], *packets[1:], packets[-1]]:
        conv.frames.append((conv.ts, packet))
    probe = feed(Probe(), conv.frames)
    assert probe.stats.pdus["modbus"] == 1


def test_a_lost_segment_costs_a_resync_and_later_pdus_decode() -> None:
    conv = g.Conversation("10.0.0.5", "10.0.0.10", 502).handshake()
    lost = conv.segments(WRITE, size=10)
    conv.frames.append((conv.ts, lost[0]))  # the rest of the first PDU never arrives
    for _ in range(40):
        conv.send(WRITE)
    probe = feed(Probe(), conv.frames)
    assert probe.stats.resyncs >= 1
    assert probe.stats.pdus["modbus"] >= 35


def test_midstream_capture_decodes_without_a_handshake() -> None:
    conv = g.Conversation("10.0.0.5", "10.0.0.10", 502)
    conv.send(WRITE).send(WRITE, from_client=False)
    probe = feed(Probe(), conv.frames)
    assert probe.stats.pdus["modbus"] == 2


def test_flow_table_is_bounded_and_evicts_the_oldest() -> None:
    frames: list[g.Frame] = []
    for port in range(100):
        conv = g.Conversation("10.0.0.5", "10.0.0.10", 502, client_port=30000 + port,
                              frames=frames)
        conv.handshake().send(WRITE)
    probe = feed(Probe(max_flows=10), frames)
    assert len(probe.flows) == 10
    assert probe.stats.evictions == 90 and probe.stats.flows == 100
    assert probe.stats.pdus["modbus"] == 100


def test_a_frame_longer_than_the_buffer_is_skipped_not_held() -> None:
    conv = g.Conversation("10.0.0.6", "10.0.0.11", 1883).handshake()
    big = g.mqtt_publish("t", payload=b"x" * 50_000)
    conv.send(big, size=1400).send(g.mqtt_publish("after"))
    probe = feed(Probe(max_buffer=4096), conv.frames)
    flow = probe.flows.flows()[0]
    assert len(flow.client.buffer) == 0 and flow.client.skip == 0
    assert probe.stats.skipped_bytes == len(big)
    assert probe.stats.pdus["mqtt"] == 1


def test_pending_segments_are_bounded() -> None:
    direction = Direction(max_buffer=1024, max_pending=4, max_pending_bytes=100)
    direction.accept(0, b"a")
    for at in range(10, 1000, 10):  # a hole at 1..9, then many segments after it
        direction.accept(at, b"b" * 5)
        assert len(direction.pending) <= 4 and direction.pending_bytes <= 100


def test_sequence_numbers_wrap() -> None:
    direction = Direction(max_buffer=1024, max_pending=4, max_pending_bytes=100)
    assert direction.accept(2**32 - 2, b"ab") == (b"ab", False)
    assert direction.accept(0, b"cd") == (b"cd", False)


def test_joining_mid_pdu_is_a_resync_not_a_malformed_event() -> None:
    events: list[object] = []
    conv = g.Conversation("10.0.0.5", "10.0.0.10", 502)
    conv.send(WRITE[9:])  # the capture starts in the middle of a PDU
    for _ in range(3):
        conv.send(WRITE)
    probe = feed(Probe(events.append), conv.frames)
    assert probe.stats.decode_errors["modbus"] == 1
    assert probe.stats.pdus["modbus"] == 3
    assert events == []


def test_fin_from_both_sides_closes_the_flow() -> None:
    conv = g.Conversation("10.0.0.5", "10.0.0.10", 502).handshake().send(WRITE)
    assert len(feed(Probe(), conv.frames).flows) == 1
    conv._emit(conv._packet(True, dpkt.tcp.TH_FIN | dpkt.tcp.TH_ACK))
    conv._emit(conv._packet(False, dpkt.tcp.TH_FIN | dpkt.tcp.TH_ACK))
    probe = feed(Probe(), conv.frames)
    assert len(probe.flows) == 0 and probe.stats.pdus["modbus"] == 1
