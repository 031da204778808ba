"""The alarm routes over a real SQLite registry (tokens, alarm tables) and a running alarm
service: reading and filtering, every action with the token's name as the user, viewers
refused (403), another tenant's alarms 404, a refused transition 409, the EEMUA figures; and
the CLI against the same API."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from typer.testing import CliRunner, Result

from millnet.alarms.service import AlarmService
from millnet.alarms.settings import AlarmsSection
from millnet.alarms.store import AlarmStore
from millnet.api import create_app
from millnet.cli_alarms import app as alarm_cli
from millnet.ingest.metrics import IngestMetrics
from millnet.model.alarms import AlarmNotice, ConditionChange, Priority
from millnet.registry import Registry
from millnet.serving import embedded_server, listening_socket
from millnet.telemetry.duckdb_store import DuckDBTelemetryStore
from tests.support.nodes import until


@dataclass
class Api:
    client: httpx.AsyncClient
    service: AlarmService
    tokens: dict[str, dict[str, str]]
    tenants: dict[str, int]
    notices: list[AlarmNotice]
    app: FastAPI

    async def get(self, path: str, who: str, **params: Any) -> httpx.Response:
        return await self.client.get(f"/api/v1{path}", headers=self.tokens[who],
                                     params=params)

    async def post(self, path: str, who: str, body: dict[str, Any]) -> httpx.Response:
        return await self.client.post(f"/api/v1{path}", headers=self.tokens[who], json=body)


def change(tenant_id: int, asset_id: int, active: bool, priority: Priority = Priority.HIGH,
           ) -> ConditionChange:
    return ConditionChange(3, "boiler-overtemp", tenant_id, asset_id, active, time.time_ns(),
                           priority, "boiler temperature high", 97.5, time.time_ns())


@asynccontextmanager
async def api(tmp: Path) -> AsyncIterator[Api]:
    registry = Registry.open(f"sqlite:///{tmp / 'registry.sqlite'}")
    store = DuckDBTelemetryStore(tmp / "telemetry.duckdb", tmp / "archive")
    notices: list[AlarmNotice] = []
    service = AlarmService(AlarmStore(registry.engine), AlarmsSection(), str, notices.extend)
    task = asyncio.create_task(service.run())
    try:
        tenants = {name: registry.create_tenant(name).id for name in ("acme", "globex")}
        tokens = {f"{tenant}-{role}": {"Authorization": "Bearer " + registry.create_token(
            tid, role, f"{tenant}-{role}")[0]}
            for tenant, tid in tenants.items() for role in ("viewer", "operator")}
        tokens["node"] = {"Authorization": "Bearer " + registry.create_token(
            None, "admin", "node-admin")[0]}
        app = create_app(registry, store, IngestMetrics(), node_name="n", role="enterprise",
                         alarms=service)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://node") as client:
            yield Api(client, service, tokens, tenants, notices, app)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        store.close()
        registry.close()


def test_alarm_routes(tmp_path: Path) -> None:
    asyncio.run(_routes(tmp_path))


async def _routes(tmp: Path) -> None:
    async with api(tmp) as a:
        acme, globex = a.tenants["acme"], a.tenants["globex"]
        a.service.submit([change(acme, 100, True), change(acme, 101, True, Priority.LOW),
                          change(globex, 200, True)])
        await until(lambda: len(a.notices) == 3, what="three activations")
        first, second, theirs = (n.alarm_id for n in a.notices)

        listed = await a.get("/alarms", "acme-viewer")
        assert listed.status_code == 200, listed.text
        assert [x["id"] for x in listed.json()] == [second, first]
        low = await a.get("/alarms", "acme-viewer", priority="low", state="unack_active")
        assert [x["id"] for x in low.json()] == [second]
        assert (await a.get("/alarms", "acme-viewer", asset_id=100)).json()[0]["id"] == first
        everything = await a.get("/alarms", "node")
        assert len(everything.json()) == 3
        assert (await a.get("/alarms", "acme-viewer", tenant_id=globex)).status_code == 404
        bad = await a.get("/alarms", "acme-viewer", since="yesterday")
        assert bad.status_code == 400 and bad.json()["field"] == "since"

        one = (await a.get(f"/alarms/{first}", "acme-viewer")).json()
        assert one["state"] == "unack_active" and one["priority"] == "high"
        assert (await a.get(f"/alarms/{theirs}", "acme-viewer")).status_code == 404

        refused = await a.post(f"/alarms/{first}/acknowledge", "acme-viewer", {})
        assert refused.status_code == 403 and refused.json()["error"] == "permission_denied"
        stranger = await a.post(f"/alarms/{first}/acknowledge", "globex-operator", {})
        assert stranger.status_code == 404

        acked = await a.post(f"/alarms/{first}/acknowledge", "acme-operator",
                             {"comment": "on it"})
        assert acked.status_code == 200, acked.text
        assert acked.json()["state"] == "acked_active"
        assert acked.json()["acked_by"] == "acme-operator"
        again = await a.post(f"/alarms/{first}/acknowledge", "acme-operator", {})
        assert again.status_code == 409 and "acked_active" in again.json()["detail"]

        no_time = await a.post(f"/alarms/{second}/shelve", "acme-operator", {})
        assert no_time.status_code == 400 and no_time.json()["field"] == "duration_s"
        too_long = await a.post(f"/alarms/{second}/shelve", "acme-operator",
                                {"duration_s": 10 * 86_400})
        assert too_long.status_code == 400
        shelved = await a.post(f"/alarms/{second}/shelve", "acme-operator",
                               {"duration_s": 600, "comment": "known"})
        assert shelved.json()["state"] == "shelved" and shelved.json()["shelved_until"]
        unshelved = await a.post(f"/alarms/{second}/unshelve", "acme-operator", {})
        assert unshelved.json()["state"] == "unack_active"
        out = await a.post(f"/alarms/{second}/out-of-service", "acme-operator",
                           {"comment": "sensor swap"})
        assert out.json()["state"] == "out_of_service"
        assert out.json()["oos_comment"] == "sensor swap"
        back = await a.post(f"/alarms/{second}/in-service", "acme-operator", {})
        assert back.json()["state"] == "unack_active"

        trail = (await a.get(f"/alarms/{second}/events", "acme-viewer")).json()
        assert [e["event"] for e in trail] == [
            "in_service", "out_of_service", "unshelved", "shelved", "activated"]
        assert trail[3]["user"] == "acme-operator" and trail[3]["comment"] == "known"
        assert (await a.get(f"/alarms/{theirs}/events", "acme-viewer")).status_code == 404

        perf = await a.get("/alarms/performance", "acme-viewer")
        assert perf.status_code == 200, perf.text
        figures = perf.json()
        # two activations, one unshelve and one return to service while active
        assert figures["annunciated"] == 4 and figures["intervals"] == 144
        assert figures["top"][0] == {"alarm_id": second, "rule_name": "boiler-overtemp",
                                     "asset_id": 101, "annunciations": 3}
        assert figures["benchmarks"]["flood_per_10min"] == 10
        wide = await a.get("/alarms/performance", "acme-viewer", since="0")
        assert wide.status_code == 400 and wide.json()["field"] == "since"


def test_the_openapi_document_describes_the_alarm_routes(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with api(tmp_path) as a:
            doc = (await a.client.get("/openapi.json")).json()
            paths = {p for p in doc["paths"] if "/alarms" in p}
            assert paths == {"/api/v1/alarms", "/api/v1/alarms/performance",
                             "/api/v1/alarms/{alarm_id}", "/api/v1/alarms/{alarm_id}/events",
                             *(f"/api/v1/alarms/{{alarm_id}}/{action}" for action in (
                                 "acknowledge", "shelve", "unshelve", "out-of-service",
                                 "in-service"))}
            shelve = doc["paths"]["/api/v1/alarms/{alarm_id}/shelve"]["post"]
            assert {"400", "403", "404", "409"} <= set(shelve["responses"])

    asyncio.run(scenario())


def test_the_cli_against_a_served_api(tmp_path: Path) -> None:
    asyncio.run(_cli(tmp_path))


async def _cli(tmp: Path) -> None:
    async with api(tmp) as a:
        acme = a.tenants["acme"]
        a.service.submit([change(acme, 100, True)])
        await until(lambda: len(a.notices) == 1, what="an activation")
        alarm_id = a.notices[0].alarm_id
        sock = listening_socket("127.0.0.1", 0)
        server = embedded_server(a.app)
        serving = asyncio.create_task(server.serve(sockets=[sock]))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        runner = CliRunner()

        def run(who: str, *args: str) -> Result:
            token = a.tokens[who]["Authorization"].removeprefix("Bearer ")
            return runner.invoke(alarm_cli, [*args, "--url", url, "--token", token])

        try:
            listed = await asyncio.to_thread(run, "acme-viewer", "list", "--state",
                                             "unack_active")
            assert listed.exit_code == 0, listed.output
            assert f"{alarm_id:>6}  unack_active" in listed.output
            assert "boiler-overtemp" in listed.output
            refused = await asyncio.to_thread(run, "acme-viewer", "ack", str(alarm_id))
            assert refused.exit_code == 2 and "refused (403)" in refused.output
            acked = await asyncio.to_thread(run, "acme-operator", "ack", str(alarm_id),
                                            "--comment", "on it", "--json")
            assert acked.exit_code == 0, acked.output
            assert json.loads(acked.output)["acked_by"] == "acme-operator"
            shelved = await asyncio.to_thread(run, "acme-operator", "shelve", str(alarm_id),
                                              "--duration", "60")
            assert "shelved" in shelved.output
            trail = await asyncio.to_thread(run, "acme-viewer", "events", str(alarm_id))
            assert trail.output.index("shelved") < trail.output.index("acknowledged")
            assert "on it" in trail.output
            perf = await asyncio.to_thread(run, "acme-viewer", "performance")
            assert perf.exit_code == 0 and "annunciated   1" in perf.output
            assert "acceptable" in perf.output
        finally:
            server.should_exit = True
            await serving
