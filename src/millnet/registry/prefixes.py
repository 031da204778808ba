"""Identifier prefixes of tenants (table ``tenant_prefixes``).

A node-wide admin assigns each tenant the identifier prefixes it registers under (an
enterprise's ``88.100.5``); a tenant may link its devices and products only to handles whose
prefix is one of its own. Without this, one tenant could link another's identifier first and
keep it from the other (found by review), and learn from the conflict which record held it.
Prefixes are stored as handles store them (ASCII letters upper-cased) and belong to one tenant.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, delete, insert, select
from sqlalchemy.exc import IntegrityError

from millnet.errors import Conflict, InvalidInput, PermissionDenied
from millnet.protocols.handle import fold_prefix
from millnet.registry.schema import tenant_prefixes
from millnet.registry.tenants import require_tenant

MAX_PREFIXES = 100


def _prefix(text: str, field: str) -> str:
    key = fold_prefix(text.strip())
    if not key or len(key) > 255 or "/" in key or not key.isprintable() or " " in key:
        raise InvalidInput(f"{text[:40]!r} is not an identifier prefix (e.g. 88.100.5)", field)
    return key


def set_prefixes(conn: Connection, tenant_id: int, prefixes: Sequence[str]) -> list[str]:
    """Replace the tenant's identifier prefixes; Conflict when one belongs to another."""
    require_tenant(conn, tenant_id)
    if len(prefixes) > MAX_PREFIXES:
        raise InvalidInput(f"{len(prefixes)} prefixes; at most {MAX_PREFIXES}", "prefixes")
    keys = sorted({_prefix(p, f"prefixes[{i}]") for i, p in enumerate(prefixes)})
    taken = conn.execute(select(tenant_prefixes.c.prefix).where(
        tenant_prefixes.c.prefix.in_(keys), tenant_prefixes.c.tenant_id != tenant_id)).first()
    if taken is not None:
        raise Conflict(f"prefix {taken.prefix} belongs to another tenant")
    conn.execute(delete(tenant_prefixes).where(tenant_prefixes.c.tenant_id == tenant_id))
    if keys:
        try:
            conn.execute(insert(tenant_prefixes),
                         [{"prefix": k, "tenant_id": tenant_id} for k in keys])
        except IntegrityError as exc:  # assigned elsewhere meanwhile
            raise Conflict("a prefix was assigned to another tenant meanwhile") from exc
    return keys


def prefixes_of(conn: Connection, tenant_id: int) -> list[str]:
    return list(conn.execute(select(tenant_prefixes.c.prefix)
                             .where(tenant_prefixes.c.tenant_id == tenant_id)
                             .order_by(tenant_prefixes.c.prefix)).scalars())


def require_own_identifier(conn: Connection, tenant_id: int, handle: str) -> None:
    """PermissionDenied unless ``handle`` is under one of the tenant's prefixes."""
    prefix = fold_prefix(handle.partition("/")[0])
    owner = conn.execute(select(tenant_prefixes.c.tenant_id)
                         .where(tenant_prefixes.c.prefix == prefix)).scalar()
    if owner != tenant_id:
        raise PermissionDenied(
            f"{prefix} is not an identifier prefix of this tenant: a node-wide admin assigns "
            "them (PUT /api/v1/tenants/{id}/identifier-prefixes)")
