"""What the owner's and the partner's sides share: message kinds, body checks, the audit."""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, insert

from millnet.collab.schema import collab_audit
from millnet.errors import InvalidInput
from millnet.protocols.federation import NODE_ID_RE

# Owner -> partner, and partner -> owner. Every body names the share (id, owner, partner).
# offer (owner's key) -> key (partner's key, sent by the partner's node at once) -> scope
# (sealed) -> accept or decline (the partner's admin) -> updates (sealed) ... -> revoke.
OFFER, SCOPE, UPDATE, REVOKE = "share.offer", "share.scope", "share.update", "share.revoke"
KEY, ACCEPT, DECLINE = "share.key", "share.accept", "share.decline"
TO_PARTNER = (OFFER, SCOPE, UPDATE, REVOKE)
TO_OWNER = (KEY, ACCEPT, DECLINE)
KINDS = TO_PARTNER + TO_OWNER

ID_RE = re.compile(r"^sh-[0-9a-f]{16}$")
MAX_DAYS = 366
_DURATION = re.compile(r"^(\d{1,6})([smhd])$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86_400}


def new_id() -> str:
    return f"sh-{secrets.token_hex(8)}"


def parse_expiry(text: str, now: datetime | None = None) -> datetime:
    """``7d``, ``12h``, ``30m``, ``90s`` from now, or an ISO 8601 time with an offset; in the
    future and at most a year ahead."""
    now = now or datetime.now(UTC)
    m = _DURATION.match(text.strip())
    if m:
        at = now + timedelta(seconds=int(m.group(1)) * _UNIT[m.group(2)])
    else:
        try:
            at = datetime.fromisoformat(text.strip())
        except ValueError:
            raise InvalidInput("expires is a duration (7d, 12h, 30m) or an ISO 8601 time",
                               "expires") from None
        if at.tzinfo is None:
            raise InvalidInput("an expiry time needs its UTC offset", "expires")
    if at <= now or at > now + timedelta(days=MAX_DAYS):
        raise InvalidInput("a share expires in the future, within a year", "expires")
    return at.astimezone(UTC)


def text_of(body: dict[str, Any], key: str, limit: int) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value or len(value) > limit:
        raise InvalidInput(f"{key} is a string of 1 to {limit} characters", key)
    return value


def node_of(body: dict[str, Any], key: str) -> str:
    value = text_of(body, key, 64)
    if not NODE_ID_RE.match(value):
        raise InvalidInput(f"{key} is a node id", key)
    return value


def share_id_of(body: dict[str, Any]) -> str:
    value = text_of(body, "id", 40)
    if not ID_RE.match(value):
        raise InvalidInput("id is a share id (sh- and 16 hex digits)", "id")
    return value


def int_of(body: dict[str, Any], key: str) -> int:
    value = body.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value < 2**62:
        raise InvalidInput(f"{key} is a positive integer", key)
    return value


def time_of(body: dict[str, Any], key: str) -> datetime:
    try:
        at = datetime.fromisoformat(text_of(body, key, 40))
    except ValueError:
        raise InvalidInput(f"{key} is an ISO 8601 time", key) from None
    if at.tzinfo is None:
        raise InvalidInput(f"{key} needs its UTC offset", key)
    return at.astimezone(UTC)


def audit(conn: Connection, side: str, share_id: str, owner: str, partner: str, event: str,
          actor: str, detail: str = "", at: datetime | None = None) -> None:
    conn.execute(insert(collab_audit).values(
        share_id=share_id, owner=owner, partner=partner, side=side, event=event,
        actor=actor[:200], at=at or datetime.now(UTC), detail=detail[:300]))


def iso(at: datetime | None) -> str | None:
    return None if at is None else at.astimezone(UTC).isoformat()
