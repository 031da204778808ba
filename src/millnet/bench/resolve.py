"""``millnet bench resolve``: an identifier node under resolution load.

1. Registration: ``handles`` handles (``88.100.5/BENCH-0000000``...: a URL, a JSON data value
   and an HS_ADMIN each) are registered through :meth:`IdentifierService.create_many`, 10,000
   per call, all or nothing: the batch registration path, with authorization and value checks.
   A ``--data-dir`` that already holds them is reused: only a sample of 50,000 new handles is
   registered then, to measure the rate.
2. A real ``millnet id serve`` is started as its own process on that data.
3. UDP: this process (the load process) sends native RESOLUTION requests for random handles
   from one socket, keeping ``window`` requests outstanding, and times each from send to
   receive (latency includes queueing behind the window).
4. REST: ``GET /api/handles/{handle}`` for random handles over HTTP/1.1 keep-alive
   connections, one request outstanding per connection, from this process.

All figures are measured here; nothing is extrapolated.
"""

from __future__ import annotations

import json
import os
import platform
import random
import secrets
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from millnet.connectivity.broker import free_port, wait_for_port
from millnet.errors import MillnetError
from millnet.identifiers.delegation import bootstrap_prefix
from millnet.identifiers.service import IdentifierService
from millnet.identifiers.store import MAX_BATCH, IdentifierStore
from millnet.protocols.handle import (
    Envelope,
    HandleValue,
    Header,
    Message,
    ResolutionRequest,
    ServerRecord,
    SiteInfo,
    ValueReference,
    address_octets,
    encode_message,
)

PREFIX = "88.100.5"
STEM = "BENCH-"
ADMIN = ValueReference(f"{PREFIX}/ADMIN", 300)
SAMPLE = 50_000
#: seconds of unmeasured load before each measurement
WARM_UP = 1.0
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


def handle_name(i: int) -> str:
    return f"{PREFIX}/{STEM}{i:07d}"


def _values(i: int) -> list[HandleValue]:
    data = json.dumps({"template": "equipment", "model": f"P-{i % 500}", "line": i % 60,
                       "serialNumber": f"SN{i:09d}"}, separators=(",", ":"))
    return [HandleValue(1, "URL", f"https://plant.example/api/v1/devices/{i}".encode()),
            HandleValue(2, "MN_DATA", data.encode())]


def register(service: IdentifierService, names: list[tuple[int, str]],
             console: Console) -> float:
    """Register ``names`` in batches; the rate in handles per second, over the time spent in
    :meth:`IdentifierService.create_many` (building each batch's items, the client's part, is
    not counted)."""
    spent = 0.0
    last = time.perf_counter()
    for offset in range(0, len(names), MAX_BATCH):
        batch = [(name, _values(i)) for i, name in names[offset:offset + MAX_BATCH]]
        start = time.perf_counter()
        service.create_many(ADMIN, batch)
        now = time.perf_counter()
        spent += now - start
        if now - last > 5:
            console.print(f"  registered {offset + len(batch):,} of {len(names):,}")
            last = now
    return len(names) / spent


def prepare(data_dir: Path, handles: int, console: Console) -> tuple[float, int, Path]:
    """The store with ``handles`` benchmark handles; (registrations/s, registered, secret)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    secret = data_dir / "admin.secret"
    if not secret.exists():
        secret.write_text(secrets.token_urlsafe(24))
        secret.chmod(0o600)
    site = SiteInfo(servers=(ServerRecord(1, address_octets("127.0.0.1")),))
    with IdentifierStore.open(f"sqlite:///{data_dir / 'identifiers.sqlite'}") as store:
        bootstrap_prefix(store, PREFIX, secret.read_bytes().strip(), site, now=int(time.time()))
        service = IdentifierService(store, [PREFIX])
        have = {name for name in store.iter_handles(PREFIX, batch=10_000)
                if name.startswith(f"{PREFIX}/{STEM}")}
        present = len(have)
        missing = [(i, name) for i in range(handles)
                   if (name := handle_name(i)) not in have]
        if missing:
            console.print(f"registering {len(missing):,} handles, {MAX_BATCH:,} per call")
            rate = register(service, missing, console)
            # As an operator would after a bulk load: fold the write-ahead log into the
            # database, so that readers do not search a log of hundreds of megabytes.
            with store.engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            return rate, len(missing), secret
        run = f"{PREFIX}/RUN{int(time.time())}-"
        console.print(f"{present:,} handles present; registering a sample of {SAMPLE:,}")
        sample = [(i, f"{run}{i:06d}") for i in range(SAMPLE)]
        return register(service, sample, console), SAMPLE, secret


class _Node:
    """``millnet id serve`` in its own process."""

    def __init__(self, data_dir: Path, secret: Path, workers: int) -> None:
        self.port, self.http_port = free_port(), free_port()
        self.log = (data_dir / "node.log").open("w")
        self.proc = subprocess.Popen(  # noqa: S603 - our own CLI, fixed arguments
            [sys.executable, "-m", "millnet", "id", "serve", "--prefix", PREFIX, "--data",
             str(data_dir), "--admin-secret-file", str(secret), "--udp-port", str(self.port),
             "--tcp-port", str(self.port), "--http-port", str(self.http_port),
             "--workers", str(workers)],
            stdout=self.log, stderr=subprocess.STDOUT)

    def __enter__(self) -> _Node:
        try:
            wait_for_port(self.port, 60)
            wait_for_port(self.http_port, 60)
        except Exception:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()

    @property
    def pid(self) -> int:
        return self.proc.pid


def _udp_requests(handles: int, count: int) -> list[bytes]:
    rng = random.Random(7)  # noqa: S311 - load pattern, not security
    out = []
    for request_id in range(count):
        msg = Message(ResolutionRequest(handle_name(rng.randrange(handles)), (), ()), Header(),
                      Envelope(2, 10, 2, 10, 0, request_id))
        out.append(encode_message(msg))
    return out


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


def _close_all(sel: selectors.BaseSelector, socks: Iterable[socket.socket]) -> None:
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


def udp_load(port: int, handles: int, seconds: float, window: int,
             sockets: int = 4) -> Latencies:
    """Resolutions over UDP from ``sockets`` client sockets (as many clients would: the
    server's SO_REUSEPORT workers are chosen by source address), each keeping ``window``
    requests outstanding, for ``seconds``.

    Every request carries its own id and is tracked until answered: an answer counts only if
    it names a request in flight and says SUCCESS (any other code fails the run: every
    handle asked for exists); a request unanswered for :data:`UDP_LOST_AFTER` seconds counts
    as lost, is replaced at once, and its answer, should it come later, is ignored (found by
    review: losses were only noticed when everything went silent, and late answers were
    counted twice)."""
    sel = selectors.DefaultSelector()
    socks = _udp_clients(port, sockets, sel)
    start = time.perf_counter()
    load = _UdpLoad(_udp_requests(handles, 65_536), start + seconds)
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
    _close_all(sel, socks)
    if load.errors:
        raise BenchError(f"{load.errors} UDP resolutions did not answer SUCCESS")
    return Latencies(len(load.samples), elapsed, load.samples, load.lost, load_cpu, load.late)


def _response(buf: bytes) -> tuple[bool, int] | None:
    """(status 200, bytes used) when ``buf`` holds a whole HTTP response, else None."""
    head_end = buf.find(b"\r\n\r\n")
    if head_end < 0:
        return None
    head = buf[:head_end].lower()
    at = head.find(b"content-length:")
    line_end = head.find(b"\r\n", at)
    length = int(head[at + 15:line_end if line_end > 0 else None]) if at >= 0 else 0
    if len(buf) < head_end + 4 + length:
        return None
    return head.startswith(b"http/1.1 200"), head_end + 4 + length


def _rest_connections(port: int, connections: int,
                      sel: selectors.BaseSelector) -> dict[socket.socket, list[Any]]:
    """Keep-alive connections, each with its state: [bytes received, time of its request]."""
    state: dict[socket.socket, list[Any]] = {}
    for _ in range(connections):
        sock = socket.create_connection(("127.0.0.1", port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        sel.register(sock, selectors.EVENT_READ)
        state[sock] = [b"", 0.0]
    return state


def rest_load(port: int, handles: int, seconds: float, connections: int) -> Latencies:
    """``GET /api/handles/...`` over keep-alive connections, one request in flight each. A
    connection the server closes loses its request; so does one unanswered 10 s after the
    end."""
    rng = random.Random(11)  # noqa: S311 - load pattern, not security
    sel = selectors.DefaultSelector()
    state = _rest_connections(port, connections, sel)
    clock = time.perf_counter
    samples: list[float] = []
    errors = 0

    def send(sock: socket.socket) -> None:
        path = f"/api/handles/{handle_name(rng.randrange(handles))}"
        state[sock][1] = clock()
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())

    for sock in state:
        send(sock)
    cpu0 = time.process_time()
    start = clock()
    end = start + seconds
    pending = len(state)
    lost = 0
    while pending:
        for key, _ in sel.select(timeout=5):
            sock = key.fileobj  # type: ignore[assignment]
            entry = state[sock]
            data = sock.recv(262_144)
            if not data:  # the server closed it: its request is lost (found by review)
                lost, pending = lost + 1, pending - 1
                del state[sock]
                _close_all(sel, [sock])
                continue
            entry[0] += data
            done = _response(entry[0])
            if done is None:
                continue
            ok, used = done
            errors += not ok
            entry[0] = entry[0][used:]
            now = clock()
            samples.append(now - entry[1])
            if now < end:
                send(sock)
            else:
                pending -= 1
        if clock() > end + 10:
            lost += pending  # never answered
            break
    elapsed = clock() - start
    load_cpu = time.process_time() - cpu0
    _close_all(sel, state)
    if errors:
        raise BenchError(f"{errors} REST resolutions did not answer 200")
    return Latencies(len(samples), elapsed, samples, lost, load_cpu)


def run_resolve_bench(*, handles: int = 1_000_000, seconds: float = 4.0,
                      data_dir: Path | None = None, window: int = 3, sockets: int = 4,
                      workers: int = 2, connections: int = 8,
                      console: Console) -> dict[str, Any]:
    if handles < 1:
        raise BenchError("--handles must be at least 1")
    with tempfile.TemporaryDirectory(prefix="millnet-bench-resolve-") as tmp:
        where = data_dir or Path(tmp)
        t0 = time.perf_counter()
        rate, registered, secret = prepare(where, handles, console)
        console.print(f"registered {registered:,} handles at {rate:,.0f}/s")
        with _Node(where, secret, workers) as node:
            time.sleep(1.0)  # the UDP worker processes start after the port opens
            console.print(f"node pid {node.pid} udp/tcp {node.port} http {node.http_port}, "
                          f"{workers} node processes; UDP load {seconds:.0f} s from "
                          f"{sockets} sockets, {window} outstanding each")
            # An unmeasured second first: the node's processes and the page cache warm up.
            udp_load(node.port, handles, WARM_UP, window, sockets)
            udp = udp_load(node.port, handles, seconds, window, sockets)
            console.print(f"UDP {udp.count / udp.seconds:,.0f} resolutions/s")
            console.print(f"REST load {seconds:.0f} s, {connections} connections")
            rest_load(node.http_port, handles, WARM_UP, connections)
            rest = rest_load(node.http_port, handles, seconds, connections)
            console.print(f"REST {rest.count / rest.seconds:,.0f} resolutions/s")
        result: dict[str, Any] = {
            "benchmark": "resolve", "handles": handles,
            **udp.summary("udp"), **rest.summary("rest"),
            "register_per_second": round(rate), "registered": registered,
            "warm_up_seconds": WARM_UP, "udp_window": window, "udp_sockets": sockets,
            "workers": workers,
            "rest_connections": connections, "seconds_each": seconds,
            "cpus": os.cpu_count(), "machine": platform.machine(),
            "python": platform.python_version(),
            "wall_seconds": round(time.perf_counter() - t0, 1),
        }
    return result
