"""The native-protocol request handler: decoded requests in, responses out.

Transport-free (the servers in :mod:`.transport` call it per message). Unauthenticated:
RESOLUTION (index and type filters; only values with public read, as for any unauthenticated
client) with a SERVICE_REFERRAL where another node is responsible, GET_SITEINFO, and
VERIFY_RESPONSE (201: another server asks whether an HS_SECKEY answer matches a key held here).

Administrative operations (CREATE_HANDLE with OW and MINT, DELETE_HANDLE, ADD/REMOVE/MODIFY
VALUE, LIST_HANDLE) are challenged (:mod:`.native_auth`): the 402 Challenge, the client's
CHALLENGE_RESPONSE, then the original operation run through the service as the principal who
answered (``<index>:<key handle>``), which checks its HS_ADMIN rights. The result answers the
CHALLENGE_RESPONSE message (its session and request id, the digest of it when RD is set) with
the original operation's code and body, which is what hdllib and the CAICT SDK wait for.
A handle that is not served here is referred (or refused with SERVER_NOT_RESP) before any
challenge.

Hierarchy (:mod:`.hierarchy`): with a ``parent`` site, a handle no prefix of which is served or
delegated here is referred up to the parent instead of SERVER_NOT_RESP. With a ``resolver``, a
RESOLUTION carrying the REC opflag that would be referred is followed instead: answered at once
from the resolver's cache when it can be, otherwise the handler returns an awaitable (the
transport awaits it in a task) and the resolver asks the other nodes. Local answers stay
synchronous. At most ``max_pending`` recursions run at once; beyond, SERVER_BUSY.

What runs on the event loop and what does not: resolutions, site information, referrals and
challenges are answered synchronously (one indexed read, or none). Everything that may write,
list, check a secret (PBKDF2 against the stored HS_SECKEY, an HS_PUBKEY signature) or fetch a
template runs in the :class:`~.offload.Offload`'s worker threads and is answered when it is
done (the handler returns an awaitable, as for a recursion): a write waiting on the database's
lock must not hold up resolutions. Beyond the offload's bound, SERVER_BUSY. What a challenge
answer or a login may change here (the pending challenge taken, the throttle, the logins of a
connection) is done on the loop, before and after the job.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping

from millnet.errors import MillnetError
from millnet.identifiers.core.delegation import SECKEY_INDEX, Local, Referral
from millnet.identifiers.core.errors import (
    AuthenticationFailed,
    NotAuthorized,
    NotResponsible,
    OperationDenied,
    error_code,
)
from millnet.identifiers.core.offload import Offload
from millnet.identifiers.core.service import IdentifierService
from millnet.identifiers.hierarchy.client import Server
from millnet.identifiers.hierarchy.hierarchy import parent_referral, servers_of
from millnet.identifiers.hierarchy.resolver import RecursiveResolver
from millnet.identifiers.native.admin import ADMIN_TYPES, AdminBody, administer, listed_prefix
from millnet.identifiers.native.logins import ConnectionLogins, tcp_only
from millnet.identifiers.wire.auth import (
    PUBLIC_KEY_TYPE,
    SECRET_KEY_TYPE,
    AuthThrottle,
    ChallengeTable,
    Pending,
    UnableToAuthenticate,
    Verifier,
    check_secret_key,
)
from millnet.identifiers.wire.pubkey import verify_challenge
from millnet.identifiers.wire.transport import Replies, Slots, TcpPeer
from millnet.model.limits import ascii_digits
from millnet.protocols.handle import (
    ChallengeAnswer,
    ErrorResponse,
    GenericResponse,
    GetSiteInfoRequest,
    GetSiteInfoResponse,
    ListHandlesRequest,
    Message,
    OpCode,
    OpFlag,
    PasswordLoginRequest,
    PasswordLoginResponse,
    PublicKeyLoginRequest,
    ResolutionRequest,
    ResolutionResponse,
    ResponseCode,
    ServiceReferral,
    SiteInfo,
    ValueReference,
    VerifyChallengeRequest,
    VerifyChallengeResponse,
    make_response,
)
from millnet.protocols.handle.responses import Body

log = logging.getLogger("millnet.identifiers")

#: LIST_HANDLE answers in messages of this many handles (CN set on all but the last)...
LIST_BATCH = 1000
#: ...and stops after this many: larger prefixes are listed with the REST API's paging.
MAX_LISTED = 100_000
#: recursive resolutions in flight at once, beyond which REC requests get SERVER_BUSY
MAX_PENDING = 256
_REC, _PO = int(OpFlag.REC), int(OpFlag.PO)


class NativeHandler:
    """``handler(message, peer) -> [responses]`` over an :class:`IdentifierService`."""

    def __init__(self, service: IdentifierService, site: SiteInfo,
                 clock: Callable[[], float] = time.time, *,
                 challenges: ChallengeTable | None = None,
                 verifiers: Mapping[str, Verifier] | None = None,
                 parent: SiteInfo | None = None,
                 resolver: RecursiveResolver | None = None,
                 max_pending: int = MAX_PENDING,
                 offload: Offload | None = None) -> None:
        self._service = service
        #: where writes, lists and secret checks run (see the module); the node passes the
        #: one its HTTP API shares and closes it
        self.offload = offload if offload is not None else Offload()
        self.parent = parent
        self.resolver = resolver
        self.max_pending = max_pending
        # Recursion slots in all and per client host (found by review: a few clients asking
        # for handles delegated to silent servers held every slot; each resolution also has
        # a deadline).
        self._recursions = Slots(max_pending, max(1, max_pending // 8))
        if resolver is not None and resolver.cache is not None:
            service.listeners.append(resolver.cache.invalidate)
        self._site = site
        self._clock = clock
        #: IDIS logins: the identity of each logged-in TCP connection (dropped at its close)
        self._logins = ConnectionLogins()
        self.challenges = challenges if challenges is not None else ChallengeTable()
        #: failed authentications per host (challenge answers and IDIS logins)
        self.throttle = AuthThrottle()
        #: auth type of a ChallengeAnswer -> its check; HS_PUBKEY plugs in here
        self.verifiers: dict[str, Verifier] = dict(verifiers) if verifiers is not None else {
            SECRET_KEY_TYPE: self._check_secret_key, PUBLIC_KEY_TYPE: self._check_public_key}

    def __call__(self, msg: Message,
                 peer: tuple[str, int]) -> list[Message] | Awaitable[list[Message]]:
        now = int(self._clock())
        body = msg.body
        try:
            if isinstance(body, ResolutionRequest) and self.resolver is not None \
                    and msg.header.opflags & _REC:
                recursed = self._recurse(msg, body, now, peer[0])
                if recursed is not None:
                    return recursed
            if isinstance(body, ChallengeAnswer):
                return self._answer_challenge(msg, body, peer, now)
            if isinstance(body, PasswordLoginRequest):
                return self._password_login(msg, body, peer)
            if isinstance(body, PublicKeyLoginRequest):
                tcp_only(peer)
                return [self.challenges.challenge(msg, peer[0], now=now)]
            if isinstance(body, ADMIN_TYPES):
                referral = self._referral(msg.opcode, body)
                if referral is not None:
                    return [make_response(msg, referral, now=now)]
                who = self._logins.of(peer)
                if who is not None:  # an IDIS login on this connection: no challenge
                    return self._finish(msg, msg.opcode,
                                        self.offload.submit(self._administer, who, msg, body))
                return [self.challenges.challenge(msg, peer[0], now=now,
                                                  udp=not isinstance(peer, TcpPeer))]
            if isinstance(body, VerifyChallengeRequest):
                return self._verify_for(msg, body, peer)
            who = self._logins.of(peer) if isinstance(body, ResolutionRequest) \
                and not msg.header.opflags & _PO else None
            if isinstance(body, ResolutionRequest) and who is not None:
                reply = self._restricted(msg.opcode, body, who)
            else:
                reply = self._answer(msg.opcode, body)
        except MillnetError as exc:
            reply = ErrorResponse(msg.opcode, error_code(exc), str(exc))
        return [make_response(msg, reply, now=now)]

    # Hierarchy

    def _locate(self, handle: str) -> Local | Referral:
        """Local or the referral down (a delegation) or up (the parent); NotResponsible
        when neither is known."""
        try:
            return self._service.locate(handle)
        except NotResponsible:
            up = parent_referral(self.parent, handle)
            if up is None:
                raise
            return up

    def _recurse(self, msg: Message, body: ResolutionRequest, now: int,
                 host: str) -> list[Message] | Awaitable[list[Message]] | None:
        """None when the handle is answered here (or is not resolvable): the usual path."""
        resolver = self.resolver
        assert resolver is not None
        where = self._locate(body.handle)
        if isinstance(where, Local):
            return None
        cached = resolver.cached(body)
        if cached is not None:
            return [make_response(msg, cached, now=now)]
        servers = servers_of(where.values)
        if not servers:
            return None  # nothing to follow: refer the client
        if not self._recursions.admit(host):
            return [make_response(msg, ErrorResponse(
                msg.opcode, ResponseCode.SERVER_BUSY, "too many recursive resolutions"),
                now=now)]
        return self._recursion(msg, body, servers, resolver, host)

    async def _recursion(self, msg: Message, body: ResolutionRequest, servers: list[Server],
                         resolver: RecursiveResolver, host: str) -> list[Message]:
        try:
            reply = await resolver.resolve(body, servers,
                                           recursion_count=msg.header.recursion_count)
        finally:
            self._recursions.release(host)
        return [make_response(msg, reply, now=int(self._clock()))]

    # Unauthenticated

    def _restricted(self, opcode: int, body: ResolutionRequest, who: ValueReference) -> Body:
        """A resolution on a logged-in connection without PO: restricted values too, for a
        principal with READ_VALUE on the handle (public values only otherwise)."""
        where = self._locate(body.handle)
        if isinstance(where, Referral):
            return ServiceReferral(opcode, body.handle, where.values)
        try:
            values = self._service.resolve(body.handle, body.indexes, body.types,
                                           public_only=False, principal=who)
        except NotAuthorized:
            values = self._service.resolve(body.handle, body.indexes, body.types)
        return ResolutionResponse(body.handle, values)

    def _answer(self, opcode: int, body: Body) -> Body:
        if isinstance(body, ResolutionRequest):
            where = self._locate(body.handle)
            if isinstance(where, Referral):
                return ServiceReferral(opcode, body.handle, where.values)
            values = self._service.resolve(body.handle, body.indexes, body.types,
                                           public_only=True)
            return ResolutionResponse(body.handle, values)
        if isinstance(body, GetSiteInfoRequest):
            return GetSiteInfoResponse(self._site)
        return ErrorResponse(opcode, ResponseCode.OPERATION_DENIED,
                             f"operation {opcode} is not served here")

    def _referral(self, opcode: int, body: AdminBody) -> ServiceReferral | None:
        """A referral when another node answers for the handle; NotResponsible propagates."""
        if isinstance(body, ListHandlesRequest):
            probe = f"{listed_prefix(body.handle)}/x"
        else:  # a MINT request may name just the prefix, "88.100.5/" or "88.100.5"
            prefix, _, suffix = body.handle.partition("/")
            probe = body.handle if suffix else f"{prefix}/x"
        where = self._locate(probe)
        if isinstance(where, Referral):
            return ServiceReferral(opcode, body.handle, where.values)
        return None

    # Authenticated: checked and carried out in the offload's threads

    def _answer_challenge(self, msg: Message, answer: ChallengeAnswer, peer: tuple[str, int],
                          now: int) -> Replies:
        pending = self.challenges.take(msg.envelope.session_id, peer[0])
        original = pending.request
        opcode = original.opcode
        try:
            verify = self.verifiers.get(answer.auth_type)
            if verify is None:
                raise UnableToAuthenticate(f"{answer.auth_type} answers are not supported")
            self.throttle.check(peer[0])
            principal = ValueReference(answer.key_handle, answer.key_index)
            login = original.body if isinstance(original.body, PublicKeyLoginRequest) else None
            if login is not None:
                tcp_only(peer)
            job = self.offload.submit(self._verified, verify, answer, pending,
                                      None if login is not None else principal)
            token = self._logins.started(peer) if login is not None else None
        except MillnetError as exc:
            return self._respond_all(msg, [ErrorResponse(opcode, error_code(exc), str(exc))],
                                     now)
        return self._finish(msg, opcode, self._challenge_answered(
            job, answer, peer, opcode, login, token))

    def _verified(self, verify: Verifier, answer: ChallengeAnswer, pending: Pending,
                  principal: ValueReference | None) -> list[Body] | None:
        """In a worker thread: None when the answer is wrong; else the original operation
        carried out as ``principal`` (nothing to carry out for a login)."""
        if not verify(answer.key_handle, answer.key_index, pending.nonce, pending.digest,
                      answer.signed_response):
            return None
        if principal is None:
            return []
        original = pending.request
        assert isinstance(original.body, ADMIN_TYPES)
        return self._administer(principal, original, original.body)

    async def _challenge_answered(self, job: Awaitable[list[Body] | None],
                                  answer: ChallengeAnswer, peer: tuple[str, int], opcode: int,
                                  login: PublicKeyLoginRequest | None,
                                  token: object | None) -> list[Body]:
        try:
            bodies = await job
            if bodies is None:
                self.throttle.failed(peer[0])
                log.info("authentication of %d:%s failed for %s", answer.key_index,
                         answer.key_handle, peer[0])
                return [ErrorResponse(opcode, ResponseCode.AUTHEN_FAILED,
                                      "the challenge answer is not valid")]
            if login is not None:
                principal = ValueReference(answer.key_handle, answer.key_index)
                return [self._logged_in(login, principal, peer, token)]
            return bodies
        finally:
            if token is not None:
                self._logins.ended(peer, token)

    def _finish(self, msg: Message, opcode: int,
                work: Awaitable[list[Body] | None]) -> Awaitable[list[Message]]:
        """The answers to ``msg`` once ``work`` is done (errors as ``opcode``'s)."""
        async def answer() -> list[Message]:
            try:
                bodies = await work or []
            except MillnetError as exc:
                bodies = [ErrorResponse(opcode, error_code(exc), str(exc))]
            return self._respond_all(msg, bodies, int(self._clock()))
        return answer()

    @staticmethod
    def _respond_all(msg: Message, bodies: list[Body], now: int) -> list[Message]:
        last = len(bodies) - 1
        return [make_response(msg, body, now=now, continued=i < last)
                for i, body in enumerate(bodies)]

    # IDIS logins (the CAICT SDK): an identity for the rest of a TCP connection

    def connection_closed(self, peer: tuple[str, int]) -> None:
        self._logins.closed(peer)

    def _password_login(self, msg: Message, body: PasswordLoginRequest,
                        peer: tuple[str, int]) -> Replies:
        """LOGIN (2000): user ``index:handle`` (index 300 when left out) and the secret key
        held at that index, in clear text as the SDK sends it (use TLS or a private link)."""
        tcp_only(peer)
        index_text, sep, handle = body.username.partition(":")
        if not (sep and ascii_digits(index_text, 10)):
            index_text, handle = str(SECKEY_INDEX), body.username
        principal = ValueReference(handle, int(index_text))
        self.throttle.check(peer[0])
        job = self.offload.submit(self._service.verify_secret, principal.handle,
                                  principal.index, body.password)
        token = self._logins.started(peer)

        async def logged_in() -> list[Body]:
            try:
                if not await job:
                    self.throttle.failed(peer[0])
                    log.info("IDIS login of %d:%s failed for %s", principal.index,
                             principal.handle, peer[0])
                    raise AuthenticationFailed(
                        f"login of {principal.index}:{principal.handle} failed")
                self._logins.bind(peer, token, principal)
            finally:
                self._logins.ended(peer, token)
            return [PasswordLoginResponse(principal.handle)]

        return self._finish(msg, msg.opcode, logged_in())

    def _logged_in(self, login: PublicKeyLoginRequest, principal: ValueReference,
                   peer: tuple[str, int], token: object | None) -> Body:
        """LOGIN_ID_SYSTEM (2001) after its challenge was answered with the key it named."""
        if (login.key_handle, login.key_index) != (principal.handle, principal.index):
            raise AuthenticationFailed("the challenge was answered for another key than the "
                                       "login named")
        self._logins.bind(peer, token, principal)
        return GenericResponse(OpCode.LOGIN_ID_SYSTEM)

    def _verify_for(self, msg: Message, body: VerifyChallengeRequest,
                    peer: tuple[str, int]) -> Replies:
        """VERIFY_RESPONSE: another server checks an HS_SECKEY answer against a key held
        here. Over TCP only (a forged UDP source could make the node hash for anyone) and
        throttled like every other check of a secret: without both it was an open oracle for
        guessing admin secrets (found by review)."""
        if not isinstance(peer, TcpPeer):
            raise OperationDenied("VERIFY_RESPONSE is served over TCP only")
        self.throttle.check(peer[0])
        job = self.offload.submit(self._check_secret_key, body.key_handle, body.key_index,
                                  body.nonce, body.digest.digest, body.signed_response)

        async def verified() -> list[Body]:
            ok = await job
            if not ok:
                self.throttle.failed(peer[0])
            return [VerifyChallengeResponse(ok)]

        return self._finish(msg, msg.opcode, verified())

    def _check_secret_key(self, key_handle: str, key_index: int, nonce: bytes, digest: bytes,
                          signed_response: bytes) -> bool:
        try:
            secret = self._service.secret_key(key_handle, key_index)
        except MillnetError:
            secret = None
        return check_secret_key(secret, nonce, digest, signed_response)

    def _check_public_key(self, key_handle: str, key_index: int, nonce: bytes, digest: bytes,
                          signed_response: bytes) -> bool:
        """An HS_PUBKEY answer: the signature checked against the key held here."""
        try:
            key = self._service.public_key(key_handle, key_index)
        except MillnetError:
            key = None
        return verify_challenge(key, nonce, digest, signed_response)

    def _administer(self, who: ValueReference, original: Message, body: AdminBody) -> list[Body]:
        return administer(self._service, who, original, body, list_batch=LIST_BATCH,
                          max_listed=MAX_LISTED)


__all__ = ["LIST_BATCH", "MAX_LISTED", "MAX_PENDING", "AdminBody", "NativeHandler"]
