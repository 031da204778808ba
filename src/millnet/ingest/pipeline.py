"""The bounded, batching path from decoders to the telemetry store.

Decoders append samples straight into :attr:`IngestPipeline.live` (current values) or
:attr:`IngestPipeline.historical` (store-and-forward data that must not move current values) and
register an acknowledgement callback for the message they came from. The open batch is sealed
when it holds ``max_samples`` samples, when it is ``max_delay`` old, or when too many messages wait
for their acknowledgement. One writer task commits sealed batches in order, in a worker thread,
and only then runs their acknowledgements: an MQTT QoS 1 message is acknowledged after its
samples are durable.

Memory is bounded: sealed-but-unwritten samples never exceed ``queue_max_samples``; producers
``await wait_capacity()`` before reading more input, which stops reading from the network
(backpressure). A failed write (:class:`StorageError`: the store cannot take it now) is retried
with backoff, never dropped: the batch keeps its place and its acknowledgements wait. A batch the
store *refuses* (any other error: something in it does not fit) is split in halves until the
refused samples are isolated; those are rejected and counted, the rest are stored. Progress is
kept on the batch, so a retry after a failure half way through writes nothing twice.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from millnet.errors import StorageError
from millnet.ingest.metrics import IngestMetrics
from millnet.ingest.tap import SampleTap
from millnet.model import SampleBatch, SampleBuffer, TextSample
from millnet.telemetry.base import TelemetryStore

log = logging.getLogger("millnet.ingest")

Ack = Callable[[], None]


@dataclass
class _Part:
    """Samples to write in one transaction: numeric ``batch`` and ``text`` of one kind."""

    batch: SampleBatch
    text: list[TextSample]
    update_last: bool

    def __len__(self) -> int:
        return len(self.batch) + len(self.text)

    def halves(self) -> tuple[_Part, _Part]:
        """Two non-empty parts holding this one's samples (needs at least two)."""
        if self.text and len(self.batch):
            return (_Part(self.batch, [], self.update_last),
                    _Part(SampleBatch.empty(), self.text, self.update_last))
        if len(self.batch) > 1:
            mid = len(self.batch) // 2
            return (_Part(self.batch.slice(0, mid), [], self.update_last),
                    _Part(self.batch.slice(mid, len(self.batch)), [], self.update_last))
        mid = len(self.text) // 2
        return (_Part(self.batch, self.text[:mid], self.update_last),
                _Part(self.batch, self.text[mid:], self.update_last))


@dataclass
class _Batch:
    live: SampleBuffer
    historical: SampleBuffer
    acks: list[Ack]
    # Parts still to write, last first; None until the first attempt freezes the buffers.
    todo: list[_Part] | None = None

    def __len__(self) -> int:
        return len(self.live) + len(self.historical)

    def parts(self) -> list[_Part]:
        if self.todo is None:
            self.todo = [part for part in (
                _Part(self.historical.freeze(), self.historical.text, False),
                _Part(self.live.freeze(), self.live.text, True),
            ) if len(part)]
        return self.todo


@dataclass(frozen=True)
class _Stale:
    series_ids: tuple[int, ...]
    ts_ns: int
    acks: list[Ack] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.series_ids)


class IngestPipeline:
    def __init__(
        self, store: TelemetryStore, metrics: IngestMetrics, *, max_samples: int = 50_000,
        max_delay: float = 0.2, queue_max_samples: int = 1_000_000, max_pending_acks: int = 5_000,
        tap_interval: float = 0.01,
    ) -> None:
        self._store = store
        self._metrics = metrics
        self._max_samples = max_samples
        self._max_delay = max_delay
        self._queue_max = queue_max_samples
        self._max_pending_acks = max_pending_acks
        self._queue: deque[_Batch | _Stale] = deque()
        self._queued_samples = 0
        self._opened_at: float | None = None
        self._have_work = asyncio.Event()
        self._have_room = asyncio.Event()
        self._have_room.set()
        self._batch_opened = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._closing = False
        self.live = SampleBuffer()
        self.historical = SampleBuffer()
        self._acks: list[Ack] = []
        self._taps: list[SampleTap] = []  # fed every tap_interval
        self._sealed_taps: list[SampleTap] = []  # fed once per batch, when it is sealed
        self._tap_interval = tap_interval
        self._entered_ns: int | None = None  # when the oldest sample not yet tapped arrived
        self._tapped = {False: (0, 0), True: (0, 0)}  # historical -> (numeric, text) handed over
        self._tap_pending = asyncio.Event()
        #: Calls of each tap that raised (by tap name); the samples were stored regardless.
        self.tap_failures: dict[str, int] = {}

    # -- producer side --------------------------------------------------------------------------
    @property
    def store(self) -> TelemetryStore:
        """Where sealed batches are written (read its current values, never write to it)."""
        return self._store

    def add_tap(self, tap: SampleTap, *, prompt: bool = True) -> None:
        """Hand every sample received from now on to ``tap`` (see :mod:`millnet.ingest.tap`):
        ``prompt``, within ``tap_interval`` of its arrival (rules); otherwise in one chunk per
        batch when the batch is sealed (KPIs and roll-ups, which need no haste: each call has a
        fixed cost, and the prompt taps' calls already come up to a hundred times a second)."""
        (self._taps if prompt else self._sealed_taps).append(tap)

    def add_ack(self, ack: Ack) -> None:
        """Run ``ack`` once everything appended so far is durable."""
        self._acks.append(ack)
        self._touch()

    def appended(self, count: int, arrived_ns: int | None = None) -> None:
        """Tell the pipeline that ``count`` samples were appended to the open batch; they
        entered the node at ``arrived_ns`` (time.time_ns() when their message was read; None:
        now). The taps are told when the earliest sample of a chunk entered."""
        if count:
            self._metrics.received.inc(count)
            if self._entered_ns is None:
                self._entered_ns = arrived_ns or time.time_ns()
        self._touch()

    def mark_stale(self, series_ids: Sequence[int], ts_ns: int) -> None:
        """Mark series stale after everything appended before (their source went away)."""
        self.seal()
        self._enqueue(_Stale(tuple(series_ids), ts_ns))

    async def wait_capacity(self) -> None:
        """Return when the queue has room; producers call this before reading more input."""
        await self._have_room.wait()

    def seal(self) -> None:
        """Close the open batch and queue it for writing (no-op when empty)."""
        if not len(self.live) and not len(self.historical) and not self._acks:
            # An empty batch is closed too: left open, the timer would never be armed again
            # (found by review: a rejected message, appended(0), then the timer's seal of the
            # empty batch, and every later sample waited for a full batch).
            self._opened_at = None
            return
        self.feed_taps()
        for historical, buf in ((True, self.historical), (False, self.live)):
            if len(buf.series_id) or buf.text:
                self._feed(self._sealed_taps, _chunk(buf, 0, len(buf.series_id)), buf.text,
                           historical, time.time_ns())
        batch = _Batch(self.live, self.historical, self._acks)
        self.live, self.historical, self._acks = SampleBuffer(), SampleBuffer(), []
        self._tapped = {False: (0, 0), True: (0, 0)}
        self._opened_at = None
        self._enqueue(batch)

    def feed_taps(self) -> None:
        """Hand the samples appended since the last call to every tap (the timer calls this
        every ``tap_interval``, :meth:`seal` before it closes a batch)."""
        if not self._taps:
            return
        now, self._entered_ns = self._entered_ns or time.time_ns(), None
        for historical, buf in ((True, self.historical), (False, self.live)):
            done, done_text = self._tapped[historical]
            count, count_text = len(buf.series_id), len(buf.text)
            if count == done and count_text == done_text:
                continue
            self._tapped[historical] = (count, count_text)
            self._feed(self._taps, _chunk(buf, done, count), buf.text[done_text:count_text],
                       historical, now)

    def _feed(self, taps: list[SampleTap], chunk: SampleBatch, text: Sequence[TextSample],
              historical: bool, now: int) -> None:
        for tap in taps:
            try:
                tap.on_samples(chunk, text, historical=historical, received_ns=now)
            except Exception:  # a tap's fault is the tap's, not ingest's
                failures = self.tap_failures.get(tap.name, 0) + 1
                self.tap_failures[tap.name] = failures
                if failures & (failures - 1) == 0:  # 1st, 2nd, 4th, ... time: logged
                    log.exception("stream tap %s failed (%d times so far)", tap.name, failures)

    async def _tap_timer(self) -> None:
        """Feed the taps once the samples that arrived together are appended (a turn of the
        loop after the first of them), at most once per ``tap_interval``: a quiet node hands a
        sample over at once, a busy one in chunks that keep the per-call cost small."""
        fed = 0.0
        while True:
            await self._tap_pending.wait()
            self._tap_pending.clear()
            await asyncio.sleep(max(fed + self._tap_interval - time.monotonic(), 0.0))
            fed = time.monotonic()
            self.feed_taps()

    def _touch(self) -> None:
        if self._taps:
            self._tap_pending.set()
        if self._opened_at is None:
            self._opened_at = time.monotonic()
            self._batch_opened.set()
        if (len(self.live) + len(self.historical) >= self._max_samples
                or len(self._acks) >= self._max_pending_acks):
            self.seal()

    def _enqueue(self, item: _Batch | _Stale) -> None:
        self._queue.append(item)
        self._queued_samples += len(item)
        self._metrics.queue_depth.set(self._queued_samples)
        self._idle.clear()
        self._have_work.set()
        if self._queued_samples >= self._queue_max:
            self._have_room.clear()

    # -- consumer side --------------------------------------------------------------------------
    async def run(self) -> None:
        """Run the timer and the writer until cancelled; call :meth:`drain` before cancelling."""
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._timer())
            tg.create_task(self._writer())
            tg.create_task(self._tap_timer())

    async def drain(self) -> None:
        """Seal the open batch and wait until everything queued is written."""
        self.seal()
        await self._idle.wait()

    async def _timer(self) -> None:
        while True:
            await self._batch_opened.wait()
            self._batch_opened.clear()
            opened = self._opened_at
            if opened is None:
                continue
            await asyncio.sleep(max(0.0, opened + self._max_delay - time.monotonic()))
            if self._opened_at == opened:
                self.seal()

    async def _writer(self) -> None:
        try:
            await self._write_loop()
        except Exception:
            log.exception("the telemetry writer stopped; the node stops")
            raise

    async def _write_loop(self) -> None:
        while True:
            await self._have_work.wait()
            if not self._queue:
                self._have_work.clear()
                self._idle.set()
                continue
            item = self._take()
            await self._commit_with_retry(item)
            self._queued_samples -= len(item)
            self._metrics.queue_depth.set(self._queued_samples)
            if self._queued_samples < self._queue_max:
                self._have_room.set()
            for ack in item.acks:
                ack()

    def _take(self) -> _Batch | _Stale:
        """Pop the next item, merging consecutive batches so a backlog is written in bulk."""
        item = self._queue.popleft()
        if isinstance(item, _Stale):
            return item
        while (self._queue and isinstance(self._queue[0], _Batch)
               and len(item) + len(self._queue[0]) <= 4 * self._max_samples):
            nxt = self._queue.popleft()
            assert isinstance(nxt, _Batch)
            item = _merge(item, nxt)
        return item

    async def _commit_with_retry(self, item: _Batch | _Stale) -> None:
        delay = 0.1
        while True:
            try:
                started = time.perf_counter()
                await asyncio.to_thread(self._commit, item)
                self._metrics.write_seconds.observe(time.perf_counter() - started)
                return
            except StorageError as exc:
                self._metrics.store_errors.inc()
                log.error("telemetry write failed, retrying in %.1fs: %s", delay, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    def _commit(self, item: _Batch | _Stale) -> None:
        if isinstance(item, _Stale):
            try:
                self._store.mark_stale(item.series_ids, item.ts_ns)
            except StorageError:
                raise
            except Exception as exc:  # noqa: BLE001 - refused: count it, keep writing
                self._metrics.reject("store_refused", f"mark stale: {type(exc).__name__}: {exc}",
                                     len(item.series_ids))
            return
        todo = item.parts()
        while todo:
            part = todo[-1]
            try:
                self._store.write(part.batch, part.text, update_last=part.update_last)
            except StorageError:
                raise  # the store failed: retried whole, from this part on
            except Exception as exc:  # noqa: BLE001 - refused: isolate what it refuses
                todo.pop()
                if len(part) == 1:
                    self._metrics.reject("store_refused", f"{type(exc).__name__}: {exc}")
                else:
                    first, second = part.halves()
                    todo += (second, first)
                continue
            todo.pop()
            self._metrics.stored.inc(len(part))


def _chunk(buf: SampleBuffer, start: int, stop: int) -> SampleBatch:
    """Numeric samples ``start`` to ``stop`` of ``buf``, copied (the buffer grows on)."""
    return SampleBatch(
        np.array(memoryview(buf.series_id)[start:stop], dtype=np.int32),
        np.array(memoryview(buf.ts_ns)[start:stop], dtype=np.int64),
        np.array(memoryview(buf.value)[start:stop], dtype=np.float64),
        np.array(memoryview(buf.quality)[start:stop], dtype=np.uint8),
    )


def _merge(a: _Batch, b: _Batch) -> _Batch:
    a.live.extend(b.live)
    a.historical.extend(b.historical)
    a.acks.extend(b.acks)
    return a
