"""Tables of inventory, advisories, rectification orders and the reports a parent keeps of its
children (migration 0018).

Report rows are keyed by ``child`` (the node that sent them) and ``origin`` (the enterprise
they are about: the child itself, or an enterprise a secondary forwards for). No raw telemetry
is ever stored here: events are counted facts, summaries are counts per bucket.
"""

from __future__ import annotations

from sqlalchemy import Column, ForeignKey, Index, Integer, PrimaryKeyConstraint, String, Table, Text

from millnet.db.schema import UtcDateTime, metadata

NODE = 128  # node ids are short names; see the link layer

fed_enterprises = Table(
    "fed_enterprises", metadata,
    Column("node_id", String(NODE), primary_key=True),
    Column("via", String(NODE), nullable=False),
    Column("region", String(6), nullable=False),
    Column("sector", String(1), nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

fed_inventory = Table(
    "fed_inventory", metadata,
    Column("child", String(NODE), nullable=False),
    Column("origin", String(NODE), nullable=False),
    Column("item_key", String(255), nullable=False),
    Column("item", Text, nullable=False),  # the item as JSON
    Column("vendor", String(128), nullable=False),
    Column("model", String(128), nullable=False),
    Column("firmware", String(128), nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("child", "origin", "item_key"),
    Index("ix_fed_inventory_vendor_model", "vendor", "model"),
)

fed_events = Table(
    "fed_events", metadata,
    Column("child", String(NODE), nullable=False),
    Column("origin", String(NODE), nullable=False),
    Column("event_id", String(64), nullable=False),
    Column("kind", String(128), nullable=False),
    Column("severity", Integer, nullable=False),
    Column("occurred_at", UtcDateTime, nullable=False),
    Column("count", Integer, nullable=False),
    Column("target", String(255), nullable=False),
    PrimaryKeyConstraint("child", "origin", "event_id"),
    Index("ix_fed_events_occurred_at", "occurred_at"),
)

fed_incidents = Table(
    "fed_incidents", metadata,
    Column("child", String(NODE), nullable=False),
    Column("origin", String(NODE), nullable=False),
    Column("incident_id", String(64), nullable=False),
    Column("severity", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("title", String(255), nullable=False),
    Column("opened_at", UtcDateTime, nullable=False),
    Column("closed_at", UtcDateTime, nullable=True),
    Column("updated_at", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("child", "origin", "incident_id"),
    Index("ix_fed_incidents_opened_at", "opened_at"),
)

fed_summaries = Table(
    "fed_summaries", metadata,
    Column("child", String(NODE), nullable=False),
    Column("origin", String(NODE), nullable=False),
    Column("bucket_start", UtcDateTime, nullable=False),
    Column("bucket_seconds", Integer, nullable=False),
    Column("kind", String(128), nullable=False),
    Column("severity", Integer, nullable=False),
    Column("count", Integer, nullable=False),
    PrimaryKeyConstraint("child", "origin", "bucket_start", "kind", "severity"),
    Index("ix_fed_summaries_bucket_start", "bucket_start"),
)

fed_asset_counts = Table(
    "fed_asset_counts", metadata,
    Column("child", String(NODE), nullable=False),
    Column("origin", String(NODE), nullable=False),
    Column("bucket_start", UtcDateTime, nullable=False),
    Column("assets", Integer, nullable=False),
    PrimaryKeyConstraint("child", "origin", "bucket_start"),
)

fed_advisories = Table(
    "fed_advisories", metadata,
    Column("id", String(64), primary_key=True),
    Column("issuer", String(NODE), nullable=False),
    Column("title", String(255), nullable=False),
    Column("severity", Integer, nullable=False),
    Column("published", UtcDateTime, nullable=False),
    Column("description", Text, nullable=False),
    Column("affected", Text, nullable=False),  # the affected products as JSON
    Column("received_from", String(NODE), nullable=True),  # None: issued here
    Column("created_at", UtcDateTime, nullable=False),
)

fed_advisory_replies = Table(
    "fed_advisory_replies", metadata,
    Column("advisory_id", String(64), nullable=False),
    Column("origin", String(NODE), nullable=False),
    Column("child", String(NODE), nullable=False),
    Column("affected", Integer, nullable=False),
    Column("reported_at", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("advisory_id", "origin"),
)

fed_advisory_matches = Table(
    "fed_advisory_matches", metadata,
    Column("advisory_id", String(64), nullable=False),
    Column("origin", String(NODE), nullable=False),
    Column("item_key", String(255), nullable=False),
    Column("vendor", String(128), nullable=False),
    Column("product", String(128), nullable=False),
    Column("version", String(128), nullable=False),
    PrimaryKeyConstraint("advisory_id", "origin", "item_key"),
)

fed_orders = Table(
    "fed_orders", metadata,
    Column("id", String(64), primary_key=True),
    Column("issuer", String(NODE), nullable=False),
    Column("title", String(255), nullable=False),
    Column("action", Text, nullable=False),
    Column("deadline", UtcDateTime, nullable=False),
    Column("advisory_id", String(64), nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
)

fed_order_targets = Table(
    "fed_order_targets", metadata,
    Column("order_id", String(64), ForeignKey("fed_orders.id", ondelete="CASCADE"),
           nullable=False),
    Column("target", String(NODE), nullable=False),
    Column("state", String(16), nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("overdue_flagged_at", UtcDateTime, nullable=True),
    PrimaryKeyConstraint("order_id", "target"),
)

fed_order_audit = Table(
    "fed_order_audit", metadata,
    Column("id", Integer, primary_key=True),
    Column("order_id", String(64), ForeignKey("fed_orders.id", ondelete="CASCADE"),
           nullable=False),
    Column("target", String(NODE), nullable=False),
    Column("from_state", String(16), nullable=False),
    Column("to_state", String(16), nullable=False),
    Column("actor", String(128), nullable=False),
    Column("comment", Text, nullable=False),
    Column("at", UtcDateTime, nullable=False),
    Index("ix_fed_order_audit_order_id", "order_id"),
)

fed_settings = Table(
    "fed_settings", metadata,
    Column("name", String(64), primary_key=True),
    Column("value", Text, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)
