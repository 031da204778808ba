"""Security incidents at the enterprise and their audit trail of status changes (issue 13).

Written out by hand (see ``millnet.security.schema``, which a test compares with this).

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | None = None
depends_on: str | None = None


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "security_incidents",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("tenant_id", sa.Integer, nullable=True),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("severity", sa.SmallInteger, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("event_ids", sa.Text, nullable=False),
        sa.Column("opened_by", sa.String(200), nullable=False),
        sa.Column("opened_at", _utc(), nullable=False),
        sa.Column("updated_at", _utc(), nullable=False),
        sa.Column("closed_at", _utc(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_security_incidents"),
        sa.CheckConstraint(
            "status IN ('open', 'investigating', 'contained', 'resolved', 'closed')",
            name="ck_security_incidents_status"),
        sa.CheckConstraint("severity BETWEEN 0 AND 4", name="ck_security_incidents_severity"),
    )
    op.create_index("ix_security_incidents_tenant_id_id", "security_incidents",
                    ["tenant_id", "id"])
    op.create_table(
        "security_incident_audit",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("incident_id", sa.Integer, nullable=False),
        sa.Column("from_status", sa.String(16), nullable=True),
        sa.Column("to_status", sa.String(16), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("comment", sa.Text, nullable=True),
        sa.Column("at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_security_incident_audit"),
    )
    op.create_index("ix_security_incident_audit_incident_id_id", "security_incident_audit",
                    ["incident_id", "id"])


def downgrade() -> None:
    op.drop_table("security_incident_audit")
    op.drop_table("security_incidents")
