"""A small two-tenant world for the API tests (no tests here; the other test_api_* use it).

Real peers: a SQLite registry and a DuckDB telemetry store in a temporary directory, an app from
``create_app`` and a ``TestClient``. Tenant ``acme`` has two devices, tenant ``globex`` one;
each has numeric and text points with samples at fixed times.

With ``field=True`` the app also has the field routes (sources, device tokens, HTTP ingest) over
a real ingest pipeline, source host and source store (:class:`Field`), built as ``node.py``
builds them; whoever serves the app runs the pipeline and enters the host in its event loop
(the ``TestClient``'s loop is another one: use it for the other routes only).

Every world also has the issue-12 services (:class:`Services`: alarms, rules, notifications with
no target, KPIs and roll-ups, no rule engine), built as ``node.py`` builds them, so that every
test over the whole API (tokens, contract) covers their routes. Their tasks run in the
``TestClient``'s loop, or with ``run_services=False`` in the loop of whoever serves the app
(:meth:`Services.runs`; with ``field=True`` KPIs and roll-ups also tap the pipeline).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from fastapi.testclient import TestClient

from millnet.alarms.service import AlarmService
from millnet.alarms.settings import AlarmsSection
from millnet.alarms.store import AlarmStore
from millnet.api import Limits, create_app
from millnet.api.routes.ingest import HttpIngest
from millnet.commands import CommandService
from millnet.ingest.binder import Quotas
from millnet.ingest.metrics import IngestMetrics
from millnet.ingest.pipeline import IngestPipeline
from millnet.kpi.settings import KpiSection
from millnet.kpi.store import KpiStore
from millnet.kpi.tracker import KpiTracker, bindings_from_points
from millnet.model import AssetKind, DataType, PointSpec, Quality, SampleBatch, TextSample
from millnet.notify.outbox import OutboxStore
from millnet.notify.service import Notifier
from millnet.notify.settings import NotifySection
from millnet.registry import Registry
from millnet.registry.commands import CommandStore
from millnet.registry.sources import SourceStore
from millnet.rules.store import RuleStore
from millnet.sources import KINDS, Binders, Kind, SourceHost
from millnet.telemetry.duckdb_store import DuckDBTelemetryStore
from millnet.telemetry.rollups import Rollups, RollupStore

T0_MS = 1_735_689_600_000  # 2025-01-01T00:00:00Z
T0_NS = T0_MS * 1_000_000
STEP_NS = 10 * 1_000_000_000  # one sample every 10 s
N_SAMPLES = 30  # five minutes

POINTS = [
    PointSpec("temperature", DataType.DOUBLE, unit="degC", eng_low=0.0, eng_high=200.0),
    PointSpec("pressure", DataType.FLOAT, unit="bar"),
    PointSpec("state", DataType.STRING),
]


@dataclass
class Site:
    """One tenant's side of the world: ids and tokens."""

    tenant_id: int
    enterprise_id: int
    line_id: int
    device_id: int
    series: dict[str, int]  # point name -> series id on the main device
    tokens: dict[str, str] = field(default_factory=dict)  # role -> plaintext

    def auth(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}


@dataclass
class Field:
    """The field side of a node: pipeline, source host, HTTP ingest and the stored sources."""

    pipeline: IngestPipeline
    host: SourceHost
    http_ingest: HttpIngest
    source_store: SourceStore


Run = Callable[[], Coroutine[object, object, None]]


@dataclass
class Services:
    """The issue-12 services of the world's node (no rule engine: the rules API runs without)."""

    alarms: AlarmService
    rules: RuleStore
    notifier: Notifier
    kpi: KpiTracker
    rollups: Rollups

    def runs(self) -> list[Run]:
        """The tasks the services need running in the app's event loop."""
        return [self.alarms.run, self.notifier.run, self.kpi.run, self.rollups.run]


@dataclass
class World:
    client: TestClient
    registry: Registry
    store: DuckDBTelemetryStore
    metrics: IngestMetrics
    acme: Site
    globex: Site
    node_admin: str
    other_device_id: int  # acme's second device
    spare_series: int  # acme point without any sample
    services: Services
    field: Field | None = None

    def node_auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.node_admin}"}


def _site(registry: Registry, name: str, path: list[str]) -> Site:
    tenant = registry.create_tenant(name, name.title())
    kinds = [AssetKind.ENTERPRISE, AssetKind.SITE, AssetKind.AREA, AssetKind.LINE,
             AssetKind.DEVICE]
    ids = registry.ensure_path(tenant.id, list(zip(kinds, path, strict=True)))
    series = registry.upsert_points(tenant.id, ids[-1], POINTS)
    site = Site(tenant.id, ids[0], ids[3], ids[-1], series)
    for role in ("admin", "operator", "viewer"):
        site.tokens[role] = registry.create_token(tenant.id, role, f"{name}-{role}")[0]
    return site


def _fill(store: DuckDBTelemetryStore, site: Site, base: float) -> None:
    n = N_SAMPLES
    ts = T0_NS + np.arange(n, dtype=np.int64) * STEP_NS
    temp, pressure = site.series["temperature"], site.series["pressure"]
    batch = SampleBatch(
        np.concatenate([np.full(n, temp, np.int32), np.full(n, pressure, np.int32)]),
        np.concatenate([ts, ts]),
        np.concatenate([base + np.arange(n, dtype=np.float64), np.full(n, base / 10)]),
        np.zeros(2 * n, np.uint8),
    )
    text = [TextSample(site.series["state"], T0_NS + i * 60 * 1_000_000_000,
                       "running" if i % 2 else "idle", Quality.GOOD) for i in range(3)]
    store.write(batch, text)


def _field(registry: Registry, store: DuckDBTelemetryStore, metrics: IngestMetrics,
           tenant_id: int, data_dir: Path, kinds: dict[str, Kind]) -> Field:
    pipeline = IngestPipeline(store, metrics, max_delay=0.05)
    binders = Binders(registry, Quotas(1_000, 10_000))
    source_store = SourceStore(registry)
    host = SourceHost(pipeline, metrics, binders, metrics.restarts, default_tenant=tenant_id,
                      data_dir=data_dir, store=source_store, kinds=kinds)
    http = HttpIngest(pipeline, metrics, binders, max_payload=64 * 1024)
    host.attach(http, runs=False)
    return Field(pipeline, host, http, source_store)


def _services(registry: Registry, rollup_store: RollupStore,
              sites: tuple[Site, ...]) -> Services:
    """Built as the node builds them: alarm notices go to the notifier; the KPI machines are
    the devices with the world's ``state`` point."""
    notifier = Notifier(OutboxStore(registry.engine), NotifySection())

    def asset_path(asset_id: int) -> str:
        return registry.get_asset(asset_id).path

    alarms = AlarmService(AlarmStore(registry.engine), AlarmsSection(), asset_path,
                          notifier.submit)
    section = KpiSection(state_point="state")
    machines = [m for site in sites for m in bindings_from_points(
        site.tenant_id, registry.list_points(site.tenant_id),
        registry.asset_types(site.tenant_id), section)]
    kpi = KpiTracker(section, machines, KpiStore(registry))
    return Services(alarms, RuleStore(registry.engine), notifier, kpi, Rollups(rollup_store))


def _start(runs: list[Run]) -> list[asyncio.Task[None]]:
    loop = asyncio.get_running_loop()
    return [loop.create_task(run()) for run in runs]


@contextmanager
def _running(client: TestClient, runs: list[Run]) -> Iterator[None]:
    """``runs`` as tasks in the ``TestClient``'s event loop, cancelled and awaited at the end
    (a task that failed fails the test)."""
    assert client.portal is not None
    tasks = client.portal.call(_start, runs)

    async def stop() -> None:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    try:
        yield
    finally:
        client.portal.call(stop)


@contextmanager
def world(tmp: Path, limits: Limits | None = None, *, field: bool = False,
          kinds: dict[str, Kind] | None = None, run_services: bool = True) -> Iterator[World]:
    registry = Registry.open(f"sqlite:///{tmp / 'registry.sqlite'}")
    store = DuckDBTelemetryStore(tmp / "telemetry.duckdb", tmp / "archive")
    rollup_store = RollupStore(tmp / "rollups.duckdb")
    metrics = IngestMetrics()
    try:
        acme = _site(registry, "acme", ["acme", "plant1", "press-shop", "line1", "press-1"])
        globex = _site(registry, "globex", ["globex", "works", "paint", "line9", "robot-7"])
        other = registry.ensure_path(acme.tenant_id, [
            (AssetKind.ENTERPRISE, "acme"), (AssetKind.SITE, "plant1"),
            (AssetKind.AREA, "press-shop"), (AssetKind.LINE, "line1"),
            (AssetKind.DEVICE, "press-2")])[-1]
        spare = registry.upsert_points(
            acme.tenant_id, other, [PointSpec("speed", DataType.DOUBLE, unit="rpm")])["speed"]
        _fill(store, acme, 20.0)
        _fill(store, globex, 50.0)
        node_admin = registry.create_token(None, "admin", "node-admin")[0]
        metrics.received.inc(120)
        metrics.stored.inc(100)
        metrics.reject("oversized", "test payload too large")
        parts = (_field(registry, store, metrics, acme.tenant_id, tmp / "sources",
                        kinds or KINDS) if field else None)
        services = _services(registry, rollup_store, (acme, globex))
        if parts is not None:
            parts.pipeline.add_tap(services.kpi)
            parts.pipeline.add_tap(services.rollups)
        app = create_app(registry, store, metrics, node_name="test-node", role="enterprise",
                         limits=limits, sources_host=parts.host if parts else None,
                         http_ingest=parts.http_ingest if parts else None,
                         source_store=parts.source_store if parts else None,
                         commands=CommandService(registry, store, CommandStore(registry),
                                                 parts.host if parts else None),
                         alarms=services.alarms, rules=services.rules,
                         notifier=services.notifier, kpi=services.kpi,
                         rollups=services.rollups)
        with TestClient(app) as client, _running(client,
                                                 services.runs() if run_services else []):
            yield World(client, registry, store, metrics, acme, globex, node_admin, other,
                        spare, services, parts)
    finally:
        rollup_store.close()
        store.close()
        registry.close()
