"""Products: the units a tenant's lines made, with their global identifiers.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "products",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("tenant_id", sa.Integer, nullable=False),
        sa.Column("serial", sa.String(128), nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("line_id", sa.Integer, nullable=True),
        sa.Column("batch", sa.Text, nullable=True),
        sa.Column("produced_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("identifier", sa.Text, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_products"),
        sa.UniqueConstraint("tenant_id", "serial", name="uq_products_tenant_id_serial"),
        sa.UniqueConstraint("identifier", name="uq_products_identifier"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE",
                                name="fk_products_tenant_id_tenants"),
        sa.ForeignKeyConstraint(["line_id"], ["assets.id"], ondelete="SET NULL",
                                name="fk_products_line_id_assets"),
    )


def downgrade() -> None:
    op.drop_table("products")
