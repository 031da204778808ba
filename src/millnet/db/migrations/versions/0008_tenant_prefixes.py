"""Identifier prefixes of tenants: a tenant links its records only to handles under them.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "tenant_prefixes",
        sa.Column("prefix", sa.String(255), nullable=False),
        sa.Column("tenant_id", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("prefix", name="pk_tenant_prefixes"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE",
                                name="fk_tenant_prefixes_tenant_id_tenants"),
    )
    op.create_index("ix_tenant_prefixes_tenant_id", "tenant_prefixes", ["tenant_id"])


def downgrade() -> None:
    op.drop_index("ix_tenant_prefixes_tenant_id", "tenant_prefixes")
    op.drop_table("tenant_prefixes")
