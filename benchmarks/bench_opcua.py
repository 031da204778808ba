"""OPC UA ingest benchmark: the simulated plant -> OpcUaAdapter -> a real node (DuckDB).

The simulator runs in its own process (an asyncua server with ``--variables`` Double variables,
each incremented ``--rate`` times a second once all are monitored, ``--values`` in all); the
node runs in this process: its registry, pipeline and DuckDB store, and the adapter importing
the bench folder by the path rule. Prints one JSON line:
``opcua_notifications_per_second`` (values written by the server / seconds from the first
write until all are stored), ``expected`` (initial values + writes), ``stored``, ``lost``
(expected minus distinct stored), ``server_overflows`` (values the server's queues dropped),
``server_write_seconds`` (how long the server took to write them: when it is close to
``seconds`` the simulator, not the node, sets the pace),
the adapter's counters and ``versions``. Exit code 1 when anything is lost or the limit passes.

    .venv/bin/python benchmarks/bench_opcua.py [--variables 200] [--rate 50] [--values 200000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from millnet.bench.versions import versions
from millnet.config import load_settings
from millnet.connectivity.adapter import FieldSink
from millnet.connectivity.opcua import ImportFolder, OpcUaAdapter, OpcUaSpec
from millnet.ingest.binder import SeriesBinder
from millnet.node import build_node, running
from millnet.sim.opcua_server import free_port, serve_plant


def _serve(port: int, variables: int, rate: float, values: int, out: Any, stop: Any) -> None:
    async def main() -> None:
        async with serve_plant(port=port, animate_s=None, bench_variables=variables,
                               bench_rate_hz=rate, bench_limit=values) as plant:
            out.put(("ready", 0.0))
            while plant.bench_writes < values:  # noqa: ASYNC110 - a counter, no event
                await asyncio.sleep(0.05)
            out.put(("done", plant.bench_started or 0.0, plant.bench_writes, time.time()))
            while not stop.is_set():  # noqa: ASYNC110 - a process's event
                await asyncio.sleep(0.05)

    asyncio.run(main())


async def _run(port: int, variables: int, values: int, data_dir: Path, limit_s: float,
               out: Any) -> dict[str, Any]:
    settings = load_settings(None, environ={}, overrides={
        "node": {"data_dir": str(data_dir)},
        "mqtt": {"enabled": False, "sparkplug": False, "tenant": "bench"},
    })
    node = build_node(settings)
    binder = SeriesBinder(node.registry, node.tenant_id, enterprise="bench")
    sink = FieldSink("opcua-bench", node.pipeline, binder, node.metrics)
    spec = OpcUaSpec(name="bench", endpoint=f"opc.tcp://127.0.0.1:{port}/millnet/",
                     publishing_interval_ms=50,
                     import_folders=[ImportFolder(browse_path="Bench", queue_size=5000)])
    adapter = OpcUaAdapter(spec, sink, data_dir)
    expected = variables + values
    async with running(node, api=False):
        task = asyncio.create_task(adapter.run())
        deadline = time.monotonic() + limit_s
        stored = 0
        done: tuple[Any, ...] | None = None
        while time.monotonic() < deadline:
            stored = int(node.metrics.registry.get_sample_value(
                "millnet_ingest_samples_stored_total") or 0)
            if done is None and not out.empty():
                msg = out.get()
                done = msg if msg[0] == "done" else None
            if stored >= expected and done is not None:
                break
            await asyncio.sleep(0.01)
        finished = time.time()
        health = adapter.health()
        state = str(health.state)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        total, distinct = await asyncio.to_thread(node.store.count_samples)
    started = done[1] if done else None
    lost = max(expected - distinct, 0)
    elapsed = finished - started if started else None
    ok = lost == 0 and stored >= expected
    return {
        "ok": ok,
        "opcua_notifications_per_second": round(values / elapsed) if ok and elapsed else None,
        "variables": variables,
        "values": values,
        "expected": expected,
        "stored": stored,
        "lost": lost,
        "duplicates": total - distinct,
        "distinct": distinct,
        "adapter_state": state,
        "seconds": round(elapsed, 3) if elapsed else None,
        # How long the server took to write them: near ``seconds``, the server is the limit.
        "server_write_seconds": round(done[3] - done[1], 3) if done else None,
        "server_overflows": health.counters.get("server_overflows", 0),
        "adapter": dict(health.counters),
        "cpus": os.cpu_count(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variables", type=int, default=200)
    parser.add_argument("--rate", type=float, default=50.0, help="writes per variable per s")
    parser.add_argument("--values", type=int, default=200_000, help="values written in all")
    parser.add_argument("--limit", type=float, default=120.0, help="seconds before giving up")
    args = parser.parse_args()
    ctx = mp.get_context("spawn")
    out, stop = ctx.Queue(), ctx.Event()
    port = free_port()
    server = ctx.Process(target=_serve, args=(port, args.variables, args.rate, args.values,
                                              out, stop), daemon=True)
    server.start()
    try:
        assert out.get(timeout=60)[0] == "ready"
        with tempfile.TemporaryDirectory(prefix="millnet-bench-opcua-") as tmp:
            result = asyncio.run(_run(port, args.variables, args.values, Path(tmp),
                                      args.limit, out))
    finally:
        stop.set()
        server.join(10)
        if server.is_alive():
            server.kill()
    result["rate_per_variable_hz"] = args.rate
    result["versions"] = {**versions(), "asyncua": metadata.version("asyncua")}
    print(json.dumps(result))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
