"""Tables of networked collaboration (migration 0021): the shares an enterprise offers
(``collab_shares``, owner side), the shares partners offer it (``collab_received``, partner
side) and the audit both keep (``collab_audit``).

The owner keeps the X25519 secret of each share and the partner's public key; the partner keeps
its own secret, the owner's public key and, while the share is live, the last payload it
decrypted. Nothing of a payload is stored on the nodes in between (they relay sealed bytes
through their outboxes only).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    LargeBinary,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
)

from millnet.db.schema import UtcDateTime, metadata

NODE = 64  # a node id (the link layer's limit)

collab_shares = Table(
    "collab_shares", metadata,
    Column("id", String(40), nullable=False),
    Column("tenant_id", Integer, nullable=False),
    Column("partner", String(NODE), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("target", String(512), nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    # offered -> active -> revoked; offered -> declined (expiry is read off expires_at)
    Column("status", String(16), nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("ended_at", UtcDateTime, nullable=True),
    Column("secret", LargeBinary(32), nullable=False),
    Column("partner_key", LargeBinary(32), nullable=True),
    Column("updates", BigInteger, nullable=False),
    Column("pushed_digest", String(64), nullable=True),
    Column("pushed_at", UtcDateTime, nullable=True),
    PrimaryKeyConstraint("id"),
    Index("ix_collab_shares_tenant_id", "tenant_id"),
)

collab_received = Table(
    "collab_received", metadata,
    Column("owner", String(NODE), nullable=False),
    Column("id", String(40), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("target", String(512), nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    # offered -> active -> revoked | expired; offered -> declined
    Column("status", String(16), nullable=False),
    Column("tenant_id", Integer, nullable=True),  # the tenant that accepted it
    Column("owner_key", LargeBinary(32), nullable=False),
    Column("secret", LargeBinary(32), nullable=True),
    Column("payload", Text, nullable=True),  # the last update, decrypted (JSON)
    Column("payload_at", UtcDateTime, nullable=True),  # when the owner produced it
    Column("updates", BigInteger, nullable=False),
    Column("offered_at", UtcDateTime, nullable=False),
    Column("accepted_at", UtcDateTime, nullable=True),
    Column("ended_at", UtcDateTime, nullable=True),
    PrimaryKeyConstraint("owner", "id"),
)

collab_audit = Table(
    "collab_audit", metadata,
    Column("id", Integer, nullable=False),
    Column("share_id", String(40), nullable=False),
    Column("owner", String(NODE), nullable=False),
    Column("partner", String(NODE), nullable=False),
    Column("side", String(8), nullable=False),  # owner | partner
    Column("event", String(16), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("at", UtcDateTime, nullable=False),
    Column("detail", String(300), nullable=False),
    PrimaryKeyConstraint("id"),
    Index("ix_collab_audit_owner_share_id", "owner", "share_id"),
)
