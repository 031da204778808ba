"""The composition root: builds a node from its settings and runs it.

This is the one place that creates objects; everything else receives what it needs. A node
runs the services of its role from one :class:`~millnet.config.Settings`: the platform
(ingest, store, API; :func:`build_node`, :func:`running`) and the identifier service
(:mod:`millnet.idnode`, configured by the ``[identifiers]`` section); :func:`serving` runs both.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import uvicorn
from prometheus_client import Counter

from millnet.config import EDGE_UPLINK, ApiSection, Settings
from millnet.connectivity.edge import EdgeBuffer, EdgeUplink, open_edge_buffer
from millnet.connectivity.edge.service import export_metrics
from millnet.connectivity.json_mqtt import JsonMqttSource
from millnet.connectivity.mqtt import Broker, MqttOptions
from millnet.connectivity.sparkplug_mqtt import SparkplugSource
from millnet.errors import ConfigError
from millnet.files import private_dir, private_umask
from millnet.idnode import AuthFailureHook, LiveIdNode, describe, identifier_node
from millnet.idoptions import (
    IdServerOptions,
    parse_delegation,
    parse_delegation_via,
    parse_service,
)
from millnet.ingest.binder import Quotas, SeriesBinder
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
    from millnet.identifiers.wire.transport import ViolationHook
    from millnet.insight import Insight
    from millnet.monitoring import Monitoring
    from millnet.security import SecurityMonitor

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
        if self.monitoring is not None:
            self.monitoring.close()
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
        node.monitoring = _monitoring(settings, registry)
        if node.monitoring is not None:
            from millnet.monitoring import watch_platform

            watch_platform(node.monitoring, metrics, node.sparkplug, node.insight)
    for spec in settings.sources:
        host.add(spec)
    return node


def _monitoring(settings: Settings, registry: Registry) -> Monitoring | None:
    # Imported here: the federation's API pulls FastAPI in.
    from millnet.monitoring import build_monitoring

    return build_monitoring(settings, registry.engine)


def _start_services(node: Node, tg: asyncio.TaskGroup,
                    restarts: Counter) -> list[asyncio.Task[None]]:
    """The rules, alarms and notifications, and the monitoring's jobs, each supervised."""
    tasks: list[asyncio.Task[None]] = []
    if node.insight is not None:
        from millnet.insight import start

        tasks += start(node.insight, tg, restarts)
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
            for task in insight:  # after the drain: the taps have seen every sample
                task.cancel()
            await asyncio.gather(*insight, return_exceptions=True)
            pipe.cancel()
            if uplink is not None:  # after the drain: a full buffer may empty meanwhile
                uplink.cancel()
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
    app = create_app(node.registry, node.telemetry, node.metrics,
                     node_name=node.settings.node.name, role=node.settings.node.role,
                     sources_host=node.host, http_ingest=node.http_ingest,
                     source_store=node.source_store, commands=commands, **extra)
    if node.edge is not None:
        _without_history(app)
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


def identifier_options(settings: Settings) -> IdServerOptions:
    """The identifier service's options: the ``[identifiers]`` section, ``node.role`` and
    ``node.data_dir``, and the API's trusted proxies (they front both HTTP APIs)."""
    ids = settings.identifiers
    if ids.admin_secret_file is None:
        raise ConfigError("identifiers.admin_secret_file", "required")
    return IdServerOptions(
        ids.prefix, settings.node.data_dir, ids.admin_secret_file, ids.host, ids.udp_port,
        ids.tcp_port, ids.http_port, settings.node.role, ids.parent or None,
        tuple(parse_delegation(d) for d in ids.delegates), ids.recursive,
        change_interval=ids.follow_changes_every, mirror_of=ids.mirror_of or None,
        workers=ids.workers, services=tuple(parse_service(v) for v in ids.services),
        delegates_via=tuple(parse_delegation_via(v) for v in ids.delegates_via),
        database=ids.database or None, advertise=ids.advertise or None,
        trusted_proxies=tuple(str(n) for n in settings.api.trusted_proxies))


@dataclass
class Services:
    """What a node runs, built but not started: the platform, the identifier service."""

    settings: Settings
    platform: Node | None
    identifiers: IdServerOptions | None
    #: A node without the platform (national) still runs the federation: its registry (API
    #: tokens, federation tables) and the monitoring.
    standalone: tuple[Registry, Monitoring] | None = None


@dataclass
class LiveServices:
    platform: Node | None
    identifiers: LiveIdNode | None


def build_services(settings: Settings) -> Services:
    """Check every service's configuration (files, addresses), then open the platform's
    stores; starts nothing."""
    if not settings.runs_platform and settings.node.role == "edge":
        raise ConfigError("node.platform", "an edge node runs its platform")
    ids = identifier_options(settings) if settings.identifiers.enabled else None
    if ids is not None:
        ids.check()
    if settings.runs_platform:
        return Services(settings, build_node(settings), ids)
    if not settings.federation.enabled:
        if ids is None:
            raise ConfigError("identifiers.enabled", f"a {settings.node.role} node without the "
                              "platform or the federation runs nothing unless identifiers are "
                              "enabled")
        return Services(settings, None, ids)
    private_umask()
    private_dir(settings.node.data_dir)
    registry = Registry.open(settings.registry_url)
    monitoring = _monitoring(settings, registry)
    assert monitoring is not None  # not an edge node
    return Services(settings, None, ids, (registry, monitoring))


def _auth_hook(services: Services) -> AuthFailureHook | None:
    """Failed identifier admin authentications go to the node's security monitor."""
    security = _security(services)
    return None if security is None else security.auth.hook("handle")


def _violation_hook(services: Services) -> ViolationHook | None:
    """Malformed native Handle requests go to the node's security monitor."""
    security = _security(services)
    return None if security is None else security.violations.observe_violation


def _security(services: Services) -> SecurityMonitor | None:
    monitoring = services.standalone[1] if services.standalone is not None else (
        services.platform.monitoring if services.platform is not None else None)
    return None if monitoring is None else monitoring.security


@contextlib.asynccontextmanager
async def serving(services: Services) -> AsyncIterator[LiveServices]:
    """Run the node's services while the context is open: the identifier service first (the
    platform links to it), then the platform; stopped in the reverse order."""
    platform, options = services.platform, services.identifiers
    async with contextlib.AsyncExitStack() as stack:
        ids = None
        if options is not None:
            restarts = platform.metrics.restarts if platform is not None else None
            try:
                ids = await stack.enter_async_context(identifier_node(
                    options, restarts=restarts, on_auth_failure=_auth_hook(services),
                    on_violation=_violation_hook(services)))
            except BaseException:
                if platform is not None:
                    platform.close()
                raise
        if platform is not None:
            await stack.enter_async_context(running(platform))
        if services.standalone is not None:
            await stack.enter_async_context(monitoring_only(services.settings,
                                                            *services.standalone))
        yield LiveServices(platform, ids)


@contextlib.asynccontextmanager
async def monitoring_only(settings: Settings, registry: Registry,
                          monitoring: Monitoring) -> AsyncIterator[int]:
    """A node without the platform: the federation's jobs and its API (monitoring_app) on the
    API's address while the context is open; yields the port."""
    from millnet.api.app import monitoring_app
    from millnet.monitoring import jobs

    try:
        sock = api_socket(settings.api)
    except ConfigError:
        registry.close()
        raise
    restarts = Counter("millnet_monitoring_restarts", "Restarts of a monitoring job",
                       ["job"], registry=None)
    server = embedded_server(monitoring_app(registry, monitoring, node_name=settings.node.name),
                             proxies=[str(n) for n in settings.api.trusted_proxies])
    try:
        async with asyncio.TaskGroup() as tg:
            tasks = [tg.create_task(supervise(name, job, restarts), name=name)
                     for name, job in jobs(monitoring).items()]
            serve = tg.create_task(server.serve(sockets=[sock]))
            try:
                yield sock.getsockname()[1]
            finally:
                server.should_exit = True
                await asyncio.wait([serve])
                for task in tasks:
                    task.cancel()
    finally:
        monitoring.close()
        registry.close()


async def run_node(settings: Settings) -> None:
    """Run until SIGINT or SIGTERM, then stop reading, drain the pipeline and close the stores."""
    services = build_services(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with serving(services) as live:
        if live.identifiers is not None and services.identifiers is not None:
            log.info("%s", describe(services.identifiers, live.identifiers))
        if live.platform is not None:
            log.info("node %s (%s) serving API on http://%s:%s", settings.node.name,
                     settings.node.role, settings.api.host, live.platform.api_port)
        elif services.standalone is not None:
            log.info("node %s (%s) serving the federation on http://%s:%s", settings.node.name,
                     settings.node.role, settings.api.host, settings.api.port)
        await stop.wait()
        log.info("stopping")
