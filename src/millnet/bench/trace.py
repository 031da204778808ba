"""``millnet bench trace``: EPCIS capture rate and trace latency over three enterprises.

Three enterprise nodes (processes, loopback): A (prefix 88.100.1) assembles products from
subassemblies, B (88.100.2) makes the components and their parts, C (88.100.3) commissions
the raw materials. Every product has a 5-level bill of materials with a fan-out of 2 (product,
2 subassemblies at A; 4 components and 8 parts at B; 16 materials at C): 31 events, of which
A holds 3, B 12 and C 16. The events go through the real capture path (HTTP, schema
validation, event hash, store) in documents of ``batch`` events, to the three nodes at once.
Then ``traces`` finished products are traced upstream through 5 levels, which crosses from A to
B to C over HTTP. The figures: events captured per second (wall time of the whole capture),
trace p50/p99; the check: every event stored once (counted in each node's database).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import httpx
import psutil
from rich.console import Console

from millnet.trace.ehash import STANDARD_CONTEXT
from millnet.trace.store import EpcisStore

EVENTS_PER_PRODUCT: Final = 31
T0: Final = 1_767_225_600  # 2026-01-01T00:00:00Z
NODES: Final = (("ent-a", "88.100.1"), ("ent-b", "88.100.2"), ("ent-c", "88.100.3"))


def _hdl(handle: str) -> str:
    return "https://hdl.handle.net/" + handle


def _time(product: int, step: int) -> str:
    seconds = T0 + product * 60 + step
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + ".000Z"


def _made(inputs: list[str], output: str, when: str, line: str) -> dict[str, Any]:
    return {"type": "TransformationEvent", "eventTime": when, "eventTimeZoneOffset": "+00:00",
            "inputEPCList": [_hdl(i) for i in inputs], "outputEPCList": [_hdl(output)],
            "bizStep": "assembling", "disposition": "in_progress",
            "readPoint": {"id": f"urn:millnet:isa95:{line}"}}


def product_events(p: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]],
                                    list[dict[str, Any]]]:
    """The events of product ``p`` at A, B and C."""
    a: list[dict[str, Any]] = []
    b: list[dict[str, Any]] = []
    c: list[dict[str, Any]] = []
    subs = [f"88.100.1/S-{p}-{i}" for i in range(2)]
    a.append(_made(subs, f"88.100.1/P-{p}", _time(p, 50), "final"))
    for i, sub in enumerate(subs):
        comps = [f"88.100.2/C-{p}-{i}-{j}" for j in range(2)]
        a.append(_made(comps, sub, _time(p, 40), "sub"))
        for j, comp in enumerate(comps):
            parts = [f"88.100.2/K-{p}-{i}-{j}-{k}" for k in range(2)]
            b.append(_made(parts, comp, _time(p, 30), "comp"))
            for k, part in enumerate(parts):
                mats = [f"88.100.3/M-{p}-{i}-{j}-{k}-{m}" for m in range(2)]
                b.append(_made(mats, part, _time(p, 20), "part"))
                c.extend({"type": "ObjectEvent", "eventTime": _time(p, 10),
                          "eventTimeZoneOffset": "+00:00", "epcList": [_hdl(mat)],
                          "action": "ADD", "bizStep": "commissioning",
                          "readPoint": {"id": "urn:millnet:isa95:furnace"}} for mat in mats)
    return a, b, c


def _documents(products: int, batch: int, node: int) -> Iterator[bytes]:
    events: list[dict[str, Any]] = []
    for p in range(products):
        events += product_events(p)[node]
        if len(events) >= batch:
            yield _doc(events)
            events = []
    if events:
        yield _doc(events)


def _doc(events: list[dict[str, Any]]) -> bytes:
    return json.dumps({"@context": [STANDARD_CONTEXT], "type": "EPCISDocument",
                       "schemaVersion": "2.0", "creationDate": "2026-01-01T00:00:00Z",
                       "epcisBody": {"eventList": events}}).encode()


class _Node:
    def __init__(self, data: Path, name: str, prefix: str, peers: list[dict[str, str]]) -> None:
        self.data = data / name
        self.proc = subprocess.Popen(  # noqa: S603 - this interpreter, our module
            [sys.executable, "-m", "millnet.bench.trace_node", str(self.data), name, prefix,
             json.dumps(peers)], stdout=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"})
        assert self.proc.stdout is not None
        info = json.loads(self.proc.stdout.readline())
        self.url = f"http://127.0.0.1:{info['port']}"
        self.viewer, self.operator = info["viewer"], info["operator"]
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code < 500:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start")
            time.sleep(0.1)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()

    def cpu(self) -> float:
        times = psutil.Process(self.proc.pid).cpu_times()
        return float(times.user + times.system)

    def count(self) -> int:
        store = EpcisStore.open(f"sqlite:///{self.data / 'registry.sqlite'}")
        try:
            return sum(store.count(t) for t in (1, 2, 3))
        finally:
            store.close()


def _capture(node: _Node, products: int, batch: int, index: int, out: dict[str, Any],
             deadline: float) -> None:
    stored = dupes = refused = unsent = 0
    with httpx.Client(timeout=120) as client:
        for body in _documents(products, batch, index):
            if time.monotonic() > deadline:
                out["timed_out"] = True
                unsent += body.count(b'"eventTime"')
                continue
            reply = client.post(node.url + "/api/v1/epcis/capture", content=body, headers={
                "Authorization": f"Bearer {node.operator}",
                "Content-Type": "application/json"})
            if reply.status_code != 201:
                refused += 1
                out.setdefault("errors", []).append(reply.text[:300])
                continue
            answer = reply.json()
            stored += answer["stored"]
            dupes += answer["duplicates"]
    out.update(stored=stored, duplicates=dupes, refused_documents=refused, unsent=unsent)


def run_trace_bench(*, events: int = 50_000, traces: int = 200, batch: int = 1000,
                    limit: float = 60.0, console: Console) -> dict[str, Any]:
    products = max(1, events // EVENTS_PER_PRODUCT)
    total = products * EVENTS_PER_PRODUCT
    with tempfile.TemporaryDirectory(prefix="millnet-bench-trace-") as tmp:
        data = Path(tmp)
        nodes: list[_Node] = []
        try:
            c = _Node(data, *NODES[2], [])
            nodes.append(c)
            b = _Node(data, *NODES[1], [{"prefix": "88.100.3", "url": c.url + "/api/v1/trace/",
                                         "token": c.viewer}])
            nodes.append(b)
            a = _Node(data, *NODES[0], [{"prefix": "88.100.2", "url": b.url + "/api/v1/trace/",
                                         "token": b.viewer}])
            nodes.append(a)
            console.print(f"3 nodes up; capturing {total:,} events ({products:,} products)")
            cpu0 = [n.cpu() for n in nodes]
            start = time.monotonic()
            outs: list[dict[str, Any]] = [{}, {}, {}]
            threads = [threading.Thread(target=_capture, args=(
                node, products, batch, i, outs[i], start + limit)) for i, node in
                enumerate((a, b, c))]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            capture_s = time.monotonic() - start
            node_cpu = sum(n.cpu() for n in nodes) - sum(cpu0)
            stored = sum(o.get("stored", 0) for o in outs)
            console.print(f"captured {stored:,} in {capture_s:.1f} s; tracing {traces} products")
            cpu1 = sum(n.cpu() for n in nodes)
            latencies, complete = _trace_all(a, products, traces)
            trace_cpu = sum(n.cpu() for n in nodes) - cpu1
            counted = [n.count() for n in (a, b, c)]
        finally:
            for node in nodes:
                node.stop()
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] if latencies else 0
    failures = []
    acknowledged = sum(o.get("stored", 0) for o in outs)
    unsent = sum(o.get("unsent", 0) for o in outs)
    if sum(counted) != acknowledged:
        failures.append(f"{acknowledged - sum(counted)} acknowledged events not stored")
    if any(o.get("duplicates") for o in outs) or any(o.get("refused_documents") for o in outs):
        failures.append("duplicates or refused documents")
    if unsent:
        failures.append(f"capture limit of {limit} s reached: {unsent} events not sent "
                        "(lower --events)")
    if complete != traces:
        failures.append(f"{traces - complete} traces did not reach all 16 materials")
    return {
        "benchmark": "trace", "events": total, "products": products, "nodes": 3,
        "bom_levels": 5, "stored": counted, "not_sent": unsent, "capture_s": round(capture_s, 2),
        "events_captured_per_second": round(sum(counted) / capture_s),
        "node_cpu_s": round(node_cpu, 1),
        "node_cpu_us_per_event": round(node_cpu / max(sum(counted), 1) * 1e6),
        "traces": traces, "traces_complete": complete,
        "trace_p50_ms": round(statistics.median(latencies), 1) if latencies else None,
        "trace_p99_ms": round(p99, 1),
        "trace_node_cpu_ms": round(trace_cpu / max(traces, 1) * 1000, 1),
        "cpu_count": os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 1),
        "ok": not failures, "failures": failures,
        "targets": {"events_captured_per_second": 5000, "trace_p99_ms": 200},
    }


def _trace_all(a: _Node, products: int, traces: int) -> tuple[list[float], int]:
    """Trace ``traces`` products (spread over all) upstream through 5 levels, one at a time:
    the latencies (ms) and how many reached all 16 materials."""
    latencies: list[float] = []
    complete = 0
    with httpx.Client(timeout=30) as client:
        for i in range(traces):
            p = (i * 7919) % products
            t0 = time.perf_counter()
            reply = client.get(f"{a.url}/api/v1/trace/88.100.1/P-{p}",
                               params={"direction": "up", "depth": 5},
                               headers={"Authorization": f"Bearer {a.viewer}"})
            latencies.append((time.perf_counter() - t0) * 1000)
            if reply.status_code == 200 and _leaves(reply.json()) == 16:
                complete += 1
    return latencies, complete


def _leaves(tree: dict[str, Any]) -> int:
    """Materials reached (identifiers of C) in an upstream tree."""
    count = 0
    for kid in tree.get("upstream", []):
        if kid["identifier"].startswith("88.100.3/") and kid.get("status") is None:
            count += 1
        count += _leaves(kid)
    return count
