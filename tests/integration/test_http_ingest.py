"""HTTP ingest (issue 11, scope 4): device tokens, MQTT JSON payloads over ``POST
/api/v1/ingest`` of a real node (uvicorn, SQLite registry, DuckDB store, the real pipeline).

Answered 202 only once the samples are committed; 413, 400 naming the field, 401/403, every
rejection counted on ``/metrics``; 503 with ``Retry-After`` when the pipeline is full, with
nothing taken (the pipeline's writer held back, its queue full)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from millnet.api.routes.ingest import HttpIngest, IngestBusy
from millnet.errors import RejectedMessage
from millnet.ingest.metrics import IngestMetrics
from millnet.ingest.pipeline import IngestPipeline
from millnet.node import Node, build_node, running
from tests.support.nodes import metric_value, node_settings

DEVICE = "plant1/press-shop/line1/press-1"
T0_MS = 1_767_225_600_000


@asynccontextmanager
async def node_api(tmp_path: Path) -> AsyncIterator[tuple[Node, httpx.AsyncClient, str]]:
    node = build_node(node_settings(tmp_path, 1, mqtt={"enabled": False},
                                    ingest={"max_payload_bytes": 4096}))
    async with running(node) as live, httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{live.api_port}/api/v1", timeout=10) as client:
        admin = node.registry.create_token(node.tenant_id, "admin", "admin")[0]
        yield live, client, admin


async def device_token(api: httpx.AsyncClient, admin: str, device: str | None) -> str:
    answer = await api.post("/device-tokens", json={"name": "press", "device": device},
                            headers={"Authorization": f"Bearer {admin}"})
    assert answer.status_code == 201, answer.text
    token: str = answer.json()["token"]
    assert token.startswith("mnd_")
    return token


def series(node: Node) -> dict[str, int]:
    return {p.name: p.series_id for p in node.registry.list_points(node.tenant_id)}


def test_samples_are_committed_before_the_answer(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with node_api(tmp_path) as (node, api, admin):
            token = await device_token(api, admin, DEVICE)
            auth = {"Authorization": f"Bearer {token}"}
            body = [{"ts": T0_MS, "values": {"force": 12.5, "state": "RUN"}},
                    {"point": "force", "value": 13.0, "ts": T0_MS + 1000, "unit": "kN"}]
            answer = await api.post("/ingest", json=body, headers=auth)
            assert answer.status_code == 202, answer.text
            assert answer.json() == {"accepted": 3, "refused_points": 0}
            # Committed when answered: in the store at once, nothing to wait for.
            ids = series(node)
            stored = node.store.query_range([ids["force"]], 0, (T0_MS + 2000) * 1_000_000)
            assert [s.value for s in stored] == [12.5, 13.0]
            assert node.registry.find_asset(node.tenant_id, f"default/{DEVICE}").kind == "device"
            assert node.host.get("http").health.counters["samples"] == 3

            # A token bound to a device sends for that device only.
            other = await api.post("/ingest?device=s/a/l/other", json=body, headers=auth)
            assert other.status_code == 403
            # A tenant-wide token names the device.
            wide = {"Authorization": f"Bearer {await device_token(api, admin, None)}"}
            assert (await api.post("/ingest", json=body, headers=wide)).status_code == 400
            named = await api.post("/ingest?device=s/a/l/other", json=body, headers=wide)
            assert named.status_code == 202, named.text

    asyncio.run(scenario())


def test_bad_requests_are_refused_and_counted(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with node_api(tmp_path) as (node, api, admin):
            auth = {"Authorization": f"Bearer {await device_token(api, admin, DEVICE)}"}
            bad = await api.post("/ingest", json=[{"point": "p", "value": 1},
                                                  {"point": "q", "value": [1]}], headers=auth)
            assert bad.status_code == 400
            assert bad.json()["field"] == "body[1].value"
            assert bad.json()["error"] == "invalid_input"
            ts = await api.post("/ingest", json={"point": "p", "value": 1, "ts": -5},
                                headers=auth)
            assert ts.status_code == 400 and "ts" in ts.json()["detail"]
            big = await api.post("/ingest", content=b"[" + b" " * 5000 + b"]", headers=auth)
            assert big.status_code == 413
            assert big.json()["error"] == "payload_too_large"
            unknown = {"Authorization": "Bearer mnd_00000000_" + "A" * 43}
            assert (await api.post("/ingest", json={"point": "p", "value": 1},
                                   headers=unknown)).status_code == 401
            # An API token is not a device token.
            assert (await api.post("/ingest", json={"point": "p", "value": 1},
                                   headers={"Authorization": f"Bearer {admin}"})).status_code \
                == 401
            assert metric_value(node, "millnet_ingest_rejected_total",
                                {"reason": "malformed"}) == 1
            assert metric_value(node, "millnet_ingest_rejected_total",
                                {"reason": "timestamp"}) == 1
            assert metric_value(node, "millnet_ingest_rejected_total",
                                {"reason": "oversized"}) == 1
            exported = (await api.get(f"http://127.0.0.1:{node.api_port}/metrics")).text
            assert 'millnet_ingest_rejected_total{reason="oversized"} 1.0' in exported
            assert 'millnet_ingest_messages_received_total{source="http"} 2.0' in exported
            assert series(node) == {}  # nothing of a refused request was kept

    asyncio.run(scenario())


def test_revoked_device_tokens_are_refused(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with node_api(tmp_path) as (_, api, admin):
            token = await device_token(api, admin, DEVICE)
            admin_auth = {"Authorization": f"Bearer {admin}"}
            listed = (await api.get("/device-tokens", headers=admin_auth)).json()
            assert [(t["name"], t["device"]) for t in listed] == [("press", DEVICE)]
            assert token not in json.dumps(listed)
            gone = await api.delete(f"/device-tokens/{listed[0]['id']}", headers=admin_auth)
            assert gone.status_code == 204
            answer = await api.post("/ingest", json={"point": "p", "value": 1},
                                    headers={"Authorization": f"Bearer {token}"})
            assert answer.status_code == 401

    asyncio.run(scenario())


def test_a_full_pipeline_answers_busy_and_takes_nothing(tmp_path: Path) -> None:
    async def scenario() -> None:
        node = build_node(node_settings(tmp_path, 1, mqtt={"enabled": False}))
        try:
            metrics = IngestMetrics()
            # The node's store, a pipeline whose writer is not running yet: its queue fills.
            pipeline = IngestPipeline(node.store, metrics, max_samples=100, max_delay=0.01,
                                      queue_max_samples=1000)
            http = HttpIngest(pipeline, metrics, node.host._binders, max_payload=1 << 20,
                              capacity_wait_s=0.05, commit_timeout_s=0.2)
            device = ("s", "a", "l", "d")
            payload = json.dumps({"values": {f"p{i}": i for i in range(1000)}}).encode()
            with pytest.raises(IngestBusy) as uncommitted:
                await http.ingest(node.tenant_id, device, payload)
            assert uncommitted.value.retry_after_s == 5  # taken, not yet committed
            small = json.dumps({"point": "p1", "value": 1}).encode()
            with pytest.raises(IngestBusy):  # full: refused before anything is taken
                await http.ingest(node.tenant_id, device, small)
            assert len(pipeline.live) == 0
            assert http.health().counters["busy"] == 2
            writer = asyncio.create_task(pipeline.run())
            try:
                patient = HttpIngest(pipeline, metrics, node.host._binders, max_payload=1 << 20,
                                     capacity_wait_s=10, commit_timeout_s=10)
                assert await patient.ingest(node.tenant_id, device, small) == (1, 0)
                assert metrics.stored._value.get() == 1001
            finally:
                writer.cancel()
            with pytest.raises(RejectedMessage):
                await http.ingest(node.tenant_id, device, b"{")
        finally:
            node.close()

    asyncio.run(scenario())
