"""A Handle native-protocol client: UDP first, TCP when UDP gives no complete answer.

Like Handle.Net's resolver: a request goes out over UDP and is retried on timeout; a response
that cannot be completed over UDP (a lost fragment, or a truncated answer from a server that
limits UDP amplification) makes the client ask again over TCP.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from millnet.errors import ProtocolError
from millnet.protocols.handle import (
    Envelope,
    Header,
    Message,
    OpFlag,
    ResolutionRequest,
    TcpFramer,
    UdpReassembler,
    encode_message,
)

_ids = itertools.count(secrets.randbelow(2**30))


def _next_id() -> int:
    return next(_ids) & 0x7FFFFFFF


@dataclass(frozen=True)
class Server:
    host: str
    udp_port: int = 2641
    tcp_port: int = 2641


class _UdpExchange(asyncio.DatagramProtocol):
    def __init__(self, request_id: int) -> None:
        self._request_id = request_id
        self._reassembler = UdpReassembler(max_pending=4)
        self.answer: asyncio.Future[Message] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            msg = self._reassembler.receive_datagram(data, addr)
        except ProtocolError:
            return  # not for us, or garbage: keep waiting
        if msg is not None and msg.envelope.request_id == self._request_id \
                and not self.answer.done():
            self.answer.set_result(msg)


async def request_udp(msg: Message, server: Server, *, timeout: float = 1.0,
                      attempts: int = 2) -> Message | None:
    """The response over UDP, or None when none completed in ``attempts`` tries."""
    loop = asyncio.get_running_loop()
    data = encode_message(msg)
    transport, proto = await loop.create_datagram_endpoint(
        lambda: _UdpExchange(msg.envelope.request_id), remote_addr=(server.host, server.udp_port))
    try:
        for _ in range(attempts):
            transport.sendto(data)
            try:
                return await asyncio.wait_for(asyncio.shield(proto.answer), timeout)
            except TimeoutError:
                continue
        return None
    finally:
        transport.close()


async def request_tcp(msg: Message, server: Server, *, timeout: float = 5.0) -> Message:
    """The response over a fresh TCP connection."""
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(server.host, server.tcp_port), timeout)
    try:
        writer.write(encode_message(msg))
        await writer.drain()
        framer = TcpFramer()
        while True:
            chunk = await asyncio.wait_for(reader.read(65536), timeout)
            if not chunk:
                raise ProtocolError("the server closed the connection without answering")
            for answer in framer.receive_data(chunk):
                if answer.envelope.request_id == msg.envelope.request_id:
                    return answer
    finally:
        writer.close()


async def request(msg: Message, server: Server, *, udp: bool = True,
                  timeout: float = 1.0) -> Message:
    if udp:
        answer = await request_udp(msg, server, timeout=timeout)
        if answer is not None:
            return answer
    return await request_tcp(msg, server, timeout=max(timeout, 5.0))


def resolution_request(handle: str, indexes: Sequence[int] = (), types: Sequence[str] = (),
                       *, authoritative: bool = False, recursive: bool = True) -> Message:
    flags = (int(OpFlag.AT) if authoritative else 0) | (int(OpFlag.REC) if recursive else 0)
    return Message(ResolutionRequest(handle, tuple(indexes), tuple(types)), Header(flags),
                   Envelope(request_id=_next_id()))
