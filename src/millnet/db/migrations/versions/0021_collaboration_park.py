"""Networked collaboration (shares offered, shares received, their audit) and the industrial
park's member summaries (issue 15).

Written out by hand (see ``millnet.collab.schema`` and ``millnet.park.schema``, which a test
compares with this).

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | None = None
depends_on: str | None = None


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "collab_shares",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("tenant_id", sa.Integer, nullable=False),
        sa.Column("partner", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("target", sa.String(512), nullable=False),
        sa.Column("expires_at", _utc(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("ended_at", _utc(), nullable=True),
        sa.Column("secret", sa.LargeBinary(32), nullable=False),
        sa.Column("partner_key", sa.LargeBinary(32), nullable=True),
        sa.Column("updates", sa.BigInteger, nullable=False),
        sa.Column("pushed_digest", sa.String(64), nullable=True),
        sa.Column("pushed_at", _utc(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_collab_shares"),
    )
    op.create_index("ix_collab_shares_tenant_id", "collab_shares", ["tenant_id"])
    op.create_table(
        "collab_received",
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("target", sa.String(512), nullable=False),
        sa.Column("expires_at", _utc(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("tenant_id", sa.Integer, nullable=True),
        sa.Column("owner_key", sa.LargeBinary(32), nullable=False),
        sa.Column("secret", sa.LargeBinary(32), nullable=True),
        sa.Column("payload", sa.Text, nullable=True),
        sa.Column("payload_at", _utc(), nullable=True),
        sa.Column("updates", sa.BigInteger, nullable=False),
        sa.Column("offered_at", _utc(), nullable=False),
        sa.Column("accepted_at", _utc(), nullable=True),
        sa.Column("ended_at", _utc(), nullable=True),
        sa.PrimaryKeyConstraint("owner", "id", name="pk_collab_received"),
    )
    op.create_table(
        "collab_audit",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("share_id", sa.String(40), nullable=False),
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("partner", sa.String(64), nullable=False),
        sa.Column("side", sa.String(8), nullable=False),
        sa.Column("event", sa.String(16), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("at", _utc(), nullable=False),
        sa.Column("detail", sa.String(300), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_collab_audit"),
    )
    op.create_index("ix_collab_audit_owner_share_id", "collab_audit", ["owner", "share_id"])
    op.create_table(
        "park_summaries",
        sa.Column("origin", sa.String(64), nullable=False),
        sa.Column("period_start", _utc(), nullable=False),
        sa.Column("period_end", _utc(), nullable=False),
        sa.Column("shift", sa.String(32), nullable=False),
        sa.Column("machines", sa.Integer, nullable=False),
        sa.Column("good", sa.Float, nullable=False),
        sa.Column("scrap", sa.Float, nullable=False),
        sa.Column("energy_kwh", sa.Float, nullable=True),
        sa.Column("planned_s", sa.Float, nullable=False),
        sa.Column("availability", sa.Float, nullable=True),
        sa.Column("effectiveness", sa.Float, nullable=True),
        sa.Column("quality", sa.Float, nullable=True),
        sa.Column("oee", sa.Float, nullable=True),
        sa.Column("produced_at", _utc(), nullable=False),
        sa.Column("received_at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("origin", "period_start", name="pk_park_summaries"),
    )


def downgrade() -> None:
    op.drop_table("park_summaries")
    op.drop_table("collab_audit")
    op.drop_table("collab_received")
    op.drop_table("collab_shares")
