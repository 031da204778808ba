"""Schema migrations run from code: Alembic's command API with a configuration built here.

Each run happens in one transaction that first takes a lock (``BEGIN IMMEDIATE`` on SQLite, an
advisory lock on PostgreSQL), so processes starting together against a fresh database migrate it
once; the others wait and then find it at head.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, text

from millnet.db.engine import writer

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
# Not "alembic_version": other programs may migrate the same PostgreSQL database. The name
# predates millnet.db (the chain began as the registry's) and stays: databases record it.
VERSION_TABLE = "registry_alembic_version"
# Arbitrary constant naming millnet's migration lock among PostgreSQL advisory locks.
_PG_LOCK_KEY = 0x6D696C6C_6E6574 & 0x7FFFFFFF_FFFFFFFF


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def _locked(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema up to ``revision``; a no-op when it is there already."""
    with writer(engine).begin() as connection:
        _locked(connection)
        command.upgrade(alembic_config(connection), revision)


def downgrade(engine: Engine, revision: str = "base") -> None:
    """Take the schema down to ``revision`` ("base" drops every millnet table)."""
    with writer(engine).begin() as connection:
        _locked(connection)
        command.downgrade(alembic_config(connection), revision)


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, None for an empty database."""
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"version_table": VERSION_TABLE})
        return context.get_current_revision()
