"""The identifier transaction log, which mirrors replay (identifiers.replication).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None

_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")
_HANDLE = sa.Text().with_variant(sa.Text(collation="C"), "postgresql")


def upgrade() -> None:
    op.create_table(
        "handle_txns",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("handle", _HANDLE, nullable=False),
        sa.Column("deleted", sa.Boolean, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_handle_txns"),
    )


def downgrade() -> None:
    op.drop_table("handle_txns")
