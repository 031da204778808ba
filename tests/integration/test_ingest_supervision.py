"""Supervision inside the node: samples the store refuses are isolated, sources that fail are
restarted, and sources cannot grow a tenant's registry beyond its quotas (issue 9)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter

from millnet.errors import NotFound
from millnet.ingest.metrics import IngestMetrics
from millnet.ingest.pipeline import IngestPipeline
from millnet.model import TextSample
from millnet.node import build_node, running
from millnet.supervise import supervise
from millnet.telemetry.duckdb_store import DuckDBTelemetryStore
from tests.servers import Mosquitto
from tests.support.mqttpeer import Peer
from tests.support.nodes import connected, metric_value, node_settings, until

T0_NS = 1_767_225_600_000 * 10**6


def test_refused_samples_are_isolated_and_the_rest_stored(tmp_path: Path) -> None:
    """Quality 200 and a lone surrogate reach the real store (no decoder would let them), which
    refuses the whole batch; the pipeline splits it down to the two samples and stores the rest."""

    async def scenario() -> None:
        with DuckDBTelemetryStore(tmp_path / "t.duckdb", tmp_path / "archive") as store:
            metrics = IngestMetrics()
            pipe = IngestPipeline(store, metrics, max_delay=0.01)
            runner = asyncio.create_task(pipe.run())
            for i in range(1000):
                pipe.live.append(1, T0_NS + i * 1000, float(i), 200 if i == 613 else 0)
            pipe.live.text.append(TextSample(2, T0_NS, "fine"))
            pipe.live.text.append(TextSample(2, T0_NS + 1000, "bad \ud800"))
            acked: list[bool] = []
            pipe.add_ack(lambda: acked.append(True))
            pipe.appended(1002)
            await pipe.drain()
            runner.cancel()
            assert acked == [True]
            assert metrics.rejected_count("store_refused") == 2
            rows = store.query_range([1], T0_NS, T0_NS + 10**9, limit=2000)
            assert len(rows) == 999
            assert 613.0 not in {r.value for r in rows}
            assert [r.text for r in store.query_range([2], T0_NS, T0_NS + 10**9)] == ["fine"]

    asyncio.run(scenario())


def test_a_batch_opened_empty_does_not_stop_the_timer(tmp_path: Path) -> None:
    """A message that yields nothing (a rejection: ``appended(0)``) opens the batch; the timer
    seals it empty. A sample appended after that is still written within the batch delay, not
    held until a batch fills (found by review: the empty seal left the batch marked open and
    the timer was never armed again)."""

    async def scenario() -> None:
        with DuckDBTelemetryStore(tmp_path / "t.duckdb", tmp_path / "archive") as store:
            metrics = IngestMetrics()
            pipe = IngestPipeline(store, metrics, max_delay=0.02)
            runner = asyncio.create_task(pipe.run())
            pipe.appended(0)
            await asyncio.sleep(0.1)  # the timer fires on the empty batch
            pipe.live.append(1, T0_NS, 1.0, 0)
            pipe.appended(1)
            for _ in range(100):
                if metric_value_of(metrics, "millnet_ingest_samples_stored_total") == 1:
                    break
                await asyncio.sleep(0.01)
            stored = metric_value_of(metrics, "millnet_ingest_samples_stored_total")
            runner.cancel()
            assert stored == 1, "the sample waited for a full batch"

    asyncio.run(scenario())


def metric_value_of(metrics: IngestMetrics, name: str) -> float:
    return metrics.registry.get_sample_value(name) or 0.0


def test_a_failing_task_is_restarted_and_counted() -> None:
    restarts = Counter("restarts", "test", ["task"], registry=CollectorRegistry())
    runs: list[int] = []

    async def flaky() -> None:
        runs.append(1)
        if len(runs) < 3:
            raise RuntimeError("boom")

    asyncio.run(supervise("flaky", flaky, restarts, first_backoff=0.01))
    assert len(runs) == 3
    assert restarts.labels("flaky")._value.get() == 2


def test_cancelling_a_supervised_task_stops_it() -> None:
    restarts = Counter("restarts", "test", ["task"], registry=CollectorRegistry())

    async def scenario() -> None:
        task = asyncio.create_task(supervise("sleeper", lambda: asyncio.sleep(60), restarts))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    assert restarts.labels("sleeper")._value.get() == 0


def test_sources_cannot_exceed_the_tenant_quotas(mosquitto: Mosquitto, tmp_path: Path) -> None:
    settings = node_settings(tmp_path, mosquitto.port, ingest={
        "max_devices_per_tenant": 2, "max_points_per_tenant": 5})

    async def scenario() -> None:
        node = build_node(settings)
        async with running(node, api=False):
            await until(lambda: connected(node, "mqtt-json"))
            peer = Peer(mosquitto.port, "many")
            values = {f"p{i}": i for i in range(4)}
            for device in ("d1", "d2", "d3"):
                peer.publish(f"millnet/s/a/l/{device}", json.dumps({"values": values}).encode())
            peer.close()
            await until(lambda: metric_value(node, "millnet_ingest_messages_received_total",
                                             {"source": "json"}) == 3)
            await until(lambda: metric_value(node, "millnet_ingest_samples_stored_total") == 5)
            # d1 took 4 points, d2 the fifth (3 refused); d3 is a third device: refused whole.
            assert metric_value(node, "millnet_ingest_rejected_total", {"reason": "quota"}) == 4
            assert len(node.registry.list_points(node.tenant_id)) == 5
            devices = {node.registry.get_asset(p.device_id).name
                       for p in node.registry.list_points(node.tenant_id)}
            assert devices == {"d1", "d2"}
            with pytest.raises(NotFound):
                node.registry.find_asset(node.tenant_id, "default/s/a/l/d3")
            node.registry.find_asset(node.tenant_id, "default/s/a/l/d2")

    asyncio.run(scenario())
