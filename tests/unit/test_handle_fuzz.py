"""Whatever bytes arrive, the Handle decoders raise ProtocolError or return a message that
re-encodes: never another exception."""

from __future__ import annotations

import contextlib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from millnet.errors import ProtocolError
from millnet.protocols import handle as h
from tests.support.mutate import Mutation, mutate
from tests.support.mutate import mutations as mutations_of
from tests.unit.handle_strategies import messages

FAST = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])

mutations = mutations_of()


def _decode(data: bytes) -> None:
    try:
        msg = h.decode_message(data)
    except ProtocolError:
        return
    # Whatever decodes is a valid message: it encodes again, to a message that decodes equal.
    assert h.decode_message(h.encode_message(msg)) == msg


@FAST
@given(st.binary(max_size=300))
def test_random_bytes_into_decode_message(data: bytes) -> None:
    _decode(data)


@FAST
@given(st.binary(max_size=200))
def test_random_payload_behind_a_valid_envelope(payload: bytes) -> None:
    env = h.encode_envelope(h.Envelope(2, 10, 2, 10, request_id=1), len(payload))
    _decode(env + payload)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages(), mutations)
def test_mutated_valid_messages(msg: h.Message, muts: list[Mutation]) -> None:
    _decode(mutate(h.encode_message(msg), muts))


@FAST
@given(st.lists(st.binary(max_size=120), max_size=8), st.lists(messages(), max_size=3))
def test_tcp_framer_never_crashes(chunks: list[bytes], msgs: list[h.Message]) -> None:
    framer = h.TcpFramer(max_message_size=1 << 16)
    stream = b"".join(h.encode_message(m) for m in msgs)
    for chunk in [stream[:7], stream[7:], *chunks]:
        try:
            framer.receive_data(chunk)
        except h.StreamError:
            return
        except ProtocolError:
            continue
    assert framer.buffered >= 0


@FAST
@given(st.lists(st.tuples(st.integers(0, 2), st.binary(max_size=600)), max_size=8),
       messages(), mutations)
def test_udp_reassembler_never_crashes(datagrams: list[tuple[int, bytes]], msg: h.Message,
                                       muts: list[Mutation]) -> None:
    reasm = h.UdpReassembler(max_pending=4)
    packets = [(0, p) for p in h.udp_packets(h.encode_message(msg))]
    for peer, data in [*datagrams, *packets, *((1, mutate(p, muts)) for _, p in packets)]:
        with contextlib.suppress(ProtocolError):
            reasm.receive_datagram(data, peer)
    assert reasm.pending <= 4


@FAST
@given(st.binary(max_size=200))
def test_value_layout_decoders_never_crash(data: bytes) -> None:
    for decode in (h.decode_value, h.decode_admin, h.decode_site, h.decode_vlist,
                   h.decode_pubkey, h.decode_serv, h.decode_credential):
        with contextlib.suppress(ProtocolError):
            decode(data)
