"""Thin asyncio servers and a client for the Handle native protocol (RFC 3652).

All protocol work is the sans-IO codec's (:mod:`millnet.protocols.handle`); this module moves
bytes. A server is given one :data:`Handler`: a request message in, the response messages out
(usually one; several for a continued LIST_HANDLES). Handlers are synchronous on purpose: a
resolution is a dictionary or database lookup of microseconds, and a thread hop per datagram
would cost more than the work. The exceptions are requests the handler cannot answer
without asking other servers (a recursive resolution) or without blocking work (writes,
lists, secret checks: :mod:`.native` runs them in worker threads): it then returns an
awaitable instead of the list, which the server awaits in a task of its own and answers when
it completes; the task is cancelled (and awaited) when the server stops. On TCP the
connection's later requests wait for that answer (answers stay in request order, and a
request after a login or a write sees it); UDP requests are independent.

UDP and amplification: everything sent in answer to one UDP request, every datagram of every
reply counted with its envelope, is at most ``udp_amplification`` (4) times the size of the
datagram that asked for it: the request's size is what a spoofed source pays, so the node never
reflects more than four times what it receives. A reply that does not fit is not sent over UDP:
neither a single datagram above the budget (an 80-byte request used to get up to 512 bytes)
nor its first fragment alone (found by review: 512 bytes, 6.4 times an 80-byte request, and
useless, since no client can complete a message from one fragment). Instead the client gets a
*truncation notice* (:func:`truncation_notice`): the reply's 20-octet envelope alone, TC set,
announcing the whole length and carrying none of it. :mod:`.client` asks over TCP at once; a
Handle.Net client cannot complete the message and asks over TCP after its UDP timeout, as it
would after silence. The exception is the server's :class:`~.udpgrace.ReflectionLimiter`:
a reply of at most four datagrams over the budget is still sent whole while the source's
network and the process have octets left in their token buckets (docs/handle-protocol.md,
"UDP amplification").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import cast

from millnet.errors import ProtocolError
from millnet.identifiers.wire.udpgrace import ReflectionLimiter
from millnet.protocols.handle import (
    Message,
    MessageError,
    StreamError,
    TcpFramer,
    UdpReassembler,
    encode_message,
    error_reply,
    udp_packets,
)
from millnet.protocols.handle.constants import ENVELOPE_SIZE, UDP_PACKET_SIZE, EnvelopeFlag

log = logging.getLogger("millnet.identifiers")

Peer = tuple[str, int]


class TcpPeer(tuple[str, int]):
    """The peer of a TCP connection (a UDP peer is a plain tuple): a handler may keep state for
    the connection (IDIS logins) and must never trust a UDP source address the same way. The
    server calls the handler's ``connection_closed(peer)`` when the connection ends."""

    __slots__ = ()
Replies = list[Message] | Awaitable[list[Message]]
Handler = Callable[[Message, Peer], Replies]
Tasks = set["asyncio.Task[None]"]
#: A fast path for the common UDP request (:mod:`.fastpath`): the response bytes, or None to
#: take the general path.
FastPath = Callable[[bytes], bytes | None]


#: the largest request accepted over UDP (in fragments); larger ones belong on TCP
UDP_MAX_MESSAGE = 64 << 10
MAX_TCP_CONNECTIONS = 2048
MAX_TCP_PER_HOST = 128


def _now() -> int:
    return int(time.time())


def _answers(handler: Handler, msg: Message,
             peer: Peer) -> list[bytes] | Awaitable[list[Message]]:
    """The encoded answers, or the awaitable of a deferred (asynchronous) answer."""
    if not msg.is_request:
        return []  # never answer a response: that would be a reflection loop
    replies = handler(msg, peer)
    if isinstance(replies, list):
        return [encode_message(reply) for reply in replies]
    return replies


def _defer(tasks: Tasks, pending: Awaitable[list[Message]],
           send: Callable[[list[bytes]], None]) -> None:
    """Await ``pending`` in a task of ``tasks`` (cancelled and awaited when the server
    stops), then ``send`` its answers (none if it failed)."""
    async def answer() -> None:
        try:
            replies = await pending
        except Exception:  # a handler bug must not kill the server
            log.exception("a deferred answer failed")
            replies = []
        send([encode_message(reply) for reply in replies])

    task = asyncio.get_running_loop().create_task(answer())
    tasks.add(task)
    task.add_done_callback(tasks.discard)


def _error(exc: MessageError) -> list[bytes]:
    reply = error_reply(exc, now=_now())
    return [encode_message(reply)] if reply is not None else []


#: ``on_violation(kind, source host, detail)``: a request that was not a well-formed message
#: (kind ``malformed``); the node's security monitor counts them per source.
ViolationHook = Callable[[str, str, str], None]


@dataclass
class UdpStats:
    requests: int = 0
    malformed: int = 0
    #: replies withheld: larger than the amplification budget (the client asks over TCP)
    truncated: int = 0
    #: replies larger than the budget sent all the same, within the reflection limiter
    graced: int = 0


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, handler: Handler, amplification: int, tasks: Tasks,
                 fast: FastPath | None = None, grace: ReflectionLimiter | None = None,
                 on_violation: ViolationHook | None = None) -> None:
        self._handler = handler
        self._on_violation = on_violation
        self._fast = fast
        self._grace = grace
        self._amplification = amplification
        self._tasks = tasks
        # Large requests belong on TCP: 256 partial messages of at most 64 KiB bound what
        # forged fragments can make a process hold (16 MiB; 1 MiB each was ~300 MiB).
        self._reassembler = UdpReassembler(max_message_size=UDP_MAX_MESSAGE, max_pending=256)
        self._transport: asyncio.DatagramTransport | None = None
        self.stats = UdpStats()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Peer) -> None:
        transport = self._transport
        if transport is None or is_truncation_notice(data):
            # Never answer a notice (it is a response, and the error a server would send for
            # an empty fragment is itself over the budget: two nodes, or a node and a forged
            # copy of itself, would send each other notices for ever).
            self.stats.malformed += transport is not None
            return
        if self._fast is not None:
            reply = self._fast(data)
            if reply is not None:
                self.stats.requests += 1
                if len(reply) <= UDP_PACKET_SIZE \
                        and len(reply) <= len(data) * self._amplification:
                    transport.sendto(reply, addr)  # one datagram within the budget: the usual
                else:
                    self._send([reply], addr, len(data))
                return
        try:
            msg = self._reassembler.receive_datagram(data, addr)
        except MessageError as exc:
            self.stats.malformed += 1
            if self._on_violation is not None:
                self._on_violation("malformed", addr[0], f"udp: {exc}"[:200])
            replies = _error(exc)
        except ProtocolError as exc:
            self.stats.malformed += 1  # not even an envelope: drop silently
            if self._on_violation is not None:
                self._on_violation("malformed", addr[0], f"udp: {exc}"[:200])
            return
        else:
            if msg is None:
                return  # a fragment; the rest is on its way
            self.stats.requests += 1
            answers = _answers(self._handler, msg, addr)
            if not isinstance(answers, list):
                _defer(self._tasks, answers, lambda r: self._send(r, addr, len(data)))
                return
            replies = answers
        self._send(replies, addr, len(data))

    def _send(self, replies: list[bytes], addr: Peer, request_size: int) -> None:
        """Send the replies that fit the amplification budget (see the module's docstring) or
        the reflection limiter's grace, in order; the first that fits neither and all after
        it are withheld."""
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        budget = request_size * self._amplification
        for reply in replies:
            packets = udp_packets(reply)
            size = sum(map(len, packets))
            if size > budget and self._grace is not None \
                    and self._grace.allow(addr[0], size):
                self.stats.graced += 1
                budget = size  # spent whole: a further reply needs grace of its own
            if size > budget:
                self.stats.truncated += 1
                log.debug("withheld a UDP reply of %d bytes to a %d-byte request from %s",
                          size, request_size, addr[0])
                if budget >= ENVELOPE_SIZE:
                    transport.sendto(truncation_notice(reply), addr)
                return
            budget -= size
            for packet in packets:
                transport.sendto(packet, addr)


def truncation_notice(reply: bytes) -> bytes:
    """What a UDP client gets instead of a reply above the amplification budget: the reply's
    envelope alone (20 octets), TC set, sequence 0, MessageLength the whole reply's. It says
    "the answer is this long, ask over TCP", and costs less than any request."""
    head = bytearray(reply[:ENVELOPE_SIZE])
    head[2] |= EnvelopeFlag.TC
    head[12:16] = bytes(4)
    return bytes(head)


def is_truncation_notice(datagram: bytes) -> bool:
    """A :func:`truncation_notice`: an envelope with TC set and no octet of the message."""
    return len(datagram) == ENVELOPE_SIZE and bool(datagram[2] & EnvelopeFlag.TC) \
        and int.from_bytes(datagram[16:20], "big") > 0


@dataclass
class Slots:
    """Places counted in all and per client host: TCP connections here, recursive
    resolutions in :mod:`.native`. ``admit`` takes one (False when none is free), ``release``
    gives it back."""

    max_total: int
    max_per_host: int
    open: int = 0
    per_host: dict[str, int] = field(default_factory=dict)

    def admit(self, host: str) -> bool:
        hosts = self.per_host
        if self.open >= self.max_total or hosts.get(host, 0) >= self.max_per_host:
            return False
        self.open += 1
        hosts[host] = hosts.get(host, 0) + 1
        return True

    def release(self, host: str) -> None:
        self.open -= 1
        left = self.per_host[host] - 1
        if left:
            self.per_host[host] = left
        else:
            del self.per_host[host]


class _TcpProtocol(asyncio.Protocol):
    """One TCP connection. Bounds (found by review: one client pipelining requests without
    reading the answers grew the server by hundreds of megabytes; connections were not
    counted): the connection stops being read while its answers wait to be sent (asyncio's
    write-buffer high-water mark); connections take :class:`Slots`; the idle timer restarts
    on complete messages only, so a client trickling one byte at a time is closed after
    ``idle_timeout``."""

    def __init__(self, handler: Handler, idle_timeout: float, tasks: Tasks,
                 limits: Slots | None = None, on_violation: ViolationHook | None = None,
                 ) -> None:
        self._handler = handler
        self._on_violation = on_violation
        self._tasks = tasks
        self._framer = TcpFramer()
        self._transport: asyncio.Transport | None = None
        self._idle_timeout = idle_timeout
        self._timer: asyncio.TimerHandle | None = None
        self._peer: Peer = ("", 0)
        self._limits = limits if limits is not None else Slots(MAX_TCP_CONNECTIONS,
                                                               MAX_TCP_PER_HOST)
        self._admitted = False
        self._queue: deque[Message] = deque()
        self._paused = False
        #: an answer is awaited (a write, a login...): the connection's later requests wait
        #: for it, so that they are answered in order and see what it did
        self._deferred = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        name = transport.get_extra_info("peername") or ("", 0)
        self._peer = TcpPeer((str(name[0]), int(name[1])))
        if not self._limits.admit(self._peer[0]):
            log.warning("refused a TCP connection from %s: too many connections",
                        self._peer[0])
            transport.close()
            return
        self._admitted = True
        self._arm()

    def pause_writing(self) -> None:  # answers pile up: stop reading and answering
        self._paused = True
        if self._transport is not None:
            self._transport.pause_reading()

    def resume_writing(self) -> None:
        self._paused = False
        if self._transport is not None and not self._transport.is_closing() \
                and not self._deferred:
            self._transport.resume_reading()
            self._serve_queue()

    def _arm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self._idle_timeout, self._close)

    def _close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._transport = None
        if self._admitted:
            self._admitted = False
            self._limits.release(self._peer[0])
        closed = getattr(self._handler, "connection_closed", None)
        if closed is not None:
            closed(self._peer)

    def data_received(self, data: bytes) -> None:
        transport = self._transport
        if transport is None:
            return
        while True:
            try:
                messages = self._framer.receive_data(data)
                if messages:
                    self._arm()  # complete messages only: a trickle of bytes times out
            except MessageError as exc:
                if self._on_violation is not None:
                    self._on_violation("malformed", self._peer[0], f"tcp: {exc}"[:200])
                for reply in _error(exc):
                    transport.write(reply)
                if isinstance(exc, StreamError):
                    transport.close()
                    return
                data = b""
                continue
            self._queue.extend(messages)
            self._serve_queue()
            return

    def _serve_queue(self) -> None:
        """Answer queued requests one by one while the client reads the answers: a client
        that pipelines thousands of requests and reads nothing holds at most one read's worth
        of requests and a write buffer's worth of answers."""
        transport = self._transport
        while self._queue and not self._paused and not self._deferred \
                and transport is not None and not transport.is_closing():
            msg = self._queue.popleft()
            answers = _answers(self._handler, msg, self._peer)
            if isinstance(answers, list):
                for reply in answers:
                    transport.write(reply)
            else:
                self._deferred = True
                transport.pause_reading()
                _defer(self._tasks, answers, self._write)

    def _write(self, replies: list[bytes]) -> None:
        self._deferred = False
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        for reply in replies:
            transport.write(reply)
        if not self._paused:
            transport.resume_reading()
            self._serve_queue()


@dataclass
class NativeServer:
    """UDP and TCP listeners serving one handler; ``async with`` starts and stops them."""

    handler: Handler
    host: str = "127.0.0.1"
    udp_port: int = 2641
    tcp_port: int = 2641
    udp_amplification: int = 4
    tcp_idle_timeout: float = 60.0
    max_tcp_connections: int = MAX_TCP_CONNECTIONS
    max_tcp_per_host: int = MAX_TCP_PER_HOST
    fast: FastPath | None = None
    #: answers over the amplification budget allowed at a bounded rate (None: never)
    udp_grace: ReflectionLimiter | None = field(default_factory=ReflectionLimiter)

    #: bind UDP with SO_REUSEPORT: several processes then share the port, the kernel
    #: spreading datagrams by source address (``millnet id serve --workers``)
    reuse_port: bool = False
    #: serve TCP too (a UDP worker process serves UDP only)
    tcp: bool = True
    #: malformed requests of both protocols, by source (the node's security monitor)
    on_violation: ViolationHook | None = None

    async def __aenter__(self) -> NativeServer:
        loop = asyncio.get_running_loop()
        self._tasks: Tasks = set()
        sock = udp_socket(self.host, self.udp_port, reuse_port=self.reuse_port)
        udp, proto = await loop.create_datagram_endpoint(
            lambda: _UdpProtocol(self.handler, self.udp_amplification, self._tasks, self.fast,
                                 self.udp_grace, self.on_violation),
            sock=sock)
        self._udp = udp
        self.udp_port = udp.get_extra_info("sockname")[1]
        self.udp_stats = proto.stats
        self._tcp: asyncio.Server | None = None
        if self.tcp:
            limits = Slots(self.max_tcp_connections, self.max_tcp_per_host)
            try:
                self._tcp = await loop.create_server(
                    lambda: _TcpProtocol(self.handler, self.tcp_idle_timeout, self._tasks,
                                         limits, self.on_violation), self.host, self.tcp_port)
            except OSError:
                udp.close()  # a half-started server keeps no port
                raise
            self.tcp_port = self._tcp.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._udp.close()
        if self._tcp is not None:
            self._tcp.close()
            with contextlib.suppress(asyncio.CancelledError):
                await self._tcp.wait_closed()


def udp_socket(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    """A bound UDP socket with a large receive queue (bursts), optionally SO_REUSEPORT."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    with contextlib.suppress(OSError):  # the OS may cap it
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.bind((host, port))
    sock.setblocking(False)
    return sock
