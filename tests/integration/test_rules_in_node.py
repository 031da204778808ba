"""Rules, alarms and notifications inside a real node: a sample published to a real broker
raises an alarm from a rule file, a signed webhook reaches a real receiver, an operator
acknowledges through the API, and the alarm's state survives a restart of the node."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import httpx

from millnet.node import build_node, running
from millnet.notify.webhook import verify
from tests.servers import Mosquitto
from tests.support.mqttpeer import Peer
from tests.support.nodes import connected, node_settings, until
from tests.support.receiver import Receiver

RULES = """
[[rules]]
name = "press-hot"
kind = "threshold"
point = "temp"
above = 80
deadband = 5
priority = "high"
applies_to = { devices = ["press-*"] }
message = "{device}: {point} {value:.1f} above {limit}"
"""
SECRET = "whsec-node-test"
TOPIC = "millnet/site/area/line/press-7"


def settings_for(tmp_path: Path, port: int, receiver: Receiver) -> Any:
    (tmp_path / "rules.toml").write_text(RULES, encoding="utf-8")
    return node_settings(
        tmp_path, port, rules={"files": [str(tmp_path / "rules.toml")]},
        notify={"targets": [{"name": "ops", "kind": "webhook", "url": receiver.url(),
                             "secret": SECRET, "default": True}]})


def publish(peer: Peer, temp: float) -> None:
    peer.publish(TOPIC, json.dumps({"ts": int(time.time() * 1000),
                                    "values": {"temp": temp}}).encode())


def test_a_sample_raises_a_notified_alarm_that_survives_a_restart(
        mosquitto: Mosquitto, tmp_path: Path) -> None:
    async def scenario() -> None:
        receiver = Receiver()
        await receiver.start()
        peer = Peer(mosquitto.port, "plc")
        try:
            settings = settings_for(tmp_path, mosquitto.port, receiver)
            node = build_node(settings)
            token, _ = node.registry.create_token(node.tenant_id, "operator", "olga")
            auth = {"Authorization": f"Bearer {token}"}
            async with running(node):
                await until(lambda: node.api_port is not None, what="the API")
                await until(lambda: connected(node, "mqtt-json"), what="the JSON source")
                api = f"http://127.0.0.1:{node.api_port}/api/v1"
                async with httpx.AsyncClient(headers=auth) as client:
                    publish(peer, 60.0)  # the device appears: a re-bind covers it
                    await until(lambda: node.insight is not None
                                and node.insight.engine.bindings == 1, what="the binding")
                    publish(peer, 85.5)
                    request = await asyncio.wait_for(receiver.arrived.get(), 10)
                    body = json.loads(request.body)
                    signature = request.headers["x-millnet-signature"]
                    assert verify(SECRET.encode(), request.body, signature)
                    assert body["event"] == "activated" and body["rule_name"] == "press-hot"
                    assert body["message"] == "press-7: temp 85.5 above 80.0"
                    alarms = (await client.get(f"{api}/alarms")).json()
                    assert [a["state"] for a in alarms] == ["unack_active"]
                    alarm_id = alarms[0]["id"]
                    acked = await client.post(f"{api}/alarms/{alarm_id}/acknowledge",
                                              json={"comment": "checking the cooler"})
                    assert acked.status_code == 200, acked.text
                    assert acked.json()["state"] == "acked_active"
                    publish(peer, 77.0)  # inside the deadband: still active
                    await asyncio.sleep(0.3)
            # A new process on the same data: the alarm is still acknowledged and active, and
            # the engine knows the condition holds, so a cool sample clears it.
            node = build_node(settings)
            async with running(node):
                await until(lambda: node.api_port is not None, what="the API")
                await until(lambda: connected(node, "mqtt-json"), what="the JSON source")
                api = f"http://127.0.0.1:{node.api_port}/api/v1"
                async with httpx.AsyncClient(headers=auth) as client:
                    got = (await client.get(f"{api}/alarms/{alarm_id}")).json()
                    assert got["state"] == "acked_active"
                    publish(peer, 70.0)

                    async def state() -> str:
                        reply = await client.get(f"{api}/alarms/{alarm_id}")
                        return str(reply.json()["state"])

                    for _ in range(200):
                        if await state() == "normal":
                            break
                        await asyncio.sleep(0.05)
                    assert await state() == "normal"
                    events = (await client.get(f"{api}/alarms/{alarm_id}/events")).json()
                    names = [e["event"] for e in events]
                    assert "acknowledged" in names and "cleared" in names
        finally:
            peer.close()
            await receiver.close()

    asyncio.run(scenario())
