"""The durable outbox of notifications: blocking SQL (run it in a thread).

The notifier sends from memory first and journals what it does here: a row when a notice is
routed to a target (:class:`NewRow`), and each attempt's outcome (:class:`Outcome`). The journal
is written in batches, one transaction each, in the order it happened, so a row always exists
before its outcome updates it. At start the notifier reads back the pending rows
(:meth:`OutboxStore.pending`) and resumes them; finished rows are pruned after a retention.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, TypeVar

from sqlalchemy import Connection, delete, func, insert, select, update

from millnet.db.sqlstore import SqlStore
from millnet.model.alarms import AlarmNotice
from millnet.notify import payload
from millnet.notify.schema import notify_outbox

T = TypeVar("T")
Status = Literal["pending", "delivered", "failed"]
_ERROR_MAX = 1000


@dataclass(frozen=True, slots=True)
class NewRow:
    """A notice routed to a target, not yet tried."""

    delivery_id: str
    target: str
    notice: AlarmNotice
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Outcome:
    """What an attempt (or a decision to give up) left a row at."""

    delivery_id: str
    status: Status
    attempts: int
    at: datetime
    next_attempt_at: datetime | None = None
    last_error: str | None = None


@dataclass(frozen=True, slots=True)
class PendingRow:
    delivery_id: str
    target: str
    notice: AlarmNotice
    attempts: int
    created_at: datetime
    next_attempt_at: datetime
    last_error: str | None


Op = NewRow | Outcome


def _error(text: str | None) -> str | None:
    return None if text is None else text[:_ERROR_MAX].replace("\x00", "\ufffd")


class OutboxStore(SqlStore):
    """The ``notify_outbox`` table (see :mod:`millnet.notify.schema`)."""

    label = "notification outbox"

    def apply(self, ops: Sequence[Op]) -> None:
        """Write ``ops`` in order, in one transaction."""
        def work(conn: Connection) -> None:
            news: list[dict[str, object]] = []
            for op in ops:
                if isinstance(op, NewRow):
                    news.append(_new_values(op))
                    continue
                if news:  # keep the order: a row before the outcomes that update it
                    conn.execute(insert(notify_outbox), news)
                    news = []
                conn.execute(update(notify_outbox)
                             .where(notify_outbox.c.delivery_id == op.delivery_id)
                             .values(_outcome_values(op)))
            if news:
                conn.execute(insert(notify_outbox), news)

        if ops:
            self._run(work, write=True)

    def pending(self, limit: int | None = None) -> list[PendingRow]:
        """Undelivered rows, oldest first."""
        query = (select(notify_outbox).where(notify_outbox.c.status == "pending")
                 .order_by(notify_outbox.c.id).limit(limit))
        rows = self._run(lambda c: c.execute(query).all())
        return [PendingRow(r.delivery_id, r.target, payload.from_json(r.notice), r.attempts,
                           r.created_at, r.next_attempt_at or r.created_at, r.last_error)
                for r in rows]

    def prune(self, finished_before: datetime) -> int:
        """Delete delivered and failed rows finished before ``finished_before``."""
        statement = delete(notify_outbox).where(
            notify_outbox.c.status != "pending",
            notify_outbox.c.finished_at < finished_before)
        return int(self._run(lambda c: c.execute(statement).rowcount, write=True))

    def counts(self) -> dict[tuple[str, str], int]:
        """Rows by (target, status)."""
        query = (select(notify_outbox.c.target, notify_outbox.c.status, func.count())
                 .group_by(notify_outbox.c.target, notify_outbox.c.status))
        rows = self._run(lambda c: c.execute(query).all())
        return {(r[0], r[1]): int(r[2]) for r in rows}


def _new_values(row: NewRow) -> dict[str, object]:
    return {
        "delivery_id": row.delivery_id, "target": row.target, "event_id": row.notice.event_id,
        "tenant_id": row.notice.tenant_id, "notice": payload.to_json(row.notice),
        "status": "pending", "attempts": 0, "created_at": row.created_at,
        "next_attempt_at": row.created_at,
    }


def _outcome_values(op: Outcome) -> dict[str, object]:
    values: dict[str, object] = {
        "status": op.status, "attempts": op.attempts, "last_error": _error(op.last_error),
        "next_attempt_at": op.next_attempt_at if op.status == "pending" else None,
    }
    if op.status != "pending":
        values["finished_at"] = op.at
    if op.status == "delivered":
        values["delivered_at"] = op.at
    return values
