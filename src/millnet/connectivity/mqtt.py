"""Shared MQTT plumbing: client construction, the reconnect loop, and late acknowledgement.

aiomqtt 2.x has no public manual acknowledgement (its issue #345); paho-mqtt 2.x, which it
wraps, does. We reach paho through ``client._client`` in exactly two places here and nowhere else.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from millnet.aio import keep_cancel
from millnet.connectivity.flow import FlowControlledClient
from millnet.errors import StorageError
from millnet.ingest.binder import SeriesBinder
from millnet.ingest.metrics import IngestMetrics
from millnet.ingest.pipeline import IngestPipeline

log = logging.getLogger("millnet.mqtt")

# Messages the broker may send before we acknowledge (MQTT 5 Receive Maximum). A hint only:
# brokers do not all honour it, so the client also stops reading its socket when its queue is
# full (connectivity.flow); nothing is dropped for being busy.
RECEIVE_MAXIMUM = 10_000
# The longest the consumer holds the event loop before it lets other tasks run.
CONSUME_SLICE_S = 0.002
# Messages (and payload bytes) queued in the client before it stops reading the socket.
QUEUE_HIGH_WATER = 2_000
QUEUE_HIGH_BYTES = 32 << 20


@dataclass(frozen=True)
class Broker:
    host: str
    port: int
    username: str | None = None
    password: str | None = None
    keepalive: int = 30

    def __repr__(self) -> str:  # never show the password
        return f"Broker({self.host}:{self.port}, user={self.username!r})"


@dataclass(frozen=True)
class MqttOptions:
    """What the MQTT sources need to know (the node builds it from its settings)."""

    broker: Broker
    client_id: str = "millnet-host"
    json_topic_root: str = "millnet"
    qos: int = 1
    sparkplug_host_id: str = "millnet"
    max_payload: int = 1_048_576
    protocol: str = "3.1.1"  # or "5"


def make_client(
    broker: Broker, client_id: str, *, persistent: bool, will: aiomqtt.Will | None = None,
    on_pause: Callable[[int], None] | None = None, protocol: str = "3.1.1",
) -> FlowControlledClient:
    """A MQTT client (``protocol`` "3.1.1" or "5") that acknowledges QoS 1 messages only
    through :func:`acknowledger`.

    ``persistent``: the broker keeps the session (subscriptions and unacknowledged QoS 1
    messages) across disconnects: for an hour with MQTT 5, as long as the broker keeps
    sessions with 3.1.1 (Mosquitto's ``persistent_client_expiration``); otherwise every
    connection starts clean. Either way the broker's own limit of unacknowledged messages in
    flight to one client (Mosquitto's ``max_inflight_messages``, 20 by default; MQTT 5's
    Receive Maximum can only lower it) bounds how many messages one commit can acknowledge:
    raise it on brokers that feed a node (docs/operations.md)."""
    common: dict[str, Any] = {
        "username": broker.username, "password": broker.password, "identifier": client_id,
        "keepalive": broker.keepalive, "will": will, "high_water": QUEUE_HIGH_WATER,
        "high_bytes": QUEUE_HIGH_BYTES, "on_pause": on_pause}
    if protocol == "5":
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.ReceiveMaximum = RECEIVE_MAXIMUM
        props.SessionExpiryInterval = 3600 if persistent else 0
        client = FlowControlledClient(
            broker.host, broker.port, protocol=aiomqtt.ProtocolVersion.V5,
            clean_start=not persistent, properties=props, **common)
    elif protocol == "3.1.1":
        client = FlowControlledClient(
            broker.host, broker.port, protocol=aiomqtt.ProtocolVersion.V311,
            clean_session=not persistent, **common)
    else:
        raise ValueError(f"MQTT protocol {protocol!r}: 3.1.1 or 5")
    client._client.manual_ack_set(True)
    return client


def acknowledger(client: aiomqtt.Client, message: aiomqtt.Message) -> Callable[[], None]:
    """A callback that acknowledges ``message`` (QoS 1) on the connection it came in on."""
    if message.qos == 0:
        return _noop
    paho = client._client
    connection = paho.socket()
    mid, qos = message.mid, message.qos

    def ack() -> None:
        # After a reconnect the broker redelivers unacknowledged messages with new ids; an
        # acknowledgement of an old id on the new connection would acknowledge the wrong message.
        if paho.socket() is connection and connection is not None:
            paho.ack(mid, qos)

    return ack


def _noop() -> None:
    return None


class MqttSource:
    """What every MQTT source holds: its settings, the pipeline it feeds, the series binder,
    the counters, and a ``connected`` event (set while subscribed)."""

    name = "mqtt"

    def __init__(
        self, options: MqttOptions, pipeline: IngestPipeline, binder: SeriesBinder,
        metrics: IngestMetrics,
    ) -> None:
        self._options = options
        self._broker = options.broker
        self._max_payload = options.max_payload
        self._pipeline = pipeline
        self._binder = binder
        self._metrics = metrics
        self.connected = asyncio.Event()

    def _paused(self, queued: int) -> None:
        """The client stopped reading its socket, holding ``queued`` messages."""
        self._metrics.read_pauses.labels(self.name).inc()
        peak = self._metrics.queue_peak.labels(self.name)
        if queued > peak._value.get():
            peak.set(queued)


OnConnect = Callable[[aiomqtt.Client], Awaitable[None]]
OnMessage = Callable[[aiomqtt.Client, aiomqtt.Message], Awaitable[None]]


async def _consume(client: FlowControlledClient, on_message: OnMessage,
                   before_read: Callable[[], Awaitable[None]],
                   went_through: Callable[[], None]) -> None:
    """Hand every message to ``on_message`` until the connection ends (MqttError).

    A queue full of messages would be one long step of this task: it yields to the loop every
    ``CONSUME_SLICE_S`` so the stream taps (rules) and the commits keep their turn."""
    slice_start = time.monotonic()
    async for message in client.incoming():
        await before_read()
        await on_message(client, message)
        went_through()
        if time.monotonic() - slice_start >= CONSUME_SLICE_S:
            await asyncio.sleep(0)
            slice_start = time.monotonic()


def _sole(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The one error that ended a connection's task group (a lost connection ends the
    subscription and the consumer alike: the first is the cause), or the group itself."""
    errors = [e for e in group.exceptions if not isinstance(e, asyncio.CancelledError)]
    return errors[0] if errors and isinstance(errors[0], Exception) else group


async def run_forever(
    name: str, connect: Callable[[], FlowControlledClient],
    subscriptions: Sequence[tuple[str, int]],
    on_connect: OnConnect, on_message: OnMessage, before_read: Callable[[], Awaitable[None]],
    metrics: IngestMetrics, connected: asyncio.Event,
) -> None:
    """Connect, subscribe, hand every message to ``on_message``; reconnect with backoff.

    ``on_message`` turns bad messages into counted rejections itself; what reaches this loop is
    a lost connection or a store that cannot take a valid message (:class:`StorageError`). Both
    end the connection without acknowledging what is not stored: after the backoff the broker
    redelivers it (persistent session) or the edge nodes are asked to rebirth (Sparkplug)."""
    backoff = 0.2

    def went_through() -> None:  # the backoff is reset only once a message went through
        nonlocal backoff
        backoff = 0.2

    while True:
        try:
            async with connect() as client:
                # Flow control holds from the first byte: a persistent session's backlog (or a
                # broker with no in-flight limit) arrives ahead of SUBACK, and MQTT 3.1.1 has
                # no Receive Maximum to bound it. The consumer runs beside the subscription,
                # so that the socket paused for a full queue is read again as it drains.
                client.start_flow_control()
                try:
                    async with asyncio.TaskGroup() as group:
                        group.create_task(_consume(client, on_message, before_read, went_through))
                        for topic, qos in subscriptions:
                            await keep_cancel(client.subscribe(topic, qos=qos))
                        await on_connect(client)
                        log.info("%s: connected and subscribed", name)
                        metrics.connected.labels(name).set(1)
                        connected.set()
                except BaseExceptionGroup as failed:
                    raise _sole(failed) from None
        except (aiomqtt.MqttError, StorageError) as exc:
            metrics.connected.labels(name).set(0)
            connected.clear()
            what = "MQTT connection lost" if isinstance(exc, aiomqtt.MqttError) else "store failed"
            log.warning("%s: %s (%s); reconnecting in %.1fs", name, what, exc, backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)
