"""The rules table, on the database's shared metadata (:mod:`millnet.db.schema`).

One row per rule of a tenant: its canonical JSON form (``Rule.to_dict``) in ``definition``,
and beside it what the API lists and filters by. ``origin`` says where the rule is defined: the
API (``api``) or a rule file the node loads at start (``file``, with its path), which the API
may read but not change. Migration 0012 creates the table; a test compares the migrated
database with this metadata.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from millnet.db.schema import UtcDateTime, metadata

ORIGINS = ("api", "file")

rules = Table(
    "rules", metadata,
    Column("id", Integer, primary_key=True),
    Column("tenant_id", Integer, ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(64), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("definition", Text, nullable=False),
    Column("origin", String(8), nullable=False),
    Column("file", Text, nullable=True),
    Column("enabled", Boolean, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("created_by", Integer, ForeignKey("api_tokens.id", ondelete="SET NULL"),
           nullable=True),
    UniqueConstraint("tenant_id", "name"),
    CheckConstraint(f"origin IN {ORIGINS!r}", name="origin"),
    CheckConstraint("(origin = 'file') = (file IS NOT NULL)", name="file_origin"),
)
