"""Plain JSON telemetry over MQTT (topic scheme in :mod:`millnet.protocols.json_telemetry`).

Runs its own MQTT 5 connection with a persistent session and QoS 1, acknowledging each message
only after its samples are committed: a node killed at any moment loses no acknowledged
message; unacknowledged ones are redelivered by the broker when the node comes back (so a sample
can be stored twice after a crash: delivery is at least once).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping

import aiomqtt

from millnet.connectivity.adapter import Health, HealthState
from millnet.connectivity.mqtt import (
    MqttOptions,
    MqttSource,
    acknowledger,
    make_client,
    run_forever,
)
from millnet.errors import RejectedMessage
from millnet.ingest.binder import SeriesBinder
from millnet.ingest.metrics import IngestMetrics
from millnet.ingest.pipeline import IngestPipeline
from millnet.model import DataType, PointSpec, TextSample
from millnet.protocols.json_telemetry import JsonSample, decode_payload, parse_topic


def mqtt_health(health: Health, connected: bool) -> Health:
    """An MQTT source's health: up while subscribed, down (reconnecting) after having been up.
    The state is observed when asked, so ``since`` is when a change was first seen."""
    if connected:
        health.enter(HealthState.UP)
    elif health.state is not HealthState.STARTING:
        health.enter(HealthState.DOWN, "not connected to the broker; reconnecting")
    return health


class JsonMqttSource(MqttSource):
    name = "mqtt-json"
    kind = "mqtt-json"

    def __init__(self, options: MqttOptions, pipeline: IngestPipeline, binder: SeriesBinder,
                 metrics: IngestMetrics) -> None:
        super().__init__(options, pipeline, binder, metrics)
        self._health = Health()

    def health(self) -> Health:
        return mqtt_health(self._health, self.connected.is_set())

    async def run(self) -> None:
        await run_forever(
            self.name,
            lambda: make_client(self._broker, f"{self._options.client_id}-json", persistent=True,
                                on_pause=self._paused, protocol=self._options.protocol),
            [(f"{self._options.json_topic_root}/#", self._options.qos)],
            self._on_connect, self._on_message, self._pipeline.wait_capacity,
            self._metrics, self.connected,
        )

    async def _on_connect(self, client: aiomqtt.Client) -> None:
        return None

    async def _on_message(self, client: aiomqtt.Client, message: aiomqtt.Message) -> None:
        self._metrics.messages.labels("json").inc()
        self._health.last_data_at = time.time()
        self._health.count("messages")
        with self._metrics.rejecting(f"{message.topic}"):
            await self._ingest(str(message.topic), message.payload)
        # Rejected messages are acknowledged too: redelivering garbage would not make it better.
        self._pipeline.add_ack(acknowledger(client, message))

    async def _ingest(self, topic: str, payload: object) -> None:
        if not isinstance(payload, bytes | bytearray):
            raise RejectedMessage("malformed", "payload is not bytes")
        if len(payload) > self._max_payload:
            raise RejectedMessage("oversized", f"{len(payload)} bytes > {self._max_payload}")
        path = parse_topic(topic, self._options.json_topic_root)
        device = (path.site, path.area, path.line, path.device)
        samples = decode_payload(bytes(payload), time.time_ns())
        ids = self._binder.known(device)
        missing = {s.point: s for s in samples if s.point not in ids}
        if missing:
            binding = await self._binder.bind(device, [_spec(s) for s in missing.values()])
            for refusal in binding.refused:
                self._metrics.reject(refusal.reason, f"{topic}: {refusal.detail}")
            ids = {**ids, **binding.ids}
        self._pipeline.appended(append_samples(self._pipeline, ids, samples))


def append_samples(pipeline: IngestPipeline, ids: Mapping[str, int],
                   samples: Iterable[JsonSample]) -> int:
    """Append decoded JSON samples to the open batch (those whose point has a series id: the
    others were refused and counted when bound); returns how many (for ``appended``)."""
    live = pipeline.live
    count = 0
    for s in samples:
        sid = ids.get(s.point)
        if sid is None:
            continue
        if isinstance(s.value, str):
            live.text.append(TextSample(sid, s.ts_ns, s.value, s.quality))
        else:
            live.append(sid, s.ts_ns, s.value, s.quality)
        count += 1
    return count


def _spec(sample: JsonSample) -> PointSpec:
    datatype = DataType.STRING if isinstance(sample.value, str) else DataType.DOUBLE
    return PointSpec(sample.point, datatype, unit=sample.unit)
