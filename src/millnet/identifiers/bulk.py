"""Batched inserts of new handles: the path behind ``create_many`` (and every create).

Row-at-a-time INSERT ... RETURNING (what SQLAlchemy falls back to on SQLite when ids must come
back in order) managed ~17,000 handles/s. Instead ids are allocated up front and rows go to the
driver with no per-row SQLAlchemy processing:

* SQLite: ids follow ``MAX(id)``, safe because the write transaction holds the database lock
  from ``BEGIN IMMEDIATE``; then one ``executemany`` per table.
* PostgreSQL: ids come from the table's sequence in one query; rows go through ``COPY``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import Column, Connection, text
from sqlalchemy.exc import DBAPIError

from millnet.protocols.handle import HandleValue

from .schema import handle_txns, handle_values, handles
from .values import public_wire

Prepared = Sequence[tuple[str, str, tuple[HandleValue, ...]]]

_HANDLE_COLUMNS = ("id", "handle", "prefix", "created_at", "updated_at", "wire")
_TXN_COLUMNS = ("handle", "deleted", "at")
_VALUE_COLUMNS = ("handle_id", "idx", "type", "data", "ttl_type", "ttl", "timestamp",
                  "permissions", "refs")


#: The sequence PostgreSQL made for the BIGSERIAL ``handles.id`` (migration 0002). Named, not
#: looked up: ``nextval(pg_get_serial_sequence(...))`` per row made allocation 6 times slower.
ID_SEQUENCE = "handles_id_seq"


class DuplicateHandle(Exception):
    """A unique index refused a row: some handle of the batch exists already."""


def refs_json(value: HandleValue) -> str | None:
    if not value.references:
        return None
    return json.dumps([[r.handle, r.index] for r in value.references], ensure_ascii=False)


def _bound(conn: Connection, column: Column[Any], value: Any) -> Any:
    """``value`` as SQLAlchemy would bind it for ``column`` (e.g. UTC datetimes on SQLite)."""
    processor = column.type.dialect_impl(conn.dialect).bind_processor(conn.dialect)
    return processor(value) if processor is not None else value


def _allocate_ids(conn: Connection, n: int) -> list[int]:
    if conn.dialect.name == "postgresql":
        # One array in one row: 10,000 rows through the result machinery cost 30 ms.
        ids: list[int] = conn.execute(text(
            f"SELECT array_agg(nextval('{ID_SEQUENCE}')) FROM generate_series(1, :n)"),
            {"n": n}).scalar_one()
        return ids
    top = conn.exec_driver_sql("SELECT COALESCE(MAX(id), 0) FROM handles").scalar_one()
    return list(range(int(top) + 1, int(top) + 1 + n))


def insert_new(conn: Connection, prepared: Prepared, now: datetime,
               value_timestamp: int | None = None) -> None:
    """Insert new handles with their values; DuplicateHandle if one exists. With
    ``value_timestamp`` every value is stored with that timestamp instead of its own."""
    ids = _allocate_ids(conn, len(prepared))
    stamp = _bound(conn, handles.c.created_at, now)
    handle_rows = [(handle_id, name, prefix, stamp, stamp, public_wire(values, value_timestamp))
                   for handle_id, (name, prefix, values) in zip(ids, prepared, strict=True)]
    value_rows = [(handle_id, v.index, v.type, v.data, v.ttl_type, v.ttl,
                   v.timestamp if value_timestamp is None else value_timestamp,
                   v.permissions, refs_json(v) if v.references else None)
                  for handle_id, (_, _, values) in zip(ids, prepared, strict=True)
                  for v in values]
    txn_rows = [(name, False, stamp) for name, _, _ in prepared]
    if conn.dialect.name == "postgresql":
        _copy(conn, handles.name, _HANDLE_COLUMNS, handle_rows)
        _copy(conn, handle_values.name, _VALUE_COLUMNS, value_rows)
        _copy(conn, handle_txns.name, _TXN_COLUMNS, txn_rows)
        return
    _executemany(conn, handles.name, _HANDLE_COLUMNS, handle_rows)
    _executemany(conn, handle_values.name, _VALUE_COLUMNS, value_rows)
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
