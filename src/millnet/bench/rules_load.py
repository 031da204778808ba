"""The two peers of ``millnet bench rules``, each in its own process: a Sparkplug B plant that
publishes at a fixed rate and now and then sends a reading that trips an alarm, and a webhook
receiver that notes when each notification arrives."""

from __future__ import annotations

import asyncio
import json
import multiprocessing.connection as mpc
import threading
import time
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from millnet.bench.edge_load import scalar as _scalar
from millnet.protocols import sparkplug_b_pb2 as pb
from millnet.protocols.sparkplug import (
    VALUE_FIELD,
    BirthMetric,
    DataEncoder,
    MessageType,
    SpDataType,
    device_topic,
    encode_dbirth,
    encode_nbirth,
    node_topic,
)
from millnet.sim.factory import FactorySignals, Machine

#: The point a trip reading goes to, by machine kind, and the value it carries (far above any
#: limit of the ordinary rules, which never fire).
TRIP_POINT = {"cnc": "Spindle/Temperature", "press": "Motor/Temperature"}
TRIP_VALUE = 5000.0
SLOT_S = 0.005  # the publisher keeps to its rate in 5 ms slots


@dataclass(frozen=True)
class PlantLoad:
    births_done: float
    first_publish: float
    last_publish: float
    data_points: int
    birth_points: int
    trips: int
    late_slots: int  # slots the publisher could not keep (it fell behind its own schedule)


Device = tuple[tuple[str, str], str, DataEncoder, range, list[int], int]


def _births(client: mqtt.Client, machines: list[Machine], values: npt.NDArray[np.float64],
            ) -> tuple[list[Device], dict[tuple[str, str], int], int]:
    """Publish every edge node's NBIRTH and machine's DBIRTH (waiting until all are through);
    per machine: (edge key, DDATA topic, encoder, its rows of ``values``, types, trip column)."""
    now_ms = int(time.time() * 1000)
    devices: list[Device] = []
    row, seqs = 0, {}
    info = None
    for m in machines:
        edge = f"{m.area}.{m.line}"
        if (m.site, edge) not in seqs:
            seqs[(m.site, edge)] = 0
            info = client.publish(node_topic(m.site, MessageType.NBIRTH, edge),
                                  encode_nbirth([], bd_seq=0, timestamp_ms=now_ms), qos=1)
        pts = m.points
        types = [int(SpDataType[p.datatype.name]) for p in pts]
        seqs[(m.site, edge)] = (seqs[(m.site, edge)] + 1) & 0xFF
        # Aliases are unique within the edge node (Sparkplug B), not within a device.
        births = [BirthMetric(p.name, row + i + 1, types[i], _scalar(types[i], values[row + i]))
                  for i, p in enumerate(pts)]
        info = client.publish(device_topic(m.site, MessageType.DBIRTH, edge, m.name),
                              encode_dbirth(births, seq=seqs[(m.site, edge)],
                                            timestamp_ms=now_ms), qos=1)
        trip = [p.name for p in pts].index(TRIP_POINT[m.kind])
        encoder = DataEncoder([(row + i + 1, types[i]) for i in range(len(pts))])
        devices.append(((m.site, edge), device_topic(m.site, MessageType.DDATA, edge, m.name),
                        encoder, range(row, row + len(pts)), types, trip))
        row += len(pts)
    assert info is not None
    info.wait_for_publish(60)
    return devices, seqs, row


class BatchEncoder:
    """DDATA of ``k`` samples of each of a device's metrics (sample-major, times ascending):
    an edge gateway that acquires at 100 Hz and reports every 100 ms sends this."""

    def __init__(self, metrics: list[tuple[int, int]], k: int) -> None:
        self._payload = pb.Payload(timestamp=0, seq=0)
        self._slots = [(self._payload.metrics.add(alias=alias, timestamp=0, datatype=dtype),
                        VALUE_FIELD[dtype], dtype)
                       for _ in range(k) for alias, dtype in metrics]
        self.width = len(metrics)

    def encode(self, values: npt.NDArray[np.float64], ts_ms: list[int], seq: int) -> bytes:
        p = self._payload
        p.timestamp, p.seq = ts_ms[-1], seq
        flat = values.ravel().tolist()
        for n, (m, fld, dtype) in enumerate(self._slots):
            m.timestamp = ts_ms[n // self.width]
            setattr(m, fld, _scalar(dtype, flat[n]))
        return p.SerializeToString()


def publish_plant(port: int, machines: list[Machine], rate: float, seconds: float,  # noqa: PLR0915
                  trips_per_s: float, go: mpc.Connection, batch_s: float = 0.1) -> PlantLoad:
    """Births, then (when ``go`` says so) DDATA at ``rate`` points/s for ``seconds``: every
    machine reports every ``batch_s`` the samples it took since (at ``rate / points`` Hz per
    point). Every ``1 / trips_per_s`` s one machine's trip point carries :data:`TRIP_VALUE` as
    the last sample of a report, stamped with the time it is published (and its normal value in
    the next report: the alarm clears)."""
    signals = FactorySignals(machines, seed=11)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-rules-plant")
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port)
    client.loop_start()
    devices, seqs, row = _births(client, machines, signals.step(0.0))
    k = max(1, round(rate * batch_s / row))
    spacing = batch_s / k
    encoders = [BatchEncoder([(r + 1, types[i]) for i, r in enumerate(rows)], k)
                for _, _, _, rows, types, _ in devices]
    births_done = time.time()
    go.send(("births", births_done))
    go.recv()  # the node has bound its rules
    ring = np.zeros((k, row))
    ring_ts = [0] * k
    trip_every = 1.0 / trips_per_s if trips_per_s > 0 else float("inf")
    sent = trips = late = steps = 0
    tripped: int | None = None
    target = 0
    info = None
    start = time.time()
    next_trip = start + trip_every
    due = [start + batch_s + d * batch_s / len(devices) for d in range(len(devices))]
    order = 0
    slot = 0
    while True:
        slot += 1
        slot_at = start + slot * SLOT_S
        if slot_at - start > seconds:
            break
        if (delay := slot_at - time.time()) > 0:
            time.sleep(delay)
        elif delay < -SLOT_S:
            late += 1
        now = time.time()
        while start + (steps + 1) * spacing <= now:  # the plant acquires
            steps += 1
            ring[steps % k] = signals.step(spacing)
            ring_ts[steps % k] = int((start + steps * spacing) * 1000)
        newest = steps % k
        sample_order = [(newest + 1 + i) % k for i in range(k)]
        for _ in range(len(devices)):
            d = order
            if due[d] > now:
                break
            order = (order + 1) % len(devices)
            due[d] += batch_s
            key, topic, _, rows, _, trip = devices[d]
            block = ring[sample_order][:, rows.start:rows.stop].copy()
            stamps = [ring_ts[i] for i in sample_order]
            if tripped == d:
                tripped = None
            elif tripped is None and now >= next_trip and d == target:
                block[-1, trip] = TRIP_VALUE
                stamps[-1] = int(time.time() * 1000)
                tripped, trips = d, trips + 1
                next_trip += trip_every
                target = (target + 7) % len(devices)  # every machine in turn (7 is coprime)
            seqs[key] = (seqs[key] + 1) & 0xFF
            info = client.publish(topic, encoders[d].encode(block, stamps, seqs[key]), qos=1)
            sent += block.size
    last = time.time()
    if info is not None:
        info.wait_for_publish(120)
    client.loop_stop()
    client.disconnect()
    result = PlantLoad(births_done, start, last, sent, row, trips, late)
    go.send(("done", result))
    return result


def receive_webhooks(port: int, conn: mpc.Connection) -> None:
    """Answer 200 to every POST on ``port``; on a message from ``conn``, send back what came:
    (time.time_ns() at arrival, JSON body) per request."""
    got: list[tuple[int, dict[str, object]]] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                arrived = time.time_ns()
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                body = await reader.readexactly(length)
                got.append((arrived, json.loads(body)))
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        server = await asyncio.start_server(serve, "127.0.0.1", port)
        conn.send("listening")
        threading.Thread(target=lambda: (conn.recv(), loop.call_soon_threadsafe(stop.set)),
                         daemon=True).start()
        async with server:
            await stop.wait()

    asyncio.run(main())
    conn.send(got)
