"""HTTP Basic authentication of the identifier node's HTTP APIs (handles, batch, replication),
and how guessing secrets through them is kept slow.

Two throttles count failed authentications, and a request must pass both before its secret
is checked:

* per client host (:class:`~.native_auth.AuthThrottle`, shared in kind with the native
  protocol): the client is the TCP peer, or what ``X-Forwarded-For`` says only when the peer is
  a trusted proxy (:mod:`millnet.serving`);
* per principal (:class:`PrincipalThrottle`, the ``index:handle`` being guessed), so that
  spreading guesses over many addresses does not multiply the guesses at one secret (found
  by review: 20 fresh guesses per spoofed ``X-Forwarded-For``).

A throttle per principal lets anyone who knows an admin's name lock it out; so a host that
proved that principal's secret recently keeps being checked (within its own host limit).
Guesses at one principal are therefore bounded by the principal's limit plus the host limit
of each host that knew the secret; per process (``--workers N`` multiplies them by N).
"""

from __future__ import annotations

import base64
import binascii
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from itertools import islice
from urllib.parse import unquote

from starlette.requests import Request

from millnet.errors import InvalidInput
from millnet.identifiers.core.errors import AuthenticationFailed, AuthenticationNeeded
from millnet.identifiers.core.offload import Offload
from millnet.identifiers.core.service import IdentifierService
from millnet.identifiers.wire.auth import AuthThrottle, TooManyFailures, client_key
from millnet.model.limits import ascii_digits
from millnet.protocols.handle import ValueReference, normalize_handle

log = logging.getLogger("millnet.identifiers.http.rest")

#: seconds a host that proved a principal's secret is exempt from that principal's lock
KNOWN_HOST_SECONDS = 86_400.0


def parse_basic(header: str) -> tuple[ValueReference, bytes]:
    """(principal, secret) from ``Basic base64(urlencoded(index:handle):secret)``."""
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "basic":
        raise AuthenticationFailed(f"unsupported authorization scheme {scheme[:20]!r}; "
                                   "use HTTP Basic with index:handle and the secret key")
    try:
        decoded = base64.b64decode(token.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise AuthenticationFailed("malformed HTTP Basic credentials") from None
    user, colon, secret = decoded.partition(b":")
    try:
        username = unquote(user.decode("utf-8"), errors="strict")
    except UnicodeDecodeError:
        raise AuthenticationFailed("user name is not UTF-8") from None
    index, sep, handle = username.partition(":")
    if not (colon and sep and ascii_digits(index, 10) and handle):
        raise AuthenticationFailed("the user name must be index:handle, e.g. 300:88.100.5/ADMIN")
    return ValueReference(handle, int(index)), secret


def principal_key(principal: ValueReference) -> str:
    """One name per secret: ``index:handle`` with the handle in its canonical form."""
    try:
        handle = normalize_handle(principal.handle)
    except InvalidInput:
        handle = principal.handle
    return f"{principal.index}:{handle}"


class PrincipalThrottle:
    """Failed authentications per principal in a sliding window of ``window`` seconds.

    :meth:`attempt` counts an attempt as failed *before* its secret is checked and
    :meth:`succeeded` takes it back, so concurrent guesses cannot all pass the check before
    the first one fails. Beyond ``limit`` the principal is refused, except from hosts that
    proved its secret within ``known_for`` seconds. Bounded: ``max_principals`` (when full,
    a principal under its limit is forgotten first, so a flood of other names does not
    unlock one under attack) and ``max_known`` (host, principal) pairs. Thread-safe."""

    def __init__(self, *, limit: int = 20, window: float = 60.0,
                 max_principals: int = 10_000, known_for: float = KNOWN_HOST_SECONDS,
                 max_known: int = 10_000, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit, self.window, self._clock = limit, window, clock
        self.max_principals, self.known_for, self.max_known = max_principals, known_for, max_known
        self._failures: OrderedDict[str, list[float]] = OrderedDict()
        self._known: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._lock = threading.Lock()

    def attempt(self, principal: str, host: str) -> float | None:
        """Admit one check of ``principal``'s secret from ``host``: a token for
        :meth:`succeeded` (None from a known host, which the principal's lock spares);
        TooManyFailures while the principal is over its limit."""
        now = self._clock()
        with self._lock:
            if self._known.get((principal, client_key(host)), 0.0) > now:
                return None
            recent = [t for t in self._failures.get(principal, ()) if t > now - self.window]
            if len(recent) >= self.limit:
                raise TooManyFailures(f"too many failed authentications as {principal[:200]}; "
                                      f"wait up to {self.window:.0f} s")
            recent.append(now)
            self._failures[principal] = recent
            self._failures.move_to_end(principal)
            if len(self._failures) > self.max_principals:
                self._forget_one(now)
        return now

    def succeeded(self, principal: str, host: str, token: float | None) -> None:
        """The secret was right: take back the attempt and remember the host."""
        key = (principal, client_key(host))
        with self._lock:
            if token is not None:
                recent = self._failures.get(principal)
                if recent is not None and token in recent:
                    recent.remove(token)
            self._known[key] = self._clock() + self.known_for
            self._known.move_to_end(key)
            while len(self._known) > self.max_known:
                self._known.popitem(last=False)

    def _forget_one(self, now: float) -> None:
        """Drop the least recent principal that is not locked, else the least recent one;
        never the newest (the one just counted)."""
        cutoff = now - self.window
        for name, times in islice(self._failures.items(), len(self._failures) - 1):
            if len(times) < self.limit or times[-self.limit] <= cutoff:  # times ascend
                del self._failures[name]
                return
        self._failures.popitem(last=False)


async def authenticate(request: Request, service: IdentifierService) -> ValueReference:
    """The principal of a request's HTTP Basic credentials (``index:handle`` and its
    HS_SECKEY), verified in the app's offload (Busy beyond its bound); AuthenticationNeeded
    without credentials, AuthenticationFailed with wrong ones (TooManyFailures, unchecked,
    while either throttle refuses). For every write API of the identifier node."""
    header = request.headers.get("authorization")
    if header is None:
        raise AuthenticationNeeded("this operation needs credentials: HTTP Basic with "
                                   "index:handle of an admin and its secret key")
    principal, secret = parse_basic(header)
    host = request.client.host if request.client is not None else ""
    hosts: AuthThrottle = request.app.state.throttle
    principals: PrincipalThrottle = request.app.state.principal_throttle
    key = principal_key(principal)
    hosts.check(host)
    token = principals.attempt(key, host)
    offload: Offload = request.app.state.offload
    if not await offload.run(service.verify_secret, principal.handle, principal.index, secret):
        hosts.failed(host)
        log.info("HTTP Basic authentication failed for %d:%s", principal.index,
                 principal.handle)
        raise AuthenticationFailed(f"secret key of {principal.index}:{principal.handle} "
                                   "not verified")
    principals.succeeded(key, host, token)
    return principal


__all__ = ["PrincipalThrottle", "authenticate", "parse_basic", "principal_key"]
