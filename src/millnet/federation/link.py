"""The child side of a link: the sender loop that drains the upward outbox.

One asyncio task. Each round reads what waits (up to ``batch_max_messages`` /
``batch_max_bytes``), signs it at send time, POSTs it, verifies the parent's signed answer
(pinned key, and ``reply_to`` our nonce, so an old answer cannot be replayed), then in one
transaction deletes what the parent acknowledged and applies the downward messages through the
inbox; their seqs go back as ``ack`` in the next request. Database work runs in a thread.

The loop wakes when something is enqueued (:meth:`ChildLink.wake`, thread-safe) or after
``heartbeat_s``: an empty exchange is the heartbeat and the pull of downward messages. It goes
again at once only when there is more to send or downward messages to acknowledge, and waits
with capped, jittered exponential backoff while the parent is unreachable or refuses.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import httpx
import msgspec
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError

from millnet.db.engine import writer
from millnet.errors import ProtocolError, RejectedMessage, StorageError
from millnet.federation import envelope
from millnet.federation.enroll import ParentPin, pinned_parent
from millnet.federation.identity import NodeIdentity
from millnet.federation.inbox import ApplyResult, Inbox, PeerInfo
from millnet.federation.outbox import Outbox, Pending
from millnet.federation.schema import UP
from millnet.federation.settings import FederationSection
from millnet.protocols.federation import VERSION, Batch, LinkStats, OutBatch, OutMessage

log = logging.getLogger("millnet.federation")
T = TypeVar("T")


def _db(work: Callable[[], T]) -> T:
    """``work()``, database failures as StorageError (the loop retries those)."""
    try:
        return work()
    except DBAPIError as exc:
        raise StorageError(f"federation database: {exc.orig!s}") from exc


class NotEnrolled(ProtocolError):
    """This node has no parent pinned yet."""


@dataclass(slots=True)
class LinkMetrics:
    exchanges: int = 0
    sent: int = 0  # messages sent, resends included
    acked: int = 0  # messages the parent acknowledged (deleted from the outbox)
    received: int = 0  # downward messages applied or rejected
    retries: int = 0
    last_error: str = ""
    last_ok: float = 0.0  # time.time() of the last successful exchange


@dataclass(frozen=True, slots=True)
class _Round:
    pin: ParentPin
    applied_down: int
    pending: list[Pending]
    stats: LinkStats


class ChildLink:
    """Sends the upward outbox to the pinned parent; see the module docstring."""

    def __init__(self, engine: Engine, identity: NodeIdentity, settings: FederationSection,
                 outbox: Outbox, inbox: Inbox,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._engine = engine
        self._writer = writer(engine)
        self.identity = identity
        self.settings = settings
        self.outbox = outbox
        self.inbox = inbox
        self.metrics = LinkMetrics()
        self._transport = transport
        self._loop: asyncio.AbstractEventLoop | None = None
        self._event: asyncio.Event | None = None

    def wake(self) -> None:
        """Ask the loop to send now (from any thread)."""
        loop, event = self._loop, self._event
        if loop is None or event is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(event.set)
        except RuntimeError:  # the loop closed in between
            return

    async def run(self) -> None:
        """Run until cancelled."""
        self._loop = asyncio.get_running_loop()
        self._event = asyncio.Event()
        failures = 0
        timeout = httpx.Timeout(self.settings.request_timeout_s)
        async with httpx.AsyncClient(timeout=timeout, transport=self._transport) as client:
            while True:
                self._event.clear()  # before reading: an enqueue from now on wakes us again
                try:
                    more = await self.exchange(client)
                    failures = 0
                except (httpx.HTTPError, ProtocolError, StorageError) as exc:
                    failures += 1
                    self.metrics.retries += 1
                    self.metrics.last_error = f"{type(exc).__name__}: {exc}"[:500]
                    delay = self._backoff(failures)
                    log.warning("federation link: %s; retrying in %.1f s",
                                self.metrics.last_error, delay)
                    await asyncio.sleep(delay)
                    continue
                if not more:
                    woken = False
                    with contextlib.suppress(TimeoutError):  # the heartbeat is due
                        async with asyncio.timeout(self.settings.heartbeat_s):
                            await self._event.wait()
                        woken = True
                    if woken and self.settings.batch_linger_s > 0:
                        # Let a batch gather: an exchange costs far more than a message, and
                        # producers enqueue a few messages at a time.
                        await asyncio.sleep(self.settings.batch_linger_s)

    def _backoff(self, failures: int) -> float:
        cap = min(self.settings.retry_max_s,
                  self.settings.retry_first_s * 2 ** min(failures - 1, 30))
        return float(cap * random.uniform(0.5, 1.0))  # noqa: S311 - jitter, not a secret

    async def exchange(self, client: httpx.AsyncClient) -> bool:
        """One exchange; whether to go again at once."""
        prep = await asyncio.to_thread(_db, self._prepare)
        nonce = envelope.new_nonce()
        batch = OutBatch(
            v=VERSION, sender=self.identity.node_id, recipient=prep.pin.node_id,
            sent_at=envelope.now_ms(), nonce=nonce, ack=prep.applied_down,
            messages=[OutMessage(p.seq, p.created_at_ms, p.kind, p.origin, msgspec.Raw(p.body))
                      for p in prep.pending],
            stats=prep.stats)
        body = envelope.seal(self.identity, batch)
        response = await client.post(
            prep.pin.url + "/api/v1/federation/exchange", content=body,
            headers={"content-type": "application/octet-stream"})
        if response.status_code != 200:
            raise ProtocolError(f"the parent refused the exchange: HTTP "
                                f"{response.status_code} {response.text[:300]}")
        answer = self._open(response.content, prep.pin, nonce)
        result, acked = await asyncio.to_thread(_db, lambda: self._settle(answer, prep.pin))
        self.inbox.report(result)
        m = self.metrics
        m.exchanges += 1
        m.sent += len(prep.pending)
        m.acked += acked
        m.received += result.applied + len(result.rejected)
        m.last_ok = time.time()
        sent_up_to = prep.pending[-1].seq if prep.pending else 0
        if prep.pending and answer.ack < sent_up_to and acked == 0:
            raise ProtocolError(f"the parent applied nothing of seqs {prep.pending[0].seq}-"
                                f"{sent_up_to} (acked {answer.ack})")
        full = len(prep.pending) >= self.settings.batch_max_messages
        return full or answer.ack < sent_up_to or bool(answer.messages)

    def _open(self, data: bytes, pin: ParentPin, nonce: str) -> Batch:
        def key_of(sender: str) -> bytes | None:
            return pin.public_key if sender == pin.node_id else None
        try:
            answer = envelope.open_sealed(
                data, me=self.identity.node_id, key_of=key_of,
                max_bytes=self.settings.max_request_bytes,
                window_ms=int(self.settings.window_s * 1000))
        except RejectedMessage as exc:
            self.inbox.reject(pin.node_id, exc.reason, f"answer refused: {exc}")
            raise
        if answer.reply_to != nonce:
            self.inbox.reject(pin.node_id, "replay", "answer to another request")
            raise RejectedMessage("replay", "the answer is not to this request")
        return answer

    def _prepare(self) -> _Round:
        with self._engine.begin() as conn:
            pin = pinned_parent(conn)
            if pin is None:
                raise NotEnrolled("not enrolled with a parent: run the enrollment first")
            if self.settings.parent_url:
                pin = ParentPin(pin.node_id, pin.role, pin.public_key,
                                self.settings.parent_url.rstrip("/"))
            applied = Inbox.applied_seq(conn, UP)
            status = self.outbox.read_status(conn)
            pending = self.outbox.read_pending(conn, self.settings.batch_max_messages,
                                               self.settings.batch_max_bytes)
        stats = LinkStats(depth=status.depth, bytes=status.bytes,
                          oldest_age_ms=int(status.oldest_age_s * 1000), refused=status.refused)
        return _Round(pin, applied, pending, stats)

    def _settle(self, answer: Batch, pin: ParentPin) -> tuple[ApplyResult, int]:
        parent = PeerInfo(pin.node_id, pin.role)
        with self._writer.begin() as conn:
            acked = self.outbox.ack(answer.ack, conn)
            result = self._apply(conn, parent, answer)
        return result, acked

    def _apply(self, conn: Connection, parent: PeerInfo, answer: Batch) -> ApplyResult:
        return self.inbox.apply(conn, UP, parent, answer.messages)
