"""The audit of write-back commands (issue 11), in the registry database.

Every attempt is one row: written before anything is sent to a device (``pending``), or at once
with ``refused`` when the command was not allowed (a viewer's token, another tenant's device, a
point that is not writable, a value of the wrong type). A pending row is updated exactly once,
to ``confirmed``, ``failed`` or ``timeout``; :meth:`CommandStore.finish` refuses to touch a row
that has its final result, and nothing here deletes one. Values are stored as JSON scalars.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, TypeVar

from sqlalchemy import Connection, insert, select, update

from millnet.db.schema import AnyRow
from millnet.errors import Conflict, NotFound
from millnet.registry.repository import Registry
from millnet.registry.schema import commands

T = TypeVar("T")
Result = Literal["pending", "confirmed", "failed", "timeout", "refused"]
FINAL: tuple[Result, ...] = ("confirmed", "failed", "timeout", "refused")
Scalar = float | int | bool | str


@dataclass(frozen=True, slots=True)
class CommandRecord:
    id: int
    tenant_id: int | None
    token_id: int | None
    token_name: str | None
    role: str | None
    requested_at: datetime
    device: str
    point: str
    series_id: int | None
    source: str | None
    old_value: Scalar | None
    new_value: Scalar | None
    result: Result
    detail: str
    finished_at: datetime | None
    confirmed_at: datetime | None


@dataclass(frozen=True, slots=True)
class Attempt:
    """What is known of a command when it is recorded."""

    device: str
    point: str
    new_value: Scalar | None
    tenant_id: int | None = None
    token_id: int | None = None
    token_name: str | None = None
    role: str | None = None
    series_id: int | None = None
    source: str | None = None
    old_value: Scalar | None = None


@dataclass(frozen=True, slots=True)
class CommandFilter:
    tenant_id: int | None = None  # None: every tenant (a node-wide token)
    device: str | None = None
    point: str | None = None
    user: str | None = None  # the token's name
    result: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    before: int | None = None  # ids below this one (paging, newest first)
    limit: int = 100


def _load(text: str | None) -> Scalar | None:
    if text is None:
        return None
    value = json.loads(text)
    return value if isinstance(value, float | int | bool | str) else None


def _dump(value: Scalar | None) -> str | None:
    return None if value is None else json.dumps(value)


def _text(value: str) -> str:
    """What a caller sent, as the audit keeps it: bounded, NUL replaced (PostgreSQL text has
    none)."""
    return value[:1000].replace("\x00", "\ufffd")


def _record(row: AnyRow) -> CommandRecord:
    return CommandRecord(
        row.id, row.tenant_id, row.token_id, row.token_name, row.role, row.requested_at,
        row.device, row.point, row.series_id, row.source, _load(row.old_value),
        _load(row.new_value), row.result, row.detail, row.finished_at, row.confirmed_at)


class CommandStore:
    """The ``commands`` table over the registry's engine; blocking (run it in a thread)."""

    def __init__(self, registry: Registry) -> None:
        self._registry = registry

    def _run(self, work: Callable[[Connection], T], *, write: bool = False) -> T:
        """One transaction on the registry's engine, its errors mapped as the registry maps
        them (Conflict, StorageError)."""
        return self._registry._run(work, write=write)

    def record(self, attempt: Attempt, result: Result = "pending",
               detail: str = "") -> CommandRecord:
        """Insert one attempt: ``pending`` before it is sent, or a final result (a refusal)."""
        now = datetime.now(UTC)
        values = {
            "tenant_id": attempt.tenant_id, "token_id": attempt.token_id,
            "token_name": attempt.token_name, "role": attempt.role, "requested_at": now,
            "device": _text(attempt.device), "point": _text(attempt.point),
            "series_id": attempt.series_id, "source": attempt.source,
            "old_value": _dump(attempt.old_value),
            "new_value": _dump(attempt.new_value) or "null", "result": result,
            "detail": _text(detail), "finished_at": None if result == "pending" else now,
        }

        def add(conn: Connection) -> CommandRecord:
            new_id = conn.execute(insert(commands).values(**values)).inserted_primary_key[0]  # type: ignore[index]
            row = conn.execute(select(commands).where(commands.c.id == new_id)).one()
            return _record(row)

        return self._run(add, write=True)

    def finish(self, command_id: int, result: Result, detail: str,
               confirmed_at: datetime | None = None) -> CommandRecord:
        """Set the final result of a pending command; Conflict if it already has one."""
        if result not in FINAL or result == "refused":
            raise ValueError(f"not a final result of a sent command: {result}")
        now = datetime.now(UTC)

        def done(conn: Connection) -> CommandRecord:
            changed = conn.execute(
                update(commands).where(commands.c.id == command_id,
                                       commands.c.result == "pending")
                .values(result=result, detail=detail[:2000], finished_at=now,
                        confirmed_at=confirmed_at)).rowcount
            if changed == 0:
                raise Conflict(f"command {command_id} is not pending")
            return _record(conn.execute(
                select(commands).where(commands.c.id == command_id)).one())

        return self._run(done, write=True)

    def get(self, command_id: int) -> CommandRecord:
        row = self._run(lambda c: c.execute(
            select(commands).where(commands.c.id == command_id)).one_or_none())
        if row is None:
            raise NotFound(f"command {command_id} not found")
        return _record(row)

    def list(self, f: CommandFilter) -> list[CommandRecord]:
        """Newest first; at most ``f.limit`` rows."""
        c = commands.c
        query = select(commands).order_by(c.id.desc()).limit(f.limit)
        if f.tenant_id is not None:
            query = query.where(c.tenant_id == f.tenant_id)
        for column, wanted in ((c.device, f.device), (c.point, f.point),
                               (c.token_name, f.user), (c.result, f.result)):
            if wanted is not None:
                query = query.where(column == wanted)
        if f.start is not None:
            query = query.where(c.requested_at >= f.start)
        if f.end is not None:
            query = query.where(c.requested_at < f.end)
        if f.before is not None:
            query = query.where(c.id < f.before)
        return self._run(lambda conn: [_record(r) for r in conn.execute(query)])
