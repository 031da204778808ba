"""Rules, and asset types on assets (issue 12).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "rules",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("tenant_id", sa.Integer, nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("definition", sa.Text, nullable=False),
        sa.Column("origin", sa.String(8), nullable=False),
        sa.Column("file", sa.Text, nullable=True),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.Integer, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_rules"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE",
                                name="fk_rules_tenant_id_tenants"),
        sa.ForeignKeyConstraint(["created_by"], ["api_tokens.id"], ondelete="SET NULL",
                                name="fk_rules_created_by_api_tokens"),
        sa.UniqueConstraint("tenant_id", "name", name="uq_rules_tenant_id_name"),
        sa.CheckConstraint("origin IN ('api', 'file')", name="ck_rules_origin"),
        sa.CheckConstraint("(origin = 'file') = (file IS NOT NULL)", name="ck_rules_file_origin"),
    )
    # assets.asset_type: added by the lead (migration 0015)


def downgrade() -> None:
    op.drop_table("rules")
