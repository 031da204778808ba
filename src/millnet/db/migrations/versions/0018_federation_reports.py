"""Inventory, advisories, rectification orders and the reports a parent keeps of its
children (issue 13).

Written out by hand (see ``millnet.federation.report_schema``, which a test compares with this).

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | None = None
depends_on: str | None = None

NODE = 128


def _time(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _node(name: str) -> sa.Column[str]:
    return sa.Column(name, sa.String(NODE), nullable=False)


def _str(name: str, length: int, nullable: bool = False) -> sa.Column[str]:
    return sa.Column(name, sa.String(length), nullable=nullable)


def _int(name: str) -> sa.Column[int]:
    return sa.Column(name, sa.Integer, nullable=False)


def _text(name: str) -> sa.Column[str]:
    return sa.Column(name, sa.Text, nullable=False)


def _pk(table: str, *columns: str) -> sa.PrimaryKeyConstraint:
    return sa.PrimaryKeyConstraint(*columns, name=f"pk_{table}")


def _reports() -> None:
    op.create_table("fed_enterprises", _node("node_id"), _node("via"), _str("region", 6),
                    _str("sector", 1), _time("updated_at"), _pk("fed_enterprises", "node_id"))
    op.create_table("fed_inventory", _node("child"), _node("origin"), _str("item_key", 255),
                    _text("item"), _str("vendor", 128), _str("model", 128),
                    _str("firmware", 128), _time("updated_at"),
                    _pk("fed_inventory", "child", "origin", "item_key"))
    op.create_index("ix_fed_inventory_vendor_model", "fed_inventory", ["vendor", "model"])
    op.create_table("fed_events", _node("child"), _node("origin"), _str("event_id", 64),
                    _str("kind", 128), _int("severity"), _time("occurred_at"), _int("count"),
                    _str("target", 255), _pk("fed_events", "child", "origin", "event_id"))
    op.create_index("ix_fed_events_occurred_at", "fed_events", ["occurred_at"])
    op.create_table("fed_incidents", _node("child"), _node("origin"), _str("incident_id", 64),
                    _int("severity"), _str("status", 16), _str("title", 255),
                    _time("opened_at"), _time("closed_at", True), _time("updated_at"),
                    _pk("fed_incidents", "child", "origin", "incident_id"))
    op.create_index("ix_fed_incidents_opened_at", "fed_incidents", ["opened_at"])
    op.create_table("fed_summaries", _node("child"), _node("origin"), _time("bucket_start"),
                    _int("bucket_seconds"), _str("kind", 128), _int("severity"), _int("count"),
                    _pk("fed_summaries", "child", "origin", "bucket_start", "kind", "severity"))
    op.create_index("ix_fed_summaries_bucket_start", "fed_summaries", ["bucket_start"])
    op.create_table("fed_asset_counts", _node("child"), _node("origin"), _time("bucket_start"),
                    _int("assets"), _pk("fed_asset_counts", "child", "origin", "bucket_start"))


def _advisories_and_orders() -> None:
    op.create_table("fed_advisories", _str("id", 64), _node("issuer"), _str("title", 255),
                    _int("severity"), _time("published"), _text("description"),
                    _text("affected"), _str("received_from", NODE, True), _time("created_at"),
                    _pk("fed_advisories", "id"))
    op.create_table("fed_advisory_replies", _str("advisory_id", 64), _node("origin"),
                    _node("child"), _int("affected"), _time("reported_at"),
                    _pk("fed_advisory_replies", "advisory_id", "origin"))
    op.create_table("fed_advisory_matches", _str("advisory_id", 64), _node("origin"),
                    _str("item_key", 255), _str("vendor", 128), _str("product", 128),
                    _str("version", 128),
                    _pk("fed_advisory_matches", "advisory_id", "origin", "item_key"))
    op.create_table("fed_orders", _str("id", 64), _node("issuer"), _str("title", 255),
                    _text("action"), _time("deadline"), _str("advisory_id", 64, True),
                    _time("created_at"), _pk("fed_orders", "id"))
    op.create_table("fed_order_targets", _str("order_id", 64), _node("target"),
                    _str("state", 16), _time("updated_at"), _time("overdue_flagged_at", True),
                    _pk("fed_order_targets", "order_id", "target"),
                    sa.ForeignKeyConstraint(["order_id"], ["fed_orders.id"],
                                            name="fk_fed_order_targets_order_id_fed_orders",
                                            ondelete="CASCADE"))
    op.create_table("fed_order_audit", sa.Column("id", sa.Integer, nullable=False),
                    _str("order_id", 64), _node("target"), _str("from_state", 16),
                    _str("to_state", 16), _str("actor", 128), _text("comment"), _time("at"),
                    _pk("fed_order_audit", "id"),
                    sa.ForeignKeyConstraint(["order_id"], ["fed_orders.id"],
                                            name="fk_fed_order_audit_order_id_fed_orders",
                                            ondelete="CASCADE"))
    op.create_index("ix_fed_order_audit_order_id", "fed_order_audit", ["order_id"])
    op.create_table("fed_settings", _str("name", 64), _text("value"), _time("updated_at"),
                    _pk("fed_settings", "name"))


def upgrade() -> None:
    _reports()
    _advisories_and_orders()


def downgrade() -> None:
    for table in ("fed_settings", "fed_order_audit", "fed_order_targets", "fed_orders",
                  "fed_advisory_matches", "fed_advisory_replies", "fed_advisories",
                  "fed_asset_counts", "fed_summaries", "fed_incidents", "fed_events",
                  "fed_inventory", "fed_enterprises"):
        op.drop_table(table)
