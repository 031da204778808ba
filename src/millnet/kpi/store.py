"""KPI state in the registry database: shift totals and machine carry-over (see
:mod:`millnet.kpi.schema`). Blocking: run it in a thread.

The tracker writes whole rows (what it holds is the total so far, not an increment), so a
write repeated after a failure is harmless.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from typing import Any, TypeVar

from sqlalchemy import Connection, Table, select
from sqlalchemy.dialects import postgresql, sqlite

from millnet.db.schema import AnyRow
from millnet.kpi.schema import kpi_machines, kpi_shift_totals
from millnet.registry.repository import Registry

T = TypeVar("T")
TOTAL_FIELDS = ("apt_s", "aust_s", "adet_s", "adot_s", "pdot_s", "break_s", "gq", "sq",
                "failures", "restorations", "ttr_s")


@dataclass(slots=True)
class ShiftTotals:
    """What one machine accumulated in one shift instance; times in seconds."""

    asset_id: int
    tenant_id: int
    shift: str
    day: date
    start_ns: int
    end_ns: int
    apt_s: float = 0.0
    aust_s: float = 0.0
    adet_s: float = 0.0
    adot_s: float = 0.0
    pdot_s: float = 0.0
    break_s: float = 0.0
    gq: float = 0.0
    sq: float = 0.0
    failures: int = 0
    restorations: int = 0
    ttr_s: float = 0.0

    @property
    def key(self) -> tuple[int, date, str]:
        return self.asset_id, self.day, self.shift

    def copy(self) -> ShiftTotals:
        return replace(self)


@dataclass(slots=True)
class MachineCarry:
    """What the tracker needs from before a restart to go on with a machine."""

    asset_id: int
    tenant_id: int
    state: int | None = None
    state_ns: int | None = None
    good: float | None = None
    scrap: float | None = None
    fault_since_ns: int | None = None

    def copy(self) -> MachineCarry:
        return replace(self)


def _totals(row: AnyRow) -> ShiftTotals:
    return ShiftTotals(row.asset_id, row.tenant_id, row.shift, row.day, row.start_ns,
                       row.end_ns, *(getattr(row, f) for f in TOTAL_FIELDS))


def _upsert(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    keys = [c.name for c in table.primary_key.columns]
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(table)
    changes = {c: stmt.excluded[c] for c in rows[0] if c not in keys}
    conn.execute(stmt.on_conflict_do_update(index_elements=keys, set_=changes), rows)


class KpiStore:
    """The KPI tables over the registry's engine, transactions through the registry's own
    ``_run`` (errors mapped as the registry maps them)."""

    def __init__(self, registry: Registry) -> None:
        self._registry = registry

    def _run(self, work: Callable[[Connection], T], *, write: bool = False) -> T:
        return self._registry._run(work, write=write)

    def save(self, totals: Sequence[ShiftTotals], machines: Sequence[MachineCarry]) -> None:
        """Write ``totals`` and ``machines`` in one transaction (whole rows, replacing)."""
        now = datetime.now(UTC)
        total_rows = [{"asset_id": t.asset_id, "day": t.day, "shift": t.shift,
                       "tenant_id": t.tenant_id, "start_ns": t.start_ns, "end_ns": t.end_ns,
                       **{f: getattr(t, f) for f in TOTAL_FIELDS}, "updated_at": now}
                      for t in totals]
        machine_rows = [{"asset_id": m.asset_id, "tenant_id": m.tenant_id, "state": m.state,
                         "state_ns": m.state_ns, "good": m.good, "scrap": m.scrap,
                         "fault_since_ns": m.fault_since_ns, "updated_at": now}
                        for m in machines]

        def work(conn: Connection) -> None:
            _upsert(conn, kpi_shift_totals, total_rows)
            _upsert(conn, kpi_machines, machine_rows)

        if total_rows or machine_rows:
            self._run(work, write=True)

    def machines(self, asset_ids: Iterable[int]) -> dict[int, MachineCarry]:
        wanted = list(asset_ids)

        def work(conn: Connection) -> dict[int, MachineCarry]:
            t = kpi_machines
            rows = conn.execute(select(t).where(t.c.asset_id.in_(wanted))).all()
            return {r.asset_id: MachineCarry(r.asset_id, r.tenant_id, r.state, r.state_ns,
                                             r.good, r.scrap, r.fault_since_ns) for r in rows}

        return self._run(work) if wanted else {}

    def totals(self, asset_ids: Iterable[int], start_ns: int, end_ns: int) -> list[ShiftTotals]:
        """Rows of the instances that start in ``[start_ns, end_ns)``, in start order."""
        wanted = list(asset_ids)
        t = kpi_shift_totals

        def work(conn: Connection) -> list[ShiftTotals]:
            query = (select(t).where(t.c.asset_id.in_(wanted), t.c.start_ns >= start_ns,
                                     t.c.start_ns < end_ns)
                     .order_by(t.c.start_ns, t.c.asset_id))
            return [_totals(r) for r in conn.execute(query).all()]

        return self._run(work) if wanted else []

    def open_totals(self, asset_ids: Iterable[int], after_ns: int) -> list[ShiftTotals]:
        """Rows of instances that end after ``after_ns``: those a restarted tracker goes on
        adding to."""
        wanted = list(asset_ids)
        t = kpi_shift_totals

        def work(conn: Connection) -> list[ShiftTotals]:
            query = select(t).where(t.c.asset_id.in_(wanted), t.c.end_ns > after_ns)
            return [_totals(r) for r in conn.execute(query).all()]

        return self._run(work) if wanted else []
