"""The KPI tracker's tables, on the database's shared metadata (:mod:`millnet.db.schema`).

``kpi_shift_totals`` holds one row per machine and shift instance: the time elements (seconds)
and counts accumulated so far; ``kpi_machines`` what the tracker needs to carry on after a
restart (the last state and since when, the last counter values, an open failure). Migration
0014 creates both; a test compares the migrated database with this metadata.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Date, Float, ForeignKey, Index, Integer, String, Table

from millnet.db.schema import UtcDateTime, metadata

kpi_shift_totals = Table(
    "kpi_shift_totals", metadata,
    Column("asset_id", Integer, ForeignKey("assets.id", ondelete="CASCADE"), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("shift", String(32), primary_key=True),
    Column("tenant_id", Integer, ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("start_ns", BigInteger, nullable=False),
    Column("end_ns", BigInteger, nullable=False),
    Column("apt_s", Float, nullable=False),
    Column("aust_s", Float, nullable=False),
    Column("adet_s", Float, nullable=False),
    Column("adot_s", Float, nullable=False),
    Column("pdot_s", Float, nullable=False),
    Column("break_s", Float, nullable=False),
    Column("gq", Float, nullable=False),
    Column("sq", Float, nullable=False),
    Column("failures", Integer, nullable=False),
    Column("restorations", Integer, nullable=False),
    Column("ttr_s", Float, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Index(None, "asset_id", "start_ns"),
)

kpi_machines = Table(
    "kpi_machines", metadata,
    Column("asset_id", Integer, ForeignKey("assets.id", ondelete="CASCADE"), primary_key=True),
    Column("tenant_id", Integer, ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("state", Integer, nullable=True),
    Column("state_ns", BigInteger, nullable=True),
    Column("good", Float, nullable=True),
    Column("scrap", Float, nullable=True),
    Column("fault_since_ns", BigInteger, nullable=True),
    Column("updated_at", UtcDateTime, nullable=False),
)
