"""A central node that restarts stores the birth values an edge node sends again (after the
node asked it to rebirth) only once: the store's current values are what the host holds."""

from __future__ import annotations

import asyncio
from pathlib import Path

from millnet.node import build_node, running
from millnet.protocols.sparkplug import (
    BirthMetric,
    MessageType,
    SpDataType,
    device_topic,
    encode_dbirth,
    encode_nbirth,
    node_topic,
)
from tests.support.nodes import node_settings

T0_MS = 1_767_225_600_000


async def _publish(topic: str, payload: bytes) -> None:
    return None


async def _births(tmp_path: Path) -> int:
    settings = node_settings(tmp_path, 1, mqtt={"enabled": False})
    node = build_node(settings)
    async with running(node, api=False):
        spb = node.sparkplug
        assert spb is not None
        await spb.handle(node_topic("G", MessageType.NBIRTH, "E"),
                         encode_nbirth([], bd_seq=0, timestamp_ms=T0_MS), _publish)
        metric = BirthMetric("temp", 1, int(SpDataType.DOUBLE), 21.5)
        await spb.handle(device_topic("G", MessageType.DBIRTH, "E", "D1"),
                         encode_dbirth([metric], seq=1, timestamp_ms=T0_MS), _publish)
        await node.pipeline.drain()
        [point] = [p for p in node.registry.list_points(node.tenant_id) if p.name == "temp"]
        assert point.series_id is not None
        rows = node.store.query_range([point.series_id], 0, 2**62)
        return len(rows)


def test_the_same_birth_after_a_node_restart_is_stored_once(tmp_path: Path) -> None:
    assert asyncio.run(_births(tmp_path)) == 1
    assert asyncio.run(_births(tmp_path)) == 1  # restarted on the same data: not twice
