"""The EPCIS repository's tables, on the database's shared metadata (:mod:`millnet.db.schema`).

``epcis_events`` holds one row per captured event (unique per tenant by the standard event
hash, which de-duplicates) with the columns queries filter on; ``epcis_links`` maps every
identifier an event names in its *what* dimension (EPCs, parent, children, inputs, outputs,
quantity classes) to the event, with the identifier's role: the edges of the trace graph.
Migration 0020 creates both; a test compares the migrated database with this metadata.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from millnet.db.schema import UtcDateTime, metadata

epcis_events = Table(
    "epcis_events", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
           autoincrement=False),
    Column("tenant_id", Integer, ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("event_hash", String(100), nullable=False),
    Column("event_type", String(32), nullable=False),
    Column("event_time_us", BigInteger, nullable=False),
    Column("biz_step", String(200), nullable=True),
    Column("read_point", String(500), nullable=True),
    Column("biz_location", String(500), nullable=True),
    Column("action", String(8), nullable=True),
    Column("recorded_at", UtcDateTime, nullable=False),
    Column("body", Text, nullable=False),
    UniqueConstraint("tenant_id", "event_hash"),
    Index(None, "tenant_id", "event_time_us"),
    Index(None, "tenant_id", "biz_step", "event_time_us"),
    Index(None, "tenant_id", "read_point", "event_time_us"),
    Index(None, "tenant_id", "event_type", "event_time_us"),
)

epcis_links = Table(
    "epcis_links", metadata,
    Column("tenant_id", Integer, ForeignKey("tenants.id", ondelete="CASCADE"),
           primary_key=True),
    Column("identifier", String(500), primary_key=True),
    Column("event_id", BigInteger().with_variant(Integer, "sqlite"),
           ForeignKey("epcis_events.id", ondelete="CASCADE"), primary_key=True),
    Column("role", SmallInteger, primary_key=True),
    Index(None, "event_id"),
)
