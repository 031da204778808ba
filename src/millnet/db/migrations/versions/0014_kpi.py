"""KPI state: per machine and shift instance totals, and what the tracker carries over a
restart (issue 12, millnet.kpi.schema).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | None = None
depends_on: str | None = None


def _owner_columns() -> list[sa.Column[int]]:
    return [sa.Column("asset_id", sa.Integer, nullable=False),
            sa.Column("tenant_id", sa.Integer, nullable=False)]


def _owner_keys(table: str) -> list[sa.ForeignKeyConstraint]:
    return [
        sa.ForeignKeyConstraint(["asset_id"], ["assets.id"], ondelete="CASCADE",
                                name=f"fk_{table}_asset_id_assets"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE",
                                name=f"fk_{table}_tenant_id_tenants"),
    ]


def upgrade() -> None:
    seconds = ["apt_s", "aust_s", "adet_s", "adot_s", "pdot_s", "break_s", "gq", "sq"]
    op.create_table(
        "kpi_shift_totals",
        *_owner_columns(),
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("shift", sa.String(32), nullable=False),
        sa.Column("start_ns", sa.BigInteger, nullable=False),
        sa.Column("end_ns", sa.BigInteger, nullable=False),
        *(sa.Column(name, sa.Float, nullable=False) for name in seconds),
        sa.Column("failures", sa.Integer, nullable=False),
        sa.Column("restorations", sa.Integer, nullable=False),
        sa.Column("ttr_s", sa.Float, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("asset_id", "day", "shift", name="pk_kpi_shift_totals"),
        *_owner_keys("kpi_shift_totals"),
    )
    op.create_index("ix_kpi_shift_totals_asset_id_start_ns", "kpi_shift_totals",
                    ["asset_id", "start_ns"])
    op.create_table(
        "kpi_machines",
        *_owner_columns(),
        sa.Column("state", sa.Integer, nullable=True),
        sa.Column("state_ns", sa.BigInteger, nullable=True),
        sa.Column("good", sa.Float, nullable=True),
        sa.Column("scrap", sa.Float, nullable=True),
        sa.Column("fault_since_ns", sa.BigInteger, nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("asset_id", name="pk_kpi_machines"),
        *_owner_keys("kpi_machines"),
    )


def downgrade() -> None:
    op.drop_table("kpi_machines")
    op.drop_index("ix_kpi_shift_totals_asset_id_start_ns", "kpi_shift_totals")
    op.drop_table("kpi_shift_totals")
