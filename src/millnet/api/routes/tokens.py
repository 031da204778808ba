"""API tokens: admins create, list and revoke the tokens of their tenant.

A node-wide admin manages the tokens of any tenant and node-wide tokens. The plaintext of a new
token appears once, in the creation answer; the registry keeps only its hash.
"""

from __future__ import annotations

from fastapi import APIRouter, Query, Request, Response, status

from millnet.api.auth import Admin
from millnet.api.changes import config_changed
from millnet.api.context import Ctx
from millnet.api.errors import AUTH_ERRORS, responses
from millnet.api.params import INT32_MAX, ObjectId
from millnet.api.schemas import TokenCreated, TokenIn, TokenOut
from millnet.api.scope import tenant_of_request, visible_tenant
from millnet.errors import Conflict, NotFound, PermissionDenied

router = APIRouter(tags=["tokens"])


@router.get("/tokens", response_model=list[TokenOut],
            summary="Tokens of the tenant (or node-wide tokens)",
            responses=responses(*AUTH_ERRORS, 404))
def list_tokens(
    ctx: Ctx, caller: Admin,
    tenant_id: int | None = Query(default=None, ge=1, le=INT32_MAX,
                                  description="Defaults to the caller's tenant; a node-wide "
                                              "token must name one (403 otherwise)"),
    node_wide: bool = Query(default=False, description="List node-wide tokens instead "
                                                       "(node-wide admins only)"),
) -> list[TokenOut]:
    if node_wide:
        if caller.tenant_id is not None:
            raise PermissionDenied("only a node-wide admin lists node-wide tokens")
        return [TokenOut.of(t) for t in ctx.registry.list_tokens(None)]
    tenant = tenant_of_request(ctx, caller, tenant_id)
    return [TokenOut.of(t) for t in ctx.registry.list_tokens(tenant)]


@router.post("/tokens", response_model=TokenCreated, status_code=status.HTTP_201_CREATED,
             summary="Create a token; its secret is in this answer only",
             responses=responses(*AUTH_ERRORS, 404, 409))
def create_token(request: Request, ctx: Ctx, caller: Admin, body: TokenIn) -> TokenCreated:
    tenant: int | None
    if body.node_wide:
        if caller.tenant_id is not None:
            raise PermissionDenied("only a node-wide admin creates node-wide tokens")
        if body.tenant_id is not None:
            raise Conflict("a node-wide token has no tenant: give node_wide or tenant_id")
        tenant = None
    else:
        tenant = tenant_of_request(ctx, caller, body.tenant_id)
        visible_tenant(ctx, caller, tenant)
    plaintext, info = ctx.registry.create_token(tenant, body.role, body.name)
    config_changed(request, caller, "token", f"created ({body.role})", info.id, tenant_id=tenant)
    return TokenCreated(token=plaintext, info=TokenOut.of(info))


@router.delete("/tokens/{token_id}", status_code=status.HTTP_204_NO_CONTENT,
               response_class=Response, summary="Revoke a token",
               responses=responses(*AUTH_ERRORS, 404))
def revoke_token(request: Request, ctx: Ctx, caller: Admin, token_id: ObjectId) -> Response:
    try:
        info = ctx.registry.get_token(token_id)
    except NotFound:
        raise NotFound(f"token {token_id} not found") from None
    if caller.tenant_id is not None and info.tenant_id != caller.tenant_id:
        raise NotFound(f"token {token_id} not found")
    ctx.registry.revoke_token(token_id)
    ctx.auth.forget_all()
    config_changed(request, caller, "token", "revoked", token_id, tenant_id=info.tenant_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
