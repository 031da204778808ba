"""``millnet bench flood``: normal resolutions while another process floods deep prefixes.

Finding 3 of issue 9: a UDP request for a handle under a 255-character prefix ``1.1.1...``
cost the node one database query per ancestor prefix (32 ms, against 0.16 ms for a normal
one); about 58 KiB/s of them for 10 s made normal resolutions time out for a minute.

1. A store with ``handles`` handles under ``88.100.5`` (:func:`.resolve.prepare`) and a real
   ``millnet id serve`` on it, in its own process (``workers`` processes).
2. Three phases of ``seconds`` each: *baseline* (no flood), *flood* (a second process sends
   deep-prefix RESOLUTION requests at ``flood_kib`` KiB/s, each under a different prefix so
   that no cache can help, and never reads an answer: a spoofed source would not), *after*.
3. Throughout, this process sends normal resolutions of random existing handles at
   ``probe_rate`` per second, open loop (at fixed times, whatever the answers do), each
   tracked by its own request id: answered with SUCCESS (its latency is kept), or lost when
   unanswered for :data:`LOST_AFTER` seconds.

The result is one JSON line with each phase's p50 / p99 latency and losses, ``"ok": false``
when any normal resolution was lost or answered other than SUCCESS; the command then exits
with status 1: a node that drops resolutions under a flood must not pass quietly.
"""

from __future__ import annotations

import multiprocessing
import os
import platform
import random
import selectors
import socket
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from millnet.protocols.handle import Envelope, Header, Message, ResolutionRequest, encode_message

from .resolve import PREFIX, BenchError, _Node, handle_name, prepare

#: seconds after which an unanswered normal resolution counts as lost
LOST_AFTER = 1.0
#: the flood's prefix: 128 labels, the longest a handle may have (255 characters)
DEEP_LABELS = 128
_TICK = 0.01  # the flooder sends every 10 ms
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_REQUEST_ID = slice(8, 12)
_RESPONSE_CODE = slice(24, 28)
_SUCCESS = (1).to_bytes(4, "big")
PHASES = ("baseline", "flood", "after")


def deep_requests(count: int) -> list[bytes]:
    """``count`` RESOLUTION requests, each for a handle under its own 255-character prefix
    of 128 labels (``0.0.0.1.1...``, ``1.0.0.1.1...``: no two alike among the first 46,656);
    317 octets each."""
    tail = ".1" * (DEEP_LABELS - 3)
    out = []
    for i in range(count):
        head = ".".join(_ALPHABET[i // 36 ** k % 36] for k in range(3))  # 46,656 of them
        prefix = f"{head}{tail}"
        msg = Message(ResolutionRequest(f"{prefix}/x", (), ()), Header(),
                      Envelope(2, 10, 2, 10, 0, i + 1))
        out.append(encode_message(msg))
    return out


def flood(port: int, kib_per_second: float, seconds: float, sent: Any, ready: Any,
          go: Any) -> None:
    """The flooding process: deep-prefix requests at ``kib_per_second`` for ``seconds``,
    paced every 10 ms, from the moment ``go`` is set (``ready`` once the requests are
    built); the number sent goes to ``sent`` (a shared value)."""
    requests = deep_requests(4096)
    per_second = kib_per_second * 1024 / len(requests[0])
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.connect(("127.0.0.1", port))
    ready.set()
    go.wait()
    start = time.perf_counter()
    count = 0
    while (now := time.perf_counter()) < start + seconds:
        due = int((now - start) * per_second)
        while count < due:
            try:
                sock.send(requests[count % len(requests)])
            except BlockingIOError:
                break
            except ConnectionRefusedError:
                pass  # an ICMP error about the answers it never reads
            count += 1
        time.sleep(_TICK)
    sock.close()
    sent.value = count


@dataclass
class Phase:
    """One phase's normal resolutions."""

    name: str
    samples: list[float] = field(default_factory=list)
    sent: int = 0
    lost: int = 0
    errors: int = 0

    def summary(self) -> dict[str, Any]:
        ordered = sorted(self.samples)

        def pct(q: float) -> float | None:
            if not ordered:
                return None
            return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1e3, 3)

        return {f"{self.name}_p50_ms": pct(0.50), f"{self.name}_p99_ms": pct(0.99),
                f"{self.name}_max_ms": pct(1.0), f"{self.name}_sent": self.sent,
                f"{self.name}_answered": len(self.samples), f"{self.name}_lost": self.lost,
                f"{self.name}_errors": self.errors}


class Prober:
    """Normal resolutions at a fixed rate over one UDP socket, tracked by request id."""

    def __init__(self, port: int, handles: int, rate: float) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.connect(("127.0.0.1", port))
        self.sock.setblocking(False)
        self.rate = rate
        self.rng = random.Random(5)  # noqa: S311 - load pattern, not security
        self.handles = handles
        self.in_flight: dict[int, tuple[float, Phase]] = {}
        self.next_id = 1

    def close(self) -> None:
        self.sock.close()

    def run(self, phase: Phase, seconds: float) -> None:
        """Send for ``seconds`` at the rate, receiving and expiring meanwhile."""
        sel = selectors.DefaultSelector()
        sel.register(self.sock, selectors.EVENT_READ)
        start = time.perf_counter()
        try:
            while (now := time.perf_counter()) < start + seconds:
                while phase.sent < int((now - start) * self.rate) + 1:
                    self._send(phase)
                wait = start + (phase.sent / self.rate) - time.perf_counter()
                if sel.select(max(0.0, min(wait, 0.05))):
                    self._receive()
                self._expire()
        finally:
            sel.close()

    def drain(self) -> None:
        """Wait for the requests still in flight: answered or lost."""
        end = time.perf_counter() + LOST_AFTER + 0.1
        while self.in_flight and time.perf_counter() < end:
            time.sleep(0.01)
            self._receive()
            self._expire()
        self._expire(force=True)

    def _send(self, phase: Phase) -> None:
        request_id = self.next_id
        self.next_id += 1
        name = handle_name(self.rng.randrange(self.handles))
        msg = Message(ResolutionRequest(name, (), ()), Header(),
                      Envelope(2, 10, 2, 10, 0, request_id))
        self.in_flight[request_id] = (time.perf_counter(), phase)
        phase.sent += 1
        self.sock.send(encode_message(msg))

    def _receive(self) -> None:
        while True:
            try:
                reply = self.sock.recv(65_536)
            except BlockingIOError:
                return
            now = time.perf_counter()
            entry = self.in_flight.pop(int.from_bytes(reply[_REQUEST_ID], "big"), None)
            if entry is None:
                continue  # already counted lost
            sent, phase = entry
            if now - sent >= LOST_AFTER:
                phase.lost += 1  # answered too late: a client would have given up
            elif reply[_RESPONSE_CODE] != _SUCCESS:
                phase.errors += 1
            else:
                phase.samples.append(now - sent)

    def _expire(self, *, force: bool = False) -> None:
        now = time.perf_counter()
        for request_id, (sent, phase) in list(self.in_flight.items()):
            if force or now - sent >= LOST_AFTER:
                del self.in_flight[request_id]
                phase.lost += 1


def run_flood_bench(*, handles: int = 10_000, seconds: float = 10.0, flood_kib: float = 58.0,
                    probe_rate: float = 100.0, workers: int = 1,
                    console: Console) -> dict[str, Any]:
    if handles < 1 or seconds <= 0 or flood_kib <= 0 or probe_rate <= 0:
        raise BenchError("--handles, --seconds, --flood-kib and --probe-rate must be positive")
    with tempfile.TemporaryDirectory(prefix="millnet-bench-flood-") as tmp:
        where = Path(tmp)
        t0 = time.perf_counter()
        _, _, secret = prepare(where, handles, console)
        with _Node(where, secret, workers) as node:
            time.sleep(1.0)  # UDP worker processes start after the port opens
            phases = {name: Phase(name) for name in PHASES}
            prober = Prober(node.port, handles, probe_rate)
            try:
                prober.run(Phase("warm-up"), 1.0)
                prober.drain()
                console.print(f"baseline: {probe_rate:.0f} resolutions/s for {seconds:.0f} s")
                prober.run(phases["baseline"], seconds)
                console.print(f"flood: {flood_kib:.0f} KiB/s of deep-prefix requests from "
                              f"another process for {seconds:.0f} s")
                ctx = multiprocessing.get_context("spawn")
                sent, ready, go = ctx.Value("q", 0), ctx.Event(), ctx.Event()
                flooder = ctx.Process(target=flood, args=(node.port, flood_kib, seconds, sent,
                                                          ready, go))
                flooder.start()
                try:
                    if not ready.wait(60):
                        raise BenchError("the flooding process did not start")
                    prober.drain()  # the flooder's start-up is not the node's latency
                    go.set()
                    prober.run(phases["flood"], seconds)
                    flooder.join(30)
                finally:
                    if flooder.is_alive():
                        flooder.terminate()
                console.print(f"after: {seconds:.0f} s")
                prober.run(phases["after"], seconds)
                prober.drain()
            finally:
                prober.close()
        size = len(deep_requests(1)[0])
        result: dict[str, Any] = {
            "benchmark": "flood", "handles": handles, "prefix": PREFIX,
            "seconds_each": seconds, "probe_rate": probe_rate, "workers": workers,
            "flood_kib_per_second": flood_kib, "flood_request_bytes": size,
            "flood_requests": int(sent.value),
            "flood_requests_per_second": round(sent.value / seconds),
            **{k: v for phase in phases.values() for k, v in phase.summary().items()},
            "lost_after_seconds": LOST_AFTER,
            "cpus": os.cpu_count(), "machine": platform.machine(),
            "python": platform.python_version(),
            "wall_seconds": round(time.perf_counter() - t0, 1),
        }
    result["failures"] = [f"{name}: {p.lost} normal resolutions lost, {p.errors} failed"
                          for name, p in phases.items() if p.lost or p.errors]
    result["ok"] = not result["failures"]
    return result
