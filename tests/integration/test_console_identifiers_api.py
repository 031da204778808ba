"""``GET /api/v1/identifiers/{handle}`` (the console resolves through the platform's API): public
values of a handle the node holds, 404 for one it does not, 400 for a malformed one, 401 without
a token; the route and the ``identifiers`` area only where the identifier service runs. ``/me``
lists ``situation`` on secondary and national nodes only."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from millnet.api import create_app
from millnet.identifiers.core.service import IdentifierService
from millnet.identifiers.core.store import IdentifierStore
from millnet.ingest.metrics import IngestMetrics
from millnet.protocols.handle import HandleValue, Permission
from millnet.registry import Registry
from millnet.telemetry.duckdb_store import DuckDBTelemetryStore


@pytest.fixture
def parts(tmp_path: Path) -> Iterator[tuple[Registry, DuckDBTelemetryStore, IdentifierService]]:
    registry = Registry.open(f"sqlite:///{tmp_path / 'registry.sqlite'}")
    store = DuckDBTelemetryStore(tmp_path / "t.duckdb", tmp_path / "archive")
    with IdentifierStore.open(f"sqlite:///{tmp_path / 'ids.sqlite'}") as ids:
        ids.create_handle("88.100.5/PUMP-1", [
            HandleValue(1, "URL", b"https://example.com/<b>pump</b>"),
            HandleValue(2, "SECRET", b"hidden", permissions=Permission.ADMIN_READ)])
        try:
            yield registry, store, IdentifierService(ids, ["88.100.5"])
        finally:
            store.close()
            registry.close()


def test_resolve_through_the_platform_api(
        parts: tuple[Registry, DuckDBTelemetryStore, IdentifierService]) -> None:
    registry, store, service = parts
    tenant = registry.create_tenant("acme").id
    viewer = {"Authorization": "Bearer " + registry.create_token(tenant, "viewer", "v")[0]}
    app = create_app(registry, store, IngestMetrics(), node_name="n", role="enterprise",
                     identifiers=service)
    with TestClient(app) as client:
        found = client.get("/api/v1/identifiers/88.100.5/PUMP-1", headers=viewer)
        assert found.status_code == 200, found.text
        body = found.json()
        assert body["handle"] == "88.100.5/PUMP-1"
        assert [(v["index"], v["type"], v["data"]) for v in body["values"]] == [
            (1, "URL", {"format": "string", "value": "https://example.com/<b>pump</b>"})]
        missing = client.get("/api/v1/identifiers/88.100.5/NOPE", headers=viewer)
        assert missing.status_code == 404 and missing.json()["error"] == "not_found"
        malformed = client.get("/api/v1/identifiers/no-slash", headers=viewer)
        assert malformed.status_code == 400 and malformed.json()["field"] == "handle"
        assert client.get("/api/v1/identifiers/88.100.5/PUMP-1").status_code == 401
        me = client.get("/api/v1/me", headers=viewer).json()
        assert "identifiers" in me["areas"] and "situation" not in me["areas"]


def test_without_the_identifier_service_there_is_no_route(
        parts: tuple[Registry, DuckDBTelemetryStore, IdentifierService]) -> None:
    registry, store, _ = parts
    admin = {"Authorization": "Bearer " + registry.create_token(None, "admin", "a")[0]}
    app = create_app(registry, store, IngestMetrics(), node_name="n", role="enterprise")
    with TestClient(app) as client:
        assert client.get("/api/v1/identifiers/88.100.5/PUMP-1",
                          headers=admin).status_code == 404
        assert "identifiers" not in client.get("/api/v1/me", headers=admin).json()["areas"]
