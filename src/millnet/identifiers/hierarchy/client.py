"""A Handle native-protocol client: UDP first, TCP when UDP gives no complete answer.

Like Handle.Net's resolver: a request goes out over UDP and is retried on timeout; a response
that cannot be completed over UDP (a lost fragment, or a truncated answer from a server that
limits UDP amplification) makes the client ask again over TCP.

Administration (:func:`admin_request`) goes over TCP, as in hdllib and the CAICT SDK: the
request, the server's 402 challenge, the HS_SECKEY answer (:mod:`.native_auth`) and the result,
on one connection.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from millnet.errors import ProtocolError
from millnet.identifiers.wire.auth import (
    PUBLIC_KEY_TYPE,
    SECRET_KEY_TYPE,
    challenge_version,
    sign_secret_key,
)
from millnet.identifiers.wire.pubkey import sign_challenge
from millnet.identifiers.wire.transport import is_truncation_notice
from millnet.protocols.handle import (
    AddValueRequest,
    Challenge,
    ChallengeAnswer,
    CreateHandleRequest,
    DeleteHandleRequest,
    Envelope,
    Header,
    ListHandlesRequest,
    ListHandlesResponse,
    Message,
    ModifyValueRequest,
    OpFlag,
    RemoveValueRequest,
    ResolutionRequest,
    TcpFramer,
    UdpReassembler,
    compute_request_digest,
    decode_message,
    encode_message,
)

AdminBody = (CreateHandleRequest | DeleteHandleRequest | AddValueRequest | RemoveValueRequest
             | ModifyValueRequest | ListHandlesRequest)

def _next_id() -> int:
    # Random for every request (found by review: counting up from a random start let a node
    # that saw one id guess the next, leaving only the source port to forge an answer).
    return secrets.randbits(31) or 1


def next_request_id() -> int:
    """A fresh request id: 31 random bits."""
    return _next_id()


@dataclass(frozen=True)
class Server:
    host: str
    udp_port: int = 2641
    tcp_port: int = 2641


class _UdpExchange(asyncio.DatagramProtocol):
    def __init__(self, request_id: int) -> None:
        self._request_id = request_id
        self._reassembler = UdpReassembler(max_pending=4)
        #: the answer, or None when the server said it is too large for UDP
        self.answer: asyncio.Future[Message | None] = \
            asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if is_truncation_notice(data):  # over the server's UDP budget: ask over TCP now
            if data[8:12] == self._request_id.to_bytes(4, "big") and not self.answer.done():
                self.answer.set_result(None)
            return
        try:
            msg = self._reassembler.receive_datagram(data, addr)
        except ProtocolError:
            return  # not for us, or garbage: keep waiting
        if msg is not None and msg.envelope.request_id == self._request_id \
                and not self.answer.done():
            self.answer.set_result(msg)


async def request_udp(msg: Message, server: Server, *, timeout: float = 1.0,
                      attempts: int = 2) -> Message | None:
    """The response over UDP, or None when none completed in ``attempts`` tries or the
    server sent a truncation notice (the answer is larger than its UDP budget)."""
    loop = asyncio.get_running_loop()
    data = encode_message(msg)
    transport, proto = await loop.create_datagram_endpoint(
        lambda: _UdpExchange(msg.envelope.request_id), remote_addr=(server.host, server.udp_port))
    try:
        for _ in range(attempts):
            transport.sendto(data)
            try:
                async with asyncio.timeout(timeout):
                    return await asyncio.shield(proto.answer)
            except TimeoutError:
                continue
        return None
    finally:
        transport.close()


async def request_tcp(msg: Message, server: Server, *, timeout: float = 5.0) -> Message:
    """The response over a fresh TCP connection."""
    async with asyncio.timeout(timeout):
        reader, writer = await asyncio.open_connection(server.host, server.tcp_port)
    try:
        writer.write(encode_message(msg))
        await writer.drain()
        framer = TcpFramer()
        while True:
            async with asyncio.timeout(timeout):
                chunk = await reader.read(65536)
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


class _Connection:
    """One TCP connection: send messages, read the answers to a request id."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 timeout: float) -> None:
        self._reader, self._writer, self._timeout = reader, writer, timeout
        self._framer = TcpFramer()
        self._ready: list[Message] = []

    async def send(self, msg: Message) -> None:
        self._writer.write(encode_message(msg))
        await self._writer.drain()

    async def receive(self, request_id: int) -> Message:
        while True:
            while self._ready:
                answer = self._ready.pop(0)
                if answer.envelope.request_id == request_id:
                    return answer
            async with asyncio.timeout(self._timeout):
                chunk = await self._reader.read(65536)
            if not chunk:
                raise ProtocolError("the server closed the connection without answering")
            self._ready.extend(self._framer.receive_data(chunk))

    async def receive_all(self, request_id: int) -> list[Message]:
        """The answer and its continuations (CN set on all but the last)."""
        answers = [await self.receive(request_id)]
        while answers[-1].header.opflags & OpFlag.CN:
            answers.append(await self.receive(request_id))
        return answers


def _signed_part(msg: Message) -> bytes:
    """The header and body as they go on the wire: what the server digests."""
    return decode_message(encode_message(msg)).signed_part


async def admin_request(body: AdminBody, server: Server, *, key_handle: str, key_index: int,
                        secret: str | bytes | None = None,
                        private_key: PrivateKeyTypes | None = None, opflags: int = 0,
                        version: tuple[int, int] = (2, 10), timeout: float = 5.0) -> Message:
    """Run an administrative operation as ``key_index:key_handle``, authenticated with its
    HS_SECKEY ``secret`` or with the ``private_key`` of its HS_PUBKEY; the server's final
    answer (for LIST_HANDLE, its continued messages merged into one ListHandlesResponse).
    ``opflags``: OW or MINT on a create, RD..."""
    if (secret is None) == (private_key is None):
        raise ValueError("give exactly one of secret and private_key")
    key = secret.encode("utf-8") if isinstance(secret, str) else secret
    request = Message(body, Header(opflags), Envelope(version[0], version[1],
                                                      request_id=_next_id()))
    async with asyncio.timeout(timeout):
        reader, writer = await asyncio.open_connection(server.host, server.tcp_port)
    conn = _Connection(reader, writer, timeout)
    try:
        await conn.send(request)
        first = await conn.receive_all(request.envelope.request_id)
        challenge = first[-1]
        if not isinstance(challenge.body, Challenge):
            return _merged(first)
        digest = challenge.request_digest
        if digest is None or compute_request_digest(
                _signed_part(request), digest.algorithm).digest != digest.digest:
            raise ProtocolError("the challenge is not for the request sent: not signing it")
        version_used = challenge_version(challenge)
        if private_key is not None:
            auth_type = PUBLIC_KEY_TYPE
            signed = sign_challenge(private_key, challenge.body.nonce, digest.digest,
                                    version_used)
        else:
            assert key is not None
            auth_type = SECRET_KEY_TYPE
            signed = sign_secret_key(key, challenge.body.nonce, digest.digest, version_used)
        answer = Message(ChallengeAnswer(auth_type, key_handle, key_index, signed),
                         Header(opflags & int(OpFlag.RD)),
                         Envelope(challenge.envelope.major, challenge.envelope.minor,
                                  session_id=challenge.envelope.session_id,
                                  request_id=_next_id()))
        await conn.send(answer)
        return _merged(await conn.receive_all(answer.envelope.request_id))
    finally:
        writer.close()


def _merged(answers: list[Message]) -> Message:
    if len(answers) == 1:
        return answers[0]
    handles = tuple(h for a in answers if isinstance(a.body, ListHandlesResponse)
                    for h in a.body.handles)
    last = answers[-1]
    return Message(ListHandlesResponse(handles), last.header, last.envelope, last.request_digest)
