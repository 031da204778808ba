"""Sparkplug B 3.0 Primary Host Application over MQTT.

The session rules live in the sans-IO :class:`~millnet.protocols.sparkplug_host.SparkplugHost`;
this module wires it to a broker and to the node:

* hierarchy mapping: group id -> site; edge node id ``<area>.<line>`` -> area and line (an edge
  node id without a dot is both area and line); device id -> device; node-level metrics belong to
  a device named after the edge node itself;
* BIRTH -> the registry creates or updates the device and its points, then the host binds them;
* NDEATH/DDEATH -> the series are marked stale; rebirth requests go out as NCMD;
* the host's ``STATE`` is published retained on connect, with the offline message as MQTT will;
  after a reconnect every edge node heard so far is asked to rebirth (messages may have been
  missed while the connection was down).

Sparkplug requires a host to connect with a clean session; data QoS is whatever edge nodes
publish (Sparkplug prescribes 0). QoS 1 messages are acknowledged after their samples are stored.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

import aiomqtt

from millnet.connectivity.adapter import Health
from millnet.connectivity.flow import FlowControlledClient
from millnet.connectivity.json_mqtt import mqtt_health
from millnet.connectivity.mqtt import (
    MqttOptions,
    MqttSource,
    acknowledger,
    make_client,
    run_forever,
)
from millnet.ingest.binder import DevicePath, SeriesBinder
from millnet.ingest.metrics import IngestMetrics
from millnet.ingest.pipeline import IngestPipeline
from millnet.protocols.sparkplug import NAMESPACE, rebirth_payload, state_payload, state_topic
from millnet.protocols.sparkplug_host import (
    BirthEvent,
    DeviceDeathEvent,
    NodeDeathEvent,
    RebirthRequest,
    Rejected,
    SparkplugHost,
)

log = logging.getLogger("millnet.sparkplug")

Publish = Callable[[str, bytes], Awaitable[None]]


def device_path(group: str, edge: str, device: str | None) -> DevicePath:
    area, _, line = edge.partition(".")
    return group, area, line or area, device if device is not None else edge


class SparkplugSource(MqttSource):
    name = "sparkplug"
    kind = "sparkplug"

    def __init__(
        self, options: MqttOptions, pipeline: IngestPipeline, binder: SeriesBinder,
        metrics: IngestMetrics,
    ) -> None:
        super().__init__(options, pipeline, binder, metrics)
        self.host = SparkplugHost(options.sparkplug_host_id)
        self._edges: set[tuple[str, str]] = set()
        self._online_ts = 0
        self._health = Health()

    def health(self) -> Health:
        return mqtt_health(self._health, self.connected.is_set())

    # -- MQTT wiring -----------------------------------------------------------------------------
    async def run(self) -> None:
        await run_forever(
            self.name, self._connect, [(f"{NAMESPACE}/#", 1)], self._on_connect,
            self._on_message, self._pipeline.wait_capacity,
            self._metrics, self.connected,
        )

    def _connect(self) -> FlowControlledClient:
        # 3.0: the will and the online message carry the same timestamp.
        self._online_ts = int(time.time() * 1000)
        topic = state_topic(self._options.sparkplug_host_id)
        will = aiomqtt.Will(topic, state_payload(False, self._online_ts), qos=1, retain=True)
        return make_client(self._broker, f"{self._options.client_id}-spb", persistent=False,
                           will=will, on_pause=self._paused, protocol=self._options.protocol)

    async def _on_connect(self, client: aiomqtt.Client) -> None:
        await client.publish(state_topic(self._options.sparkplug_host_id),
                             state_payload(True, self._online_ts), qos=1, retain=True)
        now_ms = int(time.time() * 1000)
        for group, edge in sorted(self._edges):
            await client.publish(f"{NAMESPACE}/{group}/NCMD/{edge}", rebirth_payload(now_ms))
        if self._edges:
            log.info("asked %d edge nodes to rebirth after (re)connecting", len(self._edges))

    async def _on_message(self, client: aiomqtt.Client, message: aiomqtt.Message) -> None:
        payload = message.payload
        if isinstance(payload, bytes | bytearray):

            async def publish(topic: str, data: bytes) -> None:
                await client.publish(topic, data)

            await self.handle(str(message.topic), bytes(payload), publish)
        else:
            self._metrics.reject("malformed", f"{message.topic}: payload is not bytes")
        self._pipeline.add_ack(acknowledger(client, message))

    # -- transport-independent core ----------------------------------------------------------------
    async def handle(self, topic: str, payload: bytes, publish: Publish) -> None:
        """Process one Sparkplug message (the in-process transport calls this directly).

        Whatever goes wrong with one message is a counted rejection (``IngestMetrics.rejecting``)
        except a registry outage (:class:`StorageError`), which the caller retries."""
        self._metrics.messages.labels("sparkplug").inc()
        self._health.last_data_at = time.time()
        self._health.count("messages")
        with self._metrics.rejecting(topic[:200]):
            await self._handle(topic, payload, publish)

    async def _handle(self, topic: str, payload: bytes, publish: Publish) -> None:
        if len(payload) > self._max_payload:
            self._metrics.reject("oversized", f"{topic}: {len(payload)} bytes")
            return
        pipe = self._pipeline
        before = _pending(pipe)
        events = self.host.receive(topic, payload, time.time_ns(), pipe.live, pipe.historical)
        pipe.appended(_pending(pipe) - before)
        for ev in events:
            if isinstance(ev, BirthEvent):
                self._edges.add((ev.group, ev.edge))
                binding = await self._binder.bind(device_path(ev.group, ev.edge, ev.device),
                                                  ev.specs)
                for refusal in binding.refused:
                    self._metrics.reject(refusal.reason, f"{topic}: {refusal.detail}")
                # The await may have sealed the open batch: append to the current one.
                before = _pending(pipe)
                self.host.bind(ev.group, ev.edge, ev.device, binding.ids, pipe.live,
                               pipe.historical)
                pipe.appended(_pending(pipe) - before)
            elif isinstance(ev, RebirthRequest):
                log.info("rebirth requested from %s/%s (%s)", ev.group, ev.edge, ev.reason)
                await publish(ev.topic, rebirth_payload(int(time.time() * 1000)))
            elif isinstance(ev, NodeDeathEvent | DeviceDeathEvent):
                pipe.mark_stale(ev.series_ids, ev.ts_ns)
            elif isinstance(ev, Rejected):
                self._metrics.reject(ev.reason, ev.detail, ev.count)


def _pending(pipe: IngestPipeline) -> int:
    return len(pipe.live) + len(pipe.historical)
