"""Registry-backed endpoints, operations endpoints, error shapes and the OpenAPI document."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from millnet.api import create_app
from millnet.api.schemas import AssetOut, AssetTreeOut, DeviceOut, PointOut, TenantOut
from millnet.errors import StorageError
from millnet.ingest.metrics import IngestMetrics
from millnet.registry import Registry
from millnet.telemetry.duckdb_store import DuckDBTelemetryStore
from tests.integration.test_api_world import World, world


@pytest.fixture(scope="module")
def w(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with world(tmp_path_factory.mktemp("api-endpoints")) as built:
        yield built


def test_tenants(w: World) -> None:
    c = w.client
    listed = c.get("/api/v1/tenants", headers=w.node_auth()).json()
    assert {t["name"] for t in listed} >= {"acme", "globex"}
    one = c.get(f"/api/v1/tenants/{w.acme.tenant_id}", headers=w.acme.auth("viewer"))
    assert one.status_code == 200
    assert TenantOut.model_validate(one.json()).name == "acme"
    r = c.patch(f"/api/v1/tenants/{w.acme.tenant_id}", headers=w.acme.auth("admin"),
                json={"retention_days": 90})
    assert r.status_code == 200 and r.json()["retention_days"] == 90
    assert w.registry.get_tenant(w.acme.tenant_id).retention_days == 90
    r = c.patch(f"/api/v1/tenants/{w.acme.tenant_id}", headers=w.acme.auth("admin"),
                json={"retention_days": 0})
    assert r.status_code == 422 and r.json()["field"] == "retention_days"



@pytest.mark.parametrize("days", [36_501, 2**31, 2**63, 10**30])
def test_retention_beyond_a_century_is_refused(w: World, days: int) -> None:
    """Found by the slow contract run: ``retention_days`` had no upper bound, so 2**63 reached
    SQLite (OverflowError, 500); and a retention of 2**31 days puts the archive cutoff before
    what int64 nanoseconds hold. At most 36,500 days (a century), stated in the document."""
    c = TestClient(w.client.app, raise_server_exceptions=False)
    url = f"/api/v1/tenants/{w.acme.tenant_id}"
    r = c.patch(url, headers=w.acme.auth("admin"), json={"retention_days": days})
    assert r.status_code == 422 and r.json()["field"] == "retention_days", r.text
    r = c.post("/api/v1/tenants", headers=w.node_auth(),
               json={"name": f"long-{days % 1000}", "retention_days": days})
    assert r.status_code == 422 and r.json()["field"] == "retention_days", r.text
    r = c.patch(url, headers=w.acme.auth("admin"), json={"retention_days": 36_500})
    assert r.status_code == 200 and r.json()["retention_days"] == 36_500
    schema = c.get("/openapi.json").json()["components"]["schemas"]["TenantSettings"]
    assert schema["properties"]["retention_days"]["anyOf"][0]["maximum"] == 36_500

def test_asset_tree(w: World) -> None:
    r = w.client.get("/api/v1/assets", headers=w.acme.auth("viewer"))
    assert r.status_code == 200
    tree = AssetTreeOut.model_validate(r.json())
    assert tree.tenant_id == w.acme.tenant_id
    [enterprise] = tree.roots
    assert enterprise.kind == "enterprise" and enterprise.name == "acme"
    line = enterprise.children[0].children[0].children[0]
    assert line.id == w.acme.line_id and line.path == "acme/plant1/press-shop/line1"
    assert [d.name for d in line.children] == ["press-1", "press-2"]
    assert all(d.kind == "device" and d.children == [] for d in line.children)


def test_one_asset_and_its_children(w: World) -> None:
    c, h = w.client, w.acme.auth("viewer")
    asset = AssetOut.model_validate(c.get(f"/api/v1/assets/{w.acme.line_id}", headers=h).json())
    assert asset.kind == "line" and asset.tenant_id == w.acme.tenant_id
    children = c.get(f"/api/v1/assets/{w.acme.line_id}/children", headers=h).json()
    assert [a["id"] for a in children] == [w.acme.device_id, w.other_device_id]
    assert c.get(f"/api/v1/assets/{w.acme.device_id}/children", headers=h).json() == []
    r = c.get("/api/v1/assets/424242", headers=h)
    assert r.status_code == 404
    assert r.json() == {"error": "not_found", "detail": "asset 424242 not found", "field": None}
    r = c.get("/api/v1/assets/0", headers=h)
    assert r.status_code == 422 and r.json()["field"] == "asset_id"
    r = c.get("/api/v1/assets/abc", headers=h)
    assert r.status_code == 422 and r.json()["field"] == "asset_id"


def test_admin_creates_assets(w: World) -> None:
    c, h = w.client, w.acme.auth("admin")
    r = c.post("/api/v1/assets", headers=h,
               json={"parent_id": w.acme.line_id, "kind": "device", "name": "press-3",
                     "description": "new press"})
    assert r.status_code == 201
    created = AssetOut.model_validate(r.json())
    assert created.path == "acme/plant1/press-shop/line1/press-3"
    assert created.parent_id == w.acme.line_id and created.description == "new press"
    again = c.post("/api/v1/assets", headers=h,
                   json={"parent_id": w.acme.line_id, "kind": "device", "name": "press-3"})
    assert again.status_code == 409 and again.json()["error"] == "conflict"
    wrong = c.post("/api/v1/assets", headers=h,
                   json={"parent_id": w.acme.line_id, "kind": "site", "name": "x"})
    assert wrong.status_code == 409 and "kind" in wrong.json()["detail"]  # the tree as it is
    slash = c.post("/api/v1/assets", headers=h,
                   json={"parent_id": w.acme.line_id, "kind": "device", "name": "a/b"})
    assert slash.status_code == 422 and slash.json()["field"] == "name"
    root = c.post("/api/v1/assets", headers=h,
                  json={"parent_id": None, "kind": "enterprise", "name": "acme-east"})
    assert root.status_code == 201 and root.json()["tenant_id"] == w.acme.tenant_id


def test_devices_and_points(w: World) -> None:
    c, h = w.client, w.acme.auth("viewer")
    devices = [AssetOut.model_validate(d)
               for d in c.get("/api/v1/devices", headers=h).json()]
    names = [d.name for d in devices]
    assert {"press-1", "press-2"} <= set(names) and all(d.kind == "device" for d in devices)
    r = c.get(f"/api/v1/devices/{w.acme.device_id}", headers=h)
    device = DeviceOut.model_validate(r.json())
    assert device.name == "press-1"
    by_name = {p.name: p for p in device.points}
    assert set(by_name) == {"temperature", "pressure", "state"}
    temp = by_name["temperature"]
    assert temp.series_id == w.acme.series["temperature"]
    assert (temp.datatype, temp.unit, temp.eng_high) == ("double", "degC", 200.0)
    points = c.get(f"/api/v1/devices/{w.acme.device_id}/points", headers=h).json()
    assert [PointOut.model_validate(p) for p in points] == device.points
    # A line is an asset but not a device.
    r = c.get(f"/api/v1/devices/{w.acme.line_id}", headers=h)
    assert r.status_code == 404 and r.json()["detail"] == f"device {w.acme.line_id} not found"
    assert c.get(f"/api/v1/devices/{w.acme.line_id}/points", headers=h).status_code == 404

    every = c.get("/api/v1/points", headers=h).json()
    assert {p["series_id"] for p in every} == {*w.acme.series.values(), w.spare_series}
    one = c.get(f"/api/v1/points/{w.spare_series}", headers=h).json()
    assert one["name"] == "speed" and one["device_id"] == w.other_device_id
    assert c.get("/api/v1/points/777777", headers=h).json()["detail"] == "series 777777 not found"


def test_healthz_without_auth(w: World) -> None:
    r = w.client.get("/healthz")
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "node": "test-node", "role": "enterprise", "checks": {
        "registry": {"ok": True, "detail": None}, "telemetry": {"ok": True, "detail": None}}}


def test_healthz_reports_an_unreachable_store(tmp_path: Path) -> None:
    registry = Registry.open(f"sqlite:///{tmp_path / 'r.sqlite'}")
    store = DuckDBTelemetryStore(tmp_path / "t.duckdb", tmp_path / "archive")
    store.close()
    try:
        app = create_app(registry, store, IngestMetrics(), node_name="n", role="enterprise")
        with TestClient(app) as client:
            r = client.get("/healthz")
        assert r.status_code == 503
        body = r.json()
        assert body["status"] == "degraded"
        assert body["checks"]["registry"]["ok"] is True
        assert body["checks"]["telemetry"] == {"ok": False, "detail": "StorageError"}
    finally:
        registry.close()


def test_metrics_exposes_ingest_counters(w: World) -> None:
    w.metrics.queue_depth.set(42)
    r = w.client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    text = r.text
    for name in ("millnet_ingest_samples_received_total 120.0",
                 "millnet_ingest_samples_stored_total 100.0",
                 'millnet_ingest_rejected_total{reason="oversized"} 1.0',
                 "millnet_ingest_queue_depth 42.0",
                 "millnet_ingest_messages_received_total",
                 "millnet_ingest_batch_write_seconds_bucket"):
        assert name in text, name


def test_error_shapes(w: World) -> None:
    c = w.client
    r = c.get("/api/v1/nothing-here", headers=w.acme.auth("viewer"))
    assert r.status_code == 404 and r.json()["error"] == "not_found"
    r = c.put("/api/v1/tenants", headers=w.node_auth())
    assert r.status_code == 405 and r.json()["error"] == "method_not_allowed"
    r = c.post("/api/v1/tenants", headers=w.node_auth(), json={"display_name": "x"})
    assert r.status_code == 422
    assert r.json() == {"error": "invalid_input", "detail": "name: Field required",
                        "field": "name"}
    r = c.post("/api/v1/tenants", headers=w.node_auth(), content=b"{not json",
               )
    assert r.status_code == 422 and r.json()["error"] == "invalid_input"
    r = c.post("/api/v1/tenants", headers=w.node_auth(), json={"name": "x", "extra": 1})
    assert r.status_code == 422 and r.json()["field"] == "extra"


def test_openapi_is_complete(w: World) -> None:
    doc = w.client.get("/openapi.json").json()
    paths = doc["paths"]
    expected = {
        "/healthz", "/metrics", "/api/v1/me", "/api/v1/tenants", "/api/v1/tenants/{tenant_id}",
        "/api/v1/assets", "/api/v1/assets/{asset_id}", "/api/v1/assets/{asset_id}/children",
        "/api/v1/devices", "/api/v1/devices/{device_id}", "/api/v1/devices/{device_id}/points",
        "/api/v1/points", "/api/v1/points/{series_id}", "/api/v1/telemetry/raw",
        "/api/v1/telemetry/buckets", "/api/v1/telemetry/last", "/api/v1/tokens",
        "/api/v1/tokens/{token_id}",
        # issue 12
        "/api/v1/alarms", "/api/v1/alarms/{alarm_id}", "/api/v1/alarms/performance",
        "/api/v1/rules", "/api/v1/rules/{rule_id}", "/api/v1/rules/validate",
        "/api/v1/notifications/targets", "/api/v1/kpi", "/api/v1/telemetry/rollups",
    }
    assert expected <= set(paths)
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"].lower() == "bearer"
    schemas = doc["components"]["schemas"]
    assert {"ErrorBody", "LastValues", "RawAnswer", "BucketAnswer", "AssetNodeOut",
            "TokenCreated"} <= set(schemas)
    for path, operations in paths.items():
        for method, op in operations.items():
            assert op.get("summary"), (method, path)
            assert "200" in op["responses"] or "201" in op["responses"] or \
                "204" in op["responses"], (method, path)
            if path.startswith("/api/v1"):
                assert op.get("security") == [{"bearer": []}], (method, path)
                for code in ("401", "403"):
                    ref = op["responses"][code]["content"]["application/json"]["schema"]
                    assert ref["$ref"].endswith("/ErrorBody"), (method, path, code)
            ok = op["responses"].get("200", {}).get("content", {}).get("application/json")
            if ok and path.startswith("/api/v1/telemetry"):
                assert ok["schema"]["$ref"].split("/")[-1] in {
                    "RawAnswer", "BucketAnswer", "LastValues", "RollupAnswer"}


def test_store_failures_and_bugs_answer_json(
    w: World, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    def unavailable(*args: object, **kwargs: object) -> None:
        raise StorageError("disk on fire")

    def bug(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(w.store, "query_range", unavailable)
    monkeypatch.setattr(w.store, "query_buckets", bug)
    client = TestClient(w.client.app, raise_server_exceptions=False)
    temp = w.acme.series["temperature"]
    r = client.get(f"/api/v1/telemetry/raw?series={temp}", headers=w.acme.auth("viewer"))
    assert r.status_code == 503
    assert r.json()["error"] == "storage_unavailable" and "fire" not in r.text
    r = client.get(f"/api/v1/telemetry/buckets?series={temp}", headers=w.acme.auth("viewer"))
    assert r.status_code == 500
    assert r.json() == {"error": "internal_error", "detail": "internal error", "field": None}
    assert any("a bug" in str(rec.exc_info) for rec in caplog.records)


def _prefixes(w: World) -> None:
    """acme registers under 88.100.5, globex under 88.200 (node-wide admin)."""
    for site, prefix in ((w.acme, "88.100.5"), (w.globex, "88.200")):
        done = w.client.put(f"/api/v1/tenants/{site.tenant_id}/identifier-prefixes",
                            json={"prefixes": [prefix]}, headers=w.node_auth())
        assert done.status_code == 200 and done.json() == {"prefixes": [prefix.upper()]}


def test_identifier_prefixes_of_tenants(w: World) -> None:
    """Found by review: one tenant could link another's identifier first, keeping it from
    the other and learning which record held it. Now a node-wide admin assigns prefixes."""
    c = w.client
    url = f"/api/v1/tenants/{w.acme.tenant_id}/identifier-prefixes"
    none = c.put(f"/api/v1/devices/{w.acme.device_id}/identifier",
                 json={"handle": "88.100.5/EQ-1"}, headers=w.acme.auth("operator"))
    assert none.status_code == 403 and "identifier prefix" in none.json()["detail"]
    assert c.put(url, json={"prefixes": ["88.100.5"]},
                 headers=w.acme.auth("admin")).status_code == 403  # not their own to grant
    _prefixes(w)
    assert c.get(url, headers=w.acme.auth("viewer")).json() == {"prefixes": ["88.100.5"]}
    assert c.get(url, headers=w.globex.auth("viewer")).status_code == 404
    taken = c.put(f"/api/v1/tenants/{w.globex.tenant_id}/identifier-prefixes",
                  json={"prefixes": ["88.100.5"]}, headers=w.node_auth())
    assert taken.status_code == 409  # a prefix belongs to one tenant
    bad = c.put(url, json={"prefixes": ["88/100"]}, headers=w.node_auth())
    assert bad.status_code == 422 and bad.json()["field"] == "prefixes.0"
    # globex cannot claim acme's identifier, for a device or a product of its own.
    claim = c.put(f"/api/v1/devices/{w.globex.device_id}/identifier",
                  json={"handle": "88.100.5/EQ-ACME-PRESS-1"}, headers=w.globex.auth("admin"))
    assert claim.status_code == 403
    product = c.post("/api/v1/products", json={"serial": "G-1", "model": "X"},
                     headers=w.globex.auth("operator")).json()
    claim = c.put(f"/api/v1/products/{product['id']}/identifier",
                  json={"handle": "88.100.5/PUMP-000001"}, headers=w.globex.auth("operator"))
    assert claim.status_code == 403
    own = c.put(f"/api/v1/products/{product['id']}/identifier",
                json={"handle": "88.200/G-1"}, headers=w.globex.auth("operator"))
    assert own.status_code == 200


def test_device_identifier_link(w: World) -> None:
    c = w.client
    _prefixes(w)
    url = f"/api/v1/devices/{w.acme.device_id}/identifier"
    handle = "88.100.5/EQ-ACME-PRESS-1"
    assert c.get(f"/api/v1/devices/{w.acme.device_id}",
                 headers=w.acme.auth("viewer")).json()["identifier"] is None
    assert c.put(url, json={"handle": handle}, headers=w.acme.auth("viewer")).status_code == 403
    made = c.put(url, json={"handle": handle}, headers=w.acme.auth("operator"))
    assert made.status_code == 200, made.text
    assert DeviceOut.model_validate(made.json()).identifier == handle
    assert c.get(f"/api/v1/devices/{w.acme.device_id}",
                 headers=w.acme.auth("viewer")).json()["identifier"] == handle
    assert w.registry.identifier_of(w.acme.device_id) == handle
    # One asset per identifier; another tenant's token sees no such device.
    taken = c.put(f"/api/v1/devices/{w.other_device_id}/identifier", json={"handle": handle},
                  headers=w.acme.auth("operator"))
    assert taken.status_code == 409
    hidden = c.put(url, json={"handle": "88.200/X"}, headers=w.globex.auth("admin"))
    assert hidden.status_code == 404
    bad = c.put(url, json={"handle": "no-slash"}, headers=w.acme.auth("operator"))
    assert bad.status_code in (400, 422) and bad.json()["field"] == "handle"
    # Replacing the link.
    again = c.put(url, json={"handle": "88.100.5/EQ-ACME-PRESS-1B"},
                  headers=w.acme.auth("operator"))
    assert again.json()["identifier"] == "88.100.5/EQ-ACME-PRESS-1B"


def test_products_and_their_identifiers(w: World) -> None:
    c = w.client
    _prefixes(w)
    body = {"serial": "SN-1", "model": "P-200", "line_id": w.acme.line_id,
            "batch": "88.100.5/BATCH-1"}
    assert c.post("/api/v1/products", json=body, headers=w.acme.auth("viewer")).status_code \
        == 403
    made = c.post("/api/v1/products", json=body, headers=w.acme.auth("operator"))
    assert made.status_code == 201, made.text
    product = made.json()
    assert product["tenant_id"] == w.acme.tenant_id and product["identifier"] is None
    again = c.post("/api/v1/products", json=body, headers=w.acme.auth("operator"))
    assert again.status_code == 409
    not_a_line = c.post("/api/v1/products", json={**body, "serial": "SN-2",
                                                  "line_id": w.acme.device_id},
                        headers=w.acme.auth("operator"))
    assert not_a_line.status_code == 404 and "line" in not_a_line.json()["detail"]
    url = f"/api/v1/products/{product['id']}"
    assert c.get(url, headers=w.globex.auth("admin")).status_code == 404
    linked = c.put(f"{url}/identifier", json={"handle": "88.100.5/PUMP-000001"},
                   headers=w.acme.auth("operator"))
    assert linked.status_code == 200 and linked.json()["identifier"] == "88.100.5/PUMP-000001"
    assert c.get(url, headers=w.acme.auth("viewer")).json()["identifier"] == \
        "88.100.5/PUMP-000001"
    listed = c.get("/api/v1/products", headers=w.acme.auth("viewer")).json()
    assert [p["serial"] for p in listed] == ["SN-1"]
    theirs = c.get("/api/v1/products", headers=w.globex.auth("viewer")).json()
    assert all(p["tenant_id"] == w.globex.tenant_id for p in theirs)
    second = c.post("/api/v1/products", json={**body, "serial": "SN-3"},
                    headers=w.acme.auth("operator")).json()
    clash = c.put(f"/api/v1/products/{second['id']}/identifier",
                  json={"handle": "88.100.5/PUMP-000001"}, headers=w.acme.auth("operator"))
    assert clash.status_code == 409
    page = c.get(f"/api/v1/products?after={product['id']}&limit=1",
                 headers=w.acme.auth("viewer")).json()
    assert [p["serial"] for p in page] == ["SN-3"]


@pytest.mark.parametrize("produced_at", [
    "0001-01-01T00:00:00+01:00",  # before datetime.min once in UTC: OverflowError, was 500
    "9999-12-31T23:59:59-01:00",  # after datetime.max once in UTC: OverflowError, was 500
    "2025-01-01T00:00:00",  # no offset: not RFC 3339, reached the UTC column (500)
    "2025-01-01",  # a date: not a date-time (was stored as naive midnight, 500)
    "1735689600",  # epoch seconds: pydantic's lax mode took them (201 for invalid input)
    "0999-06-01T00:00:00Z",  # before the document's years
])
def test_product_times_the_document_rules_out_are_refused(w: World, produced_at: str) -> None:
    """Found by the slow contract run: schemathesis' date-times range over every year with
    every offset, and a product produced at 0001-01-01T00:00:00+01:00 answered 500."""
    c = TestClient(w.client.app, raise_server_exceptions=False)
    r = c.post("/api/v1/products", json={"serial": f"T-{produced_at}", "model": "M",
                                         "produced_at": produced_at},
               headers=w.acme.auth("operator"))
    assert r.status_code == 422 and r.json()["field"] == "produced_at", r.text


@pytest.mark.parametrize(("produced_at", "stored"), [
    ("1000-01-01T00:00:00+23:59", "0999-12-31T00:01:00Z"),
    ("9998-12-31T23:59:59-23:59", "9999-01-01T23:58:59Z"),
    ("2025-01-01t08:00:00.5+08:00", "2025-01-01T00:00:00.500000Z"),
    ("2025-01-01T00:00:00z", "2025-01-01T00:00:00Z"),
])
def test_product_times_the_document_allows_are_stored(w: World, produced_at: str,
                                                      stored: str) -> None:
    r = w.client.post("/api/v1/products", json={"serial": f"T-{produced_at}", "model": "M",
                                                "produced_at": produced_at},
                      headers=w.acme.auth("operator"))
    assert r.status_code == 201, r.text
    assert r.json()["produced_at"] == stored
    prop = w.client.get("/openapi.json").json()["components"]["schemas"]["ProductIn"][
        "properties"]["produced_at"]["anyOf"][0]
    assert prop["format"] == "date-time" and re.match(prop["pattern"], produced_at)


# Error answers that are not an ErrorBody, each for a reason the document states.
NOT_ERROR_BODIES = {("/healthz", "get", "503")}  # the health report itself, naming what failed


def test_every_error_answer_is_an_error_body(w: World) -> None:
    paths = w.client.get("/openapi.json").json()["paths"]
    error_body = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
    for path, operations in paths.items():
        for method, op in operations.items():
            for code, response in op["responses"].items():
                if code[0] in "45" and (path, method, code) not in NOT_ERROR_BODIES:
                    assert response.get("content") == error_body, (method, path, code)
    health = paths["/healthz"]["get"]["responses"]["503"]["content"]["application/json"]
    assert health["schema"]["$ref"].endswith("/Health")


def test_links_lead_to_operations_and_their_parameters(w: World) -> None:
    """The document's links (what schemathesis' stateful phase follows) name operations that
    exist, with parameters they have, and the answers they follow hold those ids."""
    paths = w.client.get("/openapi.json").json()["paths"]
    followed: set[str] = set()
    for operations in paths.values():
        for op in operations.values():
            for response in op["responses"].values():
                for link in response.get("links", {}).values():
                    pointer = link["operationRef"].removeprefix("#/paths/")
                    target_path, method = pointer.rsplit("/", 1)
                    target = paths[target_path.replace("~1", "/").replace("~0", "~")][method]
                    names = {f"{p['in']}.{p['name']}" for p in target.get("parameters", [])}
                    assert set(link["parameters"]) <= names, link
                    followed.add(target["operationId"])
    assert {"get_asset_api_v1_assets__asset_id__get",
            "set_device_identifier_api_v1_devices__device_id__identifier_put",
            "raw_api_v1_telemetry_raw_get"} <= followed
    # Followed by hand: the created asset, and the first device of the list.
    made = w.client.post("/api/v1/assets", headers=w.acme.auth("admin"), json={
        "parent_id": w.acme.line_id, "kind": "device", "name": "linked-press"}).json()
    assert w.client.get(f"/api/v1/assets/{made['id']}",
                        headers=w.acme.auth("viewer")).status_code == 200
    first = w.client.get("/api/v1/devices", headers=w.acme.auth("viewer")).json()[0]["id"]
    assert w.client.get(f"/api/v1/devices/{first}",
                        headers=w.acme.auth("viewer")).status_code == 200
