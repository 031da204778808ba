"""MQTT notifications against a real Mosquitto (tests/servers.py): the JSON document on the
templated topic, and a broker that dies and comes back (reconnect, then delivered)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiomqtt

from millnet.notify.outbox import OutboxStore
from millnet.notify.settings import NotifySection
from tests.integration.test_notify_webhook import FAST_RETRY, Outcomes, notice, rows, run, running
from tests.servers import Mosquitto


def _bus(port: int, **extra: Any) -> NotifySection:
    target = {"name": "bus", "kind": "mqtt", "host": "127.0.0.1", "port": port,
              "default": True, "topic": "millnet/alarms/{tenant}/{priority}", **extra}
    return NotifySection.model_validate({"targets": [target], "retry": FAST_RETRY})


def test_a_notice_is_published_as_json_on_the_templated_topic(
        tmp_path: Path, mosquitto: Mosquitto) -> None:
    async def scenario(store: OutboxStore) -> None:
        outcomes = Outcomes()
        async with aiomqtt.Client("127.0.0.1", mosquitto.port, identifier="watcher") as watcher:
            await watcher.subscribe("millnet/alarms/#", qos=1)
            async with running(store, _bus(mosquitto.port), outcomes) as notifier:
                notifier.submit([notice(1), notice(2)])
                await outcomes.until("bus", "delivered", 2)
                got = []
                async with asyncio.timeout(10):
                    async for message in watcher.messages:
                        got.append(message)
                        if len(got) == 2:
                            break
        assert {str(m.topic) for m in got} == {"millnet/alarms/1/high"}
        assert not any(m.retain for m in got)
        docs = [json.loads(bytes(m.payload)) for m in got]
        assert [d["alarm_id"] for d in docs] == [11, 12]
        assert {d["delivery_id"] for d in docs} == {r.delivery_id for r in rows(store)}
        assert docs[0]["priority"] == "high" and docs[0]["event"] == "activated"

    run(scenario, tmp_path)


def test_a_broker_that_dies_and_returns_gets_the_notice(
        tmp_path: Path, mosquitto: Mosquitto) -> None:
    async def scenario(store: OutboxStore) -> None:
        outcomes = Outcomes()
        async with running(store, _bus(mosquitto.port), outcomes) as notifier:
            notifier.submit([notice(1)])
            await outcomes.until("bus", "delivered")  # connected
            await asyncio.to_thread(mosquitto.kill)
            notifier.submit([notice(2)])
            await outcomes.until("bus", "retry", 2)
            down = notifier.status()[0]
            await asyncio.to_thread(mosquitto.start)
            await outcomes.until("bus", "delivered", 2)
            up = notifier.status()[0]
        assert down.pending == 1 and down.consecutive_failures >= 2 and down.last_error
        assert (up.delivered, up.pending, up.consecutive_failures) == (2, 0, 0)
        assert [r.status for r in rows(store)] == ["delivered", "delivered"]

    run(scenario, tmp_path)
