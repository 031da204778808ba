"""The DuckDB telemetry store against a real database file in tmp_path."""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from millnet.errors import InvalidInput, StorageError
from millnet.model import Quality, SampleBatch, TextSample
from millnet.telemetry import (
    Bucket,
    DuckDBTelemetryStore,
    LastValue,
    SamplePoint,
    TelemetryStore,
)

S = 1_000_000_000
DAY = 86_400 * S
T0 = 19_700 * DAY  # 2023-12-09T00:00:00Z, a day boundary


def batch(sids: Sequence[int], ts: Sequence[int], values: Sequence[float],
          quality: Sequence[int] | None = None) -> SampleBatch:
    return SampleBatch(
        np.asarray(sids, np.int32), np.asarray(ts, np.int64), np.asarray(values, np.float64),
        np.asarray(quality if quality is not None else [0] * len(sids), np.uint8),
    )


def open_store(tmp_path: Path) -> DuckDBTelemetryStore:
    return DuckDBTelemetryStore(tmp_path / "t.duckdb", tmp_path / "archive", memory_limit="256MB")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[DuckDBTelemetryStore]:
    s = open_store(tmp_path)
    yield s
    s.close()


def three_days(store: DuckDBTelemetryStore) -> None:
    """Series 1 and 2 (numeric) and 3 (text) over three days, ten samples a day each."""
    for day in range(3):
        ts = [T0 + day * DAY + i * 3600 * S for i in range(10)]
        store.write(batch([1] * 10 + [2] * 10, ts + ts,
                          [day * 100 + i for i in range(10)] + [-float(i) for i in range(10)]),
                    [TextSample(3, ts[0], f"state-{day}"), TextSample(3, ts[5], "idle")])


def test_is_a_telemetry_store(store: DuckDBTelemetryStore) -> None:
    assert isinstance(store, TelemetryStore)


def test_write_then_query_range_numeric_and_text(store: DuckDBTelemetryStore) -> None:
    store.write(batch([2, 1, 1], [T0 + 2 * S, T0 + 5 * S, T0 + 1 * S], [20.5, 1.5, 1.0],
                      [0, 1, 2]),
                [TextSample(7, T0 + 3 * S, "running", Quality.UNCERTAIN)])
    rows = store.query_range([1, 2, 7], T0, T0 + 10 * S)
    assert rows == [
        SamplePoint(1, T0 + 1 * S, 1.0, None, Quality.BAD),
        SamplePoint(1, T0 + 5 * S, 1.5, None, Quality.UNCERTAIN),
        SamplePoint(2, T0 + 2 * S, 20.5, None, Quality.GOOD),
        SamplePoint(7, T0 + 3 * S, None, "running", Quality.UNCERTAIN),
    ]
    assert store.query_range([1], T0, T0 + 10 * S, limit=1) == rows[:1]
    assert store.query_range([1, 2], T0 + 2 * S, T0 + 5 * S) == [rows[2]]  # end exclusive
    assert store.query_range([99], T0, T0 + 10 * S) == []
    assert store.query_range([], T0, T0 + 10 * S) == []


def test_timestamps_are_floored_to_microseconds(store: DuckDBTelemetryStore) -> None:
    store.write(batch([1, 1], [T0 + 1_999, T0 - 1], [1.0, 2.0]))
    rows = store.query_range([1], T0 - S, T0 + S)
    assert [r.ts_ns for r in rows] == [T0 - 1_000, T0 + 1_000]
    # The range applies to stored timestamps: T0 + 1000 is not before T0 + 1000.
    assert store.query_range([1], T0, T0 + 1_000) == []
    assert store.last_values([1])[1].ts_ns == T0 + 1_000


def test_query_buckets_aggregates(store: DuckDBTelemetryStore) -> None:
    # Bucket [T0, T0+10s): 1, 3 (NaN ignored); bucket [T0+10s, T0+20s): 5; series 2 only NaN.
    store.write(batch([1, 1, 1, 1, 2], [T0 + 9 * S, T0, T0 + 5 * S, T0 + 12 * S, T0],
                      [3.0, 1.0, math.nan, 5.0, math.nan]))
    assert store.query_buckets([1, 2], T0, T0 + 60 * S, 10 * S) == [
        Bucket(1, T0, 2, 2.0, 1.0, 3.0, 3.0),
        Bucket(1, T0 + 10 * S, 1, 5.0, 5.0, 5.0, 5.0),
    ]
    with pytest.raises(InvalidInput):
        store.query_buckets([1], T0, T0 + S, 1_500)  # not whole microseconds
    with pytest.raises(InvalidInput):
        store.query_buckets([1], T0, T0 + S, 0)
    with pytest.raises(InvalidInput):
        store.query_range([1], T0, T0)


def test_last_value_later_timestamp_wins_out_of_order_does_not(
        store: DuckDBTelemetryStore) -> None:
    store.write(batch([1, 1, 2], [T0 + 5 * S, T0 + 3 * S, T0], [5.0, 3.0, 0.0]))
    assert store.last_values([1, 2, 3]) == {
        1: LastValue(T0 + 5 * S, 5.0, None, Quality.GOOD),
        2: LastValue(T0, 0.0, None, Quality.GOOD),
    }
    store.write(batch([1], [T0 + 4 * S], [4.0]))  # older: stored, current value unchanged
    assert store.last_values([1])[1].value == 5.0
    assert len(store.query_range([1], T0, T0 + DAY)) == 3
    store.write(batch([1], [T0 + 5 * S], [5.5], [1]))  # equal time: the later write wins
    assert store.last_values([1])[1] == LastValue(T0 + 5 * S, 5.5, None, Quality.UNCERTAIN)
    store.write(batch([1, 1], [T0 + 6 * S, T0 + 6 * S], [6.0, 6.5]))  # in one batch: last row
    assert store.last_values([1])[1].value == 6.5


def test_historical_samples_never_move_current_values(store: DuckDBTelemetryStore) -> None:
    store.write(batch([1], [T0], [1.0]))
    store.write(batch([1, 1, 2], [T0 + S, T0 + 2 * S, T0 + S], [7.0, 8.0, 9.0]),
                [TextSample(3, T0 + S, "old")], update_last=False)
    assert store.last_values([1, 2, 3]) == {1: LastValue(T0, 1.0, None, Quality.GOOD)}
    assert len(store.query_range([1, 2, 3], T0, T0 + DAY)) == 5


def test_text_and_numeric_last_values(store: DuckDBTelemetryStore) -> None:
    store.write(batch([1], [T0 + S], [1.0]), [TextSample(1, T0 + 2 * S, "manual"),
                                               TextSample(4, T0, "a"), TextSample(4, T0, "b")])
    assert store.last_values([1, 4]) == {
        1: LastValue(T0 + 2 * S, None, "manual", Quality.GOOD),
        4: LastValue(T0, None, "b", Quality.GOOD),
    }


def test_mark_stale_keeps_value_and_records_a_nan_sample(store: DuckDBTelemetryStore) -> None:
    store.write(batch([1, 2], [T0 + 10 * S, T0 + 10 * S], [1.0, 2.0]),
                [TextSample(3, T0, "running")])
    store.mark_stale([1, 3, 5], T0 + 20 * S)
    assert store.last_values([1, 2, 3, 5]) == {
        1: LastValue(T0 + 20 * S, 1.0, None, Quality.STALE),
        2: LastValue(T0 + 10 * S, 2.0, None, Quality.GOOD),
        3: LastValue(T0 + 20 * S, None, "running", Quality.STALE),
        5: LastValue(T0 + 20 * S, None, None, Quality.STALE),
    }
    assert store.query_range([1], T0, T0 + DAY)[-1] == SamplePoint(
        1, T0 + 20 * S, None, None, Quality.STALE)
    # Stale markers do not count in aggregates.
    assert store.query_buckets([1], T0, T0 + DAY, DAY)[0].count == 1
    # A stale mark older than the value still applies, without moving time backwards.
    store.mark_stale([2], T0 + 5 * S)
    assert store.last_values([2])[2] == LastValue(T0 + 10 * S, 2.0, None, Quality.STALE)
    # Newer live data replaces the stale value.
    store.write(batch([1], [T0 + 30 * S], [3.0]))
    assert store.last_values([1])[1] == LastValue(T0 + 30 * S, 3.0, None, Quality.GOOD)


def test_restart_keeps_samples_and_last_values(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    three_days(store)
    store.write(batch([1], [T0 + 10 * DAY], [42.0]), update_last=False)
    store.mark_stale([2], T0 + 4 * DAY)
    rows = store.query_range([1, 2, 3], T0, T0 + 20 * DAY, limit=1000)
    last = store.last_values([1, 2, 3])
    store.close()
    store.close()  # idempotent
    with pytest.raises(StorageError):
        store.query_range([1], T0, T0 + S)
    reopened = open_store(tmp_path)
    try:
        assert reopened.query_range([1, 2, 3], T0, T0 + 20 * DAY, limit=1000) == rows
        assert reopened.last_values([1, 2, 3]) == last
        assert last[1].value == 209.0  # the historical 42.0 did not become current
        assert last[2].quality is Quality.STALE
        reopened.write(batch([1, 5], [T0 + 3 * DAY, T0], [1.5, 5.0]),
                       [TextSample(3, T0 + 3 * DAY, "after restart")])
        assert reopened.last_values([1, 3, 5]) == {
            1: LastValue(T0 + 3 * DAY, 1.5, None, Quality.GOOD),
            3: LastValue(T0 + 3 * DAY, None, "after restart", Quality.GOOD),
            5: LastValue(T0, 5.0, None, Quality.GOOD),
        }
    finally:
        reopened.close()


def test_restart_after_crash_replays_the_wal(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    store.write(batch([1], [T0], [1.0]))
    # Simulate a crash: no checkpoint, the WAL is all there is. Copy the files as they are.
    crashed = tmp_path / "crashed"
    crashed.mkdir()
    for name in ("t.duckdb", "t.duckdb.wal"):
        (crashed / name).write_bytes((tmp_path / name).read_bytes())
    store.close()
    recovered = open_store(crashed)
    try:
        assert recovered.query_range([1], T0, T0 + S) == [
            SamplePoint(1, T0, 1.0, None, Quality.GOOD)]
        assert recovered.last_values([1])[1].value == 1.0
    finally:
        recovered.close()


BAD_BATCHES = [
    pytest.param(SampleBatch(np.array([1, 2], np.int32), np.array([T0], np.int64),
                             np.array([1.0, 2.0]), np.zeros(2, np.uint8)), id="lengths"),
    pytest.param(SampleBatch(np.array([1], np.int32), np.array([math.nan]),
                             np.array([1.0]), np.zeros(1, np.uint8)), id="nan-timestamp"),
    pytest.param(batch([-1], [T0], [1.0]), id="negative-series"),
    pytest.param(batch([1], [T0], [1.0], [9]), id="quality"),
    pytest.param(SampleBatch(np.ones((1, 1), np.int32), np.array([T0], np.int64),
                             np.array([1.0]), np.zeros(1, np.uint8)), id="2d"),
    pytest.param(SampleBatch(np.array([1], np.int32), np.array([T0], np.int64),
                             np.array(["x"]), np.zeros(1, np.uint8)), id="string-values"),
    pytest.param(SampleBatch(np.array([1], np.int64), np.array([2**63], np.uint64),
                             np.array([1.0]), np.zeros(1, np.uint8)), id="ts-overflow"),
]


@pytest.mark.parametrize("bad", BAD_BATCHES)
def test_bad_batch_is_rejected_and_changes_nothing(store: DuckDBTelemetryStore,
                                                   bad: SampleBatch) -> None:
    store.write(batch([1], [T0], [1.0]))
    before = (store.query_range([1, 2], T0 - DAY, T0 + DAY), store.last_values([1, 2]))
    with pytest.raises(InvalidInput):
        store.write(bad)
    assert (store.query_range([1, 2], T0 - DAY, T0 + DAY), store.last_values([1, 2])) == before


def test_good_batch_with_bad_text_writes_nothing(store: DuckDBTelemetryStore) -> None:
    bad = TextSample(1, T0, 42)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match=r"text\[1\]"):
        store.write(batch([1], [T0], [1.0]), [TextSample(1, T0, "ok"), bad])
    assert store.query_range([1], T0 - DAY, T0 + DAY) == []
    assert store.last_values([1]) == {}
    with pytest.raises(InvalidInput):
        store.mark_stale([1], 1.5)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        store.query_range(["1"], T0, T0 + 1)  # type: ignore[list-item]


def test_archive_moves_whole_days_and_queries_span_hot_and_cold(
        store: DuckDBTelemetryStore, tmp_path: Path) -> None:
    three_days(store)
    store.write(batch([4], [T0], [4.0]))  # another tenant's series: stays hot
    rng = (T0 - DAY, T0 + 4 * DAY)
    raw = store.query_range([1, 2, 3, 4], *rng, limit=1000)
    buckets = store.query_buckets([1, 2, 4], *rng, 6 * 3600 * S)
    # A cutoff in the middle of day 2 archives days 0 and 1 only.
    result = store.archive_older_than([1, 2, 3], T0 + 2 * DAY + 7 * 3600 * S, "acme")
    assert result.days == ("2023-12-09", "2023-12-10")
    assert (result.rows, result.text_rows, len(result.files)) == (40, 4, 4)
    for rel in result.files:
        path = tmp_path / "archive" / rel
        assert path.parent.parent.name == "tenant=acme" and path.parent.name.startswith("day=")
        assert pq.read_metadata(path).row_group(0).column(0).compression == "ZSTD"
    table = pq.read_table(tmp_path / "archive" / result.files[0])
    assert table.column_names == ["series_id", "ts", "value", "quality"]
    assert table.num_rows == 20
    stats = store.stats()
    assert (stats.rows, stats.text_rows, stats.archived_rows, stats.archived_text_rows) == (
        21, 2, 40, 4)
    assert stats.archive_files == 4 and stats.archive_bytes == result.bytes
    assert store.query_range([1, 2, 3, 4], *rng, limit=1000) == raw
    assert store.query_buckets([1, 2, 4], *rng, 6 * 3600 * S) == buckets
    # Nothing left to archive for these days; a second run moves nothing.
    assert store.archive_older_than([1, 2, 3], T0 + 2 * DAY, "acme").rows == 0
    # Late data for an archived day stays hot, then goes to a second part file.
    store.write(batch([1], [T0 + 30 * S], [0.5]), update_last=False)
    assert store.archive_older_than([1], T0 + 2 * DAY, "acme").rows == 1
    rows = store.query_range([1], T0, T0 + DAY, limit=1000)
    assert len(rows) == 11 and rows[1] == SamplePoint(1, T0 + 30 * S, 0.5, None, Quality.GOOD)


def test_archived_data_survives_restart(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    three_days(store)
    raw = store.query_range([1, 2, 3], T0, T0 + 3 * DAY, limit=1000)
    store.archive_older_than([1, 2, 3], T0 + 3 * DAY, "acme")
    store.close()
    reopened = open_store(tmp_path)
    try:
        assert reopened.stats().rows == 0
        assert reopened.query_range([1, 2, 3], T0, T0 + 3 * DAY, limit=1000) == raw
        assert reopened.last_values([1])[1].value == 209.0  # not from the (archived) table
    finally:
        reopened.close()


def test_failed_archive_changes_nothing(store: DuckDBTelemetryStore, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    three_days(store)
    raw = store.query_range([1, 2, 3], T0, T0 + 3 * DAY, limit=1000)

    def no_rename(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", no_rename)
    with pytest.raises(StorageError, match="disk full"):
        store.archive_older_than([1, 2, 3], T0 + 3 * DAY, "acme")
    monkeypatch.undo()
    assert store.query_range([1, 2, 3], T0, T0 + 3 * DAY, limit=1000) == raw
    assert store.stats().archive_files == 0
    assert not list((tmp_path / "archive").rglob("*.parquet*"))


def test_interrupted_archive_leaves_no_visible_file(tmp_path: Path) -> None:
    """A crash after the Parquet file was renamed but before the move committed."""
    store = open_store(tmp_path)
    three_days(store)
    raw = store.query_range([1, 2, 3], T0, T0 + 3 * DAY, limit=1000)
    orphan = tmp_path / "archive" / "tenant=acme" / "day=2023-12-09" / "part-dead.parquet"
    orphan.parent.mkdir(parents=True)
    pq.write_table(pa.table({"series_id": [1]}), orphan)
    with store._cursor() as cur:  # what step 1 of an archive run commits
        cur.execute("INSERT INTO archive_files VALUES "
                    "('tenant=acme/day=2023-12-09/part-dead.parquet', 'samples', 'acme', "
                    "DATE '2023-12-09', 1, 1, 0, 0, 'pending')")
    assert store.query_range([1, 2, 3], T0, T0 + 3 * DAY, limit=1000) == raw
    store.close()
    reopened = open_store(tmp_path)
    try:
        assert not orphan.exists()
        assert reopened.stats().archive_files == 0
        assert reopened.query_range([1, 2, 3], T0, T0 + 3 * DAY, limit=1000) == raw
    finally:
        reopened.close()


def test_archive_rejects_unsafe_tenant(store: DuckDBTelemetryStore) -> None:
    for tenant in ("", "../etc", "a/b", "x" * 65):
        with pytest.raises(InvalidInput):
            store.archive_older_than([1], T0, tenant)


def test_compact_keeps_every_row(store: DuckDBTelemetryStore) -> None:
    three_days(store)
    store.mark_stale([1], T0 + 2 * DAY + S)
    rows = store.query_range([1, 2, 3], T0, T0 + 3 * DAY, limit=1000)
    assert store.compact(T0 + 2 * DAY + 5 * S, chunk_rows=7) == 40  # days 0 and 1
    assert store.compact(T0 + 2 * DAY) == 0  # watermark: already done
    assert store.query_range([1, 2, 3], T0, T0 + 3 * DAY, limit=1000) == rows
    assert store.stats().rows == 61


def test_stats_count_rows_and_bytes(store: DuckDBTelemetryStore) -> None:
    three_days(store)
    store.checkpoint()
    stats = store.stats()
    assert (stats.rows, stats.text_rows, stats.series) == (60, 6, 3)
    assert stats.db_file_bytes >= stats.db_used_bytes > 0
    assert stats.wal_bytes == 0


def test_concurrent_writer_readers_and_archiver(store: DuckDBTelemetryStore) -> None:
    three_days(store)
    errors: list[BaseException] = []
    stop = threading.Event()

    def writer() -> None:
        for i in range(40):
            store.write(batch([1, 2], [T0 + 3 * DAY + i * S] * 2, [float(i)] * 2))
        stop.set()

    def reader() -> None:
        try:
            while not stop.is_set():
                # Hot and cold are read in one snapshot: days 0-2 always have 66 rows.
                assert len(store.query_range([1, 2, 3], T0, T0 + 3 * DAY, limit=1000)) == 66
                store.query_buckets([1, 2], T0, T0 + 4 * DAY, 3600 * S)
                store.last_values([1, 2, 3])
        except BaseException as exc:  # reported to the main thread
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(2)]
    threads.append(threading.Thread(target=writer))
    for t in threads:
        t.start()
    store.archive_older_than([1, 2, 3], T0 + 3 * DAY, "acme")
    for t in threads:
        t.join()
    assert not errors
    assert store.stats().rows == 80
    assert store.last_values([1])[1] == LastValue(T0 + 3 * DAY + 39 * S, 39.0, None,
                                                  Quality.GOOD)


def test_sub_millisecond_timestamps_and_bounds(store: DuckDBTelemetryStore) -> None:
    # Stored as milliseconds plus microseconds: bounds inside a millisecond still cut exactly.
    ts = [T0 - 1_500, T0 - 1_000, T0 + 999_000, T0 + 1_000_000, T0 + 1_000_999, T0 + 1_001_000]
    store.write(batch([1] * 6, ts, [1, 2, 3, 4, 5, 6]))
    got = store.query_range([1], T0 - 1_500, T0 + 1_000_999, limit=10)
    # Stored microseconds: -2, -1, 999, 1000, 1000, 1001; the range is [-1, 1001).
    assert [p.ts_ns for p in got] == [T0 - 1_000, T0 + 999_000, T0 + 1_000_000, T0 + 1_000_000]
    got = store.query_range([1], T0 + 999_001, T0 + 1_001_001, limit=10)
    assert [p.value for p in got] == [4.0, 5.0, 6.0]


def test_new_store_records_its_layout_and_old_layout_is_refused(tmp_path: Path) -> None:
    open_store(tmp_path).close()
    con = duckdb.connect(str(tmp_path / "t.duckdb"))
    assert con.execute("SELECT value FROM store_meta WHERE key = 'layout'").fetchall() == [("2",)]
    con.close()
    old = tmp_path / "old"
    old.mkdir()
    con = duckdb.connect(str(old / "t.duckdb"))
    con.execute("CREATE TABLE samples (series_id INTEGER, ts TIMESTAMP, value DOUBLE, "
                "quality UTINYINT)")
    con.close()
    with pytest.raises(StorageError, match="layout 1"):
        open_store(old)
