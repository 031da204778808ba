"""The composition root of a node's platform: builds it from its settings and runs it.

This is the one place that creates the platform's objects; everything else receives what it
needs. The platform is ingest, store, rules and API (:func:`build_node`, :func:`running`);
:mod:`millnet.services` runs it with the identifier service and the federation of the node's
role (:func:`millnet.services.serving`, :func:`millnet.services.run_node`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import uvicorn
from prometheus_client import Counter

from millnet import heap
from millnet.config import EDGE_UPLINK, ApiSection, Settings
from millnet.connectivity.edge import EdgeBuffer, EdgeUplink, open_edge_buffer
from millnet.connectivity.edge.service import export_metrics
from millnet.connectivity.json_mqtt import JsonMqttSource
from millnet.connectivity.mqtt import Broker, MqttOptions
from millnet.connectivity.sparkplug_mqtt import SparkplugSource
from millnet.errors import ConfigError
from millnet.files import private_dir, private_umask
from millnet.ingest.binder import Quotas, SeriesBinder
from millnet.ingest.live import LiveFeed
from millnet.ingest.metrics import IngestMetrics
from millnet.ingest.pipeline import IngestPipeline
from millnet.registry import Registry
from millnet.registry.sources import SourceStore
from millnet.serving import embedded_server, listening_socket
from millnet.sources import Binders, SourceHost
from millnet.supervise import supervise
from millnet.telemetry.base import TelemetryStore
from millnet.telemetry.duckdb_store import DuckDBTelemetryStore
from millnet.telemetry.retention import TenantRetention, run_maintenance

if TYPE_CHECKING:
    from fastapi import FastAPI

    from millnet.api.routes.ingest import HttpIngest
    from millnet.identifiers.core.service import IdentifierService
    from millnet.insight import Insight
    from millnet.monitoring import Monitoring
    from millnet.ordering import Ordering
    from millnet.tracing import Tracing

log = logging.getLogger("millnet.node")

#: How long an edge node's shutdown waits for the pipeline to reach the buffer (a full buffer
#: with the uplink down would wait forever); what is left is logged, never acknowledged.
EDGE_DRAIN_LIMIT_S = 10.0


@dataclass
class Node:
    """A node's platform. ``telemetry`` is where the pipeline commits: the DuckDB store, or on
    an edge node (``edge``) the buffer that ``uplink`` forwards upstream."""

    settings: Settings
    registry: Registry
    telemetry: TelemetryStore
    metrics: IngestMetrics
    pipeline: IngestPipeline
    tenant_id: int
    host: SourceHost
    source_store: SourceStore
    http_ingest: HttpIngest
    sparkplug: SparkplugSource | None = None
    api_port: int | None = None
    edge: EdgeBuffer | None = None
    uplink: EdgeUplink | None = None
    insight: Insight | None = None  # rules, alarms, notifications, KPIs (not on an edge node)
    monitoring: Monitoring | None = None  # federation and security events (not on an edge node)
    ordering: Ordering | None = None  # customer orders and their tracking (not on an edge node)
    tracing: Tracing | None = None  # EPCIS repository, trace, emitted events (not on an edge node)
    live: LiveFeed | None = None  # samples as they arrive, for the console (not on an edge node)
    #: The node's identifier service when it runs beside the platform (the console resolves)
    identifiers: IdentifierService | None = None

    @property
    def store(self) -> DuckDBTelemetryStore:
        """The DuckDB store (queries, retention); an edge node has none."""
        if not isinstance(self.telemetry, DuckDBTelemetryStore):
            raise ConfigError("node.role", "an edge node keeps no telemetry store")
        return self.telemetry

    def retention_plan(self) -> list[TenantRetention]:
        """Which series each tenant owns and how long it keeps them hot (for maintenance)."""
        default = self.settings.telemetry.retention_days
        return [TenantRetention(t.name, self.registry.series_ids_of_tenant(t.id),
                                t.retention_days or default)
                for t in self.registry.list_tenants()]

    def close(self) -> None:
        if self.insight is not None:
            self.insight.close()
        self.telemetry.close()
        self.registry.close()


def build_node(settings: Settings) -> Node:
    """Open the stores (migrating the registry) and wire the ingest path; starts nothing.

    The process umask becomes 0077 first: the databases and their logs are the node's alone."""
    private_umask()
    private_dir(settings.node.data_dir)
    registry = Registry.open(settings.registry_url)
    tenant = registry.ensure_tenant(settings.mqtt.tenant)
    edge: EdgeBuffer | None = None
    store: TelemetryStore
    if settings.is_edge:  # the buffer takes the store's place (docs/edge.md)
        store = edge = open_edge_buffer(settings.edge, settings.node.data_dir, registry,
                                        tenant.id)
    else:
        store = DuckDBTelemetryStore(settings.telemetry_path, settings.archive_dir,
                                     memory_limit=settings.telemetry.memory_limit)
    metrics = IngestMetrics()
    ing = settings.ingest
    pipeline = IngestPipeline(
        store, metrics, max_samples=ing.batch_max_samples, max_delay=ing.batch_max_delay_ms / 1e3,
        queue_max_samples=ing.queue_max_samples, tap_interval=settings.rules.tick_ms / 1e3,
    )
    # Imported here: FastAPI is most of the start-up time of a node without the platform.
    from millnet.api.routes.ingest import HttpIngest

    quotas = Quotas(ing.max_devices_per_tenant, ing.max_points_per_tenant)
    binder = SeriesBinder(registry, tenant.id, enterprise=tenant.name, quotas=quotas)
    binders = Binders(registry, quotas)
    binders.add(tenant.id, binder)
    source_store = SourceStore(registry)
    host = SourceHost(pipeline, metrics, binders, metrics.restarts, default_tenant=tenant.id,
                      data_dir=settings.node.data_dir, store=source_store,
                      config_file=settings.config_file)
    http = HttpIngest(pipeline, metrics, binders, max_payload=ing.max_payload_bytes)
    node = Node(settings, registry, store, metrics, pipeline, tenant.id, host, source_store, http,
                edge=edge)
    mqtt = mqtt_options(settings)
    if settings.mqtt.sparkplug and (settings.runs_mqtt_sources or not settings.is_edge):
        # Built even without MQTT: the demo's in-process transport calls its ``handle``.
        node.sparkplug = SparkplugSource(mqtt, pipeline, binder, metrics)
    if edge is not None:
        node.uplink = EdgeUplink(settings.edge, edge,
                                 settings.edge.resolved_buffer_dir(settings.node.data_dir))
        assert node.uplink.name == EDGE_UPLINK
        export_metrics(node.uplink, metrics.registry)
        # Listed with its health (buffer counters too); run by running(), which stops it
        # only after the pipeline drained into the buffer.
        host.attach(node.uplink, runs=False)
    if settings.runs_mqtt_sources:
        host.attach(JsonMqttSource(mqtt, pipeline, binder, metrics))
        if node.sparkplug is not None:
            host.attach(node.sparkplug)
    host.attach(http, runs=False)
    if not settings.is_edge:
        from millnet.insight import build_insight

        node.insight = build_insight(settings, registry, pipeline, tenant.id)
        from millnet.ordering import build_ordering

        node.ordering = build_ordering(settings, registry, pipeline, tenant.id)
        # Fed once per sealed batch: charts need no more, and the rules stay the one prompt tap.
        node.live = LiveFeed(registry=metrics.registry)
        pipeline.add_tap(node.live, prompt=False)
        node.monitoring = open_monitoring(settings, registry)
        if node.monitoring is not None:
            from millnet.monitoring import watch_platform

            watch_platform(node.monitoring, metrics, node.sparkplug, node.insight)
            from millnet.partners import attach_platform

            attach_platform(settings, node.monitoring, registry, store, node.insight)
    for spec in settings.sources:
        host.add(spec)
    return node


def open_monitoring(settings: Settings, registry: Registry) -> Monitoring | None:
    # Imported here: the federation's API pulls FastAPI in.
    from millnet.monitoring import build_monitoring
    from millnet.partners import attach

    monitoring = build_monitoring(settings, registry.engine)
    if monitoring is not None:
        attach(settings, monitoring)
    return monitoring


def _start_services(node: Node, tg: asyncio.TaskGroup,
                    restarts: Counter) -> list[asyncio.Task[None]]:
    """The rules, alarms and notifications, and the monitoring's jobs, each supervised."""
    tasks: list[asyncio.Task[None]] = []
    if node.insight is not None:
        from millnet.insight import start

        tasks += start(node.insight, tg, restarts)
    if node.ordering is not None:
        tasks.append(tg.create_task(supervise("orders", node.ordering.tracker.run, restarts)))
    if not node.settings.is_edge:  # built here: build_node is at its size limit
        from millnet.tracing import build_tracing, start_tracing

        node.tracing = build_tracing(node.settings, node.registry, node.telemetry,
                                     node.tenant_id)
        tasks += start_tracing(node.tracing, tg, restarts)
    if node.monitoring is not None:
        from millnet.monitoring import jobs

        tasks += [tg.create_task(supervise(name, job, restarts), name=name)
                  for name, job in jobs(node.monitoring).items()]
    return tasks


def mqtt_options(settings: Settings) -> MqttOptions:
    m = settings.mqtt
    secret = m.password.get_secret_value() if m.password else None
    return MqttOptions(Broker(m.host, m.port, m.username, secret, m.keepalive), m.client_id,
                       m.json_topic_root, m.qos, m.sparkplug_host_id,
                       settings.ingest.max_payload_bytes, m.protocol)


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
    failed: Exception | None = None
    try:  # bound first: a busy port stops the node before anything runs
        sock = api_socket(node.settings.api) if api else None
    except ConfigError:
        node.close()
        raise
    async with asyncio.TaskGroup() as tg:
        pipe = tg.create_task(node.pipeline.run())
        # A source or maintenance job that fails is restarted: the API, the pipeline and the
        # other sources keep running (see millnet.supervise).
        restarts = node.metrics.restarts
        srcs: list[asyncio.Task[None]] = []
        if node.edge is None:
            srcs.append(tg.create_task(supervise(
                "maintenance", lambda: run_maintenance(node.store, node.retention_plan),
                restarts)))
        insight = _start_services(node, tg, restarts)  # stopped after the drain
        uplink = None if node.uplink is None else tg.create_task(
            supervise(node.uplink.name, node.uplink.run, restarts), name="edge uplink")
        if sock is not None:
            server = _api_server(node)
            tg.create_task(server.serve(sockets=[sock]))
            node.api_port = sock.getsockname()[1]
        try:
            # The sources (millnet.sources) stop, and are awaited, before the pipeline drains.
            async with node.host:
                await node.host.restore()
                heap.freeze()  # start-up state out of the collector's full passes
                yield node
        except Exception as exc:  # noqa: BLE001 - the caller's, raised below, ungrouped
            failed = exc
        finally:
            for task in srcs:
                task.cancel()
            await asyncio.gather(*srcs, return_exceptions=True)
            # Drain, unless the pipeline itself has failed (then the task group reports why).
            drain = tg.create_task(node.pipeline.drain())  # the group awaits it if cancelled
            limit = EDGE_DRAIN_LIMIT_S if node.edge is not None else None
            await asyncio.wait([drain, pipe], timeout=limit,
                               return_when=asyncio.FIRST_COMPLETED)
            if not drain.done() and not pipe.done():
                log.warning("edge: stopping with samples not yet in the buffer (it is full and "
                            "the uplink cannot deliver); they were not acknowledged")
            drain.cancel()
            # After the drain (the taps have seen every sample), one at a time in the order
            # they were started: the rule engine, then the alarms (which store what the engine
            # handed over), then the notifier (which journals what the alarms handed over)...
            for task in insight:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
            pipe.cancel()
            if uplink is not None:  # after the drain: a full buffer may empty meanwhile
                uplink.cancel()
            if node.live is not None:  # open streams would hold the server's shutdown
                node.live.close()
            if server is not None:
                server.should_exit = True
    node.close()
    if failed is not None:
        raise failed


def _api_server(node: Node) -> uvicorn.Server:
    # Imported here: FastAPI is most of the start-up time of a node that serves no API
    # (`millnet id serve`).
    from millnet.api.app import create_app
    from millnet.commands import CommandService
    from millnet.registry.commands import CommandStore

    commands = CommandService(node.registry, node.telemetry, CommandStore(node.registry),
                              node.host, [node.sparkplug] if node.sparkplug is not None else [])
    extra: dict[str, Any] = {}
    if (ins := node.insight) is not None:
        extra = {"rules": ins.rules, "rule_runtime": ins.engine, "alarms": ins.alarms,
                 "kpi": ins.kpi, "rollups": ins.rollups, "notifier": ins.notifier}
    if (mon := node.monitoring) is not None:
        extra.update(security=mon.security, monitoring=mon)
    if node.ordering is not None:
        extra["orders"] = node.ordering.service
    app = create_app(node.registry, node.telemetry, node.metrics,
                     node_name=node.settings.node.name, role=node.settings.node.role,
                     sources_host=node.host, http_ingest=node.http_ingest,
                     source_store=node.source_store, commands=commands, live=node.live,
                     identifiers=node.identifiers, **extra)
    if node.edge is not None:
        _without_history(app)
    if node.tracing is not None:
        from millnet.tracing import mount

        mount(app, node.tracing, "/api/v1")
    return embedded_server(app, proxies=[str(n) for n in node.settings.api.trusted_proxies])


#: What an edge node does not serve: it keeps no history (its buffer is forwarded, not queried);
#: 404 with a detail that says so.
#: ``/telemetry/last`` stays: the buffer knows each point's latest reading.
EDGE_UNSERVED = ("/api/v1/telemetry/raw", "/api/v1/telemetry/buckets")


def _without_history(app: FastAPI) -> None:
    """Answer the history queries 404 on an edge node, and leave them (and the OpenAPI links
    that lead there) out of its document: they are paths this node does not serve."""
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def unserved(request: Request) -> JSONResponse:
        return JSONResponse({"error": "not_found", "field": None, "detail": (
            "an edge node keeps no telemetry history: it forwards its samples upstream; "
            "query the central node")}, status_code=404)

    # First: they match before the routers included after them.
    app.router.routes[:0] = [Route(path, unserved, methods=["GET"]) for path in EDGE_UNSERVED]
    app.openapi_schema = None
    build = app.openapi

    def openapi() -> dict[str, Any]:
        doc = build()
        for path in EDGE_UNSERVED:
            doc["paths"].pop(path, None)
        gone = {"#/paths/" + p.replace("/", "~1") for p in EDGE_UNSERVED}
        for operations in doc["paths"].values():
            for operation in operations.values():
                for response in operation.get("responses", {}).values():
                    links = response.get("links", {})
                    for name in [n for n, link in links.items()
                                 if link.get("operationRef", "").rsplit("/", 1)[0] in gone]:
                        del links[name]
        return doc

    app.openapi = openapi  # type: ignore[method-assign]


def api_socket(api: ApiSection) -> socket.socket:
    try:
        return listening_socket(api.host, api.port)
    except OSError as exc:
        raise ConfigError("api.port", f"cannot listen on {api.host}:{api.port} (TCP): "
                                      f"{exc.strerror or exc}") from None
