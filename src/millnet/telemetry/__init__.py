"""Telemetry storage: the :class:`TelemetryStore` seam and its embedded DuckDB implementation.

Samples go in as columnar batches (:meth:`TelemetryStore.write`), current values come from
memory (:meth:`TelemetryStore.last_values`), history from range and bucket queries that cover
the hot database and the Parquet archive alike. See :mod:`millnet.telemetry.base` for the
conventions (nanosecond timestamps stored at microsecond precision, half-open ranges).
"""

from millnet.telemetry.base import (
    ArchiveResult,
    Bucket,
    LastValue,
    SamplePoint,
    StoreStats,
    TelemetryStore,
)
from millnet.telemetry.duckdb_store import DuckDBTelemetryStore

__all__ = [
    "ArchiveResult",
    "Bucket",
    "DuckDBTelemetryStore",
    "LastValue",
    "SamplePoint",
    "StoreStats",
    "TelemetryStore",
]
