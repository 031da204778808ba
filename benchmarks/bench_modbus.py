"""Modbus TCP polling throughput: a pymodbus server (another process) with many holding
registers per unit -> one ModbusAdapter per device (one TCP connection each) -> a real
IngestPipeline -> DuckDB.

Every register is a uint16 point; poll groups tick every 10 ms so each adapter polls back to back
(the ticks a running poll overlaps are skipped and counted). Prints one JSON line:
``modbus_points_per_second`` (points polled and handed to the pipeline per second),
``stored`` / ``polled`` / ``lost`` (polled but not stored after the drain; must be 0, else exit 1),
requests, skipped ticks and ``versions``.

    .venv/bin/python benchmarks/bench_modbus.py [--devices 4] [--registers 2000] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import socket
import sys
import tempfile
import time
from pathlib import Path

from millnet.bench.versions import versions
from millnet.connectivity.adapter import FieldSink
from millnet.connectivity.modbus import ModbusAdapter, ModbusSpec
from millnet.ingest.binder import SeriesBinder
from millnet.ingest.metrics import IngestMetrics
from millnet.ingest.pipeline import IngestPipeline
from millnet.registry import Registry
from millnet.telemetry.duckdb_store import DuckDBTelemetryStore


def _serve(port: int, units: int, registers: int) -> None:
    from millnet.sim.modbus_server import serve_bulk

    async def main() -> None:
        async with serve_bulk("127.0.0.1", port, units, registers):
            await asyncio.Event().wait()

    asyncio.run(main())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _spec(port: int, unit: int, registers: int) -> ModbusSpec:
    return ModbusSpec.model_validate({
        "name": f"bench-{unit}", "host": "127.0.0.1", "port": port, "unit_id": unit,
        "timeout_s": 5.0, "poll_groups": [{"name": "default", "interval_ms": 10}],
        "registers": [{"device": f"bench/modbus/line1/dev-{unit}", "point": f"r{a}",
                       "table": "holding", "address": a} for a in range(registers)]})


async def _run(args: argparse.Namespace, port: int, tmp: Path) -> dict[str, object]:
    registry = Registry.open(f"sqlite:///{tmp / 'registry.sqlite'}")
    tenant = registry.create_tenant("bench", "Bench")
    store = DuckDBTelemetryStore(tmp / "t.duckdb", tmp / "archive")
    metrics = IngestMetrics()
    pipe = IngestPipeline(store, metrics)
    binder = SeriesBinder(registry, tenant.id, "bench")
    writer = asyncio.create_task(pipe.run())
    adapters = [ModbusAdapter(_spec(port, u, args.registers),
                              FieldSink(f"bench-{u}", pipe, binder, metrics))
                for u in range(1, args.devices + 1)]
    try:
        tasks = [asyncio.create_task(a.run()) for a in adapters]
        deadline = time.monotonic() + 60
        while not all(a.health().counters.get("polls", 0) for a in adapters):
            if time.monotonic() > deadline:
                raise SystemExit("the adapters never polled: " + "; ".join(
                    a.health().detail for a in adapters))
            await asyncio.sleep(0.05)
        def received() -> float:
            return metrics.registry.get_sample_value("millnet_ingest_samples_received_total") or 0

        first, t0 = received(), time.perf_counter()
        await asyncio.sleep(args.seconds)
        polled, elapsed = received() - first, time.perf_counter() - t0
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await pipe.drain()
        total = received()
        stored = metrics.registry.get_sample_value("millnet_ingest_samples_stored_total") or 0
    finally:
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await writer
        store.close()
        registry.close()
    counters = [a.health().counters for a in adapters]
    return {
        "bench": "modbus", "modbus_points_per_second": round(polled / elapsed),
        "seconds": round(elapsed, 2), "devices": args.devices,
        "registers_per_device": args.registers,
        "polls": sum(c.get("polls", 0) for c in counters),
        "skipped_polls": sum(c.get("skipped_polls", 0) for c in counters),
        "errors": sum(c.get("errors", 0) for c in counters),
        "polled": int(total), "stored": int(stored), "lost": int(total - stored),
        "cpus": os.cpu_count(), "load_avg": [round(x, 2) for x in os.getloadavg()],
        "versions": versions(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--devices", type=int, default=4)
    parser.add_argument("--registers", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    port = _free_port()
    server = multiprocessing.get_context("spawn").Process(
        target=_serve, args=(port, args.devices, args.registers), daemon=True)
    server.start()
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            if time.monotonic() > deadline:
                raise SystemExit("the Modbus server did not start")
            time.sleep(0.1)
        with tempfile.TemporaryDirectory() as tmp:
            result = asyncio.run(_run(args, port, Path(tmp)))
    finally:
        server.terminate()
        server.join(5)
    print(json.dumps(result))
    sys.exit(1 if result["lost"] else 0)


if __name__ == "__main__":
    main()
