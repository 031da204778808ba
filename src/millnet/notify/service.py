"""The notifier: routes alarm notices to targets, delivers them at once, retries from the outbox.

``submit`` (on the event loop, from the alarm service) routes each notice and hands one delivery
per target to that target's :class:`~millnet.notify.worker.Worker`, which sends it right away:
the first attempt never waits for the database. What happens is journaled and written to the
outbox by one writer task in batches (a thread; rows before their outcomes), so after a crash or
a restart the pending rows are read back and sent (at least once: a notice delivered just before
a crash, whose outcome was not written yet, is sent again with the same delivery id).

On cancellation the workers stop, in-flight attempts are abandoned (their rows stay pending) and
the journal is written out before :meth:`Notifier.run` returns.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from millnet.errors import StorageError
from millnet.model.alarms import AlarmNotice
from millnet.notify.base import Sender
from millnet.notify.mqtt import MqttSender
from millnet.notify.outbox import NewRow, Op, OutboxStore, Outcome, PendingRow
from millnet.notify.router import route
from millnet.notify.settings import AnyTarget, MqttTarget, NotifySection, SmtpTarget
from millnet.notify.smtp import SmtpSender
from millnet.notify.webhook import WebhookSender
from millnet.notify.worker import Delivery, Worker

log = logging.getLogger("millnet.notify")

PRUNE_EVERY_S = 3600.0
WRITE_RETRY_S = 1.0


def build_sender(target: AnyTarget) -> Sender:
    """The sender of a configured target."""
    if isinstance(target, SmtpTarget):
        return SmtpSender(target)
    if isinstance(target, MqttTarget):
        return MqttSender(target)
    return WebhookSender(target)


@dataclass(frozen=True, slots=True)
class TargetStatus:
    """One target as the API and the metrics show it (no secrets)."""

    name: str
    kind: str
    destination: str  # scheme://host:port only
    events: tuple[str, ...]
    min_priority: str
    default: bool
    delivered: int
    failed: int
    dropped: int
    retried: int
    pending: int
    in_flight: int
    consecutive_failures: int
    last_error: str | None
    last_error_at: float | None
    last_success_at: float | None


class Notifier:
    """Deliver :class:`AlarmNotice` records to the targets of ``settings``.

    ``on_outcome(target, notice, outcome)`` is called on the loop after each attempt's outcome
    ("delivered", "retry", "failed") and for each notice dropped from a full outbox ("dropped"):
    for latency figures and tests; it must not block."""

    def __init__(self, store: OutboxStore, settings: NotifySection, *,
                 sender_factory: Callable[[AnyTarget], Sender] = build_sender,
                 on_outcome: Callable[[str, AlarmNotice, str], None] | None = None,
                 rng: random.Random | None = None) -> None:
        self._store = store
        self._settings = settings
        self._journal: list[Op] = []
        self._journal_ready = asyncio.Event()
        self._writing: tuple[asyncio.Future[None], list[Op]] | None = None
        self._unknown: Counter[str] = Counter()
        self._workers: dict[str, Worker] = {}
        rng = rng or random.Random()  # noqa: S311 - retry jitter, not cryptography
        for target in settings.targets:
            self._workers[target.name] = Worker(
                target.name, sender_factory(target), settings.retry_of(target),
                target.concurrency, settings.max_pending_per_target, settings.when_full,
                self._record, on_outcome,
                random.Random(rng.random()))  # noqa: S311 - retry jitter

    @property
    def unknown_targets(self) -> Mapping[str, int]:
        """Names that rules gave and no target has, with how many notices named them."""
        return dict(self._unknown)

    def submit(self, notices: Sequence[AlarmNotice]) -> None:
        """Route ``notices`` and start delivering them; returns at once (call it on the loop)."""
        now, wall = time.monotonic(), datetime.now(UTC)
        for notice in notices:
            routed = route(notice, self._settings.targets)
            for name in routed.unknown:
                self._unknown[name] += 1
                if self._unknown[name] == 1:
                    log.warning("rule %s notifies %r, which is no notification target",
                                notice.rule_name, name)
            for name in routed.targets:
                delivery = Delivery(str(uuid.uuid4()), notice, now, now)
                self._record(NewRow(delivery.delivery_id, name, notice, wall))
                self._workers[name].offer(delivery)

    def status(self) -> list[TargetStatus]:
        out = []
        for target in self._settings.targets:
            worker = self._workers[target.name]
            c = worker.counters
            out.append(TargetStatus(
                target.name, target.kind, worker.sender.describe(), tuple(sorted(target.events)),
                target.min_priority.label, target.default, c.delivered, c.failed, c.dropped,
                c.retried, worker.pending, worker.in_flight, c.consecutive_failures,
                c.last_error, c.last_error_at, c.last_success_at))
        return out

    async def run(self) -> None:
        """Resume the outbox's pending rows, then deliver until cancelled."""
        try:
            self._resume(await asyncio.to_thread(self._store.pending))
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(self._write_loop())
                tasks.create_task(self._prune_loop())
                for worker in self._workers.values():
                    tasks.create_task(worker.run())
        finally:
            await self._final_write()
            for worker in self._workers.values():
                await worker.sender.close()

    def _resume(self, rows: Sequence[PendingRow]) -> None:
        now, wall = time.monotonic(), time.time()
        for row in rows:
            worker = self._workers.get(row.target)
            if worker is None:
                self._record(Outcome(row.delivery_id, "failed", row.attempts, datetime.now(UTC),
                                     last_error="the target is no longer configured"))
                continue
            created = now - max(0.0, wall - row.created_at.timestamp())
            due = now + max(0.0, row.next_attempt_at.timestamp() - wall)
            worker.offer(Delivery(row.delivery_id, row.notice, created, due, row.attempts))
        if rows:
            log.info("notifications: %d pending from the outbox resumed", len(rows))

    # The journal and its writer

    def _record(self, op: Op) -> None:
        self._journal.append(op)
        self._journal_ready.set()

    async def _write_loop(self) -> None:
        while True:
            await self._journal_ready.wait()
            self._journal_ready.clear()
            ops, self._journal = self._journal, []
            future = asyncio.ensure_future(asyncio.to_thread(self._store.apply, ops))
            self._writing = (future, ops)
            try:
                # Shielded: a cancelled run still learns whether this batch was written.
                await asyncio.shield(future)
            except StorageError as exc:
                log.error("notification outbox: write failed, retrying: %s", exc)
                self._journal[:0] = ops
                await asyncio.sleep(WRITE_RETRY_S)
                self._journal_ready.set()
            finally:
                if future.done():
                    self._writing = None

    async def _final_write(self) -> None:
        if self._writing is not None:
            future, ops = self._writing
            self._writing = None
            try:
                await future
            except StorageError:
                self._journal[:0] = ops
        ops, self._journal = self._journal, []
        try:
            await asyncio.to_thread(self._store.apply, ops)
        except StorageError as exc:
            log.error("notification outbox: %d changes not written at shutdown: %s",
                      len(ops), exc)

    async def _prune_loop(self) -> None:
        keep = timedelta(days=self._settings.retention_days)
        while True:
            try:
                pruned = await asyncio.to_thread(self._store.prune, datetime.now(UTC) - keep)
            except StorageError as exc:
                log.error("notification outbox: pruning failed: %s", exc)
            else:
                if pruned:
                    log.info("notification outbox: %d finished rows pruned", pruned)
            await asyncio.sleep(PRUNE_EVERY_S)
