"""The rules of every tenant, in the millnet database (table ``rules``).

Blocking, thread-safe (one short transaction per call): async callers use
``asyncio.to_thread``. A rule is stored in its canonical JSON form and read back through
:func:`~millnet.rules.definitions.parse_rule`, so what the engine gets was checked the same way
as what the API and the files accept. Rules from files (``origin = "file"``) change only through
:meth:`RuleStore.sync_file_rules`, which keeps their ids across restarts (alarms refer to them).
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, TypeVar

from sqlalchemy import Connection, Engine, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from millnet.db.schema import AnyRow
from millnet.db.sqlstore import SqlStore
from millnet.errors import Conflict, InvalidInput, NotFound, QuotaExceeded, StorageError
from millnet.rules.definitions import Rule, parse_rule
from millnet.rules.schema import rules as table

T = TypeVar("T")
Origin = Literal["api", "file"]


@dataclass(frozen=True)
class StoredRule:
    id: int
    tenant_id: int
    rule: Rule
    origin: Origin
    file: str | None
    created_at: datetime
    updated_at: datetime
    created_by: int | None = None  # the API token that created it


def _definition(rule: Rule) -> str:
    return json.dumps(rule.to_dict(), sort_keys=True, ensure_ascii=False)


def _stored(row: AnyRow) -> StoredRule:
    try:
        rule = parse_rule(json.loads(row.definition))
    except (InvalidInput, ValueError) as exc:
        raise StorageError(f"rule {row.id} is stored in a form this version cannot read: "
                           f"{exc}") from exc
    return StoredRule(row.id, row.tenant_id, rule, row.origin, row.file, row.created_at,
                      row.updated_at, row.created_by)


def _file_conflict(row: AnyRow) -> Conflict:
    return Conflict(f"rule {row.name!r} is defined in the file {row.file}; change it there")


class RuleStore(SqlStore):
    """Create, replace, delete and read rules; each tenant holds at most
    ``max_rules_per_tenant``."""

    label = "rules"

    def __init__(self, engine: Engine, *, max_rules_per_tenant: int = 10_000) -> None:
        super().__init__(engine)
        self.max_rules_per_tenant = max_rules_per_tenant

    def _run(self, work: Callable[[Connection], T], *, write: bool = False) -> T:
        try:
            with (self._writer if write else self._engine).begin() as conn:
                return work(conn)
        except IntegrityError as exc:
            raise Conflict("the change collides with a concurrent one or with existing "
                           "data (a rule of that name exists)") from exc
        except (OperationalError, InterfaceError) as exc:
            raise StorageError(f"rules database error: {exc.orig!s}") from exc
        except PoolTimeout as exc:
            raise StorageError(f"rules database busy: {exc}") from exc

    def create(self, tenant_id: int, rule: Rule, *, created_by: int | None = None) -> StoredRule:
        """A new API rule; Conflict if the tenant has a rule of that name."""
        return self._run(lambda c: self._insert(c, tenant_id, rule, "api", None, created_by),
                         write=True)

    def update(self, rule_id: int, rule: Rule, *, tenant_id: int | None = None) -> StoredRule:
        """Replace an API rule (a new name too); NotFound when it is not the tenant's,
        Conflict when it comes from a file."""
        def replace(conn: Connection) -> StoredRule:
            row = self._row(conn, rule_id, tenant_id)
            if row.origin == "file":
                raise _file_conflict(row)
            self._replace(conn, row.id, rule)
            return _stored(self._row(conn, rule_id, None))

        return self._run(replace, write=True)

    def delete(self, rule_id: int, *, tenant_id: int | None = None) -> StoredRule:
        """Remove an API rule; what it was."""
        def remove(conn: Connection) -> StoredRule:
            row = self._row(conn, rule_id, tenant_id)
            if row.origin == "file":
                raise _file_conflict(row)
            conn.execute(delete(table).where(table.c.id == rule_id))
            return _stored(row)

        return self._run(remove, write=True)

    def get(self, rule_id: int, *, tenant_id: int | None = None) -> StoredRule:
        """NotFound also when the rule belongs to another tenant than ``tenant_id``."""
        return self._run(lambda c: _stored(self._row(c, rule_id, tenant_id)))

    def list(self, tenant_id: int | None = None) -> list[StoredRule]:
        """The rules of a tenant (every tenant's when None), oldest first."""
        query = select(table).order_by(table.c.id)
        if tenant_id is not None:
            query = query.where(table.c.tenant_id == tenant_id)
        return self._run(lambda c: [_stored(row) for row in c.execute(query)])

    def sync_file_rules(self, tenant_id: int, path: Path | str,
                        rules: Sequence[Rule]) -> builtins.list[StoredRule]:
        """Make the tenant's rules from ``path`` what the file now says, in one transaction:
        new names inserted, changed ones replaced in place (same id), those gone from the file
        deleted. Returns what changed (deleted rules as they were). Conflict when a name is
        taken by an API rule or another file's rule."""
        file = str(path)

        def sync(conn: Connection) -> builtins.list[StoredRule]:
            existing = {row.name: row for row in conn.execute(
                select(table).where(table.c.tenant_id == tenant_id,
                                    table.c.name.in_([r.name for r in rules])))}
            changed: builtins.list[StoredRule] = []
            for rule in rules:
                row = existing.get(rule.name)
                if row is None:
                    changed.append(self._insert(conn, tenant_id, rule, "file", file, None))
                elif row.origin != "file" or row.file != file:
                    where = "the API" if row.origin == "api" else f"the file {row.file}"
                    raise Conflict(f"rule {rule.name!r} of {file} is already defined in "
                                   f"{where}")
                elif row.definition != _definition(rule):
                    self._replace(conn, row.id, rule)
                    changed.append(_stored(self._row(conn, row.id, None)))
            gone = select(table).where(
                table.c.tenant_id == tenant_id, table.c.origin == "file", table.c.file == file,
                table.c.name.not_in([r.name for r in rules]))
            for row in conn.execute(gone).all():
                conn.execute(delete(table).where(table.c.id == row.id))
                changed.append(_stored(row))
            return changed

        return self._run(sync, write=True)

    def _row(self, conn: Connection, rule_id: int, tenant_id: int | None) -> AnyRow:
        query = select(table).where(table.c.id == rule_id)
        if tenant_id is not None:
            query = query.where(table.c.tenant_id == tenant_id)
        row = conn.execute(query).one_or_none()
        if row is None:
            raise NotFound(f"rule {rule_id} not found")
        return row

    def _insert(self, conn: Connection, tenant_id: int, rule: Rule, origin: Origin,
                file: str | None, created_by: int | None) -> StoredRule:
        count = conn.execute(select(func.count()).select_from(table)
                             .where(table.c.tenant_id == tenant_id)).scalar_one()
        if count >= self.max_rules_per_tenant:
            raise QuotaExceeded(f"the tenant has {count} rules, the most allowed "
                                f"(rules.max_rules_per_tenant)")
        taken = conn.execute(select(table.c.id).where(
            table.c.tenant_id == tenant_id, table.c.name == rule.name)).first()
        if taken is not None:
            raise Conflict(f"a rule named {rule.name!r} exists (id {taken.id})")
        now = datetime.now(UTC)
        new_id = conn.execute(insert(table).values(
            tenant_id=tenant_id, name=rule.name, kind=rule.kind.value,
            definition=_definition(rule), origin=origin, file=file, enabled=rule.enabled,
            created_at=now, updated_at=now, created_by=created_by)).inserted_primary_key[0]  # type: ignore[index]
        return _stored(self._row(conn, new_id, None))

    def _replace(self, conn: Connection, rule_id: int, rule: Rule) -> None:
        conn.execute(update(table).where(table.c.id == rule_id).values(
            name=rule.name, kind=rule.kind.value, definition=_definition(rule),
            enabled=rule.enabled, updated_at=datetime.now(UTC)))
