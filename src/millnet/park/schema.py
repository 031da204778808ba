"""The park's table (migration 0021): one summary per member enterprise and period (a shift
instance of the member's KPI calendar), replaced when the member sends it again. Summaries
only: counts, energy and KPI ratios, never telemetry."""

from __future__ import annotations

from sqlalchemy import Column, Float, Integer, PrimaryKeyConstraint, String, Table

from millnet.db.schema import UtcDateTime, metadata

park_summaries = Table(
    "park_summaries", metadata,
    Column("origin", String(64), nullable=False),
    Column("period_start", UtcDateTime, nullable=False),
    Column("period_end", UtcDateTime, nullable=False),
    Column("shift", String(32), nullable=False),
    Column("machines", Integer, nullable=False),
    Column("good", Float, nullable=False),
    Column("scrap", Float, nullable=False),
    Column("energy_kwh", Float, nullable=True),
    Column("planned_s", Float, nullable=False),
    Column("availability", Float, nullable=True),
    Column("effectiveness", Float, nullable=True),
    Column("quality", Float, nullable=True),
    Column("oee", Float, nullable=True),
    Column("produced_at", UtcDateTime, nullable=False),
    Column("received_at", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("origin", "period_start"),
)
