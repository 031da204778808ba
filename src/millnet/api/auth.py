"""Bearer-token authentication and role checks.

A token belongs to one tenant (or, with ``tenant_id`` None, to the whole node) and has one role:

* ``viewer`` reads;
* ``operator`` reads and (later) writes commands and acknowledges alarms;
* ``admin`` also manages the tenant's tokens and settings.

A node-wide admin creates tenants and acts on any tenant. Tokens are verified by the registry,
which keeps only their hashes; verified tokens are cached here for a few seconds under the
SHA-256 of the token (never the token itself), and the cache is emptied whenever a token is
revoked through this API. Tokens never reach a log line.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from millnet.errors import PermissionDenied, Unauthenticated
from millnet.registry import Principal, Role

_RANK = {Role.VIEWER: 0, Role.OPERATOR: 1, Role.ADMIN: 2}
#: ``on_failure(source address, reason, token fingerprint)``: reason ``invalid`` or ``revoked``
#: (a token forgotten by a revocation through this API); the fingerprint is a keyed hash prefix.
FailureHook = Callable[[str, str, str], None]


def bearer_token(authorization: str | None) -> str:
    """The token of an ``Authorization: Bearer <token>`` header value; 401 otherwise."""
    if not authorization:
        raise Unauthenticated("missing bearer token")
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthenticated("expected 'Authorization: Bearer <token>'")
    return token


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


@dataclass(frozen=True, slots=True)
class Caller:
    """The authenticated principal of one request."""

    token_id: int
    tenant_id: int | None  # None: node-wide
    role: Role

    @property
    def node_wide(self) -> bool:
        return self.tenant_id is None

    def at_least(self, role: Role) -> bool:
        return _RANK[self.role] >= _RANK[role]

    def sees(self, tenant_id: int) -> bool:
        return self.tenant_id is None or self.tenant_id == tenant_id


class Authenticator:
    """Turns an ``Authorization`` header into a :class:`Caller`; thread-safe."""

    def __init__(
        self, verify: Callable[[str], Principal | None], *, ttl: float = 5.0,
        max_entries: int = 10_000, on_failure: FailureHook | None = None,
    ) -> None:
        self._verify = verify
        self.on_failure = on_failure  # the security monitor's; called on the failure path only
        self._failure_key = os.urandom(16)
        self._forgotten: frozenset[bytes] = frozenset()
        self._ttl = ttl
        self._max_entries = max_entries
        self._cache: dict[bytes, tuple[float, Caller]] = {}
        self._lock = threading.Lock()

    def authenticate(self, authorization: str | None, source: str = "") -> Caller:
        """The caller an ``Authorization`` header value proves (blocking on a cache miss)."""
        return self.verify(bearer_token(authorization), source)

    def cached(self, token: str) -> Caller | None:
        """The caller if ``token`` was verified within the last ``ttl`` seconds (no I/O)."""
        hit = self._cache.get(_digest(token))
        return hit[1] if hit is not None and hit[0] > time.monotonic() else None

    def verify(self, token: str, source: str = "") -> Caller:
        """Verify through the registry (blocking) unless verified recently; ``source`` (the
        client's address) is only for ``on_failure``."""
        hit = self.cached(token)
        if hit is not None:
            return hit
        principal = self._verify(token)
        if principal is None:
            if self.on_failure is not None:
                digest = _digest(token)
                self.on_failure(source, "revoked" if digest in self._forgotten else "invalid",
                                hmac.new(self._failure_key, digest, "sha256").hexdigest()[:12])
            raise Unauthenticated("invalid or revoked token")
        caller = Caller(principal.token_id, principal.tenant_id, Role(principal.role))
        with self._lock:
            if len(self._cache) >= self._max_entries:
                self._cache.clear()
            self._cache[_digest(token)] = (time.monotonic() + self._ttl, caller)
        return caller

    def forget_all(self) -> None:
        """Drop cached verifications (after a revocation)."""
        with self._lock:
            self._forgotten = frozenset(self._cache)  # a failure of one of these: revoked
            self._cache.clear()


_bearer = HTTPBearer(
    auto_error=False, scheme_name="bearer",
    description="A millnet API token: `Authorization: Bearer <token>`")


async def current_caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
) -> Caller:
    # ``credentials`` documents the scheme in OpenAPI; the header is parsed here, as in the hot
    # route, so both answer alike.
    authenticator: Authenticator = request.app.state.millnet.auth
    token = bearer_token(request.headers.get("authorization"))
    # Recently verified tokens are answered here; only a cache miss reaches the registry.
    caller = authenticator.cached(token)
    if caller is None:
        client = request.client
        caller = await run_in_threadpool(authenticator.verify, token,
                                         client.host if client is not None else "")
    return caller


def require(role: Role) -> Callable[[Caller], Awaitable[Caller]]:
    """A dependency answering 403 unless the caller's role is at least ``role``."""

    async def check(caller: Annotated[Caller, Depends(current_caller)]) -> Caller:
        if not caller.at_least(role):
            raise PermissionDenied(f"requires the {role.value} role")
        return caller

    return check


Viewer = Annotated[Caller, Depends(require(Role.VIEWER))]
Operator = Annotated[Caller, Depends(require(Role.OPERATOR))]
Admin = Annotated[Caller, Depends(require(Role.ADMIN))]
