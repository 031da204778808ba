"""Engines for the millnet database: SQLite (WAL, foreign keys, busy timeout) or PostgreSQL
via psycopg.

SQLite transactions are begun by us rather than by the sqlite3 module, for two reasons: the
module does not begin a transaction before a SELECT (so a read-then-write is not atomic), and a
write transaction must start as ``BEGIN IMMEDIATE``. A deferred transaction that reads and then
writes fails at once with "database is locked" when another writer committed in between, no
matter the busy timeout; an immediate one waits for the write lock up to the timeout instead.
Reads stay plain ``BEGIN`` so that, under WAL, they never wait for writers.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError
from sqlalchemy.pool import StaticPool

from millnet.errors import ConfigError

BUSY_TIMEOUT_MS = 10_000
# Execution option telling the SQLite "begin" hook that this transaction will write.
WRITE_OPTION = "millnet_write"
URL_SETTING = "registry.url"


def parse_url(url: str, setting: str = URL_SETTING) -> URL:
    """``url`` as SQLAlchemy takes it; ConfigError naming ``setting`` (where the URL came
    from) when it is not a sqlite or postgresql URL."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError(setting, f"not a database URL: {exc}") from exc
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise ConfigError(setting, f"unsupported database {backend!r}: use sqlite or "
                                       "postgresql+psycopg")
    if backend == "postgresql" and parsed.get_driver_name() != "psycopg":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def create_db_engine(url: str, setting: str = URL_SETTING) -> Engine:
    """An engine for ``url`` with the per-backend settings every store relies on."""
    parsed = parse_url(url, setting)
    # hide_parameters: errors and logs must never show bound values (token hashes among them).
    options: dict[str, Any] = {"hide_parameters": True}
    try:
        if parsed.get_backend_name() == "sqlite":
            return _sqlite_engine(parsed, options)
        return create_engine(parsed, pool_pre_ping=True, **options)
    except NoSuchModuleError as exc:
        raise ConfigError(setting, f"no driver for {parsed.drivername}") from exc


def _sqlite_engine(url: URL, options: dict[str, Any]) -> Engine:
    memory = url.database in (None, "", ":memory:")
    if memory:
        # One shared connection: an in-memory database exists once per connection. Good for
        # single-threaded tools and tests, not for concurrent callers.
        options["poolclass"] = StaticPool
    elif url.database is not None and not url.database.startswith("file:"):
        Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url, connect_args={"check_same_thread": False, "timeout": BUSY_TIMEOUT_MS / 1000},
        **options,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves, see module docstring
        cursor = dbapi_connection.cursor()
        try:
            # busy_timeout first: switching to WAL needs a lock that a concurrent opener may hold.
            cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA foreign_keys=ON")
            if not memory:
                _wal(cursor)
                cursor.execute("PRAGMA synchronous=NORMAL")  # durable at checkpoints under WAL
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        write = conn.get_execution_options().get(WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


def _wal(cursor: Any) -> None:
    """Switch the database to WAL unless it is already (the mode is kept in the file).

    The switch needs an exclusive lock and does not wait on the busy handler: an opener that
    meets another's migration transaction on a fresh database got "database is locked" at
    once (a flaky concurrent-open test; longer migrations made it likelier). So: read the
    mode first, and retry the switch until the busy timeout."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        if str(cursor.execute("PRAGMA journal_mode").fetchone()[0]).lower() == "wal":
            return
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def writer(engine: Engine) -> Engine:
    """The same engine (same pool) whose transactions take the write lock up front on SQLite."""
    return engine.execution_options(**{WRITE_OPTION: True})
