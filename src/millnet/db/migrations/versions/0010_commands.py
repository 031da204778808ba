"""The audit of write-back commands (issue 11).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-10
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "commands",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("tenant_id", sa.Integer, nullable=True),
        sa.Column("token_id", sa.Integer, nullable=True),
        sa.Column("token_name", sa.String(200), nullable=True),
        sa.Column("role", sa.String(16), nullable=True),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("device", sa.Text, nullable=False),
        sa.Column("point", sa.Text, nullable=False),
        sa.Column("series_id", sa.Integer, nullable=True),
        sa.Column("source", sa.String(64), nullable=True),
        sa.Column("old_value", sa.Text, nullable=True),
        sa.Column("new_value", sa.Text, nullable=False),
        sa.Column("result", sa.String(16), nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_commands"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="SET NULL",
                                name="fk_commands_tenant_id_tenants"),
        sa.ForeignKeyConstraint(["token_id"], ["api_tokens.id"], ondelete="SET NULL",
                                name="fk_commands_token_id_api_tokens"),
        sa.CheckConstraint(
            "result IN ('pending', 'confirmed', 'failed', 'timeout', 'refused')",
            name="ck_commands_result"),
    )
    op.create_index("ix_commands_tenant_id", "commands", ["tenant_id"])
    op.create_index("ix_commands_requested_at", "commands", ["requested_at"])


def downgrade() -> None:
    op.drop_table("commands")
