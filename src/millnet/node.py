"""The composition root: builds a node from its settings and runs it.

This is the one place that creates objects; everything else receives what it needs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import uvicorn

from millnet.api.app import create_app
from millnet.config import Settings
from millnet.connectivity.base import Source
from millnet.connectivity.json_mqtt import JsonMqttSource
from millnet.connectivity.sparkplug_mqtt import SparkplugSource
from millnet.files import private_dir, private_umask
from millnet.ingest.binder import Quotas, SeriesBinder
from millnet.ingest.metrics import IngestMetrics
from millnet.ingest.pipeline import IngestPipeline
from millnet.registry import Registry
from millnet.serving import embedded_server, listening_socket
from millnet.supervise import supervise
from millnet.telemetry.duckdb_store import DuckDBTelemetryStore
from millnet.telemetry.retention import TenantRetention, run_maintenance

log = logging.getLogger("millnet.node")


@dataclass
class Node:
    settings: Settings
    registry: Registry
    store: DuckDBTelemetryStore
    metrics: IngestMetrics
    pipeline: IngestPipeline
    tenant_id: int
    sparkplug: SparkplugSource | None = None
    sources: list[Source] = field(default_factory=list)
    api_port: int | None = None

    def retention_plan(self) -> list[TenantRetention]:
        """Which series each tenant owns and how long it keeps them hot (for maintenance)."""
        default = self.settings.telemetry.retention_days
        return [TenantRetention(t.name, self.registry.series_ids_of_tenant(t.id),
                                t.retention_days or default)
                for t in self.registry.list_tenants()]

    def close(self) -> None:
        self.store.close()
        self.registry.close()


def build_node(settings: Settings) -> Node:
    """Open the stores (migrating the registry) and wire the ingest path; starts nothing.

    The process umask becomes 0077 first: the databases and their logs are the node's alone."""
    private_umask()
    private_dir(settings.node.data_dir)
    registry = Registry.open(settings.registry_url)
    tenant = registry.ensure_tenant(settings.mqtt.tenant)
    store = DuckDBTelemetryStore(settings.telemetry_path, settings.archive_dir,
                        memory_limit=settings.telemetry.memory_limit)
    metrics = IngestMetrics()
    ing = settings.ingest
    pipeline = IngestPipeline(
        store, metrics, max_samples=ing.batch_max_samples, max_delay=ing.batch_max_delay_ms / 1e3,
        queue_max_samples=ing.queue_max_samples,
    )
    node = Node(settings, registry, store, metrics, pipeline, tenant.id)
    binder = SeriesBinder(registry, tenant.id, enterprise=tenant.name, quotas=Quotas(
        ing.max_devices_per_tenant, ing.max_points_per_tenant))
    if settings.mqtt.sparkplug:
        # Built even without MQTT: the demo's in-process transport calls its ``handle``.
        node.sparkplug = SparkplugSource(settings.mqtt, ing.max_payload_bytes, pipeline, binder,
                                         metrics)
    if settings.mqtt.enabled:
        node.sources.append(JsonMqttSource(settings.mqtt, ing.max_payload_bytes, pipeline, binder,
                                           metrics))
        if node.sparkplug is not None:
            node.sources.append(node.sparkplug)
    return node


def create_token(settings: Settings, tenant: str | None, role: str, name: str) -> str:
    registry = Registry.open(settings.registry_url)
    try:
        tenant_id = registry.get_tenant(tenant).id if tenant else None
        plaintext, _ = registry.create_token(tenant_id, role, name)
        return plaintext
    finally:
        registry.close()


@contextlib.asynccontextmanager
async def running(node: Node, *, api: bool = True) -> AsyncIterator[Node]:
    """Run the node's pipeline, sources and API while the context is open; drain on exit."""
    server: uvicorn.Server | None = None
    async with asyncio.TaskGroup() as tg:
        pipe = tg.create_task(node.pipeline.run())
        # A source or maintenance job that fails is restarted: the API, the pipeline and the
        # other sources keep running (see millnet.supervise).
        restarts = node.metrics.restarts
        srcs = [tg.create_task(supervise(s.name, s.run, restarts)) for s in node.sources]
        srcs.append(tg.create_task(supervise(
            "maintenance", lambda: run_maintenance(node.store, node.retention_plan), restarts)))
        if api:
            server, sock = _api_server(node)
            tg.create_task(server.serve(sockets=[sock]))
            node.api_port = sock.getsockname()[1]
        try:
            yield node
        finally:
            for task in srcs:
                task.cancel()
            await asyncio.gather(*srcs, return_exceptions=True)
            # Drain, unless the pipeline itself has failed (then the task group reports why).
            drain = asyncio.ensure_future(node.pipeline.drain())
            await asyncio.wait([drain, pipe], return_when=asyncio.FIRST_COMPLETED)
            drain.cancel()
            pipe.cancel()
            if server is not None:
                server.should_exit = True
    node.close()


def _api_server(node: Node) -> tuple[uvicorn.Server, socket.socket]:
    app = create_app(node.registry, node.store, node.metrics, node_name=node.settings.node.name,
                     role=node.settings.node.role)
    proxies = [str(n) for n in node.settings.api.trusted_proxies]
    return (embedded_server(app, proxies=proxies),
            listening_socket(node.settings.api.host, node.settings.api.port))


async def run_node(settings: Settings) -> None:
    """Run until SIGINT or SIGTERM, then stop reading, drain the pipeline and close the stores."""
    node = build_node(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with running(node):
        log.info("node %s (%s) serving API on http://%s:%s", settings.node.name,
                 settings.node.role, settings.api.host, node.api_port)
        await stop.wait()
        log.info("stopping: draining the ingest pipeline")
