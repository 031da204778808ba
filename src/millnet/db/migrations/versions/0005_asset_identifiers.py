"""Assets (devices) linked to their global identifiers.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "asset_identifiers",
        sa.Column("asset_id", sa.Integer, nullable=False),
        sa.Column("tenant_id", sa.Integer, nullable=False),
        sa.Column("handle", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("asset_id", name="pk_asset_identifiers"),
        sa.UniqueConstraint("handle", name="uq_asset_identifiers_handle"),
        sa.ForeignKeyConstraint(["asset_id"], ["assets.id"], ondelete="CASCADE",
                                name="fk_asset_identifiers_asset_id_assets"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE",
                                name="fk_asset_identifiers_tenant_id_tenants"),
    )


def downgrade() -> None:
    op.drop_table("asset_identifiers")
