"""The federation views' API over real SQLite databases and a real app: a national node issues
an advisory and an order (sent down), reads the situation its children reported; an enterprise
node acknowledges the order (sent up), refused transitions answer 409 naming the allowed ones;
tenant tokens get 403 on every view."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Connection
from typer.testing import CliRunner, Result

from millnet.api import create_app
from millnet.api.routes.federation_views import router
from millnet.cli_situation import app as situation_cli
from millnet.federation import reports
from millnet.federation.advisories import Child
from millnet.federation.downward import apply_order
from millnet.federation.views import FederationViews
from millnet.ingest.metrics import IngestMetrics
from millnet.registry import Registry
from millnet.serving import embedded_server, listening_socket
from millnet.telemetry.duckdb_store import DuckDBTelemetryStore

NOW = datetime.now(UTC).replace(microsecond=0)


@dataclass
class Node:
    client: TestClient
    views: FederationViews
    tokens: dict[str, dict[str, str]]
    app: FastAPI
    sent: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)

    def get(self, path: str, who: str, **params: Any) -> Any:
        return self.client.get(f"/api/v1{path}", headers=self.tokens[who], params=params)

    def post(self, path: str, who: str, body: dict[str, Any]) -> Any:
        return self.client.post(f"/api/v1{path}", headers=self.tokens[who], json=body)


@contextmanager
def node(tmp: Path, node_id: str, role: str) -> Iterator[Node]:
    registry = Registry.open(f"sqlite:///{tmp / f'{node_id}.sqlite'}")
    store = DuckDBTelemetryStore(tmp / f"{node_id}.duckdb", tmp / f"{node_id}-archive")
    sent: list[tuple[str, str, dict[str, Any]]] = []

    def send(conn: Connection, peer: str, kind: str, body: dict[str, Any],
             origin: str | None) -> None:
        sent.append((peer, kind, body))

    views = FederationViews(
        registry.engine, node_id=node_id, role=role, send=send,
        children=lambda conn: [Child("sec-js", "secondary", "32"),
                               Child("ent-gz", "enterprise", "440100")],
        routes=lambda conn: {"ent-sz": "sec-js", "ent-nj": "sec-js", "ent-gz": "ent-gz"})
    try:
        tenant = registry.create_tenant("acme").id
        tokens = {name: {"Authorization": "Bearer " + registry.create_token(t, r, name)[0]}
                  for name, t, r in [("admin", None, "admin"), ("viewer", None, "viewer"),
                                     ("operator", None, "operator"),
                                     ("tenant-admin", tenant, "admin")]}
        app = create_app(registry, store, IngestMetrics(), node_name=node_id, role=role)
        app.include_router(router, prefix="/api/v1")
        app.state.federation_views = views
        with TestClient(app) as client:
            yield Node(client, views, tokens, app, sent)
    finally:
        store.close()
        registry.close()


ADVISORY = {"id": "CNVD-2026-1", "title": "S7 stop", "severity": "critical",
            "published": "2026-11-01T00:00:00Z", "regions": ["32"],
            "affected": [{"cpe": "cpe:2.3:h:siemens:s7-1200:*:*:*:*:*:*:*:*",
                          "versionEndExcluding": "4.5"}]}
ORDER = {"id": "RO-1", "targets": ["ent-sz", "ent-gz"], "title": "Patch S7",
         "action": "Update to V4.5", "deadline": (NOW + timedelta(days=7)).isoformat(),
         "advisory_id": "CNVD-2026-1"}


def test_national_issues_and_reads_the_situation(tmp_path: Path) -> None:
    with node(tmp_path, "national", "national") as n:
        for path in ("/federation/situation", "/federation/advisories", "/federation/orders"):
            refused = n.get(path, "tenant-admin")
            assert refused.status_code == 403, path
            assert refused.json()["error"] == "permission_denied"
        assert n.post("/federation/advisories", "viewer", ADVISORY).status_code == 403
        made = n.post("/federation/advisories", "admin", ADVISORY)
        assert made.status_code == 201, made.text
        assert [(peer, kind) for peer, kind, _ in n.sent] == [("sec-js", "advisory")]
        assert n.sent[0][2]["issuer"] == "national"
        assert n.post("/federation/advisories", "admin", ADVISORY).status_code == 409
        bad = n.post("/federation/advisories", "admin", {**ADVISORY, "id": "X-2",
                                                           "severity": "dire"})
        assert bad.status_code == 400 and bad.json()["field"] == "severity"
        assert [a["id"] for a in n.get("/federation/advisories", "viewer").json()] == [
            "CNVD-2026-1"]

        stranger = n.post("/federation/orders", "admin", {**ORDER, "targets": ["ent-x"]})
        assert stranger.status_code == 400 and stranger.json()["field"] == "targets"
        order = n.post("/federation/orders", "admin", ORDER)
        assert order.status_code == 201, order.text
        assert sorted(peer for peer, kind, _ in n.sent if kind == "order") == ["ent-gz", "sec-js"]

        with n.views.engine.begin() as conn:
            reports.apply_summary(conn, "sec-js", "ent-sz", {
                "bucket_start": (NOW - timedelta(hours=2)).isoformat(), "bucket_seconds": 3600,
                "region": "320500", "sector": "C", "assets": 9,
                "counts": [{"kind": "network.scan", "severity": "high", "count": 4}]}, NOW)
            reports.apply_incident(conn, "ent-gz", "ent-gz", {
                "id": "i1", "severity": "critical", "status": "open", "title": "PLC stop",
                "opened_at": (NOW - timedelta(hours=1)).isoformat()}, NOW)
            reports.apply_order_status(conn, "ent-gz", "ent-gz", {
                "order_id": "RO-1", "state": "acknowledged", "actor": "wang",
                "at": NOW.isoformat()}, NOW)
        view = n.get("/federation/situation", "viewer", bucket="1h")
        assert view.status_code == 200, view.text
        body = view.json()
        assert body["totals"]["events"] == 4 and body["totals"]["incidents"] == 1
        assert body["totals"]["assets"] == 9
        assert [p["code"] for p in body["by_province"]] == ["32", "??"]
        assert body["pending_orders"] == [
            {"order_id": "RO-1", "target": "ent-sz", "state": "issued", "overdue": False}]
        jiangsu = n.get("/federation/situation", "viewer", region="32").json()
        assert jiangsu["totals"]["incidents"] == 0
        bad_bucket = n.get("/federation/situation", "viewer", bucket="soon")
        assert bad_bucket.status_code == 400 and bad_bucket.json()["field"] == "bucket"
        detail = n.get("/federation/orders/RO-1", "viewer").json()
        assert {s["target"]: s["state"] for s in detail["status"]} == {
            "ent-gz": "acknowledged", "ent-sz": "issued"}
        assert detail["audit"][-1]["actor"] == "ent-gz:wang"
        # the issuer's targets report their progress; the issuer never sets it itself
        assert n.post("/federation/orders/RO-1/status", "operator",
                      {"state": "done"}).status_code == 403


def test_enterprise_reports_its_progress_on_an_order(tmp_path: Path) -> None:
    with node(tmp_path, "ent-sz", "enterprise") as e:
        with e.views.engine.begin() as conn:
            apply_order(conn, "sec-js", "national", {**ORDER, "issuer": "national"}, NOW,
                        self_node_id="ent-sz")
        assert e.post("/federation/orders", "admin", {**ORDER, "id": "RO-9"}).status_code == 403
        assert e.post("/federation/orders/RO-1/status", "tenant-admin",
                      {"state": "acknowledged"}).status_code == 403
        skipped = e.post("/federation/orders/RO-1/status", "operator", {"state": "done"})
        assert skipped.status_code == 409
        assert "allowed: acknowledged" in skipped.json()["detail"]
        acked = e.post("/federation/orders/RO-1/status", "operator",
                       {"state": "acknowledged", "comment": "patch window Friday"})
        assert acked.status_code == 200, acked.text
        assert acked.json()["status"] == [
            {"target": "ent-sz", "state": "acknowledged", "overdue": False,
             "updated_at": acked.json()["status"][0]["updated_at"]}]
        [(peer, kind, body)] = e.sent
        assert (peer, kind, body["state"], body["actor"]) == ("parent", "order.status",
                                                              "acknowledged", "operator")
        missing = e.post("/federation/orders/RO-404/status", "operator", {"state": "done"})
        assert missing.status_code == 404


def test_the_cli_reads_and_acts_through_the_api(tmp_path: Path) -> None:
    with node(tmp_path, "national", "national") as n:
        asyncio.run(_cli(n, tmp_path))


async def _cli(n: Node, tmp: Path) -> None:
    sock = listening_socket("127.0.0.1", 0)
    server = embedded_server(n.app)
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    runner = CliRunner()

    def run(who: str, *args: str) -> Result:
        token = n.tokens[who]["Authorization"].removeprefix("Bearer ")
        return runner.invoke(situation_cli, [*args, "--url", url, "--token", token])

    try:
        advisory, order = tmp / "advisory.json", tmp / "order.json"
        advisory.write_text(json.dumps(ADVISORY))
        order.write_text(json.dumps(ORDER))
        refused = await asyncio.to_thread(run, "tenant-admin", "show")
        assert refused.exit_code == 2 and "refused (403)" in refused.output
        issued = await asyncio.to_thread(run, "admin", "advise", str(advisory))
        assert issued.exit_code == 0 and "CNVD-2026-1 issued" in issued.output, issued.output
        listed = await asyncio.to_thread(run, "viewer", "advisories")
        assert "CNVD-2026-1" in listed.output and "critical" in listed.output
        made = await asyncio.to_thread(run, "admin", "issue-order", str(order), "--json")
        assert json.loads(made.output)["id"] == "RO-1", made.output
        shown = await asyncio.to_thread(run, "viewer", "show", "--bucket", "6h")
        assert shown.exit_code == 0, shown.output
        assert "RO-1  ent-gz" in shown.output and "orders not acknowledged" in shown.output
        trail = await asyncio.to_thread(run, "viewer", "order", "RO-1")
        assert "-> issued" in trail.output and "national" in trail.output
        wrong_node = await asyncio.to_thread(run, "operator", "status", "RO-1", "done")
        assert wrong_node.exit_code == 2 and "refused (403)" in wrong_node.output
    finally:
        server.should_exit = True
        await serving
