"""Drives an :class:`~millnet.sim.edge.EdgeFleet` over a transport, once per ``interval``.

Two transports: real MQTT (one connection per edge node, its NDEATH registered as the MQTT will,
rebirth on NCMD), or in process, handing messages straight to the node's Sparkplug entry point
when no broker is available.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import aiomqtt

from millnet.aio import keep_cancel
from millnet.connectivity.mqtt import Broker
from millnet.sim.edge import EdgeFleet, EdgeNode

Handle = Callable[[str, bytes, Callable[[str, bytes], Awaitable[None]]], Awaitable[None]]


def _now_ms() -> int:
    return int(time.time() * 1000)


async def _tick(interval: float) -> None:
    await asyncio.sleep(interval - (time.monotonic() % interval))


async def run_fleet_mqtt(fleet: EdgeFleet, broker: Broker, interval: float = 1.0) -> None:
    """Publish the fleet through ``broker`` until cancelled; each edge node reconnects alone."""
    async with asyncio.TaskGroup() as tg:
        for node in fleet.nodes.values():
            tg.create_task(_edge_node(fleet, node, broker, interval))
        tg.create_task(_stepper(fleet, interval))


async def _stepper(fleet: EdgeFleet, interval: float) -> None:
    while True:
        await _tick(interval)
        fleet.step(interval)


async def _edge_node(fleet: EdgeFleet, node: EdgeNode, broker: Broker, interval: float) -> None:
    while True:
        death_topic, death = node.death
        client = aiomqtt.Client(
            broker.host, broker.port, username=broker.username, password=broker.password,
            identifier=f"sim-{node.group}-{node.edge}", clean_session=True,
            will=aiomqtt.Will(death_topic, death, qos=1))
        try:
            async with client:
                await keep_cancel(client.subscribe(f"spBv1.0/{node.group}/NCMD/{node.edge}",
                                                   qos=1))
                await keep_cancel(client.subscribe(f"spBv1.0/{node.group}/DCMD/{node.edge}/+",
                                                   qos=0))
                for topic, payload in fleet.births(node, _now_ms()):
                    await keep_cancel(client.publish(topic, payload))
                async with asyncio.TaskGroup() as tg:
                    tg.create_task(_commands(client, fleet))
                    while True:
                        await _tick(interval)
                        for topic, payload in fleet.data(node, _now_ms()):
                            # aiomqtt waits with 3.11's wait_for, which can swallow the
                            # cancellation that stops the demo (millnet.aio).
                            await keep_cancel(client.publish(topic, payload))
        except asyncio.CancelledError:
            _settle_later(client)
            raise
        except aiomqtt.MqttError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                # Cancelled, and the client's exit failed (a disconnect timing out on a busy
                # machine) with an MqttError in place of the CancelledError: reconnecting here
                # would swallow the cancellation and the demo would never stop.
                _settle_later(client)
                raise asyncio.CancelledError from None
            node.bd_seq = (node.bd_seq + 1) & 0xFF  # a new MQTT session is a new bdSeq
            await asyncio.sleep(1.0)


def _settle_later(client: aiomqtt.Client) -> None:
    """Cancelled while connecting, the client never ran its exit: when its broker goes away
    later, aiomqtt sets the disconnection's error on a future nobody awaits, and asyncio logs
    "Future exception was never retrieved" at exit. Retrieve it when it comes."""
    disconnected = client._disconnected  # aiomqtt keeps it private
    disconnected.add_done_callback(lambda f: f.cancelled() or f.exception())


async def _commands(client: aiomqtt.Client, fleet: EdgeFleet) -> None:
    async for message in client.messages:
        if isinstance(message.payload, bytes):
            for topic, payload in fleet.command(str(message.topic), message.payload, _now_ms()):
                await keep_cancel(client.publish(topic, payload))


async def run_fleet_inprocess(fleet: EdgeFleet, handle: Handle, interval: float = 1.0) -> None:
    """Hand the fleet's messages straight to ``handle`` (the node's Sparkplug entry point)."""

    async def command(topic: str, payload: bytes) -> None:
        for t, p in fleet.command(topic, payload, _now_ms()):
            await handle(t, p, command)

    for topic, payload in fleet.all_births(_now_ms()):
        await handle(topic, payload, command)
    while True:
        await _tick(interval)
        fleet.step(interval)
        for node in fleet.nodes.values():
            for topic, payload in fleet.data(node, _now_ms()):
                await handle(topic, payload, command)
