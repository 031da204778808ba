"""Backpressure, never loss (issue 10): a publisher much faster than the node, a CPU hog beside
it, the real Mosquitto. The node stops reading its connection while it is busy; every point is
stored exactly once by (series, timestamp), nothing is rejected, and the client's queue stays
near its high-water mark."""

from __future__ import annotations

import asyncio
import json
import multiprocessing as mp
from collections.abc import Iterator
from pathlib import Path

import pytest

from millnet.connectivity.mqtt import QUEUE_HIGH_WATER
from millnet.node import build_node, running
from tests.servers import Mosquitto
from tests.support.mqttpeer import Peer
from tests.support.nodes import connected, metric_value, node_settings, until

T0 = 1_767_225_600_000
MESSAGES = 30_000
POINTS_PER_MESSAGE = 4


def _spin() -> None:
    while True:
        pass


@pytest.fixture
def cpu_hog() -> Iterator[None]:
    hog = mp.get_context("spawn").Process(target=_spin, daemon=True)
    hog.start()
    yield
    hog.kill()
    hog.join()


@pytest.mark.parametrize("qos", [0, 1])
def test_a_flood_is_held_back_not_dropped(mosquitto: Mosquitto, tmp_path: Path, qos: int,
                                          cpu_hog: None) -> None:
    settings = node_settings(tmp_path, mosquitto.port, mqtt={"qos": qos, "sparkplug": False},
                             ingest={"batch_max_samples": 500, "queue_max_samples": 1_000})

    async def scenario() -> None:
        peer = Peer(mosquitto.port, f"flood-{qos}")

        def flood() -> None:
            info = None
            for i in range(MESSAGES):
                body = {"ts": T0 + i, "values": {f"p{k}": float(i)
                                                 for k in range(POINTS_PER_MESSAGE)}}
                info = peer.client.publish("millnet/S/A/L/D", json.dumps(body).encode(),
                                           qos=qos)
            assert info is not None
            info.wait_for_publish(60)

        if qos == 1:
            # The flood waits at the broker in the node's persistent session and arrives as
            # fast as the broker can send it, ahead of SUBACK: a node that kept up with a
            # live publisher (paced by its own acknowledgements) would prove nothing.
            async with running(build_node(settings), api=False) as first:
                await until(lambda: connected(first, "mqtt-json"))
            await asyncio.to_thread(flood)
        node = build_node(settings)
        async with running(node, api=False):
            await until(lambda: connected(node, "mqtt-json"))
            if qos == 0:
                await asyncio.to_thread(flood)
            expected = MESSAGES * POINTS_PER_MESSAGE
            await until(lambda: metric_value(node, "millnet_ingest_samples_stored_total")
                        >= expected, limit_s=120, what=f"{expected} points stored")
            peer.close()
            assert metric_value(node, "millnet_source_read_pauses_total",
                                {"source": "mqtt-json"}) > 0, "the node never had to push back"
            peak = metric_value(node, "millnet_source_queue_peak_messages",
                                {"source": "mqtt-json"})
            assert peak <= QUEUE_HIGH_WATER + 50
            rejected = [m for family in node.metrics.rejected.collect() for m in family.samples
                        if m.name.endswith("_total") and m.value]
            assert not rejected
            total, distinct = node.store.count_samples()
            assert (total, distinct) == (expected, expected)

    asyncio.run(scenario())
