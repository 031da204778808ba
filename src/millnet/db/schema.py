"""The shared MetaData and column types of every table in the millnet database.

The registry's and the identifiers' tables are defined on :data:`metadata` by their own
packages (``millnet.registry.schema``, ``millnet.identifiers.core.schema``); this module knows none
of them. The migrations in ``migrations/versions`` create the tables without importing any of
this, and a test compares the migrated database with the metadata once both packages have
defined their tables.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, TypeAlias

from sqlalchemy import DateTime, Dialect, MetaData, Row, TypeDecorator

# A result row of any shape (rows are read by attribute).
AnyRow: TypeAlias = Row[*tuple[Any, ...]]

# Constraint names are explicit so later migrations (and SQLite batch mode) can refer to them.
metadata = MetaData(naming_convention={
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
})


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend.

    SQLite has no time zones (its values come back naive) and PostgreSQL answers in the session's
    zone; this stores UTC and always returns aware UTC datetimes, so records compare equal
    across backends.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
