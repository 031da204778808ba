"""Security events through a real API served by uvicorn: failed bearer tokens become one
brute-force event with its count, a good caller is unaffected, tenants see only their events."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from millnet.api import create_app
from millnet.cli import app
from millnet.ingest.metrics import IngestMetrics
from millnet.model.security import EventKind, SecurityEvent, Severity
from millnet.registry import Registry
from millnet.security import EventQuery, SecurityMonitor, SecuritySettings, build_security
from millnet.telemetry.duckdb_store import DuckDBTelemetryStore
from tests.support.webserver import ThreadedServer


@dataclass
class Node:
    url: str
    registry: Registry
    monitor: SecurityMonitor
    node_admin: str
    acme_operator: str
    acme_viewer: str
    globex_viewer: str
    acme_id: int

    def get(self, path: str, token: str, **params: Any) -> httpx.Response:
        return httpx.get(f"{self.url}/api/v1{path}", params=params,
                         headers={"Authorization": f"Bearer {token}"}, timeout=10)

    def wait_for(self, q: EventQuery, n: int = 1) -> None:
        deadline = time.monotonic() + 10
        while len(self.monitor.store.query(q)[0]) < n:
            assert time.monotonic() < deadline, "the monitor did not write the events"
            time.sleep(0.05)


class Writer:
    """The monitor's writer task in a loop of its own thread, as the node runs it."""

    def __init__(self, monitor: SecurityMonitor) -> None:
        self.loop = asyncio.new_event_loop()
        self.task: asyncio.Task[None] | None = None
        self.thread = threading.Thread(target=self._run, args=(monitor,), daemon=True)

    def _run(self, monitor: SecurityMonitor) -> None:
        self.task = self.loop.create_task(monitor.run())
        try:
            self.loop.run_until_complete(self.task)
        except asyncio.CancelledError:
            pass
        finally:
            self.loop.close()

    def __enter__(self) -> Writer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(lambda: self.task.cancel() if self.task else None)
        self.thread.join(10)


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    tmp = tmp_path_factory.mktemp("security-api")
    url = f"sqlite:///{tmp / 'node.sqlite'}"
    registry = Registry.open(url)
    store = DuckDBTelemetryStore(tmp / "telemetry.duckdb", tmp / "archive")
    monitor = build_security(SecuritySettings(flush_s=0.05, brute_force_failures=10), url)
    try:
        acme = registry.create_tenant("acme")
        globex = registry.create_tenant("globex")
        app = create_app(registry, store, IngestMetrics(), node_name="sec-node",
                         role="enterprise", security=monitor, token_cache_seconds=60)
        with ThreadedServer(app) as server, Writer(monitor):
            yield Node(server.url, registry, monitor,
                       registry.create_token(None, "admin", "node-admin")[0],
                       registry.create_token(acme.id, "operator", "olga")[0],
                       registry.create_token(acme.id, "viewer", "vera")[0],
                       registry.create_token(globex.id, "viewer", "gus")[0], acme.id)
    finally:
        monitor.store.close()
        store.close()
        registry.close()


def test_twenty_bad_tokens_are_one_brute_force_event_and_a_good_caller_is_served(
    node: Node,
) -> None:
    for i in range(20):
        r = node.get("/me", f"mn_deadbeef_guess-{i}")
        assert r.status_code == 401
        good = node.get("/me", node.acme_viewer)  # interleaved: never refused
        assert good.status_code == 200, good.text
    brute = EventQuery(kind_prefix=EventKind.AUTH_BRUTE_FORCE)
    node.wait_for(brute)
    time.sleep(0.3)  # the last failures are folded by the next write
    events, _ = node.monitor.store.query(brute)
    assert len(events) == 1
    (event,) = events
    assert (event.source, event.target, event.count) == ("127.0.0.1", "api", 20)
    assert event.tenant_id is None and event.status == "open"
    # Tokens never reach the stored event.
    assert "guess" not in repr(event)
    # Through the API: the node-wide admin sees it, a tenant never sees node-wide events.
    page = node.get("/security/events", node.node_admin, kind="auth.").json()
    assert [e["count"] for e in page["events"] if e["kind"] == "auth.brute_force"] == [20]
    assert node.get("/security/events", node.acme_viewer).json()["events"] == []


def test_a_revoked_token_is_misuse(node: Node) -> None:
    token, info = node.registry.create_token(node.acme_id, "viewer", "short-lived")
    assert node.get("/me", token).status_code == 200
    r = httpx.delete(f"{node.url}/api/v1/tokens/{info.id}",
                     headers={"Authorization": f"Bearer {node.node_admin}"}, timeout=10)
    assert r.status_code == 204, r.text
    assert node.get("/me", token).status_code == 401
    node.wait_for(EventQuery(kind_prefix=EventKind.AUTH_TOKEN_MISUSE))
    (event,) = node.monitor.store.query(EventQuery(kind_prefix="auth.token_misuse"))[0]
    assert event.detail["reason"] == "revoked" and event.severity is Severity.HIGH


def test_tenants_list_summarise_and_acknowledge_their_own_events(node: Node) -> None:
    node.monitor.report(SecurityEvent(EventKind.DEVICE_UNKNOWN, Severity.MEDIUM,
                                      "device acme/plc9 seen for the first time",
                                      target="acme/plc9"), node.acme_id)
    q = EventQuery(kind_prefix="device.")
    node.wait_for(q)
    (event,) = node.monitor.store.query(q)[0]
    # (The revocation of the test before is acme's too: a config.change event.)
    mine = node.get("/security/events", node.acme_viewer, kind="device.").json()
    assert [e["id"] for e in mine["events"]] == [event.id]
    assert node.get("/security/events", node.globex_viewer).json()["events"] == []
    assert node.get("/security/events", node.acme_viewer,
                    tenant_id=node.acme_id + 1).status_code == 404
    summary = node.get("/security/summary", node.acme_viewer, bucket="1h",
                       kind="device.").json()
    assert [(b["kind"], b["events"]) for b in summary["buckets"]] == [("device.unknown", 1)]
    ack_url = f"{node.url}/api/v1/security/events/{event.id}/ack"
    body = {"comment": "new PLC, commissioning"}
    viewer = httpx.post(ack_url, json=body, timeout=10,
                        headers={"Authorization": f"Bearer {node.acme_viewer}"})
    assert viewer.status_code == 403
    other = httpx.post(ack_url, json=body, timeout=10,
                       headers={"Authorization": f"Bearer {node.globex_viewer}"})
    assert other.status_code in (403, 404)
    done = httpx.post(ack_url, json=body, timeout=10,
                      headers={"Authorization": f"Bearer {node.acme_operator}"})
    assert done.status_code == 200, done.text
    assert (done.json()["status"], done.json()["acked_by"], done.json()["ack_comment"]) == (
        "acknowledged", "olga", "new PLC, commissioning")
    again = httpx.post(ack_url, json=body, timeout=10,
                       headers={"Authorization": f"Bearer {node.acme_operator}"})
    assert again.status_code == 409


@pytest.mark.parametrize("params", [
    {"severity": "apocalyptic"}, {"kind": "AUTH%"}, {"since": "yesterday"},
    {"limit": "0"}, {"cursor": "-1"},
])
def test_bad_filters_are_refused_with_the_field(node: Node, params: dict[str, str]) -> None:
    r = node.get("/security/events", node.node_admin, **params)
    assert r.status_code in (400, 422), r.text
    assert r.json()["error"] == "invalid_input"


def test_pages_follow_the_cursor(node: Node) -> None:
    for i in range(7):
        node.monitor.report(SecurityEvent("protocol.malformed", Severity.LOW, "bad packet",
                                          source=f"10.5.0.{i}", target="handle"))
    q = EventQuery(kind_prefix="protocol.")
    node.wait_for(q, 7)
    seen: list[int] = []
    cursor: int | None = None
    while True:
        params: dict[str, Any] = {"kind": "protocol.", "limit": 3}
        if cursor is not None:
            params["cursor"] = cursor
        page = node.get("/security/events", node.node_admin, **params).json()
        seen += [e["id"] for e in page["events"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 7 == len(set(seen))


def test_the_cli_lists_summarises_and_acknowledges(node: Node) -> None:
    node.monitor.report(SecurityEvent(EventKind.PROTOCOL_SEQUENCE_ABUSE, Severity.MEDIUM,
                                      "sequence abuse from edge7", source="edge7",
                                      target="sparkplug"), node.acme_id, 42)
    q = EventQuery(kind_prefix="protocol.sequence")
    node.wait_for(q)
    runner = CliRunner()
    common = ["--url", node.url, "--token", node.acme_operator]
    listed = runner.invoke(app, ["security", "events", "--kind", "protocol.", *common])
    assert listed.exit_code == 0, listed.output
    assert "protocol.sequence_abuse" in listed.output and "x42" in listed.output
    as_json = runner.invoke(app, ["security", "summary", "--json", *common])
    assert as_json.exit_code == 0 and '"occurrences": 42' in as_json.output
    (event,) = node.monitor.store.query(q)[0]
    acked = runner.invoke(app, ["security", "ack", str(event.id), "--comment", "edge7 "
                                "reflashed", *common])
    assert acked.exit_code == 0 and "acknowledged" in acked.output
    refused = runner.invoke(app, ["security", "events", "--severity", "bogus", *common])
    assert refused.exit_code == 2
