"""The owner's side of a share: offer, accept or decline from the partner, push, revoke.

Every change and the message that tells the partner commit together (``send`` enqueues on the
upward outbox in the caller's transaction). A push round builds each live share's payload with
its kind's provider, and sends it sealed for the partner only when it changed since the last
push; expired shares are ended on the way (the partner ends them by the clock too).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, update

from millnet.collab import crypto
from millnet.collab.common import (
    ACCEPT,
    DECLINE,
    KEY,
    OFFER,
    REVOKE,
    SCOPE,
    UPDATE,
    audit,
    iso,
    new_id,
    node_of,
    share_id_of,
)
from millnet.collab.providers import Provider, ProviderFactory, Sources, parse_scope
from millnet.collab.schema import collab_shares as shares
from millnet.db.engine import writer
from millnet.db.schema import AnyRow
from millnet.errors import Conflict, InvalidInput, NotFound, RejectedMessage

PAYLOAD_MAX = 256 * 1024
#: ``send(conn, kind, body)``: enqueue toward the parent in ``conn``'s transaction.
Send = Callable[[Connection, str, dict[str, Any]], None]


@dataclass(frozen=True, slots=True)
class Offered:
    id: str
    tenant_id: int
    partner: str
    scope: str
    expires_at: datetime
    status: str  # offered, active, declined, revoked, expired
    created_by: str
    created_at: datetime
    ended_at: datetime | None
    updates: int
    pushed_at: datetime | None
    fingerprint: str

    def json(self) -> dict[str, Any]:
        return {"id": self.id, "tenant_id": self.tenant_id, "partner": self.partner,
                "scope": self.scope, "expires_at": iso(self.expires_at), "status": self.status,
                "created_by": self.created_by, "created_at": iso(self.created_at),
                "ended_at": iso(self.ended_at), "updates": self.updates,
                "pushed_at": iso(self.pushed_at), "fingerprint": self.fingerprint}


def _offered(row: AnyRow) -> Offered:
    return Offered(row.id, row.tenant_id, row.partner, f"{row.kind}:{row.target}",
                   row.expires_at, row.status, row.created_by, row.created_at, row.ended_at,
                   row.updates, row.pushed_at,
                   crypto.fingerprint(crypto.public_of(row.secret), row.partner_key))


class OwnerShares:
    """The shares this enterprise offers (its database, its node id, the way up)."""

    def __init__(self, engine: Engine, node_id: str, send: Send,
                 factories: dict[str, ProviderFactory]) -> None:
        self.engine, self.node_id, self._send = engine, node_id, send
        self._factories = factories
        self._providers: dict[str, Provider] = {}

    def attach(self, sources: Sources) -> None:
        """The platform's stores, which the providers read (set once the platform is built)."""
        self._providers = {kind: f(sources) for kind, f in self._factories.items()}

    def _provider(self, kind: str) -> Provider:
        if kind not in self._providers:
            raise InvalidInput(f"no provider of {kind!r} shares on this node", "scope")
        return self._providers[kind]

    # -- the owner's admin ----------------------------------------------------------------------
    def create(self, tenant_id: int, partner: str, scope: str, expires_at: datetime,
               actor: str) -> Offered:
        node_of({"partner": partner}, "partner")
        if partner == self.node_id:
            raise InvalidInput("an enterprise does not share with itself", "partner")
        kind, target = parse_scope(scope)
        self._provider(kind)(tenant_id, target)  # NotFound: nothing to share
        secret = crypto.new_secret()
        share_id, now = new_id(), datetime.now(UTC)
        with writer(self.engine).begin() as conn:
            conn.execute(insert(shares).values(
                id=share_id, tenant_id=tenant_id, partner=partner, kind=kind, target=target,
                expires_at=expires_at, status="offered", created_by=actor[:200], created_at=now,
                secret=secret, updates=0))
            audit(conn, "owner", share_id, self.node_id, partner, "offered", actor, scope)
            # What the nodes between see: who offers whom a share, until when. The scope goes
            # sealed once the partner's node has answered with its key (apply_answer).
            self._send(conn, OFFER, {
                "id": share_id, "owner": self.node_id, "partner": partner,
                "expires_at": expires_at.isoformat(),
                "key": crypto.b64(crypto.public_of(secret))})
            row = conn.execute(select(shares).where(shares.c.id == share_id)).one()
        return _offered(row)

    def list(self, tenant_id: int | None) -> list[Offered]:
        self.expire()
        query = select(shares).order_by(shares.c.created_at.desc())
        if tenant_id is not None:
            query = query.where(shares.c.tenant_id == tenant_id)
        with self.engine.connect() as conn:
            return [_offered(r) for r in conn.execute(query)]

    def get(self, tenant_id: int | None, share_id: str) -> Offered:
        for s in self.list(tenant_id):
            if s.id == share_id:
                return s
        raise NotFound(f"no share {share_id}")

    def revoke(self, tenant_id: int | None, share_id: str, actor: str) -> Offered:
        with writer(self.engine).begin() as conn:
            row = conn.execute(select(shares).where(shares.c.id == share_id)).first()
            if row is None or (tenant_id is not None and row.tenant_id != tenant_id):
                raise NotFound(f"no share {share_id}")
            if row.status not in ("offered", "active"):
                raise Conflict(f"share {share_id} is {row.status} already")
            self._end(conn, row, "revoked", actor)
            row = conn.execute(select(shares).where(shares.c.id == share_id)).one()
        return _offered(row)

    def _end(self, conn: Connection, row: AnyRow, status: str, actor: str) -> None:
        now = datetime.now(UTC)
        conn.execute(update(shares).where(shares.c.id == row.id)
                     .values(status=status, ended_at=now))
        audit(conn, "owner", row.id, self.node_id, row.partner, status, actor,
              f"after {row.updates} updates")
        self._send(conn, REVOKE, {"id": row.id, "owner": self.node_id, "partner": row.partner,
                                  "reason": status})

    def expire(self, now: datetime | None = None) -> int:
        """End the live shares past their expiry (the partner is told, and hides them by the
        clock anyway)."""
        now = now or datetime.now(UTC)
        live = shares.c.status.in_(("offered", "active"))
        with self.engine.connect() as conn:
            if conn.execute(select(shares.c.id).where(live, shares.c.expires_at <= now)
                            .limit(1)).first() is None:
                return 0
        with writer(self.engine).begin() as conn:
            rows = conn.execute(select(shares).where(live, shares.c.expires_at <= now)).all()
            for row in rows:
                self._end(conn, row, "expired", "millnet")
        return len(rows)

    # -- from the partner -----------------------------------------------------------------------
    def apply_answer(self, conn: Connection, origin: str, kind: str,
                     body: dict[str, Any]) -> None:
        """``share.key``, ``share.accept`` or ``share.decline`` from the partner
        (``origin``)."""
        share_id = share_id_of(body)
        if node_of(body, "owner") != self.node_id:
            raise RejectedMessage("share_misrouted", f"share {share_id} is not this node's")
        row = conn.execute(select(shares).where(shares.c.id == share_id)).first()
        if row is None or row.partner != origin or node_of(body, "partner") != origin:
            raise RejectedMessage("share_unknown", f"{origin} has no share {share_id} here")
        if kind == DECLINE and row.status == "active":  # the partner ends its consent
            conn.execute(update(shares).where(shares.c.id == share_id)
                         .values(status="declined", ended_at=datetime.now(UTC)))
            audit(conn, "owner", share_id, self.node_id, origin, "declined", origin,
                  f"ended by the partner after {row.updates} updates")
            return
        if row.status != "offered":
            return  # answered already, or ended: nothing changes
        if kind == KEY:
            if row.partner_key is None:
                self._scope(conn, row, crypto.key_from_b64(body.get("key"), "key"))
            return
        if row.partner_key is None:
            raise RejectedMessage("share_early", f"{origin} answered {share_id} before its key")
        if kind == DECLINE:
            conn.execute(update(shares).where(shares.c.id == share_id)
                         .values(status="declined", ended_at=datetime.now(UTC)))
            audit(conn, "owner", share_id, self.node_id, origin, "declined", origin)
            return
        assert kind == ACCEPT
        conn.execute(update(shares).where(shares.c.id == share_id).values(status="active"))
        audit(conn, "owner", share_id, self.node_id, origin, "accepted", origin)

    def _scope(self, conn: Connection, row: AnyRow, partner_key: bytes) -> None:
        """The partner's key is in: the scope goes to it sealed (box number 0)."""
        conn.execute(update(shares).where(shares.c.id == row.id)
                     .values(partner_key=partner_key))
        key = crypto.share_key(row.secret, partner_key, row.id, self.node_id, row.partner)
        plain = json.dumps({"kind": row.kind, "target": row.target}).encode()
        self._send(conn, SCOPE, {"id": row.id, "owner": self.node_id, "partner": row.partner,
                                 "sealed": crypto.seal(key, row.id, self.node_id, 0, plain)})

    # -- pushing --------------------------------------------------------------------------------
    def push(self) -> int:
        """One round: every live share whose payload changed goes to its partner, sealed.
        Blocking (providers read the stores): run it in a thread."""
        self.expire()
        now = datetime.now(UTC)
        with self.engine.connect() as conn:
            rows = conn.execute(select(shares).where(shares.c.status == "active",
                                                     shares.c.expires_at > now)).all()
        sent = 0
        for row in rows:
            try:
                payload = self._provider(row.kind)(row.tenant_id, row.target)
            except (NotFound, InvalidInput) as exc:
                payload = {"error": str(exc)[:200]}  # the target is gone: the partner sees so
            plain = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
            if len(plain) > PAYLOAD_MAX:  # a window on a target, not a bulk transfer
                plain = json.dumps({"error": f"the payload exceeds {PAYLOAD_MAX} bytes"}).encode()
            digest = hashlib.sha256(plain).hexdigest()
            if digest == row.pushed_digest:
                continue
            n = row.updates + 1
            key = crypto.share_key(row.secret, row.partner_key, row.id, self.node_id,
                                   row.partner)
            body = {"id": row.id, "owner": self.node_id, "partner": row.partner, "n": n,
                    "sealed": crypto.seal(key, row.id, self.node_id, n, plain)}
            with writer(self.engine).begin() as conn:
                done = conn.execute(update(shares).where(
                    shares.c.id == row.id, shares.c.status == "active",
                    shares.c.updates == row.updates).values(
                    updates=n, pushed_digest=digest, pushed_at=now)).rowcount
                if done:  # not revoked meanwhile, nor pushed by another round
                    self._send(conn, UPDATE, body)
                    sent += 1
        return sent


def revoke_reason(body: dict[str, Any]) -> str:
    reason = body.get("reason", "revoked")
    return reason if reason in ("revoked", "expired") else "revoked"
