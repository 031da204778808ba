"""Alembic environment of the millnet database (registry and identifier tables, one chain).

Normally run by :func:`millnet.db.migrate.upgrade`, which passes an open connection (already in
a transaction) in ``config.attributes["connection"]``; upgrades and downgrades need no metadata
(every migration spells out its tables). Run from the command line for development
(``alembic -c src/millnet/db/migrations/alembic.ini revision --autogenerate -m ...``), it
connects to ``sqlalchemy.url`` itself and compares with the shared metadata after importing the
modules that define tables on it, named by ``table_modules`` in alembic.ini: configuration, not
an import of the domain packages, so ``millnet.db`` depends on none of them.
"""

from __future__ import annotations

import importlib

from alembic import context
from sqlalchemy import Connection, MetaData

from millnet.db.engine import create_db_engine
from millnet.db.migrate import VERSION_TABLE
from millnet.db.schema import metadata


def _run(connection: Connection, target: MetaData | None) -> None:
    context.configure(
        connection=connection,
        target_metadata=target,
        version_table=VERSION_TABLE,
        # SQLite cannot ALTER most things; batch mode recreates tables instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _main() -> None:
    config = context.config
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection, config.attributes.get("target_metadata"))
        return
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("set sqlalchemy.url in alembic.ini or pass a connection")
    for module in (config.get_main_option("table_modules") or "").split():
        importlib.import_module(module)
    engine = create_db_engine(url)
    try:
        with engine.connect() as conn:
            _run(conn, metadata)
            conn.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise RuntimeError("the millnet migrations run online only")
_main()
