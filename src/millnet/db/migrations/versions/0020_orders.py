"""Orders of configurable products: products, orders, their operations and the part counters
the tracker read last (issue 15, millnet.orders.schema, which a test compares with this).

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | None = None
depends_on: str | None = None


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "order_products",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("tenant_id", sa.Integer, nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("definition", sa.Text, nullable=False),
        sa.Column("updated_at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_order_products"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE",
                                name="fk_order_products_tenant_id_tenants"),
        sa.UniqueConstraint("tenant_id", "name", name="uq_order_products_tenant_id_name"),
    )
    op.create_table(
        "orders",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("tenant_id", sa.Integer, nullable=False),
        sa.Column("identifier", sa.String(255), nullable=False),
        sa.Column("product", sa.String(64), nullable=False),
        sa.Column("quantity", sa.Integer, nullable=False),
        sa.Column("selection", sa.Text, nullable=False),
        sa.Column("customer", sa.String(200), nullable=True),
        sa.Column("follow_hash", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("lead_time_s", sa.Float, nullable=False),
        sa.Column("release_s", sa.Float, nullable=False),
        sa.Column("promised_s", sa.Float, nullable=False),
        sa.Column("started_s", sa.Float, nullable=True),
        sa.Column("finished_s", sa.Float, nullable=True),
        sa.Column("created_at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_orders"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE",
                                name="fk_orders_tenant_id_tenants"),
        sa.UniqueConstraint("identifier", name="uq_orders_identifier"),
        sa.CheckConstraint("status IN ('scheduled', 'in_progress', 'finished')",
                           name="ck_orders_status"),
    )
    op.create_index("ix_orders_tenant_id_id", "orders", ["tenant_id", "id"])
    op.create_table(
        "order_operations",
        sa.Column("order_id", sa.Integer, nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("line_id", sa.Integer, nullable=False),
        sa.Column("cycle_s", sa.Float, nullable=False),
        sa.Column("planned_start_s", sa.Float, nullable=False),
        sa.Column("planned_end_s", sa.Float, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("good", sa.Integer, nullable=False),
        sa.Column("scrap", sa.Integer, nullable=False),
        sa.Column("started_s", sa.Float, nullable=True),
        sa.Column("finished_s", sa.Float, nullable=True),
        sa.PrimaryKeyConstraint("order_id", "seq", name="pk_order_operations"),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"], ondelete="CASCADE",
                                name="fk_order_operations_order_id_orders"),
        sa.ForeignKeyConstraint(["line_id"], ["assets.id"], ondelete="CASCADE",
                                name="fk_order_operations_line_id_assets"),
        sa.CheckConstraint("status IN ('planned', 'started', 'done')",
                           name="ck_order_operations_status"),
    )
    op.create_index("ix_order_operations_status_line_id", "order_operations",
                    ["status", "line_id"])
    op.create_table(
        "order_counters",
        sa.Column("series_id", sa.Integer, nullable=False),
        sa.Column("value", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("series_id", name="pk_order_counters"),
        sa.ForeignKeyConstraint(["series_id"], ["points.series_id"], ondelete="CASCADE",
                                name="fk_order_counters_series_id_points"),
    )


def downgrade() -> None:
    op.drop_table("order_counters")
    op.drop_table("order_operations")
    op.drop_table("orders")
    op.drop_table("order_products")
