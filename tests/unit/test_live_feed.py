"""The live feed (ingest/live.py): subscriptions get their series only, a slow watcher loses
its oldest samples (counted), never ingest's; limits, historical data and closing."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from millnet.ingest.live import LiveFeed, TooManyWatchers
from millnet.model import SampleBatch


def batch(series: list[int], start_ns: int = 0) -> SampleBatch:
    n = len(series)
    return SampleBatch(np.array(series, np.int32), start_ns + np.arange(n, dtype=np.int64),
                       np.arange(n, dtype=np.float64), np.zeros(n, np.uint8))


def feed_with(feed: LiveFeed, b: SampleBatch, *, historical: bool = False) -> None:
    feed.on_samples(b, [], historical=historical, received_ns=0)


def test_each_subscription_gets_its_own_series() -> None:
    async def scenario() -> None:
        feed = LiveFeed()
        a, b = feed.subscribe([1, 2]), feed.subscribe([3])
        feed_with(feed, batch([1, 3, 4, 2, 1]))
        got_a, got_b = await a.next(1), await b.next(1)
        assert got_a is not None and got_b is not None
        assert got_a.series_id.tolist() == [1, 2, 1] and got_a.value.tolist() == [0, 3, 4]
        assert got_b.series_id.tolist() == [3]
        nothing = await a.next(0.01)  # nothing new: an empty batch (a keep-alive)
        assert nothing is not None and len(nothing) == 0

    asyncio.run(scenario())


def test_a_slow_watcher_loses_its_oldest_samples_and_counts_them() -> None:
    async def scenario() -> None:
        registry = CollectorRegistry()
        feed = LiveFeed(max_samples=10, registry=registry)
        sub = feed.subscribe([1])
        assert registry.get_sample_value("millnet_live_streams") == 1
        for i in range(5):
            feed_with(feed, batch([1] * 4, start_ns=100 * i))
        got = await sub.next(1)
        assert got is not None
        assert len(got) <= 10 and sub.dropped == 20 - len(got)
        assert got.ts_ns[-1] == 403  # the newest kept
        feed_with(feed, batch([1] * 25))  # one chunk larger than the queue: its newest 10
        got = await sub.next(1)
        assert got is not None and len(got) == 10 and got.ts_ns[0] == 15
        assert registry.get_sample_value("millnet_live_dropped_samples_total") == sub.dropped

    asyncio.run(scenario())


def test_historical_data_and_unwatched_series_are_skipped() -> None:
    async def scenario() -> None:
        feed = LiveFeed()
        sub = feed.subscribe([1])
        feed_with(feed, batch([1, 1]), historical=True)
        feed_with(feed, batch([2, 3, 2**31 - 1]))  # beyond the largest watched id too
        got = await sub.next(0.05)
        assert got is not None and len(got) == 0
        feed_with(feed, batch([2**31 - 1, 1]))
        got = await sub.next(1)
        assert got is not None and got.series_id.tolist() == [1]

    asyncio.run(scenario())


def test_limits_unsubscribe_and_close() -> None:
    async def scenario() -> None:
        feed = LiveFeed(max_subscriptions=2)
        a, b = feed.subscribe([1]), feed.subscribe([2])
        with pytest.raises(TooManyWatchers):
            feed.subscribe([3])
        feed.unsubscribe(a)
        assert feed.subscriptions == 1 and await a.next(1) is None
        c = feed.subscribe([3])
        waiting = asyncio.create_task(c.next(10))
        await asyncio.sleep(0)
        feed.close()
        assert await waiting is None and await b.next(1) is None
        assert feed.subscriptions == 0
        with pytest.raises(TooManyWatchers, match="stopping"):
            feed.subscribe([1])

    asyncio.run(scenario())
