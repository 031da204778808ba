"""The alarm tables, on the database's shared metadata (:mod:`millnet.db.schema`).

``alarms`` holds one row per alarm, an alarm being a rule's condition for one asset; its
columns are the alarm's current state and the latest of each kind of action. ``alarm_events``
is the audit trail: every transition and every operator action, never updated or deleted by
the node. Migration 0011 creates both (written out by hand; a test compares it with this).
There is no foreign key to the rules (a removed rule's alarms and their history stay) nor to
the tenants (the registry may live elsewhere one day; the alarm history outlives a tenant).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Float,
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
from millnet.model.alarms import AlarmState
from millnet.model.limits import NAME_MAX

STATE_CHECK = "state IN ({})".format(", ".join(f"'{s.value}'" for s in AlarmState))
STATE_WIDTH = 24
USER_WIDTH = NAME_MAX

alarms = Table(
    "alarms", metadata,
    Column("id", Integer, primary_key=True),
    Column("tenant_id", Integer, nullable=False),
    Column("rule_id", Integer, nullable=False),
    Column("asset_id", Integer, nullable=False),
    Column("rule_name", String(NAME_MAX), nullable=False),
    Column("priority", SmallInteger, nullable=False),
    Column("state", String(STATE_WIDTH), nullable=False),
    Column("condition_active", Boolean, nullable=False),
    Column("suppressed", Boolean, nullable=False),
    Column("message", Text, nullable=False),
    Column("value", Float, nullable=True),
    Column("notify", Text, nullable=False),  # the rule's notification routes, JSON list
    Column("first_activated_at", UtcDateTime, nullable=True),
    Column("last_activated_at", UtcDateTime, nullable=True),
    Column("acked_at", UtcDateTime, nullable=True),
    Column("acked_by", String(USER_WIDTH), nullable=True),
    Column("cleared_at", UtcDateTime, nullable=True),
    Column("shelved_until", UtcDateTime, nullable=True),
    Column("shelved_by", String(USER_WIDTH), nullable=True),
    Column("shelve_comment", Text, nullable=True),
    Column("oos_by", String(USER_WIDTH), nullable=True),
    Column("oos_comment", Text, nullable=True),
    Column("activation_count", Integer, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    UniqueConstraint("rule_id", "asset_id"),
    CheckConstraint(STATE_CHECK, name="state"),
    CheckConstraint("priority BETWEEN 1 AND 4", name="priority"),
    # Listing: a tenant's alarms by state (the console's "not normal"), by asset, by recency.
    Index(None, "tenant_id", "state"),
    Index(None, "asset_id"),
    Index(None, "updated_at"),
)

alarm_events = Table(
    "alarm_events", metadata,
    Column("id", Integer, primary_key=True),
    Column("alarm_id", Integer, ForeignKey("alarms.id", ondelete="CASCADE"), nullable=False),
    Column("tenant_id", Integer, nullable=False),
    Column("event", String(STATE_WIDTH), nullable=False),
    Column("from_state", String(STATE_WIDTH), nullable=False),
    Column("to_state", String(STATE_WIDTH), nullable=False),
    Column("condition_active", Boolean, nullable=False),  # after the event
    Column("user_name", String(USER_WIDTH), nullable=True),
    Column("comment", Text, nullable=True),
    Column("value", Float, nullable=True),
    Column("ts_ns", BigInteger, nullable=False),  # the sample's time, or the action's
    Column("stored_at", UtcDateTime, nullable=False),
    # An alarm's trail in order; the EEMUA figures read a period of every alarm.
    Index(None, "alarm_id", "id"),
    Index(None, "ts_ns"),
)
