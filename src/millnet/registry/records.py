"""What the registry hands out: frozen dataclasses, one per table, plus the verified principal.

None of these carries a secret. Token plaintexts exist only in the return value of
:meth:`~millnet.registry.Registry.create_token`; token hashes never leave the registry.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TypedDict

from millnet.model import AssetKind, DataType


class Role(StrEnum):
    """What a token may do; each role includes the ones below it."""

    ADMIN = "admin"
    OPERATOR = "operator"
    VIEWER = "viewer"


@dataclass(frozen=True, slots=True)
class Tenant:
    id: int
    name: str
    display_name: str
    created_at: datetime
    retention_days: int | None = None


@dataclass(frozen=True, slots=True)
class Product:
    """A unit a tenant's line made; ``identifier`` is its global identifier, once linked."""

    id: int
    tenant_id: int
    serial: str
    model: str
    line_id: int | None
    batch: str | None
    produced_at: datetime
    identifier: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Asset:
    """One node of a tenant's ISA-95 hierarchy; ``path`` is the names from the root, '/'-joined."""

    id: int
    tenant_id: int
    parent_id: int | None
    kind: AssetKind
    name: str
    path: str
    description: str | None
    created_at: datetime
    asset_type: str | None = None  # what kind of machine ("cnc"): rules attach to it


class AssetNode(TypedDict):
    """One node of :meth:`~millnet.registry.Registry.asset_tree`, children in name order."""

    id: int
    kind: str
    name: str
    path: str
    description: str | None
    children: list[AssetNode]


@dataclass(frozen=True, slots=True)
class Point:
    """A device point; ``series_id`` is the id its samples carry in the telemetry store."""

    series_id: int
    tenant_id: int
    device_id: int
    name: str
    datatype: DataType
    unit: str | None
    description: str | None
    eng_low: float | None
    eng_high: float | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """An API token as shown to administrators: its display prefix, never its secret or hash."""

    id: int
    tenant_id: int | None  # None: a node-wide token
    name: str
    role: Role
    prefix: str  # e.g. "mn_3f9a0c1d", the start of the plaintext, safe to display
    created_at: datetime
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


@dataclass(frozen=True, slots=True)
class Principal:
    """Who presented a valid token: the token, its tenant (None: node-wide) and its role."""

    token_id: int
    tenant_id: int | None
    role: Role
