"""The rules API over a real registry database: roles, tenant scoping, errors naming the
body's field, read-only file rules, validation, and the engine told after every change."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from millnet.api import create_app
from millnet.ingest.metrics import IngestMetrics
from millnet.registry import Registry
from millnet.rules.definitions import parse_rule
from millnet.rules.runtime import RuleStatus
from millnet.rules.store import RuleStore
from millnet.telemetry.duckdb_store import DuckDBTelemetryStore

HOT = {"name": "spindle-hot", "kind": "threshold", "point": "Spindle/Temperature",
       "above": 80, "on_delay": "5s", "applies_to": {"asset_type": "cnc"}}


@dataclass
class Runtime:
    """The RuleRuntime protocol as the engine implements it, reduced to what it is told."""

    changes: list[int] = field(default_factory=list)

    def changed(self, tenant_id: int) -> None:
        self.changes.append(tenant_id)

    def status(self, rule_id: int) -> RuleStatus | None:
        return RuleStatus(rule_id, bindings=3, active=1, evaluations=10, errors=1,
                          last_error="division by zero in {A} / {B}", last_error_at_ns=5)


@dataclass
class Api:
    client: TestClient
    store: RuleStore
    runtime: Runtime
    tenants: dict[str, int]
    tokens: dict[str, dict[str, str]]

    def call(self, method: str, path: str, who: str, body: Any = None,
             **params: Any) -> Any:
        return self.client.request(method, f"/api/v1{path}", headers=self.tokens[who],
                                   json=body, params=params)


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    registry = Registry.open(f"sqlite:///{tmp_path / 'registry.sqlite'}")
    store = DuckDBTelemetryStore(tmp_path / "telemetry.duckdb", tmp_path / "archive")
    rules = RuleStore(registry.engine, max_rules_per_tenant=3)
    runtime = Runtime()
    try:
        tenants = {name: registry.create_tenant(name).id for name in ("acme", "globex")}
        tokens = {f"{tenant}-{role}": {"Authorization": "Bearer " + registry.create_token(
            tid, role, f"{tenant}-{role}")[0]}
            for tenant, tid in tenants.items() for role in ("viewer", "operator", "admin")}
        tokens["node"] = {"Authorization": "Bearer " + registry.create_token(
            None, "admin", "node-admin")[0]}
        app = create_app(registry, store, IngestMetrics(), node_name="n", role="enterprise",
                         rules=rules, rule_runtime=runtime)
        with TestClient(app, raise_server_exceptions=False) as client:
            yield Api(client, rules, runtime, tenants, tokens)
    finally:
        store.close()
        registry.close()


def test_admins_create_replace_and_delete_rules(api: Api) -> None:
    acme = api.tenants["acme"]
    created = api.call("POST", "/rules", "acme-admin", HOT)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["name"] == "spindle-hot" and body["origin"] == "api"
    assert body["tenant_id"] == acme and body["definition"]["on_delay"] == 5.0
    assert parse_rule(body["definition"]) == parse_rule(HOT)
    assert api.runtime.changes == [acme]
    rule_id = body["id"]

    one = api.call("GET", f"/rules/{rule_id}", "acme-viewer").json()
    assert one["status"]["bindings"] == 3
    assert one["status"]["last_error"] == "division by zero in {A} / {B}"
    assert [r["id"] for r in api.call("GET", "/rules", "acme-viewer").json()] == [rule_id]

    replaced = api.call("PUT", f"/rules/{rule_id}", "acme-admin", {**HOT, "above": 90})
    assert replaced.status_code == 200 and replaced.json()["definition"]["above"] == 90.0
    gone = api.call("DELETE", f"/rules/{rule_id}", "acme-admin")
    assert gone.status_code == 200 and gone.json()["id"] == rule_id
    assert api.call("GET", f"/rules/{rule_id}", "acme-viewer").status_code == 404
    assert api.runtime.changes == [acme, acme, acme]


def test_roles_and_tenants(api: Api) -> None:
    for who in ("acme-viewer", "acme-operator"):
        r = api.call("POST", "/rules", who, HOT)
        assert r.status_code == 403, r.text
    rule_id = api.call("POST", "/rules", "acme-admin", HOT).json()["id"]
    assert api.call("GET", f"/rules/{rule_id}", "globex-viewer").status_code == 404
    assert api.call("PUT", f"/rules/{rule_id}", "globex-admin", HOT).status_code == 404
    assert api.call("DELETE", f"/rules/{rule_id}", "globex-admin").status_code == 404
    assert api.call("GET", "/rules", "globex-viewer").json() == []
    assert api.call("GET", "/rules", "acme-viewer",
                    tenant_id=api.tenants["globex"]).status_code == 404
    # A node-wide token names the tenant, and sees every tenant's rule by id.
    assert api.call("GET", "/rules", "node").status_code == 403
    assert api.call("POST", "/rules", "node", HOT).status_code == 403
    made = api.call("POST", "/rules", "node", HOT, tenant_id=api.tenants["globex"])
    assert made.status_code == 201 and made.json()["tenant_id"] == api.tenants["globex"]
    assert api.call("GET", f"/rules/{rule_id}", "node").status_code == 200
    assert api.runtime.changes == [api.tenants["acme"], api.tenants["globex"]]


def test_errors_name_the_field_of_the_body(api: Api) -> None:
    r = api.call("POST", "/rules", "acme-admin", {**HOT, "above": "hot"})
    assert r.status_code == 400
    assert r.json()["field"] == "above" and "must be a number (got 'hot')" in r.json()["detail"]
    r = api.call("POST", "/rules", "acme-admin", {**HOT, "abov": 3})
    assert r.json()["field"] == "abov" and "did you mean 'above'?" in r.json()["detail"]
    r = api.call("POST", "/rules", "acme-admin",
                 {**HOT, "applies_to": {"devices": ["a/b"]}})
    assert r.json()["field"] == "applies_to.devices[0]"
    assert api.call("POST", "/rules", "acme-admin", [1, 2]).status_code == 422
    assert api.call("POST", "/rules", "acme-admin", HOT).status_code == 201
    r = api.call("POST", "/rules", "acme-admin", HOT)
    assert r.status_code == 409 and "spindle-hot" in r.json()["detail"]
    for name in ("b", "c"):
        assert api.call("POST", "/rules", "acme-admin", {**HOT, "name": name}).status_code == 201
    r = api.call("POST", "/rules", "acme-admin", {**HOT, "name": "d"})
    assert r.status_code == 409 and "max_rules_per_tenant" in r.json()["detail"]
    assert api.runtime.changes == [api.tenants["acme"]] * 3


def test_file_rules_are_read_only(api: Api) -> None:
    [stored] = api.store.sync_file_rules(api.tenants["acme"], "/etc/millnet/cnc.toml",
                                         [parse_rule(HOT)])
    listed = api.call("GET", "/rules", "acme-viewer").json()
    assert listed[0]["origin"] == "file" and listed[0]["file"] == "/etc/millnet/cnc.toml"
    for method, body in (("PUT", HOT), ("DELETE", None)):
        r = api.call(method, f"/rules/{stored.id}", "acme-admin", body)
        assert r.status_code == 409 and "/etc/millnet/cnc.toml" in r.json()["detail"]
    assert api.runtime.changes == []


def test_validate_answers_the_canonical_form_or_the_error(api: Api) -> None:
    ok = api.call("POST", "/rules/validate", "acme-viewer", HOT).json()
    assert ok["valid"] and ok["rule"] == parse_rule(HOT).to_dict() and ok["errors"] == []
    bad = api.call("POST", "/rules/validate", "acme-viewer",
                   {"name": "x", "kind": "expression", "expression": "A <",
                    "applies_to": {"devices": ["*"]}}).json()
    assert not bad["valid"] and bad["rule"] is None
    [error] = bad["errors"]
    assert error["field"] == "expression" and error["message"].endswith("at column 4")
    assert api.call("GET", "/rules", "acme-viewer").json() == []  # nothing stored


def test_the_rules_routes_are_documented(api: Api) -> None:
    doc = api.client.get("/openapi.json").json()
    paths = doc["paths"]
    assert set(paths["/api/v1/rules"]) == {"get", "post"}
    assert set(paths["/api/v1/rules/{rule_id}"]) == {"get", "put", "delete"}
    assert paths["/api/v1/rules/validate"]["post"]["tags"] == ["rules"]
    assert "409" in paths["/api/v1/rules/{rule_id}"]["put"]["responses"]
