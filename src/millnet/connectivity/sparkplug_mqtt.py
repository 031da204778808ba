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

Writes (:class:`~millnet.connectivity.adapter.Writable`): DCMD for device metrics, NCMD for node
metrics, confirmed by the device's next report of the value (rules in
:mod:`millnet.connectivity.sparkplug_write`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence

import aiomqtt

from millnet.aio import keep_cancel
from millnet.connectivity.adapter import Health, WriteRequest, WriteResult
from millnet.connectivity.flow import FlowControlledClient
from millnet.connectivity.json_mqtt import mqtt_health
from millnet.connectivity.mqtt import (
    MqttOptions,
    MqttSource,
    acknowledger,
    make_client,
    run_forever,
)
from millnet.connectivity.sparkplug_write import (
    BirthMetric,
    Confirmations,
    Target,
    allowed,
    birth_metrics,
    encode_command,
)
from millnet.errors import RejectedMessage
from millnet.ingest.binder import DevicePath, SeriesBinder
from millnet.ingest.metrics import IngestMetrics
from millnet.ingest.pipeline import IngestPipeline
from millnet.model import PointSpec, Quality
from millnet.protocols.sparkplug import (
    NAMESPACE,
    MessageType,
    Topic,
    device_topic,
    node_topic,
    parse_topic,
    rebirth_payload,
    state_payload,
    state_topic,
)
from millnet.protocols.sparkplug_host import (
    BirthEvent,
    DeviceDeathEvent,
    NodeDeathEvent,
    RebirthRequest,
    Rejected,
    SparkplugHost,
)

MAX_COUNTED_TOPICS = 20_000  # beyond: a topic not yet counted is not counted (a topic spray)
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
        metrics: IngestMetrics, *, writable_points: Sequence[str] = (),
    ) -> None:
        super().__init__(options, pipeline, binder, metrics)
        self.host = SparkplugHost(options.sparkplug_host_id)
        self._edges: set[tuple[str, str]] = set()
        self._online_ts = 0
        self._health = Health()
        #: ``site/area/line/device/point`` patterns writable without a 'Writable' property.
        self.writable_points = tuple(writable_points)
        self._births: dict[DevicePath, tuple[Target, dict[str, BirthMetric]]] = {}
        self._confirmations = Confirmations()
        self._publish: Publish | None = None
        #: ``on_birth(tenant_id, device key, point specs)`` on every NBIRTH/DBIRTH bound (the
        #: security monitor's device fingerprinting), if set.
        self.on_birth: Callable[[int, str, Sequence[PointSpec]], object] | None = None
        #: Messages per topic since the last :meth:`take_message_counts` (the security
        #: monitor's per-device rates): one dict increment per message, bounded in topics.
        self.message_counts: dict[str, int] = {}

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
        async def publish(topic: str, data: bytes) -> None:
            await keep_cancel(client.publish(topic, data, qos=0))

        self._publish = publish
        await keep_cancel(client.publish(state_topic(self._options.sparkplug_host_id),
                                         state_payload(True, self._online_ts), qos=1,
                                         retain=True))
        now_ms = int(time.time() * 1000)
        for group, edge in sorted(self._edges):
            await keep_cancel(client.publish(f"{NAMESPACE}/{group}/NCMD/{edge}",
                                             rebirth_payload(now_ms)))
        if self._edges:
            log.info("asked %d edge nodes to rebirth after (re)connecting", len(self._edges))

    async def _on_message(self, client: aiomqtt.Client, message: aiomqtt.Message) -> None:
        payload = message.payload
        if isinstance(payload, bytes | bytearray):

            async def publish(topic: str, data: bytes) -> None:
                await keep_cancel(client.publish(topic, data))

            arrived = client.arrived_ns if isinstance(client, FlowControlledClient) else None
            await self.handle(str(message.topic), bytes(payload), publish, arrived)
        else:
            self._metrics.reject("malformed", f"{message.topic}: payload is not bytes")
        self._pipeline.add_ack(acknowledger(client, message))

    # -- transport-independent core ----------------------------------------------------------------
    async def handle(self, topic: str, payload: bytes, publish: Publish,
                     arrived_ns: int | None = None) -> None:
        """Process one Sparkplug message (the in-process transport calls this directly) that
        entered the node at ``arrived_ns`` (time.time_ns(); None: now).

        Whatever goes wrong with one message is a counted rejection (``IngestMetrics.rejecting``)
        except a registry outage (:class:`StorageError`), which the caller retries."""
        self._metrics.messages.labels("sparkplug").inc()
        self._health.last_data_at = time.time()
        self._health.count("messages")
        self._publish = publish
        with self._metrics.rejecting(topic[:200]):
            await self._handle(topic, payload, publish, arrived_ns or time.time_ns())
        if self._confirmations:
            self._confirm(topic, payload)

    async def _handle(self, topic: str, payload: bytes, publish: Publish,
                      arrived_ns: int) -> None:
        counts = self.message_counts
        seen = counts.get(topic)
        if seen is not None or len(counts) < MAX_COUNTED_TOPICS:
            counts[topic] = (seen or 0) + 1
        if len(payload) > self._max_payload:
            self._metrics.reject("oversized", f"{topic}: {len(payload)} bytes")
            return
        pipe = self._pipeline
        before = _pending(pipe)
        events = self.host.receive(topic, payload, arrived_ns, pipe.live, pipe.historical)
        pipe.appended(_pending(pipe) - before, arrived_ns)
        for ev in events:
            if isinstance(ev, BirthEvent):
                self._edges.add((ev.group, ev.edge))
                binding = await self._binder.bind(device_path(ev.group, ev.edge, ev.device),
                                                  ev.specs)
                if self.on_birth is not None:  # the security monitor's fingerprints
                    self.on_birth(self._binder.tenant_id,
                                  "/".join(device_path(ev.group, ev.edge, ev.device)), ev.specs)
                for refusal in binding.refused:
                    self._metrics.reject(refusal.reason, f"{topic}: {refusal.detail}")
                # The birth's values already stored (a node restarted, the edge node did not)
                # are not stored again: the store's current values, in memory.
                current = pipe.store.last_values(binding.ids.values())
                held = {sid: v.ts_ns for sid, v in current.items()
                        if v.quality is not Quality.STALE}
                # The await may have sealed the open batch: append to the current one.
                before = _pending(pipe)
                self.host.bind(ev.group, ev.edge, ev.device, binding.ids, pipe.live,
                               pipe.historical, held=held)
                pipe.appended(_pending(pipe) - before)
                self._remember_birth(ev, payload)
            elif isinstance(ev, RebirthRequest):
                log.info("rebirth requested from %s/%s (%s)", ev.group, ev.edge, ev.reason)
                await publish(ev.topic, rebirth_payload(int(time.time() * 1000)))
            elif isinstance(ev, NodeDeathEvent | DeviceDeathEvent):
                pipe.mark_stale(ev.series_ids, ev.ts_ns)
            elif isinstance(ev, Rejected):
                self._metrics.reject(ev.reason, ev.detail, ev.count)

    def take_message_counts(self) -> tuple[int, dict[str, int]]:
        """The tenant and the messages per device (``group/edge[/device]``) since the last
        call; the counting starts again. Topics outside the Sparkplug namespace are left out."""
        taken, self.message_counts = self.message_counts, {}
        by_device: dict[str, int] = {}
        for topic, n in taken.items():
            parts = topic.split("/")
            if len(parts) in (4, 5) and parts[0] == "spBv1.0":
                key = "/".join((parts[1], *parts[3:]))
                by_device[key] = by_device.get(key, 0) + n
        return self._binder.tenant_id, by_device

    # -- writes (Writable) -------------------------------------------------------------------------
    def _remember_birth(self, ev: BirthEvent, payload: bytes) -> None:
        try:
            metrics = birth_metrics(payload)
        except RejectedMessage:
            return
        self._births[device_path(ev.group, ev.edge, ev.device)] = (
            (ev.group, ev.edge, ev.device), metrics)

    def _confirm(self, topic: str, payload: bytes) -> None:
        try:
            t = parse_topic(topic)
        except RejectedMessage:
            return
        if isinstance(t, Topic) and t.kind in _REPORTS:
            self._confirmations.report((t.group, t.edge, t.device), payload)

    def _metric(self, device: DevicePath, point: str) -> tuple[Target, BirthMetric] | None:
        found = self._births.get(device)
        if found is None:
            return None
        target, metrics = found
        metric = metrics.get(point)
        if metric is None or not (metric.writable or allowed(
                self.writable_points, "/".join((*device, point)))):
            return None
        return target, metric

    def writable(self, device: DevicePath, point: str) -> bool:
        return self._metric(device, point) is not None

    async def write(self, request: WriteRequest) -> WriteResult:
        """Publish the DCMD (NCMD) and wait for the device to report the value written."""
        where = f"{'/'.join(request.device)}/{request.point}"
        found = self._metric(request.device, request.point)
        if found is None:
            return WriteResult(False, f"{where}: not a writable metric of a Sparkplug birth")
        target, metric = found
        if not self.host.is_online(*target):
            return WriteResult(False, f"{where}: the edge node or device is offline")
        publish = self._publish
        if publish is None:
            return WriteResult(False, f"{where}: not connected to the broker")
        now_ms = int(time.time() * 1000)
        try:
            payload = encode_command(metric, request.value, now_ms)
        except ValueError as exc:
            return WriteResult(False, f"value: {exc}")
        group, edge, dev = target
        topic = (device_topic(group, MessageType.DCMD, edge, dev) if dev is not None
                 else node_topic(group, MessageType.NCMD, edge))
        waiter = self._confirmations.expect(target, metric, request.value)
        try:
            await publish(topic, payload)
            self._health.count("writes")
            async with asyncio.timeout(request.timeout_s):
                await waiter.done
        except TimeoutError:
            seen = f"; last reported {waiter.last_seen!r}" if waiter.seen else ""
            return WriteResult(False, f"{where}: no report of the value within "
                                      f"{request.timeout_s:g} s{seen}")
        except aiomqtt.MqttError as exc:
            return WriteResult(False, f"{where}: not sent ({exc})")
        finally:
            self._confirmations.forget(target, waiter)
        return WriteResult(True, read_back=waiter.last_seen)


_REPORTS = frozenset((MessageType.NDATA, MessageType.DDATA, MessageType.NBIRTH,
                      MessageType.DBIRTH))


def _pending(pipe: IngestPipeline) -> int:
    return len(pipe.live) + len(pipe.historical)
