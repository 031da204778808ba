"""Batched inserts of new handles: the path behind ``create_many`` (and every create).

A handle is one row (its values encoded in it, see the schema module) plus one log row. Rows go
to the driver with no per-row SQLAlchemy processing, which doubled the time: one
``executemany`` per table on SQLite, ``COPY`` on PostgreSQL. Ids come from the database
(SQLite's rowid, PostgreSQL's sequence): nothing else refers to them any more.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import Column, Connection
from sqlalchemy.exc import DBAPIError

from millnet.identifiers.core.schema import handle_txns, handles
from millnet.identifiers.core.values import stored_forms
from millnet.protocols.handle import HandleValue

Prepared = Sequence[tuple[str, str, tuple[HandleValue, ...]]]

_HANDLE_COLUMNS = ("handle", "prefix", "created_at", "updated_at", "wire", "hidden")
_TXN_COLUMNS = ("handle", "deleted", "at")


#: PostgreSQL advisory lock serializing the writers of the transaction log (any constant that
#: no other lock of the database uses; see :func:`lock_log`).
LOG_LOCK_KEY = 0x6D696C6C_6C6F67


def lock_log(conn: Connection) -> None:
    """Make the transaction log's ids follow commit order; call before inserting log rows.

    Readers of the log (mirrors, change-feed followers) ask for "ids above N". On PostgreSQL a
    sequence hands ids out at insert, not at commit: a transaction holding id 3 could commit
    after one holding id 4 had been read, and change 3 would never be seen. A transaction-level
    advisory lock, taken before the log insert and held until commit, makes writers of the log
    take their ids one after another. SQLite needs nothing: a write transaction holds the
    database lock from its start."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({LOG_LOCK_KEY})")


class DuplicateHandle(Exception):
    """A unique index refused a row: some handle of the batch exists already."""


def _bound(conn: Connection, column: Column[Any], value: Any) -> Any:
    """``value`` as SQLAlchemy would bind it for ``column`` (e.g. UTC datetimes on SQLite)."""
    processor = column.type.dialect_impl(conn.dialect).bind_processor(conn.dialect)
    return processor(value) if processor is not None else value


def insert_new(conn: Connection, prepared: Prepared, now: datetime,
               value_timestamp: int | None = None) -> None:
    """Insert new handles with their values; DuplicateHandle if one exists. With
    ``value_timestamp`` every value is stored with that timestamp instead of its own."""
    stamp = _bound(conn, handles.c.created_at, now)
    handle_rows = [(name, prefix, stamp, stamp, *stored_forms(values, value_timestamp))
                   for name, prefix, values in prepared]
    txn_rows = [(name, False, stamp) for name, _, _ in prepared]
    if conn.dialect.name == "postgresql":
        _copy(conn, handles.name, _HANDLE_COLUMNS, handle_rows)
        lock_log(conn)
        _copy(conn, handle_txns.name, _TXN_COLUMNS, txn_rows)
        return
    _executemany(conn, handles.name, _HANDLE_COLUMNS, handle_rows)
    _executemany(conn, handle_txns.name, _TXN_COLUMNS, txn_rows)


def _executemany(conn: Connection, table: str, columns: tuple[str, ...],
                 rows: list[tuple[Any, ...]]) -> None:
    # Straight to the sqlite3 cursor: SQLAlchemy's per-row parameter handling doubled the time.
    marks = ", ".join("?" for _ in columns)
    quoted = ", ".join(f'"{c}"' for c in columns)
    with _driver_errors(conn):
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.executemany(f'INSERT INTO "{table}" ({quoted}) VALUES ({marks})', rows)
        finally:
            cursor.close()


def _copy(conn: Connection, table: str, columns: tuple[str, ...],
          rows: list[tuple[Any, ...]]) -> None:
    raw: Any = conn.connection.dbapi_connection
    quoted = ", ".join(f'"{c}"' for c in columns)
    with _driver_errors(conn), raw.cursor() as cursor, cursor.copy(
            f'COPY "{table}" ({quoted}) FROM STDIN') as copy:
        for row in rows:
            copy.write_row(row)


@contextmanager
def _driver_errors(conn: Connection) -> Iterator[None]:
    """Driver exceptions as SQLAlchemy would wrap them (the store maps those), duplicates as
    DuplicateHandle."""
    dbapi = conn.dialect.loaded_dbapi
    try:
        yield
    except dbapi.IntegrityError as exc:
        raise DuplicateHandle(str(exc)) from exc
    except dbapi.Error as exc:
        raise DBAPIError.instance("bulk insert", None, exc, dbapi.Error,
                                  hide_parameters=True) from exc
