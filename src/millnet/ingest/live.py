"""The ingest stream, live, for watchers (the web console's charts): a tap that fans samples out
to subscriptions of a few series each.

Ingest never waits for a watcher. The tap runs on the event loop and only copies the samples a
subscription asked for into that subscription's bounded queue; a subscription that is not read
fast enough loses its *oldest* samples (counted in ``dropped`` and told to the watcher), never
the store's. With no subscription the tap returns at once, so a node nobody watches pays one
call per sealed batch. One lookup table over the union of every watched series filters a chunk
for all subscriptions together (one gather, tens of µs for 10,000 samples); only what is
watched is then sorted out per subscription (a binary search in its few ids).

Limits: at most ``max_subscriptions`` at once (a client that opens more is refused, not queued)
and ``max_samples`` queued per subscription. :meth:`LiveFeed.close` ends every subscription (the
node calls it when it stops, so open streams do not hold the HTTP server's shutdown).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterable, Sequence

import numpy as np
import numpy.typing as npt
from prometheus_client import CollectorRegistry, Counter, Gauge

from millnet.errors import MillnetError
from millnet.model import SampleBatch, TextSample


def _member(ids: npt.NDArray[np.int32], values: npt.NDArray[np.int32]) -> npt.NDArray[np.bool_]:
    """Which ``values`` are in ``ids`` (sorted, unique, not empty): a binary search each."""
    at = np.minimum(np.searchsorted(ids, values), len(ids) - 1)
    found: npt.NDArray[np.bool_] = ids[at] == values
    return found


class TooManyWatchers(MillnetError):
    """The node serves as many live subscriptions as it allows."""


class Subscription:
    """Samples of some series, queued for one watcher; read with :meth:`next`."""

    def __init__(self, series_ids: Iterable[int], max_samples: int,
                 dropped: Counter | None = None) -> None:
        self._dropped_total = dropped
        self.series_ids = np.unique(np.fromiter(series_ids, dtype=np.int32))
        self.max_samples = max_samples
        self.dropped = 0  # samples lost to a full queue, over the subscription's life
        self.closed = False
        self._chunks: deque[SampleBatch] = deque()
        self._queued = 0
        self._ready = asyncio.Event()

    def offer(self, batch: SampleBatch) -> None:
        """Queue the samples of ``batch`` that are of this subscription's series (on the
        loop; copies them, dropping the oldest queued samples beyond ``max_samples``)."""
        if not len(self.series_ids):
            return
        mask = _member(self.series_ids, batch.series_id)
        if not mask.any():
            return
        part = SampleBatch(batch.series_id[mask], batch.ts_ns[mask], batch.value[mask],
                           batch.quality[mask])
        dropped = 0
        if len(part) > self.max_samples:  # a single chunk larger than the queue: its newest
            dropped += len(part) - self.max_samples
            part = part.slice(len(part) - self.max_samples, len(part))
        self._chunks.append(part)
        self._queued += len(part)
        while self._queued > self.max_samples:
            oldest = self._chunks.popleft()
            self._queued -= len(oldest)
            dropped += len(oldest)
        if dropped:
            self.dropped += dropped
            if self._dropped_total is not None:
                self._dropped_total.inc(dropped)
        self._ready.set()

    def close(self) -> None:
        self.closed = True
        self._ready.set()

    async def next(self, timeout: float) -> SampleBatch | None:
        """What was queued, once there is something (an empty batch after ``timeout``
        seconds of nothing, so the caller can send a keep-alive); None once closed."""
        if not self._chunks and not self.closed:
            try:
                async with asyncio.timeout(timeout):
                    await self._ready.wait()
            except TimeoutError:
                return SampleBatch.empty()
        self._ready.clear()
        if self.closed:
            return None
        chunks = list(self._chunks)
        self._chunks.clear()
        self._queued = 0
        return SampleBatch.concat(chunks)


class LiveFeed:
    """A :class:`~millnet.ingest.tap.SampleTap` feeding :class:`Subscription` queues."""

    name = "live"

    def __init__(self, *, max_subscriptions: int = 64, max_samples: int = 50_000,
                 registry: CollectorRegistry | None = None) -> None:
        """With ``registry``, exported: ``millnet_live_streams`` (open subscriptions) and
        ``millnet_live_dropped_samples_total`` (lost to watchers that read too slowly)."""
        self.max_subscriptions = max_subscriptions
        self.max_samples = max_samples
        self._subs: list[Subscription] = []
        self._dropped: Counter | None = None
        if registry is not None:
            self._dropped = Counter(
                "millnet_live_dropped_samples", "Samples a live watcher lost because it read "
                "too slowly (the store has them)", registry=registry)
            Gauge("millnet_live_streams", "Open live subscriptions (console charts)",
                  registry=registry).set_function(lambda: len(self._subs))
        self._closed = False
        self._watched = np.zeros(1, np.bool_)  # series id -> watched by a subscription

    @property
    def subscriptions(self) -> int:
        return len(self._subs)

    @property
    def dropped(self) -> int:
        """Samples dropped by the open subscriptions."""
        return sum(s.dropped for s in self._subs)

    def subscribe(self, series_ids: Iterable[int]) -> Subscription:
        if self._closed:
            raise TooManyWatchers("the node is stopping")
        if len(self._subs) >= self.max_subscriptions:
            raise TooManyWatchers(f"the node serves {self.max_subscriptions} live streams at "
                                  "most; close one or retry later")
        sub = Subscription(series_ids, self.max_samples, self._dropped)
        self._subs.append(sub)
        self._rewatch()
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        sub.close()
        if sub in self._subs:
            self._subs.remove(sub)
            self._rewatch()

    def close(self) -> None:
        """End every subscription and refuse new ones (the node is stopping)."""
        self._closed = True
        for sub in self._subs:
            sub.close()
        self._subs.clear()
        self._rewatch()

    def _rewatch(self) -> None:
        ids = [s.series_ids for s in self._subs if len(s.series_ids)]
        union = np.concatenate(ids) if ids else np.empty(0, np.int32)
        table = np.zeros(int(union.max()) + 1 if len(union) else 1, np.bool_)
        table[union] = True
        self._watched = table

    def on_samples(self, batch: SampleBatch, text: Sequence[TextSample], *,
                   historical: bool, received_ns: int) -> None:
        # Store-and-forward data is older than what the charts show: live samples only.
        if historical or not self._subs or not len(batch):
            return
        table, ids = self._watched, batch.series_id
        inside = (ids >= 0) & (ids < len(table))
        mask = table[np.where(inside, ids, 0)] & inside
        if not mask.any():
            return
        watched = SampleBatch(batch.series_id[mask], batch.ts_ns[mask], batch.value[mask],
                              batch.quality[mask])
        for sub in self._subs:
            sub.offer(watched)
