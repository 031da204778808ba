"""Federation links: enrollment tokens, children, durable outboxes, idempotent inbox (issue 13).

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-03
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | None = None
depends_on: str | None = None

_TABLES = ("federation_nonces", "federation_inbox_state", "federation_outbox_state",
           "federation_outbox", "federation_parent", "federation_origins",
           "federation_children", "federation_tokens")


def _time(name: str, nullable: bool = False) -> sa.Column[Any]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _where() -> list[sa.Column[Any]]:
    return [sa.Column("role", sa.String(16), nullable=False),
            sa.Column("region", sa.String(6), nullable=False),
            sa.Column("sector", sa.String(5), nullable=False),
            sa.Column("prefix", sa.String(128), nullable=False)]


def upgrade() -> None:
    op.create_table(
        "federation_tokens",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("token_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("node_id", sa.String(64), nullable=False),
        *_where(),
        _time("created_at"), _time("expires_at"), _time("used_at", True),
        sa.PrimaryKeyConstraint("id", name="pk_federation_tokens"),
        sa.UniqueConstraint("token_hash", name="uq_federation_tokens_token_hash"),
        sa.CheckConstraint("role IN ('enterprise', 'secondary')",
                           name="ck_federation_tokens_role"),
    )
    op.create_table(
        "federation_children",
        sa.Column("node_id", sa.String(64), nullable=False),
        *_where(),
        sa.Column("public_key", sa.LargeBinary(32), nullable=False),
        _time("enrolled_at"), _time("last_seen", True),
        sa.Column("child_depth", sa.BigInteger, nullable=False),
        sa.Column("child_bytes", sa.BigInteger, nullable=False),
        sa.Column("child_oldest_age_ms", sa.BigInteger, nullable=False),
        sa.Column("child_refused", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("node_id", name="pk_federation_children"),
    )
    op.create_table(
        "federation_origins",
        sa.Column("origin", sa.String(64), nullable=False),
        sa.Column("child", sa.String(64), nullable=False),
        *_where(),
        sa.PrimaryKeyConstraint("origin", name="pk_federation_origins"),
    )
    op.create_table(
        "federation_parent",
        sa.Column("node_id", sa.String(64), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("public_key", sa.LargeBinary(32), nullable=False),
        sa.Column("url", sa.String(512), nullable=False),
        _time("enrolled_at"),
        sa.PrimaryKeyConstraint("node_id", name="pk_federation_parent"),
    )
    op.create_table(
        "federation_outbox",
        sa.Column("peer", sa.String(64), nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("origin", sa.String(64), nullable=False),
        sa.Column("body", sa.LargeBinary, nullable=False),
        sa.Column("created_at_ms", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("peer", "seq", name="pk_federation_outbox"),
    )
    op.create_table(
        "federation_outbox_state",
        sa.Column("peer", sa.String(64), nullable=False),
        sa.Column("last_seq", sa.BigInteger, nullable=False),
        sa.Column("depth", sa.BigInteger, nullable=False),
        sa.Column("bytes", sa.BigInteger, nullable=False),
        sa.Column("refused", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("peer", name="pk_federation_outbox_state"),
    )
    op.create_table(
        "federation_inbox_state",
        sa.Column("peer", sa.String(64), nullable=False),
        sa.Column("applied_seq", sa.BigInteger, nullable=False),
        sa.Column("rejected", sa.BigInteger, nullable=False),
        _time("updated_at", True),
        sa.PrimaryKeyConstraint("peer", name="pk_federation_inbox_state"),
    )
    op.create_table(
        "federation_nonces",
        sa.Column("peer", sa.String(64), nullable=False),
        sa.Column("nonce", sa.String(32), nullable=False),
        sa.Column("expires_ms", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("peer", "nonce", name="pk_federation_nonces"),
    )
    op.create_index("ix_federation_nonces_expires_ms", "federation_nonces", ["expires_ms"])


def downgrade() -> None:
    for table in _TABLES:
        op.drop_table(table)
