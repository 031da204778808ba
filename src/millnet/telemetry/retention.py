"""Telemetry maintenance: per-tenant retention to the Parquet archive, and compaction.

Runs beside ingest (the store allows one maintenance thread next to its writer and readers).
The store does not know tenants; the caller supplies, each round, which series belong to which
tenant and how many days that tenant keeps hot.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from millnet.errors import StorageError
from millnet.telemetry.base import ArchiveResult, TelemetryStore

log = logging.getLogger("millnet.telemetry")

NS_PER_DAY = 86_400 * 10**9


@dataclass(frozen=True, slots=True)
class TenantRetention:
    tenant: str
    series_ids: Sequence[int]
    days: int


def maintain_once(store: TelemetryStore, tenants: Sequence[TenantRetention],
                  now_ns: int) -> list[ArchiveResult]:
    """Archive what each tenant no longer keeps hot, then compact closed days."""
    results = []
    for t in tenants:
        result = store.archive_older_than(t.series_ids, now_ns - t.days * NS_PER_DAY, t.tenant)
        if result.rows or result.text_rows:
            log.info("archived %d samples of tenant %s (%s) to %d Parquet files",
                     result.rows + result.text_rows, t.tenant, ", ".join(result.days),
                     len(result.files))
        results.append(result)
    moved = store.compact(now_ns)
    if moved:
        log.info("compacted %d samples of closed days", moved)
    return results


async def run_maintenance(
    store: TelemetryStore, tenants: Callable[[], Sequence[TenantRetention]], *,
    every_s: float = 3600.0, first_after_s: float = 60.0,
) -> None:
    """Maintain the store every ``every_s`` seconds until cancelled; failures are retried."""
    await asyncio.sleep(first_after_s)
    while True:
        try:
            await asyncio.to_thread(lambda: maintain_once(store, tenants(), time.time_ns()))
        except StorageError as exc:
            log.error("telemetry maintenance failed, retrying next round: %s", exc)
        await asyncio.sleep(every_s)
