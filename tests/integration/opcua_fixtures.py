"""A real node (registry, pipeline, DuckDB) with a FieldSink for OPC UA adapter tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from millnet.config import load_settings
from millnet.connectivity.adapter import FieldSink
from millnet.ingest.binder import SeriesBinder
from millnet.node import Node, build_node, running
from millnet.registry.records import Point
from millnet.telemetry.base import SamplePoint


@dataclass
class Rig:
    node: Node
    sink: FieldSink
    data_dir: Path

    binder: SeriesBinder

    def series(self, device: str, point: str) -> int:
        site, area, line, name = device.split("/")
        return self.binder.known((site, area, line, name))[point]

    def points(self, device: str) -> dict[str, Point]:
        """The registry's points of ``device`` (site/area/line/device), by name."""
        out = {}
        for p in self.node.registry.list_points(self.node.tenant_id):
            asset = self.node.registry.get_asset(p.device_id)
            if asset.path.endswith(device):
                out[p.name] = p
        return out

    def samples(self, series_id: int) -> list[SamplePoint]:
        return self.node.store.query_range([series_id], 0, time.time_ns() + 10**12)


@asynccontextmanager
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    settings = load_settings(None, environ={}, overrides={
        "node": {"data_dir": str(tmp_path / "node")},
        "mqtt": {"enabled": False, "sparkplug": False, "tenant": "acme"},
        "ingest": {"batch_max_delay_ms": 20},
    })
    node = build_node(settings)
    binder = SeriesBinder(node.registry, node.tenant_id, enterprise="acme")
    sink = FieldSink("opcua-test", node.pipeline, binder, node.metrics)
    async with running(node, api=False):
        yield Rig(node, sink, tmp_path / "node", binder)


async def eventually(check: Callable[[], bool], timeout: float = 10.0,
                     what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)
