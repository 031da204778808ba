"""``millnet bench resolve``: an identifier node under resolution load.

1. Registration: ``handles`` handles (``88.100.5/BENCH-0000000``...: a URL, a JSON data value
   and an HS_ADMIN each) are registered through :meth:`IdentifierService.create_many`, 10,000
   per call, all or nothing: the batch registration path, with authorization and value checks.
   A ``--data-dir`` that already holds them is reused: only a sample of 50,000 new handles is
   registered then, to measure the rate.
2. A real ``millnet id serve`` is started as its own process on that data.
3. UDP: this process (the load process) sends native RESOLUTION requests from ``sockets``
   sockets, keeping ``window`` requests outstanding on each, and times each from send to
   receive (latency includes queueing behind the window), in four phases with the same
   generator: a trivial UDP responder (:mod:`.trivial_udp`, as many processes as the node),
   random benchmark handles (``udp``), the prefix record ``0.NA/88.100.5`` asked as hdllib
   asks for it before anything else (HS_SITE, HS_SITE.6, HS_SERV, HS_NAMESPACE; REC|CA|PO;
   ``prefix``), and the trivial responder again. Each rate is also given as a ratio to the
   trivial responder's (the mean of its two phases): a figure that stops swinging with the
   machine and its other load.
4. REST: ``GET /api/handles/{handle}`` for random handles over HTTP/1.1 keep-alive
   connections, one request outstanding per connection, from this process.

All figures are measured here; nothing is extrapolated. A request lost in any measured phase
fails the run (``ok`` false: exit 1), as does an answer other than SUCCESS.
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
from pathlib import Path
from typing import Any

from rich.console import Console

from millnet.bench import load
from millnet.bench.load import BenchError, Latencies, close_all
from millnet.bench.trivial_udp import TrivialResponder
from millnet.bench.versions import versions
from millnet.connectivity.broker import free_port, wait_for_port
from millnet.identifiers.core.delegation import bootstrap_prefix
from millnet.identifiers.core.service import IdentifierService
from millnet.identifiers.core.store import MAX_BATCH, IdentifierStore
from millnet.protocols.handle import (
    Envelope,
    HandleValue,
    Header,
    Message,
    OpFlag,
    ResolutionRequest,
    ResolutionResponse,
    ServerRecord,
    SiteInfo,
    ValueReference,
    address_octets,
    encode_message,
    make_response,
)

PREFIX = "88.100.5"
STEM = "BENCH-"
ADMIN = ValueReference(f"{PREFIX}/ADMIN", 300)
SAMPLE = 50_000
#: seconds of unmeasured load before each measurement
WARM_UP = 1.0
#: what hdllib asks a prefix record for (``HandleResolver.buildPrefixResolutionRequest``)
PREFIX_TYPES = ("HS_SITE", "HS_SITE.6", "HS_SERV", "HS_NAMESPACE")
_HDLLIB_FLAGS = int(OpFlag.REC | OpFlag.CA | OpFlag.PO)

__all__ = ["BenchError", "Latencies", "rest_load", "run_resolve_bench", "udp_load"]


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


def prefix_requests(count: int = 1024) -> list[bytes]:
    """``0.NA/88.100.5`` as hdllib asks for it before resolving any handle under the prefix:
    the location types, REC|CA|PO, recursion count 1, 2.10 suggesting 2.11."""
    body = ResolutionRequest(f"0.NA/{PREFIX}", (), PREFIX_TYPES)
    header = Header(_HDLLIB_FLAGS, 0xFFFF, 1)
    return [encode_message(Message(body, header, Envelope(2, 10, 2, 11, 0, request_id)))
            for request_id in range(count)]


def _trivial_answer() -> bytes:
    """What the trivial responder sends: an ordinary resolution's answer, as large."""
    values = tuple(_values(0))
    return encode_message(make_response(
        Message(ResolutionRequest(handle_name(0), (), ()), Header(), Envelope(2, 10, 2, 10)),
        ResolutionResponse(handle_name(0), values), now=int(time.time())))


def udp_load(port: int, handles: int, seconds: float, window: int,
             sockets: int = 4) -> Latencies:
    """Resolutions of random benchmark handles (:func:`.load.udp_load`)."""
    return load.udp_load(port, _udp_requests(handles, 65_536), seconds, window, sockets)


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
                close_all(sel, [sock])
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
    close_all(sel, state)
    if errors:
        raise BenchError(f"{errors} REST resolutions did not answer 200")
    return Latencies(len(samples), elapsed, samples, lost, load_cpu)


def _udp_phases(port: int, trivial_port: int, handles: int, seconds: float, window: int,
                sockets: int, console: Console) -> dict[str, Latencies]:
    """The UDP phases, each after an unmeasured warm-up second (processes, page cache): the
    trivial responder, ordinary handles, prefix records, the trivial responder again."""
    ordinary, prefix = _udp_requests(handles, 65_536), prefix_requests()
    plan = (("trivial_before", trivial_port, ordinary), ("udp", port, ordinary),
            ("prefix", port, prefix), ("trivial_after", trivial_port, ordinary))
    phases = {}
    for name, target, requests in plan:
        load.udp_load(target, requests, WARM_UP, window, sockets)
        phases[name] = measured = load.udp_load(target, requests, seconds, window, sockets)
        console.print(f"  {name}: {measured.count / measured.seconds:,.0f}/s, "
                      f"{measured.lost} lost")
    return phases


def losses(measured: dict[str, Latencies]) -> list[str]:
    """One failure per measured phase that lost requests: a benchmark that loses requests
    measures something else than it says, so the run fails (exit 1)."""
    return [f"{name}: {phase.lost} of {phase.count + phase.lost} requests lost"
            for name, phase in measured.items() if phase.lost]


def _ratios(rates: dict[str, float | None], trivial: float) -> dict[str, float | None]:
    return {f"{name}_vs_trivial": round(rate / trivial, 3) if rate and trivial else None
            for name, rate in rates.items()}


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
        with _Node(where, secret, workers) as node, \
                TrivialResponder(_trivial_answer(), workers) as trivial:
            time.sleep(1.0)  # the UDP worker processes start after the port opens
            console.print(f"node pid {node.pid} udp/tcp {node.port} http {node.http_port}, "
                          f"{workers} node processes; UDP load {seconds:.0f} s per phase "
                          f"from {sockets} sockets, {window} outstanding each")
            udp = _udp_phases(node.port, trivial.port, handles, seconds, window, sockets,
                              console)
            console.print(f"REST load {seconds:.0f} s, {connections} connections")
            rest_load(node.http_port, handles, WARM_UP, connections)
            rest = rest_load(node.http_port, handles, seconds, connections)
            console.print(f"REST {rest.count / rest.seconds:,.0f} resolutions/s")
        measured = {**udp, "rest": rest}
        rates = {name: phase.count / phase.seconds for name, phase in measured.items()}
        trivial_rate = (rates["trivial_before"] + rates["trivial_after"]) / 2
        failures = losses(measured)
        summaries = {key: value for name, phase in measured.items()
                     for key, value in phase.summary(name).items()}
        result: dict[str, Any] = {
            "benchmark": "resolve", "ok": not failures, "failures": failures,
            "handles": handles, **summaries,
            "trivial_per_second": round(trivial_rate),
            **_ratios({"udp": rates["udp"], "prefix": rates["prefix"], "rest": rates["rest"]},
                      trivial_rate),
            "prefix_vs_udp": round(rates["prefix"] / rates["udp"], 3) if rates["udp"] else None,
            "register_per_second": round(rate), "registered": registered,
            "warm_up_seconds": WARM_UP, "udp_window": window, "udp_sockets": sockets,
            "workers": workers,
            "rest_connections": connections, "seconds_each": seconds,
            "cpus": os.cpu_count(), "machine": platform.machine(),
            "python": platform.python_version(),
            "load_average": [round(x, 2) for x in os.getloadavg()],
            "versions": versions(),
            "wall_seconds": round(time.perf_counter() - t0, 1),
        }
    return result
