"""The situation view of a national node (or of a secondary over its own children): assets,
security events and incidents by province, sector, severity and time bucket; the most affected
products; the enterprises behind on rectification orders.

It reads only what children report (``report_schema``): event counts come from the periodic
summaries, which every level receives, so counts agree at every level and never need raw
telemetry or full events; incidents are counted from the incidents reported. Products are
ranked by advisory matches and by the full events forwarded for their assets (an event names
its target, matched to an inventory item's key or address of the same enterprise). An
enterprise whose region or sector was never reported counts under province ``??`` / sector
``?``.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from sqlalchemy import Connection, func, select

from millnet.errors import InvalidInput
from millnet.federation import orders
from millnet.federation.regions import (
    UNKNOWN,
    province_name,
    province_of,
    region_code,
    sector_code,
    sector_name,
)
from millnet.federation.report_schema import (
    fed_advisory_matches,
    fed_asset_counts,
    fed_enterprises,
    fed_events,
    fed_incidents,
    fed_inventory,
    fed_summaries,
)
from millnet.model.security import Severity

MAX_BUCKETS: Final = 2000
TOP: Final = 20
NO_SECTOR: Final = "?"


@dataclass(frozen=True, slots=True)
class SituationQuery:
    since: datetime
    until: datetime
    bucket_seconds: int = 3600
    region: str | None = None  # a GB/T 2260 prefix: "32" Jiangsu, "3205" Suzhou
    sector: str | None = None  # a GB/T 4754 section letter

    def __post_init__(self) -> None:
        if self.until <= self.since:
            raise InvalidInput("must be after since", "until")
        if not 60 <= self.bucket_seconds <= 86_400 * 31:
            raise InvalidInput("must be 60 s to 31 days", "bucket")
        if (self.until - self.since).total_seconds() / self.bucket_seconds > MAX_BUCKETS:
            raise InvalidInput(f"more than {MAX_BUCKETS} buckets: widen the bucket", "bucket")
        if self.region is not None:
            region_code(self.region)
        if self.sector is not None:
            sector_code(self.sector)


@dataclass
class Tally:
    enterprises: int = 0
    assets: int = 0
    events: int = 0
    incidents: int = 0
    incidents_open: int = 0

    def to_body(self) -> dict[str, int]:
        return {"enterprises": self.enterprises, "assets": self.assets, "events": self.events,
                "incidents": self.incidents, "incidents_open": self.incidents_open}


@dataclass
class Situation:
    query: SituationQuery
    totals: Tally = field(default_factory=Tally)
    by_province: dict[str, Tally] = field(default_factory=lambda: defaultdict(Tally))
    by_sector: dict[str, Tally] = field(default_factory=lambda: defaultdict(Tally))
    by_severity: dict[int, Tally] = field(default_factory=lambda: defaultdict(Tally))
    timeline: dict[datetime, Tally] = field(default_factory=lambda: defaultdict(Tally))
    top_products: list[dict[str, Any]] = field(default_factory=list)
    pending_orders: list[dict[str, Any]] = field(default_factory=list)

    def to_body(self) -> dict[str, Any]:
        q = self.query
        return {
            "since": q.since.isoformat(), "until": q.until.isoformat(),
            "bucket_seconds": q.bucket_seconds, "region": q.region, "sector": q.sector,
            "totals": self.totals.to_body(),
            "by_province": [{"code": c, "name": province_name(c), **t.to_body()}
                            for c, t in sorted(self.by_province.items())],
            "by_sector": [{"code": c, "name": sector_name(c), **t.to_body()}
                          for c, t in sorted(self.by_sector.items())],
            "by_severity": [{"severity": Severity(s).label, **t.to_body()}
                            for s, t in sorted(self.by_severity.items())],
            "timeline": [{"bucket_start": b.isoformat(), **t.to_body()}
                         for b, t in sorted(self.timeline.items())],
            "top_products": self.top_products, "pending_orders": self.pending_orders,
        }


def _places(conn: Connection) -> dict[str, tuple[str, str]]:
    rows = conn.execute(select(fed_enterprises.c.node_id, fed_enterprises.c.region,
                               fed_enterprises.c.sector))
    return {r.node_id: (r.region, r.sector) for r in rows}


def _in_scope(q: SituationQuery, place: tuple[str, str] | None) -> bool:
    region, sector = place or ("", NO_SECTOR)
    if q.region is not None and not region.startswith(q.region):
        return False
    return q.sector is None or sector == q.sector


def _bucket(q: SituationQuery, at: datetime) -> datetime:
    offset = int((at - q.since).total_seconds()) // q.bucket_seconds * q.bucket_seconds
    return q.since + timedelta(seconds=offset)


class _View:
    """One pass over the report tables, adding into a :class:`Situation`."""

    def __init__(self, conn: Connection, q: SituationQuery) -> None:
        self.conn, self.q, self.s = conn, q, Situation(q)
        self.places = _places(conn)

    def scoped(self, origin: str) -> bool:
        return _in_scope(self.q, self.places.get(origin))

    def tallies(self, origin: str, severity: int | None = None,
                at: datetime | None = None) -> Iterable[Tally]:
        region, sector = self.places.get(origin, ("", NO_SECTOR))
        yield self.s.totals
        yield self.s.by_province[province_of(region) if region else UNKNOWN]
        yield self.s.by_sector[sector]
        if severity is not None:
            yield self.s.by_severity[severity]
        if at is not None:
            yield self.s.timeline[_bucket(self.q, at)]

    def assets(self) -> None:
        """Per enterprise: its inventory rows if it is kept here, else its latest count."""
        counted: dict[str, int] = dict(self.conn.execute(
            select(fed_inventory.c.origin, func.count()).group_by(fed_inventory.c.origin)
        ).all())
        latest = select(fed_asset_counts.c.origin, fed_asset_counts.c.assets).where(
            fed_asset_counts.c.bucket_start < self.q.until).order_by(
            fed_asset_counts.c.bucket_start)
        latest_counts = dict(self.conn.execute(latest).all())  # the last row wins
        counted = {**latest_counts, **counted}
        for origin in sorted(set(counted) | set(self.places)):
            if self.scoped(origin):
                for t in self.tallies(origin):
                    t.enterprises += 1
                    t.assets += counted.get(origin, 0)

    def events(self) -> None:
        rows = self.conn.execute(select(
            fed_summaries.c.origin, fed_summaries.c.bucket_start, fed_summaries.c.severity,
            func.sum(fed_summaries.c.count)).where(
            fed_summaries.c.bucket_start >= self.q.since,
            fed_summaries.c.bucket_start < self.q.until).group_by(
            fed_summaries.c.origin, fed_summaries.c.bucket_start, fed_summaries.c.severity))
        for origin, start, severity, total in rows:
            if self.scoped(origin):
                for t in self.tallies(origin, severity, start):
                    t.events += int(total)

    def incidents(self) -> None:
        rows = self.conn.execute(select(
            fed_incidents.c.origin, fed_incidents.c.severity, fed_incidents.c.status,
            fed_incidents.c.opened_at).where(fed_incidents.c.opened_at >= self.q.since,
                                             fed_incidents.c.opened_at < self.q.until))
        for r in rows:
            if self.scoped(r.origin):
                for t in self.tallies(r.origin, r.severity, r.opened_at):
                    t.incidents += 1
                    t.incidents_open += r.status in ("open", "investigating", "contained")

    def products(self) -> None:
        matched: Counter[tuple[str, str]] = Counter()
        enterprises: dict[tuple[str, str], set[str]] = defaultdict(set)
        advisories: dict[tuple[str, str], set[str]] = defaultdict(set)
        for r in self.conn.execute(select(fed_advisory_matches)):
            if self.scoped(r.origin):
                key = (r.vendor, r.product)
                matched[key] += 1
                enterprises[key].add(r.origin)
                advisories[key].add(r.advisory_id)
        events = self._events_by_product()
        ranked = sorted(set(matched) | set(events),
                        key=lambda k: (-matched[k], -events[k], k))[:TOP]
        self.s.top_products = [
            {"vendor": v, "product": p, "matched_assets": matched[(v, p)],
             "enterprises": len(enterprises[(v, p)]), "advisories": sorted(advisories[(v, p)]),
             "events": events[(v, p)]} for v, p in ranked]

    def _events_by_product(self) -> Counter[tuple[str, str]]:
        where: dict[tuple[str, str], tuple[str, str]] = {}
        for r in self.conn.execute(select(fed_inventory.c.origin, fed_inventory.c.item_key,
                                          fed_inventory.c.item, fed_inventory.c.vendor,
                                          fed_inventory.c.model)):
            if r.vendor and r.model:
                where[(r.origin, r.item_key)] = (r.vendor, r.model)
                address = json.loads(r.item).get("address")
                if address:
                    where[(r.origin, address)] = (r.vendor, r.model)
        out: Counter[tuple[str, str]] = Counter()
        rows = self.conn.execute(select(fed_events.c.origin, fed_events.c.target,
                                        fed_events.c.count).where(
            fed_events.c.occurred_at >= self.q.since, fed_events.c.occurred_at < self.q.until))
        for origin, target, n in rows:
            product = where.get((origin, target))
            if product is not None and self.scoped(origin):
                out[product] += n
        return out

    def pending(self, now: datetime) -> None:
        self.s.pending_orders = [
            {"order_id": o, "target": t, "state": s, "overdue": overdue}
            for o, t, s, overdue in orders.pending_targets(self.conn, now)
            if self.scoped(t)]


def situation(conn: Connection, q: SituationQuery, now: datetime | None = None) -> Situation:
    """The situation over ``q``'s period and scope, as of ``now``."""
    view = _View(conn, q)
    view.assets()
    view.events()
    view.incidents()
    view.products()
    view.pending(now or datetime.now(UTC))
    return view.s
