"""Tenant isolation: a token of one tenant never reads (or touches) another tenant's data.

Every kind of endpoint is called by acme's tokens (admin, the strongest) with globex's ids. The
answer must be 404, worded like the answer for an id that does not exist, and must carry none of
globex's data.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from tests.integration.test_api_world import T0_MS, World, world

MISSING = 999_999


@pytest.fixture(scope="module")
def w(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with world(tmp_path_factory.mktemp("api-tenancy")) as built:
        yield built


def _foreign_reads(w: World) -> list[str]:
    b = w.globex
    temp, state = b.series["temperature"], b.series["state"]
    window = f"start={T0_MS}&end={T0_MS + 3_600_000}"
    return [
        f"/api/v1/tenants/{b.tenant_id}",
        f"/api/v1/assets?tenant_id={b.tenant_id}",
        f"/api/v1/assets/{b.enterprise_id}",
        f"/api/v1/assets/{b.line_id}",
        f"/api/v1/assets/{b.line_id}/children",
        f"/api/v1/devices?tenant_id={b.tenant_id}",
        f"/api/v1/devices/{b.device_id}",
        f"/api/v1/devices/{b.device_id}/points",
        f"/api/v1/points?tenant_id={b.tenant_id}",
        f"/api/v1/points/{temp}",
        f"/api/v1/telemetry/raw?series={temp}&{window}",
        f"/api/v1/telemetry/raw?series={state}&{window}",
        f"/api/v1/telemetry/buckets?series={temp}&{window}&width=1m",
        f"/api/v1/telemetry/last?series={temp}",
        f"/api/v1/telemetry/last?series={state}",
        f"/api/v1/tokens?tenant_id={b.tenant_id}",
    ]


def _leaks(w: World, text: str) -> list[str]:
    """Globex names or values that appear in an answer. Values are matched as whole numbers:
    "5.0" inside a timestamp such as "06:11:05.0008Z" is no leak (it failed a run once)."""
    names = ["globex", "Globex", "works", "paint", "line9", "robot-7"]
    values = [r"50\.0", r"51\.0", r"5\.0"]
    return [m for m in names if m in text] + [
        v for v in values if re.search(rf"(?<![\d:.]){v}(?!\d)", text)]


@pytest.mark.parametrize("role", ["admin", "operator", "viewer"])
def test_foreign_ids_answer_404_without_data(w: World, role: str) -> None:
    for path in _foreign_reads(w):
        r = w.client.get(path, headers=w.acme.auth(role))
        # Only admins may list tokens at all: the role check comes first.
        expected = 403 if "/tokens" in path and role != "admin" else 404
        assert r.status_code == expected, (path, r.status_code, r.text)
        assert not _leaks(w, r.text), (path, r.text)


def test_foreign_and_missing_ids_answer_alike(w: World) -> None:
    """Same status and same wording (but for the number): existence does not leak."""
    b, h = w.globex, w.acme.auth("viewer")
    pairs = [
        ("/api/v1/tenants/{}", b.tenant_id),
        ("/api/v1/assets/{}", b.line_id),
        ("/api/v1/assets/{}/children", b.line_id),
        ("/api/v1/devices/{}", b.device_id),
        ("/api/v1/devices/{}/points", b.device_id),
        ("/api/v1/points/{}", b.series["temperature"]),
        ("/api/v1/telemetry/last?series={}", b.series["temperature"]),
        ("/api/v1/telemetry/raw?series={}", b.series["temperature"]),
        ("/api/v1/telemetry/buckets?series={}", b.series["temperature"]),
        ("/api/v1/assets?tenant_id={}", b.tenant_id),
    ]
    for template, foreign in pairs:
        a = w.client.get(template.format(foreign), headers=h)
        m = w.client.get(template.format(MISSING), headers=h)
        assert a.status_code == m.status_code == 404, template
        assert re.sub(r"\d+", "N", a.json()["detail"]) == re.sub(
            r"\d+", "N", m.json()["detail"]), template


def test_mixing_own_and_foreign_series_reveals_nothing(w: World) -> None:
    own, foreign = w.acme.series["temperature"], w.globex.series["temperature"]
    window = f"start={T0_MS}&end={T0_MS + 3_600_000}"
    for path in (f"/api/v1/telemetry/raw?series={own},{foreign}&{window}",
                 f"/api/v1/telemetry/buckets?series={own}&series={foreign}&{window}",
                 f"/api/v1/telemetry/last?series={own},{foreign}"):
        r = w.client.get(path, headers=w.acme.auth("viewer"))
        assert r.status_code == 404, path
        assert r.json()["detail"] == f"series {foreign} not found"
        assert "values" not in r.json() and "series" not in r.json()


def test_own_collections_never_include_the_other_tenant(w: World) -> None:
    h, c = w.acme.auth("viewer"), w.client
    own = w.acme.tenant_id
    for path in ("/api/v1/tenants", "/api/v1/assets", "/api/v1/devices", "/api/v1/points",
                 f"/api/v1/assets/{w.acme.line_id}/children"):
        r = c.get(path, headers=h)
        assert r.status_code == 200, path
        assert not _leaks(w, r.text), (path, r.text)
    assert [t["id"] for t in c.get("/api/v1/tenants", headers=h).json()] == [own]
    tokens = c.get("/api/v1/tokens", headers=w.acme.auth("admin")).json()
    assert tokens and {t["tenant_id"] for t in tokens} == {own}
    points = c.get("/api/v1/points", headers=h).json()
    assert {p["tenant_id"] for p in points} == {own}


def test_foreign_writes_answer_404_and_change_nothing(w: World) -> None:
    c, h, b = w.client, w.acme.auth("admin"), w.globex
    r = c.patch(f"/api/v1/tenants/{b.tenant_id}", headers=h, json={"retention_days": 1})
    assert r.status_code == 404
    assert w.registry.get_tenant(b.tenant_id).retention_days is None

    r = c.post("/api/v1/assets", headers=h,
               json={"parent_id": b.line_id, "kind": "device", "name": "implant"})
    assert r.status_code == 404
    r = c.post("/api/v1/assets", headers=h,
               json={"parent_id": None, "kind": "enterprise", "name": "x",
                     "tenant_id": b.tenant_id})
    assert r.status_code == 404
    assert "implant" not in str(w.registry.asset_tree(b.tenant_id))

    r = c.post("/api/v1/tokens", headers=h,
               json={"name": "spy", "role": "viewer", "tenant_id": b.tenant_id})
    assert r.status_code == 404
    assert "spy" not in [t.name for t in w.registry.list_tokens(b.tenant_id)]

    victim = w.registry.create_token(b.tenant_id, "viewer", "victim")
    r = c.delete(f"/api/v1/tokens/{victim[1].id}", headers=h)
    assert r.status_code == 404
    assert c.get("/api/v1/me", headers={"Authorization": f"Bearer {victim[0]}"}
                 ).status_code == 200


def test_each_tenant_reads_its_own_data(w: World) -> None:
    for site, first in ((w.acme, 20.0), (w.globex, 50.0)):
        temp = site.series["temperature"]
        r = w.client.get(f"/api/v1/telemetry/raw?series={temp}&start={T0_MS}&end={T0_MS + 1}",
                         headers=site.auth("viewer"))
        assert r.status_code == 200
        assert r.json()["series"][0]["value"] == [first]


def test_node_admin_must_name_a_tenant_for_collections(w: World) -> None:
    h = w.node_auth()
    for path in ("/api/v1/assets", "/api/v1/devices", "/api/v1/points", "/api/v1/tokens"):
        r = w.client.get(path, headers=h)
        assert r.status_code == 403, path  # the token, not the request's form
        assert "tenant_id" in r.json()["detail"]
        r = w.client.get(f"{path}?tenant_id={w.globex.tenant_id}", headers=h)
        assert r.status_code == 200, path
        r = w.client.get(f"{path}?tenant_id={MISSING}", headers=h)
        assert r.status_code == 404, path
