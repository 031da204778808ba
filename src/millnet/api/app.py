"""The HTTP API application: ``create_app`` wires routers to the node's registry and store.

It owns nothing: the composition root (``node.py``) creates the registry, the telemetry store and
the ingest metrics, and closes them. Routes that touch the stores are plain ``def`` functions, run
by FastAPI in its thread pool (the registry and DuckDB calls are blocking). The hot read path
``GET /api/v1/telemetry/last`` is a plain Starlette route placed ahead of its documented FastAPI
twin (see :mod:`millnet.api.hot`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI

from millnet import __version__, console
from millnet.api import contract, hot
from millnet.api.auth import Authenticator, require
from millnet.api.context import ApiContext
from millnet.api.errors import install_error_handlers
from millnet.api.params import Limits
from millnet.api.routes import (
    alarms as alarm_routes,
)
from millnet.api.routes import (
    assets,
    devices,
    federation_views,
    ingest,
    ops,
    products,
    session,
    sources,
    status,
    stream,
    telemetry,
    tenants,
    tokens,
)
from millnet.api.routes import (
    commands as command_routes,
)
from millnet.api.routes import (
    identifiers as identifier_routes,
)
from millnet.api.routes import (
    kpi as kpi_routes,
)
from millnet.api.routes import (
    notifications as notification_routes,
)
from millnet.api.routes import (
    orders as order_routes,
)
from millnet.api.routes import (
    rules as rule_routes,
)
from millnet.api.routes import (
    security as security_routes,
)
from millnet.ingest.metrics import IngestMetrics
from millnet.registry import Registry, Role
from millnet.telemetry.base import TelemetryStore

if TYPE_CHECKING:
    from millnet.alarms.service import AlarmService
    from millnet.commands import CommandService
    from millnet.identifiers.core.service import IdentifierService
    from millnet.ingest.live import LiveFeed
    from millnet.kpi.tracker import KpiTracker
    from millnet.monitoring import Monitoring
    from millnet.notify.service import Notifier
    from millnet.orders.service import OrderService
    from millnet.registry.sources import SourceStore
    from millnet.rules.runtime import RuleRuntime
    from millnet.rules.store import RuleStore
    from millnet.security import SecurityMonitor
    from millnet.sources import SourceHost
    from millnet.telemetry.rollups import Rollups

API_PREFIX = "/api/v1"

_DESCRIPTION = """\
The millnet node API: tenants, the ISA-95 asset tree, devices and their points, telemetry
queries and API tokens.

**Authentication**: every `/api/v1` route needs `Authorization: Bearer <token>`. A token belongs
to one tenant (or to the whole node) and has a role: `viewer` reads, `operator` also acts on
equipment and alarms, `admin` also manages tokens. Objects of another tenant answer 404.

**Times** are ISO 8601 (naive means UTC) or integer epoch milliseconds; telemetry answers carry
epoch milliseconds (`ts_ms`). Bucket widths are a number and a unit: `500ms`, `15s`, `1m`, `1h`,
`1d`.

**Errors** answer `{"error": code, "detail": text, "field": parameter-or-null}` (the
`ErrorBody` schema): 400 for a value this document cannot rule out (a series list over the
node's limit, a time that does not parse), 401 without a valid token, 403 when the token may
not do this (including a node-wide token that does not name `tenant_id` where a tenant token
defaults to its own), 404 for what does not exist or belongs to another tenant, 405 (with
`Allow`) for a method the path does not serve, 409 for a conflict with what exists, 422 for a
request that does not match this document.
"""

_TAGS = [
    {"name": "tenants", "description": "Tenants of this node"},
    {"name": "assets", "description": "The ISA-95 equipment hierarchy"},
    {"name": "devices", "description": "Devices (assets of kind device) and their points"},
    {"name": "telemetry", "description": "Raw samples, time buckets and last values"},
    {"name": "tokens", "description": "API tokens (admins)"},
    {"name": "sources", "description": "Field sources (OPC UA, Modbus, MQTT...) and their "
                                       "health; admins add and remove them"},
    {"name": "ingest", "description": "HTTP ingest for devices, with device tokens"},
    {"name": "commands", "description": "Write-back commands (operators) and their audit"},
    {"name": "alarms", "description": "Alarms (ISA-18.2): states, actions (operators), audit "
                                     "trail and EEMUA 191 figures"},
    {"name": "kpi", "description": "ISO 22400-2 KPIs per machine, line and shift"},
    {"name": "identifiers", "description": "Identifiers this node holds, resolved (public "
                                           "values) for the console"},
    {"name": "rules", "description": "Rules that raise alarms; admins change them"},
    {"name": "notifications", "description": "Notification targets and their delivery status "
                                             "(node-wide admins)"},
    {"name": "security", "description": "Security events the node's detectors raised"},
    {"name": "orders", "description": "Configurable products and customer orders: placed "
                                      "(operators), scheduled, followed (tenant or follow "
                                      "token)"},
    {"name": "operations", "description": "Health and metrics, without authentication"},
]


def create_app(
    registry: Registry, store: TelemetryStore, metrics: IngestMetrics, *, node_name: str,
    role: str, limits: Limits | None = None, token_cache_seconds: float = 5.0,
    sources_host: SourceHost | None = None, http_ingest: ingest.HttpIngest | None = None,
    source_store: SourceStore | None = None, commands: CommandService | None = None,
    rules: RuleStore | None = None, rule_runtime: RuleRuntime | None = None,
    alarms: AlarmService | None = None, kpi: KpiTracker | None = None,
    rollups: Rollups | None = None, notifier: Notifier | None = None,
    security: SecurityMonitor | None = None, monitoring: Monitoring | None = None,
    orders: OrderService | None = None,
    live: LiveFeed | None = None, identifiers: IdentifierService | None = None,
) -> FastAPI:
    """Build the API of one node over its registry, telemetry store and ingest metrics; with
    ``sources_host`` the sources routes, with ``http_ingest`` and ``source_store`` HTTP ingest
    and device tokens, with ``live`` the live stream of samples. The web console is served at
    ``/console/`` (:mod:`millnet.console`)."""
    app = FastAPI(
        title=f"millnet node API ({node_name})", version=__version__, description=_DESCRIPTION,
        openapi_tags=_TAGS)
    app.state.millnet = ApiContext(
        registry=registry, store=store, metrics=metrics, node_name=node_name, role=role,
        limits=limits or Limits(),
        auth=Authenticator(registry.verify_token, ttl=token_cache_seconds))
    install_error_handlers(app)

    def openapi() -> dict[str, Any]:
        doc = contract.document(app, limits or Limits())
        if sources_host is not None:
            schema, defs = sources.spec_schema()
            doc["components"]["schemas"].update({**defs, "SourceSpec": schema})
        return doc

    app.openapi = openapi  # type: ignore[method-assign]
    # Order matters: the hot last-values route must precede its documented FastAPI twin.
    app.router.routes.append(hot.route(f"{API_PREFIX}/telemetry/last"))
    app.include_router(ops.router)
    for area in (tenants, assets, status, devices, products, telemetry, tokens, session):
        app.include_router(area.router, prefix=API_PREFIX)
    if live is not None:
        app.state.live = live
        app.include_router(stream.router, prefix=API_PREFIX)
    if sources_host is not None:
        app.state.sources = sources_host
        app.include_router(sources.router, prefix=API_PREFIX)
    if http_ingest is not None and source_store is not None:
        app.state.http_ingest = http_ingest
        app.state.source_store = source_store
        app.include_router(ingest.router, prefix=API_PREFIX)
    if commands is not None:
        app.state.commands = commands
        app.include_router(command_routes.router, prefix=API_PREFIX)
    if alarms is not None:
        app.state.alarms = alarms
        app.include_router(alarm_routes.router, prefix=API_PREFIX)
    if kpi is not None:
        app.state.kpi = kpi
        app.include_router(kpi_routes.router, prefix=API_PREFIX)
    if rollups is not None:
        app.state.rollups = rollups
        app.include_router(kpi_routes.rollup_router, prefix=API_PREFIX)
    if rules is not None:
        app.state.rules = rules
        app.state.rule_runtime = rule_runtime  # may also be set once the engine runs
        app.include_router(rule_routes.router, prefix=API_PREFIX)
    if notifier is not None:
        app.state.notifier = notifier
        app.include_router(notification_routes.router, prefix=API_PREFIX)
    if security is not None:  # failed authentications feed its detector
        app.state.security = security
        app.state.millnet.auth.on_failure = security.auth.hook("api")
        app.include_router(security_routes.router, prefix=API_PREFIX)
    _mount_apps(app, orders, identifiers)
    if monitoring is not None:
        mount_federation(app, monitoring)
    app.router.routes.extend(console.routes())
    return app


def _mount_apps(app: FastAPI, orders: OrderService | None,
                identifiers: IdentifierService | None) -> None:
    """Orders (issue 15); identifier resolution for the console (the Handle API has its own
    port and no bearer tokens: docs/console.md)."""
    order_routes.mount(app, orders, API_PREFIX)
    if identifiers is not None:
        app.state.identifiers = identifiers
        app.include_router(identifier_routes.router, prefix=API_PREFIX)


def mount_federation(app: FastAPI, monitoring: Monitoring) -> None:
    """The federation's routes: the link (exchange and enroll, signed; tokens and children for
    node-wide admins) and the views (situation, advisories, orders)."""
    app.include_router(monitoring.links.router(admin=require(Role.ADMIN)))
    app.state.federation_views = monitoring.views
    app.include_router(federation_views.router, prefix=API_PREFIX)
    from millnet.api.routes import park, shares

    shares.mount(app, monitoring)  # an enterprise's shares with partners (issue 15)
    park.mount(app, monitoring)  # a park's members side by side


def monitoring_app(registry: Registry, monitoring: Monitoring, *, node_name: str,
                   token_cache_seconds: float = 5.0) -> FastAPI:
    """The API of a node without the platform (a national node): the federation, its views
    and the node's security events, authenticated with the registry's tokens; no telemetry."""
    app = FastAPI(title=f"millnet monitoring API ({node_name})", version=__version__,
                  description=_DESCRIPTION, openapi_tags=_TAGS)
    app.state.millnet = _AuthOnly(registry, Authenticator(registry.verify_token,
                                                          ttl=token_cache_seconds),
                                  node_name, monitoring.role)
    install_error_handlers(app)

    @app.get("/health", tags=["operations"])
    async def health() -> dict[str, Any]:
        return {"status": "ok", "node": node_name, "role": monitoring.role,
                "federation": monitoring.links.status()}

    if monitoring.security is not None:
        app.state.security = monitoring.security
        app.state.millnet.auth.on_failure = monitoring.security.auth.hook("api")
        app.include_router(security_routes.router, prefix=API_PREFIX)
    mount_federation(app, monitoring)
    app.include_router(session.router, prefix=API_PREFIX)
    app.router.routes.extend(console.routes())
    return app


@dataclass
class _AuthOnly:
    """What the authentication dependency reads of a node without the platform."""

    registry: Registry
    auth: Authenticator
    node_name: str = ""
    role: str = ""
