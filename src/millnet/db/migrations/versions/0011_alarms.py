"""Alarms and their ISA-18.2 event trail (issue 12).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | None = None
depends_on: str | None = None

_STATES = ("normal", "unack_active", "acked_active", "rtn_unack", "shelved",
           "suppressed_by_design", "out_of_service")


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "alarms",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("tenant_id", sa.Integer, nullable=False),
        sa.Column("rule_id", sa.Integer, nullable=False),
        sa.Column("asset_id", sa.Integer, nullable=False),
        sa.Column("rule_name", sa.String(200), nullable=False),
        sa.Column("priority", sa.SmallInteger, nullable=False),
        sa.Column("state", sa.String(24), nullable=False),
        sa.Column("condition_active", sa.Boolean, nullable=False),
        sa.Column("suppressed", sa.Boolean, nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("value", sa.Float, nullable=True),
        sa.Column("notify", sa.Text, nullable=False),
        sa.Column("first_activated_at", _utc(), nullable=True),
        sa.Column("last_activated_at", _utc(), nullable=True),
        sa.Column("acked_at", _utc(), nullable=True),
        sa.Column("acked_by", sa.String(200), nullable=True),
        sa.Column("cleared_at", _utc(), nullable=True),
        sa.Column("shelved_until", _utc(), nullable=True),
        sa.Column("shelved_by", sa.String(200), nullable=True),
        sa.Column("shelve_comment", sa.Text, nullable=True),
        sa.Column("oos_by", sa.String(200), nullable=True),
        sa.Column("oos_comment", sa.Text, nullable=True),
        sa.Column("activation_count", sa.Integer, nullable=False),
        sa.Column("updated_at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_alarms"),
        sa.UniqueConstraint("rule_id", "asset_id", name="uq_alarms_rule_id_asset_id"),
        sa.CheckConstraint("state IN ({})".format(", ".join(f"'{s}'" for s in _STATES)),
                           name="ck_alarms_state"),
        sa.CheckConstraint("priority BETWEEN 1 AND 4", name="ck_alarms_priority"),
    )
    op.create_index("ix_alarms_tenant_id_state", "alarms", ["tenant_id", "state"])
    op.create_index("ix_alarms_asset_id", "alarms", ["asset_id"])
    op.create_index("ix_alarms_updated_at", "alarms", ["updated_at"])
    op.create_table(
        "alarm_events",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("alarm_id", sa.Integer, nullable=False),
        sa.Column("tenant_id", sa.Integer, nullable=False),
        sa.Column("event", sa.String(24), nullable=False),
        sa.Column("from_state", sa.String(24), nullable=False),
        sa.Column("to_state", sa.String(24), nullable=False),
        sa.Column("condition_active", sa.Boolean, nullable=False),
        sa.Column("user_name", sa.String(200), nullable=True),
        sa.Column("comment", sa.Text, nullable=True),
        sa.Column("value", sa.Float, nullable=True),
        sa.Column("ts_ns", sa.BigInteger, nullable=False),
        sa.Column("stored_at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_alarm_events"),
        sa.ForeignKeyConstraint(["alarm_id"], ["alarms.id"], ondelete="CASCADE",
                                name="fk_alarm_events_alarm_id_alarms"),
    )
    op.create_index("ix_alarm_events_alarm_id_id", "alarm_events", ["alarm_id", "id"])
    op.create_index("ix_alarm_events_ts_ns", "alarm_events", ["ts_ns"])


def downgrade() -> None:
    op.drop_table("alarm_events")
    op.drop_table("alarms")
