"""Security incidents: what operators open over security events, and move through
``open -> investigating -> contained -> resolved -> closed`` (``TRANSITIONS``).

Every creation and status change is audited (from, to, who, comment, when) and handed to
``on_change(conn, incident)`` inside the transaction that writes it: the node sets it to enqueue
the ``incident`` message in the federation's upward outbox, so a change is reported exactly when
it is made (a crash loses neither or both). Tenant rules are those of the events: an incident
of a tenant names only that tenant's events; a node-wide incident (``tenant_id`` None) any.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, Final

from sqlalchemy import ColumnElement, Connection, Engine, and_, insert, select, true, update

from millnet.db.schema import AnyRow
from millnet.db.sqlstore import SqlStore
from millnet.errors import Conflict, InvalidInput, NotFound
from millnet.model.security import Severity
from millnet.security.schema import (
    INCIDENT_STATUSES,
    TITLE_MAX,
    security_events,
    security_incident_audit,
    security_incidents,
)

#: status -> the statuses it may move to. ``resolved`` may reopen (to ``investigating``) when
#: the attack comes back; ``closed`` is final.
TRANSITIONS: Final[dict[str, tuple[str, ...]]] = {
    "open": ("investigating", "contained", "resolved", "closed"),
    "investigating": ("contained", "resolved", "closed"),
    "contained": ("investigating", "resolved", "closed"),
    "resolved": ("investigating", "closed"),
    "closed": (),
}
MAX_EVENTS: Final = 100
MAX_PAGE: Final = 500
MAX_COMMENT: Final = 1000


@dataclass(frozen=True, slots=True)
class AuditEntry:
    from_status: str | None  # None: the incident was opened
    to_status: str
    actor: str
    comment: str | None
    at: datetime


@dataclass(frozen=True, slots=True)
class Incident:
    id: int
    tenant_id: int | None
    title: str
    severity: Severity
    status: str
    description: str
    event_ids: tuple[int, ...]
    opened_by: str
    opened_at: datetime
    updated_at: datetime
    closed_at: datetime | None
    audit: tuple[AuditEntry, ...] = field(default=())


#: Called in the transaction of every creation and status change.
ChangeHook = Callable[[Connection, Incident], None]


def incident_body(incident: Incident) -> dict[str, Any]:
    """The federation's ``incident`` message (``reports.apply_incident``): no description,
    no event details; the parent keeps the incident's state, not the plant's facts."""
    body: dict[str, Any] = {
        "id": f"in-{incident.id}", "severity": incident.severity.label,
        "status": incident.status, "title": incident.title,
        "opened_at": incident.opened_at.isoformat()}
    if incident.closed_at is not None:
        body["closed_at"] = incident.closed_at.isoformat()
    return body


def check_status(status: str) -> str:
    if status not in INCIDENT_STATUSES:
        raise InvalidInput(f"must be one of {', '.join(INCIDENT_STATUSES)}", "status")
    return status


def _incident(row: AnyRow, audit: tuple[AuditEntry, ...] = ()) -> Incident:
    return Incident(
        id=row.id, tenant_id=row.tenant_id, title=row.title, severity=Severity(row.severity),
        status=row.status, description=row.description,
        event_ids=tuple(json.loads(row.event_ids)), opened_by=row.opened_by,
        opened_at=row.opened_at, updated_at=row.updated_at, closed_at=row.closed_at,
        audit=audit)


def _scope(only_tenant: int | None) -> ColumnElement[bool]:
    """``only_tenant`` None: every incident (a node-wide caller); else that tenant's only."""
    return true() if only_tenant is None else security_incidents.c.tenant_id == only_tenant


class IncidentStore(SqlStore):
    label: ClassVar[str] = "security incident"

    def __init__(self, engine: Engine, on_change: ChangeHook | None = None) -> None:
        super().__init__(engine)
        self.on_change = on_change

    def create(self, *, title: str, severity: Severity, tenant_id: int | None, actor: str,
               description: str = "", event_ids: Sequence[int] = (),
               comment: str | None = None) -> Incident:
        """Open an incident over ``event_ids`` (each must exist and, for a tenant's incident,
        be that tenant's); audited and reported in the same transaction."""
        title = title.strip()
        if not title or len(title) > TITLE_MAX:
            raise InvalidInput(f"must be 1-{TITLE_MAX} characters", "title")
        ids = tuple(dict.fromkeys(event_ids))  # order kept, repeats dropped
        if len(ids) > MAX_EVENTS:
            raise InvalidInput(f"at most {MAX_EVENTS} related events", "event_ids")
        _check_comment(comment)
        now = datetime.now(UTC)

        def write(conn: Connection) -> Incident:
            _check_events(conn, ids, tenant_id)
            key = conn.execute(insert(security_incidents).values(
                tenant_id=tenant_id, title=title, severity=int(severity), status="open",
                description=description, event_ids=json.dumps(list(ids)), opened_by=actor,
                opened_at=now, updated_at=now, closed_at=None)).inserted_primary_key
            assert key is not None  # an insert of one row has its key
            return self._audit_and_report(conn, key[0], None, "open", actor, comment, now)

        return self._run(write, write=True)

    def set_status(self, incident_id: int, status: str, *, actor: str,
                   comment: str | None = None, only_tenant: int | None = None) -> Incident:
        """Move an incident on; Conflict naming the allowed statuses when ``TRANSITIONS``
        does not allow the move."""
        check_status(status)
        _check_comment(comment)
        t = security_incidents.c

        def write(conn: Connection) -> Incident:
            row = conn.execute(select(t.status).where(
                t.id == incident_id, _scope(only_tenant))).first()
            if row is None:
                raise NotFound(f"security incident {incident_id} not found")
            allowed = TRANSITIONS[row.status]
            if status not in allowed:
                raise Conflict(f"security incident {incident_id} is {row.status}: it may move "
                               f"to {', '.join(allowed) or 'nothing (closed is final)'}, "
                               f"not {status}")
            now = datetime.now(UTC)
            values: dict[str, Any] = {"status": status, "updated_at": now}
            if status == "closed":
                values["closed_at"] = now
            done = conn.execute(update(security_incidents)
                                .where(t.id == incident_id, t.status == row.status)
                                .values(**values))
            if done.rowcount != 1:
                raise Conflict(f"security incident {incident_id} changed meanwhile")
            return self._audit_and_report(conn, incident_id, row.status, status, actor,
                                          comment, now)

        return self._run(write, write=True)

    def _audit_and_report(self, conn: Connection, incident_id: int, before: str | None,
                          after: str, actor: str, comment: str | None,
                          now: datetime) -> Incident:
        conn.execute(insert(security_incident_audit).values(
            incident_id=incident_id, from_status=before, to_status=after, actor=actor,
            comment=comment, at=now))
        incident = _read(conn, incident_id)
        if self.on_change is not None:
            self.on_change(conn, incident)
        return incident

    def get(self, incident_id: int, only_tenant: int | None = None) -> Incident:
        """The incident with its audit trail; NotFound if missing or another tenant's."""
        def read(conn: Connection) -> Incident:
            found = conn.execute(select(security_incidents.c.id).where(
                security_incidents.c.id == incident_id, _scope(only_tenant))).first()
            if found is None:
                raise NotFound(f"security incident {incident_id} not found")
            return _read(conn, incident_id)

        return self._run(read)

    def query(self, *, only_tenant: int | None = None, status: str | None = None,
              cursor: int | None = None,
              limit: int = 100) -> tuple[list[Incident], int | None]:
        """Incidents newest first (without their audit) and the next page's cursor."""
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidInput(f"limit must be 1-{MAX_PAGE}", "limit")
        t = security_incidents.c
        where = [_scope(only_tenant)]
        if status is not None:
            where.append(t.status == check_status(status))
        if cursor is not None:
            where.append(t.id < cursor)
        stmt = (select(security_incidents).where(and_(*where)).order_by(t.id.desc())
                .limit(limit + 1))
        rows = self._run(lambda c: c.execute(stmt).all())
        found = [_incident(r) for r in rows[:limit]]
        return found, (found[-1].id if len(rows) > limit else None)


def _read(conn: Connection, incident_id: int) -> Incident:
    a = security_incident_audit.c
    row = conn.execute(select(security_incidents)
                       .where(security_incidents.c.id == incident_id)).one()
    audit = tuple(AuditEntry(r.from_status, r.to_status, r.actor, r.comment, r.at)
                  for r in conn.execute(select(security_incident_audit)
                                        .where(a.incident_id == incident_id).order_by(a.id)))
    return _incident(row, audit)


def _check_events(conn: Connection, ids: tuple[int, ...], tenant_id: int | None) -> None:
    """Every related event exists within the incident's tenant (any, for a node-wide one)."""
    if not ids:
        return
    e = security_events.c
    where: list[ColumnElement[bool]] = [e.id.in_(ids)]
    if tenant_id is not None:
        where.append(e.tenant_id == tenant_id)
    found = set(conn.execute(select(e.id).where(*where)).scalars())
    missing = [i for i in ids if i not in found]
    if missing:
        raise InvalidInput(f"no security event {missing[0]} to relate (of this tenant)",
                           "event_ids")


def _check_comment(comment: str | None) -> None:
    if comment is not None and len(comment) > MAX_COMMENT:
        raise InvalidInput(f"must be at most {MAX_COMMENT} characters", "comment")

