"""The security event store: folded events and device fingerprints in the millnet database
(blocking; the monitor writes from a worker thread, the API reads from its thread pool).

A write is a batch of :class:`~.records.Fold` in one transaction. Each fold joins the open row
of its key (tenant, kind, source, target) whose ``last_seen`` is within the dedup window of the
fold's first occurrence, or starts a new row; an acknowledged or closed row is never extended,
so an attack that goes on after an operator looked at it shows up as a new open event.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from sqlalchemy import ColumnElement, Connection, and_, insert, or_, select, true, update

from millnet.db.schema import AnyRow
from millnet.db.sqlstore import SqlStore
from millnet.errors import Conflict, InvalidInput, NotFound
from millnet.model.security import Severity
from millnet.security.records import BucketCount, EventQuery, Fold, Status, StoredEvent
from millnet.security.schema import device_fingerprints, security_events

MAX_PAGE = 1000
MAX_BUCKETS = 10_000

#: (tenant_id, device_key) -> fingerprint
Fingerprints = dict[tuple[int, str], dict[str, str]]


@dataclass(frozen=True, slots=True)
class FingerprintWrite:
    tenant_id: int
    device_key: str
    fingerprint: dict[str, str]
    at: datetime


def _event(row: AnyRow) -> StoredEvent:
    return StoredEvent(
        id=row.id, tenant_id=row.tenant_id, kind=row.kind, severity=Severity(row.severity),
        summary=row.summary, source=row.source, target=row.target, first_seen=row.first_seen,
        last_seen=row.last_seen, detail=json.loads(row.detail), count=row._mapping["count"],
        status=row.status, acked_by=row.acked_by, acked_at=row.acked_at,
        ack_comment=row.ack_comment)


def _tenant_is(tenant_id: int | None) -> ColumnElement[bool]:
    column = security_events.c.tenant_id
    return column.is_(None) if tenant_id is None else column == tenant_id


def _scope(q: EventQuery) -> ColumnElement[bool]:
    column = security_events.c.tenant_id
    parts: list[ColumnElement[bool]] = []
    if q.tenant_ids is None:
        return true() if q.node_wide else column.is_not(None)
    if q.tenant_ids:
        parts.append(column.in_(q.tenant_ids))
    if q.node_wide:
        parts.append(column.is_(None))
    return or_(*parts)


def _conditions(q: EventQuery) -> list[ColumnElement[bool]]:
    t = security_events.c
    found = [_scope(q)]
    if q.kind_prefix is not None:
        found.append(t.kind.startswith(q.kind_prefix, autoescape=True))
    if q.min_severity > Severity.INFO:
        found.append(t.severity >= int(q.min_severity))
    if q.since is not None:
        found.append(t.last_seen >= q.since)
    if q.until is not None:
        found.append(t.first_seen < q.until)
    if q.source is not None:
        found.append(t.source == q.source)
    if q.status is not None:
        found.append(t.status == q.status)
    return found


class SecurityEventStore(SqlStore):
    label: ClassVar[str] = "security event"

    # -- events ------------------------------------------------------------------------------
    def record(self, folds: Sequence[Fold], window: timedelta) -> list[StoredEvent]:
        """Write ``folds`` in one transaction; the rows as they are after the write."""
        return self._run(lambda c: [self._fold(c, f, window) for f in folds], write=True)

    @staticmethod
    def _fold(conn: Connection, fold: Fold, window: timedelta) -> StoredEvent:
        t = security_events.c
        first, last = fold.first, fold.last
        found = conn.execute(
            select(t.id, t.count.label("n"), t.severity, t.first_seen, t.last_seen)
            .where(t.kind == first.kind, t.source == first.source, t.target == first.target,
                   _tenant_is(fold.tenant_id), t.status == "open",
                   t.last_seen >= first.occurred_at - window)
            .order_by(t.last_seen.desc()).limit(1)).first()
        detail = json.dumps(last.detail, sort_keys=True)
        if found is None:
            event_id = conn.execute(insert(security_events).values(
                tenant_id=fold.tenant_id, kind=first.kind, severity=int(fold.severity),
                summary=last.summary, source=first.source, target=first.target,
                first_seen=first.occurred_at, last_seen=last.occurred_at, detail=detail,
                count=fold.count, status="open")).inserted_primary_key
            assert event_id is not None  # an insert of one row has its key
            event_id = event_id[0]
        else:
            event_id = found.id
            newer = last.occurred_at >= found.last_seen
            changes: dict[str, Any] = {
                "count": min(found.n + fold.count, 2**31 - 1),
                "severity": max(found.severity, int(fold.severity)),
                "first_seen": min(found.first_seen, first.occurred_at),
                "last_seen": max(found.last_seen, last.occurred_at)}
            if newer:  # the latest occurrence describes the event
                changes.update(summary=last.summary, detail=detail)
            conn.execute(update(security_events).where(t.id == event_id).values(**changes))
        row = conn.execute(select(security_events).where(t.id == event_id)).one()
        return _event(row)

    def get(self, event_id: int, scope: EventQuery | None = None) -> StoredEvent:
        """The event; NotFound if missing or outside ``scope``'s tenants."""
        where = [security_events.c.id == event_id]
        if scope is not None:
            where.append(_scope(scope))
        row = self._run(lambda c: c.execute(select(security_events).where(*where)).first())
        if row is None:
            raise NotFound(f"security event {event_id} not found")
        return _event(row)

    def query(self, q: EventQuery, *, cursor: int | None = None,
              limit: int = 100) -> tuple[list[StoredEvent], int | None]:
        """Events matching ``q``, newest first, and the cursor of the next page (None at the
        end). ``cursor`` is the previous page's answer."""
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidInput(f"limit must be 1-{MAX_PAGE}", "limit")
        where = _conditions(q)
        if cursor is not None:
            where.append(security_events.c.id < cursor)
        stmt = (select(security_events).where(and_(*where))
                .order_by(security_events.c.id.desc()).limit(limit + 1))
        rows = self._run(lambda c: c.execute(stmt).all())
        events = [_event(r) for r in rows[:limit]]
        return events, (events[-1].id if len(rows) > limit else None)

    def counts(self, q: EventQuery, bucket: timedelta) -> list[BucketCount]:
        """Events of ``q`` by first-seen bucket (aligned to the epoch), kind and severity."""
        if q.since is None or q.until is None or q.until <= q.since:
            raise InvalidInput("counts need a period: since before until", "since")
        width = bucket.total_seconds()
        if width <= 0 or (q.until - q.since).total_seconds() / width > MAX_BUCKETS:
            raise InvalidInput(f"at most {MAX_BUCKETS} buckets in a period", "bucket")
        t = security_events.c
        where = [*_conditions(q), t.first_seen >= q.since]
        stmt = select(t.kind, t.severity, t.first_seen, t.count.label("n")).where(and_(*where))
        totals: dict[tuple[float, str, int], list[int]] = {}
        for row in self._run(lambda c: c.execute(stmt).all()):
            start = row.first_seen.timestamp() // width * width
            cell = totals.setdefault((start, row.kind, row.severity), [0, 0])
            cell[0] += 1
            cell[1] += row.n
        return [BucketCount(datetime.fromtimestamp(start, UTC), kind, Severity(sev), n, total)
                for (start, kind, sev), (n, total) in sorted(totals.items())]

    def set_status(self, event_id: int, status: Status, *, user: str, comment: str | None,
                   scope: EventQuery | None = None) -> StoredEvent:
        """Acknowledge or close an event (who, when, why kept); Conflict when its status does
        not allow it (a closed event stays closed; an acknowledged one is not acknowledged
        again)."""
        if status == "open":
            raise InvalidInput("an event is acknowledged or closed, not reopened", "status")
        current = self.get(event_id, scope)
        if current.status in ("closed", status):
            raise Conflict(f"security event {event_id} is already {current.status}")
        now = datetime.now(UTC)
        values: dict[str, Any] = {"status": status}
        if status == "acknowledged" or current.acked_at is None:
            values.update(acked_by=user, acked_at=now, ack_comment=comment)
        t = security_events.c

        def write(conn: Connection) -> StoredEvent:
            done = conn.execute(update(security_events)
                                .where(t.id == event_id, t.status == current.status)
                                .values(**values))
            if done.rowcount != 1:
                raise Conflict(f"security event {event_id} changed meanwhile")
            return _event(conn.execute(select(security_events).where(t.id == event_id)).one())

        return self._run(write, write=True)

    # -- device fingerprints -----------------------------------------------------------------
    def load_fingerprints(self) -> Fingerprints:
        f = device_fingerprints.c
        rows = self._run(lambda c: c.execute(
            select(f.tenant_id, f.device_key, f.fingerprint)).all())
        return {(r.tenant_id, r.device_key): json.loads(r.fingerprint) for r in rows}

    def save_fingerprints(self, writes: Iterable[FingerprintWrite]) -> None:
        """Insert or replace fingerprints, in one transaction."""
        f = device_fingerprints.c
        todo = list(writes)

        def write(conn: Connection) -> None:
            for w in todo:
                text = json.dumps(w.fingerprint, sort_keys=True)
                done = conn.execute(update(device_fingerprints).where(
                    f.tenant_id == w.tenant_id, f.device_key == w.device_key)
                    .values(fingerprint=text, changed_at=w.at))
                if done.rowcount == 0:
                    conn.execute(insert(device_fingerprints).values(
                        tenant_id=w.tenant_id, device_key=w.device_key, fingerprint=text,
                        first_seen=w.at, changed_at=w.at))

        if todo:
            self._run(write, write=True)
