"""The order tables, on the database's shared metadata (:mod:`millnet.db.schema`).

``order_products`` holds each tenant's configurable products (the definition as JSON);
``orders`` one row per customer order (its configuration, the hash of its follow token, its
plan and actual times, epoch seconds); ``order_operations`` the work order's routing, one row
per operation with its line, plan, counts and times; ``order_counters`` the last value of each
part counter the tracker read, so that parts made across a restart are counted. Migration 0020
creates them; a test compares the migrated database with this metadata.
"""

from __future__ import annotations

from sqlalchemy import (
    CheckConstraint,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from millnet.db.schema import UtcDateTime, metadata

ORDER_STATUSES = ("scheduled", "in_progress", "finished")
OPERATION_STATUSES = ("planned", "started", "done")

order_products = Table(
    "order_products", metadata,
    Column("id", Integer, primary_key=True),
    Column("tenant_id", Integer, ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(64), nullable=False),
    Column("definition", Text, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    UniqueConstraint("tenant_id", "name"),
)

orders = Table(
    "orders", metadata,
    Column("id", Integer, primary_key=True),
    Column("tenant_id", Integer, ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("identifier", String(255), nullable=False, unique=True),
    Column("product", String(64), nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("selection", Text, nullable=False),
    Column("customer", String(200), nullable=True),
    Column("follow_hash", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("lead_time_s", Float, nullable=False),
    Column("release_s", Float, nullable=False),
    Column("promised_s", Float, nullable=False),
    Column("started_s", Float, nullable=True),
    Column("finished_s", Float, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    CheckConstraint("status IN ('scheduled', 'in_progress', 'finished')", name="status"),
    Index(None, "tenant_id", "id"),
)

order_operations = Table(
    "order_operations", metadata,
    Column("order_id", Integer, ForeignKey("orders.id", ondelete="CASCADE"), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("name", String(64), nullable=False),
    Column("line_id", Integer, ForeignKey("assets.id", ondelete="CASCADE"), nullable=False),
    Column("cycle_s", Float, nullable=False),
    Column("planned_start_s", Float, nullable=False),
    Column("planned_end_s", Float, nullable=False),
    Column("status", String(16), nullable=False),
    Column("good", Integer, nullable=False),
    Column("scrap", Integer, nullable=False),
    Column("started_s", Float, nullable=True),
    Column("finished_s", Float, nullable=True),
    CheckConstraint("status IN ('planned', 'started', 'done')", name="status"),
    Index(None, "status", "line_id"),
)

order_counters = Table(
    "order_counters", metadata,
    Column("series_id", Integer, ForeignKey("points.series_id", ondelete="CASCADE"),
           primary_key=True),
    Column("value", Float, nullable=False),
)
