"""TCP stream framing and UDP fragmentation as hdllib and the CAICT SDK do them."""

from __future__ import annotations

import struct
import tracemalloc

import pytest

from millnet.errors import ProtocolError
from millnet.protocols import handle as h

SMALL = h.Message(h.ResolutionRequest("88.100.5/x", (), ("URL",)), envelope=h.Envelope(
    2, 3, 2, 10, request_id=1))
BIG = h.Message(h.ResolutionResponse("88.100.5/x", tuple(
    h.HandleValue(i, "URL", b"https://example.org/" + bytes([65 + i % 26]) * 40)
    for i in range(30))), envelope=h.Envelope(request_id=2))


def test_tcp_byte_by_byte_and_pipelined() -> None:
    stream = h.encode_message(SMALL) + h.encode_message(BIG) + h.encode_message(SMALL)
    framer = h.TcpFramer()
    got = []
    for i in range(len(stream)):
        got += framer.receive_data(stream[i:i + 1])
    assert got == [SMALL, BIG, SMALL]
    assert framer.buffered == 0
    assert h.TcpFramer().receive_data(stream * 50) == [SMALL, BIG, SMALL] * 50


def test_tcp_lying_length_is_refused_before_buffering() -> None:
    framer = h.TcpFramer(max_message_size=4096)
    head = h.encode_envelope(h.Envelope(request_id=9), 0xFFFFFFFF)
    tracemalloc.start()
    try:
        with pytest.raises(h.StreamError, match="message_length: 4294967295 exceeds") as info:
            framer.receive_data(head)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 * 1024
    assert info.value.envelope.request_id == 9
    with pytest.raises(h.StreamError):  # the stream is broken for good
        framer.receive_data(h.encode_message(SMALL))


def test_tcp_fragment_flag_breaks_the_stream() -> None:
    raw = bytearray(h.encode_message(SMALL))
    raw[2] |= 0x20
    with pytest.raises(h.StreamError, match="truncated"):
        h.TcpFramer().receive_data(bytes(raw))


def test_tcp_bad_message_keeps_the_stream_and_earlier_messages() -> None:
    bad = bytearray(h.encode_message(SMALL))
    bad[48:52] = b"\xff\xfe\xfd\xfc"  # inside the handle: invalid UTF-8
    framer = h.TcpFramer()
    with pytest.raises(h.MessageError, match="handle: invalid UTF-8") as info:
        framer.receive_data(h.encode_message(BIG) + bytes(bad) + h.encode_message(SMALL))
    assert info.value.envelope.request_id == 1
    assert framer.receive_data(b"") == [BIG, SMALL]


def test_tcp_next_message_api() -> None:
    framer = h.TcpFramer()
    framer.feed(h.encode_message(SMALL)[:30])
    assert framer.next_message() is None
    framer.feed(h.encode_message(SMALL)[30:])
    assert framer.next_message() == SMALL
    assert framer.next_message() is None


def test_udp_fragments_like_hdllib() -> None:
    raw = h.encode_message(BIG)
    packets = h.udp_packets(raw)
    assert len(packets) == h.udp_packet_count(len(raw) - 20) > 1
    for seq, pkt in enumerate(packets):
        assert len(pkt) <= 512
        assert pkt[2] & 0x20  # TC on every fragment
        assert struct.unpack_from(">I", pkt, 12)[0] == seq
        assert struct.unpack_from(">I", pkt, 16)[0] == len(raw) - 20  # the whole length
    assert all(len(p) == 512 for p in packets[:-1])
    assert h.udp_packets(h.encode_message(SMALL)) == [h.encode_message(SMALL)]

    reasm = h.UdpReassembler()
    order = [packets[1], *packets[1:], packets[0]]  # out of order, one duplicate
    results = [reasm.receive_datagram(p, ("10.0.0.1", 2641)) for p in order]
    assert [r for r in results if r is not None] == [BIG]
    assert reasm.pending == 0


def test_udp_single_datagram_and_length_checks() -> None:
    reasm = h.UdpReassembler()
    raw = h.encode_message(SMALL)
    assert reasm.receive_datagram(raw) == SMALL
    with pytest.raises(h.MessageError, match="announces"):
        reasm.receive_datagram(raw + b"x")
    packets = h.udp_packets(h.encode_message(BIG))
    with pytest.raises(h.MessageError, match="has 491 bytes, expected 492"):
        reasm.receive_datagram(packets[0][:-1])
    with pytest.raises(h.MessageError, match="fragment 99 of a message"):
        reasm.receive_datagram(packets[0][:12] + struct.pack(">I", 99) + packets[0][16:])
    other_length = packets[1][:16] + struct.pack(">I", 492 * 2) + packets[1][20:]
    reasm.receive_datagram(packets[0])
    with pytest.raises(h.MessageError, match="differs"):
        reasm.receive_datagram(other_length)


def test_udp_pending_is_bounded() -> None:
    reasm = h.UdpReassembler(max_pending=3, max_message_size=10_000)
    first = h.udp_packets(h.encode_message(BIG))[0]
    for request_id in range(10):
        pkt = first[:8] + struct.pack(">I", request_id) + first[12:]
        assert reasm.receive_datagram(pkt, "peer") is None
    assert reasm.pending == 3
    reasm.discard("peer", 9)
    assert reasm.pending == 2
    huge = first[:16] + struct.pack(">I", 10_001) + first[20:]
    with pytest.raises(ProtocolError, match="exceeds the limit"):
        reasm.receive_datagram(huge)
