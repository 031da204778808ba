"""Shares with partner enterprises (issue 15, docs/collaboration.md).

Mounted on an enterprise node that runs the federation (``mount``); it reads its
:class:`millnet.collab.service.Collaboration` from ``request.app.state.collaboration``. The
owner's admins create, list and revoke the shares of their tenant (a node-wide admin names the
tenant); the partner's admins see the offers and accept one for their tenant (a node-wide
admin names it) or decline it; ``GET /shared`` shows the live shares a tenant accepted, with
their last payloads, to its viewers.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, FastAPI, Path, Request
from pydantic import BaseModel, Field

from millnet.api.auth import Admin, Caller, Viewer
from millnet.api.errors import AUTH_ERRORS, responses
from millnet.collab.common import parse_expiry
from millnet.collab.service import Collaboration
from millnet.errors import NotFound, PermissionDenied

if TYPE_CHECKING:
    from millnet.monitoring import Monitoring

API_PREFIX = "/api/v1"
router = APIRouter(tags=["collaboration"])
Json = dict[str, Any]
ShareId = Annotated[str, Path(pattern=r"^sh-[0-9a-f]{16}$", description="The share's id")]
Owner = Annotated[str, Path(pattern=r"^[A-Za-z0-9._-]{1,64}$",
                            description="The owner enterprise's node id")]


def mount(app: FastAPI, monitoring: Monitoring) -> None:
    if monitoring.collaboration is not None:
        app.state.collaboration = monitoring.collaboration
        app.include_router(router, prefix=API_PREFIX)


def _collab(request: Request) -> Collaboration:
    found: Collaboration | None = getattr(request.app.state, "collaboration", None)
    if found is None:
        raise NotFound("this node shares nothing")
    return found


def _tenant(request: Request, caller: Caller, tenant_id: int | None) -> int:
    if caller.tenant_id is not None:
        if tenant_id not in (None, caller.tenant_id):
            raise PermissionDenied("a tenant's token acts for its own tenant only")
        return caller.tenant_id
    if tenant_id is None:
        raise PermissionDenied("a node-wide token must name tenant_id")
    request.app.state.millnet.registry.get_tenant(tenant_id)  # NotFound: 404
    return tenant_id


def _actor(caller: Caller) -> str:
    return f"token:{caller.token_id}"


class ShareIn(BaseModel):
    partner: str = Field(pattern=r"^[A-Za-z0-9._-]{1,64}$", examples=["ent-pudong-drives"],
                         description="The partner enterprise's node name")
    scope: str = Field(min_length=3, max_length=512,
                       examples=["device-status:Suzhou/Assembly/Line1/Press1"],
                       description="device-status:<device path>, trace:<identifier> or "
                                   "order:<order id> (the kinds this node provides)")
    expires: str = Field(min_length=2, max_length=40, examples=["7d"],
                         pattern=r"^(\d{1,6}[smhd]|\d{4}-\d{2}-\d{2}[T ].+)$",
                         description="A duration (7d, 12h, 30m) or an ISO 8601 time")
    tenant_id: int | None = Field(None, ge=1, le=2**31 - 1,
                                  description="The owning tenant (node-wide tokens only)")


class AnswerIn(BaseModel):
    tenant_id: int | None = Field(None, ge=1, le=2**31 - 1,
                                  description="The tenant that receives the share "
                                              "(node-wide tokens only)")


@router.post("/shares", response_model=Json, status_code=201,
             summary="Offer a partner enterprise the data of one scope until it expires",
             responses=responses(*AUTH_ERRORS, 400, 404))
async def create_share(request: Request, caller: Admin, body: ShareIn) -> Json:
    collab = _collab(request)
    tenant = await asyncio.to_thread(_tenant, request, caller, body.tenant_id)
    expires = parse_expiry(body.expires)
    share = await asyncio.to_thread(collab.owner.create, tenant, body.partner, body.scope,
                                    expires, _actor(caller))
    return share.json()


@router.get("/shares", response_model=list[Json],
            summary="The shares this enterprise offers (a tenant's own), newest first",
            responses=responses(*AUTH_ERRORS, 404))
async def list_shares(request: Request, caller: Admin) -> list[Json]:
    collab = _collab(request)
    return [s.json() for s in await asyncio.to_thread(collab.owner.list, caller.tenant_id)]


@router.post("/shares/{share_id}/revoke", response_model=Json,
             summary="End a share: no more updates, and the partner deletes what it holds",
             responses=responses(*AUTH_ERRORS, 404, 409))
async def revoke_share(request: Request, caller: Admin, share_id: ShareId) -> Json:
    collab = _collab(request)
    share = await asyncio.to_thread(collab.owner.revoke, caller.tenant_id, share_id,
                                    _actor(caller))
    return share.json()


@router.get("/shares/offers", response_model=list[Json],
            summary="Shares partner enterprises offer this one, waiting for an answer",
            responses=responses(*AUTH_ERRORS, 404))
async def list_offers(request: Request, caller: Admin) -> list[Json]:
    collab = _collab(request)
    return [r.json() for r in await asyncio.to_thread(collab.partner.offers)]


@router.post("/shares/offers/{owner}/{share_id}/accept", response_model=Json,
             summary="Accept an offer for a tenant: its viewers then see the data",
             responses=responses(*AUTH_ERRORS, 404, 409))
async def accept_offer(request: Request, caller: Admin, owner: Owner, share_id: ShareId,
                       body: AnswerIn) -> Json:
    return await _answer(request, caller, owner, share_id, body, accept=True)


@router.post("/shares/offers/{owner}/{share_id}/decline", response_model=Json,
             summary="Decline an offer", responses=responses(*AUTH_ERRORS, 404, 409))
async def decline_offer(request: Request, caller: Admin, owner: Owner, share_id: ShareId,
                        body: AnswerIn) -> Json:
    return await _answer(request, caller, owner, share_id, body, accept=False)


async def _answer(request: Request, caller: Caller, owner: str, share_id: str, body: AnswerIn,
                  *, accept: bool) -> Json:
    collab = _collab(request)
    tenant = await asyncio.to_thread(_tenant, request, caller, body.tenant_id)
    got = await asyncio.to_thread(collab.partner.answer, tenant, owner, share_id, accept,
                                  _actor(caller))
    return got.json()


@router.get("/shared", response_model=list[Json],
            summary="What partner enterprises share with this tenant now, with the last data",
            responses=responses(*AUTH_ERRORS, 404))
async def list_shared(request: Request, caller: Viewer) -> list[Json]:
    collab = _collab(request)
    return [r.json() for r in await asyncio.to_thread(collab.partner.shared, caller.tenant_id)]


@router.post("/shared/{owner}/{share_id}/end", response_model=Json,
             summary="End an accepted share: the data is deleted here, the owner stops",
             responses=responses(*AUTH_ERRORS, 404, 409))
async def end_shared(request: Request, caller: Admin, owner: Owner,
                     share_id: ShareId) -> Json:
    collab = _collab(request)
    got = await asyncio.to_thread(collab.partner.leave, caller.tenant_id, owner, share_id,
                                  _actor(caller))
    return got.json()


@router.get("/shared/audit", response_model=list[Json],
            summary="What was received from partners and when (kept after a share ends)",
            responses=responses(*AUTH_ERRORS, 404))
async def shared_audit(request: Request, caller: Admin) -> list[Json]:
    collab = _collab(request)
    return await asyncio.to_thread(collab.partner.audit, caller.tenant_id)
