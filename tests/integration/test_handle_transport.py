"""The native-protocol servers and client over real sockets, with a dictionary resolver."""

from __future__ import annotations

import asyncio
import socket

from millnet.identifiers.client import Server, request, request_tcp, request_udp, resolution_request
from millnet.identifiers.transport import NativeServer, Peer
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
