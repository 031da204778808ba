"""Backpressure: while the pipeline is full the OPC UA adapter takes no more notifications
(the values wait in the server's queues), and once it has room every value is stored."""

from __future__ import annotations

import asyncio
from pathlib import Path

from asyncua import ua
from asyncua.server.server import Server

from millnet.config import load_settings
from millnet.connectivity.adapter import FieldSink, HealthState
from millnet.connectivity.opcua import ImportFolder, OpcUaAdapter, OpcUaSpec
from millnet.ingest.binder import SeriesBinder
from millnet.node import build_node, running
from millnet.sim.opcua_server import free_port, monitored_items, serve_plant
from tests.integration.opcua_fixtures import eventually

VARIABLES, ROUNDS = 50, 60


def test_full_pipeline_holds_notifications_and_loses_none(tmp_path: Path) -> None:
    asyncio.run(_scenario(tmp_path))


async def _scenario(tmp_path: Path) -> None:
    settings = load_settings(None, environ={}, overrides={
        "node": {"data_dir": str(tmp_path / "node")},
        "mqtt": {"enabled": False, "sparkplug": False, "tenant": "acme"},
        "ingest": {"batch_max_samples": 100, "queue_max_samples": 1000,
                   "batch_max_delay_ms": 20},
    })
    node = build_node(settings)
    sink = FieldSink("bp", node.pipeline, SeriesBinder(node.registry, node.tenant_id, "acme"),
                     node.metrics)
    async with serve_plant(port=free_port(), animate_s=None,
                           bench_variables=VARIABLES) as plant:
        spec = OpcUaSpec(name="bp", endpoint=plant.endpoint, publishing_interval_ms=20,
                         max_notifications_per_publish=100,
                         import_folders=[ImportFolder(browse_path="Bench", queue_size=1000)])
        adapter = OpcUaAdapter(spec, sink, tmp_path)
        # The pipeline's writer is not running yet: the queue fills and stays full.
        task = asyncio.create_task(adapter.run())
        try:
            await eventually(lambda: monitored_items(plant.server) == VARIABLES, what="items")
            half = ROUNDS // 2
            await _write_rounds(plant.server, plant.bench_nodes, 1, half)
            # More than the pipeline's queue (1,000) is taken: now it is full.
            await eventually(lambda: _taken(adapter) >= 1000, what="a full pipeline")
            taken = _taken(adapter)
            await _write_rounds(plant.server, plant.bench_nodes, half + 1, ROUNDS)
            await asyncio.sleep(1.0)
            assert _taken(adapter) == taken  # held in the server's queues, not taken
            assert adapter.health().state is HealthState.UP
            expected = VARIABLES * (ROUNDS + 1)
            async with running(node, api=False):  # the writer starts: room again
                await eventually(lambda: _stored(node) >= expected, timeout=20,
                                 what="every value stored")
                total, distinct = await asyncio.to_thread(node.store.count_samples)
                assert total == distinct == expected
                assert adapter.health().counters.get("server_overflows", 0) == 0
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def _write_rounds(server: Server, nodes: list[ua.NodeId], first: int, last: int) -> None:
    for r in range(first, last + 1):
        for node_id in nodes:
            await server.write_attribute_value(
                node_id, ua.DataValue(ua.Variant(float(r), ua.VariantType.Double)))


def _taken(adapter: OpcUaAdapter) -> int:
    return adapter.health().counters.get("notifications", 0)


def _stored(node: object) -> int:
    value = node.metrics.registry.get_sample_value(  # type: ignore[attr-defined]
        "millnet_ingest_samples_stored_total")
    return int(value or 0)
