"""The edge node's uplink: drains the :class:`EdgeBuffer` to the upstream broker as Sparkplug B.

One paho client per connection (its network thread does the socket; everything else runs on
the event loop). On connect the edge node publishes NBIRTH and a DBIRTH per device, with the
NDEATH as its MQTT will; it answers ``Node Control/Rebirth``, and, when ``primary_host_id`` is
set, publishes only while that host's retained STATE says online (a host that is away would miss
what the broker accepts for it; the buffer holds the data until it is back).

Order of work in a session: records appended after the session started are **live** (DDATA as
they come, current values); records older than that and not yet delivered are the **backlog**,
replayed in order as historical metrics (``is_historical``) whenever there is no live record to
send, until the cursor catches up. Every message is QoS 1 with at most ``max_inflight`` awaiting
their PUBACK; a record is delivered (and the buffer's cursor persisted) when the broker has
acknowledged all its messages. A record cut by a lost connection is sent again whole, except
for its messages already acknowledged (within one process).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from millnet.connectivity.adapter import Health, HealthState
from millnet.connectivity.edge.buffer import EdgeBuffer
from millnet.connectivity.edge.records import BatchRecord
from millnet.connectivity.edge.session import EdgeSession
from millnet.connectivity.edge.settings import EdgeSection
from millnet.errors import RejectedMessage
from millnet.protocols import sparkplug as sp

log = logging.getLogger("millnet.edge")


class LinkDown(Exception):
    """The connection to the upstream broker ended."""


class EdgeUplink:
    name = "edge-uplink"
    kind = "sparkplug-edge"

    def __init__(self, section: EdgeSection, buffer: EdgeBuffer, state_dir: Path) -> None:
        self.section = section
        self.buffer = buffer
        self._bd_seq_path = state_dir / "bdseq"
        self._health = Health()
        self.session = EdgeSession(section.group_id, section.edge_node_id, 0,
                                   section.metrics_per_message)
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._ready_event = asyncio.Event()
        self._ready: list[int] = []
        self._pending: dict[int, tuple[int, int] | None] = {}  # mid -> (record, part)
        self._remaining: dict[int, int] = {}
        self._acked_parts: dict[int, set[int]] = {}
        self._inflight = 0
        self._down = False
        self._connected = asyncio.Event()
        self._rebirth = False
        self._host_online = not section.primary_host_id
        self._host_epoch = 0
        self.counters = {"live_samples": 0, "replayed_samples": 0, "messages": 0,
                         "records_delivered": 0, "connects": 0}

    # -- health ------------------------------------------------------------------------------------
    def health(self) -> Health:
        status = self.buffer.status()
        h = self._health
        h.counters.update(self.counters)
        h.counters.update(backlog_records=status.records, buffer_bytes=status.bytes,
                          dropped_samples=status.dropped_samples, buffer_full=int(status.full))
        if status.full and h.state is HealthState.UP:
            h.enter(HealthState.DEGRADED, "buffer full: ingest waits for the uplink")
        return h

    # -- the reconnect loop ------------------------------------------------------------------------
    async def run(self) -> None:
        loop = asyncio.get_running_loop()

        def wake() -> None:
            loop.call_soon_threadsafe(self._wake.set)

        self.buffer.on_append = wake
        backoff = 0.2
        while True:
            started = time.monotonic()
            try:
                await self._connection(loop)
            except (LinkDown, OSError) as exc:
                self._health.enter(HealthState.DOWN, f"uplink down: {exc}")
                log.warning("edge uplink to %s:%d down (%s); retrying in %.1fs",
                            self.section.host, self.section.port, exc, backoff)
            if time.monotonic() - started > 10:
                backoff = 0.2
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)

    def _next_bd_seq(self) -> int:
        try:
            bd = (int(self._bd_seq_path.read_text()) + 1) % 256
        except (FileNotFoundError, ValueError):
            bd = 0
        self._bd_seq_path.write_text(str(bd))
        return bd

    def _client(self, loop: asyncio.AbstractEventLoop) -> paho.Client:
        s = self.section
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id=s.resolved_client_id(),
                             clean_session=True, protocol=paho.MQTTv311,
                             reconnect_on_failure=False)
        client.max_inflight_messages_set(s.max_inflight)
        client.max_queued_messages_set(0)
        topic, payload = self.session.death()
        client.will_set(topic, payload, qos=1)
        if s.username is not None:
            client.username_pw_set(s.username, s.password.get_secret_value()
                                   if s.password is not None else None)
        if s.tls:
            client.tls_set(ca_certs=str(s.ca_file) if s.ca_file else None,
                           cert_reqs=ssl.CERT_REQUIRED)

        def soon(fn: Any, *args: Any) -> None:
            with contextlib.suppress(RuntimeError):  # the loop closed under paho's thread
                loop.call_soon_threadsafe(fn, *args)

        client.on_connect = lambda c, u, f, rc, p: soon(self._on_connect, rc)
        client.on_disconnect = lambda c, u, f, rc, p: soon(self._on_down, str(rc))
        client.on_publish = lambda c, u, mid, rc, p: soon(self._on_ack, mid)
        client.on_message = lambda c, u, m: soon(self._on_message, m.topic, bytes(m.payload))
        return client

    async def _connection(self, loop: asyncio.AbstractEventLoop) -> None:
        s = self.section
        self.session.bd_seq = await asyncio.to_thread(self._next_bd_seq)
        self._down, self._inflight = False, 0
        self._pending.clear()
        self._remaining.clear()
        self._connected.clear()
        self._host_online = not s.primary_host_id
        client = self._client(loop)
        client.connect_async(s.host, s.port, s.keepalive)
        client.loop_start()
        try:
            await self._wait(self._connected, timeout=max(10.0, s.keepalive))
            ncmd = sp.node_topic(s.group_id, sp.MessageType.NCMD, s.edge_node_id)
            client.subscribe(ncmd, qos=1)
            if s.primary_host_id:
                client.subscribe(sp.state_topic(s.primary_host_id), qos=1)
            self.counters["connects"] += 1
            log.info("edge uplink connected to %s:%d as %s/%s (bdSeq %d)", s.host, s.port,
                     s.group_id, s.edge_node_id, self.session.bd_seq)
            async with asyncio.TaskGroup() as tg:
                deliverer = tg.create_task(self._deliver_forever())
                try:
                    await self._send_forever(client)
                finally:
                    deliverer.cancel()
        except BaseExceptionGroup as failed:
            errors = [e for e in failed.exceptions if not isinstance(e, asyncio.CancelledError)]
            if errors and isinstance(errors[0], Exception):
                raise errors[0] from None
            raise
        finally:
            client.disconnect()
            await asyncio.to_thread(client.loop_stop)
            await self._flush()

    # -- paho's callbacks, on the loop ---------------------------------------------------------
    def _on_connect(self, rc: Any) -> None:
        if rc.is_failure:
            self._on_down(f"refused: {rc}")
        else:
            self._connected.set()

    def _on_down(self, why: str) -> None:
        self._down = True
        self._down_reason = why
        self._wake.set()
        self._room.set()
        self._connected.set()

    def _on_ack(self, mid: int) -> None:
        if mid not in self._pending:
            return
        key = self._pending.pop(mid)
        self._inflight -= 1
        self._room.set()
        if key is None:
            return
        seq, part = key
        self._acked_parts.setdefault(seq, set()).add(part)
        left = self._remaining[seq] = self._remaining.get(seq, 1) - 1
        if left <= 0:
            self._remaining.pop(seq, None)
            self._ready.append(seq)
            self._ready_event.set()

    def _on_message(self, topic: str, payload: bytes) -> None:
        if topic.startswith(f"{sp.NAMESPACE}/STATE/"):
            try:
                online, _ = sp.parse_state_payload(payload)
            except RejectedMessage as exc:
                log.warning("edge uplink: bad STATE from %s: %s", topic, exc)
                return
            if online and not self._host_online:
                self._host_epoch += 1
                log.info("edge uplink: primary host online")
            elif not online and self._host_online:
                log.warning("edge uplink: primary host offline; buffering")
            self._host_online = online
        else:
            try:
                p = sp.decode_payload(payload)
            except RejectedMessage:
                return
            if any(m.name == sp.REBIRTH_METRIC and m.boolean_value for m in p.metrics):
                self._rebirth = True
        self._wake.set()

    # -- sending -------------------------------------------------------------------------------
    async def _wait(self, event: asyncio.Event, timeout: float | None = None) -> None:
        try:
            async with asyncio.timeout(timeout):
                await event.wait()
        except TimeoutError:
            raise LinkDown("no answer from the broker") from None
        if self._down:
            raise LinkDown(getattr(self, "_down_reason", "disconnected"))

    async def _publish(self, client: paho.Client, topic: str, payload: bytes,
                       key: tuple[int, int] | None) -> None:
        while self._inflight >= self.section.max_inflight and not self._down:
            self._room.clear()
            await self._room.wait()
        if self._down:
            raise LinkDown(getattr(self, "_down_reason", "disconnected"))
        info = client.publish(topic, payload, qos=1)
        if info.rc != paho.MQTT_ERR_SUCCESS:
            raise LinkDown(f"publish: {paho.error_string(info.rc)}")
        self._pending[info.mid] = key
        self._inflight += 1
        self.counters["messages"] += 1

    async def _births(self, client: paho.Client) -> None:
        now = int(time.time() * 1000)
        buf = self.buffer
        for topic, payload in self.session.births(buf.names, buf.delivered_current, now):
            await self._publish(client, topic, payload, None)

    async def _send_forever(self, client: paho.Client) -> None:
        epoch = -1
        live_from = live_next = replay_next = 0
        while True:
            if self._down:
                raise LinkDown(getattr(self, "_down_reason", "disconnected"))
            if not self._host_online:
                self._health.enter(HealthState.DEGRADED, "primary host offline: buffering")
                self._wake.clear()
                await self._wait(self._wake)
                continue
            if epoch != self._host_epoch or self._rebirth:
                if epoch != self._host_epoch:  # a new host session: what is older is backlog
                    epoch = self._host_epoch
                    live_from = live_next = self.buffer.head
                    replay_next = 0
                self._rebirth = False
                await self._births(client)
                self._health.enter(HealthState.UP, "")
            self._wake.clear()
            seqs = self.buffer.undelivered(live_next, self.buffer.head, 1)
            historical = False
            if seqs:
                live_next = seqs[0] + 1
            else:
                seqs = self.buffer.undelivered(replay_next, live_from, 1)
                if not seqs:
                    await self._wait(self._wake)
                    continue
                replay_next, historical = seqs[0] + 1, True
            record = await asyncio.to_thread(self.buffer.read, seqs[0])
            if record is not None:
                await self._send_record(client, seqs[0], record, historical or not record.live)

    async def _send_record(self, client: paho.Client, seq: int, record: BatchRecord,
                           historical: bool) -> None:
        names, session = self.buffer.names, self.session
        sids = set(record.batch.series_id.tolist()) | {t.series_id for t in record.text}
        now = int(time.time() * 1000)
        if not sids <= session.born:
            for topic, payload in session.device_births(sorted(sids), names,
                                                        self.buffer.delivered_current, now):
                await self._publish(client, topic, payload, None)
        plan = session.plan(record, names)
        acked = self._acked_parts.get(seq, set())
        todo = [(i, part) for i, part in enumerate(plan) if i not in acked]
        if not todo:
            self._ready.append(seq)
            self._ready_event.set()
            return
        self._remaining[seq] = len(todo)
        for i, part in todo:
            topic, payload = session.data(record, names, part, historical=historical, now_ms=now,
                                          current=self.buffer.current)
            await self._publish(client, topic, payload, (seq, i))
            self.counters["replayed_samples" if historical else "live_samples"] += \
                len(part[1]) + len(part[2])

    # -- delivery ------------------------------------------------------------------------------
    async def _deliver_forever(self) -> None:
        while True:
            await self._ready_event.wait()
            await self._flush()

    async def _flush(self) -> None:
        self._ready_event.clear()
        if not self._ready:
            return
        seqs, self._ready = self._ready, []
        await asyncio.to_thread(self.buffer.delivered, seqs)
        for seq in seqs:
            self._acked_parts.pop(seq, None)
        self.counters["records_delivered"] += len(seqs)
