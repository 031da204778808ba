"""Benchmark edge nodes: a separate process publishing Sparkplug B as fast as the broker takes it.

Values come from the simulated plant's signal models (so they compress like sensor data, not
like random noise), regrouped into devices of ``metrics_per_message`` metrics. Publishing is
QoS 1 by default, so that nothing is lost between publisher, broker and node: the end-to-end rate
is then set by the slowest stage, which is what the benchmark measures. With QoS 0 (what
Sparkplug prescribes) nothing paces the publisher; the node's client queue absorbs the excess.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from millnet.protocols.sparkplug import (
    BirthMetric,
    DataEncoder,
    MessageType,
    SpDataType,
    device_topic,
    encode_dbirth,
    encode_nbirth,
    node_topic,
)
from millnet.sim.factory import FactorySignals, plant_layout


@dataclass(frozen=True)
class LoadResult:
    first_publish: float  # time.time() of the first message
    data_points: int
    birth_points: int
    messages: int


def publish_load(port: int, index: int, devices: int, metrics_per_message: int,
                 data_points: int, qos: int = 1) -> LoadResult:
    """Publish births, then DDATA until at least ``data_points`` metrics went out."""
    points = devices * metrics_per_message
    machines = plant_layout(sites=1, lines_per_site=1, machines_per_line=math.ceil(points / 17))
    signals = FactorySignals(machines, seed=index)
    defs = [p for m in machines for p in m.points][:points]
    types = [int(SpDataType[p.datatype.name]) for p in defs]
    group, edge = "Bench", f"Load.P{index}"
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{index}")
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port)
    client.loop_start()
    start_ms = int(time.time() * 1000) - 86_400_000  # a day of history ending now
    values = signals.step(0.0)
    seq = 0
    info = client.publish(node_topic(group, MessageType.NBIRTH, edge),
                          encode_nbirth([], bd_seq=0, timestamp_ms=start_ms), qos=1)
    encoders = []
    for d in range(devices):
        rows = range(d * metrics_per_message, (d + 1) * metrics_per_message)
        aliases = [r + 1 for r in rows]
        seq = (seq + 1) & 0xFF
        births = [BirthMetric(f"{defs[r].name}#{r}", r + 1, types[r], scalar(types[r], values[r]))
                  for r in rows]
        info = client.publish(device_topic(group, MessageType.DBIRTH, edge, f"D{d:04d}"),
                       encode_dbirth(births, seq=seq, timestamp_ms=start_ms), qos=1)
        encoders.append((f"D{d:04d}", rows, DataEncoder(list(zip(aliases,
                                                                 [types[r] for r in rows],
                                                                 strict=True)))))
    # The DDATA are encoded before the clock starts: the load generator's own encoding is not
    # the node's work, and on two shared cores it took a third of a core from the node.
    data: list[tuple[str, bytes]] = []
    sent, tick = 0, 0
    while sent < data_points:
        tick += 1
        values = signals.step(1.0)
        ts = start_ms + tick * 1000
        for device, rows, encoder in encoders:
            seq = (seq + 1) & 0xFF
            row_values = [scalar(types[r], values[r]) for r in rows]
            data.append((device_topic(group, MessageType.DDATA, edge, device),
                         encoder.encode(row_values, seq=seq, timestamp_ms=ts)))
            sent += len(rows)
    info.wait_for_publish(120)  # the births are through before the clock starts
    first = time.time()
    for topic, payload in data:
        info = client.publish(topic, payload, qos=qos)
    messages = 1 + devices + len(data)
    if qos:
        info.wait_for_publish(120)
    else:  # QoS 0 has no acknowledgement: a QoS 1 marker flushes everything before it
        client.publish(f"bench/{index}/done", b"", qos=1).wait_for_publish(120)
    client.loop_stop()
    client.disconnect()
    return LoadResult(first, sent, 2 + points, messages)


def scalar(datatype: int, value: float) -> float | int | bool:
    if datatype in (SpDataType.INT32, SpDataType.INT64):
        return int(value)
    if datatype == SpDataType.BOOLEAN:
        return bool(value)
    return float(value)
