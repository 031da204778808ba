"""GET /api/v1/notifications/targets over a real registry and a running notifier: the status
of each target after deliveries; no secret or URL token in the answer; node-wide admins only."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import httpx
from prometheus_client import CollectorRegistry, generate_latest

from millnet.api import create_app
from millnet.ingest.metrics import IngestMetrics
from millnet.notify.metrics import export_metrics
from millnet.notify.outbox import OutboxStore
from millnet.notify.service import Notifier
from millnet.registry import Registry
from millnet.telemetry.duckdb_store import DuckDBTelemetryStore
from tests.integration.test_notify_webhook import SECRET, Outcomes, hook, notice, section
from tests.support.receiver import Receiver


async def _scenario(tmp: Path) -> None:
    registry = Registry.open(f"sqlite:///{tmp / 'registry.sqlite'}")
    store = DuckDBTelemetryStore(tmp / "telemetry.duckdb", tmp / "archive")
    receiver, down = Receiver(), Receiver()
    await receiver.start()
    outcomes = Outcomes()
    notifier = Notifier(OutboxStore(registry.engine),
                        section(hook("ops", receiver), hook("down", down, default=False)),
                        on_outcome=outcomes)
    task = asyncio.create_task(notifier.run())
    try:
        tenant = registry.create_tenant("acme").id
        tokens = {who: {"Authorization": "Bearer " + registry.create_token(tid, role, who)[0]}
                  for who, tid, role in (("node", None, "admin"), ("acme", tenant, "admin"),
                                         ("viewer", None, "viewer"))}
        app = create_app(registry, store, IngestMetrics(), node_name="n", role="enterprise",
                         notifier=notifier)
        notifier.submit([notice(1), notice(2, notify=("down",))])
        await outcomes.until("ops", "delivered")
        await outcomes.until("down", "retry")
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://node") as client:
            answer = await client.get("/api/v1/notifications/targets", headers=tokens["node"])
            tenant_admin = await client.get("/api/v1/notifications/targets",
                                            headers=tokens["acme"])
            viewer = await client.get("/api/v1/notifications/targets", headers=tokens["viewer"])
            anonymous = await client.get("/api/v1/notifications/targets")
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await receiver.close()
        store.close()
        registry.close()
    assert answer.status_code == 200, answer.text
    ops, dead = answer.json()
    assert (ops["name"], ops["kind"], ops["delivered"], ops["pending"]) == ("ops", "webhook", 1, 0)
    assert ops["destination"] == f"http://127.0.0.1:{receiver.port}"
    assert ops["events"] == ["activated", "cleared"] and ops["min_priority"] == "low"
    assert dead["pending"] == 1 and dead["consecutive_failures"] >= 1 and dead["last_error"]
    assert SECRET not in answer.text and "token=abc" not in answer.text
    assert (tenant_admin.status_code, viewer.status_code, anonymous.status_code) == (
        403, 403, 401)


def test_targets_route(tmp_path: Path) -> None:
    asyncio.run(_scenario(tmp_path))


def test_metrics_per_target(tmp_path: Path) -> None:
    async def scenario() -> bytes:
        receiver = Receiver()
        await receiver.start()
        outcomes = Outcomes()
        with OutboxStore.open(f"sqlite:///{tmp_path / 'outbox.sqlite'}") as outbox:
            notifier = Notifier(outbox, section(hook("ops", receiver)), on_outcome=outcomes)
            registry = CollectorRegistry()
            export_metrics(notifier, registry)
            task = asyncio.create_task(notifier.run())
            notifier.submit([notice(1), notice(2)])
            await outcomes.until("ops", "delivered", 2)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await receiver.close()
        return generate_latest(registry)

    text = asyncio.run(scenario()).decode()
    assert 'millnet_notify_delivered_total{target="ops"} 2.0' in text
    assert 'millnet_notify_pending{target="ops"} 0.0' in text
