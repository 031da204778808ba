"""The park node's side: member summaries stored (replaced by period) and shown side by side.

A summary is accepted from an enterprise that is this park's child (its own, not forwarded: a
park's members are its direct children). The members view sums each member's periods that
start in the window: parts, energy, energy per good part, and OEE weighted by each period's
planned busy time (a member's KPIs from its periods, as the KPI module sums machines).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, delete, insert, select

from millnet.errors import InvalidInput, RejectedMessage
from millnet.federation.inbox import PeerInfo
from millnet.federation.schema import federation_children
from millnet.park.schema import park_summaries as summaries
from millnet.protocols.federation import Message

_COUNTS = ("good", "scrap", "planned_s")
_RATIOS = ("availability", "effectiveness", "quality", "oee")


def _time(body: dict[str, Any], key: str) -> datetime:
    try:
        at = datetime.fromisoformat(str(body.get(key)))
    except ValueError:
        raise InvalidInput(f"{key} is an ISO 8601 time", key) from None
    if at.tzinfo is None:
        raise InvalidInput(f"{key} needs its UTC offset", key)
    return at.astimezone(UTC)


def _number(body: dict[str, Any], key: str, *, optional: bool, high: float = 1e15) -> float | None:
    value = body.get(key)
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or \
            not math.isfinite(value) or not 0 <= value <= high:
        raise InvalidInput(f"{key} is a number from 0 to {high:g}", key)
    return float(value)


def apply_summary(conn: Connection, sender: PeerInfo, message: Message) -> None:
    """Handler of ``park.summary``: replaces the origin's summary of that period."""
    origin = message.origin or sender.node_id
    if origin != sender.node_id or sender.role != "enterprise":
        raise RejectedMessage("not_a_member", f"{origin} is not an enterprise of this park")
    body = message.body
    row: dict[str, Any] = {
        "origin": origin, "period_start": _time(body, "period_start"),
        "period_end": _time(body, "period_end"), "shift": str(body.get("shift", ""))[:32],
        "machines": int(_number(body, "machines", optional=False, high=1e6) or 0),
        "energy_kwh": _number(body, "energy_kwh", optional=True),
        "produced_at": _time(body, "produced_at"), "received_at": datetime.now(UTC)}
    for key in _COUNTS:
        row[key] = _number(body, key, optional=False)
    for key in _RATIOS:
        row[key] = _number(body, key, optional=True, high=10.0)
    conn.execute(delete(summaries).where(summaries.c.origin == origin,
                                         summaries.c.period_start == row["period_start"]))
    conn.execute(insert(summaries).values(**row))


@dataclass
class Member:
    node_id: str
    periods: int = 0
    good: float = 0.0
    scrap: float = 0.0
    energy_kwh: float | None = None
    planned_s: float = 0.0
    oee: float | None = None
    availability: float | None = None
    effectiveness: float | None = None
    quality: float | None = None
    last_report: datetime | None = None
    period_end: datetime | None = None

    def json(self) -> dict[str, Any]:
        per_part = (self.energy_kwh / self.good if self.energy_kwh is not None and self.good
                    else None)
        return {"node_id": self.node_id, "periods": self.periods, "good": self.good,
                "scrap": self.scrap, "energy_kwh": self.energy_kwh,
                "energy_per_good_part_kwh": per_part, "oee": self.oee,
                "availability": self.availability, "effectiveness": self.effectiveness,
                "quality": self.quality, "planned_s": self.planned_s,
                "last_report": None if self.last_report is None else
                self.last_report.isoformat(),
                "covered_until": None if self.period_end is None else
                self.period_end.isoformat()}


def members(engine: Engine, since: datetime, until: datetime) -> list[Member]:
    """Every enterprise child, with the sums of its periods that start in ``[since, until)``."""
    with engine.connect() as conn:
        names = [r.node_id for r in conn.execute(
            select(federation_children.c.node_id).where(federation_children.c.role ==
                                                        "enterprise"))]
        rows = conn.execute(select(summaries).where(summaries.c.period_start >= since,
                                                    summaries.c.period_start < until)).all()
        last = dict(conn.execute(select(summaries.c.origin, summaries.c.received_at)
                                 .order_by(summaries.c.received_at)).all())
    out = {n: Member(n) for n in names}
    weights: dict[str, dict[str, tuple[float, float]]] = {}
    for r in rows:
        m = out.setdefault(r.origin, Member(r.origin))
        m.periods += 1
        m.good += r.good
        m.scrap += r.scrap
        m.planned_s += r.planned_s
        if r.energy_kwh is not None:
            m.energy_kwh = (m.energy_kwh or 0.0) + r.energy_kwh
        m.period_end = max(filter(None, (m.period_end, r.period_end)))
        w = weights.setdefault(r.origin, {})
        for key in _RATIOS:
            value = getattr(r, key)
            if value is not None and r.planned_s > 0:
                total, weight = w.get(key, (0.0, 0.0))
                w[key] = (total + value * r.planned_s, weight + r.planned_s)
    for origin, w in weights.items():
        for key, (total, weight) in w.items():
            setattr(out[origin], key, total / weight if weight else None)
    for name, m in out.items():
        m.last_report = last.get(name)
    return sorted(out.values(), key=lambda m: m.node_id)
