"""Handles keep the wire encoding of their public values (the UDP resolution fast path).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    # NULL for handles written before this revision: the fast path encodes those from their
    # rows, and the next write of each handle fills it in. A plain ADD COLUMN (SQLite has it):
    # batch mode would leave the migration's locked transaction.
    op.add_column("handles", sa.Column("wire", sa.LargeBinary, nullable=True))


def downgrade() -> None:
    op.drop_column("handles", "wire")
