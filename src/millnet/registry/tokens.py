"""API bearer tokens: ``mn_<prefix>_<secret>``, stored as a SHA-256 hash plus the prefix.

The prefix (4 random bytes, 8 hex digits) is kept in clear: it is shown in token lists so people
can tell their tokens apart, and it narrows the lookup to a row or two. The secret is 32 bytes
from :mod:`secrets` (256 bits). Only ``sha256(plaintext)`` is stored, compared with
:func:`hmac.compare_digest`.

Why SHA-256 and not bcrypt/scrypt/argon2: slow password hashes exist to make guessing a
*low-entropy* secret from a stolen hash expensive. A 256-bit random token cannot be guessed at
any hash speed, so a slow hash would add no protection; it would only cost ~100 ms of CPU on
every API request (and hand attackers a cheap way to burn that CPU).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import datetime, timedelta

from sqlalchemy import Connection, insert, select, update

from millnet.db.schema import AnyRow
from millnet.errors import InvalidInput, NotFound
from millnet.registry.records import Principal, Role, TokenInfo
from millnet.registry.schema import api_tokens
from millnet.registry.tenants import require_tenant
from millnet.registry.validation import check_name

TOKEN_SCHEME = "mn"  # noqa: S105 (the public scheme tag, not a secret)
SECRET_BYTES = 32
# Recording every use would turn each authenticated read into a write; once a minute is enough.
LAST_USED_RESOLUTION = timedelta(minutes=1)
_TOKEN = re.compile(rf"{TOKEN_SCHEME}_([0-9a-f]{{8}})_[A-Za-z0-9_-]{{43}}")
_COLUMNS = (api_tokens.c.id, api_tokens.c.tenant_id, api_tokens.c.name, api_tokens.c.role,
            api_tokens.c.token_prefix, api_tokens.c.created_at, api_tokens.c.last_used_at,
            api_tokens.c.revoked_at)


def hash_token(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode()).hexdigest()


def new_token() -> tuple[str, str]:
    """A fresh (plaintext, prefix)."""
    prefix = secrets.token_hex(4)
    return f"{TOKEN_SCHEME}_{prefix}_{secrets.token_urlsafe(SECRET_BYTES)}", prefix


def check_role(role: object) -> Role:
    try:
        return Role(str(role))
    except ValueError:
        allowed = ", ".join(r.value for r in Role)
        raise InvalidInput(f"unknown role {role!r}; one of {allowed}", "role") from None


def _info(row: AnyRow) -> TokenInfo:
    return TokenInfo(
        row.id, row.tenant_id, row.name, Role(row.role), f"{TOKEN_SCHEME}_{row.token_prefix}",
        row.created_at, row.last_used_at, row.revoked_at,
    )


def create_token(
    conn: Connection, tenant_id: int | None, role: Role | str, name: str, now: datetime,
) -> tuple[str, TokenInfo]:
    checked_role = check_role(role)
    check_name(name, "name")
    if tenant_id is not None:
        require_tenant(conn, tenant_id)
    plaintext, prefix = new_token()
    token_id = conn.execute(insert(api_tokens).values(
        tenant_id=tenant_id, name=name, role=checked_role.value, token_hash=hash_token(plaintext),
        token_prefix=prefix, created_at=now,
    )).inserted_primary_key[0]  # type: ignore[index]
    info = TokenInfo(int(token_id), tenant_id, name, checked_role, f"{TOKEN_SCHEME}_{prefix}",
                     now)
    return plaintext, info


def find_token(conn: Connection, plaintext: object) -> tuple[Principal, datetime | None] | None:
    """The principal of a valid, unrevoked token and when it was last used; else None."""
    if not isinstance(plaintext, str):
        return None
    match = _TOKEN.fullmatch(plaintext)
    if match is None:
        return None
    digest = hash_token(plaintext)
    found: AnyRow | None = None
    for row in conn.execute(
        select(api_tokens.c.id, api_tokens.c.tenant_id, api_tokens.c.role,
               api_tokens.c.token_hash, api_tokens.c.last_used_at, api_tokens.c.revoked_at)
        .where(api_tokens.c.token_prefix == match.group(1))
    ):
        if hmac.compare_digest(row.token_hash, digest):
            found = row
    if found is None or found.revoked_at is not None:
        return None
    return Principal(int(found.id), found.tenant_id, Role(found.role)), found.last_used_at


def needs_touch(last_used_at: datetime | None, now: datetime) -> bool:
    return last_used_at is None or now - last_used_at >= LAST_USED_RESOLUTION


def touch(conn: Connection, token_id: int, now: datetime) -> None:
    conn.execute(update(api_tokens).where(api_tokens.c.id == token_id)
                 .values(last_used_at=now))


def get_token(conn: Connection, token_id: int) -> TokenInfo:
    row = conn.execute(select(*_COLUMNS).where(api_tokens.c.id == token_id)).one_or_none()
    if row is None:
        raise NotFound(f"token {token_id!r} not found")
    return _info(row)


def revoke_token(conn: Connection, token_id: int, now: datetime) -> TokenInfo:
    """Revoke; revoking again keeps the first revocation time."""
    conn.execute(update(api_tokens)
                 .where(api_tokens.c.id == token_id, api_tokens.c.revoked_at.is_(None))
                 .values(revoked_at=now))
    return get_token(conn, token_id)


def list_tokens(conn: Connection, tenant_id: int | None) -> list[TokenInfo]:
    where = (api_tokens.c.tenant_id.is_(None) if tenant_id is None
             else api_tokens.c.tenant_id == tenant_id)
    return [_info(r) for r in conn.execute(select(*_COLUMNS).where(where)
                                           .order_by(api_tokens.c.id))]
