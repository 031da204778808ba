"""The rule store on SQLite and PostgreSQL: the migrated table matches the metadata, API rules
are created, replaced and deleted per tenant, file rules keep their ids across syncs."""

from __future__ import annotations

from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from millnet.db.migrate import VERSION_TABLE
from millnet.db.schema import metadata
from millnet.errors import Conflict, NotFound, QuotaExceeded
from millnet.registry import Registry
from millnet.rules import schema as rule_schema
from millnet.rules.definitions import Rule, parse_rule
from millnet.rules.store import RuleStore
from tests.integration.registry_fixtures import registry, registry_url

__all__ = ["registry", "registry_url"]


def make(name: str, above: float = 80.0, **extra: Any) -> Rule:
    return parse_rule({"name": name, "kind": "threshold", "point": "T", "above": above,
                       "applies_to": {"asset_type": "cnc"}, **extra})


def test_the_rules_table_matches_the_metadata(registry: Registry) -> None:
    assert rule_schema.rules.name in metadata.tables
    compared: set[str] = set()

    def only_rules(obj: Any, name: str | None, type_: str, reflected: bool,
                   compare_to: object) -> bool:
        table = name if type_ == "table" else getattr(getattr(obj, "table", None), "name", "")
        if table == "rules":
            compared.add(str(table))
            return True
        return False

    with registry.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={
            "compare_type": True, "version_table": VERSION_TABLE,
            "include_object": only_rules})
        assert compare_metadata(context, metadata) == []
    assert compared == {"rules"}


def test_api_rules_per_tenant(registry: Registry) -> None:
    store = RuleStore(registry.engine)
    acme = registry.ensure_tenant("acme").id
    other = registry.ensure_tenant("other").id
    created = store.create(acme, make("hot"))
    assert created.rule == make("hot") and created.origin == "api" and created.file is None
    assert store.get(created.id, tenant_id=acme) == created
    with pytest.raises(NotFound):
        store.get(created.id, tenant_id=other)
    with pytest.raises(Conflict, match="a rule named 'hot' exists"):
        store.create(acme, make("hot"))
    store.create(other, make("hot"))  # names are per tenant
    replaced = store.update(created.id, make("hotter", 90.0), tenant_id=acme)
    assert replaced.id == created.id and replaced.rule.name == "hotter"
    assert replaced.created_at == created.created_at
    assert replaced.updated_at >= created.updated_at
    with pytest.raises(NotFound):
        store.update(created.id, make("x"), tenant_id=other)
    assert [s.rule.name for s in store.list(acme)] == ["hotter"]
    assert len(store.list()) == 2
    assert store.delete(created.id, tenant_id=acme).rule.name == "hotter"
    with pytest.raises(NotFound):
        store.get(created.id)


def test_the_quota_of_rules_per_tenant(registry: Registry) -> None:
    store = RuleStore(registry.engine, max_rules_per_tenant=2)
    tenant = registry.ensure_tenant("acme").id
    store.create(tenant, make("a"))
    store.create(tenant, make("b"))
    with pytest.raises(QuotaExceeded, match="max_rules_per_tenant"):
        store.create(tenant, make("c"))


def test_file_rules_keep_their_ids_and_are_read_only(registry: Registry) -> None:
    store = RuleStore(registry.engine)
    tenant = registry.ensure_tenant("acme").id
    first = store.sync_file_rules(tenant, "/etc/rules.toml", [make("a"), make("b")])
    ids = {s.rule.name: s.id for s in first}
    assert set(ids) == {"a", "b"} and all(s.origin == "file" for s in first)
    # A restart with the same file changes nothing.
    assert store.sync_file_rules(tenant, "/etc/rules.toml", [make("a"), make("b")]) == []
    # b changes in place, a disappears, c is new.
    changed = store.sync_file_rules(tenant, "/etc/rules.toml",
                                    [make("b", 95.0), make("c")])
    by_name = {s.rule.name: s for s in changed}
    assert set(by_name) == {"a", "b", "c"}
    assert by_name["b"].id == ids["b"]
    assert {s.rule.name: s.id for s in store.list(tenant)} == {"b": ids["b"],
                                                               "c": by_name["c"].id}
    with pytest.raises(Conflict, match=r"defined in the file /etc/rules\.toml"):
        store.update(ids["b"], make("b"), tenant_id=tenant)
    with pytest.raises(Conflict, match="change it there"):
        store.delete(ids["b"])
    # A name taken by an API rule or by another file is refused, and nothing is half-done.
    store.create(tenant, make("api-rule"))
    with pytest.raises(Conflict, match="already defined in the API"):
        store.sync_file_rules(tenant, "/etc/rules.toml",
                              [make("b"), make("new"), make("api-rule")])
    with pytest.raises(Conflict, match=r"already defined in the file /etc/rules\.toml"):
        store.sync_file_rules(tenant, "/etc/more.yaml", [make("c")])
    assert {s.rule.name for s in store.list(tenant)} == {"b", "c", "api-rule"}
    assert store.get(ids["b"]).rule == make("b", 95.0)


def test_deleting_a_tenant_deletes_its_rules(registry: Registry) -> None:
    store = RuleStore(registry.engine)
    tenant = registry.ensure_tenant("gone").id
    store.create(tenant, make("a"))
    with registry.engine.begin() as conn:
        conn.exec_driver_sql(f"DELETE FROM tenants WHERE id = {tenant}")
    assert store.list(tenant) == []
