"""Backpressure at the socket: an aiomqtt client that stops reading while its queue is full.

MQTT 5's Receive Maximum would bound the messages a broker sends before they are acknowledged,
but a peer cannot be trusted to honour it: Debian's Mosquitto 2.0.11 forgets the quota after the
first PUBACK, and QoS 0 has no quota at all. aiomqtt's answer to a full queue is to drop the
message. This client never drops: when its queue holds ``high_water`` messages or
``high_bytes`` payload bytes, it stops reading the socket (``remove_reader``); the kernel's
receive buffer fills, TCP's window closes, and the broker holds the backlog, as brokers are
built to. Reading resumes when the consumer has taken the queue down to half of both marks.

One read callback takes what the socket holds, up to ``READ_BUDGET`` packets (paho's
``loop_read`` reads about one packet per call: a callback per packet made every message wait
for a turn of the event loop, tens of milliseconds on a busy node), checking the marks after
each packet, so the queue overshoots a mark by at most one packet and memory stays bounded.

Flow control starts when the owner calls :meth:`FlowControlledClient.start_flow_control`,
right after connecting, and the owner consumes the queue while it subscribes: SUBACK and PUBACK
arrive behind whatever the broker sends first (a persistent session's backlog, which with
MQTT 3.1.1 or a broker without an in-flight limit can be the whole backlog), so the socket must
be read again as the consumer drains the queue.

aiomqtt 2.x registers its socket reader in a private callback; this subclass registers its own
(the same few lines: ``loop_read`` until the TLS buffer is empty, errors end the connection) so
that it can remove and restore it. Tested against the pinned aiomqtt (see the lock file).
"""

from __future__ import annotations

import asyncio
import select
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiomqtt
import paho.mqtt.client as paho

# Packets read per readable event at most, so that one busy connection does not hold the loop.
READ_BUDGET = 128


def _more_to_read(sock: Any) -> bool:
    """Whether the socket holds more for paho: TLS bytes already decrypted, or bytes in the
    kernel's buffer (a zero-timeout poll: cheaper than a loop iteration per packet)."""
    if sock is None:
        return False
    pending = getattr(sock, "pending", None)
    if pending is not None and pending() > 0:
        return True
    return bool(select.select([sock], [], [], 0)[0])


class _Queue(asyncio.Queue[aiomqtt.Message]):
    """aiomqtt's incoming queue, unbounded, telling its client how full it is and when the
    message it gave last came off the socket (``arrived_ns``: the time it entered the node)."""

    def __init__(self, maxsize: int = 0) -> None:
        super().__init__(0)
        self.bytes = 0
        self.on_get: Any = None
        self._arrivals: deque[int] = deque()
        self.arrived_ns = 0

    def put_nowait(self, item: aiomqtt.Message) -> None:
        super().put_nowait(item)
        self._arrivals.append(time.time_ns())
        self.bytes += _size(item)

    def get_nowait(self) -> aiomqtt.Message:
        item = super().get_nowait()
        self.arrived_ns = self._arrivals.popleft()
        self.bytes -= _size(item)
        if self.on_get is not None:
            self.on_get()
        return item


def _size(message: aiomqtt.Message) -> int:
    payload = message.payload
    return len(payload) if isinstance(payload, bytes | bytearray | str) else 8


class FlowControlledClient(aiomqtt.Client):
    """An aiomqtt client whose socket is read only while its message queue has room."""

    def __init__(self, *args: Any, high_water: int = 1_000, high_bytes: int = 32 << 20,
                 on_pause: Callable[[int], None] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, queue_type=_Queue, max_queued_incoming_messages=0, **kwargs)
        self._high = high_water
        self._high_bytes = high_bytes
        self._reader: tuple[int, Any] | None = None
        self.paused = False
        self._on_pause = on_pause
        self._flow = False
        self._incoming.on_get = self._maybe_resume

    def start_flow_control(self) -> None:
        """From now on, stop reading the socket while the queue is full."""
        self._flow = True

    @property
    def _incoming(self) -> _Queue:
        queue = self._queue
        assert isinstance(queue, _Queue)
        return queue

    async def incoming(self) -> AsyncIterator[aiomqtt.Message]:
        """The messages, as ``client.messages`` gives them, without its task and
        ``asyncio.wait`` per message while the queue holds some (a tenth of the node's time
        at full ingest rate); it waits as aiomqtt does, for a message or the disconnection,
        only when the queue is empty."""
        queue, waiting = self._incoming, self.messages
        while True:
            yield queue.get_nowait() if queue.qsize() else await waiting.__anext__()

    def queued(self) -> tuple[int, int]:
        """Messages and payload bytes waiting for the consumer."""
        return self._incoming.qsize(), self._incoming.bytes

    @property
    def arrived_ns(self) -> int:
        """When the message the consumer took last was read off the socket (time.time_ns())."""
        return self._incoming.arrived_ns

    def _full(self) -> bool:
        q = self._incoming
        return q.qsize() >= self._high or q.bytes >= self._high_bytes

    def _maybe_resume(self) -> None:
        q = self._incoming
        if (self.paused and self._reader is not None
                and q.qsize() <= self._high // 2 and q.bytes <= self._high_bytes // 2):
            fd, callback = self._reader
            self._loop.add_reader(fd, callback)
            self.paused = False

    def _on_socket_open(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        fd = sock.fileno()

        def read() -> None:
            try:
                for _ in range(READ_BUDGET):
                    client.loop_read()  # one packet (paho reads as many as it has in flight)
                    if not _more_to_read(client._sock) or (self._flow and self._full()):
                        break
            except Exception as exc:  # noqa: BLE001 - a broken socket ends the connection
                if not self._disconnected.done():
                    self._disconnected.set_exception(exc)
                return
            if self._flow and not self.paused and self._full():
                self._loop.remove_reader(fd)
                self.paused = True
                if self._on_pause is not None:
                    self._on_pause(self._incoming.qsize())

        def register() -> None:
            self._reader = (fd, read)
            self.paused = self._flow = False
            self._loop.add_reader(fd, read)
            self._misc_task = self._loop.create_task(self._misc_loop())

        # paho calls this from the executor thread that runs connect(): hand over to the loop.
        self._loop.call_soon_threadsafe(register)

    def _on_socket_close(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        self._reader = None
        self.paused = False
        super()._on_socket_close(client, userdata, sock)
