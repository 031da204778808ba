"""An edge node forwarding to a real central node through a real Mosquitto, link cut included."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

from millnet.connectivity.adapter import FieldSink
from millnet.connectivity.edge import EdgeSection
from millnet.connectivity.edge.local import LocalEdge
from millnet.model import DataType, PointSpec
from millnet.node import Node, build_node, running
from millnet.telemetry.base import SamplePoint
from tests.servers import Mosquitto
from tests.support.nodes import connected, node_settings, until

T0 = 1_767_225_600_000  # 2026-01-01 in ms
DEVICE = ("Plant", "Pumps", "L1", "Pump-1")


def edge_section(port: int, tmp_path: Path, **kw: object) -> EdgeSection:
    return EdgeSection.model_validate({"host": "127.0.0.1", "port": port, "group_id": "Wuxi",
                                       "edge_node_id": "Pumps.L1", "keepalive": 5,
                                       "buffer_dir": str(tmp_path / "edge" / "buffer"), **kw})


async def produce(sink: FieldSink, ids: dict[str, int], start: int, count: int,
                  every_s: float = 0.005) -> None:
    """``count`` readings of ``flow`` at T0 + i ms (one per ms: Sparkplug's resolution)."""
    for i in range(start, start + count):
        await sink.capacity()
        sink.emit(ids["flow"], (T0 + i) * 1_000_000, float(i))
        sink.done(1)
        if i % 20 == 0:
            await asyncio.sleep(every_s)


def central_rows(node: Node, point: str) -> list[SamplePoint]:
    pts = {p.name: p for p in node.registry.list_points(node.tenant_id)}
    if point not in pts:
        return []
    return node.store.query_range([pts[point].series_id], T0 * 10**6, (T0 + 10**7) * 10**6,
                                  limit=1_000_000)


def arrived(node: Node, n: int) -> bool:
    return len({r.ts_ns for r in central_rows(node, "flow") if r.value is not None}) >= n


def check_once(node: Node, n: int, in_flight: range = range(0)) -> None:
    """Every reading arrived exactly once by (series, ts), with its value: births announce
    only delivered values, which the central host does not store again; a point with nothing
    delivered is announced null, which is no sample. Only readings ``in_flight`` when the
    broker was killed may arrive twice (identical): the broker had passed them on, and its
    PUBACK died with it, so the edge sends them again (at least once, docs/edge.md)."""
    rows = central_rows(node, "flow")
    assert all(r.value is not None for r in rows), [r for r in rows if r.value is None][:3]
    seen = Counter(r.ts_ns for r in rows)
    twice = [ts for ts, c in seen.items()
             if c > 1 and ts // 1_000_000 - T0 not in in_flight]
    assert not twice, f"{len(twice)} readings stored twice, e.g. {twice[:3]}"
    assert set(seen) == {(T0 + i) * 1_000_000 for i in range(n)}
    assert all(r.value == float(r.ts_ns // 1_000_000 - T0) for r in rows)


def test_live_flow_and_a_broker_outage_lose_nothing(mosquitto: Mosquitto,
                                                    tmp_path: Path) -> None:
    async def scenario() -> None:
        central = build_node(node_settings(tmp_path / "central", mosquitto.port))
        edge = LocalEdge.open(edge_section(mosquitto.port, tmp_path), tmp_path / "edge",
                              batch_max_delay=0.02)
        async with running(central, api=False), edge.running():
            await until(lambda: connected(central, "sparkplug"), what="central connected")
            sink = edge.sink("test")
            ids = await sink.bind(DEVICE, [PointSpec("flow", DataType.DOUBLE, unit="m3/h")])
            uplink = edge.uplink
            assert uplink is not None
            # (a) live flow
            await produce(sink, ids, 0, 400)
            await until(lambda: arrived(central, 400), what="live samples upstream")
            assert uplink.counters["replayed_samples"] == 0
            # (b) the broker dies while readings keep coming
            mosquitto.kill()
            await produce(sink, ids, 400, 1000, every_s=0.02)
            await until(lambda: edge.buffer.status().records > 0, what="a backlog")
            mosquitto.start()
            await produce(sink, ids, 1400, 600, every_s=0.02)  # live beside the replay
            await until(lambda: arrived(central, 2000), limit_s=30, what="all 2000 upstream")
            await until(lambda: edge.buffer.status().records == 0, what="cursor caught up")
            assert uplink.counters["replayed_samples"] > 0
            assert uplink.counters["connects"] >= 2
            check_once(central, 2000, in_flight=range(300, 400))
            pts = {p.name: p for p in central.registry.list_points(central.tenant_id)}
            assert pts["flow"].unit is None or pts["flow"].datatype is DataType.DOUBLE
            last = central.store.last_values([pts["flow"].series_id])
            # Historical replays never moved the current value back.
            assert last[pts["flow"].series_id].ts_ns == (T0 + 1999) * 1_000_000

    asyncio.run(scenario())
