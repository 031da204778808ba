"""The registry: tenants, the ISA-95 asset hierarchy, points (the series dictionary), API tokens.

SQLAlchemy Core on SQLite (default, WAL) or PostgreSQL, schema migrated by Alembic on
:meth:`Registry.open`. All access goes through :class:`Registry`; it returns the frozen records
of :mod:`millnet.registry.records` and raises :mod:`millnet.errors` exceptions.
"""

from millnet.registry.records import (
    Asset,
    AssetNode,
    Point,
    Principal,
    Product,
    Role,
    Tenant,
    TokenInfo,
)
from millnet.registry.repository import Registry

__all__ = [
    "Asset",
    "AssetNode",
    "Point",
    "Principal",
    "Product",
    "Registry",
    "Role",
    "Tenant",
    "TokenInfo",
]
