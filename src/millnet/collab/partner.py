"""The partner's side of a share: offers it sees, its consent, the payloads it keeps while
the share is live, and their removal when the owner revokes or the share expires.

The partner keeps only the last payload of a live share. Revocation or expiry deletes it (the
row stays, without payload, as the audit that the data was had: when, until when, how many
updates). An update is applied only to an accepted, live share of the owner that sends it, in
order (``n``), and only when its box opens with the share's key.
"""

from __future__ import annotations

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
    int_of,
    iso,
    node_of,
    share_id_of,
    text_of,
    time_of,
)
from millnet.collab.owner import revoke_reason
from millnet.collab.schema import collab_audit
from millnet.collab.schema import collab_received as received
from millnet.db.engine import writer
from millnet.db.schema import AnyRow
from millnet.errors import Conflict, InvalidInput, NotFound, RejectedMessage

Send = Callable[[Connection, str, dict[str, Any]], None]


@dataclass(frozen=True, slots=True)
class Received:
    owner: str
    id: str
    scope: str
    expires_at: datetime
    status: str  # offered, active, declined, revoked, expired, ended (by this side)
    tenant_id: int | None
    payload: dict[str, Any] | None
    payload_at: datetime | None
    updates: int
    offered_at: datetime
    accepted_at: datetime | None
    ended_at: datetime | None
    fingerprint: str

    def json(self) -> dict[str, Any]:
        return {"owner": self.owner, "id": self.id, "scope": self.scope,
                "expires_at": iso(self.expires_at), "status": self.status,
                "tenant_id": self.tenant_id, "payload": self.payload,
                "payload_at": iso(self.payload_at), "updates": self.updates,
                "offered_at": iso(self.offered_at), "accepted_at": iso(self.accepted_at),
                "ended_at": iso(self.ended_at), "fingerprint": self.fingerprint}


def _received(row: AnyRow) -> Received:
    partner_key = crypto.public_of(row.secret) if row.secret is not None else None
    return Received(row.owner, row.id, f"{row.kind}:{row.target}", row.expires_at, row.status,
                    row.tenant_id, json.loads(row.payload) if row.payload else None,
                    row.payload_at, row.updates, row.offered_at, row.accepted_at, row.ended_at,
                    crypto.fingerprint(row.owner_key, partner_key))


class PartnerShares:
    """The shares partners offer this enterprise."""

    def __init__(self, engine: Engine, node_id: str, send: Send) -> None:
        self.engine, self.node_id, self._send = engine, node_id, send

    # -- what the API shows ---------------------------------------------------------------------
    def shared(self, tenant_id: int | None) -> list[Received]:
        """The live shares accepted (by ``tenant_id``'s admins; None: every tenant's), with
        their last payloads."""
        self.expire()
        query = select(received).where(received.c.status == "active")
        if tenant_id is not None:
            query = query.where(received.c.tenant_id == tenant_id)
        with self.engine.connect() as conn:
            return [_received(r) for r in conn.execute(query.order_by(received.c.owner,
                                                                      received.c.id))]

    def offers(self) -> list[Received]:
        """Offers waiting for an answer (what an admin may accept)."""
        self.expire()
        with self.engine.connect() as conn:
            return [_received(r) for r in conn.execute(
                select(received).where(received.c.status == "offered", received.c.kind != "")
                .order_by(received.c.offered_at))]

    def audit(self, tenant_id: int | None) -> list[dict[str, Any]]:
        """What this node had, from whom, and when (the partner side's audit), newest first;
        a tenant's admin sees the shares its tenant accepted."""
        query = select(collab_audit).where(collab_audit.c.side == "partner")
        if tenant_id is not None:
            mine = select(received.c.id).where(received.c.tenant_id == tenant_id)
            query = query.where(collab_audit.c.share_id.in_(mine))
        with self.engine.connect() as conn:
            return [{"share_id": r.share_id, "owner": r.owner, "event": r.event,
                     "actor": r.actor, "at": iso(r.at), "detail": r.detail}
                    for r in conn.execute(query.order_by(collab_audit.c.id.desc()).limit(1000))]

    # -- consent --------------------------------------------------------------------------------
    def answer(self, tenant_id: int, owner: str, share_id: str, accept: bool,
               actor: str) -> Received:
        """Accept an offer for ``tenant_id`` (whose admins then see it), or decline it."""
        with writer(self.engine).begin() as conn:
            row = self._row(conn, owner, share_id)
            if row.status != "offered":
                raise Conflict(f"share {share_id} of {owner} is {row.status}")
            if not row.kind:
                raise Conflict(f"share {share_id} of {owner}: its scope has not arrived yet")
            if row.expires_at <= datetime.now(UTC):
                raise Conflict(f"share {share_id} of {owner} has expired")
            body: dict[str, Any] = {"id": share_id, "owner": owner, "partner": self.node_id}
            now = datetime.now(UTC)
            if accept:
                conn.execute(update(received).where(received.c.owner == owner,
                                                    received.c.id == share_id).values(
                    status="active", tenant_id=tenant_id, accepted_at=now))
            else:
                conn.execute(update(received).where(received.c.owner == owner,
                                                    received.c.id == share_id).values(
                    status="declined", ended_at=now))
            audit(conn, "partner", share_id, owner, self.node_id,
                  "accepted" if accept else "declined", actor, f"tenant {tenant_id}")
            self._send(conn, ACCEPT if accept else DECLINE, body)
            return _received(self._row(conn, owner, share_id))

    def leave(self, tenant_id: int | None, owner: str, share_id: str, actor: str) -> Received:
        """End an accepted share from this side: the data is deleted here and the owner stops
        (told by ``share.decline``)."""
        with writer(self.engine).begin() as conn:
            row = self._row(conn, owner, share_id)
            if tenant_id is not None and row.tenant_id != tenant_id:
                raise NotFound(f"no share {share_id} of {owner}")
            if row.status != "active":
                raise Conflict(f"share {share_id} of {owner} is {row.status}")
            self._end(conn, row, "ended", actor)
            self._send(conn, DECLINE, {"id": share_id, "owner": owner,
                                       "partner": self.node_id})
            return _received(self._row(conn, owner, share_id))

    @staticmethod
    def _row(conn: Connection, owner: str, share_id: str) -> AnyRow:
        row = conn.execute(select(received).where(received.c.owner == owner,
                                                  received.c.id == share_id)).first()
        if row is None:
            raise NotFound(f"no share {share_id} of {owner}")
        return row

    # -- ending ---------------------------------------------------------------------------------
    def expire(self, now: datetime | None = None) -> int:
        """Delete the payloads of shares past their expiry (by this node's clock)."""
        now = now or datetime.now(UTC)
        live = received.c.status.in_(("offered", "active"))
        with self.engine.connect() as conn:
            if conn.execute(select(received.c.id).where(live, received.c.expires_at <= now)
                            .limit(1)).first() is None:
                return 0
        with writer(self.engine).begin() as conn:
            rows = conn.execute(select(received).where(live, received.c.expires_at <= now)).all()
            for row in rows:
                self._end(conn, row, "expired", "millnet")
        return len(rows)

    def _end(self, conn: Connection, row: AnyRow, status: str, actor: str) -> None:
        conn.execute(update(received).where(received.c.owner == row.owner,
                                            received.c.id == row.id).values(
            status=status, payload=None, ended_at=datetime.now(UTC)))
        audit(conn, "partner", row.id, row.owner, self.node_id, status, actor,
              f"held {row.updates} updates, the last of {iso(row.payload_at)}; deleted")

    # -- from the owner -------------------------------------------------------------------------
    def apply(self, conn: Connection, origin: str, kind: str, body: dict[str, Any]) -> None:
        """``share.offer``, ``share.update`` or ``share.revoke`` from ``origin``."""
        share_id = share_id_of(body)
        if node_of(body, "partner") != self.node_id:
            raise RejectedMessage("share_misrouted", f"share {share_id} is not for this node")
        if node_of(body, "owner") != origin:
            raise RejectedMessage("share_origin", f"{origin} speaks for another owner")
        row = conn.execute(select(received).where(received.c.owner == origin,
                                                  received.c.id == share_id)).first()
        if kind == OFFER:
            if row is None:
                self._offer(conn, origin, share_id, body)
            return
        if row is not None and kind == SCOPE:
            self._scope(conn, row, body)
            return
        if row is None:
            raise RejectedMessage("share_unknown", f"no share {share_id} of {origin} here")
        if kind == REVOKE:
            if row.status in ("offered", "active"):
                self._end(conn, row, revoke_reason(body), origin)
            return
        assert kind == UPDATE
        self._update(conn, row, body)

    def _offer(self, conn: Connection, origin: str, share_id: str, body: dict[str, Any]) -> None:
        """Kept (without its scope, which follows sealed), and this node's key for the share
        goes back at once: an answer of the node, not yet the admin's consent."""
        expires = time_of(body, "expires_at")
        key = crypto.key_from_b64(body.get("key"), "key")
        secret = crypto.new_secret()
        conn.execute(insert(received).values(
            owner=origin, id=share_id, kind="", target="", expires_at=expires,
            status="offered", owner_key=key, secret=secret, updates=0,
            offered_at=datetime.now(UTC)))
        self._send(conn, KEY, {"id": share_id, "owner": origin, "partner": self.node_id,
                               "key": crypto.b64(crypto.public_of(secret))})

    def _scope(self, conn: Connection, row: AnyRow, body: dict[str, Any]) -> None:
        if row.kind or row.status != "offered":
            return  # known already
        plain = crypto.open_box(self._key(row), row.id, row.owner, 0, body.get("sealed"))
        try:
            scope = json.loads(plain)
            kind, target = text_of(scope, "kind", 32), text_of(scope, "target", 512)
        except (ValueError, AttributeError):
            raise InvalidInput("the sealed scope is not {kind, target}", "sealed") from None
        conn.execute(update(received).where(received.c.owner == row.owner,
                                            received.c.id == row.id)
                     .values(kind=kind, target=target))
        audit(conn, "partner", row.id, row.owner, self.node_id, "offered", row.owner,
              f"{kind}:{target}"[:300])

    def _key(self, row: AnyRow) -> bytes:
        return crypto.share_key(row.secret, row.owner_key, row.id, row.owner, self.node_id)

    def _update(self, conn: Connection, row: AnyRow, body: dict[str, Any]) -> None:
        n = int_of(body, "n")
        if row.status != "active" or n <= row.updates:
            return  # not accepted, ended, or older than what is held: nothing to keep
        if row.expires_at <= datetime.now(UTC):
            self._end(conn, row, "expired", "millnet")
            return
        plain = crypto.open_box(self._key(row), row.id, row.owner, n, body.get("sealed"))
        try:
            payload = json.loads(plain)
        except ValueError:
            raise InvalidInput("the payload is not JSON", "sealed") from None
        if not isinstance(payload, dict):
            raise InvalidInput("the payload is a JSON object", "sealed")
        at_ms = payload.get("at_ms")
        at = (datetime.fromtimestamp(at_ms / 1000, UTC) if isinstance(at_ms, int | float)
              else datetime.now(UTC))
        conn.execute(update(received).where(received.c.owner == row.owner,
                                            received.c.id == row.id).values(
            payload=plain.decode(), payload_at=at, updates=n))
        if row.updates == 0:
            audit(conn, "partner", row.id, row.owner, self.node_id, "received", row.owner,
                  "first data")
