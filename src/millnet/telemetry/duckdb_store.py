"""The embedded telemetry store: one DuckDB file plus a Parquet archive.

Tables::

    numeric_samples (series_id INTEGER, ts_ms BIGINT, ts_us USMALLINT, value DOUBLE,
                  quality UTINYINT)                                                 numeric
    samples       view of numeric_samples as (series_id, ts TIMESTAMP, value, quality)
    text_samples  (series_id INTEGER, ts TIMESTAMP, value VARCHAR, quality UTINYINT) text
    last_values   (series_id INTEGER PRIMARY KEY, ts, value, text, quality)          current
    archive_files manifest of the Parquet archive (see :mod:`millnet.telemetry.archive`)
    store_meta    (key, value) bookkeeping; ``layout`` = ``2`` (this table layout)

Numeric, boolean and datetime values are stored as doubles; timestamps at microsecond precision
(floored). In ``numeric_samples`` a timestamp is split into milliseconds since the epoch
(``ts_ms``) and the microseconds within that millisecond (``ts_us``, 0..999, almost always 0:
Sparkplug and most sources send milliseconds, and a constant column costs nothing). DuckDB
compresses integers by frame-of-reference bitpacking, whose width is set by the range inside a
group of 2,048 values; where a compacted table passes from one series to the next, timestamps
jump back by up to a day, which costs about 10 bits less per value in milliseconds than in
microseconds (measured on ``millnet bench ingest``: 1.1 against 2.1 bytes per sample for that
column). :data:`~millnet.telemetry.sql.SAMPLES_TS` rebuilds the ``TIMESTAMP``; range predicates
go on ``ts_ms`` so that zone maps still skip row groups (:func:`~millnet.telemetry.sql.ts_range`).
Archive files keep the ``ts TIMESTAMP`` column.

The file uses 64 KiB blocks (:data:`BLOCK_SIZE`, DuckDB's default is 256 KiB): each column
segment of a row group occupies blocks of its own, so a segment of 150 KiB wasted 100 KiB of a
256 KiB block (about 0.8 bytes per sample on ``millnet bench ingest``). 32 KiB is too small:
DuckDB then stores 64-bit integers uncompressed. The block size is fixed when the file is
created; an existing file keeps its own. A file of the earlier layout 1 (a ``samples`` table
with ``ts TIMESTAMP``) is refused with a :class:`~millnet.errors.StorageError` rather than
converted; so is an unknown ``layout``.

Rows are appended in arrival order, which for live data is time order with all series
interleaved: cheap to insert, but DuckDB's per-column compression (ALP, bitpacking, RLE) then
sees neighbouring values of different series: about 4.1 bytes per sample on ``millnet bench
ingest`` (1,000 series, regular millisecond timestamps), 6.4 on ``benchmarks/bench_store.py``
(5 ms jitter); series ids cost 1.3, values 2.7. Sorting each batch by series measured worse
(timestamps then jump at every series boundary, 4.4). :meth:`compact` rewrites each closed day
sorted by series then time (2.3 bytes per sample on ``millnet bench ingest``, 3.1 on
``bench_store.py``) and lets zone maps skip other series; :meth:`archive_older_than` moves old
days to Parquet (about 1.4).

Current values live in memory and in ``last_values``, written in the same transaction as the
samples that moved them. They are loaded from there on open rather than rebuilt by an
``arg_max`` over ``samples``: that would let historical samples newer than the current value
take over after a restart, would lose the value kept by a stale mark and the values of series
whose samples are all archived, and would scan the whole table at every start.

Thread model. DuckDB connections are not thread-safe, so the store keeps one root connection
that only opens cursors (under a lock) and every call works on a cursor of its own, closed when
the call returns. ``write`` and ``mark_stale`` are serialised by a write lock (one writer is
expected: the ingest pipeline); ``archive_older_than`` and ``compact`` by a maintenance lock.
The writer, one maintenance call and any number of readers run concurrently, relying on DuckDB's
MVCC: each query runs in one transaction and so sees one consistent snapshot of hot rows and
archive manifest. The in-memory last values have their own lock. ``close`` waits for the writer
and maintenance, checkpoints and closes; stop readers first. A reader that keeps a transaction
open keeps deleted rows from being vacuumed, so queries fetch their results completely.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import numpy.typing as npt
import pyarrow as pa

from millnet.errors import ConfigError, InvalidInput, StorageError
from millnet.model import Quality, SampleBatch, TextSample
from millnet.telemetry import archive, compaction, sql
from millnet.telemetry.base import ArchiveResult, Bucket, LastValue, SamplePoint, StoreStats
from millnet.telemetry.batch import (
    NS_PER_US,
    NumericRows,
    TextRows,
    floor_day_us,
    validate_batch,
    validate_ids,
    validate_text,
    validate_ts,
)
from millnet.telemetry.lastvalues import (
    LastRows,
    LastValueIndex,
    candidates,
    latest_per_series,
)

_QUALITY = {int(q): q for q in Quality}
# store_meta key and value of the table layout this module reads and writes.
LAYOUT_KEY = "layout"
LAYOUT = "2"
# Bytes per block of a new database file (see the module docstring).
BLOCK_SIZE = 65_536

SCHEMA = [
    f"""CREATE TABLE IF NOT EXISTS {sql.NUMERIC} (
        series_id INTEGER NOT NULL, ts_ms BIGINT NOT NULL, ts_us USMALLINT NOT NULL,
        value DOUBLE NOT NULL, quality UTINYINT NOT NULL)""",
    # For ad hoc SQL and tools: the numeric samples with a TIMESTAMP, as in layout 1.
    f"CREATE VIEW IF NOT EXISTS samples AS SELECT {sql.SAMPLES_COLUMNS} FROM {sql.NUMERIC}",
    """CREATE TABLE IF NOT EXISTS text_samples (
        series_id INTEGER NOT NULL, ts TIMESTAMP NOT NULL, value VARCHAR NOT NULL,
        quality UTINYINT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS last_values (
        series_id INTEGER PRIMARY KEY, ts TIMESTAMP NOT NULL, value DOUBLE NOT NULL,
        text VARCHAR, quality UTINYINT NOT NULL)""",
    "CREATE TABLE IF NOT EXISTS store_meta (key VARCHAR NOT NULL, value VARCHAR NOT NULL)",
    archive.MANIFEST_DDL,
]


def _create_or_check(cur: Any, path: Path) -> None:
    """Create the tables of a new store; refuse a store of another layout."""
    tables = {r[0] for r in cur.execute(
        "SELECT table_name FROM duckdb_tables() "
        "WHERE database_name = current_database() AND schema_name = 'main'").fetchall()}
    if "samples" in tables:  # layout 1 had a table of that name, now a view
        raise StorageError(
            f"telemetry store {path} has layout 1 (samples.ts TIMESTAMP), this version reads "
            f"layout {LAYOUT} only; move the file away to start a new store")
    if sql.NUMERIC in tables:
        found = None
        if "store_meta" in tables:
            rows = cur.execute("SELECT value FROM store_meta WHERE key = ?",
                               [LAYOUT_KEY]).fetchall()
            found = rows[0][0] if rows else None
        if found != LAYOUT:
            raise StorageError(
                f"telemetry store {path} has layout {found}, this version reads layout "
                f"{LAYOUT} only; move the file away to start a new store")
    cur.execute("BEGIN TRANSACTION")
    for ddl in SCHEMA:
        cur.execute(ddl)
    if sql.NUMERIC not in tables:
        cur.execute("INSERT INTO store_meta VALUES (?, ?)", [LAYOUT_KEY, LAYOUT])
    cur.execute("COMMIT")


class DuckDBTelemetryStore:
    """A :class:`~millnet.telemetry.base.TelemetryStore` on an embedded DuckDB file."""

    def __init__(self, path: Path, archive_dir: Path, memory_limit: str = "1GB") -> None:
        self._path = Path(path)
        self._archive_dir = Path(archive_dir)
        self._cursor_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._maint_lock = threading.Lock()
        self._closed = False
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            self._archive_dir.mkdir(parents=True, exist_ok=True)
            # The block size applies to a new file only; an existing file keeps its own.
            self._con = duckdb.connect(str(self._path),
                                       config={"default_block_size": str(BLOCK_SIZE)})
        except (OSError, duckdb.Error) as exc:
            raise StorageError(f"cannot open telemetry store {self._path}: {exc}") from exc
        try:
            self._con.execute(f"SET memory_limit = {sql.sql_str(memory_limit)}")
        except duckdb.Error as exc:
            self._con.close()
            raise ConfigError("telemetry.memory_limit", str(exc)) from exc
        try:
            with self._cursor() as cur:
                _create_or_check(cur, self._path)
                archive.remove_pending(cur, self._archive_dir)
                table = cur.sql(
                    "SELECT series_id, ts, value, text, quality FROM last_values "
                    "ORDER BY series_id").to_arrow_table()
        except BaseException:
            self._con.close()
            raise
        self._last = LastValueIndex(LastRows.from_arrow(table))

    def __enter__(self) -> DuckDBTelemetryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _cursor(self) -> Iterator[Any]:
        with self._cursor_lock:
            if self._closed:
                raise StorageError("telemetry store is closed")
            cur = self._con.cursor()
        try:
            yield cur
        except (duckdb.Error, OSError, pa.ArrowException) as exc:  # OSError: archive files
            raise StorageError(f"telemetry store: {exc}") from exc
        finally:
            cur.close()  # rolls back a transaction left open by an error

    # -- writes ---------------------------------------------------------------------------------
    def write(
        self, batch: SampleBatch, text: Sequence[TextSample] = (), *, update_last: bool = True,
    ) -> None:
        """Insert numeric and text samples in one transaction.

        Guarantee: when this returns, every sample of ``batch`` and ``text`` is committed: in
        DuckDB's write-ahead log, which it fsyncs (``fdatasync``) on every commit with the
        default ``fsync_mode``, or, for a batch so large that DuckDB skips the log, in a
        checkpoint of the database file, also synced. The samples survive a crash of the
        process or of the machine (given storage that honours fsync), and readers see them.
        If it raises, nothing was written: validation happens before the transaction, and a
        failed transaction is rolled back (``InvalidInput`` for a malformed batch,
        ``StorageError`` for a store failure).

        The numeric batch goes in as one Arrow table over the numpy arrays (timestamps floored
        to microseconds). With ``update_last`` the current values move to each series' latest
        sample unless that is older than the current value; the new current values are written
        to ``last_values`` in the same transaction, so they survive restarts exactly.
        ``update_last=False`` (historical, store-and-forward data) never changes current values.
        """
        rows = validate_batch(batch)
        text_rows = validate_text(text) if text else None
        if not len(rows) and not text_rows:
            return
        with self._write_lock:
            changes = self._plan(rows, text_rows) if update_last else LastRows.empty()
            self._commit(rows, text_rows, changes)
            self._last.apply(changes)

    def mark_stale(self, series_ids: Sequence[int], ts_ns: int) -> None:
        """The source of these series went away at ``ts_ns`` (Sparkplug NDEATH/DDEATH).

        Writes one sample per series with value NaN and quality ``STALE`` at ``ts_ns`` and makes
        each current value ``STALE``, keeping its value and moving its timestamp to
        ``max(current, ts_ns)``. Same durability guarantee as :meth:`write`.
        """
        ids = validate_ids(series_ids)
        ts_us = validate_ts(ts_ns, "ts_ns") // NS_PER_US
        n = int(ids.shape[0])
        if not n:
            return
        rows = NumericRows(ids, np.full(n, ts_us, np.int64), np.full(n, np.nan),
                           np.full(n, Quality.STALE, np.uint8))
        with self._write_lock:
            changes = self._last.plan_stale(ids.astype(np.int64), ts_us)
            self._commit(rows, None, changes)
            self._last.apply(changes)

    def _plan(self, rows: NumericRows, text_rows: TextRows | None) -> LastRows:
        parts = []
        if len(rows):
            parts.append(candidates(rows.series_id, rows.ts_us, rows.value, None, rows.quality))
        if text_rows:
            parts.append(candidates(text_rows.series_id, text_rows.ts_us, None, text_rows.value,
                                    text_rows.quality))
        cand = parts[0]
        if len(parts) > 1:
            cand = LastRows.concat(parts)
            cand = cand.take(latest_per_series(cand.ids, cand.ts_us))
        return self._last.plan(cand)

    def _commit(self, rows: NumericRows, text_rows: TextRows | None, changes: LastRows) -> None:
        with self._cursor() as cur:
            cur.execute("BEGIN TRANSACTION")
            if len(rows):
                cur.register("batch_rows", rows.to_arrow())
                cur.execute(f"INSERT INTO {sql.NUMERIC} "
                            "SELECT series_id, ts_ms, ts_us, value, quality FROM batch_rows")
            if text_rows:
                cur.register("text_rows", text_rows.to_arrow())
                cur.execute("INSERT INTO text_samples SELECT series_id, ts, value, quality "
                            "FROM text_rows")
            if len(changes):
                cur.register("last_rows", changes.to_arrow())
                cur.execute("INSERT OR REPLACE INTO last_values "
                            "SELECT series_id, ts, value, text, quality FROM last_rows")
            cur.execute("COMMIT")

    # -- reads ----------------------------------------------------------------------------------
    def last_values(self, series_ids: Iterable[int]) -> dict[int, LastValue]:
        """Current values from memory (no database access); unknown series are left out."""
        return self._last.get(validate_ids(series_ids).astype(np.int64))

    def query_range(
        self, series_ids: Sequence[int], start_ns: int, end_ns: int, *, limit: int = 10_000,
    ) -> list[SamplePoint]:
        """Numeric and text samples with stored timestamp in ``[start_ns, end_ns)``.

        Ordered by series id then timestamp (ties in arbitrary order), at most ``limit`` rows:
        ask for one more than you show to detect truncation. Includes archived days.
        """
        if not isinstance(limit, int) or limit < 1:
            raise InvalidInput("must be a positive int", field="limit")
        ids, start_us, end_us = self._query_args(series_ids, start_ns, end_ns)
        if not ids.shape[0]:
            return []
        with self._cursor() as cur:
            cur.execute("BEGIN TRANSACTION")
            cur.register("query_ids", pa.table({"series_id": ids}))
            num = sql.source(cur, self._archive_dir, "samples", ids, start_us, end_us)
            txt = sql.source(cur, self._archive_dir, "text", ids, start_us, end_us)
            result = cur.execute(
                f"""SELECT series_id, epoch_us(ts) AS t,
                           CASE WHEN isnan(value) THEN NULL ELSE value END, NULL::VARCHAR,
                           quality FROM ({num})
                    UNION ALL
                    SELECT series_id, epoch_us(ts) AS t, NULL::DOUBLE, value, quality
                    FROM ({txt})
                    ORDER BY series_id, t LIMIT {limit}""").fetchall()
            cur.execute("COMMIT")
        return [SamplePoint(s, t * NS_PER_US, v, x, _QUALITY[q]) for s, t, v, x, q in result]

    def query_buckets(
        self, series_ids: Sequence[int], start_ns: int, end_ns: int, bucket_ns: int,
    ) -> list[Bucket]:
        """Aggregates per series and bucket, ordered by series id then bucket start.

        ``bucket_ns`` is the width in nanoseconds, a positive multiple of 1,000 (microsecond
        precision). Buckets are aligned to the Unix epoch (``start = ts - ts mod width``), so a
        range that does not start on a boundary has a partial first bucket. NaN values (stale
        markers) are ignored; buckets without any other value are left out. Text samples are
        not aggregated. Includes archived days.
        """
        if not isinstance(bucket_ns, int) or bucket_ns <= 0 or bucket_ns % NS_PER_US:
            raise InvalidInput("must be a positive multiple of 1000 ns", field="bucket_ns")
        width = bucket_ns // NS_PER_US
        ids, start_us, end_us = self._query_args(series_ids, start_ns, end_ns)
        if not ids.shape[0]:
            return []
        with self._cursor() as cur:
            cur.execute("BEGIN TRANSACTION")
            cur.register("query_ids", pa.table({"series_id": ids}))
            num = sql.source(cur, self._archive_dir, "samples", ids, start_us, end_us)
            result = cur.execute(
                f"""SELECT series_id, (epoch_us(ts) // {width}) * {width} AS bucket, count(*),
                           avg(value), min(value), max(value), arg_max(value, ts)
                    FROM ({num}) WHERE NOT isnan(value)
                    GROUP BY series_id, bucket ORDER BY series_id, bucket""").fetchall()
            cur.execute("COMMIT")
        return [Bucket(s, b * NS_PER_US, n, avg, lo, hi, last)
                for s, b, n, avg, lo, hi, last in result]

    def _query_args(self, series_ids: Sequence[int], start_ns: int,
                    end_ns: int) -> tuple[npt.NDArray[np.int32], int, int]:
        ids = validate_ids(series_ids)
        start = validate_ts(start_ns, "start_ns")
        end = validate_ts(end_ns, "end_ns")
        if end <= start:
            raise InvalidInput("must be greater than start_ns", field="end_ns")
        # A stored timestamp t (microseconds) is in range when start <= t * 1000 < end.
        return ids, sql.ceil_us(start), sql.ceil_us(end)

    # -- maintenance ----------------------------------------------------------------------------
    def archive_older_than(
        self, series_ids: Sequence[int], cutoff_ns: int, tenant: str,
    ) -> ArchiveResult:
        """Move every whole UTC day that ends at or before ``cutoff_ns`` to Parquet.

        Only rows of ``series_ids`` (the tenant's series) move, to
        ``<archive_dir>/tenant=<tenant>/day=YYYY-MM-DD/``. Each day is one transaction; see
        :mod:`millnet.telemetry.archive` for why a crash at any point neither loses nor
        duplicates rows. Archived rows stay visible to every query.
        """
        tenant = archive.check_tenant(tenant)
        ids = validate_ids(series_ids)
        cutoff_us = floor_day_us(validate_ts(cutoff_ns, "cutoff_ns") // NS_PER_US)
        days: list[str] = []
        files: list[str] = []
        rows = text_rows = size = 0
        if not ids.shape[0]:
            return ArchiveResult(tenant, (), 0, 0, (), 0)
        with self._maint_lock, self._cursor() as cur:
            cur.register("archive_ids", pa.table({"series_id": ids}))
            base = (f"series_id BETWEEN {int(ids[0])} AND {int(ids[-1])} "
                    f"AND series_id IN (SELECT series_id FROM archive_ids)")
            before = {t: sql.ts_range(t, None, cutoff_us) for t in (sql.NUMERIC, "text")}
            found = cur.execute(
                f"""SELECT DISTINCT {sql.day_expr(sql.NUMERIC)} AS day FROM {sql.NUMERIC}
                    WHERE {base} AND {before[sql.NUMERIC]}
                    UNION SELECT DISTINCT {sql.day_expr('text_samples')} FROM text_samples
                    WHERE {base} AND {before['text']} ORDER BY day""").fetchall()
            for (day,) in found:
                moved = archive.archive_day(cur, self._archive_dir, tenant, day, base,
                                            sql.day_us(day))
                days.append(day.isoformat())
                files.extend(moved.files)
                rows += moved.rows
                text_rows += moved.text_rows
                size += moved.bytes
        return ArchiveResult(tenant, tuple(days), rows, text_rows, tuple(files), size)

    def compact(self, before_ns: int, *, chunk_rows: int = 2_000_000) -> int:
        """Rewrite each not yet compacted UTC day before ``before_ns`` sorted by series, time.

        See :mod:`millnet.telemetry.compaction`; runs beside the writer and readers. Returns
        the number of rows rewritten.
        """
        cutoff_us = floor_day_us(validate_ts(before_ns, "before_ns") // NS_PER_US)
        if not isinstance(chunk_rows, int) or chunk_rows < 1:
            raise InvalidInput("must be a positive int", field="chunk_rows")
        with self._maint_lock, self._cursor() as cur:
            return compaction.compact_days(cur, cutoff_us, chunk_rows)

    def checkpoint(self) -> None:
        """Merge the write-ahead log into the database file (DuckDB ``CHECKPOINT``)."""
        with self._cursor() as cur:
            cur.execute("CHECKPOINT")

    def count_samples(self) -> tuple[int, int]:
        """Hot numeric and text samples stored, and how many distinct (series, timestamp)
        pairs they hold (benchmarks and tests use the difference to find duplicates)."""
        with self._cursor() as cur:
            total, distinct = cur.execute(
                f"""SELECT (SELECT count(*) FROM {sql.NUMERIC})
                         + (SELECT count(*) FROM text_samples),
                    (SELECT count(*) FROM (SELECT DISTINCT series_id, ts_ms, ts_us
                                            FROM {sql.NUMERIC}))
                    + (SELECT count(*) FROM (SELECT DISTINCT series_id, ts FROM text_samples))"""
            ).fetchall()[0]
        return int(total), int(distinct)

    def stats(self) -> StoreStats:
        with self._cursor() as cur:
            rows, text_rows = cur.execute(
                f"SELECT (SELECT count(*) FROM {sql.NUMERIC}), (SELECT count(*) FROM text_samples)"
            ).fetchall()[0]
            a_rows, a_text, a_files, a_bytes = cur.execute(
                """SELECT coalesce(sum(rows) FILTER (WHERE kind = 'samples'), 0),
                          coalesce(sum(rows) FILTER (WHERE kind = 'text'), 0),
                          count(*), coalesce(sum(bytes), 0)
                   FROM archive_files WHERE state = 'done'""").fetchall()[0]
            block_size, used_blocks = cur.execute(
                "SELECT block_size, used_blocks FROM pragma_database_size() "
                "WHERE database_name = current_database()").fetchall()[0]
        wal = Path(f"{self._path}.wal")
        return StoreStats(
            rows=int(rows), text_rows=int(text_rows), archived_rows=int(a_rows),
            archived_text_rows=int(a_text), archive_files=int(a_files),
            archive_bytes=int(a_bytes), db_file_bytes=self._path.stat().st_size,
            db_used_bytes=int(block_size) * int(used_blocks),
            wal_bytes=wal.stat().st_size if wal.exists() else 0, series=len(self._last),
        )

    def close(self) -> None:
        """Wait for the writer and maintenance, checkpoint, close. Idempotent."""
        with self._write_lock, self._maint_lock:
            with self._cursor_lock:
                if self._closed:
                    return
                self._closed = True
            try:
                self._con.execute("CHECKPOINT")
            except duckdb.Error as exc:
                raise StorageError(f"checkpoint on close failed: {exc}") from exc
            finally:
                self._con.close()
