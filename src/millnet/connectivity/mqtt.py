"""Shared MQTT plumbing: client construction, the reconnect loop, and late acknowledgement.

aiomqtt 2.x has no public manual acknowledgement (its issue #345); paho-mqtt 2.x, which it
wraps, does. We reach paho through ``client._client`` in exactly two places here and nowhere else.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from millnet.config import MqttSection
from millnet.errors import StorageError
from millnet.ingest.binder import SeriesBinder
from millnet.ingest.metrics import IngestMetrics
from millnet.ingest.pipeline import IngestPipeline

log = logging.getLogger("millnet.mqtt")

# Messages the broker may send before we acknowledge (MQTT 5 Receive Maximum). The pipeline
# seals a batch before this many acknowledgements are pending, so the broker never stalls.
RECEIVE_MAXIMUM = 10_000
# Messages queued in the client beyond this many are dropped by aiomqtt (counted by us). QoS 1
# never gets there (Receive Maximum is lower); a QoS 0 flood does, as QoS 0 allows.
MAX_QUEUED_INCOMING = 2 * RECEIVE_MAXIMUM


@dataclass(frozen=True)
class Broker:
    host: str
    port: int
    username: str | None = None
    password: str | None = None
    keepalive: int = 30

    @staticmethod
    def from_settings(mqtt: MqttSection) -> Broker:
        secret = mqtt.password.get_secret_value() if mqtt.password else None
        return Broker(mqtt.host, mqtt.port, mqtt.username, secret, mqtt.keepalive)

    def __repr__(self) -> str:  # never show the password
        return f"Broker({self.host}:{self.port}, user={self.username!r})"


def _counting_queue(on_drop: Callable[[], None]) -> type[asyncio.Queue[aiomqtt.Message]]:
    """aiomqtt's incoming queue class, bounded, reporting every message it has to drop."""

    class CountingQueue(asyncio.Queue[aiomqtt.Message]):
        def put_nowait(self, item: aiomqtt.Message) -> None:
            try:
                super().put_nowait(item)
            except asyncio.QueueFull:
                on_drop()
                raise

    return CountingQueue


def make_client(
    broker: Broker, client_id: str, *, persistent: bool, on_drop: Callable[[], None],
    will: aiomqtt.Will | None = None,
) -> aiomqtt.Client:
    """A MQTT 5 client that acknowledges QoS 1 messages only through :func:`acknowledger`.

    ``persistent``: the broker keeps the session (subscriptions and unacknowledged QoS 1
    messages) for an hour across disconnects; otherwise every connection starts clean."""
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.ReceiveMaximum = RECEIVE_MAXIMUM
    props.SessionExpiryInterval = 3600 if persistent else 0
    client = aiomqtt.Client(
        broker.host, broker.port, username=broker.username, password=broker.password,
        identifier=client_id, protocol=aiomqtt.ProtocolVersion.V5, keepalive=broker.keepalive,
        clean_start=not persistent, properties=props, will=will,
        queue_type=_counting_queue(on_drop),
        max_queued_incoming_messages=MAX_QUEUED_INCOMING,
    )
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
        self, settings: MqttSection, max_payload: int, pipeline: IngestPipeline,
        binder: SeriesBinder, metrics: IngestMetrics,
    ) -> None:
        self._settings = settings
        self._broker = Broker.from_settings(settings)
        self._max_payload = max_payload
        self._pipeline = pipeline
        self._binder = binder
        self._metrics = metrics
        self.connected = asyncio.Event()

    def _dropped(self) -> None:
        self._metrics.reject("overload", f"{self.name}: MQTT client queue full, message dropped")


OnConnect = Callable[[aiomqtt.Client], Awaitable[None]]
OnMessage = Callable[[aiomqtt.Client, aiomqtt.Message], Awaitable[None]]


async def run_forever(
    name: str, connect: Callable[[], aiomqtt.Client], subscriptions: Sequence[tuple[str, int]],
    on_connect: OnConnect, on_message: OnMessage, before_read: Callable[[], Awaitable[None]],
    metrics: IngestMetrics, connected: asyncio.Event,
) -> None:
    """Connect, subscribe, hand every message to ``on_message``; reconnect with backoff.

    ``on_message`` turns bad messages into counted rejections itself; what reaches this loop is
    a lost connection or a store that cannot take a valid message (:class:`StorageError`). Both
    end the connection without acknowledging what is not stored: after the backoff the broker
    redelivers it (persistent session) or the edge nodes are asked to rebirth (Sparkplug)."""
    backoff = 0.2
    while True:
        try:
            async with connect() as client:
                for topic, qos in subscriptions:
                    await client.subscribe(topic, qos=qos)
                await on_connect(client)
                log.info("%s: connected and subscribed", name)
                metrics.connected.labels(name).set(1)
                connected.set()
                async for message in client.messages:
                    await before_read()
                    await on_message(client, message)
                    backoff = 0.2  # reset only once a message went through
        except (aiomqtt.MqttError, StorageError) as exc:
            metrics.connected.labels(name).set(0)
            connected.clear()
            what = "MQTT connection lost" if isinstance(exc, aiomqtt.MqttError) else "store failed"
            log.warning("%s: %s (%s); reconnecting in %.1fs", name, what, exc, backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)
