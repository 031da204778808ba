"""The native-protocol servers and client over real sockets, with a dictionary resolver."""

from __future__ import annotations

import asyncio
import socket

import pytest

from millnet.errors import ProtocolError
from millnet.identifiers.hierarchy.client import (
    Server,
    request,
    request_tcp,
    request_udp,
    resolution_request,
)
from millnet.identifiers.wire.transport import NativeServer, Peer
from millnet.protocols.handle import (
    ErrorResponse,
    HandleValue,
    Message,
    OpCode,
    ResolutionRequest,
    ResolutionResponse,
    ResponseCode,
    make_response,
)

SMALL = {"88.100.5/PUMP-1": (HandleValue(1, "URL", b"https://plant.example/pumps/1"),)}
BIG = {"88.100.5/BIG": tuple(HandleValue(i, "DESC", b"x" * 400) for i in range(1, 11))}


def resolver(msg: Message, peer: Peer) -> list[Message]:
    body = msg.body
    assert isinstance(body, ResolutionRequest)
    values = {**SMALL, **BIG}.get(body.handle)
    if values is None:
        reply = ErrorResponse(OpCode.RESOLUTION, ResponseCode.HANDLE_NOT_FOUND, "no such handle")
        return [make_response(msg, reply, now=0)]
    return [make_response(msg, ResolutionResponse(body.handle, values), now=0)]


def _send_garbage(port: int) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(2)
        s.sendto(b"\x00" * 7, ("127.0.0.1", port))
        bad = bytearray(20 + 24)
        bad[0:2] = b"\x02\x0a"
        bad[16:20] = (24).to_bytes(4, "big")
        bad[20:24] = (1).to_bytes(4, "big")  # RESOLUTION with a truncated body
        s.sendto(bytes(bad), ("127.0.0.1", port))
        return s.recv(4096)


def test_udp_tcp_resolution_truncation_and_garbage() -> None:
    async def scenario() -> None:
        async with NativeServer(resolver, udp_port=0, tcp_port=0) as server:
            where = Server("127.0.0.1", server.udp_port, server.tcp_port)

            answer = await request_udp(resolution_request("88.100.5/PUMP-1"), where)
            assert answer is not None
            assert isinstance(answer.body, ResolutionResponse)
            assert answer.body.values == SMALL["88.100.5/PUMP-1"]

            missing = await request(resolution_request("88.100.5/NOPE"), where)
            assert missing.response_code == ResponseCode.HANDLE_NOT_FOUND

            # 4 kB of values for a ~60-byte request: UDP sends one truncated fragment only...
            big = resolution_request("88.100.5/BIG")
            assert await request_udp(big, where, timeout=0.3, attempts=1) is None
            assert server.udp_stats.truncated == 1
            # ...and the client gets everything over TCP.
            full = await request(resolution_request("88.100.5/BIG"), where, timeout=0.3)
            assert isinstance(full.body, ResolutionResponse)
            assert full.body.values == BIG["88.100.5/BIG"]

            # Garbage: no envelope -> silence; an envelope with a bad body -> PROTOCOL_ERROR.
            reply = await asyncio.to_thread(_send_garbage, server.udp_port)
            assert int.from_bytes(reply[24:28], "big") == ResponseCode.PROTOCOL_ERROR
            assert server.udp_stats.malformed == 2

            # TCP: two pipelined requests on one connection, answered in order.
            a, b = resolution_request("88.100.5/PUMP-1"), resolution_request("88.100.5/NOPE")
            from millnet.protocols.handle import TcpFramer, encode_message

            reader, writer = await asyncio.open_connection("127.0.0.1", server.tcp_port)
            writer.write(encode_message(a) + encode_message(b))
            framer, got = TcpFramer(), list[Message]()
            while len(got) < 2:
                got += framer.receive_data(await reader.read(65536))
            writer.close()
            assert [m.envelope.request_id for m in got] == [a.envelope.request_id,
                                                            b.envelope.request_id]
            # A lying length closes the connection without allocating it.
            reader, writer = await asyncio.open_connection("127.0.0.1", server.tcp_port)
            lie = bytearray(20)
            lie[0:2] = b"\x02\x0a"
            lie[16:20] = (2**31).to_bytes(4, "big")
            writer.write(bytes(lie))
            assert await asyncio.wait_for(reader.read(), 2) is not None  # closed by the server
            writer.close()
            tcp_answer = await request_tcp(resolution_request("88.100.5/PUMP-1"), where)
            assert isinstance(tcp_answer.body, ResolutionResponse)

    asyncio.run(scenario())


def test_a_client_that_does_not_read_is_not_answered_ahead() -> None:
    """Found by review: 2,500 pipelined requests for a 200 kB handle, answers never read,
    grew the server from 77 to 413 MiB. Now requests wait while answers do: few are answered
    ahead, and every one is answered once the client reads."""
    huge = {"88.100.5/HUGE": (HandleValue(1, "DESC", b"z" * 200_000),)}
    answered = 0

    def counting(msg: Message, peer: Peer) -> list[Message]:
        nonlocal answered
        answered += 1
        body = msg.body
        assert isinstance(body, ResolutionRequest)
        return [make_response(msg, ResolutionResponse(body.handle, huge[body.handle]), now=0)]

    from millnet.identifiers.hierarchy.client import next_request_id
    from millnet.protocols.handle import Envelope, TcpFramer, encode_message

    requests = b"".join(
        encode_message(Message(ResolutionRequest("88.100.5/HUGE"),
                               envelope=Envelope(request_id=next_request_id())))
        for _ in range(2500))

    async def scenario() -> None:
        async with NativeServer(counting, udp_port=0, tcp_port=0) as server:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.tcp_port)
            writer.transport.set_write_buffer_limits(high=len(requests) + 1)
            writer.write(requests)
            await asyncio.sleep(1.0)
            ahead = answered
            assert ahead < 50, ahead  # a write buffer's worth, not the 2,500
            framer, received = TcpFramer(), 0
            while received < 2500:
                chunk = await asyncio.wait_for(reader.read(1 << 20), 10)
                assert chunk
                received += len(framer.receive_data(chunk))
            assert answered == 2500
            writer.close()

    asyncio.run(scenario())


def test_connections_are_counted_per_host() -> None:
    async def scenario() -> None:
        async with NativeServer(resolver, udp_port=0, tcp_port=0,
                                max_tcp_per_host=3) as server:
            conns = [await asyncio.open_connection("127.0.0.1", server.tcp_port)
                     for _ in range(4)]
            fourth_reader = conns[3][0]
            assert await asyncio.wait_for(fourth_reader.read(1), 5) == b""  # closed at once
            where = Server("127.0.0.1", server.udp_port, server.tcp_port)
            with pytest.raises(ProtocolError):  # no room while the three stay open
                await request_tcp(resolution_request("88.100.5/PUMP-1"), where)
            for _, writer in conns:
                writer.close()
            await asyncio.sleep(0.1)
            answer = await request_tcp(resolution_request("88.100.5/PUMP-1"), where)
            assert isinstance(answer.body, ResolutionResponse)

    asyncio.run(scenario())


def test_udp_refuses_requests_larger_than_it_reassembles() -> None:
    """Fragments of a message announced above 64 KiB are refused at once (found by review:
    256 partial messages of 1 MiB each held ~300 MiB per process)."""
    import struct

    from millnet.identifiers.wire.transport import UDP_MAX_MESSAGE
    from millnet.protocols.handle import decode_message

    async def scenario() -> None:
        async with NativeServer(resolver, udp_port=0, tcp_port=0) as server:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.settimeout(2)
                envelope = struct.pack(">BBBBIIII", 2, 10, 0x20, 0, 0, 7, 0,
                                       UDP_MAX_MESSAGE + 1)  # TC: a first fragment
                s.sendto(envelope + b"\0" * 492, ("127.0.0.1", server.udp_port))
                reply = await asyncio.to_thread(s.recv, 4096)
            answer = decode_message(reply)
            assert answer.response_code == ResponseCode.PROTOCOL_ERROR
            assert "limit" in str(answer.body)

    asyncio.run(scenario())


def test_slots_count_in_all_and_per_host() -> None:
    """The bound behind TCP connections and recursive resolutions."""
    from millnet.identifiers.wire.transport import Slots

    slots = Slots(max_total=3, max_per_host=2)
    assert slots.admit("10.0.0.1") and slots.admit("10.0.0.1")
    assert not slots.admit("10.0.0.1")  # per host
    assert slots.admit("10.0.0.2")
    assert not slots.admit("10.0.0.3")  # in all
    slots.release("10.0.0.1")
    assert slots.admit("10.0.0.3")
    for host in ("10.0.0.1", "10.0.0.2", "10.0.0.3"):
        slots.release(host)
    assert slots.open == 0 and slots.per_host == {}
