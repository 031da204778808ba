"""Field sources added through the API, and device tokens (issue 11), in the registry database.

A stored source is its spec as JSON, validated again by the node on every start (a spec that no
longer validates is reported, never deleted). Device tokens (``mnd_<prefix>_<secret>``) are
bound to one tenant and optionally one device path; as API tokens (:mod:`.tokens`), only the
SHA-256 of the token is stored and compared in constant time.
"""

from __future__ import annotations

import hmac
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

from sqlalchemy import Connection, delete, insert, select, update

from millnet.db.schema import AnyRow
from millnet.errors import Conflict, NotFound
from millnet.registry.repository import Registry
from millnet.registry.schema import device_tokens, field_sources
from millnet.registry.tenants import require_tenant
from millnet.registry.tokens import SECRET_BYTES, hash_token
from millnet.registry.validation import check_name

T = TypeVar("T")
DEVICE_TOKEN_SCHEME = "mnd"  # noqa: S105 (the public scheme tag, not a secret)
_DEVICE_TOKEN = re.compile(rf"{DEVICE_TOKEN_SCHEME}_([0-9a-f]{{8}})_[A-Za-z0-9_-]{{43}}")


@dataclass(frozen=True, slots=True)
class StoredSource:
    name: str
    kind: str
    spec_json: str
    tenant_id: int
    created_at: datetime
    created_by: int | None


@dataclass(frozen=True, slots=True)
class DeviceTokenInfo:
    id: int
    tenant_id: int
    name: str
    device: str | None  # site/area/line/device, or None: any device of the tenant
    prefix: str
    created_at: datetime
    revoked_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class DevicePrincipal:
    """Who a device token authenticates."""

    token_id: int
    tenant_id: int
    device: str | None


def _source(row: AnyRow) -> StoredSource:
    return StoredSource(row.name, row.kind, row.spec, row.tenant_id, row.created_at,
                        row.created_by)


def _device_token(row: AnyRow) -> DeviceTokenInfo:
    return DeviceTokenInfo(row.id, row.tenant_id, row.name, row.device,
                           f"{DEVICE_TOKEN_SCHEME}_{row.token_prefix}", row.created_at,
                           row.revoked_at)


class SourceStore:
    """The ``field_sources`` and ``device_tokens`` tables, over the registry's engine."""

    def __init__(self, registry: Registry) -> None:
        self._registry = registry

    def _run(self, work: Callable[[Connection], T], *, write: bool = False) -> T:
        """One transaction on the registry's engine, its errors mapped as the registry maps
        them (Conflict, StorageError)."""
        return self._registry._run(work, write=write)

    # Field sources

    def add_source(self, name: str, kind: str, spec_json: str, tenant_id: int,
                   created_by: int | None) -> StoredSource:
        now = datetime.now(UTC)

        def add(conn: Connection) -> StoredSource:
            require_tenant(conn, tenant_id)
            if conn.execute(select(field_sources.c.id)
                            .where(field_sources.c.name == name)).first() is not None:
                raise Conflict(f"source {name!r} exists")
            conn.execute(insert(field_sources).values(
                name=name, kind=kind, spec=spec_json, tenant_id=tenant_id, created_at=now,
                created_by=created_by))
            return StoredSource(name, kind, spec_json, tenant_id, now, created_by)

        return self._run(add, write=True)

    def remove_source(self, name: str) -> None:
        def remove(conn: Connection) -> None:
            if conn.execute(delete(field_sources)
                            .where(field_sources.c.name == name)).rowcount == 0:
                raise NotFound(f"source {name!r} not found")

        self._run(remove, write=True)

    def list_sources(self) -> list[StoredSource]:
        return self._run(lambda c: [_source(r) for r in c.execute(
            select(field_sources).order_by(field_sources.c.id))])

    # Device tokens

    def create_device_token(self, tenant_id: int, name: str, device: str | None,
                            created_by: int | None) -> tuple[str, DeviceTokenInfo]:
        """A new device token; the plaintext is returned only here."""
        check_name(name, "name")
        prefix = secrets.token_hex(4)
        plaintext = f"{DEVICE_TOKEN_SCHEME}_{prefix}_{secrets.token_urlsafe(SECRET_BYTES)}"
        now = datetime.now(UTC)

        def create(conn: Connection) -> DeviceTokenInfo:
            require_tenant(conn, tenant_id)
            token_id = conn.execute(insert(device_tokens).values(
                tenant_id=tenant_id, name=name, device=device, token_hash=hash_token(plaintext),
                token_prefix=prefix, created_at=now, created_by=created_by,
            )).inserted_primary_key[0]  # type: ignore[index]
            return DeviceTokenInfo(int(token_id), tenant_id, name, device,
                                   f"{DEVICE_TOKEN_SCHEME}_{prefix}", now)

        return plaintext, self._run(create, write=True)

    def verify_device_token(self, plaintext: str) -> DevicePrincipal | None:
        """Who ``plaintext`` authenticates; None for unknown, malformed or revoked tokens."""
        match = _DEVICE_TOKEN.fullmatch(plaintext)
        if match is None:
            return None
        digest = hash_token(plaintext)

        def find(conn: Connection) -> DevicePrincipal | None:
            found = None
            for row in conn.execute(select(device_tokens).where(
                    device_tokens.c.token_prefix == match.group(1))):
                if hmac.compare_digest(row.token_hash, digest):
                    found = row
            if found is None or found.revoked_at is not None:
                return None
            return DevicePrincipal(found.id, found.tenant_id, found.device)

        return self._run(find)

    def list_device_tokens(self, tenant_id: int) -> list[DeviceTokenInfo]:
        return self._run(lambda c: [_device_token(r) for r in c.execute(
            select(device_tokens).where(device_tokens.c.tenant_id == tenant_id)
            .order_by(device_tokens.c.id))])

    def get_device_token(self, token_id: int) -> DeviceTokenInfo:
        row = self._run(lambda c: c.execute(
            select(device_tokens).where(device_tokens.c.id == token_id)).one_or_none())
        if row is None:
            raise NotFound(f"device token {token_id} not found")
        return _device_token(row)

    def revoke_device_token(self, token_id: int) -> None:
        now = datetime.now(UTC)
        self._run(lambda c: c.execute(
            update(device_tokens).where(device_tokens.c.id == token_id,
                                        device_tokens.c.revoked_at.is_(None))
            .values(revoked_at=now)), write=True)
