"""Tenant scoping: every id in a request is checked against the caller's tenant.

Anything outside the caller's tenant answers exactly like something that does not exist
(404 with the same message), so a token cannot probe another tenant's ids.
"""

from __future__ import annotations

from millnet.api.auth import Caller
from millnet.api.context import ApiContext
from millnet.errors import NotFound, PermissionDenied
from millnet.model import AssetKind
from millnet.registry import Asset, Point, Tenant


def tenant_of_request(ctx: ApiContext, caller: Caller, tenant_id: int | None) -> int:
    """The tenant a collection request is about.

    A tenant token defaults to its own tenant and may name only that one; a node-wide token must
    name an existing tenant: without one it answers 403, like any request the token (not the
    request's form) does not allow, so a client that follows the document is not refused a
    request the document calls valid.
    """
    if caller.tenant_id is not None:
        if tenant_id is not None and tenant_id != caller.tenant_id:
            raise NotFound(f"tenant {tenant_id} not found")
        return caller.tenant_id
    if tenant_id is None:
        raise PermissionDenied("a node-wide token must name the tenant (tenant_id)")
    visible_tenant(ctx, caller, tenant_id)
    return tenant_id


def visible_tenant(ctx: ApiContext, caller: Caller, tenant_id: int) -> Tenant:
    if caller.sees(tenant_id):
        try:
            return ctx.registry.get_tenant(tenant_id)
        except NotFound:
            pass
    raise NotFound(f"tenant {tenant_id} not found")


def visible_asset(
    ctx: ApiContext, caller: Caller, asset_id: int, kind: AssetKind | None = None,
) -> Asset:
    what = "device" if kind is AssetKind.DEVICE else "asset"
    try:
        asset = ctx.registry.get_asset(asset_id)
    except NotFound:
        raise NotFound(f"{what} {asset_id} not found") from None
    if not caller.sees(asset.tenant_id) or (kind is not None and asset.kind is not kind):
        raise NotFound(f"{what} {asset_id} not found")
    return asset


def visible_point(ctx: ApiContext, caller: Caller, series_id: int) -> Point:
    try:
        point = ctx.registry.get_point(series_id)
    except NotFound:
        raise NotFound(f"series {series_id} not found") from None
    if not caller.sees(point.tenant_id):
        raise NotFound(f"series {series_id} not found")
    return point


def check_series(ctx: ApiContext, caller: Caller, series_ids: list[int]) -> None:
    """404 naming the first id that does not exist or belongs to another tenant."""
    tenants = ctx.series_tenants.lookup(series_ids)
    for sid in series_ids:
        owner = tenants.get(sid)
        if owner is None or not caller.sees(owner):
            raise NotFound(f"series {sid} not found")
