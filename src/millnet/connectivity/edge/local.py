"""An edge node's platform in one object: registry, binder, pipeline into the buffer, uplink.

What ``millnet node --role edge`` composes (the node's composition root may build the same from
its settings); the tests and the benchmark use it directly. Adapters get a
:class:`~millnet.connectivity.adapter.FieldSink` from :meth:`LocalEdge.sink`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from millnet.connectivity.adapter import FieldSink
from millnet.connectivity.edge.buffer import EdgeBuffer
from millnet.connectivity.edge.service import edge_running, open_edge_buffer
from millnet.connectivity.edge.settings import EdgeSection
from millnet.connectivity.edge.uplink import EdgeUplink
from millnet.ingest.binder import SeriesBinder
from millnet.ingest.metrics import IngestMetrics
from millnet.ingest.pipeline import IngestPipeline
from millnet.registry import Registry


@dataclass
class LocalEdge:
    section: EdgeSection
    data_dir: Path
    registry: Registry
    tenant_id: int
    binder: SeriesBinder
    metrics: IngestMetrics
    buffer: EdgeBuffer
    pipeline: IngestPipeline
    uplink: EdgeUplink | None = None

    @classmethod
    def open(cls, section: EdgeSection, data_dir: Path, *, tenant: str = "edge",
             batch_max_delay: float = 0.2, queue_max_samples: int = 1_000_000) -> LocalEdge:
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        registry = Registry.open(f"sqlite:///{data_dir / 'registry.sqlite'}")
        t = registry.ensure_tenant(tenant)
        metrics = IngestMetrics()
        buffer = open_edge_buffer(section, data_dir, registry, t.id)
        pipeline = IngestPipeline(buffer, metrics, max_delay=batch_max_delay,
                                  queue_max_samples=queue_max_samples)
        return cls(section, data_dir, registry, t.id, SeriesBinder(registry, t.id, t.name),
                   metrics, buffer, pipeline)

    def sink(self, source: str) -> FieldSink:
        return FieldSink(source, self.pipeline, self.binder, self.metrics)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[LocalEdge]:
        """Pipeline and uplink while open; on leaving, what was written is drained to the
        buffer (durable) and the stores are closed."""
        try:
            async with asyncio.TaskGroup() as tg:
                pipe = tg.create_task(self.pipeline.run())
                async with edge_running(self.section, self.buffer, self.data_dir,
                                        self.metrics.registry) as uplink:
                    self.uplink = uplink
                    yield self
                    await self.pipeline.drain()
                pipe.cancel()
        finally:
            self.buffer.close()
            self.registry.close()
