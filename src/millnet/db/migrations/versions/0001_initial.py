"""Initial registry schema: tenants, ISA-95 assets, points (the series dictionary), API tokens.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

# Timestamps are stored as UTC (naive on SQLite); see millnet.registry.schema.UtcDateTime.
_TS = sa.DateTime(timezone=True)
_KINDS = "('enterprise', 'site', 'area', 'line', 'device')"
_ROLES = "('admin', 'operator', 'viewer')"


def upgrade() -> None:
    op.create_table(
        "tenants",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(63), nullable=False),
        sa.Column("display_name", sa.String(200), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("retention_days", sa.Integer, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_tenants"),
        sa.UniqueConstraint("name", name="uq_tenants_name"),
        sa.CheckConstraint("retention_days IS NULL OR retention_days > 0",
                           name="ck_tenants_retention_positive"),
    )
    op.create_table(
        "assets",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("tenant_id", sa.Integer, nullable=False),
        sa.Column("parent_id", sa.Integer, nullable=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("description", sa.Text, nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_assets"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE",
                                name="fk_assets_tenant_id_tenants"),
        sa.ForeignKeyConstraint(["parent_id"], ["assets.id"], ondelete="CASCADE",
                                name="fk_assets_parent_id_assets"),
        sa.UniqueConstraint("tenant_id", "parent_id", "name",
                            name="uq_assets_tenant_id_parent_id_name"),
        sa.CheckConstraint(f"kind IN {_KINDS}", name="ck_assets_kind"),
    )
    op.create_index("ix_assets_parent_id", "assets", ["parent_id"])
    op.create_index(
        "uq_assets_root_name", "assets", ["tenant_id", "name"], unique=True,
        sqlite_where=sa.text("parent_id IS NULL"), postgresql_where=sa.text("parent_id IS NULL"),
    )
    op.create_table(
        "points",
        sa.Column("series_id", sa.Integer, primary_key=True),
        sa.Column("tenant_id", sa.Integer, nullable=False),
        sa.Column("device_id", sa.Integer, nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("datatype", sa.String(16), nullable=False),
        sa.Column("unit", sa.String(64), nullable=True),
        sa.Column("description", sa.Text, nullable=True),
        sa.Column("eng_low", sa.Float, nullable=True),
        sa.Column("eng_high", sa.Float, nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("series_id", name="pk_points"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE",
                                name="fk_points_tenant_id_tenants"),
        sa.ForeignKeyConstraint(["device_id"], ["assets.id"], ondelete="CASCADE",
                                name="fk_points_device_id_assets"),
        sa.UniqueConstraint("device_id", "name", name="uq_points_device_id_name"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_points_tenant_id", "points", ["tenant_id"])
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("tenant_id", sa.Integer, nullable=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("token_prefix", sa.String(16), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("last_used_at", _TS, nullable=True),
        sa.Column("revoked_at", _TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_api_tokens"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE",
                                name="fk_api_tokens_tenant_id_tenants"),
        sa.UniqueConstraint("token_hash", name="uq_api_tokens_token_hash"),
        sa.CheckConstraint(f"role IN {_ROLES}", name="ck_api_tokens_role"),
    )
    op.create_index("ix_api_tokens_token_prefix", "api_tokens", ["token_prefix"])
    op.create_index("ix_api_tokens_tenant_id", "api_tokens", ["tenant_id"])


def downgrade() -> None:
    op.drop_table("api_tokens")
    op.drop_table("points")
    op.drop_table("assets")
    op.drop_table("tenants")
