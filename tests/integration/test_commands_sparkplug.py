"""Sparkplug write-back through a real node's API and a real Mosquitto: the simulated edge node
applies a DCMD to its writable metric and the next DDATA confirms it; an edge node that never
reports back times out (audited), and its DCMD/NCMD carry the birth's name, alias and datatype
with QoS 0; a metric the birth does not mark writable is refused."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiomqtt
import httpx
import pytest

from millnet.connectivity.broker import Mosquitto
from millnet.connectivity.mqtt import Broker
from millnet.connectivity.sparkplug_write import BirthMetric, allowed, coerce, encode_command
from millnet.connectivity.specs import parse_device
from millnet.node import build_node, running
from millnet.protocols import sparkplug as sp
from millnet.sim.edge import EdgeFleet
from millnet.sim.factory import FactorySignals, plant_layout
from millnet.sim.publisher import run_fleet_mqtt
from tests.integration.test_sources_api import bearer
from tests.support.nodes import node_settings, until

SIM = "Suzhou/Machining/L1/CNC-101"
SILENT_GROUP, SILENT_EDGE = "Suzhou", "Silent.L9"
SILENT = f"{SILENT_GROUP}/Silent/L9/press-9"
SILENT_NODE = f"{SILENT_GROUP}/Silent/L9/{SILENT_EDGE}"


async def silent_edge(broker: Mosquitto, received: list[aiomqtt.Message],
                      ready: asyncio.Event) -> None:
    """An edge node that announces writable metrics, then never reports again."""
    ts = int(time.time() * 1000)
    async with aiomqtt.Client("127.0.0.1", broker.port, identifier="silent-edge") as client:
        await client.subscribe(f"spBv1.0/{SILENT_GROUP}/NCMD/{SILENT_EDGE}", qos=1)
        await client.subscribe(f"spBv1.0/{SILENT_GROUP}/DCMD/{SILENT_EDGE}/+", qos=1)
        node_metric = sp.BirthMetric("Mode", 7, sp.SpDataType.INT32, 1, {"Writable": True})
        await client.publish(
            sp.node_topic(SILENT_GROUP, sp.MessageType.NBIRTH, SILENT_EDGE),
            sp.encode_nbirth([node_metric], bd_seq=0, timestamp_ms=ts))
        metrics = [sp.BirthMetric("Setpoint", 1, sp.SpDataType.DOUBLE, 10.0, {"writable": True}),
                   sp.BirthMetric("Pressure", 2, sp.SpDataType.FLOAT, 3.5,
                                  {"Writable": "true"})]
        await client.publish(
            sp.device_topic(SILENT_GROUP, sp.MessageType.DBIRTH, SILENT_EDGE, "press-9"),
            sp.encode_dbirth(metrics, seq=1, timestamp_ms=ts))
        ready.set()
        async for message in client.messages:
            received.append(message)


def test_sparkplug_writes_confirmed_and_timed_out(mosquitto: Mosquitto, tmp_path: Path) -> None:
    asyncio.run(_scenario(mosquitto, tmp_path))


async def _scenario(broker: Mosquitto, tmp_path: Path) -> None:
    node = build_node(node_settings(tmp_path, broker.port))
    fleet = EdgeFleet(FactorySignals(plant_layout(1, 1, 1)))
    received: list[aiomqtt.Message] = []
    ready = asyncio.Event()
    async with running(node) as live, asyncio.TaskGroup() as tg:
        tasks = [tg.create_task(run_fleet_mqtt(fleet, Broker("127.0.0.1", broker.port), 0.2))]
        await until(lambda: live.sparkplug is not None and live.sparkplug.connected.is_set(),
                    what="the Sparkplug host connected")
        tasks.append(tg.create_task(silent_edge(broker, received, ready)))
        spb = live.sparkplug
        assert spb is not None
        await until(lambda: spb.writable(parse_device(SIM), "Feed/Override")
                    and spb.writable(parse_device(SILENT), "Setpoint"), what="both births")
        operator = bearer(node.registry.create_token(node.tenant_id, "operator", "olga")[0])
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{live.api_port}/api/v1",
                                         timeout=20, headers=operator) as api:
                ids = {p.name: p.series_id for p in node.registry.list_points(node.tenant_id)}
                # The old values are stored before writing (the audit records them).
                def stored(name: str) -> bool:
                    return ids[name] in node.store.last_values([ids[name]])

                await until(lambda: stored("Feed/Override") and stored("Setpoint"),
                            what="stored values")

                # The simulated edge node applies the DCMD; its next DDATA confirms it.
                answer = await api.post("/commands", json={
                    "device": SIM, "point": "Feed/Override", "value": 80, "timeout_s": 5})
                done = answer.json()
                assert answer.status_code == 200 and done["result"] == "confirmed", done
                assert done["old_value"] is not None and done["new_value"] == 80
                assert done["source"] == "sparkplug"

                # Not marked writable in the birth (and a string "true" does not count).
                for device, point in ((SIM, "Spindle/Current"), (SILENT, "Pressure")):
                    refused = await api.post("/commands", json={
                        "device": device, "point": point, "value": 1.0})
                    assert refused.status_code == 409, refused.text

                # The silent edge node: the DCMD goes out, nothing confirms it.
                started = time.monotonic()
                answer = await api.post("/commands", json={
                    "device": SILENT, "point": "Setpoint", "value": 12.5, "timeout_s": 0.5})
                late = answer.json()
                assert late["result"] == "timeout", late
                assert 0.5 <= time.monotonic() - started < 3
                assert (late["old_value"], late["new_value"]) == (10.0, 12.5)
                node_cmd = (await api.post("/commands", json={
                    "device": SILENT_NODE, "point": "Mode", "value": 3, "timeout_s": 0.3})).json()
                assert node_cmd["result"] == "timeout", node_cmd
                await until(lambda: len(received) >= 2, what="the DCMD and the NCMD")
                by_kind = {str(m.topic).split("/")[2]: m for m in received}
                dcmd = by_kind["DCMD"]
                assert str(dcmd.topic) == f"spBv1.0/{SILENT_GROUP}/DCMD/{SILENT_EDGE}/press-9"
                assert dcmd.qos == 0 and not dcmd.retain
                assert isinstance(dcmd.payload, bytes)
                (metric,) = sp.decode_payload(dcmd.payload).metrics
                assert (metric.name, metric.alias, metric.datatype, metric.double_value) == (
                    "Setpoint", 1, sp.SpDataType.DOUBLE, 12.5)
                assert isinstance(by_kind["NCMD"].payload, bytes)
                (mode,) = sp.decode_payload(by_kind["NCMD"].payload).metrics
                assert (mode.name, mode.alias, mode.datatype, mode.int_value) == (
                    "Mode", 7, sp.SpDataType.INT32, 3)

                audit = (await api.get("/commands", params={"device": SILENT})).json()
                assert [(c["point"], c["result"]) for c in audit] == [
                    ("Setpoint", "timeout"), ("Pressure", "refused")]
        finally:
            for task in tasks:
                task.cancel()


def test_command_encoding_and_allow_list() -> None:
    metric = BirthMetric("Speed", 4, sp.SpDataType.INT16, writable=False)
    (m,) = sp.decode_payload(encode_command(metric, -2, 1000)).metrics
    assert sp.metric_value(m, m.datatype) == -2.0 and not sp.decode_payload(
        encode_command(metric, 1, 1000)).HasField("seq")
    assert allowed(["Suzhou/*/L1/*/Feed/*"], "Suzhou/Machining/L1/CNC-1/Feed/Override")
    assert not allowed(["Suzhou/*/L1/*/Feed/*"], "Wuxi/Machining/L1/CNC-1/Feed/Override")
    for datatype, bad in ((sp.SpDataType.INT32, 1.5), (sp.SpDataType.BOOLEAN, 2),
                          (sp.SpDataType.STRING, 1), (sp.SpDataType.DOUBLE, "x"),
                          (sp.SpDataType.DOUBLE, float("nan"))):
        with pytest.raises(ValueError):
            coerce(datatype, bad)
