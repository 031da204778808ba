"""Property tests: the store returns what was written, aggregates match numpy, everywhere.

Each example writes a few random batches (live or historical, timestamps out of order, NaNs,
duplicates, sub-microsecond parts, across day boundaries) for series of its own, maybe archives
some days, then compares raw rows, bucket aggregates and last values with a reference computed
from the input alone.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from millnet.model import Quality, SampleBatch
from millnet.telemetry import DuckDBTelemetryStore, LastValue
from millnet.telemetry.lastvalues import latest_per_series

DAY = 86_400_000_000_000
T0 = 19_700 * DAY
SPAN = 3 * DAY  # timestamps fall in [T0 - DAY, T0 + 2 * DAY)


@dataclass(frozen=True)
class Written:
    batch: SampleBatch
    live: bool


values = st.one_of(st.floats(-1e6, 1e6), st.just(math.nan))


@st.composite
def histories(draw: st.DrawFn) -> list[Written]:
    # Few distinct timestamps so that ties (same series and microsecond) occur within and
    # across batches.
    base = draw(st.lists(st.integers(T0 - DAY, T0 - DAY + SPAN - 1), min_size=1, max_size=8))
    return draw(st.lists(batches(base), min_size=1, max_size=3))


@st.composite
def batches(draw: st.DrawFn, base: list[int]) -> Written:
    n = draw(st.integers(0, 40))
    ts = np.array([draw(st.sampled_from(base)) for _ in range(n)], np.int64)
    return Written(
        SampleBatch(
            draw(arrays(np.int32, n, elements=st.integers(0, 4))), ts,
            draw(arrays(np.float64, n, elements=values)),
            draw(arrays(np.uint8, n, elements=st.sampled_from([0, 1, 2]))),
        ),
        draw(st.booleans()),
    )


def expected_rows(written: list[Written], offset: int) -> list[tuple[int, int, float, int]]:
    return [(int(s) + offset, int(t) // 1000 * 1000, float(v), int(q))
            for w in written for s, t, v, q in zip(w.batch.series_id, w.batch.ts_ns,
                                                   w.batch.value, w.batch.quality, strict=True)]


def key(row: tuple[int, int, float | None, int]) -> tuple[int, int, float, int]:
    s, t, v, q = row
    return (s, t, math.inf if v is None or math.isnan(v) else v, q)


def test_store_matches_reference(tmp_path: Path) -> None:
    store = DuckDBTelemetryStore(tmp_path / "p.duckdb", tmp_path / "archive", "256MB")
    examples = itertools.count()

    @settings(max_examples=50, deadline=None)
    @given(written=histories(),
           width_us=st.sampled_from([1, 7, 1_000_000, 3_600_000_000, 86_400_000_000]),
           archive_days=st.integers(0, 3))
    def check(written: list[Written], width_us: int, archive_days: int) -> None:
        offset = next(examples) * 10  # fresh series for every example
        ids = list(range(offset, offset + 5))
        for w in written:
            b = w.batch
            store.write(SampleBatch(b.series_id + np.int32(offset), b.ts_ns, b.value, b.quality),
                        update_last=w.live)
        if archive_days:
            store.archive_older_than(ids, T0 - DAY + archive_days * DAY, "prop")
        rows = expected_rows(written, offset)

        got = store.query_range(ids, T0 - 2 * DAY, T0 + 3 * DAY, limit=10_000)
        assert sorted(key((p.series_id, p.ts_ns, p.value, p.quality)) for p in got) == sorted(
            key(r) for r in rows)
        assert [(p.series_id, p.ts_ns) for p in got] == sorted((r[0], r[1]) for r in rows)

        check_buckets(store, ids, rows, width_us)
        check_last_values(store, ids, written, offset)

    check()
    store.close()


def check_buckets(store: DuckDBTelemetryStore, ids: list[int],
                  rows: list[tuple[int, int, float, int]], width_us: int) -> None:
    width = width_us * 1000
    start, end = T0 - DAY // 2, T0 + DAY  # a range cutting through the data
    groups: dict[tuple[int, int], list[tuple[int, float]]] = {}
    for s, t, v, _ in rows:
        if start <= t < end and not math.isnan(v):
            groups.setdefault((s, t - t % width), []).append((t, v))
    got = store.query_buckets(ids, start, end, width)
    assert [(b.series_id, b.start_ns) for b in got] == sorted(groups)
    for b in got:
        ts, vs = (np.array(x) for x in zip(*groups[b.series_id, b.start_ns], strict=True))
        assert b.count == len(vs)
        assert math.isclose(b.avg, float(np.mean(vs)), rel_tol=1e-9, abs_tol=1e-6)
        assert (b.min, b.max) == (float(vs.min()), float(vs.max()))
        assert b.last in set(vs[ts == ts.max()].tolist())


def check_last_values(store: DuckDBTelemetryStore, ids: list[int], written: list[Written],
                      offset: int) -> None:
    expected: dict[int, LastValue] = {}
    for w in written:
        if not w.live:
            continue
        for s, t, v, q in zip(w.batch.series_id, w.batch.ts_ns, w.batch.value,
                              w.batch.quality, strict=True):
            sid, t_ns = int(s) + offset, int(t) // 1000 * 1000
            if sid not in expected or t_ns >= expected[sid].ts_ns:
                expected[sid] = LastValue(t_ns, None if math.isnan(v) else float(v), None,
                                          Quality(int(q)))
    assert store.last_values(ids) == expected


@given(arrays(np.int32, st.integers(0, 200), elements=st.integers(0, 20)), st.data())
def test_latest_per_series_matches_a_loop(ids: np.ndarray, data: st.DataObject) -> None:
    ts = data.draw(arrays(np.int64, ids.shape[0], elements=st.integers(0, 5)))
    best: dict[int, int] = {}
    for i, (s, t) in enumerate(zip(ids.tolist(), ts.tolist(), strict=True)):
        if s not in best or t >= ts[best[s]]:
            best[s] = i
    assert latest_per_series(ids, ts).tolist() == [best[s] for s in sorted(best)]
