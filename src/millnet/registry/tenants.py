"""Tenants: the isolation unit. Every asset, point and (non node-wide) token belongs to one."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, insert, select, update
from sqlalchemy.exc import IntegrityError

from millnet.db.schema import AnyRow
from millnet.errors import Conflict, NotFound
from millnet.registry.records import Tenant
from millnet.registry.schema import tenants
from millnet.registry.validation import check_name, check_retention, check_slug


def _tenant(row: AnyRow) -> Tenant:
    return Tenant(row.id, row.name, row.display_name, row.created_at, row.retention_days)


_COLUMNS = (tenants.c.id, tenants.c.name, tenants.c.display_name, tenants.c.created_at,
            tenants.c.retention_days)


def create_tenant(
    conn: Connection, name: str, display_name: str | None, retention_days: int | None,
    now: datetime,
) -> Tenant:
    check_slug(name, "name")
    display = check_name(display_name if display_name is not None else name, "display_name")
    check_retention(retention_days)
    if find_tenant(conn, name) is not None:
        raise Conflict(f"tenant {name!r} already exists")
    try:
        new_id = conn.execute(insert(tenants).values(
            name=name, display_name=display, created_at=now, retention_days=retention_days,
        )).inserted_primary_key[0]  # type: ignore[index]
    except IntegrityError as exc:  # a concurrent create of the same name won
        raise Conflict(f"tenant {name!r} already exists") from exc
    return Tenant(int(new_id), name, display, now, retention_days)


def find_tenant(conn: Connection, key: int | str) -> Tenant | None:
    column = tenants.c.id if isinstance(key, int) else tenants.c.name
    row = conn.execute(select(*_COLUMNS).where(column == key)).one_or_none()
    return None if row is None else _tenant(row)


def get_tenant(conn: Connection, key: int | str) -> Tenant:
    if isinstance(key, bool) or not isinstance(key, int | str):
        raise NotFound(f"tenant {key!r} not found")
    tenant = find_tenant(conn, key)
    if tenant is None:
        raise NotFound(f"tenant {key!r} not found")
    return tenant


def require_tenant(conn: Connection, tenant_id: int) -> None:
    """Raise NotFound unless ``tenant_id`` exists."""
    if conn.execute(select(tenants.c.id).where(tenants.c.id == tenant_id)).first() is None:
        raise NotFound(f"tenant {tenant_id!r} not found")


def list_tenants(conn: Connection) -> list[Tenant]:
    return sorted((_tenant(r) for r in conn.execute(select(*_COLUMNS))), key=lambda t: t.name)


def set_retention(conn: Connection, tenant_id: int, retention_days: int | None) -> Tenant:
    check_retention(retention_days)
    done = conn.execute(update(tenants).where(tenants.c.id == tenant_id)
                        .values(retention_days=retention_days))
    if done.rowcount == 0:
        raise NotFound(f"tenant {tenant_id!r} not found")
    return get_tenant(conn, tenant_id)
