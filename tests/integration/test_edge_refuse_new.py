"""refuse_new through the whole pipeline: with the upstream broker down and a tiny buffer, the
buffer refuses, the pipeline's queue fills, the Modbus adapter waits (its health shows skipped
polls, the uplink's shows the full buffer); once the broker is back nothing is lost, and every
reading is stored upstream once by (series, ts)."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

from millnet.connectivity.modbus import ModbusSpec
from millnet.node import Node, build_node, running
from millnet.sim.modbus_server import plant_register_map, serve_plant
from tests.servers import Mosquitto
from tests.support.nodes import connected, metric_value, node_settings, stored, until


def _upstream_readings(central: Node) -> list[tuple[int, int]]:
    """(series, ts) of every reading stored upstream for the plant's devices."""
    reg = central.registry
    ids = [p.series_id for p in reg.list_points(central.tenant_id)
           # not the edge node's own metrics (bdSeq...), which the host stores as always
           if reg.get_asset(p.device_id).name != "utilities.line1"]
    rows = central.store.query_range(ids, 0, 2**62, limit=10_000_000) if ids else []
    return [(r.series_id, r.ts_ns) for r in rows if r.value is not None or r.text is not None]


def test_a_full_buffer_holds_the_adapter_back_and_loses_nothing(mosquitto: Mosquitto,
                                                                 tmp_path: Path) -> None:
    mosquitto.kill()  # the upstream broker is down from the start

    async def scenario() -> None:
        async with serve_plant() as plant:
            edge = build_node(node_settings(
                tmp_path / "edge", mosquitto.port, node={"role": "edge"},
                ingest={"queue_max_samples": 1000, "batch_max_delay_ms": 10},
                edge={"host": "127.0.0.1", "port": mosquitto.port, "keepalive": 5,
                      "group_id": "plant1", "edge_node_id": "utilities.line1",
                      "max_buffer_bytes": 64 << 10, "when_full": "refuse_new"}))
            assert edge.edge is not None and edge.uplink is not None
            central = build_node(node_settings(tmp_path / "central", mosquitto.port))
            spec = ModbusSpec.model_validate({
                "name": "plant", "host": plant.host, "port": plant.port,
                "poll_groups": [{"name": "default", "interval_ms": 10},
                                {"name": "slow", "interval_ms": 10}],
                "registers": plant_register_map()})
            async with running(edge, api=False):
                edge.host.add(spec)
                # The buffer fills, then the pipeline's queue: the adapter waits.
                await until(lambda: edge.edge is not None and edge.edge.status().full,
                            limit_s=20, what="the buffer full")
                await until(lambda: metric_value(edge, "millnet_ingest_queue_depth") >= 1000,
                            what="the pipeline's queue full")
                health = edge.host.get("plant").health
                polls = health.counters.get("polls", 0)
                await asyncio.sleep(1.0)
                health = edge.host.get("plant").health
                assert health.counters.get("polls", 0) <= polls + 1  # held back
                assert health.counters.get("skipped_polls", 0) > 0  # ticks it could not take
                up = edge.host.get("edge-uplink").health
                assert up.counters["buffer_full"] == 1 and up.counters["dropped_samples"] == 0
                # The broker and the central node come back: the backlog drains.
                mosquitto.start()
                async with running(central, api=False):
                    await until(lambda: connected(central, "sparkplug"), what="central up")
                    await until(lambda: not edge.edge.status().full if edge.edge else False,
                                limit_s=30, what="room in the buffer")
                    await edge.host.remove("plant")
                    await edge.pipeline.drain()
                    await until(lambda: edge.edge is not None
                                and edge.edge.status().records == 0,
                                limit_s=30, what="the backlog delivered")
                    written = int(stored(edge))
                    await until(lambda: len(_upstream_readings(central)) >= written,
                                limit_s=20, what=f"{written} readings upstream")
                    readings = _upstream_readings(central)
                    twice = [k for k, c in Counter(readings).items() if c > 1]
                    assert not twice, twice[:5]
                    assert len(readings) == written
                    assert edge.edge.status().dropped_samples == 0

    asyncio.run(scenario())
