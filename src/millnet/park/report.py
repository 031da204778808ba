"""A park member's summaries: per shift instance of its KPI calendar, the parts made (good,
scrap), the energy used, and the OEE with its factors, computed where the data is. Only these
figures go up (``park.summary``), never telemetry."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from millnet.errors import StorageError
from millnet.kpi.report import KpiRow
from millnet.kpi.tracker import KpiTracker
from millnet.park.settings import ParkSection
from millnet.registry import Registry
from millnet.telemetry.base import TelemetryStore

log = logging.getLogger("millnet.park")
KIND = "park.summary"
DAY_NS = 86_400 * 1_000_000_000
BUCKET_NS = 60 * 1_000_000_000


def energy_kwh(registry: Registry, telemetry: TelemetryStore, section: ParkSection,
               start_ns: int, end_ns: int) -> float | None:
    """The energy of every device's ``energy_point`` over ``[start_ns, end_ns)``: power (kW)
    integrated minute by minute (a minute without a sample counts nothing), or a meter's
    increase; None when no device has the point."""
    series = [p.series_id for t in registry.list_tenants()
              for p in registry.list_points(t.id) if p.name == section.energy_point]
    if not series or end_ns <= start_ns:
        return None
    buckets = telemetry.query_buckets(series, start_ns, end_ns, BUCKET_NS)
    if not section.energy_counter:
        total = 0.0
        for b in buckets:
            lo, hi = max(b.start_ns, start_ns), min(b.start_ns + BUCKET_NS, end_ns)
            total += b.avg * (hi - lo) / 3.6e12  # kW x ns -> kWh
        return total
    low: dict[int, float] = {}
    high: dict[int, float] = {}
    for b in buckets:
        low[b.series_id] = min(low.get(b.series_id, b.min), b.min)
        high[b.series_id] = max(high.get(b.series_id, b.max), b.max)
    return sum(high[s] - low[s] for s in high)


def summary_body(row: KpiRow, energy: float | None, now: datetime) -> dict[str, Any]:
    assert row.start_ns is not None and row.end_ns is not None
    e, k = row.elements, row.kpis
    return {"period_start": datetime.fromtimestamp(row.start_ns / 1e9, UTC).isoformat(),
            "period_end": datetime.fromtimestamp(row.end_ns / 1e9, UTC).isoformat(),
            "shift": row.shift or "", "machines": row.machines, "good": e.gq, "scrap": e.sq,
            "energy_kwh": energy, "planned_s": e.pbt_s, "availability": k.availability,
            "effectiveness": k.effectiveness, "quality": k.quality_ratio, "oee": k.oee,
            "produced_at": now.isoformat()}


class ParkReporter:
    """Sends the summaries of the shift instances of the last day that changed since the last
    round (all of them again after a restart: the park replaces a period's summary)."""

    def __init__(self, section: ParkSection, tracker: KpiTracker, registry: Registry,
                 telemetry: TelemetryStore, enqueue: Callable[[list[dict[str, Any]]], None]
                 ) -> None:
        self.section, self.tracker = section, tracker
        self.registry, self.telemetry, self._enqueue = registry, telemetry, enqueue
        self._sent: dict[str, str] = {}

    async def round(self, now_ns: int | None = None) -> int:
        now_ns = time.time_ns() if now_ns is None else now_ns
        machines = list(self.tracker.asset_types)
        rows = await self.tracker.query(machines, now_ns - DAY_NS, now_ns + 1, by_shift=True,
                                        now_ns=now_ns) if machines else []
        now = datetime.fromtimestamp(now_ns / 1e9, UTC)
        bodies = []
        for row in rows:
            if row.start_ns is None or row.end_ns is None:
                continue
            energy = await asyncio.to_thread(energy_kwh, self.registry, self.telemetry,
                                             self.section, row.start_ns,
                                             min(row.end_ns, now_ns))
            body = summary_body(row, energy, now)
            digest = hashlib.sha256(json.dumps(
                {k: v for k, v in body.items() if k != "produced_at"}, sort_keys=True)
                .encode()).hexdigest()
            if self._sent.get(body["period_start"]) != digest:
                bodies.append((body, digest))
        if bodies:
            await asyncio.to_thread(self._enqueue, [b for b, _ in bodies])
            self._sent.update((b["period_start"], d) for b, d in bodies)
        return len(bodies)

    async def run(self) -> None:
        while True:
            try:
                await self.round()
            except StorageError as exc:  # a busy database or a full outbox: the next round
                log.warning("park summaries: %s", exc)
            await asyncio.sleep(self.section.report_every_s)
