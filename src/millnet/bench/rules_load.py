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


def _scalar(datatype: int, value: float) -> float | int | bool:
    if datatype in (SpDataType.INT32, SpDataType.INT64):
        return int(value)
    if datatype == SpDataType.BOOLEAN:
        return bool(value)
    return float(value)


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


def publish_plant(port: int, machines: list[Machine], rate: float, seconds: float,  # noqa: PLR0915
                  trips_per_s: float, go: mpc.Connection) -> PlantLoad:
    """Births, then (when ``go`` says so) DDATA at ``rate`` points/s for ``seconds``; every
    ``1 / trips_per_s`` s one machine's trip point carries :data:`TRIP_VALUE` for one message
    (and its normal value in the next)."""
    signals = FactorySignals(machines, seed=11)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-rules-plant")
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port)
    client.loop_start()
    devices, seqs, row = _births(client, machines, signals.step(0.0))
    births_done = time.time()
    go.send(("births", births_done))
    go.recv()  # the node has bound its rules
    per_message = row / len(machines)
    messages_per_slot = rate * SLOT_S / per_message
    trip_every = 1.0 / trips_per_s if trips_per_s > 0 else float("inf")
    sent = trips = late = 0
    credit = 0.0
    d = 0
    tripped: int | None = None
    info = None
    start = time.time()
    next_trip = start + trip_every
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
        values = signals.step(SLOT_S)
        credit += messages_per_slot
        while credit >= 1.0:
            credit -= 1.0
            key, topic, encoder, rows, types, trip = devices[d]
            row_values = [_scalar(types[i], values[r]) for i, r in enumerate(rows)]
            now = time.time()
            if tripped == d:
                tripped = None  # back to normal: the alarm clears
            elif tripped is None and now >= next_trip:
                row_values[trip] = TRIP_VALUE
                tripped, trips = d, trips + 1
                next_trip += trip_every
            seqs[key] = (seqs[key] + 1) & 0xFF
            info = client.publish(topic, encoder.encode(row_values, seq=seqs[key],
                                                        timestamp_ms=int(now * 1000)), qos=1)
            sent += len(rows)
            d = (d + 1) % len(devices)
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
