"""Issue 9, finding 1: each of these messages, published once at QoS 1, used to end the node, and
a persistent session replayed it into a crash loop. Now each costs one counted rejection; the
valid messages around it are stored, and a restarted node neither crashes nor sees it again."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from millnet.node import Node, build_node, running
from tests.servers import Mosquitto
from tests.support import pbwire as w
from tests.support.mqttpeer import Peer
from tests.support.nodes import connected, metric_value, node_settings, stored, until

T0 = 1_767_225_600_000
TOPIC = "millnet/s/a/l/d"

POISON_JSON = [
    (b'{"point":"p","value":1,"ts":9300000000000}', "timestamp"),  # ns overflow int64
    (b'{"point":"   ","value":1}', "malformed"),  # blank name the registry refuses
    (json.dumps({"point": "u", "value": 1, "unit": "x" * 65}).encode(), "malformed"),
    (b'{"point":"t","value":"x","ts":"9999-01-01T00:00:00+00:00"}', "timestamp"),
    (b'{"point":"q","value":1,"ts":-1}', "timestamp"),
    (b'{"point":"t","value":"\\ud800"}', "malformed"),  # a lone surrogate DuckDB cannot hold
]


def _nbirth_with_blank_metric(seq: int = 0) -> bytes:
    return w.payload([w.metric(name="bdSeq", datatype=w.INT64, value=0, ts=T0),
                      w.metric(name="   ", datatype=w.DOUBLE, value=1.0, ts=T0),
                      w.metric(name="Good", alias=1, datatype=w.DOUBLE, value=2.5, ts=T0),
                      w.metric(name="U", datatype=w.DOUBLE, value=3.0, ts=T0, unit="x" * 65)],
                     ts=T0, seq=seq)


def _rejected(node: Node, reason: str) -> float:
    return metric_value(node, "millnet_ingest_rejected_total", {"reason": reason})


def test_poison_messages_cost_one_rejection_each_and_never_loop(
        mosquitto: Mosquitto, tmp_path: Path) -> None:
    settings = node_settings(tmp_path, mosquitto.port)

    async def first_life() -> None:
        node = build_node(settings)
        async with running(node, api=False):
            await until(lambda: connected(node, "mqtt-json") and connected(node, "sparkplug"))
            peer = Peer(mosquitto.port, "poisoner")
            for i, (payload, _) in enumerate(POISON_JSON):
                peer.publish(TOPIC, payload)
                peer.publish(TOPIC, json.dumps({"point": "ok", "value": i,
                                                "ts": T0 + i}).encode())
            peer.publish("spBv1.0/G/NBIRTH/E", _nbirth_with_blank_metric())
            peer.close()
            await until(lambda: stored(node) >= len(POISON_JSON) + 1, what="valid samples")
            await until(lambda: _rejected(node, "invalid_point") == 2, what="birth refusals")
            assert _rejected(node, "timestamp") == 3
            assert _rejected(node, "malformed") == 3
            # Everything valid went in: the six good JSON samples and the birth's good metric.
            points = {p.name: p.series_id for p in node.registry.list_points(node.tenant_id)}
            assert set(points) == {"ok", "bdSeq", "Good"}
            rows = node.store.query_range([points["ok"]], T0 * 10**6, (T0 + 100) * 10**6)
            assert [r.value for r in rows] == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
            assert node.store.last_values([points["Good"]])[points["Good"]].value == 2.5

    async def second_life() -> None:
        node = build_node(settings)
        async with running(node, api=False):
            await until(lambda: connected(node, "mqtt-json"))
            peer = Peer(mosquitto.port, "after-restart")
            peer.publish(TOPIC, json.dumps({"point": "ok", "value": 99, "ts": T0 + 50}).encode())
            peer.close()
            await until(lambda: stored(node) >= 1, what="the message after the restart")
            # Nothing was redelivered: the poison was acknowledged once rejected.
            assert metric_value(node, "millnet_ingest_messages_received_total",
                                {"source": "json"}) == 1
            assert sum(_rejected(node, r) for r in ("timestamp", "malformed")) == 0

    asyncio.run(first_life())
    asyncio.run(second_life())
