"""Alembic environment of the registry.

Normally run by :func:`millnet.registry.migrate.upgrade`, which passes an open connection (already
in a transaction) in ``config.attributes["connection"]``. Run from the command line for
development (``alembic -c src/millnet/registry/migrations/alembic.ini revision -m ...``), it
connects to ``sqlalchemy.url`` itself.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

# The identifier tables share the registry's metadata (one database, one migration chain).
import millnet.identifiers.schema  # noqa: F401
from millnet.registry.engine import create_registry_engine
from millnet.registry.migrate import VERSION_TABLE
from millnet.registry.schema import metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
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
        _run(connection)
        return
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("set sqlalchemy.url in alembic.ini or pass a connection")
    engine = create_registry_engine(url)
    try:
        with engine.connect() as conn:
            _run(conn)
            conn.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise RuntimeError("the registry migrations run online only")
_main()
