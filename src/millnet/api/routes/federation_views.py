"""The monitoring federation's views (issue 13): the situation of the enterprises under this
node, advisories, and rectification orders.

Mounted by ``create_app`` under ``/api/v1`` when the node runs the federation; it reads its
:class:`millnet.federation.views.FederationViews` from ``request.app.state.federation_views``
(set by ``node.py``; absent, every route answers 404). Only node-wide tokens see these views: a
tenant's token gets 403, whatever its role, since the figures span enterprises. Viewers read;
admins issue advisories and orders (national and secondary nodes); operators of an enterprise
node update its progress on an order. A transition the order's state does not allow answers
409 naming the allowed ones.
"""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, Field, JsonValue

from millnet.api.auth import Admin, Caller, Operator, Viewer
from millnet.api.errors import AUTH_ERRORS, responses
from millnet.api.params import parse_time
from millnet.errors import InvalidInput, NotFound, PermissionDenied
from millnet.federation.situation import SituationQuery
from millnet.federation.views import FederationViews

router = APIRouter(tags=["federation"])
_BUCKET = re.compile(r"(\d{1,7})([smhd]?)")
_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86_400}
Json = dict[str, Any]


def _views(request: Request, caller: Caller) -> FederationViews:
    if not caller.node_wide:
        raise PermissionDenied("federation views are for node-wide tokens")
    views: FederationViews | None = getattr(request.app.state, "federation_views", None)
    if views is None:
        raise NotFound("this node runs no federation")
    return views


def _time(raw: str, field: str) -> datetime:
    ns = parse_time(raw, field)
    return datetime.fromtimestamp(ns / 1e9, UTC)


def _bucket(raw: str) -> int:
    match = _BUCKET.fullmatch(raw.strip())
    if match is None:
        raise InvalidInput("must be seconds or a number with s, m, h or d", "bucket")
    return int(match.group(1)) * _UNIT[match.group(2)]


OrderId = Annotated[str, Path(max_length=64, description="The order's id")]
TimeQuery = Annotated[str | None, Query(max_length=40, description="ISO 8601 or epoch ms")]


@router.get("/federation/situation", response_model=Json,
            summary="Assets, events, incidents by province, sector, severity and time bucket; "
                    "most affected products; orders not acknowledged or overdue",
            responses=responses(*AUTH_ERRORS, 400, 404))
async def get_situation(
    request: Request, caller: Viewer, since: TimeQuery = None, until: TimeQuery = None,
    bucket: Annotated[str, Query(max_length=12, description="1h, 15m, 1d or seconds")] = "1h",
    region: Annotated[str | None, Query(max_length=6, description="GB/T 2260 prefix")] = None,
    sector: Annotated[str | None, Query(max_length=1, description="GB/T 4754 section")] = None,
) -> Json:
    views = _views(request, caller)
    end = _time(until, "until") if until else datetime.now(UTC)
    start = _time(since, "since") if since else end - timedelta(days=1)
    query = SituationQuery(start, end, _bucket(bucket), region or None,
                           sector.upper() if sector else None)
    return await asyncio.to_thread(views.situation, query)


class AdvisoryIn(BaseModel):
    id: str = Field(max_length=64, examples=["CNVD-2026-01234"])
    title: str = Field(max_length=255)
    severity: str = Field(max_length=16, examples=["high"])
    published: str = Field(max_length=40, examples=["2026-11-01T00:00:00Z"])
    description: str = Field("", max_length=10_000)
    affected: list[dict[str, JsonValue]] = Field(
        max_length=256, examples=[[{"cpe": "cpe:2.3:h:siemens:s7-1200:*:*:*:*:*:*:*:*",
                                    "versionEndExcluding": "4.5"}]])
    regions: list[str] = Field(default_factory=list, max_length=64)


@router.get("/federation/advisories", response_model=list[Json],
            summary="Advisories issued here or received from the parent, newest first",
            responses=responses(*AUTH_ERRORS, 404))
async def list_advisories(request: Request, caller: Viewer) -> list[Json]:
    return await asyncio.to_thread(_views(request, caller).advisories)


@router.post("/federation/advisories", response_model=Json, status_code=201,
             summary="Issue an advisory; it goes down to the children it concerns",
             responses=responses(*AUTH_ERRORS, 400, 404, 409))
async def create_advisory(request: Request, caller: Admin, body: AdvisoryIn) -> Json:
    views = _views(request, caller)
    return await asyncio.to_thread(views.create_advisory, body.model_dump())


class OrderIn(BaseModel):
    id: str = Field(max_length=64, examples=["RO-2026-007"])
    targets: list[str] = Field(max_length=1000, examples=[["ent-suzhou-01"]])
    title: str = Field(max_length=255)
    action: str = Field(max_length=10_000)
    deadline: str = Field(max_length=40, examples=["2026-12-31T00:00:00Z"])
    advisory_id: str | None = Field(None, max_length=64)


class StatusIn(BaseModel):
    state: str = Field(max_length=16, examples=["acknowledged"],
                       description="received, acknowledged, in_progress or done")
    comment: str = Field("", max_length=2000)


@router.get("/federation/orders", response_model=list[Json],
            summary="Rectification orders with each target's state (overdue computed now)",
            responses=responses(*AUTH_ERRORS, 404))
async def list_orders(request: Request, caller: Viewer) -> list[Json]:
    return await asyncio.to_thread(_views(request, caller).orders)


@router.get("/federation/orders/{order_id}", response_model=Json,
            summary="One order, its targets' states and its audit trail",
            responses=responses(*AUTH_ERRORS, 404))
async def get_order(request: Request, caller: Viewer,
                    order_id: OrderId) -> Json:
    return await asyncio.to_thread(_views(request, caller).order, order_id)


@router.post("/federation/orders", response_model=Json, status_code=201,
             summary="Issue a rectification order to named enterprises under this node",
             responses=responses(*AUTH_ERRORS, 400, 404, 409))
async def create_order(request: Request, caller: Admin, body: OrderIn) -> Json:
    views = _views(request, caller)
    return await asyncio.to_thread(views.create_order, body.model_dump())


@router.post("/federation/orders/{order_id}/status", response_model=Json,
             summary="This enterprise's progress on an order (reported to the issuer)",
             responses=responses(*AUTH_ERRORS, 400, 404, 409))
async def update_status(request: Request, caller: Operator, order_id: OrderId,
                        body: StatusIn) -> Json:
    views = _views(request, caller)
    actor = await _actor(request, caller)
    return await asyncio.to_thread(views.update_status, order_id, body.state, actor,
                                   body.comment)


async def _actor(request: Request, caller: Caller) -> str:
    """The token's name, kept in the audit trail (its id when the registry has no name)."""
    context = getattr(request.app.state, "millnet", None)
    if context is None:
        return f"token-{caller.token_id}"
    token = await asyncio.to_thread(context.registry.get_token, caller.token_id)
    return str(token.name)
