"""Products: the units a tenant's lines made, linked to their global identifiers (the
traceability and personalized-customization records an identifier resolves to)."""

from __future__ import annotations

from fastapi import APIRouter, Query, status

from millnet.api.auth import Operator, Viewer
from millnet.api.context import Ctx
from millnet.api.errors import AUTH_ERRORS, responses
from millnet.api.params import INT32_MAX, ObjectId
from millnet.api.routes.assets import TENANT_QUERY
from millnet.api.schemas import IdentifierIn, ProductIn, ProductOut
from millnet.api.scope import tenant_of_request, visible_asset
from millnet.errors import NotFound
from millnet.model import AssetKind

router = APIRouter(tags=["products"])


def _visible(ctx: Ctx, caller: Viewer, product_id: int) -> ProductOut:
    product = ctx.registry.get_product(product_id)
    if caller.tenant_id is not None and product.tenant_id != caller.tenant_id:
        raise NotFound(f"product {product_id} not found")
    return ProductOut.of(product)


@router.get("/products", response_model=list[ProductOut], summary="The tenant's products",
            responses=responses(*AUTH_ERRORS, 404))
def list_products(ctx: Ctx, caller: Viewer, tenant_id: int | None = TENANT_QUERY,
                  after: int = Query(default=0, ge=0, le=INT32_MAX,
                                     description="Ids after this one (paging)"),
                  limit: int = Query(default=1000, ge=1, le=10_000)) -> list[ProductOut]:
    tenant = tenant_of_request(ctx, caller, tenant_id)
    return [ProductOut.of(p) for p in ctx.registry.list_products(tenant, limit=limit,
                                                                 after=after)]


@router.post("/products", response_model=ProductOut, status_code=status.HTTP_201_CREATED,
             summary="Record a product (operators)",
             responses=responses(*AUTH_ERRORS, 404, 409))
def create_product(ctx: Ctx, caller: Operator, body: ProductIn) -> ProductOut:
    tenant = tenant_of_request(ctx, caller, body.tenant_id)
    if body.line_id is not None:
        line = visible_asset(ctx, caller, body.line_id)
        if line.tenant_id != tenant or line.kind is not AssetKind.LINE:
            raise NotFound(f"line {body.line_id} not found")
    return ProductOut.of(ctx.registry.create_product(
        tenant, body.serial, body.model, line_id=body.line_id, batch=body.batch,
        produced_at=body.produced_at))


@router.get("/products/{product_id}", response_model=ProductOut, summary="One product",
            responses=responses(*AUTH_ERRORS, 404))
def get_product(ctx: Ctx, caller: Viewer, product_id: ObjectId) -> ProductOut:
    return _visible(ctx, caller, product_id)


@router.put("/products/{product_id}/identifier", response_model=ProductOut,
            summary="Link a product to its global identifier (operators)",
            responses=responses(*AUTH_ERRORS, 404, 409))
def set_product_identifier(ctx: Ctx, caller: Operator, product_id: ObjectId,
                           body: IdentifierIn) -> ProductOut:
    tenant = _visible(ctx, caller, product_id).tenant_id
    return ProductOut.of(ctx.registry.set_product_identifier(tenant, product_id, body.handle))
