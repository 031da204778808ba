"""Orders of configurable products (issue 15): the tenant's product catalogue, placing an order
(checked against the product's rules, scheduled, given a global identifier and a follow token)
and following it.

``GET /orders/{identifier}`` answers a token of the order's tenant (viewer or more) or the
order's own follow token (``Authorization: Bearer mno_...``), which reads that order and
nothing else: with another identifier it is an invalid token (401, counted by the security
monitor, whether that order exists or not); a token of another tenant answers 404, as for an
order that does not exist. A configuration
the product does not allow answers 409 naming the option (``invalid_configuration``) or the
rule it breaks (``rule_violated``, with ``rule``: its id, kind and message).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request, Response, Security, status
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from millnet.api.auth import Admin, Operator, Viewer, bearer_token, current_caller
from millnet.api.context import Ctx
from millnet.api.errors import AUTH_ERRORS, ErrorBody, responses
from millnet.api.params import INT32_MAX
from millnet.api.routes.assets import TENANT_QUERY
from millnet.api.scope import tenant_of_request
from millnet.errors import NotFound
from millnet.orders.catalog import ConfigurationRefused, ProductDefinition
from millnet.orders.service import FOLLOW_PREFIX, OrderService
from millnet.orders.store import OperationRecord, OrderRecord
from millnet.registry import Role

router = APIRouter(tags=["orders"])
Name = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]
IDENTIFIER_PATTERN = r"^[^/\s]{1,128}/ORDER-[0-9]{6,10}$"
_follow = HTTPBearer(auto_error=False, scheme_name="bearer",
                     description="A millnet API token, or an order's follow token (mno_...)")


def mount(app: FastAPI, orders: OrderService | None, prefix: str) -> None:
    """The routes over ``orders`` (none without it)."""
    if orders is not None:
        app.state.orders = orders
        app.include_router(router, prefix=prefix)


def service_of(request: Request) -> OrderService:
    found: OrderService = request.app.state.orders
    return found


Orders = Annotated[OrderService, Depends(service_of)]


class RuleOut(BaseModel):
    id: str
    kind: str
    message: str


class RefusalBody(ErrorBody):
    """A configuration the product does not allow."""

    rule: RuleOut | None = Field(default=None, description="The first rule broken")
    rules: list[RuleOut] = Field(default_factory=list, description="Every rule broken")


class OrderIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    product: Name
    options: dict[Name, Name] = Field(default_factory=dict, max_length=100,
                                      description="option -> choice; defaults fill the rest")
    quantity: int = Field(ge=1, le=1_000_000)
    customer: str | None = Field(default=None, max_length=200,
                                 description="The customer's own reference")
    tenant_id: int | None = Field(default=None, ge=1, le=INT32_MAX,
                                  description="The tenant (node-wide tokens)")


def _time(seconds: float | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)


def _quality(good: int, scrap: int) -> float | None:
    return round(good / (good + scrap), 4) if good + scrap else None


class OperationOut(BaseModel):
    seq: int
    name: str
    line: str
    line_id: int
    cycle_s: float
    status: str = Field(description="planned, started or done")
    good: int
    scrap: int
    quality: float | None = Field(description="good / (good + scrap)")
    planned_start: datetime
    planned_end: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def of(cls, op: OperationRecord) -> OperationOut:
        return cls(seq=op.seq, name=op.name, line=op.line, line_id=op.line_id,
                   cycle_s=op.cycle_s, status=op.status, good=op.good, scrap=op.scrap,
                   quality=_quality(op.good, op.scrap),
                   planned_start=datetime.fromtimestamp(op.planned_start_s, UTC),
                   planned_end=datetime.fromtimestamp(op.planned_end_s, UTC),
                   started_at=_time(op.started_s), finished_at=_time(op.finished_s))


class OrderOut(BaseModel):
    identifier: str
    tenant_id: int
    product: str
    quantity: int
    options: dict[str, str]
    customer: str | None
    status: str = Field(description="scheduled, in_progress or finished")
    done: int = Field(description="Good units out of the last operation")
    lead_time_s: float
    release_at: datetime = Field(description="Not started before (the options' lead time)")
    promised_at: datetime = Field(description="The planned end of the last operation")
    started_at: datetime | None
    finished_at: datetime | None
    created_at: datetime
    operations: list[OperationOut]

    @classmethod
    def of(cls, o: OrderRecord) -> OrderOut:
        return cls(identifier=o.identifier, tenant_id=o.tenant_id, product=o.product,
                   quantity=o.quantity, options=o.selection, customer=o.customer,
                   status=o.status, done=o.operations[-1].good if o.operations else 0,
                   lead_time_s=o.lead_time_s, release_at=datetime.fromtimestamp(o.release_s, UTC),
                   promised_at=datetime.fromtimestamp(o.promised_s, UTC),
                   started_at=_time(o.started_s), finished_at=_time(o.finished_s),
                   created_at=o.created_at, operations=[OperationOut.of(op)
                                                        for op in o.operations])


class PlacedOut(BaseModel):
    order: OrderOut
    follow_token: str = Field(description="Reads this order only (give it to the customer); "
                                          "shown once")
    status_url: str


def _refusal(exc: ConfigurationRefused) -> JSONResponse:
    rules = [RuleOut(id=r.id, kind=r.kind, message=r.message) for r in exc.broken]
    body = RefusalBody(error="rule_violated" if rules else "invalid_configuration",
                       detail=str(exc), field=exc.field, rule=rules[0] if rules else None,
                       rules=rules)
    # 409, not 422: the body matches the document (a schema-valid request is never refused
    # as malformed, docs/design.md); it conflicts with the product as defined.
    return JSONResponse(body.model_dump(), status_code=409)


_REFUSED: dict[int | str, dict[str, Any]] = {409: {
    "model": RefusalBody, "description": "The configuration breaks a rule of the product or "
                                         "names an unknown product, option or choice"}}


@router.get("/order-products", response_model=list[ProductDefinition],
            summary="The tenant's configurable products", responses=responses(*AUTH_ERRORS, 404))
def list_order_products(ctx: Ctx, caller: Viewer, orders: Orders,
                        tenant_id: int | None = TENANT_QUERY) -> list[ProductDefinition]:
    return orders.store.list_products(tenant_of_request(ctx, caller, tenant_id))


@router.get("/order-products/{name}", response_model=ProductDefinition,
            summary="One configurable product", responses=responses(*AUTH_ERRORS, 404))
def get_order_product(ctx: Ctx, caller: Viewer, orders: Orders, name: Name,
                      tenant_id: int | None = TENANT_QUERY) -> ProductDefinition:
    return orders.store.get_product(tenant_of_request(ctx, caller, tenant_id), name)


@router.put("/order-products/{name}", response_model=ProductDefinition,
            summary="Define or replace a configurable product (admins)",
            responses={**responses(*AUTH_ERRORS, 400, 404), **_REFUSED})
def put_order_product(ctx: Ctx, caller: Admin, orders: Orders, name: Name,
                      body: ProductDefinition, response: Response,
                      tenant_id: int | None = TENANT_QUERY) -> Any:
    tenant = tenant_of_request(ctx, caller, tenant_id)
    if body.name != name:
        return _refusal(ConfigurationRefused(f"the body names {body.name!r}, the path "
                                             f"{name!r}", "name"))
    try:
        if orders.define(tenant, body):
            response.status_code = status.HTTP_201_CREATED
    except ConfigurationRefused as exc:
        return _refusal(exc)
    return body


@router.post("/orders", response_model=PlacedOut, status_code=status.HTTP_201_CREATED,
             summary="Place an order (operators): checked, scheduled, identified",
             responses={**responses(*AUTH_ERRORS, 404), **_REFUSED})
def place_order(ctx: Ctx, caller: Operator, orders: Orders, body: OrderIn,
                request: Request) -> Any:
    tenant = tenant_of_request(ctx, caller, body.tenant_id)
    try:
        placed = orders.place(tenant, body.product, body.options, body.quantity, body.customer)
    except ConfigurationRefused as exc:
        return _refusal(exc)
    url = str(request.url_for("get_order", identifier=placed.order.identifier))
    return PlacedOut(order=OrderOut.of(placed.order), follow_token=placed.follow_token,
                     status_url=url)


@router.get("/orders", response_model=list[OrderOut], summary="The tenant's orders",
            responses=responses(*AUTH_ERRORS, 404))
def list_orders(ctx: Ctx, caller: Viewer, orders: Orders,
                tenant_id: int | None = TENANT_QUERY,
                order_status: str | None = Query(
                    default=None, alias="status", pattern="^(scheduled|in_progress|finished)$"),
                after: int = Query(default=0, ge=0, le=INT32_MAX,
                                   description="Ids after this one (paging)"),
                limit: int = Query(default=100, ge=1, le=1000)) -> list[OrderOut]:
    tenant = tenant_of_request(ctx, caller, tenant_id)
    return [OrderOut.of(o) for o in orders.store.list_orders(tenant, status=order_status,
                                                             after=after, limit=limit)]


@router.get("/orders/{identifier:path}", response_model=OrderOut,
            summary="One order: status, operations, counts, promised and actual dates "
                    "(tenant tokens, or the order's follow token)",
            responses=responses(401, 404, 422, 500, 503))
async def get_order(request: Request, orders: Orders, identifier: str,
                    credentials: Annotated[HTTPAuthorizationCredentials | None,
                                           Security(_follow)]) -> OrderOut:
    token = bearer_token(request.headers.get("authorization"))
    missing = NotFound(f"order {identifier} not found")
    if token.startswith(FOLLOW_PREFIX):
        if await run_in_threadpool(orders.follows, identifier, token):
            return OrderOut.of(await run_in_threadpool(orders.get, identifier))
        # Not this order's token: an invalid token, whether the order exists or not (401, and
        # the security monitor counts it, as it counts guessed API tokens).
        client = request.client
        await run_in_threadpool(request.app.state.millnet.auth.verify, token,
                                client.host if client is not None else "")
        raise missing  # a follow token is no API token: verify has raised
    caller = await current_caller(request, credentials)
    if not caller.at_least(Role.VIEWER):
        raise missing
    order = await run_in_threadpool(orders.get, identifier)
    if not caller.sees(order.tenant_id):
        raise missing
    return OrderOut.of(order)
