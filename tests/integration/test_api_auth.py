"""Authentication and roles: who may call what, tokens created and revoked through the API."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.test_api_world import World, world


@pytest.fixture(scope="module")
def w(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with world(tmp_path_factory.mktemp("api-auth")) as built:
        yield built


def _api_routes(w: World) -> list[tuple[str, str]]:
    """Every (method, path) of the API under /api/v1, path parameters filled with real ids."""
    ids = {"tenant_id": w.acme.tenant_id, "asset_id": w.acme.line_id,
           "device_id": w.acme.device_id, "series_id": w.acme.series["temperature"],
           "token_id": 1, "product_id": 1, "command_id": 1, "name": "plant", "alarm_id": 1,
           "rule_id": 1}
    paths = w.client.get("/openapi.json").json()["paths"]
    found: list[tuple[str, str]] = []
    for template, operations in paths.items():
        if template.startswith("/api/v1"):
            path = re.sub(r"\{(\w+)\}", lambda m: str(ids[m.group(1)]), template)
            found.extend((method.upper(), path) for method in operations)
    return found


def test_every_api_route_requires_a_token(w: World) -> None:
    routes = _api_routes(w)
    assert len(routes) >= 18
    paths = {path for _, path in routes}
    for area in ("alarms", "rules", "notifications/targets", "kpi", "telemetry/rollups"):
        assert f"/api/v1/{area}" in paths, f"the world has no {area} routes"
    for method, path in routes:
        r = w.client.request(method, path, json={})
        assert r.status_code == 401, (method, path, r.text)
        assert r.headers["WWW-Authenticate"].startswith("Bearer")
        assert r.json()["error"] == "unauthenticated"


@pytest.mark.parametrize("header", [
    "Bearer mn_00000000_not-a-real-token",
    "Bearer ",
    "Basic dXNlcjpwYXNz",
    "mn_00000000_no-scheme",
    "Bearer two words",
    "Bearer " + "x" * 5000,
])
def test_bad_credentials_answer_401(w: World, header: str) -> None:
    for path in ("/api/v1/me", f"/api/v1/telemetry/last?series={w.acme.series['pressure']}"):
        r = w.client.get(path, headers={"Authorization": header})
        assert r.status_code == 401, (path, header)
        assert r.headers["WWW-Authenticate"].startswith("Bearer")
        assert set(r.json()) == {"error", "detail", "field"}


def test_me_reports_tenant_and_role(w: World) -> None:
    me = w.client.get("/api/v1/me", headers=w.acme.auth("operator")).json()
    assert me["tenant_id"] == w.acme.tenant_id and me["role"] == "operator"
    assert me["node"] == "test-node" and me["node_role"] == "enterprise"
    node = w.client.get("/api/v1/me", headers=w.node_auth()).json()
    assert node["tenant_id"] is None and node["role"] == "admin"


@pytest.mark.parametrize("role", ["viewer", "operator"])
def test_non_admins_cannot_manage_tokens_or_settings(w: World, role: str) -> None:
    h = w.acme.auth(role)
    c = w.client
    assert c.post("/api/v1/tokens", headers=h, json={"name": "x", "role": "viewer"}
                  ).status_code == 403
    assert c.get("/api/v1/tokens", headers=h).status_code == 403
    assert c.delete("/api/v1/tokens/1", headers=h).status_code == 403
    assert c.patch(f"/api/v1/tenants/{w.acme.tenant_id}", headers=h,
                   json={"retention_days": 3}).status_code == 403
    r = c.post("/api/v1/assets", headers=h,
               json={"parent_id": w.acme.line_id, "kind": "device", "name": "nope"})
    assert r.status_code == 403
    assert r.json() == {"error": "permission_denied", "detail": "requires the admin role",
                        "field": None}


def test_admin_creates_a_token_that_works_then_revokes_it(w: World) -> None:
    c, h = w.client, w.acme.auth("admin")
    r = c.post("/api/v1/tokens", headers=h, json={"name": "grafana", "role": "viewer"})
    assert r.status_code == 201
    created = r.json()
    token, info = created["token"], created["info"]
    assert info["tenant_id"] == w.acme.tenant_id and info["role"] == "viewer"
    assert token.startswith(info["prefix"]) and info["revoked_at"] is None
    fresh = {"Authorization": f"Bearer {token}"}
    assert c.get("/api/v1/me", headers=fresh).json()["role"] == "viewer"
    listed = c.get("/api/v1/tokens", headers=h).json()
    assert info["id"] in [t["id"] for t in listed]
    assert all("token" not in t and "hash" not in str(t) for t in listed)

    assert c.delete(f"/api/v1/tokens/{info['id']}", headers=h).status_code == 204
    # Revocation through the API takes effect at once despite the verification cache.
    assert c.get("/api/v1/me", headers=fresh).status_code == 401
    assert c.get(f"/api/v1/telemetry/last?series={w.acme.series['pressure']}",
                 headers=fresh).status_code == 401
    revoked = {t["id"]: t for t in c.get("/api/v1/tokens", headers=h).json()}[info["id"]]
    assert revoked["revoked_at"] is not None


def test_tenant_admin_cannot_create_node_wide_tokens_or_tenants(w: World) -> None:
    c, h = w.client, w.acme.auth("admin")
    r = c.post("/api/v1/tokens", headers=h,
               json={"name": "root", "role": "admin", "node_wide": True})
    assert r.status_code == 403
    assert c.get("/api/v1/tokens?node_wide=true", headers=h).status_code == 403
    assert c.post("/api/v1/tenants", headers=h, json={"name": "mine"}).status_code == 403


def test_node_admin_manages_tenants_and_their_tokens(w: World) -> None:
    c, h = w.client, w.node_auth()
    r = c.post("/api/v1/tenants", headers=h, json={"name": "initech", "display_name": "Initech"})
    assert r.status_code == 201
    tenant = r.json()
    assert tenant["name"] == "initech" and tenant["display_name"] == "Initech"
    assert c.post("/api/v1/tenants", headers=h, json={"name": "initech"}).status_code == 409
    bad = c.post("/api/v1/tenants", headers=h, json={"name": "Not A Slug"})
    assert bad.status_code == 422 and bad.json()["field"] == "name"  # the document's pattern

    # A node-wide admin must say which tenant a token is for.
    r = c.post("/api/v1/tokens", headers=h, json={"name": "t", "role": "viewer"})
    assert r.status_code == 403 and "tenant_id" in r.json()["detail"]
    r = c.post("/api/v1/tokens", headers=h,
               json={"name": "ops", "role": "operator", "tenant_id": tenant["id"]})
    assert r.status_code == 201
    token = r.json()["token"]
    me = c.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).json()
    assert me["tenant_id"] == tenant["id"] and me["role"] == "operator"
    r = c.post("/api/v1/tokens", headers=h, json={"name": "n", "role": "viewer",
                                                   "node_wide": True})
    assert r.status_code == 201 and r.json()["info"]["tenant_id"] is None
    node_tokens = c.get("/api/v1/tokens?node_wide=true", headers=h).json()
    assert {"node-admin", "n"} <= {t["name"] for t in node_tokens}
    # ... and may revoke any tenant's token.
    victim = w.registry.create_token(w.globex.tenant_id, "viewer", "victim")
    assert c.delete(f"/api/v1/tokens/{victim[1].id}", headers=h).status_code == 204
    assert c.get("/api/v1/me", headers={"Authorization": f"Bearer {victim[0]}"}
                 ).status_code == 401


def test_node_wide_viewer_reads_any_tenant_but_cannot_write(w: World) -> None:
    token = w.registry.create_token(None, "viewer", "auditor")[0]
    h = {"Authorization": f"Bearer {token}"}
    c = w.client
    for site in (w.acme, w.globex):
        r = c.get(f"/api/v1/devices/{site.device_id}", headers=h)
        assert r.status_code == 200
    assert c.post("/api/v1/tenants", headers=h, json={"name": "zzz"}).status_code == 403


def test_unknown_role_in_body_is_rejected(w: World) -> None:
    r = w.client.post("/api/v1/tokens", headers=w.acme.auth("admin"),
                      json={"name": "x", "role": "superuser"})
    assert r.status_code == 422
    assert r.json()["error"] == "invalid_input" and r.json()["field"] == "role"


def test_tokens_never_reach_the_logs(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with world(tmp_path) as w:
        secrets = [w.node_admin, *w.acme.tokens.values(), *w.globex.tokens.values()]
        c = w.client
        for site in (w.acme, w.globex):
            for role in ("admin", "operator", "viewer"):
                c.get("/api/v1/me", headers=site.auth(role))
                c.get(f"/api/v1/telemetry/last?series={w.acme.series['pressure']}",
                      headers=site.auth(role))
        created = c.post("/api/v1/tokens", headers=w.acme.auth("admin"),
                         json={"name": "logged?", "role": "viewer"}).json()["token"]
        c.get("/api/v1/me", headers={"Authorization": f"Bearer {created}x"})
        secrets.append(created)
    text = "\n".join(r.getMessage() + repr(r.args) for r in caplog.records)
    for secret in secrets:
        assert secret not in text
