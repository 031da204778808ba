"""``millnet bench connectivity``: the field protocols into a node, phase by phase (issue 11).

1. **OPC UA**: the simulated plant (an asyncua server in its own process, ``variables`` Double
   variables written ``rate`` times a second each) -> ``OpcUaAdapter`` -> a node's pipeline ->
   DuckDB; ``opcua_notifications_per_second`` is values written / seconds from the first write
   until all are stored; expected = initial values + writes, lost = expected - distinct stored.
2. **Modbus TCP**: a pymodbus server (own process) with ``registers`` holding registers per
   unit -> one ``ModbusAdapter`` per unit, polling back to back -> pipeline -> DuckDB;
   ``modbus_points_per_second`` is points polled per second; lost = polled - stored after the
   drain.
3. **Edge replay**: an edge node buffers ``points`` readings while its uplink is down, then
   replays them through a private Mosquitto into a central node; ``replay_points_per_second``
   is points / seconds until all are stored; lost = readings missing upstream by (series, ts).

Each phase has its own node, store and time limit (shares of ``seconds``). The result has
``ok`` false, with the reasons in ``failures`` (exit code 1), when any point is lost, anything is
rejected or a phase reaches its time limit. A figure below its target is reported in
``below_target``, not a failure (the machine may be busy).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import os
import socket
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from millnet.bench.versions import versions
from millnet.config import load_settings
from millnet.ingest.metrics import IngestMetrics

TARGETS = {"opcua_notifications_per_second": 5_000, "modbus_points_per_second": 50_000,
           "replay_points_per_second": 50_000}


@dataclass(frozen=True)
class Sizes:
    """How much each phase moves, and its share of the time."""

    opcua_variables: int = 200
    opcua_rate_hz: float = 50.0
    opcua_values: int = 100_000
    modbus_devices: int = 4
    modbus_registers: int = 2_000
    modbus_seconds: float = 10.0
    replay_points: int = 150_000
    replay_series: int = 100

    @classmethod
    def for_seconds(cls, seconds: float) -> Sizes:
        """Sizes that fit ``seconds`` on two cores (the defaults at 60 s)."""
        f = seconds / 60.0
        return cls(opcua_values=max(1_000, int(100_000 * f)),
                   modbus_seconds=max(1.0, 10.0 * f), replay_points=max(2_000, int(150_000 * f)))


def _rejected(metrics: IngestMetrics) -> int:
    return int(sum(s.value for m in metrics.rejected.collect() for s in m.samples
                   if s.name.endswith("_total")))


def _stored(metrics: IngestMetrics) -> int:
    return int(metrics.registry.get_sample_value("millnet_ingest_samples_stored_total") or 0)


def _settings(data_dir: Path, **mqtt: Any) -> Any:
    return load_settings(None, environ={}, overrides={
        "node": {"data_dir": str(data_dir)}, "api": {"port": 0},
        "mqtt": {"enabled": False, "sparkplug": False, "tenant": "bench"} | mqtt})


# -- OPC UA ------------------------------------------------------------------------------------
def _opcua_server(port: int, variables: int, rate: float, values: int, out: Any,
                  stop: Any) -> None:
    from millnet.sim.opcua_server import serve_plant

    async def main() -> None:
        async with serve_plant(port=port, animate_s=None, bench_variables=variables,
                               bench_rate_hz=rate, bench_limit=values) as plant:
            out.put(("ready", 0.0))
            while plant.bench_writes < values:  # noqa: ASYNC110 - a counter, no event
                await asyncio.sleep(0.05)
            out.put(("done", plant.bench_started or 0.0))
            while not stop.is_set():  # noqa: ASYNC110 - another process's event
                await asyncio.sleep(0.05)

    asyncio.run(main())


async def _opcua_node(port: int, sizes: Sizes, tmp: Path, limit_s: float,
                      out: Any) -> dict[str, Any]:
    from millnet.connectivity.opcua import ImportFolder, OpcUaSpec
    from millnet.node import build_node, running

    node = build_node(_settings(tmp))
    spec = OpcUaSpec(name="bench-opcua", endpoint=f"opc.tcp://127.0.0.1:{port}/millnet/",
                     publishing_interval_ms=50,
                     import_folders=[ImportFolder(browse_path="Bench", queue_size=5000)])
    expected = sizes.opcua_variables + sizes.opcua_values
    async with running(node, api=False):
        node.host.add(spec)
        deadline = time.monotonic() + limit_s
        started: float | None = None
        while time.monotonic() < deadline:
            while started is None and not out.empty():
                msg = out.get()
                started = msg[1] if msg[0] == "done" else None
            if started is not None and _stored(node.metrics) >= expected:
                break
            await asyncio.sleep(0.01)
        finished = time.time()
        health = node.host.get("bench-opcua").health
        await node.host.remove("bench-opcua")
        total, distinct = await asyncio.to_thread(node.store.count_samples)
        rejected = _rejected(node.metrics)
    timed_out = started is None or distinct < expected
    elapsed = finished - started if started else None
    return {"opcua_notifications_per_second":
            round(sizes.opcua_values / elapsed) if elapsed and not timed_out else None,
            "expected": expected, "stored": distinct, "lost": max(expected - distinct, 0),
            "duplicates": total - distinct, "rejected": rejected, "timed_out": timed_out,
            "seconds": round(elapsed, 3) if elapsed else None,
            "server_overflows": health.counters.get("server_overflows", 0)}


def opcua_phase(sizes: Sizes, tmp: Path, limit_s: float) -> dict[str, Any]:
    """The simulator in a spawned process, the node in this one."""
    from millnet.sim.opcua_server import free_port

    ctx = mp.get_context("spawn")
    out, stop = ctx.Queue(), ctx.Event()
    port = free_port()
    server = ctx.Process(target=_opcua_server, daemon=True, args=(
        port, sizes.opcua_variables, sizes.opcua_rate_hz, sizes.opcua_values, out, stop))
    server.start()
    try:
        if out.get(timeout=60)[0] != "ready":
            raise RuntimeError("the OPC UA simulator did not start")
        return asyncio.run(_opcua_node(port, sizes, tmp, limit_s, out))
    finally:
        stop.set()
        server.join(10)
        if server.is_alive():
            server.kill()


# -- Modbus ------------------------------------------------------------------------------------
def _modbus_server(port: int, units: int, registers: int) -> None:
    from millnet.sim.modbus_server import serve_bulk

    async def main() -> None:
        async with serve_bulk("127.0.0.1", port, units, registers):
            await asyncio.Event().wait()

    asyncio.run(main())


async def _modbus_node(port: int, sizes: Sizes, tmp: Path, limit_s: float) -> dict[str, Any]:
    from millnet.connectivity.modbus import ModbusSpec
    from millnet.node import build_node, running

    node = build_node(_settings(tmp))
    names = [f"bench-modbus-{u}" for u in range(1, sizes.modbus_devices + 1)]
    metrics = node.metrics
    timed_out = False
    async with running(node, api=False):
        for unit, name in enumerate(names, 1):
            node.host.add(ModbusSpec.model_validate({
                "name": name, "host": "127.0.0.1", "port": port, "unit_id": unit,
                "timeout_s": 5.0, "poll_groups": [{"name": "default", "interval_ms": 10}],
                "registers": [{"device": f"bench/modbus/line1/dev-{unit}", "point": f"r{a}",
                               "table": "holding", "address": a}
                              for a in range(sizes.modbus_registers)]}))
        deadline = time.monotonic() + limit_s
        while not all(node.host.get(n).health.counters.get("polls", 0) for n in names):
            if time.monotonic() > deadline:
                timed_out = True
                break
            await asyncio.sleep(0.05)

        def received() -> float:
            return metrics.registry.get_sample_value("millnet_ingest_samples_received_total") or 0

        first, t0 = received(), time.perf_counter()
        if not timed_out:
            await asyncio.sleep(min(sizes.modbus_seconds, max(deadline - time.monotonic(), 0)))
        polled, elapsed = received() - first, time.perf_counter() - t0
        counters = [node.host.get(n).health.counters for n in names]
        for name in names:
            await node.host.remove(name)
        await node.pipeline.drain()
        total = int(received())
        stored = _stored(metrics)
        rejected = _rejected(metrics)
    return {"modbus_points_per_second": round(polled / elapsed) if polled else None,
            "seconds": round(elapsed, 2), "polled": total, "stored": stored,
            "lost": total - stored, "rejected": rejected, "timed_out": timed_out,
            "polls": sum(c.get("polls", 0) for c in counters),
            "skipped_polls": sum(c.get("skipped_polls", 0) for c in counters),
            "errors": sum(c.get("errors", 0) for c in counters)}


def modbus_phase(sizes: Sizes, tmp: Path, limit_s: float) -> dict[str, Any]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    server = mp.get_context("spawn").Process(
        target=_modbus_server, args=(port, sizes.modbus_devices, sizes.modbus_registers),
        daemon=True)
    server.start()
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            if time.monotonic() > deadline:
                raise RuntimeError("the Modbus simulator did not start")
            time.sleep(0.1)
        return asyncio.run(_modbus_node(port, sizes, tmp, limit_s))
    finally:
        server.terminate()
        server.join(5)


# -- edge replay -------------------------------------------------------------------------------
T0_MS = 1_767_225_600_000


async def _fill_edge(edge: Any, points: int, series: int) -> dict[int, int]:
    """Buffer ``points`` readings while the uplink is down; series id -> how many."""
    from millnet.model import DataType, PointSpec

    sink = edge.sink("bench")
    ids: list[int] = []
    for d in range(10):
        got = await sink.bind(("Bench", "Edge", "L1", f"Dev-{d}"),
                              [PointSpec(f"p{i}", DataType.DOUBLE) for i in range(series // 10)])
        ids += got.values()
    per = dict.fromkeys(ids, 0)
    task = asyncio.create_task(edge.pipeline.run())
    step = 5_000
    for start in range(0, points, step):
        await sink.capacity()  # backpressure: the buffer's writer keeps up, nothing dropped
        n = min(step, points - start)
        for i in range(start, start + n):
            sid = ids[i % len(ids)]
            sink.emit(sid, (T0_MS + i // len(ids)) * 1_000_000, float(i))
            per[sid] += 1
        sink.done(n)
    await edge.pipeline.drain()
    task.cancel()
    return per


async def _replay(sizes: Sizes, tmp: Path, port: int, limit_s: float) -> dict[str, Any]:
    from millnet.connectivity.edge import EdgeSection
    from millnet.connectivity.edge.local import LocalEdge
    from millnet.node import build_node, running

    section = EdgeSection.model_validate({
        "host": "127.0.0.1", "port": port, "group_id": "Bench", "edge_node_id": "Edge.L1",
        "buffer_dir": str(tmp / "edge" / "buffer"), "max_buffer_bytes": 4 << 30})
    edge = LocalEdge.open(section, tmp / "edge")
    points = sizes.replay_points
    per = await _fill_edge(edge, points, max(10, sizes.replay_series))
    central = build_node(_settings(tmp / "central", enabled=True, sparkplug=True,
                                   host="127.0.0.1", port=port, client_id="bench-central"))
    timed_out = False
    async with running(central, api=False):
        started = time.perf_counter()
        deadline = time.monotonic() + limit_s
        async with edge.running():
            while _stored(central.metrics) < points:
                if time.monotonic() > deadline:
                    timed_out = True
                    break
                await asyncio.sleep(0.005)
            stored_s = time.perf_counter() - started
        lost = await asyncio.to_thread(_edge_lost, central, edge, per)
        rejected = _rejected(central.metrics)
    return {"replay_points_per_second": None if timed_out else round(points / stored_s),
            "points": points, "seconds": round(stored_s, 3), "stored": _stored(central.metrics),
            "lost": lost, "rejected": rejected, "timed_out": timed_out}


def _edge_lost(central: Any, edge: Any, per: dict[int, int]) -> int:
    """Readings missing upstream, by (series, timestamp)."""
    registry = central.registry
    by_name = {(registry.get_asset(p.device_id).name, p.name): p.series_id
               for p in registry.list_points(central.tenant_id)}
    lost = 0
    for sid, n in per.items():
        info = edge.buffer.names[sid]
        upstream = by_name.get((info.device[3], info.point))
        rows = central.store.query_range([upstream], T0_MS * 10**6, (T0_MS + 10**9) * 10**6,
                                         limit=10**7) if upstream else []
        lost += n - len({r.ts_ns for r in rows if r.value is not None})
    return lost


def replay_phase(sizes: Sizes, tmp: Path, limit_s: float) -> dict[str, Any]:
    from millnet.connectivity.broker import Mosquitto, find_mosquitto

    binary = find_mosquitto()
    if binary is None:
        raise RuntimeError("the edge replay phase needs the mosquitto binary")
    broker = Mosquitto(binary, tmp / "mosquitto")
    broker.start()
    try:
        return asyncio.run(_replay(sizes, tmp, broker.port, limit_s))
    finally:
        broker.kill()


# -- the whole run -----------------------------------------------------------------------------
PHASES = (("opcua", opcua_phase, 0.45), ("modbus", modbus_phase, 0.25),
          ("replay", replay_phase, 0.30))


def run_connectivity_bench(*, seconds: float = 60.0, sizes: Sizes | None = None,
                           console: Console | None = None) -> dict[str, Any]:
    """Run the three phases; one result with every figure, the accounting and the verdict."""
    console = console or Console(stderr=True)
    sizes = sizes or Sizes.for_seconds(seconds)
    result: dict[str, Any] = {"bench": "connectivity", "seconds_budget": seconds}
    failures: list[str] = []
    lost = 0
    with tempfile.TemporaryDirectory(prefix="millnet-bench-conn-") as tmp:
        for name, phase, share in PHASES:
            limit = max(seconds * share, 10.0)
            console.print(f"{name}: up to {limit:.0f} s")
            began = time.perf_counter()
            try:
                out = phase(sizes, Path(tmp) / name, limit)
            except (RuntimeError, OSError) as exc:
                out = {"error": str(exc), "lost": 0, "rejected": 0, "timed_out": False}
                failures.append(f"{name}: {exc}")
            out["wall_seconds"] = round(time.perf_counter() - began, 2)
            console.print(f"{name}: {json.dumps(out)}")
            result[name] = out
            lost += int(out.get("lost") or 0)
            if out.get("lost"):
                failures.append(f"{name}: {out['lost']} points lost")
            if out.get("rejected"):
                failures.append(f"{name}: {out['rejected']} rejected")
            if out.get("timed_out"):
                failures.append(f"{name}: time limit of {limit:.0f} s reached")
    for key in TARGETS:
        phase_name = key.split("_", 1)[0]
        result[key] = result.get(phase_name, {}).get(key)
    result["lost_points"] = lost
    result["below_target"] = [k for k, v in TARGETS.items()
                              if result[k] is not None and result[k] < v]
    result["ok"] = not failures
    result["failures"] = failures
    result["cpus"] = os.cpu_count()
    result["versions"] = versions()
    return result


def main(argv: list[str] | None = None) -> int:
    """``python -m millnet.bench.connectivity [--seconds 60] [--json]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--json", action="store_true", help="end with one JSON line")
    args = parser.parse_args(argv)
    result = run_connectivity_bench(seconds=args.seconds)
    if args.json:
        print(json.dumps(result))
    else:
        Console().print_json(data=result)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
