"""The EPCIS 2.0 repository: captured events and the identifier -> event links the trace
walks (issue 15).

Written out by hand (see ``millnet.trace.schema``, which a test compares with this).

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | None = None
depends_on: str | None = None


def _id() -> sa.types.TypeEngine[int]:
    return sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "epcis_events",
        sa.Column("id", _id(), nullable=False, autoincrement=False),
        sa.Column("tenant_id", sa.Integer, nullable=False),
        sa.Column("event_hash", sa.String(100), nullable=False),
        sa.Column("event_type", sa.String(32), nullable=False),
        sa.Column("event_time_us", sa.BigInteger, nullable=False),
        sa.Column("biz_step", sa.String(200), nullable=True),
        sa.Column("read_point", sa.String(500), nullable=True),
        sa.Column("biz_location", sa.String(500), nullable=True),
        sa.Column("action", sa.String(8), nullable=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_epcis_events"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE",
                                name="fk_epcis_events_tenant_id_tenants"),
        sa.UniqueConstraint("tenant_id", "event_hash",
                            name="uq_epcis_events_tenant_id_event_hash"),
    )
    for columns in (["tenant_id", "event_time_us"],
                    ["tenant_id", "biz_step", "event_time_us"],
                    ["tenant_id", "read_point", "event_time_us"],
                    ["tenant_id", "event_type", "event_time_us"]):
        op.create_index(f"ix_epcis_events_{'_'.join(columns)}", "epcis_events", columns)
    op.create_table(
        "epcis_links",
        sa.Column("tenant_id", sa.Integer, nullable=False),
        sa.Column("identifier", sa.String(500), nullable=False),
        sa.Column("event_id", _id(), nullable=False),
        sa.Column("role", sa.SmallInteger, nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "identifier", "event_id", "role",
                                name="pk_epcis_links"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE",
                                name="fk_epcis_links_tenant_id_tenants"),
        sa.ForeignKeyConstraint(["event_id"], ["epcis_events.id"], ondelete="CASCADE",
                                name="fk_epcis_links_event_id_epcis_events"),
    )
    op.create_index("ix_epcis_links_event_id", "epcis_links", ["event_id"])


def downgrade() -> None:
    op.drop_table("epcis_links")
    op.drop_table("epcis_events")
