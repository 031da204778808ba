"""The notification outbox table, on the shared metadata of :mod:`millnet.db`.

One row per (notice, target). ``status`` is ``pending`` until the target took it
(``delivered``) or it was given up (``failed``: a permanent refusal, too many attempts, too old,
or dropped because the target's outbox was full); ``next_attempt_at`` is when a pending row is
tried next. ``delivery_id`` is what receivers see (X-Millnet-Delivery), the same on every
attempt. ``notice`` is the AlarmNotice as JSON (millnet.notify.payload.to_json), so pending rows
are sent again after a restart. Finished rows are deleted after the retention.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, CheckConstraint, Column, Index, Integer, String, Table, Text

from millnet.db.schema import UtcDateTime, metadata

STATUSES = ("pending", "delivered", "failed")

notify_outbox = Table(
    "notify_outbox", metadata,
    Column("id", Integer, primary_key=True),
    Column("delivery_id", String(36), nullable=False, unique=True),
    Column("target", String(64), nullable=False),
    Column("event_id", BigInteger, nullable=False),
    Column("tenant_id", Integer, nullable=False),
    Column("notice", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("next_attempt_at", UtcDateTime, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("delivered_at", UtcDateTime, nullable=True),
    Column("finished_at", UtcDateTime, nullable=True),
    CheckConstraint("status IN ('pending', 'delivered', 'failed')", name="status"),
    # Loading the pending rows at start; pruning finished rows by age.
    Index("ix_notify_outbox_status_finished_at", "status", "finished_at"),
)
