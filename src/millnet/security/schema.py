"""The security tables, on the database's shared metadata (:mod:`millnet.db.schema`).

``security_events`` holds one row per *folded* event: repeats of one (tenant, kind, source,
target) within ``security.dedup_window_s`` of the row's ``last_seen`` add to its ``count``
(a brute force of 10,000 attempts is one row). ``tenant_id`` is null for node-wide events.
``device_fingerprints`` remembers what each device looked like, so that a restart does not
raise every device again. Migration 0017 creates both (written out by hand; a test compares it
with this). No foreign keys: the security history outlives tenants and devices.

``security_incidents`` (migration 0019) are what operators open over events: a title, a
severity, a status (``INCIDENT_STATUSES``), the related event ids (a JSON list: an incident
names a handful, and no query goes from an event to its incidents), and
``security_incident_audit`` the trail of its status changes (the creation included).
"""

from __future__ import annotations

from sqlalchemy import (
    CheckConstraint,
    Column,
    Index,
    Integer,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from millnet.db.schema import UtcDateTime, metadata
from millnet.model.limits import NAME_MAX
from millnet.model.security import MAX_SUMMARY, MAX_TEXT

STATUSES = ("open", "acknowledged", "closed")
#: The same as ``millnet.federation.reports.INCIDENT_STATUSES`` (a test holds them equal).
INCIDENT_STATUSES = ("open", "investigating", "contained", "resolved", "closed")
INCIDENT_STATUS_CHECK = "status IN ({})".format(", ".join(f"'{s}'" for s in INCIDENT_STATUSES))
TITLE_MAX = 200
STATUS_CHECK = "status IN ({})".format(", ".join(f"'{s}'" for s in STATUSES))
KIND_WIDTH = 132  # KIND_PATTERN: four parts of at most 32 characters and their dots
DEVICE_KEY_WIDTH = 400

security_events = Table(
    "security_events", metadata,
    Column("id", Integer, primary_key=True),
    Column("tenant_id", Integer, nullable=True),
    Column("kind", String(KIND_WIDTH), nullable=False),
    Column("severity", SmallInteger, nullable=False),
    Column("summary", String(MAX_SUMMARY), nullable=False),
    Column("source", String(MAX_TEXT), nullable=False),
    Column("target", String(MAX_TEXT), nullable=False),
    Column("first_seen", UtcDateTime, nullable=False),
    Column("last_seen", UtcDateTime, nullable=False),
    Column("detail", Text, nullable=False),  # JSON object of scalars
    Column("count", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("acked_by", String(NAME_MAX), nullable=True),
    Column("acked_at", UtcDateTime, nullable=True),
    Column("ack_comment", Text, nullable=True),
    CheckConstraint(STATUS_CHECK, name="status"),
    CheckConstraint("severity BETWEEN 0 AND 4", name="severity"),
    CheckConstraint("count >= 1", name="count"),
    # Folding looks up the open row of a key; listings go by recency, per tenant or per kind.
    Index(None, "kind", "source", "target", "last_seen"),
    Index(None, "tenant_id", "id"),
    Index(None, "first_seen"),
)

device_fingerprints = Table(
    "device_fingerprints", metadata,
    Column("id", Integer, primary_key=True),
    Column("tenant_id", Integer, nullable=False),
    Column("device_key", String(DEVICE_KEY_WIDTH), nullable=False),
    Column("fingerprint", Text, nullable=False),  # JSON object of strings
    Column("first_seen", UtcDateTime, nullable=False),
    Column("changed_at", UtcDateTime, nullable=False),
    UniqueConstraint("tenant_id", "device_key"),
)

security_incidents = Table(
    "security_incidents", metadata,
    Column("id", Integer, primary_key=True),
    Column("tenant_id", Integer, nullable=True),
    Column("title", String(TITLE_MAX), nullable=False),
    Column("severity", SmallInteger, nullable=False),
    Column("status", String(16), nullable=False),
    Column("description", Text, nullable=False),
    Column("event_ids", Text, nullable=False),  # JSON list of security event ids
    Column("opened_by", String(NAME_MAX), nullable=False),
    Column("opened_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("closed_at", UtcDateTime, nullable=True),
    CheckConstraint(INCIDENT_STATUS_CHECK, name="status"),
    CheckConstraint("severity BETWEEN 0 AND 4", name="severity"),
    Index(None, "tenant_id", "id"),
)

security_incident_audit = Table(
    "security_incident_audit", metadata,
    Column("id", Integer, primary_key=True),
    Column("incident_id", Integer, nullable=False),
    Column("from_status", String(16), nullable=True),  # null: the incident was opened
    Column("to_status", String(16), nullable=False),
    Column("actor", String(NAME_MAX), nullable=False),
    Column("comment", Text, nullable=True),
    Column("at", UtcDateTime, nullable=False),
    Index(None, "incident_id", "id"),
)
