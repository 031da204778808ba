"""Asset types on assets: rules attach to a type ("cnc", "press") as well as to a branch.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("assets") as batch:
        batch.add_column(sa.Column("asset_type", sa.String(64), nullable=True))
    op.create_index("ix_assets_tenant_id_asset_type", "assets", ["tenant_id", "asset_type"])


def downgrade() -> None:
    op.drop_index("ix_assets_tenant_id_asset_type", "assets")
    with op.batch_alter_table("assets") as batch:
        batch.drop_column("asset_type")
