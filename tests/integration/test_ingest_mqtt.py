"""A real node against a real Mosquitto: JSON telemetry and Sparkplug B from independent peers."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from millnet.model import AssetKind, Quality
from millnet.node import build_node, running
from millnet.registry import Asset
from tests.servers import Mosquitto
from tests.support import pbwire as w
from tests.support.mqttpeer import Peer
from tests.support.nodes import connected, metric_value, node_settings, stored, until

T0 = 1_767_225_600_000  # 2026-01-01 in ms


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
def test_json_samples_are_stored_under_the_isa95_path(mosquitto: Mosquitto, tmp_path: Path,
                                                      protocol: str) -> None:
    async def scenario() -> None:
        node = build_node(node_settings(tmp_path, mosquitto.port, mqtt={"protocol": protocol},
                                        ingest={"max_payload_bytes": 2048}))
        async with running(node, api=False):
            await until(lambda: connected(node, "mqtt-json"), what="json source connected")
            peer = Peer(mosquitto.port, "json-peer")
            peer.publish("millnet/Suzhou/Machining/L1/CNC-1",
                         json.dumps({"ts": T0, "values": {"temp": 41.5, "state": "RUN"}}).encode())
            batch = [{"point": "temp", "value": 42.0 + i, "ts": T0 + 1000 * (i + 1)}
                     for i in range(5)]
            peer.publish("millnet/Suzhou/Machining/L1/CNC-1", json.dumps(batch).encode())
            peer.publish("millnet/Suzhou/Machining/L1/CNC-1", b"{not json")
            peer.publish("millnet/too/short", b'{"point":"x","value":1}')
            peer.publish("millnet/S/A/L/D", json.dumps(
                [{"point": "x", "value": 1.0}] * 200).encode())  # > 2048 bytes
            await until(lambda: stored(node) >= 7, what="7 samples stored")
            await until(lambda: metric_value(node, "millnet_ingest_rejected_total",
                                             {"reason": "topic"}) == 1)
            assert metric_value(node, "millnet_ingest_rejected_total",
                                {"reason": "malformed"}) == 1
            await until(lambda: metric_value(node, "millnet_ingest_rejected_total",
                                             {"reason": "oversized"}) == 1)
            peer.close()
            points = {p.name: p for p in node.registry.list_points(node.tenant_id)}
            assert set(points) == {"temp", "state"}
            device = node.registry.get_asset(points["temp"].device_id)
            assert device.kind is AssetKind.DEVICE
            assert device.name == "CNC-1"
            rows = node.store.query_range([points["temp"].series_id], T0 * 10**6,
                                        (T0 + 10_000) * 10**6, limit=100)
            assert [r.value for r in rows] == [41.5, 42.0, 43.0, 44.0, 45.0, 46.0]
            last = node.store.last_values([points["state"].series_id])
            assert last[points["state"].series_id].text == "RUN"

    asyncio.run(scenario())


def _births(group: str, edge: str, bd_seq: int) -> list[tuple[str, bytes]]:
    nbirth = w.payload([w.metric(name="bdSeq", datatype=w.INT64, value=bd_seq, ts=T0),
                        w.metric(name="Node Control/Rebirth", datatype=w.BOOLEAN, value=False),
                        w.metric(name="Uptime", alias=1, datatype=w.INT64, value=5)],
                       ts=T0, seq=0)
    dbirth = w.payload([w.metric(name="Spindle/Temperature", alias=2, datatype=w.DOUBLE,
                                 value=20.5, ts=T0, unit="degC"),
                        w.metric(name="State", alias=3, datatype=w.STRING, value="IDLE", ts=T0)],
                       ts=T0, seq=1)
    return [(f"spBv1.0/{group}/NBIRTH/{edge}", nbirth),
            (f"spBv1.0/{group}/DBIRTH/{edge}/CNC-7", dbirth)]


def _ddata(seq: int, ts: int, temp: float) -> bytes:
    return w.payload([w.metric(alias=2, ts=ts, datatype=w.DOUBLE, value=temp)], ts=ts, seq=seq)


def test_sparkplug_session_from_raw_frames(mosquitto: Mosquitto, tmp_path: Path) -> None:
    """An edge node built from hand-written protobuf bytes, not millnet's encoder."""
    group, edge = "Wuxi", "Stamping.L2"

    async def scenario() -> None:
        node = build_node(node_settings(tmp_path, mosquitto.port))
        async with running(node, api=False):
            await until(lambda: connected(node, "sparkplug"), what="sparkplug connected")
            ndeath = w.payload([w.metric(name="bdSeq", datatype=w.INT64, value=3)])
            edge_peer = Peer(mosquitto.port, "edge", will=(f"spBv1.0/{group}/NDEATH/{edge}",
                                                           ndeath),
                             subscribe=f"spBv1.0/{group}/NCMD/{edge}")
            await asyncio.sleep(0.2)
            for topic, data in _births(group, edge, 3):
                edge_peer.publish(topic, data, qos=0)
            for seq in range(2, 6):
                edge_peer.publish(f"spBv1.0/{group}/DDATA/{edge}/CNC-7",
                                  _ddata(seq, T0 + 1000 * seq, 20.0 + seq), qos=0)
            await until(lambda: stored(node) >= 4 + 3, what="births and data stored")
            points = {p.name: p for p in node.registry.list_points(node.tenant_id)}
            temp = points["Spindle/Temperature"]
            assert temp.unit == "degC"
            path = []
            asset: Asset | None = node.registry.get_asset(temp.device_id)
            while asset is not None:
                path.append((asset.kind, asset.name))
                asset = node.registry.get_asset(asset.parent_id) if asset.parent_id else None
            assert path[:4] == [(AssetKind.DEVICE, "CNC-7"), (AssetKind.LINE, "L2"),
                                (AssetKind.AREA, "Stamping"), (AssetKind.SITE, "Wuxi")]
            rows = node.store.query_range([temp.series_id], T0 * 10**6, (T0 + 10_000) * 10**6,
                                        limit=100)
            assert [r.value for r in rows] == [20.5, 22.0, 23.0, 24.0, 25.0]

            # A seq gap: the host asks for a rebirth and ignores data until it comes.
            edge_peer.publish(f"spBv1.0/{group}/DDATA/{edge}/CNC-7", _ddata(9, T0 + 9000, 99.0),
                              qos=0)
            await until(lambda: f"spBv1.0/{group}/NCMD/{edge}" in edge_peer.topics(),
                        what="rebirth NCMD")
            assert metric_value(node, "millnet_ingest_rejected_total", {"reason": "seq_gap"}) == 1

            # The edge node dies (its will is the NDEATH): every point goes stale.
            edge_peer.drop()
            await until(lambda: node.store.last_values([temp.series_id])[temp.series_id].quality
                        == Quality.STALE, what="stale after NDEATH")
            last = node.store.last_values([temp.series_id])[temp.series_id]
            assert last.value == 25.0  # the last good value is kept, marked stale
            rows = node.store.query_range([temp.series_id], T0 * 10**6, 2**62, limit=100)
            assert 99.0 not in [r.value for r in rows]
            assert rows[-1].value is None  # the stale marker (NaN in the store)
            assert rows[-1].quality == Quality.STALE

    asyncio.run(scenario())


def test_broker_restart_reconnects_and_requests_rebirth(mosquitto: Mosquitto,
                                                        tmp_path: Path) -> None:
    group, edge = "Suzhou", "Machining.L1"

    async def scenario() -> None:
        node = build_node(node_settings(tmp_path, mosquitto.port))
        async with running(node, api=False):
            await until(lambda: connected(node, "sparkplug"), what="connected")
            edge_peer = Peer(mosquitto.port, "edge-r")
            for topic, data in _births(group, edge, 0):
                edge_peer.publish(topic, data, qos=0)
            await until(lambda: stored(node) >= 4, what="births stored")
            edge_peer.close()

            mosquitto.kill()
            await until(lambda: not connected(node, "sparkplug"), what="disconnect noticed")
            mosquitto.start()
            watcher = Peer(mosquitto.port, "watcher", subscribe="spBv1.0/#")
            await until(lambda: connected(node, "sparkplug") and connected(node, "mqtt-json"),
                        limit_s=20, what="reconnected")
            await until(lambda: f"spBv1.0/{group}/NCMD/{edge}" in watcher.topics(),
                        what="rebirth asked after reconnect")
            # JSON ingest works again on the restarted broker.
            before = stored(node)
            watcher.publish("millnet/S/A/L/D", b'{"point":"p","value":1}')
            await until(lambda: stored(node) >= before + 1, what="stored after restart")
            watcher.close()

    asyncio.run(scenario())
