"""``millnet bench ingest``: Sparkplug B edge nodes -> real Mosquitto -> node -> DuckDB.

Measures, on this machine, points per second from the first publish until every point is
queryable (committed in the store), bytes per stored point (used database blocks per sample after
a checkpoint: ``bytes_per_point_hot`` as ingested, in arrival order; ``bytes_per_point`` after the
compaction the node's maintenance applies to closed days), and the node process's peak resident
memory. Publishers run in separate processes; the broker is a private
Mosquitto on a free port; the node runs in this process with its API off.

The run fails (``ok`` false, the reasons in ``failures``, exit code 1 from the CLI) when a point is
lost (``lost_points``: expected minus distinct (series, timestamp) stored), stored twice
(``duplicate_points``), when any message or metric is rejected, or when the time limit passes:
a benchmark that loses data reports no rate. ``cpu_hogs`` starts busy processes beside the node
so that the run shows whether the node keeps up on a busy machine.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import multiprocessing as mp
import os
import platform
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import Progress

from millnet.bench.edge_load import LoadResult, publish_load
from millnet.bench.versions import versions
from millnet.config import load_settings
from millnet.connectivity.broker import Mosquitto, find_mosquitto
from millnet.errors import MillnetError
from millnet.node import build_node, running
from millnet.telemetry.duckdb_store import DuckDBTelemetryStore
from millnet.telemetry.retention import NS_PER_DAY


def run_ingest_bench(*, points: int = 6_000_000, publishers: int = 1,
                     metrics_per_message: int = 100, devices: int = 10, qos: int = 1,
                     console: Console | None = None, limit_s: float = 120.0,
                     cpu_hogs: int = 0) -> dict[str, Any]:
    binary = find_mosquitto()
    if binary is None:
        raise MillnetError("bench ingest needs the mosquitto binary (apt-get install mosquitto)")
    console = console or Console(stderr=True)
    with tempfile.TemporaryDirectory(prefix="millnet-bench-") as tmp:
        broker = Mosquitto(binary, Path(tmp) / "mosquitto")
        broker.start()
        hogs = [mp.get_context("spawn").Process(target=_spin, daemon=True)
                for _ in range(cpu_hogs)]
        for hog in hogs:
            hog.start()
        try:
            result = asyncio.run(_run(broker.port, Path(tmp) / "node", points, publishers,
                                      metrics_per_message, devices, qos, console, limit_s))
        finally:
            for hog in hogs:
                hog.kill()
            broker.stop()
    result["cpu_hogs"] = cpu_hogs
    return result


def _spin() -> None:
    while True:
        pass


async def _run(port: int, data_dir: Path, points: int, publishers: int, mpm: int, devices: int,
               qos: int, console: Console, limit_s: float) -> dict[str, Any]:
    settings = load_settings(None, environ={}, overrides={
        "node": {"data_dir": str(data_dir)},
        "mqtt": {"host": "127.0.0.1", "port": port, "tenant": "bench"},
    })
    node = build_node(settings)
    loop = asyncio.get_running_loop()
    per_publisher = points // publishers
    async with running(node, api=False):
        # The host must be subscribed before the first birth, or the births are missed.
        assert node.sparkplug is not None
        await node.sparkplug.connected.wait()
        console.print(f"publishing {per_publisher * publishers:,} points from {publishers} "
                      f"process(es), {mpm} metrics per message ...")
        with cf.ProcessPoolExecutor(publishers, mp_context=mp.get_context("spawn")) as pool:
            futures = [loop.run_in_executor(pool, publish_load, port, i, devices, mpm,
                                            per_publisher, qos) for i in range(publishers)]
            loads: list[LoadResult] = list(await asyncio.gather(*futures))
        expected = sum(r.data_points + r.birth_points for r in loads)
        first = min(r.first_publish for r in loads)
        stored = await _wait_stored(node, expected, first + limit_s, console)
        done = time.time()
        total, distinct = await asyncio.to_thread(node.store.count_samples)
        hot = await asyncio.to_thread(_bytes_per_point, node.store)
        # What the node's daily maintenance does to closed days, applied to the whole run.
        await asyncio.to_thread(node.store.compact, time.time_ns() + 2 * NS_PER_DAY)
        compacted = await asyncio.to_thread(_bytes_per_point, node.store)
    elapsed = done - first
    rejected = _rejected(node)
    failures = []
    if distinct < expected:
        failures.append(f"{expected - distinct} points lost")
    if total > distinct:
        failures.append(f"{total - distinct} points stored twice")
    if rejected:
        failures.append(f"rejected: {rejected}")
    if stored < expected:
        failures.append(f"time limit of {limit_s:.0f} s passed")
    return {
        "ok": not failures,
        "failures": failures,
        "points_per_second": round(stored / elapsed) if not failures else None,
        "points": stored,
        "expected_points": expected,
        "lost_points": expected - distinct,
        "duplicate_points": total - distinct,
        "seconds": round(elapsed, 3),
        "bytes_per_point": compacted,
        "bytes_per_point_hot": hot,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "publishers": publishers,
        "metrics_per_message": mpm,
        "qos": qos,
        "messages": sum(r.messages for r in loads),
        "rejected": rejected,
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "versions": versions(),
    }


async def _wait_stored(node: Any, expected: int, deadline: float, console: Console) -> int:
    # Polls a counter: "queryable" means committed, which the store reports only as a count.
    stored = 0
    with Progress(*Progress.get_default_columns(), console=console, transient=True) as bar:
        task = bar.add_task("stored", total=expected)
        while time.time() < deadline:
            stored = int(node.metrics.registry.get_sample_value(
                "millnet_ingest_samples_stored_total") or 0)
            bar.update(task, completed=stored)
            if stored >= expected:
                break
            await asyncio.sleep(0.02)
    return stored


def _bytes_per_point(store: DuckDBTelemetryStore) -> float:
    """Used database blocks per stored sample, after a checkpoint."""
    store.checkpoint()
    stats = store.stats()
    return round(stats.db_used_bytes / max(stats.rows, 1), 3)


def _rejected(node: Any) -> dict[str, int]:
    out = {}
    for metric in node.metrics.registry.collect():
        for sample in metric.samples:
            if sample.name == "millnet_ingest_rejected_total":
                out[sample.labels["reason"]] = int(sample.value)
    return out
