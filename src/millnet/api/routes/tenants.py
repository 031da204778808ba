"""Tenants: node-wide admins create them; every token sees its own; admins change settings.
(``GET /me``, the calling token, is :mod:`millnet.api.routes.session`.)"""

from __future__ import annotations

from fastapi import APIRouter, Request, status

from millnet.api.auth import Admin, Viewer
from millnet.api.changes import config_changed
from millnet.api.context import Ctx
from millnet.api.errors import AUTH_ERRORS, responses
from millnet.api.params import ObjectId
from millnet.api.schemas import IdentifierPrefixes, TenantIn, TenantOut, TenantSettings
from millnet.api.scope import visible_tenant
from millnet.errors import PermissionDenied

router = APIRouter(tags=["tenants"])


@router.get("/tenants", response_model=list[TenantOut],
            summary="Tenants visible to the caller (all of them for a node-wide token)",
            responses=responses(*AUTH_ERRORS))
def list_tenants(ctx: Ctx, caller: Viewer) -> list[TenantOut]:
    if caller.tenant_id is None:
        return [TenantOut.of(t) for t in ctx.registry.list_tenants()]
    return [TenantOut.of(visible_tenant(ctx, caller, caller.tenant_id))]


@router.post("/tenants", response_model=TenantOut, status_code=status.HTTP_201_CREATED,
             summary="Create a tenant (node-wide admins)",
             responses=responses(*AUTH_ERRORS, 409))
def create_tenant(request: Request, ctx: Ctx, caller: Admin, body: TenantIn) -> TenantOut:
    if caller.tenant_id is not None:
        raise PermissionDenied("only a node-wide admin creates tenants")
    tenant = ctx.registry.create_tenant(
        body.name, body.display_name, retention_days=body.retention_days)
    config_changed(request, caller, "tenant", "created", tenant.id)
    return TenantOut.of(tenant)


@router.get("/tenants/{tenant_id}", response_model=TenantOut, summary="One tenant",
            responses=responses(*AUTH_ERRORS, 404))
def get_tenant(ctx: Ctx, caller: Viewer, tenant_id: ObjectId) -> TenantOut:
    return TenantOut.of(visible_tenant(ctx, caller, tenant_id))


@router.patch("/tenants/{tenant_id}", response_model=TenantOut,
              summary="Change tenant settings (admins of the tenant)",
              responses=responses(*AUTH_ERRORS, 404))
def update_tenant(
    request: Request, ctx: Ctx, caller: Admin, tenant_id: ObjectId, body: TenantSettings,
) -> TenantOut:
    visible_tenant(ctx, caller, tenant_id)
    changed = ctx.registry.set_retention(tenant_id, body.retention_days)
    config_changed(request, caller, "tenant", "retention set", tenant_id, tenant_id=tenant_id)
    return TenantOut.of(changed)


@router.get("/tenants/{tenant_id}/identifier-prefixes", response_model=IdentifierPrefixes,
            summary="The identifier prefixes the tenant links its records under",
            responses=responses(*AUTH_ERRORS, 404))
def get_identifier_prefixes(ctx: Ctx, caller: Viewer, tenant_id: ObjectId,
                            ) -> IdentifierPrefixes:
    visible_tenant(ctx, caller, tenant_id)
    return IdentifierPrefixes(prefixes=ctx.registry.identifier_prefixes(tenant_id))


@router.put("/tenants/{tenant_id}/identifier-prefixes", response_model=IdentifierPrefixes,
            summary="Assign the tenant's identifier prefixes (node-wide admins)",
            responses=responses(*AUTH_ERRORS, 404, 409))
def set_identifier_prefixes(request: Request, ctx: Ctx, caller: Admin, tenant_id: ObjectId,
                            body: IdentifierPrefixes) -> IdentifierPrefixes:
    """A tenant links its devices and products only to handles under its own prefixes; a
    prefix belongs to one tenant. Only a node-wide admin assigns them: a tenant that could
    would claim another's identifiers."""
    if caller.tenant_id is not None:
        raise PermissionDenied("only a node-wide admin assigns identifier prefixes")
    prefixes = ctx.registry.set_identifier_prefixes(tenant_id, body.prefixes)
    config_changed(request, caller, "identifier_prefixes", "assigned", tenant_id,
                   tenant_id=tenant_id)
    return IdentifierPrefixes(prefixes=prefixes)
