"""What the web console needs of the API (issue 14): ``/me`` (extended for it), the status
roll-up under an asset, the live stream of samples (SSE over a real uvicorn server), and the
console's static files with their security headers."""

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
import numpy as np
from fastapi import FastAPI

from millnet.alarms.service import AlarmService
from millnet.alarms.settings import AlarmsSection
from millnet.alarms.store import AlarmStore
from millnet.api import create_app
from millnet.console import CSP
from millnet.ingest.live import LiveFeed
from millnet.ingest.metrics import IngestMetrics
from millnet.model import AssetKind, DataType, PointSpec, Quality, SampleBatch
from millnet.model.alarms import AlarmNotice, ConditionChange, Priority
from millnet.registry import Registry
from millnet.serving import embedded_server, listening_socket
from millnet.telemetry.duckdb_store import DuckDBTelemetryStore
from tests.support.nodes import until

LINE = [(AssetKind.ENTERPRISE, "acme"), (AssetKind.SITE, "s1"), (AssetKind.AREA, "a1")]
STATE = [PointSpec("State", DataType.INT32), PointSpec("Speed", DataType.DOUBLE)]


@dataclass
class Plant:
    client: httpx.AsyncClient
    app: FastAPI
    live: LiveFeed
    alarms: AlarmService
    notices: list[AlarmNotice]
    auth: dict[str, dict[str, str]]
    ids: dict[str, int]  # asset name -> id
    series: dict[str, int]  # "<device>/<point>" -> series id

    async def get(self, path: str, who: str, **params: Any) -> httpx.Response:
        return await self.client.get(f"/api/v1{path}", headers=self.auth[who], params=params)


def _device(registry: Registry, tenant: int, line: str, name: str,
            points: list[PointSpec], plant: dict[str, int], series: dict[str, int]) -> None:
    path = [*LINE, (AssetKind.LINE, line), (AssetKind.DEVICE, name)]
    ids = registry.ensure_path(tenant, path)
    plant.update(zip([n for _, n in path], ids, strict=True))
    for point, sid in registry.upsert_points(tenant, ids[-1], points).items():
        series[f"{name}/{point}"] = sid


@asynccontextmanager
async def plant(tmp: Path) -> AsyncIterator[Plant]:
    """Tenant acme: line l1 with machines running (m1), down (m2), idle (m3), without a value
    (m4) and a meter without a state point; line l2 with a machine whose source went away (m5).
    Tenant globex: one running machine."""
    registry = Registry.open(f"sqlite:///{tmp / 'registry.sqlite'}")
    store = DuckDBTelemetryStore(tmp / "telemetry.duckdb", tmp / "archive")
    notices: list[AlarmNotice] = []
    alarms = AlarmService(AlarmStore(registry.engine), AlarmsSection(), str, notices.extend)
    task = asyncio.create_task(alarms.run())
    try:
        acme, globex = (registry.create_tenant(n).id for n in ("acme", "globex"))
        ids: dict[str, int] = {}
        series: dict[str, int] = {}
        for line, name in (("l1", "m1"), ("l1", "m2"), ("l1", "m3"), ("l1", "m4"),
                           ("l2", "m5")):
            _device(registry, acme, line, name, STATE, ids, series)
        _device(registry, acme, "l1", "meter", [PointSpec("Energy", DataType.DOUBLE)], ids,
                series)
        g = registry.ensure_path(globex, [(AssetKind.ENTERPRISE, "globex"),
                                          (AssetKind.SITE, "g"), (AssetKind.AREA, "g"),
                                          (AssetKind.LINE, "g"), (AssetKind.DEVICE, "gm")])
        ids["gm"] = g[-1]
        series.update({f"gm/{k}": v for k, v in registry.upsert_points(globex, g[-1],
                                                                       STATE).items()})
        now = time.time_ns()
        states = {"m1": 1, "m2": 4, "m3": 2, "m5": 1, "gm": 1}
        sids = [series[f"{m}/State"] for m in states]
        store.write(SampleBatch(np.array(sids, np.int32), np.full(len(sids), now, np.int64),
                                np.array(list(states.values()), np.float64),
                                np.zeros(len(sids), np.uint8)), [])
        store.mark_stale([series["m5/State"]], now + 1000)
        auth = {f"acme-{role}": {"Authorization": "Bearer " + registry.create_token(
            acme, role, f"acme-{role}")[0]} for role in ("viewer", "operator")}
        auth["node"] = {"Authorization": "Bearer " + registry.create_token(
            None, "admin", "node-admin")[0]}
        auth["globex"] = {"Authorization": "Bearer " + registry.create_token(
            globex, "viewer", "globex-viewer")[0]}
        live = LiveFeed(max_subscriptions=2)
        app = create_app(registry, store, IngestMetrics(), node_name="n", role="enterprise",
                         alarms=alarms, live=live)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://node") as client:
            yield Plant(client, app, live, alarms, notices, auth, ids, series)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        store.close()
        registry.close()


def test_me_tells_the_role_the_tenants_and_the_areas(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with plant(tmp_path) as p:
            me = (await p.get("/me", "acme-operator")).json()
            assert me["token_name"] == "acme-operator" and me["role"] == "operator"
            assert [t["name"] for t in me["tenants"]] == ["acme"]
            assert me["tenant_id"] == me["tenants"][0]["id"]
            assert me["node"] == "n" and {"alarms", "live"} <= set(me["areas"])
            assert "kpi" not in me["areas"]
            node = (await p.get("/me", "node")).json()
            assert node["tenant_id"] is None and node["role"] == "admin"
            assert {t["name"] for t in node["tenants"]} == {"acme", "globex"}
            bad = await p.client.get("/api/v1/me",
                                     headers={"Authorization": "Bearer mn_nope"})
            assert bad.status_code == 401 and bad.json()["error"] == "unauthenticated"

    asyncio.run(scenario())


def test_status_rolls_machine_states_and_alarms_up_the_tree(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with plant(tmp_path) as p:
            ids = p.ids
            tenant = (await p.get("/me", "acme-viewer")).json()["tenant_id"]
            p.alarms.submit([ConditionChange(
                3, "overheat", tenant, ids[m], True, time.time_ns(), Priority.HIGH, "hot", 90.0,
                time.time_ns()) for m in ("m2", "m5")])
            await until(lambda: len(p.notices) == 2, what="two activations")
            r = await p.get(f"/assets/{ids['acme']}/status", "acme-viewer")
            assert r.status_code == 200, r.text
            body = r.json()
            nodes = {n["asset_id"]: n for n in body["nodes"]}
            counts = ("running", "idle", "down", "unknown", "alarms")
            assert [nodes[ids["l1"]][k] for k in counts] == [1, 1, 1, 1, 1]
            assert [nodes[ids["l2"]][k] for k in counts] == [0, 0, 0, 1, 1]
            for up in ("a1", "s1", "acme"):
                assert [nodes[ids[up]][k] for k in counts] == [1, 1, 1, 2, 2]
            assert body["nodes"][0]["asset_id"] == ids["acme"]
            devices = {d["device_id"]: d for d in body["devices"]}
            assert devices[ids["m1"]]["state"] == "running"
            assert devices[ids["m2"]]["state"] == "down" and devices[ids["m2"]]["alarms"] == 1
            assert devices[ids["m3"]]["state"] == "idle"
            assert devices[ids["m4"]]["state"] == "unknown"
            assert devices[ids["m5"]]["state"] == "unknown"  # stale: its source went away
            assert devices[ids["meter"]]["state"] is None  # no state point: not a machine
            line = (await p.get(f"/assets/{ids['l2']}/status", "acme-viewer")).json()
            assert [n["asset_id"] for n in line["nodes"]] == [ids["l2"]]
            assert [d["device_id"] for d in line["devices"]] == [ids["m5"]]
            # Another tenant's asset is not found; a node-wide token reads any.
            other = await p.get(f"/assets/{ids['gm']}/status", "acme-viewer")
            assert other.status_code == 404 and other.json()["error"] == "not_found"
            assert (await p.get(f"/assets/{ids['gm']}/status", "node")).status_code == 200

    asyncio.run(scenario())


def test_the_console_is_served_with_a_strict_policy(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with plant(tmp_path) as p:
            moved = await p.client.get("/console")
            assert moved.status_code == 308 and moved.headers["location"] == "/console/"
            for path in ("/console/", "/console/js/app.js", "/console/vendor/uPlot.iife.min.js"):
                r = await p.client.get(path)
                assert r.status_code == 200, path
                assert r.headers["content-security-policy"] == CSP
                assert r.headers["x-content-type-options"] == "nosniff"
            assert "'unsafe-inline'" not in CSP and "script-src 'self'" in CSP
            assert (await p.client.get("/console/../app.py")).status_code == 404
            assert (await p.client.get("/console/js/nothing.js")).status_code == 404
            schema = (await p.client.get("/openapi.json")).json()
            assert "/api/v1/stream/points" not in schema["paths"]
            assert "/api/v1/me" in schema["paths"]

    asyncio.run(scenario())


async def _events(resp: httpx.Response) -> AsyncIterator[tuple[str, Any]]:
    event = ""
    async for line in resp.aiter_lines():
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: "):
            yield event, json.loads(line[6:])


def test_the_live_stream_pushes_the_watched_series(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with plant(tmp_path) as p:
            sock = listening_socket("127.0.0.1", 0)
            server = embedded_server(p.app)
            serving = asyncio.create_task(server.serve(sockets=[sock]))
            url = f"http://127.0.0.1:{sock.getsockname()[1]}/api/v1/stream/points"
            m1, m2 = p.series["m1/Speed"], p.series["m2/Speed"]
            try:
                async with httpx.AsyncClient(timeout=10) as http:
                    refused = await http.get(url, params={"series": str(p.series["gm/Speed"])},
                                             headers=p.auth["acme-viewer"])
                    assert refused.status_code == 404  # another tenant's series
                    assert (await http.get(url, params={"series": str(m1)})).status_code == 401
                    async with http.stream("GET", url, params={"series": f"{m1},{m2}"},
                                           headers=p.auth["acme-viewer"]) as resp:
                        assert resp.status_code == 200
                        assert resp.headers["content-type"].startswith("text/event-stream")
                        events = _events(resp)
                        assert await anext(events) == ("hello", {"series": sorted([m1, m2]),
                                                                 "max_samples": 50_000})
                        assert p.live.subscriptions == 1
                        now = time.time_ns()
                        p.live.on_samples(SampleBatch(
                            np.array([m1, p.series["m3/Speed"], m2], np.int32),
                            np.array([now, now, now + 1000], np.int64),
                            np.array([1.5, 2.5, np.nan]),
                            np.array([0, 0, Quality.BAD], np.uint8)), [], historical=False,
                            received_ns=now)
                        name, body = await anext(events)
                        assert name == "samples" and body["series_id"] == [m1, m2]
                        assert body["value"] == [1.5, None] and body["quality"] == [0, 2]
                        assert body["ts_ms"][0] == now / 1e6 and body["dropped"] == 0
                    # Closing the connection ends the subscription.
                    await until(lambda: p.live.subscriptions == 0, what="the unsubscription")
            finally:
                p.live.close()
                server.should_exit = True
                await serving

    asyncio.run(scenario())


def test_the_stream_refuses_beyond_its_limit(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with plant(tmp_path) as p:
            subs = [p.live.subscribe([1]), p.live.subscribe([2])]  # the limit is 2
            r = await p.get("/stream/points", "acme-viewer", series=str(p.series["m1/Speed"]))
            assert r.status_code == 503 and r.json()["error"] == "too_many_streams"
            assert r.headers["retry-after"] == "5"
            for sub in subs:
                p.live.unsubscribe(sub)

    asyncio.run(scenario())
