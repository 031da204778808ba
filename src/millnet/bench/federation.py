"""``millnet bench federation``: security events through a three-level chain on loopback, with
one secondary killed and restarted mid-run; events per second end to end, lost and duplicated
events, and the time to drain the backlog of the outage.

Set-up: a national node and two secondaries, each a real ``millnet node`` process enrolled with
one-time tokens (:mod:`millnet.bench.federation_chain`); four enterprises, each a process of
:mod:`millnet.bench.federation_load` (the node's federation side, not a full platform node),
two under each secondary. The national node sends the policy ``forward_min_severity = info``
down (``millnet federation policy``), so the secondaries forward every event in full. The
enterprises then send ``rate`` events per second in total, each with a unique id, for
``seconds``; after ``OUTAGE_AT_S`` the first secondary is killed with SIGKILL and started again
on the same data directory ``outage`` seconds later.

Measured at the national node, by event id, from the log of applications its triggers keep
(:func:`~millnet.bench.federation_chain.install_apply_log`: an event applied twice leaves two
rows, which ``fed_events``, an upsert by id, would hide):

* ``events_per_second``: events delivered / seconds from the first send to the last delivery
  (so at most the offered rate, which is why the default offers 6,000/s against the 5,000/s
  target: offered exactly 5,000/s, the outage's tail alone keeps the figure under it);
  ``peak_apply_per_second``: the most applied in one second
  (the catch-up after the outage shows what the chain can take);
* ``lost_events``: sent and never applied; ``duplicate_events``: applications beyond the first
  of an id, plus ids never sent;
* ``drain_seconds``: from the restart of the killed secondary's process to the national node
  having every event its enterprises sent before that moment (``restart_ready_seconds`` of it
  is the process starting up).

The run fails (``ok`` false, exit 1) when an event is lost or duplicated, an enterprise cannot
keep its rate, or the national node has not everything ``limit`` seconds after the first send.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from millnet.bench.federation_chain import (
    ChainNode,
    cpu_seconds,
    install_apply_log,
    issue_token,
    query,
    wait_policy,
)
from millnet.bench.versions import versions
from millnet.errors import MillnetError

OUTAGE_AT_S = 5.0
ENTERPRISES_PER_SECONDARY = 2
TARGET_EPS = 5000.0
TARGET_DRAIN_S = 10.0
MAX_LAG_S = 1.0  # an enterprise this late on its schedule has not kept the rate


@dataclass
class Load:
    """One enterprise load process (see :mod:`millnet.bench.federation_load`)."""

    name: str
    data: Path
    parent: ChainNode
    proc: subprocess.Popen[bytes] | None = None

    def start(self, token: str, rate: float, seconds: float) -> None:
        self.data.mkdir(parents=True)
        with (self.data / "log").open("ab") as out:
            self.proc = subprocess.Popen(  # noqa: S603 - this package's module, our arguments
                [sys.executable, "-m", "millnet.bench.federation_load", str(self.data),
                 self.name, self.parent.url, token, repr(rate), repr(seconds)],
                stdout=out, stderr=subprocess.STDOUT)

    def sent_so_far(self) -> int:
        """Events enqueued until now: the last seq of its upward outbox."""
        rows = query(self.data / "load.sqlite",
                     "SELECT last_seq FROM federation_outbox_state WHERE peer = '^parent'")
        return int(str(rows[0][0])) if rows else 0

    def result(self) -> dict[str, Any] | None:
        path = self.data / "sent"
        return json.loads(path.read_text()) if path.exists() else None

    def check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            log = (self.data / "log").read_text(errors="replace")[-2000:]
            raise MillnetError(f"enterprise {self.name} exited ({self.proc.returncode}): {log}")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def _wait(what: str, done: Callable[[], bool], deadline: float,
          loads: Sequence[Load] = ()) -> None:
    while not done():
        for load in loads:
            load.check_alive()
        if time.monotonic() > deadline:
            raise MillnetError(f"timed out: {what}")
        time.sleep(0.05)


def set_up(root: Path, rate: float, seconds: float,
           console: Console) -> tuple[ChainNode, list[ChainNode], list[Load]]:
    """The chain, every node enrolled and every enterprise ready to send."""
    nat = ChainNode("nat", "national", root)
    secs = [ChainNode(f"sec-{k}", "secondary", root) for k in (1, 2)]
    nat.data.mkdir(parents=True)
    tokens = [issue_token(nat, s.name, "310000", "C", f"88.{k}", role="secondary")
              for k, s in enumerate(secs, 1)]
    install_apply_log(nat.db)
    nat.start()
    nat.wait_ready()
    console.print(f"national node on {nat.url}")
    for sec in secs:
        sec.data.mkdir(parents=True)
    with ThreadPoolExecutor(len(secs)) as pool:  # two CLI processes at once
        list(pool.map(lambda st: st[0].cli("federation", "enroll", "--parent", nat.url,
                                           "--token", st[1]), zip(secs, tokens, strict=True)))
    for sec in secs:
        sec.start()
    nat.cli("federation", "policy", "--min-severity", "info")
    loads = [Load(f"ent-{k}-{j}", root / f"ent-{k}-{j}", sec)
             for k, sec in enumerate(secs, 1) for j in range(1, ENTERPRISES_PER_SECONDARY + 1)]
    each = rate / len(loads)
    for sec in secs:
        sec.wait_ready()
        wait_policy(sec, "info")
    console.print("secondaries enrolled, policy: forward every event")
    for load in loads:
        load.start(issue_token(load.parent, load.name, "310100", "C34", "88.9"), each, seconds)
    _wait("the enterprises enrolled", lambda: all((x.data / "ready").exists() for x in loads),
          time.monotonic() + 60, loads)
    return nat, secs, loads


@dataclass
class Outage:
    victim: ChainNode
    restart_at: float = 0.0  # wall clock, when the process was started again
    ready_s: float = 0.0  # from the restart until it answered its health route
    sent_before: dict[str, int] | None = None  # per enterprise under it: events sent by then


def outage(victim: ChainNode, loads: list[Load], start: float, seconds: float) -> Outage:
    """Kill the victim with SIGKILL ``OUTAGE_AT_S`` after the start, restart it ``seconds``
    later on the same data directory."""
    time.sleep(max(0.0, start + OUTAGE_AT_S - time.time()))
    victim.kill()
    time.sleep(seconds)
    victim.start()
    out = Outage(victim, time.time())
    out.sent_before = {x.name: x.sent_so_far() for x in loads if x.parent is victim}
    victim.wait_ready()
    out.ready_s = time.time() - out.restart_at
    return out


def delivered(nat: ChainNode) -> int:
    return int(str(query(nat.db, "SELECT COUNT(*) FROM bench_applied")[0][0]))


def measure(nat: ChainNode, secs: list[ChainNode], loads: list[Load], *, seconds: float,
            outage_s: float, limit: float, console: Console) -> dict[str, Any]:
    start = time.time() + 0.5
    for load in loads:
        (load.data / "go").write_text(repr(start))
    deadline = time.monotonic() + 0.5 + limit
    console.print(f"sending for {seconds:g} s; {secs[0].name} killed at {OUTAGE_AT_S:g} s "
                  f"for {outage_s:g} s")
    down = outage(secs[0], loads, start, outage_s)
    console.print(f"{secs[0].name} restarted, serving after {down.ready_s:.1f} s")
    _wait("the enterprises to finish sending", lambda: all(x.result() for x in loads),
          time.monotonic() + seconds + 30, loads)
    results = {x.name: x.result() or {} for x in loads}
    total = sum(int(r["sent"]) for r in results.values())
    while delivered(nat) < total and time.monotonic() < deadline:
        time.sleep(0.25)
    timed_out = time.monotonic() >= deadline
    rows = query(nat.db, "SELECT origin, event_id, at FROM bench_applied")
    out = figures(rows, results, down, start, timed_out)
    # Where the CPU went (the killed secondary: its second process only).
    out["cpu_seconds"] = {n.name: round(cpu_seconds(n.proc), 1) for n in [nat, *secs]} | {
        "enterprises": round(sum(cpu_seconds(x.proc) for x in loads), 1)}
    # Where what is missing waits: each sender's upward outbox at the end.
    out["waiting_at_end"] = {n.name: waiting(n.db) for n in secs} | {
        x.name: waiting(x.data / "load.sqlite") for x in loads}
    # Counted as lost when the limit passed, but still queued on their way up: late, not gone.
    out["queued_at_end"] = sum(out["waiting_at_end"].values())
    return out


def waiting(db: Path) -> int:
    rows = query(db, "SELECT depth FROM federation_outbox_state WHERE peer = '^parent'")
    return int(str(rows[0][0])) if rows else 0


def figures(rows: list[tuple[Any, ...]], results: dict[str, dict[str, Any]], down: Outage,
            start: float, timed_out: bool) -> dict[str, Any]:
    counts = Counter(str(r[1]) for r in rows)
    first_at: dict[str, float] = {}
    for _, event_id, at in rows:
        first_at[str(event_id)] = min(float(at), first_at.get(str(event_id), float(at)))
    sent = {f"{name}-{i}" for name, r in results.items() for i in range(1, int(r["sent"]) + 1)}
    lost = len(sent - counts.keys())
    duplicates = sum(n - 1 for n in counts.values()) + len(counts.keys() - sent)
    first_send = min(float(r["first"]) for r in results.values())
    last_delivery = max(first_at.values(), default=first_send)
    backlog = [f"{name}-{i}" for name, n in (down.sent_before or {}).items()
               for i in range(1, n + 1)]
    backlog_in = all(e in first_at for e in backlog)
    drained = max((first_at.get(e, 0.0) for e in backlog), default=down.restart_at)
    per_second = Counter(int(at) for at in first_at.values())
    lag = max(float(r["lag_max_s"]) for r in results.values())
    eps = len(sent & counts.keys()) / max(1e-9, last_delivery - first_send)
    failures = []
    if lost:
        failures.append(f"{lost} events lost")
    if duplicates:
        failures.append(f"{duplicates} events applied more than once")
    if lag > MAX_LAG_S:
        failures.append(f"an enterprise fell {lag:.1f} s behind its schedule")
    if timed_out:
        failures.append("not delivered within the time limit")
    return {
        "ok": not failures, "failures": failures,
        "events_per_second": round(eps), "lost_events": lost, "duplicate_events": duplicates,
        "drain_seconds": round(drained - down.restart_at, 2) if backlog_in else None,
        "restart_ready_seconds": round(down.ready_s, 2),
        "sent_events": len(sent), "delivered_events": len(counts),
        "peak_apply_per_second": max(per_second.values(), default=0),
        "seconds_to_last_delivery": round(last_delivery - first_send, 2),
        "outage_backlog_events": len(backlog), "send_lag_max_s": lag,
        "started_late_s": round(first_send - start, 3),
        "targets_met": {"events_per_second": eps >= TARGET_EPS, "lost": lost == 0,
                        "duplicated": duplicates == 0,
                        "drain": backlog_in and drained - down.restart_at <= TARGET_DRAIN_S},
    }


def run_federation_bench(*, seconds: float = 30.0, rate: float = 6000.0, outage: float = 10.0,
                         limit: float = 60.0, console: Console) -> dict[str, Any]:
    if seconds <= OUTAGE_AT_S + outage:
        raise MillnetError(f"--seconds must exceed {OUTAGE_AT_S:g} + --outage: the secondary is "
                           "killed and restarted while events are sent")
    root = Path(tempfile.mkdtemp(prefix="millnet-fedbench-"))
    nat: ChainNode | None = None
    secs: list[ChainNode] = []
    loads: list[Load] = []
    began = time.monotonic()
    try:
        nat, secs, loads = set_up(root, rate, seconds, console)
        setup_s = time.monotonic() - began
        result = measure(nat, secs, loads, seconds=seconds, outage_s=outage, limit=limit,
                         console=console)
    finally:
        for load in loads:
            load.kill()
        for node in [*secs, *([nat] if nat else [])]:
            node.kill()
        shutil.rmtree(root, ignore_errors=True)
    return {"bench": "federation", **result, "rate": rate, "seconds": seconds,
            "outage_seconds": outage, "limit_seconds": limit, "nodes": {
                "national": 1, "secondary": len(secs), "enterprise": len(loads)},
            "setup_seconds": round(setup_s, 1), "cpu_count": os.cpu_count(),
            "machine": platform.machine(), "versions": versions()}
