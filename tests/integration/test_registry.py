"""The registry against real databases: every test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar, cast

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import event, func, inspect, select

# Every package that defines tables on the shared metadata, so that all of them are compared.
import millnet.alarms.schema
import millnet.collab.schema
import millnet.federation.report_schema
import millnet.federation.schema
import millnet.identifiers.core.schema
import millnet.kpi.schema
import millnet.notify.schema
import millnet.orders.schema
import millnet.park.schema
import millnet.rules.schema
import millnet.security.schema
import millnet.trace.schema  # noqa: F401
from millnet.db.engine import create_db_engine, writer
from millnet.db.migrate import VERSION_TABLE, current_revision, downgrade, head_revision
from millnet.db.schema import metadata
from millnet.errors import ConfigError, Conflict, InvalidInput, NotFound, StorageError
from millnet.model import AssetKind, DataType, PointSpec
from millnet.registry import Registry
from millnet.registry.schema import assets, points
from tests.integration.registry_fixtures import DEVICE_PATH, registry, registry_url

__all__ = ["registry", "registry_url"]  # fixtures, imported to be found by pytest

K = AssetKind
T = TypeVar("T")
REGISTRY_TABLES = {"tenants", "assets", "points", "api_tokens", VERSION_TABLE}


def _in_threads(n: int, work: Callable[[], T]) -> list[T]:
    """Run ``work`` in ``n`` threads released together; their results."""
    barrier = threading.Barrier(n)

    def start() -> T:
        barrier.wait()
        return work()

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(lambda _: start(), range(n)))


def _device(reg: Registry, tenant: str = "acme") -> tuple[int, int]:
    tenant_id = reg.ensure_tenant(tenant).id
    return tenant_id, reg.ensure_path(tenant_id, DEVICE_PATH)[-1]


# Migrations and opening


def test_open_migrates_an_empty_database_to_head_and_reopening_is_a_noop(
        registry_url: str) -> None:
    engine = create_db_engine(registry_url)
    try:
        assert current_revision(engine) is None
        with Registry.open(registry_url) as reg:
            tenant = reg.create_tenant("acme")
        assert current_revision(engine) == head_revision()
        assert set(inspect(engine).get_table_names()) >= REGISTRY_TABLES
        with Registry.open(registry_url) as reg:
            assert reg.list_tenants() == [tenant]
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()


def test_migrated_schema_matches_the_metadata(registry: Registry) -> None:
    with registry.engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "version_table": VERSION_TABLE})
        assert compare_metadata(context, metadata) == []


def test_downgrade_to_base_drops_everything_and_open_recreates_it(registry_url: str) -> None:
    Registry.open(registry_url).close()
    engine = create_db_engine(registry_url)
    try:
        downgrade(engine, "base")
        assert current_revision(engine) is None
        assert not set(inspect(engine).get_table_names()) & (REGISTRY_TABLES - {VERSION_TABLE})
        with Registry.open(registry_url) as reg:
            assert reg.list_tenants() == []
    finally:
        engine.dispose()


def test_concurrent_opens_of_a_fresh_database_migrate_once(registry_url: str) -> None:
    registries = _in_threads(4, lambda: Registry.open(registry_url))
    for reg in registries:
        reg.close()
    with Registry.open(registry_url) as reg:
        assert reg.list_tenants() == []


def test_sqlite_runs_in_wal_mode_with_foreign_keys_and_a_busy_timeout(tmp_path: Path) -> None:
    with Registry.open(f"sqlite:///{tmp_path / 'new' / 'registry.sqlite'}") as reg:
        with reg.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert cast(int, conn.exec_driver_sql("PRAGMA busy_timeout").scalar()) >= 1000
        # A write transaction holds the write lock from BEGIN (IMMEDIATE), so its read-then-write
        # cannot fail on a stale snapshot; a read transaction takes no lock.
        other = sqlite3.connect(tmp_path / "new" / "registry.sqlite", timeout=0,
                                isolation_level=None)
        try:
            with writer(reg.engine).begin() as conn:
                conn.exec_driver_sql("SELECT 1")
                with pytest.raises(sqlite3.OperationalError, match="locked"):
                    other.execute("BEGIN IMMEDIATE")
            with reg.engine.begin() as conn:
                conn.exec_driver_sql("SELECT 1")
                other.execute("BEGIN IMMEDIATE")
                other.execute("ROLLBACK")
        finally:
            other.close()


def test_open_reports_bad_urls_and_unreachable_databases() -> None:
    with pytest.raises(ConfigError, match=r"registry\.url"):
        Registry.open("mysql://somewhere/db")
    with pytest.raises(StorageError, match="unavailable"):
        Registry.open("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2")


# Tenants


def test_tenants(registry: Registry) -> None:
    acme = registry.create_tenant("acme", "ACME Corp", retention_days=90)
    beta = registry.create_tenant("beta")
    assert (acme.name, acme.display_name, acme.retention_days) == ("acme", "ACME Corp", 90)
    assert beta.display_name == "beta" and beta.retention_days is None
    assert registry.get_tenant(acme.id) == acme == registry.get_tenant("acme")
    assert registry.list_tenants() == [acme, beta]
    assert registry.ensure_tenant("acme") == acme
    assert registry.set_retention(beta.id, 7).retention_days == 7
    with pytest.raises(Conflict, match="acme"):
        registry.create_tenant("acme")
    with pytest.raises(NotFound, match="nope"):
        registry.get_tenant("nope")
    with pytest.raises(NotFound):
        registry.get_tenant(9999)
    for bad in ("", "ACME", "a/b", "-x", "x" * 64):
        with pytest.raises(InvalidInput) as err:
            registry.create_tenant(bad)
        assert err.value.field == "name"
    with pytest.raises(InvalidInput) as err:
        registry.create_tenant("gamma", retention_days=0)
    assert err.value.field == "retention_days"


# The asset hierarchy


def test_ensure_path_is_idempotent_and_shares_prefixes(registry: Registry) -> None:
    tenant_id = registry.create_tenant("acme").id
    ids = registry.ensure_path(tenant_id, DEVICE_PATH)
    assert len(set(ids)) == 5
    assert registry.ensure_path(tenant_id, DEVICE_PATH) == ids
    assert registry.ensure_path(tenant_id, DEVICE_PATH[:3]) == ids[:3]
    other = registry.ensure_path(tenant_id, [*DEVICE_PATH[:4], (K.DEVICE, "press-8")])
    assert other[:4] == ids[:4] and other[4] not in ids

    device = registry.get_asset(ids[-1])
    assert (device.kind, device.name, device.parent_id) == (K.DEVICE, "press-7", ids[3])
    assert device.path == "acme/plant-1/press shop/line 3/press-7"
    assert registry.find_asset(tenant_id, device.path) == device
    assert [a.name for a in registry.list_children(tenant_id, ids[3])] == ["press-7", "press-8"]
    assert [a.id for a in registry.list_children(tenant_id)] == [ids[0]]


def test_asset_tree_nests_children_in_name_order(registry: Registry) -> None:
    tenant_id = registry.create_tenant("acme").id
    registry.ensure_path(tenant_id, [(K.ENTERPRISE, "acme"), (K.SITE, "b-site")])
    registry.ensure_path(tenant_id, [(K.ENTERPRISE, "acme"), (K.SITE, "a-site"), (K.AREA, "x")])
    (root,) = registry.asset_tree(tenant_id)
    assert (root["name"], root["kind"]) == ("acme", "enterprise")
    assert [c["name"] for c in root["children"]] == ["a-site", "b-site"]
    area = root["children"][0]["children"][0]
    assert (area["path"], area["kind"], area["children"]) == ("acme/a-site/x", "area", [])


WRONG_PATHS: list[tuple[list[tuple[AssetKind | str, str]], str, str]] = [
    ([(K.SITE, "plant")], "path[0].kind", "root asset must be an enterprise, not a site"),
    ([(K.ENTERPRISE, "acme"), (K.AREA, "x")], "path[1].kind",
     "children of an enterprise are sites, not areas"),
    ([*DEVICE_PATH, (K.DEVICE, "sub")], "path[5].kind", "device cannot have children"),
    ([(K.ENTERPRISE, "acme"), ("plant", "x")], "path[1].kind", "unknown asset kind"),
    ([(K.ENTERPRISE, "a/b")], "path[0].name", "'/'"),
    ([(K.ENTERPRISE, "")], "path[0].name", "empty"),
    ([(K.ENTERPRISE, "x" * 201)], "path[0].name", "at most 200"),
    ([(K.ENTERPRISE, "bad\nname")], "path[0].name", "control characters"),
    ([], "path", "non-empty"),
]


def test_ensure_path_rejects_wrong_kind_order_and_bad_names(registry: Registry) -> None:
    tenant_id = registry.create_tenant("acme").id
    for path, field, message in WRONG_PATHS:
        with pytest.raises(InvalidInput, match=message) as err:
            registry.ensure_path(tenant_id, path)
        assert err.value.field == field, path
    assert registry.asset_tree(tenant_id) == []


def test_create_asset_enforces_the_hierarchy(registry: Registry) -> None:
    acme = registry.create_tenant("acme").id
    beta = registry.create_tenant("beta").id
    enterprise = registry.create_asset(acme, None, K.ENTERPRISE, "acme", "the company")
    site = registry.create_asset(acme, enterprise.id, "site", "plant-1")
    assert (site.kind, site.path, enterprise.description) == (K.SITE, "acme/plant-1",
                                                              "the company")
    with pytest.raises(InvalidInput, match="children of a site are areas") as err:
        registry.create_asset(acme, site.id, K.LINE, "line 1")
    assert err.value.field == "kind"
    with pytest.raises(InvalidInput) as err:
        registry.create_asset(acme, None, K.SITE, "orphan")
    assert err.value.field == "kind"
    with pytest.raises(Conflict, match="acme/plant-1"):
        registry.create_asset(acme, enterprise.id, K.SITE, "plant-1")
    with pytest.raises(NotFound, match="parent_id"):
        registry.create_asset(beta, site.id, K.AREA, "foreign parent")
    with pytest.raises(NotFound):
        registry.get_asset(site.id, tenant_id=beta)
    with pytest.raises(NotFound):
        registry.list_children(beta, site.id)
    with pytest.raises(NotFound):
        registry.create_asset(9999, None, K.ENTERPRISE, "ghost")


def test_same_names_in_two_tenants_are_separate_assets(registry: Registry) -> None:
    acme = registry.create_tenant("acme").id
    beta = registry.create_tenant("beta").id
    assert not set(registry.ensure_path(acme, DEVICE_PATH)) & set(
        registry.ensure_path(beta, DEVICE_PATH))
    assert len(registry.asset_tree(acme)) == len(registry.asset_tree(beta)) == 1


def test_concurrent_ensure_path_creates_each_asset_once(registry: Registry) -> None:
    tenant_id = registry.create_tenant("acme").id
    results = _in_threads(8, lambda: registry.ensure_path(tenant_id, DEVICE_PATH))
    assert all(r == results[0] for r in results)
    with registry.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(assets)).scalar() == 5


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.text(st.characters(exclude_categories=("Cc", "Cs"), exclude_characters="/"),
                    min_size=1, max_size=200).filter(str.strip))
def test_any_valid_name_round_trips(registry: Registry, name: str) -> None:
    tenant_id = registry.ensure_tenant("acme").id
    (asset_id,) = registry.ensure_path(tenant_id, [(K.ENTERPRISE, name)])
    assert registry.get_asset(asset_id).name == name
    assert registry.find_asset(tenant_id, name).id == asset_id


# Points, the series dictionary


def test_upsert_points_creates_updates_and_keeps_ids(registry_url: str) -> None:
    specs = [PointSpec("temperature", DataType.DOUBLE, unit="degC", eng_low=-20, eng_high=120),
             PointSpec("running", DataType.BOOLEAN),
             PointSpec("recipe", DataType.STRING, description="active recipe")]
    with Registry.open(registry_url) as reg:
        tenant_id, device_id = _device(reg)
        ids = reg.upsert_points(tenant_id, device_id, specs)
        assert sorted(ids) == ["recipe", "running", "temperature"]
        assert len(set(ids.values())) == 3
        assert reg.upsert_points(tenant_id, device_id, specs) == ids
        before = reg.get_point(ids["temperature"])
        assert (before.unit, before.eng_low, before.eng_high) == ("degC", -20.0, 120.0)
        assert before.created_at == before.updated_at

        changed = [PointSpec("temperature", DataType.FLOAT, unit="K"),
                   PointSpec("pressure", DataType.DOUBLE, unit="bar")]
        more = reg.upsert_points(tenant_id, device_id, changed)
        assert more["temperature"] == ids["temperature"] and more["pressure"] not in ids.values()
        after = reg.get_point(ids["temperature"])
        assert (after.datatype, after.unit, after.eng_low, after.eng_high) == (
            DataType.FLOAT, "K", None, None)
        assert after.created_at == before.created_at and after.updated_at > before.updated_at
        assert reg.get_point(ids["running"]) == reg.get_point(ids["running"])
        assert reg.upsert_points(tenant_id, device_id, []) == {}
    with Registry.open(registry_url) as reg:
        assert reg.upsert_points(tenant_id, device_id, specs) == ids
        assert [p.name for p in reg.list_points(tenant_id, device_id)] == [
            p.name for p in sorted(reg.list_points(tenant_id), key=lambda p: p.series_id)]
        assert len(reg.list_points(tenant_id)) == 4


def test_upsert_points_handles_a_birth_of_a_thousand_metrics_in_bulk(
        registry: Registry) -> None:
    """A birth certificate of 1,000 metrics costs a bounded number of statements, not one or
    more per metric (what made births slow): counted, not timed."""
    tenant_id, device_id = _device(registry)
    specs = [PointSpec(f"Node Control/metric {i}", DataType.DOUBLE, unit="m/s", eng_low=0,
                       eng_high=i) for i in range(1000)]
    statements: list[str] = []

    def count(*args: object) -> None:
        statements.append(str(args[2]))

    event.listen(registry.engine, "before_cursor_execute", count)
    try:
        ids = registry.upsert_points(tenant_id, device_id, specs)
        rebirth = registry.upsert_points(tenant_id, device_id, specs)
        renamed_units = registry.upsert_points(
            tenant_id, device_id, [PointSpec(s.name, s.datatype, unit="km/h") for s in specs])
    finally:
        event.remove(registry.engine, "before_cursor_execute", count)
    assert ids == rebirth == renamed_units and len(set(ids.values())) == 1000
    assert {p.unit for p in registry.list_points(tenant_id, device_id)} == {"km/h"}
    assert len(statements) < 60, f"{len(statements)} statements for three upserts of 1,000"


def test_upsert_points_rejects_bad_specs_and_non_devices(registry: Registry) -> None:
    tenant_id, device_id = _device(registry)
    line_id = registry.ensure_path(tenant_id, DEVICE_PATH[:4])[-1]
    other_tenant = registry.create_tenant("beta").id
    ok = PointSpec("ok", DataType.INT32)
    cases: list[tuple[list[PointSpec], str]] = [
        ([ok, PointSpec("ok", DataType.INT16)], "specs[1].name"),
        ([PointSpec("", DataType.INT16)], "specs[0].name"),
        ([ok, PointSpec("x", cast(DataType, "complex"))], "specs[1].datatype"),
        ([PointSpec("x", DataType.DOUBLE, eng_low=float("nan"))], "specs[0].eng_low"),
        ([PointSpec("x", DataType.DOUBLE, unit="u" * 65)], "specs[0].unit"),
    ]
    for specs, field in cases:
        with pytest.raises(InvalidInput) as err:
            registry.upsert_points(tenant_id, device_id, specs)
        assert err.value.field == field
    with pytest.raises(InvalidInput, match="not a device") as err:
        registry.upsert_points(tenant_id, line_id, [ok])
    assert err.value.field == "device_id"
    with pytest.raises(NotFound, match="device_id"):
        registry.upsert_points(other_tenant, device_id, [ok])
    assert registry.list_points(tenant_id) == []


def test_points_tenant_and_series_ids_keep_tenants_apart(registry: Registry) -> None:
    acme, acme_device = _device(registry, "acme")
    beta, beta_device = _device(registry, "beta")
    spec = [PointSpec("speed", DataType.DOUBLE), PointSpec("state", DataType.STRING)]
    acme_ids = registry.upsert_points(acme, acme_device, spec)
    beta_ids = registry.upsert_points(beta, beta_device, spec)
    assert not set(acme_ids.values()) & set(beta_ids.values())

    everything = [*acme_ids.values(), *beta_ids.values(), 999_999]
    owners = registry.points_tenant(everything)
    assert owners == {**dict.fromkeys(acme_ids.values(), acme),
                      **dict.fromkeys(beta_ids.values(), beta)}
    assert registry.points_tenant([]) == {}
    assert registry.series_ids_of_tenant(acme) == sorted(acme_ids.values())
    assert registry.series_ids_of_tenant(beta) == sorted(beta_ids.values())
    assert registry.get_point(acme_ids["speed"], tenant_id=acme).tenant_id == acme
    with pytest.raises(NotFound):
        registry.get_point(acme_ids["speed"], tenant_id=beta)
    with pytest.raises(NotFound):
        registry.list_points(beta, acme_device)


def test_concurrent_upserts_of_the_same_points_agree(registry: Registry) -> None:
    tenant_id, device_id = _device(registry)
    specs = [PointSpec(f"p{i}", DataType.INT64) for i in range(50)]
    results = _in_threads(6, lambda: registry.upsert_points(tenant_id, device_id, specs))
    assert all(r == results[0] for r in results)
    with registry.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(points)).scalar() == 50
