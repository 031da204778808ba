"""Continuous roll-ups: per series and minute (``1m``) or hour (``1h``) the count, sum, min, max,
first and last (time and value) of its samples, kept from the ingest stream so that dashboards
never scan raw samples.

:class:`Rollups` is a :class:`~millnet.ingest.tap.SampleTap`: each chunk (live and historical
alike) is grouped by series and bucket with numpy and merged into the aggregates held since the
last flush. Only GOOD and UNCERTAIN samples count; NaN is skipped. Every aggregate merges with
any other of the same bucket (sums add, min/max compare, the earliest first and latest last
win), so a flush adds what was held to the stored rows (``INSERT ... ON CONFLICT DO UPDATE``,
one statement per table over an Arrow table): a late sample merges into a closed bucket, and a
restart loses nothing that was flushed. :meth:`Rollups.run` flushes, in a thread, as soon as
the stream passes a minute boundary (buckets closed; what is held of open ones goes along) and
every ``open_flush_s`` otherwise.

Tables, in a DuckDB file of their own (beside the telemetry store, so neither waits for the
other's writer)::

    rollup_1m, rollup_1h (series_id INTEGER, bucket_ns BIGINT, n BIGINT, total DOUBLE,
        lo DOUBLE, hi DOUBLE, first_ns BIGINT, first_value DOUBLE, last_ns BIGINT,
        last_value DOUBLE, PRIMARY KEY (series_id, bucket_ns))

``bucket_ns`` is the bucket's start (epoch aligned, UTC nanoseconds), ``n`` the sample count
and ``total`` their sum. Queries read these tables and what is held in memory, never raw data.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import numpy.typing as npt
import pyarrow as pa

from millnet.errors import InvalidInput, StorageError
from millnet.model import SampleBatch, TextSample

log = logging.getLogger(__name__)

NS_PER_S = 1_000_000_000
WIDTHS: dict[str, int] = {"1m": 60 * NS_PER_S, "1h": 3600 * NS_PER_S}
COLUMNS = ("series_id", "bucket_ns", "n", "total", "lo", "hi", "first_ns", "first_value",
           "last_ns", "last_value")
Agg = dict[str, npt.NDArray[Any]]


@dataclass(frozen=True, slots=True)
class RollupRow:
    series_id: int
    bucket_ns: int
    count: int
    sum: float
    min: float
    max: float
    first_ns: int
    first: float
    last_ns: int
    last: float


def _empty() -> Agg:
    i64, f64 = np.empty(0, np.int64), np.empty(0, np.float64)
    return {"series_id": i64, "bucket_ns": i64, "n": i64, "total": f64, "lo": f64, "hi": f64,
            "first_ns": i64, "first_value": f64, "last_ns": i64, "last_value": f64}


def _starts(sid: npt.NDArray[np.int64], bucket: npt.NDArray[np.int64]) -> npt.NDArray[np.intp]:
    """Where each (series, bucket) group begins in arrays sorted by both."""
    change = (sid[1:] != sid[:-1]) | (bucket[1:] != bucket[:-1])
    return np.flatnonzero(np.concatenate(([True], change)))


def _reduce(parts: Agg) -> Agg:
    """Merge rows of equal (series, bucket) into one (any number, in any order)."""
    n = parts["series_id"].size
    if not n:
        return parts
    sid, bucket = parts["series_id"], parts["bucket_ns"]
    # lexsort is stable: among equal times the later row (later arrival) stays later.
    by_first = np.lexsort((parts["first_ns"], bucket, sid))
    by_last = np.lexsort((parts["last_ns"], bucket, sid))
    starts = _starts(sid[by_first], bucket[by_first])
    ends = np.concatenate((starts[1:], [n])) - 1
    out: Agg = {"series_id": sid[by_first][starts], "bucket_ns": bucket[by_first][starts]}
    out["n"] = np.add.reduceat(parts["n"][by_first], starts)
    out["total"] = np.add.reduceat(parts["total"][by_first], starts)
    out["lo"] = np.minimum.reduceat(parts["lo"][by_first], starts)
    out["hi"] = np.maximum.reduceat(parts["hi"][by_first], starts)
    out["first_ns"] = parts["first_ns"][by_first][starts]
    out["first_value"] = parts["first_value"][by_first][starts]
    out["last_ns"] = parts["last_ns"][by_last][ends]
    out["last_value"] = parts["last_value"][by_last][ends]
    return out


def aggregate(sid: npt.NDArray[Any], ts_ns: npt.NDArray[np.int64],
              value: npt.NDArray[np.float64], width_ns: int) -> Agg:
    """One row per (series, bucket) of the samples given (already filtered)."""
    sid64 = sid.astype(np.int64)
    bucket = ts_ns // width_ns * width_ns
    return _reduce({"series_id": sid64, "bucket_ns": bucket, "n": np.ones(sid.size, np.int64),
                    "total": value, "lo": value, "hi": value, "first_ns": ts_ns,
                    "first_value": value, "last_ns": ts_ns, "last_value": value})


def merge(*aggs: Agg) -> Agg:
    return _reduce({c: np.concatenate([a[c] for a in aggs]) for c in COLUMNS})


def _select(agg: Agg, ids: npt.NDArray[np.int64], start_ns: int, end_ns: int) -> Agg:
    keep = (np.isin(agg["series_id"], ids) & (agg["bucket_ns"] >= start_ns)
            & (agg["bucket_ns"] < end_ns))
    return {c: agg[c][keep] for c in COLUMNS}


def rows_of(agg: Agg) -> list[RollupRow]:
    cols = [agg[c].tolist() for c in COLUMNS]
    return [RollupRow(*r) for r in zip(*cols, strict=True)]


def width_of(width: str) -> int:
    try:
        return WIDTHS[width]
    except KeyError:
        raise InvalidInput(f"roll-ups are 1m or 1h, not {width!r}", "width") from None


class RollupStore:
    """The roll-up tables in a DuckDB file; blocking (run it in a thread), thread-safe."""

    def __init__(self, path: Path) -> None:
        self._lock = threading.Lock()
        try:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            self._con = duckdb.connect(str(path))
            for width in WIDTHS:
                self._con.execute(f"""CREATE TABLE IF NOT EXISTS rollup_{width} (
                    series_id INTEGER NOT NULL, bucket_ns BIGINT NOT NULL, n BIGINT NOT NULL,
                    total DOUBLE NOT NULL, lo DOUBLE NOT NULL, hi DOUBLE NOT NULL,
                    first_ns BIGINT NOT NULL, first_value DOUBLE NOT NULL,
                    last_ns BIGINT NOT NULL, last_value DOUBLE NOT NULL,
                    PRIMARY KEY (series_id, bucket_ns))""")
        except (OSError, duckdb.Error) as exc:
            raise StorageError(f"cannot open roll-up store {path}: {exc}") from exc

    @contextlib.contextmanager
    def _cursor(self) -> Iterator[Any]:
        with self._lock:
            cur = self._con.cursor()
            try:
                yield cur
            except duckdb.Error as exc:
                raise StorageError(f"roll-up store: {exc}") from exc
            finally:
                cur.close()

    def merge(self, width: str, agg: Agg) -> None:
        """Add ``agg`` (one row per key) to the stored rows, in one statement."""
        if not agg["series_id"].size:
            return
        table = f"rollup_{width}"
        batch = pa.table({c: agg[c] for c in COLUMNS})
        with self._cursor() as cur:
            cur.register("incoming", batch)
            cur.execute(f"""INSERT INTO {table} SELECT * FROM incoming
                ON CONFLICT (series_id, bucket_ns) DO UPDATE SET
                  n = {table}.n + excluded.n, total = {table}.total + excluded.total,
                  lo = least({table}.lo, excluded.lo), hi = greatest({table}.hi, excluded.hi),
                  first_value = CASE WHEN excluded.first_ns < {table}.first_ns
                      THEN excluded.first_value ELSE {table}.first_value END,
                  first_ns = least({table}.first_ns, excluded.first_ns),
                  last_value = CASE WHEN excluded.last_ns >= {table}.last_ns
                      THEN excluded.last_value ELSE {table}.last_value END,
                  last_ns = greatest({table}.last_ns, excluded.last_ns)""")
            cur.unregister("incoming")

    def read(self, width: str, series_ids: Sequence[int], start_ns: int, end_ns: int) -> Agg:
        """Stored rows of buckets starting in ``[start_ns, end_ns)``."""
        if width not in WIDTHS:
            raise InvalidInput(f"roll-ups are 1m or 1h, not {width!r}", "width")
        with self._cursor() as cur:
            found = cur.execute(
                f"SELECT {', '.join(COLUMNS)} FROM rollup_{width} WHERE series_id IN "
                "(SELECT unnest(?::BIGINT[])) AND bucket_ns >= ? AND bucket_ns < ? "
                "ORDER BY series_id, bucket_ns",
                [list(series_ids), start_ns, end_ns]).fetchnumpy()
        return {c: np.asarray(found[c], _empty()[c].dtype) for c in COLUMNS}

    def close(self) -> None:
        with self._lock:
            self._con.close()


class Rollups:
    """The roll-up tap: aggregates held on the event loop, written by :meth:`flush`."""

    name = "rollups"

    def __init__(self, store: RollupStore, *, open_flush_s: float = 10.0) -> None:
        self.store = store
        self.open_flush_s = open_flush_s
        self._held: dict[str, Agg] = {w: _empty() for w in WIDTHS}
        self._newest_minute = 0
        self._closed = asyncio.Event()
        self._lock = asyncio.Lock()

    def on_samples(self, batch: SampleBatch, text: Sequence[TextSample], *,
                   historical: bool, received_ns: int) -> None:
        if not len(batch):
            return
        keep = (batch.quality <= 1) & ~np.isnan(batch.value)
        if not keep.all():
            batch = SampleBatch(batch.series_id[keep], batch.ts_ns[keep], batch.value[keep],
                                batch.quality[keep])
            if not len(batch):
                return
        for width, width_ns in WIDTHS.items():
            part = aggregate(batch.series_id, batch.ts_ns, batch.value, width_ns)
            self._held[width] = merge(self._held[width], part)
        minute = int(batch.ts_ns.max()) // WIDTHS["1m"]
        if minute > self._newest_minute:
            if self._newest_minute:
                self._closed.set()  # the stream left a minute: its buckets are complete
            self._newest_minute = minute

    async def flush(self) -> None:
        """Write what is held (in a thread); kept for the next flush if the store fails."""
        async with self._lock:
            held, self._held = self._held, {w: _empty() for w in WIDTHS}
            try:
                await asyncio.to_thread(self._write, held)
            except StorageError as exc:
                log.warning("roll-ups not written, kept for the next flush: %s", exc)
                self._held = {w: merge(held[w], self._held[w]) for w in WIDTHS}

    def _write(self, held: dict[str, Agg]) -> None:
        for width, agg in held.items():
            self.store.merge(width, agg)

    async def run(self) -> None:
        """Flush when a minute closes and every ``open_flush_s``; once more when cancelled."""
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.open_flush_s):
                        await self._closed.wait()
                self._closed.clear()
                await self.flush()
        except asyncio.CancelledError:
            await self.flush()
            raise

    async def query(self, series_ids: Sequence[int], width: str, start_ns: int,
                    end_ns: int) -> list[RollupRow]:
        """Buckets of ``width`` starting in ``[start_ns, end_ns)``, by series then time: the
        stored rows merged with what is held."""
        width_of(width)
        ids = np.asarray(series_ids, np.int64)
        async with self._lock:  # no flush between reading memory and the table
            held = _select(self._held[width], ids, start_ns, end_ns)
            stored = await asyncio.to_thread(self.store.read, width, series_ids, start_ns,
                                             end_ns)
        return rows_of(merge(stored, held))
