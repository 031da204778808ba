"""The identifier store: handles and their values in the registry's database.

:class:`IdentifierStore` is synchronous and thread-safe like the registry (a :class:`SqlStore`):
each method is one short transaction on a pooled connection (async servers call it through
``asyncio.to_thread``). Writes are all-or-nothing. Handles are stored in the canonical form of
:func:`millnet.protocols.handle.normalize_handle` (prefix ASCII upper-cased, suffix kept as
given), and every method accepts any spelling of the prefix.

The store keeps values exactly as given (timestamps included); stamping, permissions and
validation of typed data belong to :class:`millnet.identifiers.IdentifierService`.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import (
    ColumnElement,
    Connection,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from millnet.db.sqlstore import SqlStore
from millnet.errors import InvalidInput, StorageError
from millnet.identifiers.core.bulk import DuplicateHandle, insert_new, lock_log
from millnet.identifiers.core.errors import HandleExists, HandleNotFound, ValueExists, ValueNotFound
from millnet.identifiers.core.schema import handle_txns, handles
from millnet.identifiers.core.values import (
    canonical_handle,
    check_indexes,
    check_values,
    select_values,
    stored_forms,
    stored_values,
)
from millnet.protocols.handle import HandleValue

log = logging.getLogger("millnet.identifiers")

T = TypeVar("T")
#: Handles per create_many call: one transaction must stay short enough not to starve others.
MAX_BATCH = 10_000
_CHUNK = 1000  # rows per lookup statement (bound parameters stay well under every limit)
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

HandleSpec = tuple[str, Sequence[HandleValue]]


def _now() -> datetime:
    return datetime.now(UTC)


def new_suffix() -> str:
    """26 Crockford base-32 characters: 48 bits of milliseconds then 80 random bits (a ULID),
    so minted suffixes sort by creation time and never collide in practice."""
    number = (time.time_ns() // 1_000_000) << 80 | secrets.randbits(80)
    return "".join(_CROCKFORD[(number >> shift) & 31] for shift in range(125, -1, -5))


def _load(conn: Connection, handle: str, *,
          lock: bool = False) -> tuple[int, tuple[HandleValue, ...]]:
    """(row id, values) of a stored handle; HandleNotFound if there is none. With ``lock``
    (every read-modify-write of the record) the row is locked until the transaction ends:
    FOR UPDATE on PostgreSQL; on SQLite the write transaction holds the database lock already
    (BEGIN IMMEDIATE) and SQLAlchemy leaves the clause out."""
    query = select(handles.c.id, handles.c.wire, handles.c.hidden).where(
        handles.c.handle == handle)
    found = conn.execute(query.with_for_update() if lock else query).first()
    if found is None:
        raise HandleNotFound(f"handle {handle} does not exist")
    return int(found.id), stored_values(found.wire, found.hidden)


def _save(conn: Connection, handle_id: int, name: str,
          values: Sequence[HandleValue]) -> None:
    """Write a stored handle's new values, with its timestamp and a transaction log row."""
    wire, hidden = stored_forms(values)
    now = _now()
    conn.execute(update(handles).where(handles.c.id == handle_id)
                 .values(updated_at=now, wire=wire, hidden=hidden))
    _log_change(conn, name, deleted=False, at=now)


def _log_change(conn: Connection, name: str, *, deleted: bool, at: datetime) -> None:
    """The transaction log row of one change, in commit order (:func:`bulk.lock_log`)."""
    lock_log(conn)
    conn.execute(insert(handle_txns).values(handle=name, deleted=deleted, at=at))


@dataclass(frozen=True)
class LogPage:
    """Rows of the transaction log (:meth:`IdentifierStore.log_after`)."""

    changes: list[tuple[int, str]]  # (log id, handle), in commit order
    next: int  # the position to ask from next
    more: bool
    reset: bool


class IdentifierStore(SqlStore):
    """Handles and values: create, read, change, delete, list, count, mint."""

    label = "identifier"

    def _run(self, work: Callable[[Connection], T], *, write: bool = False) -> T:
        try:
            with (self._writer if write else self._engine).begin() as conn:
                return work(conn)
        except (OperationalError, InterfaceError) as exc:
            raise StorageError(f"identifier database error: {exc.orig!s}") from exc
        except PoolTimeout as exc:
            raise StorageError(f"identifier database busy: {exc}") from exc

    # Creating

    def create_handle(self, handle: str, values: Sequence[HandleValue], *,
                      overwrite: bool = False) -> str:
        """Store a new handle with ``values``; its canonical name.

        HandleExists if it exists, unless ``overwrite``: then its values are replaced."""
        name, prefix = canonical_handle(handle)
        checked = check_values(values)

        def work(conn: Connection) -> str:
            if overwrite:
                existing = conn.execute(select(handles.c.id).where(handles.c.handle == name)
                                        .with_for_update()).scalar()
                if existing is not None:
                    _save(conn, int(existing), name, checked)
                    return name
            self._insert(conn, [(name, prefix, checked)])
            return name

        return self._creating(work, [name])

    def create_many(self, items: Sequence[HandleSpec]) -> list[str]:
        """Store up to :data:`MAX_BATCH` new handles in one transaction: all or none.

        Their canonical names, in order. HandleExists (naming one) if any exists already or
        appears twice; InvalidInput naming ``items[i]...`` if any is invalid."""
        if len(items) > MAX_BATCH:
            raise InvalidInput(f"{len(items)} handles; at most {MAX_BATCH} per call", "items")
        prepared: list[tuple[str, str, tuple[HandleValue, ...]]] = []
        seen: set[str] = set()
        for i, (handle, values) in enumerate(items):
            try:
                name, prefix = canonical_handle(handle)
            except InvalidInput as exc:
                raise InvalidInput(str(exc), f"items[{i}].handle") from None
            if name in seen:
                raise HandleExists(f"handle {name} appears twice in the batch")
            seen.add(name)
            prepared.append((name, prefix, check_values(values, f"items[{i}].values")))
        return self.create_checked(prepared)

    def create_checked(self, prepared: Sequence[tuple[str, str, tuple[HandleValue, ...]]],
                       *, timestamp: int | None = None) -> list[str]:
        """:meth:`create_many` for items a caller has already made canonical (name, prefix)
        and checked (the service's batch registration, which must check them anyway); with
        ``timestamp``, every value is stored with it."""
        if len(prepared) > MAX_BATCH:
            raise InvalidInput(f"{len(prepared)} handles; at most {MAX_BATCH} per call",
                               "items")
        if not prepared:
            return []
        names = [name for name, _, _ in prepared]
        if len(set(names)) != len(names):
            raise HandleExists("a handle appears twice in the batch")

        def work(conn: Connection) -> list[str]:
            insert_new(conn, prepared, _now(), timestamp)
            return names

        return self._creating(work, names)

    @staticmethod
    def _insert(conn: Connection,
                prepared: Sequence[tuple[str, str, tuple[HandleValue, ...]]]) -> None:
        insert_new(conn, prepared, _now())

    def _creating(self, work: Callable[[Connection], T], names: list[str]) -> T:
        try:
            return self._run(work, write=True)
        except (IntegrityError, DuplicateHandle):
            taken = self._existing(names)
            which = taken[0] if taken else "a handle of the batch"
            raise HandleExists(f"handle {which} already exists") from None

    def _existing(self, names: list[str]) -> list[str]:
        def work(conn: Connection) -> list[str]:
            found: list[str] = []
            for start in range(0, len(names), _CHUNK):
                chunk = names[start:start + _CHUNK]
                found += conn.execute(select(handles.c.handle)
                                      .where(handles.c.handle.in_(chunk))).scalars().all()
            return found
        return self._run(work)

    # Reading

    def get(self, handle: str, indexes: Sequence[int] = (),
            types: Sequence[str] = ()) -> tuple[HandleValue, ...]:
        """The handle's values in index order, filtered as a resolution request filters them
        (index OR type; see :func:`select_values`). HandleNotFound if it does not exist."""
        name, _ = canonical_handle(handle)
        _, values = self._run(lambda conn: _load(conn, name))
        return select_values(values, indexes, types)

    def exists(self, handle: str) -> bool:
        name, _ = canonical_handle(handle)
        return self._run(lambda conn: conn.execute(
            select(handles.c.id).where(handles.c.handle == name)).first() is not None)

    def list_handles(self, prefix: str, *, page: int = 0, limit: int = 100) -> list[str]:
        """Handles under ``prefix`` in byte order of their names; ``page`` counts from 0."""
        if page < 0 or not 1 <= limit <= MAX_BATCH:
            raise InvalidInput(f"page >= 0 and 1 <= limit <= {MAX_BATCH}", "page")
        under = _under(prefix)
        return self._run(lambda conn: list(conn.execute(
            select(handles.c.handle).where(*under)
            .order_by(handles.c.handle).offset(page * limit).limit(limit)).scalars()))

    def log_after(self, since: int | None, limit: int) -> LogPage:
        """The transaction log after position ``since``, ``limit`` rows at most (None: no
        rows, only the current position). ``reset`` when the log no longer holds every
        change after ``since``: trimmed past it, or behind it (a store restored or replaced;
        found by review: a reader positioned ahead waited there for ever)."""

        def work(conn: Connection) -> LogPage:
            oldest, newest = conn.execute(select(func.min(handle_txns.c.id),
                                                 func.max(handle_txns.c.id))).one()
            top = int(newest or 0)
            if since is None:
                return LogPage([], top, more=False, reset=False)
            if since > top or (oldest is not None and since + 1 < int(oldest)):
                return LogPage([], top, more=False, reset=True)
            rows = [(int(i), str(h)) for i, h in conn.execute(
                select(handle_txns.c.id, handle_txns.c.handle)
                .where(handle_txns.c.id > since).order_by(handle_txns.c.id).limit(limit))]
            return LogPage(rows, rows[-1][0] if rows else since, more=len(rows) == limit,
                           reset=False)

        return self._run(work)

    def trim_txns(self, keep: int) -> int:
        """Delete all but the newest ``keep`` rows of the transaction log (in a write
        transaction: a read upgraded to a write could fail at once on SQLite); how many."""

        def work(conn: Connection) -> int:
            newest = conn.execute(select(func.max(handle_txns.c.id))).scalar()
            if newest is None:
                return 0
            return int(conn.execute(delete(handle_txns)
                                    .where(handle_txns.c.id <= int(newest) - keep)).rowcount)

        return self._run(work, write=True)

    def iter_handles_all(self, *, batch: int = 1000) -> Iterator[str]:
        """Every handle held, whatever its prefix (0.NA records included), by key."""
        after = ""
        while True:
            query = (select(handles.c.handle).where(handles.c.handle > after)
                     .order_by(handles.c.handle).limit(batch))

            def fetch(conn: Connection, q: Any = query) -> list[str]:
                return list(conn.execute(q).scalars())

            chunk = self._run(fetch)
            yield from chunk
            if len(chunk) < batch:
                return
            after = chunk[-1]

    def iter_handles(self, prefix: str, *, batch: int = 1000) -> Iterator[str]:
        """Every handle under ``prefix``, fetched ``batch`` at a time by key (not by offset),
        each batch in its own short transaction: for LIST_HANDLE over large prefixes."""
        under = _under(prefix)
        after: str | None = None
        while True:
            query = select(handles.c.handle).where(*under)
            if after is not None:
                query = query.where(handles.c.handle > after)
            ordered = query.order_by(handles.c.handle).limit(batch)

            def fetch(conn: Connection, q: Any = ordered) -> list[str]:
                return list(conn.execute(q).scalars())

            chunk = self._run(fetch)
            yield from chunk
            if len(chunk) < batch:
                return
            after = chunk[-1]

    def count(self, prefix: str | None = None) -> int:
        """How many handles there are (under ``prefix`` when given)."""
        query = select(func.count()).select_from(handles)
        if prefix is not None:
            query = query.where(*_under(prefix))
        return self._run(lambda conn: int(conn.execute(query).scalar_one()))

    def mint_suffix(self, prefix: str) -> str:
        """A suffix no handle under ``prefix`` uses now (see :func:`new_suffix`). Creating it
        can still race with another creator: retry on HandleExists."""
        key = _prefix_key(prefix)
        while True:
            suffix = new_suffix()
            if not self.exists(f"{key}/{suffix}"):
                return suffix

    # Changing

    def delete_handle(self, handle: str) -> None:
        """Delete the handle and its values; HandleNotFound if it does not exist."""
        name, _ = canonical_handle(handle)

        def work(conn: Connection) -> None:
            if not conn.execute(delete(handles).where(handles.c.handle == name)).rowcount:
                raise HandleNotFound(f"handle {name} does not exist")
            _log_change(conn, name, deleted=True, at=_now())

        self._run(work, write=True)

    def add_values(self, handle: str, values: Sequence[HandleValue]) -> None:
        """Add values at new indexes; ValueExists if an index is taken (nothing is added)."""
        name, _ = canonical_handle(handle)
        checked = check_values(values)

        def work(conn: Connection) -> None:
            handle_id, held = _load(conn, name, lock=True)
            taken = {v.index for v in held} & {v.index for v in checked}
            if taken:
                raise ValueExists(f"{name} already has a value at index {min(taken)}")
            _save(conn, handle_id, name, check_values(held + checked))

        self._run(work, write=True)

    def put_values(self, handle: str, values: Sequence[HandleValue]) -> None:
        """Add values, replacing those at indexes the handle has: one write."""
        name, _ = canonical_handle(handle)
        checked = check_values(values)
        changed = {v.index for v in checked}

        def work(conn: Connection) -> None:
            handle_id, held = _load(conn, name, lock=True)
            _save(conn, handle_id, name,
                  check_values((*(v for v in held if v.index not in changed), *checked)))

        self._run(work, write=True)

    def remove_values(self, handle: str, indexes: Sequence[int]) -> None:
        """Remove the values at ``indexes``; ValueNotFound if one is missing (none removed)."""
        name, _ = canonical_handle(handle)
        wanted = set(check_indexes(indexes))

        def work(conn: Connection) -> None:
            handle_id, held = _load(conn, name, lock=True)
            missing = wanted - {v.index for v in held}
            if missing:
                raise ValueNotFound(f"{name} has no value at index {min(missing)}")
            _save(conn, handle_id, name, [v for v in held if v.index not in wanted])

        self._run(work, write=True)

    def modify_values(self, handle: str, values: Sequence[HandleValue]) -> None:
        """Replace the values at the indexes of ``values``; ValueNotFound if one is missing."""
        name, _ = canonical_handle(handle)
        checked = check_values(values)

        def work(conn: Connection) -> None:
            handle_id, held = _load(conn, name, lock=True)
            missing = {v.index for v in checked} - {v.index for v in held}
            if missing:
                raise ValueNotFound(f"{name} has no value at index {min(missing)}")
            new = {v.index: v for v in checked}
            _save(conn, handle_id, name, [new.get(v.index, v) for v in held])

        self._run(work, write=True)


def _under(prefix: str) -> tuple[ColumnElement[bool], ...]:
    """The handles of ``prefix`` as a range of the unique index (see the schema module)."""
    key = _prefix_key(prefix)
    return handles.c.handle >= f"{key}/", handles.c.handle < f"{key}0"


def _prefix_key(prefix: str) -> str:
    """A prefix as stored: the prefix part of a canonical handle."""
    if "/" in prefix:
        raise InvalidInput("a prefix has no '/'", "prefix")
    return canonical_handle(f"{prefix}/x")[1]
