"""The notification outbox (issue 12): one row per (alarm notice, target).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "notify_outbox",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("delivery_id", sa.String(36), nullable=False),
        sa.Column("target", sa.String(64), nullable=False),
        sa.Column("event_id", sa.BigInteger, nullable=False),
        sa.Column("tenant_id", sa.Integer, nullable=False),
        sa.Column("notice", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_notify_outbox"),
        sa.UniqueConstraint("delivery_id", name="uq_notify_outbox_delivery_id"),
        sa.CheckConstraint("status IN ('pending', 'delivered', 'failed')",
                           name="ck_notify_outbox_status"),
    )
    op.create_index("ix_notify_outbox_status_finished_at", "notify_outbox",
                    ["status", "finished_at"])


def downgrade() -> None:
    op.drop_table("notify_outbox")
