"""The registry's tables, on the database's shared metadata (:mod:`millnet.db.schema`).

The migrations in ``millnet/db/migrations/versions`` create these tables; they are written out
by hand (a migration must not change when this file does) and a test compares the migrated
database with this metadata, so the two cannot drift apart unnoticed.
"""

from __future__ import annotations

from sqlalchemy import (
    CheckConstraint,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from millnet.db.schema import UtcDateTime, metadata
from millnet.model.limits import NAME_MAX

KINDS = ("enterprise", "site", "area", "line", "device")
ROLES = ("admin", "operator", "viewer")


tenants = Table(
    "tenants", metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(63), nullable=False, unique=True),
    Column("display_name", String(NAME_MAX), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("retention_days", Integer, nullable=True),
    CheckConstraint("retention_days IS NULL OR retention_days > 0", name="retention_positive"),
)

assets = Table(
    "assets", metadata,
    Column("id", Integer, primary_key=True),
    Column("tenant_id", Integer, ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("parent_id", Integer, ForeignKey("assets.id", ondelete="CASCADE"), nullable=True),
    Column("kind", String(16), nullable=False),
    Column("name", String(NAME_MAX), nullable=False),
    Column("path", Text, nullable=False),
    Column("description", Text, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    # What kind of machine a device is ("cnc", "press"): rules attach to it (migration 0015).
    Column("asset_type", String(64), nullable=True),
    UniqueConstraint("tenant_id", "parent_id", "name"),
    CheckConstraint(f"kind IN {KINDS!r}", name="kind"),
    Index("ix_assets_parent_id", "parent_id"),
    Index("ix_assets_tenant_id_asset_type", "tenant_id", "asset_type"),
)
# NULLs are distinct in a unique constraint on both backends, so roots (parent_id IS NULL) need
# their own partial unique index to keep two enterprises of a tenant from sharing a name.
Index(
    "uq_assets_root_name", assets.c.tenant_id, assets.c.name, unique=True,
    sqlite_where=assets.c.parent_id.is_(None), postgresql_where=assets.c.parent_id.is_(None),
)

points = Table(
    "points", metadata,
    # The telemetry series id. AUTOINCREMENT on SQLite so a deleted point's id is never reused
    # (its old samples would otherwise be attributed to the new point).
    Column("series_id", Integer, primary_key=True),
    Column("tenant_id", Integer, ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("device_id", Integer, ForeignKey("assets.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(NAME_MAX), nullable=False),
    Column("datatype", String(16), nullable=False),
    Column("unit", String(64), nullable=True),
    Column("description", Text, nullable=True),
    Column("eng_low", Float, nullable=True),
    Column("eng_high", Float, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    UniqueConstraint("device_id", "name"),
    Index("ix_points_tenant_id", "tenant_id"),
    sqlite_autoincrement=True,
)

#: Identifier prefixes assigned to a tenant by a node-wide admin: the tenant may link its
#: devices and products to handles under these only (one tenant per prefix), so no tenant can
#: claim, or learn of, another's identifiers.
tenant_prefixes = Table(
    "tenant_prefixes", metadata,
    Column("prefix", String(255), primary_key=True),
    Column("tenant_id", Integer, ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False,
           index=True),
)

#: An asset (a device) linked to its global identifier (``88.100.5/EQ-...``), registered at an
#: identifier node; one identifier per asset, one asset per identifier.
asset_identifiers = Table(
    "asset_identifiers", metadata,
    Column("asset_id", Integer, ForeignKey("assets.id", ondelete="CASCADE"), primary_key=True),
    Column("tenant_id", Integer, ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("handle", Text, nullable=False, unique=True),
    Column("created_at", UtcDateTime, nullable=False),
)


#: Units a tenant's lines made (personalized orders, traceability), each with its global
#: identifier once registered at an identifier node.
products = Table(
    "products", metadata,
    Column("id", Integer, primary_key=True),
    Column("tenant_id", Integer, ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("serial", String(128), nullable=False),
    Column("model", String(128), nullable=False),
    Column("line_id", Integer, ForeignKey("assets.id", ondelete="SET NULL"), nullable=True),
    Column("batch", Text, nullable=True),
    Column("produced_at", UtcDateTime, nullable=False),
    Column("identifier", Text, nullable=True, unique=True),
    Column("created_at", UtcDateTime, nullable=False),
    UniqueConstraint("tenant_id", "serial"),
)


api_tokens = Table(
    "api_tokens", metadata,
    Column("id", Integer, primary_key=True),
    Column("tenant_id", Integer, ForeignKey("tenants.id", ondelete="CASCADE"), nullable=True),
    Column("name", String(NAME_MAX), nullable=False),
    Column("role", String(16), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("token_prefix", String(16), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("last_used_at", UtcDateTime, nullable=True),
    Column("revoked_at", UtcDateTime, nullable=True),
    CheckConstraint(f"role IN {ROLES!r}", name="role"),
    Index("ix_api_tokens_token_prefix", "token_prefix"),
    Index("ix_api_tokens_tenant_id", "tenant_id"),
)


#: Field sources (OPC UA, Modbus...) added through the API: restarted on every node start.
#: Sources of the node's TOML are not stored here (the file is their authority).
field_sources = Table(
    "field_sources", metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("kind", String(32), nullable=False),
    Column("spec", Text, nullable=False),  # the spec as JSON, secrets included (see docs)
    Column("tenant_id", Integer, ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False,
           index=True),
    Column("created_at", UtcDateTime, nullable=False),
    # The API token that added it (kept when the token is deleted).
    Column("created_by", Integer, ForeignKey("api_tokens.id", ondelete="SET NULL"),
           nullable=True),
)

#: Tokens of devices that POST their telemetry (``/api/v1/ingest``): bound to one tenant and
#: optionally one device path (``site/area/line/device``); only their hash is stored.
device_tokens = Table(
    "device_tokens", metadata,
    Column("id", Integer, primary_key=True),
    Column("tenant_id", Integer, ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False,
           index=True),
    Column("name", String(NAME_MAX), nullable=False),
    Column("device", Text, nullable=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("token_prefix", String(16), nullable=False, index=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("created_by", Integer, ForeignKey("api_tokens.id", ondelete="SET NULL"),
           nullable=True),
    Column("revoked_at", UtcDateTime, nullable=True),
)

#: The audit of write-back commands (issue 11): every attempt, refused ones included. A row is
#: written before anything is sent (result ``pending``) and updated once, to its final result;
#: no route deletes one. Values are JSON scalars as text.
commands = Table(
    "commands", metadata,
    Column("id", Integer, primary_key=True),
    # Kept when the tenant or the token goes: the audit outlives both.
    Column("tenant_id", Integer, ForeignKey("tenants.id", ondelete="SET NULL"), nullable=True,
           index=True),
    Column("token_id", Integer, ForeignKey("api_tokens.id", ondelete="SET NULL"),
           nullable=True),
    Column("token_name", String(NAME_MAX), nullable=True),
    Column("role", String(16), nullable=True),
    Column("requested_at", UtcDateTime, nullable=False, index=True),
    Column("device", Text, nullable=False),
    Column("point", Text, nullable=False),
    Column("series_id", Integer, nullable=True),
    Column("source", String(64), nullable=True),
    Column("old_value", Text, nullable=True),
    Column("new_value", Text, nullable=False),
    Column("result", String(16), nullable=False),
    Column("detail", Text, nullable=False),
    Column("finished_at", UtcDateTime, nullable=True),
    Column("confirmed_at", UtcDateTime, nullable=True),
    CheckConstraint("result IN ('pending', 'confirmed', 'failed', 'timeout', 'refused')",
                    name="result"),
)
