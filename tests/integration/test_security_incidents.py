"""Incidents, sensors' reports and configuration changes through a real enterprise API (the
node's composition: build_monitoring on the registry's database, served by uvicorn): every
incident change lands in the upward outbox in its own transaction, in order, and the parent's
handler accepts each; tenants see and change only their own."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from millnet.api import create_app
from millnet.cli import app as cli
from millnet.config import load_settings
from millnet.errors import StorageError
from millnet.federation import reports
from millnet.federation.report_schema import fed_incidents
from millnet.ingest.metrics import IngestMetrics
from millnet.model.security import EventKind, SecurityEvent, Severity
from millnet.monitoring import Monitoring, build_monitoring
from millnet.protocols.federation import decode_body
from millnet.registry import Registry
from millnet.security import EventQuery, SecurityMonitor
from millnet.security.incidents import IncidentStore
from millnet.security.records import Fold
from millnet.telemetry.duckdb_store import DuckDBTelemetryStore
from tests.support.webserver import ThreadedServer


@dataclass
class Node:
    url: str
    registry: Registry
    monitoring: Monitoring
    monitor: SecurityMonitor
    tokens: dict[str, str]
    acme: int
    globex: int

    def call(self, method: str, path: str, who: str, body: Any = None,
             **params: Any) -> httpx.Response:
        return httpx.request(method, f"{self.url}/api/v1{path}", json=body, params=params,
                             headers={"Authorization": f"Bearer {self.tokens[who]}"},
                             timeout=10)

    def event(self, tenant: int | None, target: str) -> int:
        """A stored event of ``tenant`` (through the real store, as the writer stores)."""
        fold = Fold.of(SecurityEvent(EventKind.DEVICE_UNKNOWN, Severity.MEDIUM,
                                     f"{target} seen first", target=target), tenant, 1)
        (stored,) = self.monitor.store.record([fold], timedelta(seconds=300))
        return stored.id

    def upward(self, kind: str) -> list[dict[str, Any]]:
        up = self.monitoring.links.outbox_up
        assert up is not None
        return [decode_body(p.body) for p in up.pending(1000, 10 << 20) if p.kind == kind]

    def written(self) -> None:
        """What the monitor holds, written now (the writer task's round)."""
        asyncio.run(self.monitor.flush())


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    tmp = tmp_path_factory.mktemp("incidents")
    settings = load_settings(None, environ={}, overrides={
        "node": {"data_dir": str(tmp), "name": "ent-1"}, "security": {"flush_s": 0}})
    registry = Registry.open(settings.registry_url)
    store = DuckDBTelemetryStore(tmp / "telemetry.duckdb", tmp / "archive")
    monitoring = build_monitoring(settings, registry.engine)
    assert monitoring is not None and monitoring.security is not None
    try:
        acme, globex = registry.create_tenant("acme").id, registry.create_tenant("globex").id
        app = create_app(registry, store, IngestMetrics(), node_name="ent-1", role="enterprise",
                         security=monitoring.security, monitoring=monitoring)
        tokens = {"admin": registry.create_token(None, "admin", "root")[0],
                  "olga": registry.create_token(acme, "operator", "olga")[0],
                  "vera": registry.create_token(acme, "viewer", "vera")[0],
                  "ada": registry.create_token(acme, "admin", "ada")[0],
                  "gus": registry.create_token(globex, "viewer", "gus")[0]}
        with ThreadedServer(app) as server:
            yield Node(server.url, registry, monitoring, monitoring.security, tokens, acme,
                       globex)
    finally:
        store.close()
        registry.close()


def test_an_incident_moves_on_audited_and_each_change_goes_upward(
    node: Node, tmp_path: Path,
) -> None:
    seen = node.event(node.acme, "acme/p1/plc9")
    r = node.call("POST", "/security/incidents", "olga", {
        "title": "Unknown PLC on line 1", "severity": "high", "event_ids": [seen, seen],
        "comment": "found at the morning check"})
    assert r.status_code == 201, r.text
    incident = r.json()
    assert (incident["status"], incident["tenant_id"], incident["event_ids"]) == (
        "open", node.acme, [seen])
    path = f"/security/incidents/{incident['id']}"
    for status in ("investigating", "contained", "resolved", "closed"):
        r = node.call("POST", f"{path}/status", "olga", {"status": status})
        assert r.status_code == 200, r.text
    refused = node.call("POST", f"{path}/status", "olga", {"status": "investigating"})
    assert refused.status_code == 409 and "closed is final" in refused.text
    shown = node.call("GET", path, "vera").json()
    assert [(a["from_status"], a["to_status"], a["actor"]) for a in shown["audit"]] == [
        (None, "open", "olga"), ("open", "investigating", "olga"),
        ("investigating", "contained", "olga"), ("contained", "resolved", "olga"),
        ("resolved", "closed", "olga")]
    assert shown["audit"][0]["comment"] == "found at the morning check"
    assert shown["closed_at"] is not None
    # Upward: one message per change, in order, which the parent's handler takes.
    sent = [b for b in node.upward("incident") if b["id"] == f"in-{incident['id']}"]
    assert [b["status"] for b in sent] == ["open", "investigating", "contained", "resolved",
                                           "closed"]
    assert "description" not in sent[0] and "closed_at" in sent[-1]
    parent = Registry.open(f"sqlite:///{tmp_path / 'parent.sqlite'}")
    try:
        with parent.engine.begin() as conn:
            for body in sent:
                reports.apply_incident(conn, "ent-1", "ent-1", body, datetime.now(UTC))
            row = conn.execute(select(fed_incidents)).one()
        assert (row.status, row.severity, row.title) == ("closed", 3, "Unknown PLC on line 1")
    finally:
        parent.close()


def test_a_move_the_table_does_not_allow_is_refused_naming_the_allowed_ones(node: Node) -> None:
    r = node.call("POST", "/security/incidents", "admin", {"title": "Scan", "severity": "low"})
    assert r.status_code == 201 and r.json()["tenant_id"] is None
    path = f"/security/incidents/{r.json()['id']}"
    assert node.call("POST", f"{path}/status", "admin", {"status": "resolved"}).status_code == 200
    refused = node.call("POST", f"{path}/status", "admin", {"status": "contained"})
    assert refused.status_code == 409
    assert "may move to investigating, closed, not contained" in refused.json()["detail"]
    bad = node.call("POST", f"{path}/status", "admin", {"status": "done"})
    assert bad.status_code == 422


def test_tenants_see_and_relate_only_their_own(node: Node) -> None:
    theirs = node.event(node.globex, "globex/plc1")
    r = node.call("POST", "/security/incidents", "olga",
                  {"title": "x", "severity": "low", "event_ids": [theirs]})
    assert r.status_code == 400 and r.json()["field"] == "event_ids"
    assert node.call("POST", "/security/incidents", "vera",
                     {"title": "x", "severity": "low"}).status_code == 403
    assert node.call("POST", "/security/incidents", "olga",
                     {"title": "x", "severity": "low", "tenant_id": node.globex}
                     ).status_code == 404
    mine = node.call("POST", "/security/incidents", "olga", {"title": "acme's", "severity": "low"})
    assert mine.status_code == 201
    assert node.call("GET", "/security/incidents", "gus").json()["incidents"] == []
    assert node.call("GET", f"/security/incidents/{mine.json()['id']}", "gus").status_code == 404
    # A node-wide incident of its own (the test must not lean on another test's, which under
    # two workers may run elsewhere): admins see it, tenants never.
    node_wide = node.call("POST", "/security/incidents", "admin",
                          {"title": "the node's", "severity": "low"})
    assert node_wide.status_code == 201 and node_wide.json()["tenant_id"] is None
    listed = node.call("GET", "/security/incidents", "vera", status="open").json()
    assert {i["tenant_id"] for i in listed["incidents"]} == {node.acme}
    everything = node.call("GET", "/security/incidents", "admin").json()["incidents"]
    assert {i["tenant_id"] for i in everything} >= {node.acme, None}


def test_a_refused_upward_report_undoes_the_change(node: Node) -> None:
    def full(conn: Any, incident: Any) -> None:
        raise StorageError("the federation outbox is full")

    store = IncidentStore(node.registry.engine, on_change=full)
    before = store.query(limit=500)[0]
    with pytest.raises(StorageError):
        store.create(title="lost?", severity=Severity.HIGH, tenant_id=None, actor="t")
    assert store.query(limit=500)[0] == before


def test_the_cli_opens_moves_and_lists_incidents(node: Node) -> None:
    runner = CliRunner()
    common = ["--url", node.url, "--token", node.tokens["olga"]]
    opened = runner.invoke(cli, ["security", "incident", "open", "--title", "PLC in STOP",
                                 "--severity", "critical", *common, "--json"])
    assert opened.exit_code == 0, opened.output
    number = str(json.loads(opened.output)["id"])
    moved = runner.invoke(cli, ["security", "incident", "status", number, "contained",
                                "--comment", "cable pulled", *common])
    assert moved.exit_code == 0 and "cable pulled" in moved.output
    wrong = runner.invoke(cli, ["security", "incident", "status", number, "open", *common])
    assert wrong.exit_code == 2 and "may move to" in wrong.output
    listed = runner.invoke(cli, ["security", "incidents", "--status", "contained", *common])
    assert "PLC in STOP" in listed.output
    shown = runner.invoke(cli, ["security", "incident", "show", number, *common])
    assert "open -> contained" in shown.output and "cable pulled" in shown.output


def test_sensors_report_events_and_hosts(node: Node) -> None:
    batch = {"events": [
        {"kind": "network.scan", "severity": "high", "summary": "10.0.0.66 scanned 40 ports",
         "source": "10.0.0.66", "target": "10.0.0.0/24", "detail": {"ports": 40}},
        {"kind": "field.plc_stop", "severity": "critical", "summary": "S7 stop to 10.0.0.10",
         "source": "10.0.0.66", "target": "10.0.0.10"}]}
    r = node.call("POST", "/security/events", "ada", batch)
    assert r.status_code == 202 and r.json() == {"accepted": 2, "dropped": 0}
    bad = node.call("POST", "/security/events", "ada", {"events": [{"kind": "scan"}]})
    assert bad.status_code == 400 and bad.json()["field"] == "events[0].kind"
    assert node.call("POST", "/security/events", "olga", batch).status_code == 403
    node.written()
    (scan,) = node.monitor.store.query(EventQuery(kind_prefix="network.scan"))[0]
    assert scan.tenant_id == node.acme and str(scan.detail["reported_by"]).startswith("token:")
    hosts = {"hosts": [{"address": "10.0.0.77", "vendor": "Moxa", "model": "NPort 5110",
                        "protocols": ["modbus"]}]}
    assert node.call("POST", "/security/hosts", "ada", hosts).status_code == 403  # a tenant's
    r = node.call("POST", "/security/hosts", "admin", hosts)
    assert r.status_code == 200 and r.json() == {"known": 1}
    (host,) = node.monitoring.probe_hosts()
    assert (host.address, host.vendor, host.protocols) == ("10.0.0.77", "Moxa", ("modbus",))


def test_configuration_changes_are_events(node: Node) -> None:
    r = node.call("POST", "/tokens", "admin", {"name": "sensor", "role": "admin",
                                                "tenant_id": node.acme})
    assert r.status_code == 201, r.text
    token_id = r.json()["info"]["id"]
    assert node.call("DELETE", f"/tokens/{token_id}", "admin").status_code == 204
    node.written()
    (change,) = node.monitor.store.query(EventQuery(kind_prefix="config.change"))[0]
    assert (change.target, change.tenant_id, change.count) == (
        f"token:{token_id}", node.acme, 2)  # created then revoked: one event, twice
    assert change.detail["action"] == "revoked" and change.severity is Severity.LOW
    # The tenant sees what was done to its configuration.
    seen = node.call("GET", "/security/events", "vera", kind="config.").json()["events"]
    assert [e["target"] for e in seen] == [f"token:{token_id}"]
