"""Building and running an edge node's store-and-forward from its ``[edge]`` section.

The composition root builds the node as usual, with two differences for ``role = "edge"``::

    buffer = open_edge_buffer(settings.edge, settings.node.data_dir, registry, tenant.id)
    pipeline = IngestPipeline(buffer, metrics, ...)      # the buffer in place of DuckDB
    ...
    async with edge_running(settings.edge, buffer, data_dir, metrics.registry) as uplink:
        ...                                               # adapters feed the pipeline

Leaving the context stops the uplink; the caller drains the pipeline and closes the buffer.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable, Sequence
from pathlib import Path

from prometheus_client import CollectorRegistry, Gauge

from millnet.connectivity.edge.buffer import Describe, EdgeBuffer
from millnet.connectivity.edge.records import SeriesName
from millnet.connectivity.edge.settings import EdgeSection
from millnet.connectivity.edge.uplink import EdgeUplink
from millnet.errors import NotFound
from millnet.registry import Registry


def registry_describer(registry: Registry, tenant_id: int) -> Describe:
    """Names series ids from the registry: device path (site, area, line, device), point name
    and datatype. Series that do not exist (or are another tenant's) are left out."""

    def describe(series_ids: Sequence[int]) -> Iterable[SeriesName]:
        out: list[SeriesName] = []
        for sid in series_ids:
            try:
                point = registry.get_point(sid, tenant_id=tenant_id)
                names: list[str] = []
                asset_id: int | None = point.device_id
                while asset_id is not None and len(names) < 4:
                    asset = registry.get_asset(asset_id, tenant_id=tenant_id)
                    names.append(asset.name)
                    asset_id = asset.parent_id
            except NotFound:
                continue
            if len(names) == 4:
                device, line, area, site = names
                out.append(SeriesName(sid, (site, area, line, device), point.name,
                                      point.datatype))
        return out

    return describe


def open_edge_buffer(section: EdgeSection, data_dir: Path, registry: Registry,
                     tenant_id: int) -> EdgeBuffer:
    """Open (or create) the buffer; a torn tail is cut here, with a warning."""
    directory = section.resolved_buffer_dir(data_dir)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)  # the node's alone
    return EdgeBuffer(directory, registry_describer(registry, tenant_id),
                      max_bytes=section.max_buffer_bytes, when_full=section.when_full)


def export_metrics(uplink: EdgeUplink, registry: CollectorRegistry) -> None:
    """Buffer and uplink figures as Prometheus gauges, read when scraped."""
    def gauge(name: str, doc: str, key: str) -> None:
        Gauge(name, doc, registry=registry).set_function(
            lambda: float(uplink.health().counters.get(key, 0)))

    gauge("millnet_edge_buffer_bytes", "Bytes in the edge buffer's segments", "buffer_bytes")
    gauge("millnet_edge_backlog_records", "Records not yet delivered upstream",
          "backlog_records")
    gauge("millnet_edge_dropped_samples", "Undelivered samples dropped by drop_oldest "
          "since start", "dropped_samples")
    gauge("millnet_edge_buffer_full", "1 while refuse_new holds ingest back", "buffer_full")
    gauge("millnet_edge_live_samples", "Samples forwarded live since start", "live_samples")
    gauge("millnet_edge_replayed_samples", "Samples replayed as historical since start",
          "replayed_samples")


@contextlib.asynccontextmanager
async def edge_running(section: EdgeSection, buffer: EdgeBuffer, data_dir: Path,
                       metrics_registry: CollectorRegistry | None = None,
                       ) -> AsyncIterator[EdgeUplink]:
    """Run the uplink while the context is open (it reconnects by itself)."""
    uplink = EdgeUplink(section, buffer, section.resolved_buffer_dir(data_dir))
    if metrics_registry is not None:
        export_metrics(uplink, metrics_registry)
    async with asyncio.TaskGroup() as tg:
        task = tg.create_task(uplink.run())
        try:
            yield uplink
        finally:
            task.cancel()
