"""The security monitor: where every detector reports, and the one writer of security events.

:meth:`SecurityMonitor.report` is called from the event loop and from worker threads (the API's
authenticator runs in its thread pool), so it only folds the event into a bounded dictionary
under a lock: repeats of one (tenant, kind, source, target) add to one entry's count, so a flood
of one kind costs one entry, not a queue slot per repeat. Beyond ``max_pending`` distinct keys a
report is counted and dropped, never waited for; the writer turns the drop count into one
``security.overflow`` event. The writer task (:meth:`run`) wakes on the first report after a
quiet spell, gathers for ``flush_s``, and writes the batch through ``asyncio.to_thread``; a
failed write keeps the batch for the next round. Listeners (the federation's forwarder) get
every row as stored, on the loop: a folded event comes again with its count grown.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import threading
from collections.abc import Awaitable, Callable
from datetime import timedelta

from millnet.errors import StorageError
from millnet.model.security import SecurityEvent, Severity
from millnet.security.auth import AuthFailureDetector
from millnet.security.devices import DeviceFingerprints
from millnet.security.hosts import HostBook
from millnet.security.incidents import IncidentStore
from millnet.security.rates import RateAnomalyDetector
from millnet.security.records import Fold, FoldKey, StoredEvent
from millnet.security.settings import SecuritySettings
from millnet.security.store import SecurityEventStore
from millnet.security.violations import ViolationReporter

log = logging.getLogger("millnet.security")

OVERFLOW_KIND = "security.overflow"
Listener = Callable[[StoredEvent], Awaitable[None] | None]
#: Blocking work the writer runs in its thread before each batch (detectors' durable state).
Flusher = Callable[[], None]


class SecurityMonitor:
    """The writer, and the detectors that report to it: ``auth``, ``devices``, ``rates`` and
    ``violations`` (each fed by its hook; see docs/security-monitoring.md); ``incidents``
    (the operators' incidents) and ``hosts`` (what sensors such as the probe saw)."""

    def __init__(self, store: SecurityEventStore, settings: SecuritySettings) -> None:
        self.store = store
        self.settings = settings
        self._window = timedelta(seconds=settings.dedup_window_s)
        self._pending: dict[FoldKey, Fold] = {}
        self._lock = threading.Lock()
        self._dropped = 0
        self._listeners: list[Listener] = []
        self._flushers: list[Flusher] = []
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self.stats = {"reported": 0, "dropped": 0, "written": 0, "write_failures": 0,
                      "listener_failures": 0, "flusher_failures": 0}
        self.auth = AuthFailureDetector(self, settings)
        self.devices = DeviceFingerprints(self, store)
        self.rates = RateAnomalyDetector(self, settings)
        self.violations = ViolationReporter(self, settings)
        # Incidents share the events' database; sensors' hosts are kept in memory only.
        self.incidents = IncidentStore(store.engine)
        self.hosts = HostBook(settings.max_tracked)
        self.add_flusher(self.violations.flush)
        self.add_flusher(self.devices.flush)

    # -- reporting (any thread) --------------------------------------------------------------
    def report(self, event: SecurityEvent, tenant_id: int | None = None, count: int = 1) -> bool:
        """Queue ``event`` (standing for ``count`` occurrences) for the writer; never blocks.
        False when it was dropped because ``max_pending`` distinct events are waiting."""
        key = (tenant_id, event.kind, event.source, event.target)
        with self._lock:
            self.stats["reported"] += 1
            fold = self._pending.get(key)
            if fold is not None:
                fold.add(event, max(count, 1))
                return True
            if len(self._pending) >= self.settings.max_pending:
                self._dropped += max(count, 1)
                self.stats["dropped"] += 1
                return False
            was_empty = not self._pending
            self._pending[key] = Fold.of(event, tenant_id, max(count, 1))
        if was_empty:
            self._signal()
        return True

    def _signal(self) -> None:
        loop, wake = self._loop, self._wake
        if loop is None or wake is None:
            return  # not running yet: run() looks at what is pending when it starts
        if threading.get_ident() == self._loop_thread:
            wake.set()
            return
        try:
            loop.call_soon_threadsafe(wake.set)
        except RuntimeError:  # the loop closed: the node is stopping, run() wrote what it had
            log.debug("security report after the monitor's loop closed")

    def add_listener(self, fn: Listener) -> None:
        """``fn(stored_event)`` for every row written (sync or async, on the loop)."""
        self._listeners.append(fn)

    def add_flusher(self, fn: Flusher) -> None:
        """``fn()`` in the writer's thread before every batch (blocking work is fine there)."""
        self._flushers.append(fn)

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._pending)

    # -- the writer --------------------------------------------------------------------------
    async def run(self, *, tick_s: float | None = None) -> None:
        """Write reports until cancelled; then write what is left (blocking, once)."""
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._wake = wake = asyncio.Event()
        tick = tick_s if tick_s is not None else self.settings.violation_window_s
        try:
            while True:
                if not self.pending:
                    # A timeout is the periodic round: flushers hold windows that end by time.
                    # (asyncio.timeout, not wait_for: 3.11's wait_for loses a cancellation
                    # that arrives as the event is set, and the node's stop would hang.)
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(tick):
                            await wake.wait()
                wake.clear()
                if self.settings.flush_s:
                    await asyncio.sleep(self.settings.flush_s)  # gather a batch
                await self.flush()
        finally:
            self._loop = self._wake = None
            stored = self._write_batch()
            if stored:
                log.info("security monitor stopped after writing %d last events", len(stored))

    async def flush(self) -> list[StoredEvent]:
        """Run the flushers, write everything pending, tell the listeners; the rows written."""
        stored = await asyncio.to_thread(self._write_batch)
        for event in stored:
            await self._tell(event)
        return stored

    def _write_batch(self) -> list[StoredEvent]:
        for flusher in self._flushers:
            try:
                flusher()
            except StorageError as exc:
                self.stats["flusher_failures"] += 1
                log.warning("security detector state not saved (retried): %s", exc)
        folds = self._drain()
        if not folds:
            return []
        try:
            stored = self.store.record(folds, self._window)
        except StorageError as exc:
            self.stats["write_failures"] += 1
            log.warning("%d security events not written (retried): %s", len(folds), exc)
            self._requeue(folds)
            return []
        self.stats["written"] += len(stored)
        return stored

    def _drain(self) -> list[Fold]:
        with self._lock:
            folds = list(self._pending.values())
            self._pending.clear()
            dropped, self._dropped = self._dropped, 0
        if dropped:
            event = SecurityEvent(
                OVERFLOW_KIND, Severity.MEDIUM,
                f"{dropped} security reports dropped: more distinct events than "
                f"security.max_pending waited for the writer", target="security_monitor",
                detail={"dropped": dropped})
            folds.append(Fold.of(event, None, dropped))
        return folds

    def _requeue(self, folds: list[Fold]) -> None:
        with self._lock:
            for fold in folds:
                held = self._pending.get(fold.key)
                if held is None:
                    self._pending[fold.key] = fold
                else:
                    held.merge(fold)

    async def _tell(self, event: StoredEvent) -> None:
        for listener in self._listeners:
            try:
                result = listener(event)
                if inspect.isawaitable(result):
                    await result
            except Exception:  # one listener's bug must stop neither the writer nor the others
                self.stats["listener_failures"] += 1
                log.exception("security event listener %r failed", listener)
