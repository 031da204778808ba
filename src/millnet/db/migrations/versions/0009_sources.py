"""Field sources added through the API, and device tokens for HTTP ingest (issue 11).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-09
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "field_sources",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("spec", sa.Text, nullable=False),
        sa.Column("tenant_id", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.Integer, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_field_sources"),
        sa.UniqueConstraint("name", name="uq_field_sources_name"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE",
                                name="fk_field_sources_tenant_id_tenants"),
        sa.ForeignKeyConstraint(["created_by"], ["api_tokens.id"], ondelete="SET NULL",
                                name="fk_field_sources_created_by_api_tokens"),
    )
    op.create_index("ix_field_sources_tenant_id", "field_sources", ["tenant_id"])
    op.create_table(
        "device_tokens",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("tenant_id", sa.Integer, nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("device", sa.Text, nullable=True),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("token_prefix", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.Integer, nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_device_tokens"),
        sa.UniqueConstraint("token_hash", name="uq_device_tokens_token_hash"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE",
                                name="fk_device_tokens_tenant_id_tenants"),
        sa.ForeignKeyConstraint(["created_by"], ["api_tokens.id"], ondelete="SET NULL",
                                name="fk_device_tokens_created_by_api_tokens"),
    )
    op.create_index("ix_device_tokens_tenant_id", "device_tokens", ["tenant_id"])
    op.create_index("ix_device_tokens_token_prefix", "device_tokens", ["token_prefix"])


def downgrade() -> None:
    op.drop_table("device_tokens")
    op.drop_table("field_sources")
