"""Roll-ups in a real DuckDB file: streamed through the tap in shuffled chunks, the 1m and 1h
buckets equal numpy over the same samples; late samples merge into closed buckets; a restart
keeps what was flushed."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from millnet.errors import InvalidInput
from millnet.model import Quality, SampleBatch
from millnet.telemetry.rollups import WIDTHS, RollupRow, Rollups, RollupStore

T0 = 1_767_225_600 * 1_000_000_000  # 2026-01-01T00:00Z
SERIES = [3, 7, 11, 12]


def samples(seed: int, n: int = 20_000) -> SampleBatch:
    """Random samples over three hours; each series' timestamps distinct (first and last are
    then unambiguous); some BAD or STALE, some NaN."""
    rng = np.random.default_rng(seed)
    sid = rng.choice(SERIES, n).astype(np.int32)
    ts = T0 + rng.permutation(3 * 3600 * 1000)[:n].astype(np.int64) * 1_000_000
    value = rng.normal(50, 20, n)
    value[rng.random(n) < 0.02] = np.nan
    quality = rng.choice([0, 0, 0, 1, 2, 3], n).astype(np.uint8)
    return SampleBatch(sid, ts, value, quality)


def reference(b: SampleBatch, width_ns: int) -> dict[tuple[int, int], tuple[Any, ...]]:
    ok = (b.quality <= Quality.UNCERTAIN) & ~np.isnan(b.value)
    out: dict[tuple[int, int], tuple[Any, ...]] = {}
    sid, ts, v = b.series_id[ok], b.ts_ns[ok], b.value[ok]
    bucket = ts // width_ns * width_ns
    for key in sorted(set(zip(sid.tolist(), bucket.tolist(), strict=True))):
        sel = (sid == key[0]) & (bucket == key[1])
        t, x = ts[sel], v[sel]
        out[key] = (int(sel.sum()), float(x.sum()), float(x.min()), float(x.max()),
                    int(t.min()), float(x[t.argmin()]), int(t.max()), float(x[t.argmax()]))
    return out


def as_dict(rows: list[RollupRow]) -> dict[tuple[int, int], tuple[Any, ...]]:
    return {(r.series_id, r.bucket_ns): (r.count, r.sum, r.min, r.max, r.first_ns, r.first,
                                         r.last_ns, r.last) for r in rows}


def check(got: list[RollupRow], want: dict[tuple[int, int], tuple[Any, ...]]) -> None:
    have = as_dict(got)
    assert have.keys() == want.keys()
    for key, row in have.items():
        assert row[0] == want[key][0] and row[2:] == want[key][2:]
        assert row[1] == pytest.approx(want[key][1], rel=1e-9)


def stream(rollups: Rollups, b: SampleBatch, chunks: int, seed: int,
           flush_every: int = 0) -> None:
    """Arrival order shuffled (late samples everywhere), in chunks, flushing now and then."""
    order = np.random.default_rng(seed).permutation(len(b))
    for k, part in enumerate(np.array_split(order, chunks)):
        rollups.on_samples(SampleBatch(b.series_id[part], b.ts_ns[part], b.value[part],
                                       b.quality[part]), [], historical=False, received_ns=0)
        if flush_every and k % flush_every == 0:
            asyncio.run(rollups.flush())


def query(r: Rollups, width: str, start: int = T0, end: int = T0 + 4 * 3600 * 10**9,
          ) -> list[RollupRow]:
    return asyncio.run(r.query(SERIES, width, start, end))


def test_buckets_equal_numpy_over_the_same_samples_flushed_or_held(tmp_path: Path) -> None:
    b = samples(1)
    rollups = Rollups(RollupStore(tmp_path / "rollups.duckdb"))
    stream(rollups, b, chunks=200, seed=2, flush_every=7)
    for width, width_ns in WIDTHS.items():
        check(query(rollups, width), reference(b, width_ns))  # part held, part stored
    asyncio.run(rollups.flush())
    for width, width_ns in WIDTHS.items():
        check(query(rollups, width), reference(b, width_ns))
    # a range selects buckets by their start
    hour = query(rollups, "1m", T0 + 3600 * 10**9, T0 + 2 * 3600 * 10**9)
    assert {r.bucket_ns for r in hour} == {T0 + 3600 * 10**9 + m * 60 * 10**9
                                           for m in range(60)}


def test_a_late_sample_merges_into_its_closed_bucket(tmp_path: Path) -> None:
    rollups = Rollups(RollupStore(tmp_path / "rollups.duckdb"))
    minute = 60 * 10**9
    early = SampleBatch(np.array([3, 3], np.int32), np.array([T0 + 10**9, T0 + 2 * 10**9]),
                        np.array([5.0, 6.0]), np.zeros(2, np.uint8))
    rollups.on_samples(early, [], historical=False, received_ns=0)
    rollups.on_samples(SampleBatch(np.array([3], np.int32), np.array([T0 + 5 * minute]),
                                   np.array([1.0]), np.zeros(1, np.uint8)),
                       [], historical=False, received_ns=0)
    asyncio.run(rollups.flush())
    late = SampleBatch(np.array([3], np.int32), np.array([T0]), np.array([-1.0]),
                       np.zeros(1, np.uint8))
    rollups.on_samples(late, [], historical=True, received_ns=0)
    asyncio.run(rollups.flush())
    first = query(rollups, "1m", T0, T0 + minute)
    assert as_dict(first) == {(3, T0): (3, 10.0, -1.0, 6.0, T0, -1.0, T0 + 2 * 10**9, 6.0)}


def test_a_restart_keeps_what_was_flushed(tmp_path: Path) -> None:
    b = samples(3, 5000)
    store = RollupStore(tmp_path / "rollups.duckdb")
    rollups = Rollups(store)
    stream(rollups, b, chunks=20, seed=4)
    asyncio.run(rollups.flush())
    before = query(rollups, "1h")
    store.close()
    again = Rollups(RollupStore(tmp_path / "rollups.duckdb"))
    assert query(again, "1h") == before
    check(before, reference(b, WIDTHS["1h"]))


def test_a_width_other_than_1m_or_1h_is_refused_naming_it(tmp_path: Path) -> None:
    rollups = Rollups(RollupStore(tmp_path / "rollups.duckdb"))
    with pytest.raises(InvalidInput) as caught:
        query(rollups, "5m")
    assert caught.value.field == "width"


def test_run_flushes_when_a_minute_closes(tmp_path: Path) -> None:
    async def scenario() -> list[list[int]]:
        store = RollupStore(tmp_path / "rollups.duckdb")
        rollups = Rollups(store, open_flush_s=3600)  # only a closed minute triggers a flush
        task = asyncio.create_task(rollups.run())
        stored_buckets = []
        for minute in range(2):
            ts = np.array([T0 + minute * 60 * 10**9])
            rollups.on_samples(SampleBatch(np.array([7], np.int32), ts, np.array([1.0]),
                                           np.zeros(1, np.uint8)),
                               [], historical=False, received_ns=0)
            await asyncio.sleep(0.3)
            stored = await asyncio.to_thread(store.read, "1m", [7], T0, T0 + 3600 * 10**9)
            stored_buckets.append(stored["bucket_ns"].tolist())
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return stored_buckets

    # nothing closed after the first minute's sample; the second closes it: all held is written
    assert asyncio.run(scenario()) == [[], [T0, T0 + 60 * 10**9]]
