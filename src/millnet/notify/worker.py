"""One target's deliveries: a schedule in memory, at most ``concurrency`` attempts at a time.

Each target has its own worker, so a slow or dead target only delays itself. A new notice is
due at once; a failed attempt is due again after an exponential backoff with jitter, until the
retry policy gives up. Every decision is handed to ``journal`` (the outbox) as it is made; the
worker never waits for the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from millnet.model.alarms import AlarmNotice
from millnet.notify.base import DeliveryFailed, Sender
from millnet.notify.outbox import Op, Outcome
from millnet.notify.settings import RetryPolicy

log = logging.getLogger("millnet.notify")


def backoff_delay(attempts: int, policy: RetryPolicy, rand: float) -> float:
    """Seconds to wait after the ``attempts``-th failed attempt (1, 2, ...): the base doubled
    per attempt up to the cap, of which half is fixed and half random (``rand`` in [0, 1]), so
    retries of many notices spread out instead of arriving together."""
    exponent = min(max(attempts, 1) - 1, 60)
    raw = min(policy.backoff_cap_s, policy.backoff_base_s * 2.0 ** exponent)
    return raw / 2 + raw / 2 * rand


@dataclass(slots=True)
class Delivery:
    """One notice to one target, with its retry state (times are time.monotonic())."""

    delivery_id: str
    notice: AlarmNotice
    created: float
    due: float
    attempts: int = 0


@dataclass(slots=True)
class Counters:
    """A target's figures since the node started (the API's and the metrics' source)."""

    delivered: int = 0
    failed: int = 0
    dropped: int = 0
    retried: int = 0
    consecutive_failures: int = 0
    last_error: str | None = None
    last_error_at: float | None = None  # unix seconds
    last_success_at: float | None = None


def _wall(at_monotonic: float) -> datetime:
    return datetime.fromtimestamp(time.time() + at_monotonic - time.monotonic(), UTC)


@dataclass
class Worker:
    name: str
    sender: Sender
    policy: RetryPolicy
    concurrency: int
    max_pending: int
    when_full: Literal["drop_oldest", "drop_new"]
    journal: Callable[[Op], None]
    # Told of every outcome: (target, notice, "delivered" | "retry" | "failed" | "dropped").
    on_outcome: Callable[[str, AlarmNotice, str], None] | None = None
    rng: random.Random = field(default_factory=random.Random)
    counters: Counters = field(default_factory=Counters, init=False)
    _heap: list[tuple[float, int, Delivery]] = field(default_factory=list, init=False)
    _ids: set[str] = field(default_factory=set, init=False)  # waiting or in flight
    _seq: int = field(default=0, init=False)
    _in_flight: int = field(default=0, init=False)
    _wake: asyncio.Event = field(default_factory=asyncio.Event, init=False)

    @property
    def pending(self) -> int:
        """Notifications not yet delivered or given up, in flight included."""
        return len(self._ids)

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def offer(self, delivery: Delivery) -> None:
        """Schedule ``delivery``; when the target already holds ``max_pending``, give up one
        (the oldest waiting or the new one, by ``when_full``)."""
        if delivery.delivery_id in self._ids:
            return
        if len(self._ids) >= self.max_pending:
            victim = self._oldest_waiting() if self.when_full == "drop_oldest" else None
            if victim is None:
                self._drop(delivery)
                return
            self._heap.remove(victim)
            heapq.heapify(self._heap)
            self._ids.discard(victim[2].delivery_id)
            self._drop(victim[2])
        self._push(delivery)

    def _oldest_waiting(self) -> tuple[float, int, Delivery] | None:
        return min(self._heap, key=lambda entry: (entry[2].created, entry[1]), default=None)

    def _drop(self, delivery: Delivery) -> None:
        self.counters.dropped += 1
        if self.counters.dropped == 1 or self.counters.dropped % 1000 == 0:
            log.warning("notification target %s: outbox full (%d pending), %d dropped so far",
                        self.name, self.max_pending, self.counters.dropped)
        self.journal(Outcome(delivery.delivery_id, "failed", delivery.attempts,
                             datetime.now(UTC), last_error="dropped: the outbox was full"))
        self._tell(delivery, "dropped")

    def _push(self, delivery: Delivery) -> None:
        self._seq += 1
        self._ids.add(delivery.delivery_id)
        heapq.heappush(self._heap, (delivery.due, self._seq, delivery))
        self._wake.set()

    async def run(self) -> None:
        """Start due attempts while there is room; wait for the next due time or a wake-up."""
        async with asyncio.TaskGroup() as attempts:
            while True:
                self._wake.clear()
                now = time.monotonic()
                while self._heap and self._in_flight < self.concurrency \
                        and self._heap[0][0] <= now:
                    delivery = heapq.heappop(self._heap)[2]
                    self._in_flight += 1
                    attempts.create_task(self._attempt(delivery))
                timeout = None
                if self._heap and self._in_flight < self.concurrency:
                    timeout = self._heap[0][0] - now
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(timeout):
                        await self._wake.wait()

    async def _attempt(self, delivery: Delivery) -> None:
        delivery.attempts += 1
        try:
            await self.sender.send(delivery.delivery_id, delivery.notice)
        except DeliveryFailed as exc:
            self._failed(delivery, str(exc), exc.permanent)
        except Exception as exc:  # a sender's bug must not stop the target: logged, retried
            log.exception("notification target %s: sender error", self.name)
            self._failed(delivery, f"{type(exc).__name__}: {exc}", permanent=False)
        else:
            self._delivered(delivery)
        finally:
            self._in_flight -= 1
            self._wake.set()

    def _delivered(self, delivery: Delivery) -> None:
        self._ids.discard(delivery.delivery_id)
        c = self.counters
        c.delivered += 1
        c.consecutive_failures = 0
        c.last_success_at = time.time()
        self.journal(Outcome(delivery.delivery_id, "delivered", delivery.attempts,
                             datetime.now(UTC)))
        self._tell(delivery, "delivered")

    def _tell(self, delivery: Delivery, outcome: str) -> None:
        if self.on_outcome is not None:
            self.on_outcome(self.name, delivery.notice, outcome)

    def _failed(self, delivery: Delivery, error: str, permanent: bool) -> None:
        c = self.counters
        c.consecutive_failures += 1
        c.last_error, c.last_error_at = error, time.time()
        now = time.monotonic()
        policy = self.policy
        if permanent or delivery.attempts >= policy.max_attempts \
                or now - delivery.created >= policy.max_age_s:
            why = "permanent" if permanent else f"gave up after {delivery.attempts} attempts"
            self._ids.discard(delivery.delivery_id)
            c.failed += 1
            log.warning("notification target %s: delivery %s failed (%s): %s", self.name,
                        delivery.delivery_id, why, error)
            self.journal(Outcome(delivery.delivery_id, "failed", delivery.attempts,
                                 datetime.now(UTC), last_error=f"{why}: {error}"))
            self._tell(delivery, "failed")
            return
        c.retried += 1
        delivery.due = now + backoff_delay(delivery.attempts, policy, self.rng.random())
        self._ids.discard(delivery.delivery_id)  # _push adds it again
        self._push(delivery)
        self.journal(Outcome(delivery.delivery_id, "pending", delivery.attempts,
                             datetime.now(UTC), next_attempt_at=_wall(delivery.due),
                             last_error=error))
        self._tell(delivery, "retry")
