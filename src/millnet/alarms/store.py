"""The alarm store: alarms and their audit trail in the millnet database (blocking; callers on
the event loop use a thread).

Writes come in batches (:meth:`AlarmStore.apply`): one transaction for every transition the
service decided in one round, each an alarm's row after the transition and its event. Nothing
here decides a transition; :mod:`.lifecycle` does, in :mod:`.service`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from typing import Any, ClassVar, TypeVar

from sqlalchemy import Connection, and_, func, insert, or_, select, update

from millnet.alarms.flood import FloodEvent
from millnet.alarms.records import (
    AlarmEvent,
    AlarmFilter,
    AlarmRecord,
    Key,
    Write,
    bounded,
)
from millnet.alarms.schema import alarm_events, alarms
from millnet.db.schema import AnyRow
from millnet.db.sqlstore import SqlStore
from millnet.errors import NotFound
from millnet.model.alarms import AlarmState, Priority

log = logging.getLogger("millnet.alarms")

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class PeriodEvents:
    """What the EEMUA figures of a period are computed from (see :mod:`.flood`)."""

    events: list[FloodEvent]
    active_at_start: dict[int, int]  # alarm id -> when it became active (ns)
    names: dict[int, tuple[str, int]] = field(default_factory=dict)  # id -> (rule, asset)


def _record(row: AnyRow) -> AlarmRecord:
    values = {f.name: getattr(row, f.name) for f in fields(AlarmRecord)}
    values["priority"] = Priority(row.priority)
    values["state"] = AlarmState(row.state)
    values["notify"] = tuple(json.loads(row.notify))
    return AlarmRecord(**values)


def _event(row: AnyRow) -> AlarmEvent:
    return AlarmEvent(row.id, row.alarm_id, row.tenant_id, row.event,
                      AlarmState(row.from_state), AlarmState(row.to_state),
                      row.condition_active, row.user_name, row.comment, row.value, row.ts_ns,
                      row.stored_at)


def _row(record: AlarmRecord) -> dict[str, Any]:
    values = asdict(record)
    del values["id"]
    values["priority"] = int(record.priority)
    values["state"] = record.state.value
    values["notify"] = json.dumps(list(record.notify))
    return values


def ns_of(moment: datetime) -> int:
    return int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1000


class AlarmStore(SqlStore):
    """Alarms and alarm events; every method is one transaction (thread-safe, blocking)."""

    label: ClassVar[str] = "alarms"

    # -- writes ------------------------------------------------------------------------------
    def apply(self, writes: Sequence[Write], stored_at: datetime) -> list[tuple[int, int]]:
        """Store every write in one transaction, in order; (alarm id, event id) of each. An
        alarm without an id is inserted by its first write."""

        def work(conn: Connection) -> list[tuple[int, int]]:
            ids: dict[Key, int] = {}
            done: list[tuple[int, int]] = []
            for w in writes:
                alarm_id = w.alarm.id or ids.get(w.alarm.key, 0)
                if alarm_id:
                    conn.execute(update(alarms).where(alarms.c.id == alarm_id)
                                 .values(**_row(w.alarm)))
                else:
                    alarm_id = conn.execute(insert(alarms).values(**_row(w.alarm))
                                            ).inserted_primary_key[0]  # type: ignore[index]
                ids[w.alarm.key] = alarm_id
                e = w.event
                event_id = conn.execute(insert(alarm_events).values(
                    alarm_id=alarm_id, tenant_id=w.alarm.tenant_id, event=e.event,
                    from_state=e.from_state.value, to_state=e.to_state.value,
                    condition_active=e.condition_active, user_name=bounded(e.user),
                    comment=bounded(e.comment), value=e.value, ts_ns=e.ts_ns,
                    stored_at=stored_at)).inserted_primary_key[0]  # type: ignore[index]
                done.append((alarm_id, event_id))
            return done

        return self._run(work, write=True)

    # -- reads -------------------------------------------------------------------------------
    def find(self, keys: Iterable[Key]) -> dict[Key, AlarmRecord]:
        """The stored alarms among ``keys`` (rule id, asset id)."""
        wanted = list(set(keys))

        def work(conn: Connection) -> dict[Key, AlarmRecord]:
            found: dict[Key, AlarmRecord] = {}
            for start in range(0, len(wanted), 200):
                where = or_(*(and_(alarms.c.rule_id == r, alarms.c.asset_id == a)
                              for r, a in wanted[start:start + 200]))
                found.update((r.key, r) for r in map(
                    _record, conn.execute(select(alarms).where(where))))
            return found

        return self._run(work)

    def keys(self) -> set[Key]:
        """(rule id, asset id) of every stored alarm."""
        query = select(alarms.c.rule_id, alarms.c.asset_id)
        return self._run(lambda c: {(r.rule_id, r.asset_id) for r in c.execute(query)})

    def unsettled(self) -> list[AlarmRecord]:
        """Every alarm not in NORMAL (what the service holds from the start)."""
        query = select(alarms).where(alarms.c.state != AlarmState.NORMAL.value)
        return self._run(lambda c: [_record(r) for r in c.execute(query)])

    def get(self, alarm_id: int) -> AlarmRecord:
        row = self._run(lambda c: c.execute(
            select(alarms).where(alarms.c.id == alarm_id)).one_or_none())
        if row is None:
            raise NotFound(f"alarm {alarm_id} not found")
        return _record(row)

    def list_alarms(self, f: AlarmFilter) -> list[AlarmRecord]:
        """Newest first (by id); at most ``f.limit``."""
        c = alarms.c
        query = select(alarms).order_by(c.id.desc()).limit(f.limit)
        for column, wanted in ((c.tenant_id, f.tenant_id), (c.rule_id, f.rule_id),
                               (c.condition_active, f.active)):
            if wanted is not None:
                query = query.where(column == wanted)
        if f.priority is not None:
            query = query.where(c.priority == int(f.priority))
        if f.states:
            query = query.where(c.state.in_([s.value for s in f.states]))
        if f.asset_ids:
            query = query.where(c.asset_id.in_(f.asset_ids))
        if f.since is not None:
            query = query.where(c.updated_at >= f.since)
        if f.until is not None:
            query = query.where(c.updated_at < f.until)
        if f.before is not None:
            query = query.where(c.id < f.before)
        return self._run(lambda conn: [_record(r) for r in conn.execute(query)])

    def events(self, alarm_id: int, *, before: int | None = None,
               limit: int = 100) -> list[AlarmEvent]:
        """An alarm's trail, newest first."""
        c = alarm_events.c
        query = select(alarm_events).where(c.alarm_id == alarm_id).order_by(c.id.desc())
        if before is not None:
            query = query.where(c.id < before)
        return self._run(lambda conn: [_event(r) for r in conn.execute(query.limit(limit))])

    def period(self, tenant_id: int | None, since_ns: int, until_ns: int) -> PeriodEvents:
        """The events of [since, until) and the alarms whose condition was active at since."""
        e, a = alarm_events.c, alarms.c

        def work(conn: Connection) -> PeriodEvents:
            inside = select(e.alarm_id, e.ts_ns, e.from_state, e.to_state, e.condition_active
                            ).where(e.ts_ns >= since_ns, e.ts_ns < until_ns)
            latest = select(func.max(e.id).label("id")).where(e.ts_ns < since_ns)
            if tenant_id is not None:
                inside = inside.where(e.tenant_id == tenant_id)
                latest = latest.where(e.tenant_id == tenant_id)
            latest_sq = latest.group_by(e.alarm_id).subquery()
            before = select(e.alarm_id, a.last_activated_at).join(
                latest_sq, latest_sq.c.id == e.id).join(alarms, a.id == e.alarm_id).where(
                e.condition_active.is_(True))
            events = [FloodEvent(r.alarm_id, r.ts_ns, AlarmState(r.from_state),
                                 AlarmState(r.to_state), r.condition_active)
                      for r in conn.execute(inside.order_by(e.ts_ns, e.id))]
            carried = {r.alarm_id: min(since_ns, ns_of(r.last_activated_at)
                                       if r.last_activated_at else since_ns)
                       for r in conn.execute(before)}
            ids = {ev.alarm_id for ev in events} | set(carried)
            names: dict[int, tuple[str, int]] = {}
            for start in range(0, len(ids), 500):
                chunk = sorted(ids)[start:start + 500]
                for r in conn.execute(select(a.id, a.rule_name, a.asset_id)
                                      .where(a.id.in_(chunk))):
                    names[r.id] = (r.rule_name, r.asset_id)
            return PeriodEvents(events, carried, names)

        return self._run(work)


def utc_of_ns(ns: int) -> datetime:
    return datetime.fromtimestamp(ns // 1_000_000_000, UTC).replace(
        microsecond=(ns % 1_000_000_000) // 1000)
