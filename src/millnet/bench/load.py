"""The load generators' common part: UDP requests kept in flight, each tracked by its own id
until answered or lost, and the latencies they measured. One process, one selector loop."""

from __future__ import annotations

import selectors
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from millnet.errors import MillnetError

_REQUEST_ID = slice(8, 12)
_RESPONSE_CODE = slice(24, 28)  # the message header's response code
_SUCCESS = (1).to_bytes(4, "big")
#: seconds after which an unanswered UDP request counts as lost
UDP_LOST_AFTER = 0.5


class BenchError(MillnetError):
    pass


@dataclass
class Latencies:
    count: int
    seconds: float
    samples: list[float]
    lost: int = 0
    #: CPU seconds the load generator itself used: near ``seconds`` means it, not the
    #: server, was the limit
    load_cpu: float | None = None
    #: answers that came after their request was counted lost (not counted as resolutions)
    late: int = 0

    def summary(self, name: str) -> dict[str, Any]:
        ordered = sorted(self.samples)

        def pct(q: float) -> float | None:
            if not ordered:
                return None
            return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1e3, 3)

        return {f"{name}_per_second": round(self.count / self.seconds) if self.seconds else None,
                f"{name}_p50_ms": pct(0.50), f"{name}_p99_ms": pct(0.99),
                f"{name}_requests": self.count, f"{name}_lost": self.lost,
                f"{name}_late": self.late,
                f"{name}_load_cpu_share": round(self.load_cpu / self.seconds, 2)
                if self.load_cpu is not None and self.seconds else None}


def _udp_clients(port: int, count: int, sel: selectors.BaseSelector) -> list[socket.socket]:
    socks = []
    for _ in range(count):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        sock.connect(("127.0.0.1", port))
        sock.setblocking(False)
        sel.register(sock, selectors.EVENT_READ)
        socks.append(sock)
    return socks


def close_all(sel: selectors.BaseSelector, socks: Iterable[socket.socket]) -> None:
    for sock in socks:
        sel.unregister(sock)
        sock.close()


class _UdpLoad:
    """The UDP load's bookkeeping: every request tracked by its own id until answered or
    lost (see :func:`udp_load`)."""

    def __init__(self, requests: list[bytes], end: float) -> None:
        self.requests, self.end = requests, end
        self.in_flight: dict[int, tuple[socket.socket, float]] = {}  # id -> (socket, sent)
        self.samples: list[float] = []
        self.next_id = 1
        self.lost = self.late = self.errors = 0

    def send(self, sock: socket.socket) -> None:
        request_id = self.next_id
        self.next_id = request_id + 1 if request_id < 0x7FFFFFFF else 1
        template = self.requests[request_id % len(self.requests)]
        self.in_flight[request_id] = (sock, time.perf_counter())
        sock.send(b"".join((template[:8], request_id.to_bytes(4, "big"), template[12:])))

    def receive(self, sock: socket.socket) -> None:
        while True:
            try:
                reply = sock.recv(65_536)
            except BlockingIOError:
                return
            now = time.perf_counter()
            entry = self.in_flight.pop(int.from_bytes(reply[_REQUEST_ID], "big"), None)
            if entry is None:
                self.late += 1  # already counted lost (or not ours)
                continue
            if reply[_RESPONSE_CODE] != _SUCCESS:
                self.errors += 1
            else:
                self.samples.append(now - entry[1])
            if now < self.end:
                self.send(sock)

    def expire(self) -> None:
        now = time.perf_counter()
        while self.in_flight:  # the oldest first: dicts keep insertion order
            request_id, (sock, sent) = next(iter(self.in_flight.items()))
            if now - sent < UDP_LOST_AFTER:
                return
            del self.in_flight[request_id]
            self.lost += 1
            if now < self.end:
                self.send(sock)


def udp_load(port: int, requests: list[bytes], seconds: float, window: int,
             sockets: int = 4) -> Latencies:
    """``requests`` (templates: each is sent with a fresh request id) over UDP from
    ``sockets`` client sockets (as many clients would: the server's SO_REUSEPORT workers are
    chosen by source address), each keeping ``window`` requests outstanding, for ``seconds``.

    Every request carries its own id and is tracked until answered: an answer counts only if
    it names a request in flight and says SUCCESS (any other code, or a truncation notice,
    fails the run); a request unanswered for :data:`UDP_LOST_AFTER` seconds counts as lost,
    is replaced at once, and its answer, should it come later, is ignored (found by review:
    losses were only noticed when everything went silent, and late answers were counted
    twice)."""
    sel = selectors.DefaultSelector()
    socks = _udp_clients(port, sockets, sel)
    start = time.perf_counter()
    load = _UdpLoad(requests, start + seconds)
    for sock in socks:
        for _ in range(window):
            load.send(sock)
    cpu0 = time.process_time()
    while load.in_flight:
        for key, _ in sel.select(0.05):
            load.receive(key.fileobj)  # type: ignore[arg-type]
        load.expire()
    elapsed = time.perf_counter() - start
    load_cpu = time.process_time() - cpu0
    close_all(sel, socks)
    if load.errors:
        raise BenchError(f"{load.errors} UDP resolutions did not answer SUCCESS")
    return Latencies(len(load.samples), elapsed, load.samples, load.lost, load_cpu, load.late)
