"""Security events raised by the enterprise node's detectors and by the passive probe (issue 13).

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | None = None
depends_on: str | None = None


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "security_events",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("tenant_id", sa.Integer, nullable=True),
        sa.Column("kind", sa.String(132), nullable=False),
        sa.Column("severity", sa.SmallInteger, nullable=False),
        sa.Column("summary", sa.String(500), nullable=False),
        sa.Column("source", sa.String(256), nullable=False),
        sa.Column("target", sa.String(256), nullable=False),
        sa.Column("first_seen", _utc(), nullable=False),
        sa.Column("last_seen", _utc(), nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("acked_by", sa.String(200), nullable=True),
        sa.Column("acked_at", _utc(), nullable=True),
        sa.Column("ack_comment", sa.Text, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_security_events"),
        sa.CheckConstraint("status IN ('open', 'acknowledged', 'closed')",
                           name="ck_security_events_status"),
        sa.CheckConstraint("severity BETWEEN 0 AND 4", name="ck_security_events_severity"),
        sa.CheckConstraint("count >= 1", name="ck_security_events_count"),
    )
    op.create_index("ix_security_events_kind_source_target_last_seen", "security_events",
                    ["kind", "source", "target", "last_seen"])
    op.create_index("ix_security_events_tenant_id_id", "security_events", ["tenant_id", "id"])
    op.create_index("ix_security_events_first_seen", "security_events", ["first_seen"])
    op.create_table(
        "device_fingerprints",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("tenant_id", sa.Integer, nullable=False),
        sa.Column("device_key", sa.String(400), nullable=False),
        sa.Column("fingerprint", sa.Text, nullable=False),
        sa.Column("first_seen", _utc(), nullable=False),
        sa.Column("changed_at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_device_fingerprints"),
        sa.UniqueConstraint("tenant_id", "device_key",
                            name="uq_device_fingerprints_tenant_id_device_key"),
    )


def downgrade() -> None:
    op.drop_table("device_fingerprints")
    op.drop_table("security_events")
