"""Enrollment: one-time tokens issued by a parent's admin, redeemed by a child.

The token (``mnf_`` and 32 random bytes, URL-safe) is shown once; the parent keeps its SHA-256,
what the child is to be (name, role, region, sector, identifier prefix) and an expiry. The child
sends the token, its node id and public key, a proof that it holds the private key (a signature
over the token and its id) and where its upward outbox stands (so the parent skips nothing and
applies nothing twice when a node enrolls again). The parent consumes the token in the same
transaction that stores the child, and answers with its own id, role and public key, which the
child pins: a later enrollment answered by a different key is refused.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
from pydantic import BaseModel, Field
from sqlalchemy import Connection, Engine, insert, select, update

from millnet.db.engine import writer
from millnet.errors import (
    Conflict,
    InvalidInput,
    PermissionDenied,
    ProtocolError,
    Unauthenticated,
)
from millnet.federation.identity import NodeIdentity, check_node_id, verify
from millnet.federation.inbox import Inbox
from millnet.federation.outbox import ensure_state
from millnet.federation.regions import region_code, sector_code
from millnet.federation.schema import UP, federation_children, federation_parent
from millnet.federation.schema import federation_outbox as box
from millnet.federation.schema import federation_outbox_state as state
from millnet.federation.schema import federation_tokens as tokens
from millnet.protocols.federation import NODE_ID_PATTERN

TOKEN_PREFIX = "mnf_"  # noqa: S105 - a label, not a secret
ROLES = ("enterprise", "secondary")
_PREFIX_PATTERN = r"^[0-9A-Za-z]+(\.[0-9A-Za-z]+)*$"


class EnrollRequest(BaseModel):
    token: str = Field(min_length=8, max_length=128)
    node_id: str = Field(pattern=NODE_ID_PATTERN)
    public_key: str = Field(min_length=40, max_length=48, description="base64, 32 bytes")
    proof: str = Field(min_length=80, max_length=96, description="base64 Ed25519 signature")
    next_seq: int = Field(default=1, ge=1, le=2**62)


class EnrollAnswer(BaseModel):
    node_id: str
    role: str
    public_key: str


@dataclass(frozen=True, slots=True)
class ParentPin:
    node_id: str
    role: str
    public_key: bytes
    url: str


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


def proof_data(token: str, node_id: str) -> bytes:
    return b"millnet-enroll\0" + token.encode("utf-8", "surrogatepass") + b"\0" + node_id.encode()


def issue_token(engine: Engine, node_id: str, role: str, region: str, sector: str,
                prefix: str, ttl_s: int) -> str:
    """A new one-time enrollment token for the child ``node_id`` (shown once: only its hash is
    kept). Validates the child's description (InvalidInput naming the field)."""
    check_node_id(node_id)
    if role not in ROLES:
        raise InvalidInput("role is enterprise or secondary", "role")
    if not re.fullmatch(r"[0-9]{6}", region):
        raise InvalidInput("a GB/T 2260 region code has six digits", "region")
    region, sector = region_code(region), _sector(sector)
    if len(prefix) > 128 or not re.match(_PREFIX_PATTERN, prefix):
        raise InvalidInput("an identifier prefix is dot-separated letters and digits", "prefix")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    with writer(engine).begin() as conn:
        conn.execute(insert(tokens).values(
            token_hash=token_hash(token), node_id=node_id, role=role, region=region,
            sector=sector, prefix=prefix, created_at=now,
            expires_at=now + timedelta(seconds=ttl_s)))
    return token


def _sector(text: str) -> str:
    """A GB/T 4754 code as given (a letter A-T, optionally 2-4 digits), validated."""
    if not re.fullmatch(r"[A-T]([0-9]{2,4})?", text or ""):
        raise InvalidInput("a GB/T 4754 code is a letter A-T and optionally 2-4 digits",
                           "sector")
    sector_code(text)
    return text


def accept(conn: Connection, request: EnrollRequest) -> tuple[str, bytes]:
    """Parent side, in a write transaction: check and consume the token, store the child.
    Returns the child's node id and public key."""
    key = _b64(request.public_key, 32, "public_key")
    proof = _b64(request.proof, 64, "proof")
    if not verify(key, proof, proof_data(request.token, request.node_id)):
        raise Unauthenticated("the proof is not signed by the given key")
    now = datetime.now(UTC)
    row = conn.execute(select(tokens).where(tokens.c.token_hash == token_hash(request.token))
                       .with_for_update()).first()
    if row is None:
        raise Unauthenticated("unknown enrollment token")
    if row.used_at is not None:
        raise Conflict("this enrollment token was already used")
    if row.expires_at <= now:
        raise Unauthenticated("this enrollment token has expired")
    if row.node_id != request.node_id:
        raise PermissionDenied(f"this token enrolls {row.node_id!r}, not {request.node_id!r}")
    consumed = conn.execute(update(tokens).where(tokens.c.id == row.id,
                                                 tokens.c.used_at.is_(None))
                            .values(used_at=now)).rowcount
    if consumed != 1:
        raise Conflict("this enrollment token was already used")
    if conn.execute(select(federation_children.c.node_id).where(
            federation_children.c.node_id == request.node_id)).first() is not None:
        raise Conflict(f"{request.node_id!r} is enrolled already: remove it first")
    conn.execute(insert(federation_children).values(
        node_id=row.node_id, role=row.role, region=row.region, sector=row.sector,
        prefix=row.prefix, public_key=key, enrolled_at=now, child_depth=0, child_bytes=0,
        child_oldest_age_ms=0, child_refused=0))
    Inbox.reset(conn, row.node_id, request.next_seq - 1)
    ensure_state(conn, row.node_id)
    return row.node_id, key


def _b64(text: str, size: int, field: str) -> bytes:
    try:
        raw = base64.b64decode(text, validate=True)
    except ValueError as exc:
        raise InvalidInput("not base64", field) from exc
    if len(raw) != size:
        raise InvalidInput(f"must be {size} bytes", field)
    return raw


def pinned_parent(conn: Connection) -> ParentPin | None:
    row = conn.execute(select(federation_parent)).first()
    if row is None:
        return None
    return ParentPin(row.node_id, row.role, bytes(row.public_key), row.url)


def enroll(parent_url: str, token: str, identity: NodeIdentity, engine: Engine, *,
           timeout_s: float = 30.0, transport: httpx.BaseTransport | None = None) -> ParentPin:
    """Child side: redeem ``token`` at ``parent_url`` and pin the parent's key."""
    with engine.begin() as conn:
        oldest = _next_up_seq(conn)
    request = EnrollRequest(
        token=token, node_id=identity.node_id,
        public_key=base64.b64encode(identity.public_key_bytes).decode(),
        proof=base64.b64encode(identity.sign(proof_data(token, identity.node_id))).decode(),
        next_seq=oldest)
    url = parent_url.rstrip("/") + "/api/v1/federation/enroll"
    with httpx.Client(timeout=timeout_s, transport=transport) as client:
        try:
            response = client.post(url, json=request.model_dump())
        except httpx.HTTPError as exc:
            raise ProtocolError(f"cannot reach {url}: {exc}") from exc
    if response.status_code != 200:
        raise _refusal(response)
    try:
        answer = EnrollAnswer.model_validate_json(response.content)
    except ValueError as exc:
        raise ProtocolError(f"the parent's answer is not an enrollment answer: {exc}") from exc
    pin = ParentPin(check_node_id(answer.node_id), answer.role,
                    _b64(answer.public_key, 32, "public_key"), parent_url.rstrip("/"))
    _pin(engine, pin)
    return pin


def _next_up_seq(conn: Connection) -> int:
    oldest = conn.execute(select(box.c.seq).where(box.c.peer == UP)
                          .order_by(box.c.seq).limit(1)).scalar()
    if oldest is not None:
        return int(oldest)
    last = conn.execute(select(state.c.last_seq).where(state.c.peer == UP)).scalar()
    return int(last or 0) + 1


def _pin(engine: Engine, pin: ParentPin) -> None:
    with writer(engine).begin() as conn:
        current = pinned_parent(conn)
        if current is not None and current.public_key != pin.public_key:
            raise Conflict(f"the parent answered with a key that differs from the one pinned "
                           f"for {current.node_id}: refusing it")
        if current is not None:
            conn.execute(update(federation_parent).values(url=pin.url, role=pin.role,
                                                          node_id=pin.node_id))
        else:
            conn.execute(insert(federation_parent).values(
                node_id=pin.node_id, role=pin.role, public_key=pin.public_key, url=pin.url,
                enrolled_at=datetime.now(UTC)))
        # A new enrollment starts the downward stream afresh (the parent's outbox for a
        # newly enrolled child starts at seq 1).
        Inbox.reset(conn, UP, 0)


def _refusal(response: httpx.Response) -> Exception:
    try:
        detail = str(response.json().get("detail", response.text))
    except ValueError:
        detail = response.text[:200]
    if response.status_code == 409:
        return Conflict(f"enrollment refused: {detail}")
    if response.status_code == 403:
        return PermissionDenied(f"enrollment refused: {detail}")
    if response.status_code in (400, 422):
        return InvalidInput(f"enrollment refused: {detail}")
    if response.status_code == 401:
        return Unauthenticated(f"enrollment refused: {detail}")
    return ProtocolError(f"enrollment failed with HTTP {response.status_code}: {detail}")
