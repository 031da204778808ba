"""The ISA-95 asset tree of a tenant, one asset, an asset's children; admins add assets."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request, status

from millnet.api.auth import Admin, Viewer
from millnet.api.changes import config_changed
from millnet.api.context import Ctx
from millnet.api.errors import AUTH_ERRORS, responses
from millnet.api.params import INT32_MAX, ObjectId
from millnet.api.schemas import AssetIn, AssetOut, AssetPatch, AssetTreeOut
from millnet.api.scope import tenant_of_request, visible_asset
from millnet.errors import Conflict, NotFound
from millnet.model import AssetKind
from millnet.registry.assets import child_kind

router = APIRouter(tags=["assets"])

TENANT_QUERY = Query(
    default=None, ge=1, le=INT32_MAX,
    description="Tenant to read; defaults to the token's own. A node-wide token must name one "
                "(403 otherwise).")


@router.get("/assets", response_model=AssetTreeOut,
            summary="The tenant's asset tree: enterprise > site > area > line > device",
            responses=responses(*AUTH_ERRORS, 404))
def asset_tree(ctx: Ctx, caller: Viewer, tenant_id: int | None = TENANT_QUERY) -> AssetTreeOut:
    tenant = tenant_of_request(ctx, caller, tenant_id)
    return AssetTreeOut.of(tenant, ctx.registry.asset_tree(tenant))


@router.post("/assets", response_model=AssetOut, status_code=status.HTTP_201_CREATED,
             summary="Add an asset under a parent (admins)",
             responses=responses(*AUTH_ERRORS, 404, 409))
def create_asset(request: Request, ctx: Ctx, caller: Admin, body: AssetIn) -> AssetOut:
    """The kind must be the level below the parent's (an enterprise for a root): another kind
    conflicts with the tree as it is (409). A parent of another tenant than ``tenant_id``
    answers 404, like a parent that does not exist."""
    parent_kind: AssetKind | None = None
    if body.parent_id is None:
        tenant = tenant_of_request(ctx, caller, body.tenant_id)
    else:
        parent = visible_asset(ctx, caller, body.parent_id)
        tenant, parent_kind = parent.tenant_id, parent.kind
        if body.tenant_id is not None and body.tenant_id != tenant:
            raise NotFound(f"asset {body.parent_id} not found in tenant {body.tenant_id}")
    expected = child_kind(parent_kind)
    if body.kind is not expected:
        under = f"under a {parent_kind.value}" if parent_kind else "at the root"
        wanted = f"{expected.value}s" if expected else "none"
        raise Conflict(f"kind: {body.kind.value} {under}; the tree allows {wanted} there")
    asset = ctx.registry.create_asset(tenant, body.parent_id, body.kind, body.name,
                                      body.description)
    if body.asset_type is not None:
        asset = ctx.registry.set_asset_type(tenant, asset.id, body.asset_type)
    config_changed(request, caller, "asset", "created", asset.id, tenant_id=tenant)
    return AssetOut.of(asset)


@router.get("/assets/{asset_id}", response_model=AssetOut, summary="One asset",
            responses=responses(*AUTH_ERRORS, 404))
def get_asset(ctx: Ctx, caller: Viewer, asset_id: ObjectId) -> AssetOut:
    return AssetOut.of(visible_asset(ctx, caller, asset_id))


@router.patch("/assets/{asset_id}", response_model=AssetOut,
              summary="Change an asset's type (admins)",
              responses=responses(*AUTH_ERRORS, 404))
def patch_asset(request: Request, ctx: Ctx, caller: Admin, asset_id: ObjectId,
                body: AssetPatch) -> AssetOut:
    """Rules that attach to an asset type cover the asset from its next evaluation on."""
    asset = visible_asset(ctx, caller, asset_id)
    changed = ctx.registry.set_asset_type(asset.tenant_id, asset.id, body.asset_type)
    config_changed(request, caller, "asset", "retyped", asset_id, tenant_id=asset.tenant_id)
    return AssetOut.of(changed)


@router.get("/assets/{asset_id}/children", response_model=list[AssetOut],
            summary="The direct children of an asset, in name order",
            responses=responses(*AUTH_ERRORS, 404))
def list_children(ctx: Ctx, caller: Viewer, asset_id: ObjectId) -> list[AssetOut]:
    asset = visible_asset(ctx, caller, asset_id)
    return [AssetOut.of(a) for a in ctx.registry.list_children(asset.tenant_id, asset_id)]
