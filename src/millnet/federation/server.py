"""The parent side of the links: the exchange service and its HTTP routes.

A child opens every exchange (``POST /api/v1/federation/exchange``); the parent never connects
to a child. The exchange and enrollment routes are authenticated by signature and token; the
administrative routes (tokens, children) by the dependency the composition passes in (the
platform API's ``require(Role.ADMIN)``; the caller must be node-wide). Without one they are
not mounted, and tokens are issued through the CLI.
"""

from __future__ import annotations

import base64
import logging
import threading
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import anyio.to_thread
import msgspec
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError

from millnet.db.engine import writer
from millnet.errors import (
    Conflict,
    InvalidInput,
    MillnetError,
    NotFound,
    PermissionDenied,
    RejectedMessage,
    StorageError,
    Unauthenticated,
)
from millnet.federation import envelope
from millnet.federation.children import Child, Children, origin_allowed
from millnet.federation.enroll import EnrollAnswer, EnrollRequest, accept, issue_token
from millnet.federation.identity import NodeIdentity
from millnet.federation.inbox import Inbox
from millnet.federation.outbox import Outbox
from millnet.federation.settings import FederationSection
from millnet.model.limits import ascii_digits
from millnet.protocols.federation import NODE_ID_PATTERN, VERSION, OutBatch, OutMessage, peek_sender

log = logging.getLogger("millnet.federation")
PREFIX = "/api/v1/federation"
_PRUNE_EVERY = 200  # exchanges between prunes of expired nonces


class ParentService:
    """Verifies, applies and answers children's exchanges (thread-safe; call off the loop)."""

    def __init__(self, engine: Engine, identity: NodeIdentity, role: str,
                 settings: FederationSection, children: Children, inbox: Inbox,
                 outbox_down: Callable[[str], Outbox],
                 on_enrolled: Callable[[Connection], None] | None = None) -> None:
        self._writer = writer(engine)
        self.identity = identity
        self.role = role
        self.settings = settings
        self.children = children
        self.inbox = inbox
        self.outbox_down = outbox_down
        self.on_enrolled = on_enrolled
        self.rejections: Counter[str] = Counter()
        self.exchanges = 0
        self.applied = 0
        self._lock = threading.Lock()

    def _key_of(self, sender: str) -> bytes | None:
        found = self.children.lookup(sender)
        return found[0] if found is not None else None

    def exchange(self, data: bytes) -> bytes:
        """The signed answer to one signed request; RejectedMessage (counted) otherwise."""
        try:
            return self._exchange(data)
        except RejectedMessage as exc:
            self.reject(peek_sender(data[64:]), exc.reason, str(exc))
            raise
        except DBAPIError as exc:  # busy, down, or a race on a nonce: the child retries
            raise StorageError(f"federation database: {exc.orig!s}") from exc

    def reject(self, sender: str, reason: str, detail: str) -> None:
        with self._lock:
            self.rejections[reason] += 1
        self.inbox.reject(sender, reason, detail)

    def _exchange(self, data: bytes) -> bytes:
        window_ms = int(self.settings.window_s * 1000)
        batch = envelope.open_sealed(data, me=self.identity.node_id, key_of=self._key_of,
                                     max_bytes=self.settings.max_request_bytes,
                                     window_ms=window_ms)
        found = self.children.lookup(batch.sender)
        assert found is not None  # open_sealed checked the sender is known
        peer = found[1]
        down = self.outbox_down(peer.node_id)
        with self._lock:
            self.exchanges += 1
            prune = self.exchanges % _PRUNE_EVERY == 1
        with self._writer.begin() as conn:
            envelope.record_nonce(conn, peer.node_id, batch.nonce, window_ms)
            if prune:
                envelope.prune_nonces(conn)
            result = self.inbox.apply(conn, peer.node_id, peer, batch.messages, origin_allowed)
            self.children.seen(conn, peer.node_id, batch.stats)
            down.ack(batch.ack, conn)
            waiting = down.read_pending(conn, self.settings.batch_max_messages,
                                        self.settings.batch_max_bytes, after=batch.ack)
        self.inbox.report(result)
        with self._lock:
            self.applied += result.applied
        answer = OutBatch(
            v=VERSION, sender=self.identity.node_id, recipient=peer.node_id,
            sent_at=envelope.now_ms(), nonce=envelope.new_nonce(), ack=result.applied_seq,
            messages=[OutMessage(p.seq, p.created_at_ms, p.kind, p.origin,
                                 msgspec.Raw(p.body)) for p in waiting],
            reply_to=batch.nonce)
        return envelope.seal(self.identity, answer)

    def enroll(self, request: EnrollRequest) -> EnrollAnswer:
        with self._writer.begin() as conn:
            node_id, _ = accept(conn, request)
            if self.on_enrolled is not None:
                self.on_enrolled(conn)
        self.children.forget(node_id)
        log.info("federation: enrolled child %s", node_id)
        return EnrollAnswer(node_id=self.identity.node_id, role=self.role,
                            public_key=base64.b64encode(self.identity.public_key_bytes).decode())



class TokenRequest(BaseModel):
    node_id: str = Field(pattern=NODE_ID_PATTERN)
    role: str = Field(pattern=r"^(enterprise|secondary)$")
    region: str = Field(pattern=r"^[0-9]{6}$", description="GB/T 2260 code")
    sector: str = Field(pattern=r"^[A-T]([0-9]{2,4})?$", description="GB/T 4754 code")
    prefix: str = Field(min_length=1, max_length=128, pattern=r"^[0-9A-Za-z]+(\.[0-9A-Za-z]+)*$")
    ttl_s: int | None = Field(default=None, ge=60, le=365 * 86_400)


class TokenAnswer(BaseModel):
    token: str
    node_id: str
    expires_in_s: int


class ChildView(BaseModel):
    node_id: str
    role: str
    region: str
    sector: str
    prefix: str
    public_key: str
    enrolled_at: datetime
    last_seen: datetime | None
    status: str
    applied_up: int
    rejected: int
    down_depth: int
    down_oldest_age_s: float
    up_depth: int
    up_oldest_age_s: float
    up_refused: int

    @classmethod
    def of(cls, child: Child) -> ChildView:
        fields = {name: getattr(child, name) for name in cls.model_fields if name != "public_key"}
        return cls(public_key=base64.b64encode(child.public_key).decode(), **fields)


def federation_router(service: ParentService, engine: Engine,
                      admin: Callable[..., Any] | None = None) -> APIRouter:
    """The routes under ``/api/v1/federation`` (the prefix is included)."""
    router = APIRouter(prefix=PREFIX, tags=["federation"])
    limit = service.settings.max_request_bytes

    @router.post("/exchange", include_in_schema=False)
    async def exchange(request: Request) -> Response:
        try:
            data = await _read_limited(request, limit)
        except RejectedMessage as exc:
            service.reject("", exc.reason, str(exc))
            return _refused(exc)
        try:
            answer = await anyio.to_thread.run_sync(service.exchange, data)
        except RejectedMessage as exc:
            return _refused(exc)
        except StorageError as exc:
            log.warning("federation exchange failed: %s", exc)
            return JSONResponse({"error": "storage_unavailable", "detail": str(exc)},
                                status_code=503, headers={"Retry-After": "1"})
        return Response(answer, media_type="application/octet-stream")

    @router.post("/enroll", response_model=EnrollAnswer)
    async def enroll(body: EnrollRequest) -> EnrollAnswer:
        return await anyio.to_thread.run_sync(service.enroll, body)

    if admin is not None:
        _admin_routes(router, service, engine, admin)
    return router


def _admin_routes(router: APIRouter, service: ParentService, engine: Engine,
                  admin: Callable[..., Any]) -> None:
    # Dependencies as defaults, not Annotated: with postponed annotations FastAPI resolves
    # annotation strings in the module's globals, where these closures are not.
    def node_wide(caller: Any = Depends(admin)) -> Any:  # noqa: B008
        if not getattr(caller, "node_wide", False):
            raise PermissionDenied("enrollment tokens need a node-wide admin token")
        return caller

    @router.post("/tokens", response_model=TokenAnswer, status_code=201)
    async def tokens(body: TokenRequest, _: Any = Depends(node_wide)) -> TokenAnswer:  # noqa: B008
        ttl = body.ttl_s or service.settings.token_ttl_s
        token = await anyio.to_thread.run_sync(
            lambda: issue_token(engine, body.node_id, body.role, body.region, body.sector,
                                body.prefix, ttl))
        return TokenAnswer(token=token, node_id=body.node_id, expires_in_s=ttl)

    @router.get("/children", response_model=list[ChildView])
    async def children(_: Any = Depends(node_wide)) -> list[ChildView]:  # noqa: B008
        found = await anyio.to_thread.run_sync(service.children.all)
        return [ChildView.of(c) for c in found]

    @router.get("/children/{node_id}", response_model=ChildView)
    async def child(node_id: str, _: Any = Depends(node_wide)) -> ChildView:  # noqa: B008
        return ChildView.of(await anyio.to_thread.run_sync(service.children.get, node_id))


def _refused(exc: RejectedMessage) -> Response:
    return JSONResponse({"error": exc.reason, "detail": str(exc)},
                        status_code=envelope.STATUS.get(exc.reason, 400))


async def _read_limited(request: Request, limit: int) -> bytes:
    """The request body, refused as ``oversized`` as soon as it passes ``limit``."""
    declared = request.headers.get("content-length", "")
    if ascii_digits(declared, 18) and int(declared) > limit:
        raise RejectedMessage("oversized", f"{declared} bytes, the limit is {limit}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RejectedMessage("oversized", f"more than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


_STATUS: list[tuple[type[MillnetError], int, str]] = [
    (Unauthenticated, 401, "unauthenticated"), (PermissionDenied, 403, "permission_denied"),
    (NotFound, 404, "not_found"), (Conflict, 409, "conflict"),
    (InvalidInput, 400, "invalid_input"), (StorageError, 503, "storage_unavailable"),
]


async def _on_error(request: Request, exc: Exception) -> Response:
    for kind, status, code in _STATUS:
        if isinstance(exc, kind):
            return JSONResponse({"error": code, "detail": str(exc)}, status_code=status)
    return JSONResponse({"error": "internal_error", "detail": "internal error"}, status_code=500)


def federation_app(router: APIRouter) -> FastAPI:
    """A small app serving only the federation routes (a national node runs no platform API)."""
    app = FastAPI(title="millnet federation", openapi_url=None, docs_url=None, redoc_url=None)
    app.add_exception_handler(MillnetError, _on_error)
    app.include_router(router)
    app.get(PREFIX + "/health", include_in_schema=False)(_health)
    return app


async def _health() -> dict[str, str]:
    return {"status": "ok", "at": datetime.now(UTC).isoformat()}
