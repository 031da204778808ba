"""A recursive resolver: follows SERVICE_REFERRALs from node to node until an answer.

Used by a node that recurses for its clients (a request with the REC opflag, on a node started
with recursion on) and by clients that want the final answer from any node
(:func:`resolve_following`). Each hop is an ordinary non-recursive RESOLUTION sent with UDP
first, then TCP when UDP gives no complete answer, to the servers named by the referral's
HS_SITE values in order: a server that does not answer (or answers SERVER_BUSY / ERROR) makes
the resolver try the next one, which is how a replicated prefix keeps resolving when one
replica is down.

Recursion limit: the RecursionCount of the client's request is the number of hops already
spent upstream; each referral followed adds one, and once ``max_recursion`` is reached the
answer is RECUR_LIMIT_EXCEEDED (6). A referral loop between misconfigured nodes ends there.

Budget (found by review: referrals made only of HS_SERV values branched at every level, so one
client request made a recursive node send thousands): one resolution sends at most
``max_hops`` requests in all, service lookups included, tries at most :data:`MAX_SERVERS`
servers and :data:`MAX_SERVICES` service handles per referral, and gives up after
``deadline`` seconds (SERVER_NOT_RESP), so a client that left does not hold a recursion slot
for minutes. Answers of nested service-handle lookups are not cached (a node answering for a
service handle of another prefix must not poison the cache), and an answer for another handle
than the one asked is ignored.

Answers of the responsible node (values, HANDLE_NOT_FOUND, VALUE_NOT_FOUND) are kept in a
:class:`~.cache.ResolverCache` when one is given, each with the server that gave it;
:meth:`RecursiveResolver.cached` is the synchronous lookup the request handler tries before
going asynchronous. With ``follow_changes`` a :class:`~.freshness.ChangeFollower` drops those
entries when the servers change the handles (see :mod:`.freshness`); its owner runs
``follower.run()`` in a task group.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from millnet.errors import InvalidInput, ProtocolError
from millnet.identifiers.hierarchy.cache import ResolverCache, cache_key
from millnet.identifiers.hierarchy.client import Server, next_request_id, request_tcp, request_udp
from millnet.identifiers.hierarchy.freshness import INTERVAL, ChangeFollower
from millnet.identifiers.hierarchy.hierarchy import servers_of
from millnet.protocols.handle import (
    Envelope,
    ErrorResponse,
    HandleValue,
    Header,
    Message,
    OpCode,
    ResolutionRequest,
    ResolutionResponse,
    ResponseCode,
    ServiceReferral,
    decode_serv,
    normalize_handle,
)
from millnet.protocols.handle.responses import Body

log = logging.getLogger("millnet.identifiers")

MAX_RECURSION = 8
MAX_HOPS = 32
MAX_SERVERS = 8
MAX_SERVICES = 4
DEADLINE = 10.0
_NEGATIVE = (ResponseCode.HANDLE_NOT_FOUND, ResponseCode.VALUE_NOT_FOUND)
_TRY_NEXT = (ResponseCode.SERVER_BUSY, ResponseCode.ERROR)


@dataclass
class _Budget:
    hops: int


class BudgetExhausted(Exception):
    """A resolution used all of its requests."""


@dataclass
class ResolverStats:
    hops: int = 0  # requests sent to other servers
    failovers: int = 0  # servers that did not answer, next one tried
    recursions: int = 0  # resolutions that went to the network


class RecursiveResolver:
    def __init__(self, cache: ResolverCache | None = None, *,
                 max_recursion: int = MAX_RECURSION, udp_timeout: float = 0.5,
                 tcp_timeout: float = 3.0, udp: bool = True, follow_changes: bool = False,
                 change_interval: float = INTERVAL, max_hops: int = MAX_HOPS,
                 deadline: float = DEADLINE) -> None:
        self.cache = cache
        self.max_hops = max_hops
        self.deadline = deadline
        self.follower = ChangeFollower(cache, interval=change_interval) \
            if cache is not None and follow_changes else None
        self.max_recursion = max_recursion
        self.udp_timeout = udp_timeout
        self.tcp_timeout = tcp_timeout
        self.udp = udp
        self.stats = ResolverStats()

    def cached(self, body: ResolutionRequest) -> Body | None:
        """The cached answer to ``body``, None when there is none (or it expired)."""
        if self.cache is None:
            return None
        entry = self.cache.get(cache_key(body.handle, body.indexes, body.types))
        if entry is None:
            return None
        if entry.values is not None:
            return ResolutionResponse(body.handle, entry.values)
        return ErrorResponse(OpCode.RESOLUTION, entry.code, entry.message)

    async def resolve(self, body: ResolutionRequest, servers: Sequence[Server], *,
                      recursion_count: int = 0) -> Body:
        """Ask ``servers`` and follow referrals; the final answer's body (values, or the
        error of the responsible node, RECUR_LIMIT_EXCEEDED, SERVER_NOT_RESP)."""
        self.stats.recursions += 1
        budget = _Budget(self.max_hops)
        try:
            async with asyncio.timeout(self.deadline):
                return await self._resolve(body, servers, recursion_count, budget,
                                           remember=True)
        except TimeoutError:
            return ErrorResponse(OpCode.RESOLUTION, ResponseCode.SERVER_NOT_RESP,
                                 f"{body.handle}: no answer within {self.deadline:g} s")
        except BudgetExhausted:
            return ErrorResponse(OpCode.RESOLUTION, ResponseCode.SERVER_NOT_RESP,
                                 f"{body.handle}: more than {self.max_hops} requests "
                                 "without an answer")

    async def _resolve(self, body: ResolutionRequest, servers: Sequence[Server],
                       recursion_count: int, budget: _Budget, *, remember: bool) -> Body:
        ticket = self.cache.ticket() if self.cache is not None else None
        count = recursion_count
        current = list(servers)[:MAX_SERVERS]
        while True:
            if count >= self.max_recursion:
                return ErrorResponse(OpCode.RESOLUTION, ResponseCode.RECUR_LIMIT_EXCEEDED,
                                     f"{body.handle}: more than {self.max_recursion} "
                                     "referrals")
            count += 1
            asked = await self._ask(body, current, count, budget)
            if asked is None:
                return ErrorResponse(OpCode.RESOLUTION, ResponseCode.SERVER_NOT_RESP,
                                     f"{body.handle}: no server of the site answered")
            answer, server = asked
            reply = answer.body
            if isinstance(reply, ServiceReferral):
                referrers, current = current, servers_of(reply.values or ())[:MAX_SERVERS]
                if not current:  # HS_SERV: resolve the service handles where we were referred
                    current = (await self._services(reply.values or (), referrers, count,
                                                    budget))[:MAX_SERVERS]
                if not current:
                    return ErrorResponse(OpCode.RESOLUTION, ResponseCode.SERVER_NOT_RESP,
                                         f"{body.handle}: a referral named no usable server")
                continue
            if remember:
                self._remember(body, reply, server, ticket)
            return reply

    def _remember(self, body: ResolutionRequest, reply: Body, server: Server,
                  ticket: int | None) -> None:
        """Cache the final answer, unless its handle was invalidated while it was on its way
        (``ticket``: a change feed overtook the answer)."""
        if self.cache is None:
            return
        key = cache_key(body.handle, body.indexes, body.types)
        if isinstance(reply, ResolutionResponse):
            self.cache.put_values(key, reply.values, source=server, ticket=ticket)
        elif isinstance(reply, ErrorResponse) and reply.response_code in _NEGATIVE:
            self.cache.put_negative(key, reply.response_code, reply.message, source=server,
                                    ticket=ticket)
        else:
            return
        if self.follower is not None and self.cache.holds_from(server):
            self.follower.watch(server)

    async def _services(self, values: Sequence[HandleValue], asked: Sequence[Server],
                        count: int, budget: _Budget) -> list[Server]:
        """The servers of the HS_SERV service handles in ``values``: each resolved for its
        HS_SITE values starting at ``asked`` (the servers that referred), without following
        HS_SERV again (a loop guard)."""
        found: list[Server] = []
        services = [v for v in values if v.type == "HS_SERV"][:MAX_SERVICES]
        for value in services:
            try:
                service = decode_serv(value.data)
            except ProtocolError:
                continue
            body = ResolutionRequest(service, (), ("HS_SITE",))
            found_at = await self._ask(body, asked, count + 1, budget)
            reply = found_at[0].body if found_at is not None else None
            if isinstance(reply, ServiceReferral):  # the service handle lives further on
                nested = await self._resolve(body, servers_of(reply.values or ()), count + 1,
                                             budget, remember=False)
                reply = nested if isinstance(nested, ResolutionResponse) else None
            if isinstance(reply, ResolutionResponse):
                found += [s for s in servers_of(reply.values) if s not in found]
        return found

    async def _ask(self, body: ResolutionRequest, servers: Sequence[Server],
                   count: int, budget: _Budget) -> tuple[Message, Server] | None:
        """The first usable answer of ``servers``, tried in order, and who gave it."""
        for server in servers:
            if budget.hops <= 0:
                raise BudgetExhausted
            budget.hops -= 1
            msg = Message(ResolutionRequest(body.handle, body.indexes, body.types),
                          Header(0, recursion_count=min(count, 255)),
                          Envelope(request_id=next_request_id()))
            self.stats.hops += 1
            try:
                answer = None
                if self.udp and server.udp_port:
                    answer = await request_udp(msg, server, timeout=self.udp_timeout,
                                               attempts=1)
                if answer is None and server.tcp_port:
                    answer = await request_tcp(msg, server, timeout=self.tcp_timeout)
            except (OSError, TimeoutError, ProtocolError) as exc:
                log.info("%s:%d did not answer for %s: %s", server.host, server.tcp_port,
                         body.handle, exc)
                answer = None
            if answer is None or (isinstance(answer.body, ErrorResponse)
                                  and answer.body.response_code in _TRY_NEXT) \
                    or not _answers_for(answer, body.handle):
                self.stats.failovers += 1
                continue
            return answer, server
        return None


def _answers_for(answer: Message, handle: str) -> bool:
    """False for values of another handle than the one asked (never to be used or cached)."""
    reply = answer.body
    if not isinstance(reply, ResolutionResponse):
        return True
    try:
        return normalize_handle(reply.handle) == normalize_handle(handle)
    except InvalidInput:
        return False


async def resolve_following(handle: str, server: Server, indexes: Sequence[int] = (),
                            types: Sequence[str] = (), *,
                            max_recursion: int = MAX_RECURSION) -> Body:
    """Client-side iterative resolution: ask ``server`` and follow its referrals."""
    resolver = RecursiveResolver(max_recursion=max_recursion)
    return await resolver.resolve(ResolutionRequest(handle, tuple(indexes), tuple(types)),
                                  [server])


__all__ = ["MAX_RECURSION", "RecursiveResolver", "ResolverStats", "resolve_following"]
