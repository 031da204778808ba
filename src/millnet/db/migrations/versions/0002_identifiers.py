"""Identifier tables: handles and their values (see millnet.identifiers.core.schema).

Revision ID: 0002
Revises: 0001
Create Date: 2025-01-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None

_TS = sa.DateTime(timezone=True)
# u32 wire fields need BIGINT on PostgreSQL; SQLite's INTEGER PRIMARY KEY is the rowid.
_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")
# Byte-wise equality and order on PostgreSQL, as SQLite's default BINARY collation gives.
_HANDLE = sa.Text().with_variant(sa.Text(collation="C"), "postgresql")
_PREFIX = sa.String(255).with_variant(sa.String(255, collation="C"), "postgresql")


def upgrade() -> None:
    op.create_table(
        "handles",
        sa.Column("id", _ID, primary_key=True),
        sa.Column("handle", _HANDLE, nullable=False),
        sa.Column("prefix", _PREFIX, nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_handles"),
        sa.UniqueConstraint("handle", name="uq_handles_handle"),
    )
    op.create_table(
        "handle_values",
        sa.Column("handle_id", _ID, nullable=False),
        sa.Column("idx", sa.BigInteger, nullable=False),
        sa.Column("type", sa.Text, nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
        sa.Column("ttl_type", sa.SmallInteger, nullable=False),
        sa.Column("ttl", sa.BigInteger, nullable=False),
        sa.Column("timestamp", sa.BigInteger, nullable=False),
        sa.Column("permissions", sa.SmallInteger, nullable=False),
        sa.Column("refs", sa.Text, nullable=True),
        sa.PrimaryKeyConstraint("handle_id", "idx", name="pk_handle_values"),
        sqlite_with_rowid=False,
    )


def downgrade() -> None:
    op.drop_table("handle_values")
    op.drop_table("handles")
