"""Edge store-and-forward replay: points per second from the edge buffer into a central node.

An edge node buffers ``--points`` readings (``--series`` points of 10 devices, one reading per
point per millisecond) while its uplink is down; then a central node (its own process-local
platform: Sparkplug host, pipeline, DuckDB) and the uplink start against a private Mosquitto,
and the clock runs until every reading is stored upstream. ``lost_points`` counts readings
missing upstream by (series, ts); any loss exits 1. Prints one JSON line.

    .venv/bin/python benchmarks/bench_edge.py [--points 200000] [--series 100]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from millnet.bench.versions import versions
from millnet.config import load_settings
from millnet.connectivity.broker import Mosquitto, find_mosquitto
from millnet.connectivity.edge import EdgeSection
from millnet.connectivity.edge.local import LocalEdge
from millnet.model import DataType, PointSpec
from millnet.node import build_node, running

T0 = 1_767_225_600_000


async def fill(edge: LocalEdge, points: int, series: int) -> dict[int, int]:
    """Buffer ``points`` readings; series id -> how many."""
    sink = edge.sink("bench")
    ids: list[int] = []
    for d in range(10):
        got = await sink.bind(("Bench", "Edge", "L1", f"Dev-{d}"),
                              [PointSpec(f"p{i}", DataType.DOUBLE)
                               for i in range(series // 10)])
        ids += got.values()
    per = {sid: 0 for sid in ids}
    task = asyncio.create_task(edge.pipeline.run())
    for i in range(points):
        sid = ids[i % len(ids)]
        if i % 5000 == 0:
            await sink.capacity()
        sink.emit(sid, (T0 + i // len(ids)) * 1_000_000, float(i))
        per[sid] += 1
        if i % 5000 == 4999:
            sink.done(5000)
    sink.done(points % 5000)
    await edge.pipeline.drain()
    task.cancel()
    return per


async def bench(points: int, series: int, tmp: Path, mosquitto: Mosquitto) -> dict[str, Any]:
    section = EdgeSection.model_validate({
        "host": "127.0.0.1", "port": mosquitto.port, "group_id": "Bench",
        "edge_node_id": "Edge.L1", "buffer_dir": str(tmp / "edge" / "buffer"),
        "max_buffer_bytes": 4 << 30})
    edge = LocalEdge.open(section, tmp / "edge")
    per = await fill(edge, points, series)
    buffered = edge.buffer.status()
    settings = load_settings(None, environ={}, overrides={
        "node": {"data_dir": str(tmp / "central")},
        "mqtt": {"host": "127.0.0.1", "port": mosquitto.port, "client_id": "bench-central"},
        "api": {"port": 0}})
    central = build_node(settings)
    async with running(central, api=False):
        started = time.perf_counter()
        async with edge.running():
            while edge.buffer.status().records:  # noqa: ASYNC110 - a benchmark's poll
                await asyncio.sleep(0.01)
            replay_s = time.perf_counter() - started
            stored = central.metrics.registry
            deadline = time.monotonic() + 60
            name = "millnet_ingest_samples_stored_total"
            while (stored.get_sample_value(name) or 0) < points:
                if time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.005)
            stored_s = time.perf_counter() - started
        pts = {p.series_id: p for p in central.registry.list_points(central.tenant_id)}
        by_name = {(central.registry.get_asset(p.device_id).name, p.name): p.series_id
                   for p in pts.values()}
        lost = 0
        for sid, n in per.items():
            info = edge.buffer.names[sid]
            upstream = by_name.get((info.device[3], info.point))
            rows = central.store.query_range([upstream], T0 * 10**6, (T0 + 10**9) * 10**6,
                                             limit=10**7) if upstream else []
            lost += n - len({r.ts_ns for r in rows if r.value is not None})
    return {"bench": "edge_replay", "points": points, "series": series,
            "buffered_bytes": buffered.bytes, "buffered_records": buffered.records,
            "replay_seconds": round(replay_s, 3), "stored_seconds": round(stored_s, 3),
            "replay_points_per_second": round(points / stored_s),
            "lost_points": lost, "versions": versions()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--points", type=int, default=200_000)
    parser.add_argument("--series", type=int, default=100)
    args = parser.parse_args()
    binary = find_mosquitto()
    if binary is None:
        print("mosquitto not installed", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="millnet-bench-edge-") as tmp:
        broker = Mosquitto(binary, Path(tmp) / "mosquitto")
        broker.start()
        try:
            result = asyncio.run(bench(args.points, max(10, args.series), Path(tmp), broker))
        finally:
            broker.kill()
    print(json.dumps(result))
    return 1 if result["lost_points"] else 0


if __name__ == "__main__":
    sys.exit(main())
