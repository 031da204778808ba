"""Tables of the federation link (migration 0016): tokens, children, the pinned parent,
outboxes, inbox positions, nonces.

An outbox row is deleted when its peer acknowledges it; the position of each outbox (its last
seq, depth and bytes) lives in ``federation_outbox_state`` so that an empty outbox does not
forget where it was: a seq is never handed out twice.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Integer,
    LargeBinary,
    PrimaryKeyConstraint,
    String,
    Table,
    UniqueConstraint,
)

from millnet.db.schema import UtcDateTime, metadata

#: The peer name of a child's single upward outbox and of its parent in the inbox.
UP = "^parent"

federation_tokens = Table(
    "federation_tokens", metadata,
    Column("id", Integer, nullable=False),
    Column("token_hash", LargeBinary(32), nullable=False),
    Column("node_id", String(64), nullable=False),
    Column("role", String(16), nullable=False),
    Column("region", String(6), nullable=False),
    Column("sector", String(5), nullable=False),
    Column("prefix", String(128), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("used_at", UtcDateTime, nullable=True),
    PrimaryKeyConstraint("id"),
    UniqueConstraint("token_hash"),
    CheckConstraint("role IN ('enterprise', 'secondary')", name="role"),
)

federation_children = Table(
    "federation_children", metadata,
    Column("node_id", String(64), nullable=False),
    Column("role", String(16), nullable=False),
    Column("region", String(6), nullable=False),
    Column("sector", String(5), nullable=False),
    Column("prefix", String(128), nullable=False),
    Column("public_key", LargeBinary(32), nullable=False),
    Column("enrolled_at", UtcDateTime, nullable=False),
    Column("last_seen", UtcDateTime, nullable=True),
    # What the child said about its upward outbox in its last exchange.
    Column("child_depth", BigInteger, nullable=False),
    Column("child_bytes", BigInteger, nullable=False),
    Column("child_oldest_age_ms", BigInteger, nullable=False),
    Column("child_refused", BigInteger, nullable=False),
    PrimaryKeyConstraint("node_id"),
)

#: Which origins a child (a secondary) may speak for: the enterprises enrolled under it, as it
#: reported them. An origin belongs to one child.
federation_origins = Table(
    "federation_origins", metadata,
    Column("origin", String(64), nullable=False),
    Column("child", String(64), nullable=False),
    Column("role", String(16), nullable=False),
    Column("region", String(6), nullable=False),
    Column("sector", String(5), nullable=False),
    Column("prefix", String(128), nullable=False),
    PrimaryKeyConstraint("origin"),
)

federation_parent = Table(
    "federation_parent", metadata,
    Column("node_id", String(64), nullable=False),
    Column("role", String(16), nullable=False),
    Column("public_key", LargeBinary(32), nullable=False),
    Column("url", String(512), nullable=False),
    Column("enrolled_at", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("node_id"),
)

federation_outbox = Table(
    "federation_outbox", metadata,
    Column("peer", String(64), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("kind", String(64), nullable=False),
    Column("origin", String(64), nullable=False),
    Column("body", LargeBinary, nullable=False),
    Column("created_at_ms", BigInteger, nullable=False),
    PrimaryKeyConstraint("peer", "seq"),
)

federation_outbox_state = Table(
    "federation_outbox_state", metadata,
    Column("peer", String(64), nullable=False),
    Column("last_seq", BigInteger, nullable=False),
    Column("depth", BigInteger, nullable=False),
    Column("bytes", BigInteger, nullable=False),
    Column("refused", BigInteger, nullable=False),
    PrimaryKeyConstraint("peer"),
)

federation_inbox_state = Table(
    "federation_inbox_state", metadata,
    Column("peer", String(64), nullable=False),
    Column("applied_seq", BigInteger, nullable=False),
    Column("rejected", BigInteger, nullable=False),
    Column("updated_at", UtcDateTime, nullable=True),
    PrimaryKeyConstraint("peer"),
)

federation_nonces = Table(
    "federation_nonces", metadata,
    Column("peer", String(64), nullable=False),
    Column("nonce", String(32), nullable=False),
    Column("expires_ms", BigInteger, nullable=False, index=True),
    PrimaryKeyConstraint("peer", "nonce"),
)
