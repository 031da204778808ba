"""Cold storage: whole UTC days of samples moved from DuckDB to Parquet files.

Layout (hive style, one directory per tenant and day)::

    <archive_dir>/tenant=<tenant>/day=YYYY-MM-DD/part-<uuid>.parquet   numeric samples
    <archive_dir>/tenant=<tenant>/day=YYYY-MM-DD/text-<uuid>.parquet   text samples

Files are zstd-compressed Parquet with the table's columns, sorted by series then time, and
never change once written; any Parquet reader can use them. The ``archive_files`` table in the
database is the manifest: queries read exactly the files it lists as ``done``, never a directory
glob, so a file is visible if and only if the transaction that deleted its rows from the hot
tables committed.

Crash safety, step by step for one day:

1. commit manifest rows in state ``pending`` naming the files about to be written;
2. in one transaction: write the day's rows (from that transaction's snapshot, sorted) to a
   temporary file, fsync it, rename it to its final name and fsync the directory; delete
   exactly those rows from the hot tables (checking the counts) and flip the manifest rows to
   ``done``; commit.

A crash before step 2 commits leaves the rows in the hot tables and a ``pending`` file that no
query reads; :func:`remove_pending` deletes it on the next open. A crash after the commit loses
nothing either: the file was durable before the commit. So there is never loss and never a
duplicate row, and the query path needs no deduplication. Rows written concurrently for an
archived day (late store-and-forward data) are not in the snapshot, stay hot, and go to another
part file on the next run.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import logging
import os
import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from millnet.errors import InvalidInput, StorageError
from millnet.telemetry.batch import US_PER_DAY
from millnet.telemetry.sql import NUMERIC, columns, sql_str, ts_range

__all__ = ["MANIFEST_DDL", "archive_day", "check_tenant", "remove_pending", "sql_str"]

log = logging.getLogger("millnet.telemetry")

TENANT_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
ROW_GROUP_ROWS = 1_048_576
# Per-column encodings (measured on bench_store.py's plant signals, sorted by series and time):
# delta-encoded timestamps and series ids, dictionary-encoded values (pyarrow falls back to
# plain when a chunk has too many distinct values), zstd level 6 on top; about 0.9-1.4 bytes per
# sample. DuckDB's COPY TO offers no per-column choice and adds bloom filters: 2.1.
PARQUET_OPTIONS: dict[str, Any] = {
    "compression": "zstd",
    "compression_level": 6,  # pyarrow defaults to 1; 6 is 15 % smaller for 1.5x the time
    "use_dictionary": ["value", "quality"],
    "column_encoding": {"series_id": "DELTA_BINARY_PACKED", "ts": "DELTA_BINARY_PACKED"},
    "data_page_version": "2.0",
    # No min/max for values: writers leave NaN out of them, and DuckDB then folds isnan(value)
    # to false for the whole chunk (found by the property test). Queries never prune by value.
    "write_statistics": ["series_id", "ts", "quality"],
}

MANIFEST_DDL = """
CREATE TABLE IF NOT EXISTS archive_files (
    path VARCHAR NOT NULL,        -- relative to the archive directory
    kind VARCHAR NOT NULL,        -- 'samples' | 'text'
    tenant VARCHAR NOT NULL,
    day DATE NOT NULL,
    min_series INTEGER NOT NULL,
    max_series INTEGER NOT NULL,
    rows BIGINT NOT NULL,
    bytes BIGINT NOT NULL,
    state VARCHAR NOT NULL        -- 'pending' | 'done'
)
"""

_TABLES = {"samples": NUMERIC, "text": "text_samples"}
_PREFIX = {"samples": "part", "text": "text"}


def check_tenant(tenant: str) -> str:
    if not isinstance(tenant, str) or not TENANT_RE.fullmatch(tenant):
        raise InvalidInput("must be 1-64 characters of letters, digits, '_', '.', '-'",
                           field="tenant")
    return tenant


def _fsync_path(path: Path, *, directory: bool = False) -> None:
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if directory else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _make_dirs(root: Path, rel: Path) -> None:
    """Create ``root/rel`` and fsync each parent whose entries changed."""
    path = root
    for part in rel.parts:
        parent, path = path, path / part
        if not path.is_dir():
            path.mkdir(exist_ok=True)
            _fsync_path(parent, directory=True)


@dataclass(frozen=True, slots=True)
class DayResult:
    rows: int
    text_rows: int
    files: tuple[str, ...]
    bytes: int


def remove_pending(cur: Any, root: Path) -> int:
    """Delete files of archive runs that never committed, and their manifest rows."""
    pending = [r[0] for r in cur.execute(
        "SELECT path FROM archive_files WHERE state = 'pending'").fetchall()]
    for rel in pending:
        for path in (root / rel, root / (rel + ".tmp")):
            path.unlink(missing_ok=True)
    if pending:
        log.warning("removed %d archive files of an interrupted archive run", len(pending))
        cur.execute("DELETE FROM archive_files WHERE state = 'pending'")
    return len(pending)


def archive_day(cur: Any, root: Path, tenant: str, day: dt.date, predicate: str,
                start_us: int) -> DayResult:
    """Move the rows of the day starting at ``start_us`` matching ``predicate`` (over
    ``series_id``) to Parquet.

    ``cur`` is a cursor with no open transaction. On any error the hot tables are unchanged and
    the files of this run are removed (or left ``pending`` for :func:`remove_pending`).
    """
    token = uuid.uuid4().hex
    rel_dir = Path(f"tenant={tenant}") / f"day={day.isoformat()}"
    rels = {kind: str(rel_dir / f"{_PREFIX[kind]}-{token}.parquet") for kind in _TABLES}
    cur.execute("BEGIN TRANSACTION")
    for kind, rel in rels.items():
        cur.execute(
            "INSERT INTO archive_files VALUES (?, ?, ?, ?, 0, 0, 0, 0, 'pending')",
            [rel, kind, tenant, day])
    cur.execute("COMMIT")
    try:
        _make_dirs(root, rel_dir)
        return _move(cur, root, rels, tenant, day, predicate, start_us)
    except BaseException:
        _discard(cur, root, list(rels.values()))
        raise


def _discard(cur: Any, root: Path, rels: list[str]) -> None:
    """Undo an archive run whose move did not commit."""
    done = {r[0] for r in cur.execute(
        "SELECT path FROM archive_files WHERE state = 'done' AND list_contains(?, path)",
        [rels]).fetchall()}
    for rel in rels:
        if rel not in done:
            (root / rel).unlink(missing_ok=True)
            (root / (rel + ".tmp")).unlink(missing_ok=True)
    cur.execute("DELETE FROM archive_files WHERE state = 'pending' AND list_contains(?, path)",
                [rels])


def _move(cur: Any, root: Path, rels: dict[str, str], tenant: str, day: dt.date,
          predicate: str, start_us: int) -> DayResult:
    cur.execute("BEGIN TRANSACTION")
    try:
        result = _copy_and_delete(cur, root, rels, tenant, day, predicate, start_us)
        cur.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(duckdb.TransactionException):  # none open if COMMIT failed
            cur.execute("ROLLBACK")
        raise
    return result


def _write_parquet(cur: Any, select: str, path: Path) -> tuple[int, int, int]:
    """Stream ``select`` into a Parquet file; returns (rows, min series id, max series id)."""
    reader = cur.sql(select).to_arrow_reader(ROW_GROUP_ROWS)
    rows, lo, hi = 0, 2**31, -1
    pending = reader.schema.empty_table()
    with pq.ParquetWriter(path, reader.schema, **PARQUET_OPTIONS) as writer:
        # DuckDB hands out batches of ~123k rows; full row groups compress better.
        for chunk in itertools.chain(reader, [None]):
            if chunk is not None and chunk.num_rows:
                bounds = pc.min_max(chunk.column("series_id"))
                lo, hi = min(lo, bounds["min"].as_py()), max(hi, bounds["max"].as_py())
                pending = pa.concat_tables([pending, pa.Table.from_batches([chunk])])
                rows += chunk.num_rows
            while pending.num_rows >= ROW_GROUP_ROWS or (chunk is None and pending.num_rows):
                group = pending.slice(0, ROW_GROUP_ROWS).combine_chunks()
                writer.write_table(group, row_group_size=ROW_GROUP_ROWS)
                pending = pending.slice(ROW_GROUP_ROWS)
    return rows, lo, hi


def _copy_and_delete(cur: Any, root: Path, rels: dict[str, str], tenant: str, day: dt.date,
                     base: str, start_us: int) -> DayResult:
    counts: dict[str, int] = {}
    written: list[str] = []
    size = 0
    for kind, rel in rels.items():
        table, final = _TABLES[kind], root / rel
        tmp = root / (rel + ".tmp")
        predicate = f"{base} AND {ts_range(table, start_us, start_us + US_PER_DAY)}"
        select = f"SELECT {columns(table)} FROM {table} WHERE {predicate} ORDER BY series_id, ts"
        counts[kind], lo, hi = _write_parquet(cur, select, tmp)
        if counts[kind] == 0:
            tmp.unlink(missing_ok=True)
            cur.execute("DELETE FROM archive_files WHERE path = ?", [rel])
            continue
        _fsync_path(tmp)
        os.replace(tmp, final)
        _fsync_path(final.parent, directory=True)
        deleted = int(cur.execute(f"DELETE FROM {table} WHERE {predicate}").fetchall()[0][0])
        if deleted != counts[kind]:
            raise StorageError(f"archive of {table} {day}: copied {counts[kind]} rows but "
                               f"would delete {deleted}; nothing was changed")
        nbytes = final.stat().st_size
        cur.execute("DELETE FROM archive_files WHERE path = ?", [rel])
        cur.execute("INSERT INTO archive_files VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'done')",
                    [rel, kind, tenant, day, lo, hi, counts[kind], nbytes])
        written.append(rel)
        size += nbytes
    return DayResult(counts["samples"], counts["text"], tuple(written), size)
