"""The telemetry store seam: result types and the :class:`TelemetryStore` protocol.

Everything a store returns is a frozen dataclass of plain values (ints, floats, strings, ``None``,
:class:`~millnet.model.Quality`, which is an ``IntEnum``), so an HTTP API can serialise results
with msgspec, orjson or ``dataclasses.asdict`` without conversion.

Conventions shared by every implementation:

* Timestamps are ``int`` nanoseconds since the Unix epoch, UTC. Stores keep **microsecond**
  precision: a sample's timestamp is floored to the microsecond on write, and every timestamp a
  store returns is a multiple of 1,000.
* Time ranges are half-open, ``[start_ns, end_ns)``.
* A numeric value that is NaN (a stale marker, a failed reading) is returned as ``None``, since
  JSON has no NaN.
* Bucket aggregates ignore NaN values, so stale markers do not poison averages.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from millnet.model import Quality, SampleBatch, TextSample


@dataclass(frozen=True, slots=True)
class LastValue:
    """The current value of one series.

    ``value`` is ``None`` for a text series or when the latest value is NaN; ``text`` is ``None``
    for a numeric series. After :meth:`TelemetryStore.mark_stale` the value is kept, ``quality``
    is ``STALE`` and ``ts_ns`` is the time the source went away.
    """

    ts_ns: int
    value: float | None
    text: str | None
    quality: Quality


@dataclass(frozen=True, slots=True)
class SamplePoint:
    """One stored sample, numeric or text (exactly one of ``value``/``text`` may be set)."""

    series_id: int
    ts_ns: int
    value: float | None
    text: str | None
    quality: Quality


@dataclass(frozen=True, slots=True)
class Bucket:
    """Aggregates of one series over ``[start_ns, start_ns + width)``; NaN values excluded.

    ``last`` is the value with the greatest timestamp in the bucket. Buckets without a non-NaN
    sample are not returned.
    """

    series_id: int
    start_ns: int
    count: int
    avg: float
    min: float
    max: float
    last: float


@dataclass(frozen=True, slots=True)
class ArchiveResult:
    """What :meth:`TelemetryStore.archive_older_than` moved to cold storage."""

    tenant: str
    days: tuple[str, ...]  # ISO dates (UTC) that had rows to move
    rows: int  # numeric samples moved
    text_rows: int  # text samples moved
    files: tuple[str, ...]  # archive files written, relative to the archive directory
    bytes: int  # total size of those files


@dataclass(frozen=True, slots=True)
class StoreStats:
    """Sizes and counts; ``db_used_bytes / rows`` after a checkpoint is bytes per stored point."""

    rows: int  # numeric samples in the hot store
    text_rows: int
    archived_rows: int  # numeric samples in archive files
    archived_text_rows: int
    archive_files: int
    archive_bytes: int
    db_file_bytes: int  # size of the database file (free blocks included)
    db_used_bytes: int  # bytes in used blocks of the database file
    wal_bytes: int  # not yet checkpointed
    series: int  # series with a current value


@runtime_checkable
class TelemetryStore(Protocol):
    """What the platform needs from a telemetry store (DuckDB embedded now, ClickHouse later).

    Thread model: one writer (``write``, ``mark_stale``) and any number of concurrent readers;
    maintenance (``archive_older_than``, ``compact``) may run in another thread beside both.
    Every method is synchronous and may block on I/O: call it from a worker thread
    (``asyncio.to_thread``), never from the event loop.
    """

    def write(
        self, batch: SampleBatch, text: Sequence[TextSample] = (), *, update_last: bool = True,
    ) -> None:
        """Store numeric and text samples atomically; durable when it returns.

        ``update_last=False`` marks historical (store-and-forward) samples: stored and
        queryable, but they never change :meth:`last_values`. Raises
        :class:`~millnet.errors.InvalidInput` for a malformed batch and
        :class:`~millnet.errors.StorageError` when the store fails; either way nothing was
        written.
        """
        ...

    def mark_stale(self, series_ids: Sequence[int], ts_ns: int) -> None:
        """Record that the source of these series went away at ``ts_ns``."""
        ...

    def last_values(self, series_ids: Iterable[int]) -> dict[int, LastValue]:
        """Current values of the given series; unknown series are left out."""
        ...

    def query_range(
        self, series_ids: Sequence[int], start_ns: int, end_ns: int, *, limit: int = 10_000,
    ) -> list[SamplePoint]:
        """Raw samples ordered by series then time, at most ``limit`` of them."""
        ...

    def query_buckets(
        self, series_ids: Sequence[int], start_ns: int, end_ns: int, bucket_ns: int,
    ) -> list[Bucket]:
        """Per-series aggregates over epoch-aligned buckets of ``bucket_ns`` nanoseconds."""
        ...

    def archive_older_than(
        self, series_ids: Sequence[int], cutoff_ns: int, tenant: str,
    ) -> ArchiveResult:
        """Move whole UTC days before ``cutoff_ns`` of these series to cold storage."""
        ...

    def compact(self, before_ns: int) -> int:
        """Reorganise closed days before ``before_ns`` for size and speed; returns rows moved.

        A store that organises itself (ClickHouse merges) returns 0.
        """
        ...

    def stats(self) -> StoreStats:
        """Row counts and sizes."""
        ...

    def close(self) -> None:
        """Flush and release the store; it cannot be used afterwards."""
        ...
