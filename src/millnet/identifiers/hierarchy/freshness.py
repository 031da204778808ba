"""Cache freshness across nodes: a recursing node drops the answers it cached from another
node as soon as that node changes the handles, instead of serving them until their TTL runs out
(a day for typical values).

The node side, on the HTTP API (public), over the node's transaction log (the one mirrors
replay, :mod:`.replication`):

* ``GET /api/changes``: the current position, ``next``;
* ``POST /api/changes`` with ``{"since": N, "limit": L, "digests": [...]}``: of the handles
  whose :func:`~.cache.change_digest` the asker sent (at most :data:`MAX_ASKED`), those changed
  after position ``N``; ``others``, how many other handles changed in the same rows; ``next``
  (the position to ask from next) and ``more``. ``reset`` says that the changes after ``N``
  are no longer all in the log: trimmed, or a log that is behind ``N`` (a store replaced or
  restored from a backup; noticed only if the follower asks before the new log grows past
  ``N``, which at a poll every 2 s it almost always does). A follower must then forget
  everything it had from that node.

The feed answers only about handles the asker names (found by review: a public list of
unsalted digests of every changed name gave 247 of 308 names away to a dictionary in a
quarter of a second). A follower names the handles it already resolved from that node, and
anyone can resolve a name they know; so the feed tells nobody a name they did not have.

The follower side, :class:`ChangeFollower`, runs beside a :class:`~.resolver.RecursiveResolver`
whose cache records the server behind each answer:

* a server is followed while the cache holds an answer from it, and :data:`IDLE_FORGET`
  seconds longer (so that the position is kept across quiet spells); its HTTP port comes from
  its own site information (GET_SITEINFO; millnet nodes list their HTTP interface in HS_SITE);
* each ``interval`` seconds (2 by default) the follower asks each followed server for its
  position and, when it moved, for the changes since its own among the handles it holds
  from that server, and drops their entries; when other handles changed too, answers that
  were on their way (or stored while it asked) are dropped as well: they were not asked
  about;
* answers cached before the follower knew the server's position are dropped when it learns it
  (a change in between could not be told apart), and everything from a server is dropped on
  ``reset``;
* a server that does not publish a feed (a Handle.Net server, a node without HTTP) keeps plain
  TTL behaviour, and is asked again after :data:`RETRY_DISCOVERY` seconds;
* while a server is unreachable its answers stay until their TTL (an outage of the
  responsible node must not stop resolution from the cache); when it is back, the feed from
  the saved position catches up.

So a change at the responsible node reaches a recursing node's clients within about
``interval`` seconds plus one poll.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import ip_address
from typing import Any

from millnet.errors import MillnetError, ProtocolError
from millnet.identifiers.hierarchy.cache import ResolverCache
from millnet.identifiers.hierarchy.client import Server, next_request_id, request
from millnet.protocols.handle import (
    Envelope,
    GetSiteInfoRequest,
    GetSiteInfoResponse,
    Header,
    Message,
    SiteInfo,
    TransportProtocol,
)

log = logging.getLogger("millnet.identifiers.hierarchy.freshness")

INTERVAL = 2.0
RETRY_DISCOVERY = 300.0
#: seconds a server's feed is still followed after the cache last held an answer of it: a
#: new answer within that time needs no new start (which drops what was cached before it)
IDLE_FORGET = 600.0
PAGE = 1000
MAX_PAGES = 20  # per server and poll: beyond this many changes, dropping everything is cheaper
#: digests one question may carry (a follower holding more asks in several)
MAX_ASKED = 10_000
DIGEST_CHARS = 64


@dataclass
class _Feed:
    url: str | None = None  # the server's feed, once discovered
    position: int | None = None
    retry_at: float = 0.0  # next discovery attempt when it publishes none
    idle_since: float | None = None  # since when the cache holds nothing of the server


class ChangeFollower:
    """Follows the change feeds of the servers behind a cache's entries (see the module)."""

    def __init__(self, cache: ResolverCache, *, interval: float = INTERVAL,
                 timeout: float = 2.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.cache = cache
        self.interval = interval
        self.timeout = timeout
        self.clock = clock
        self._feeds: dict[Server, _Feed] = {}
        self._followed = asyncio.Event()  # set while there is a server to follow
        self.polls = 0
        self.dropped = 0

    def watch(self, server: Server) -> None:
        """Follow ``server`` (the cache now holds an answer from it): :meth:`run` polls it."""
        self._feeds.setdefault(server, _Feed())
        self._followed.set()

    async def run(self) -> None:
        """Poll every ``interval`` seconds while servers are followed, and wait for one
        otherwise; until cancelled. The node runs it in its task group (it used to start a
        task of its own on the first ``watch``, which nothing awaited)."""
        while True:
            if not self._feeds:
                self._followed.clear()
                await self._followed.wait()
            await asyncio.sleep(self.interval)
            await self.poll()

    async def poll(self) -> None:
        """One round over the followed servers."""
        now = self.clock()
        for server, feed in list(self._feeds.items()):
            if self.cache.holds_from(server):
                feed.idle_since = None
            elif feed.idle_since is None:
                feed.idle_since = now
            elif now - feed.idle_since > IDLE_FORGET:
                del self._feeds[server]  # nothing of it cached for a while: stop asking
                continue
            try:
                await self._poll(server, feed)
            except (OSError, TimeoutError, ValueError, ProtocolError, MillnetError) as exc:
                log.info("change feed of %s:%d: %s", server.host, server.tcp_port, exc)
            except Exception:  # one server's surprise must not stop following the others
                log.exception("change feed of %s:%d failed", server.host, server.tcp_port)

    async def _poll(self, server: Server, feed: _Feed) -> None:
        if feed.url is None:
            if self.clock() < feed.retry_at:
                return
            feed.url = await self._discover(server)
            if feed.url is None:
                feed.retry_at = self.clock() + RETRY_DISCOVERY
                return
        self.polls += 1
        now = int((await self._get(feed.url))["next"])
        if feed.position is None:
            feed.position = now
            # Cached before the position was known: a change in between would be missed.
            self.dropped += self.cache.drop_source(server)
            return
        if now == feed.position:
            return  # nothing logged since (a log behind the position answers reset below)
        held = self.cache.digests_from(server)
        asked = frozenset(held)
        for _ in range(MAX_PAGES):
            page = await self._changes(feed.url, feed.position, held)
            if page["reset"]:
                self.dropped += self.cache.drop_source(server)
                feed.position = int(page["next"])
                return
            self.dropped += self.cache.invalidate_changes(server, asked, page["changes"],
                                                          others=page["others"] > 0)
            feed.position = int(page["next"])
            if not page["more"]:
                return
        self.dropped += self.cache.drop_source(server)  # far behind: start afresh

    async def _changes(self, url: str, since: int, held: list[str]) -> dict[str, Any]:
        """One page of changes among ``held``, asked :data:`MAX_ASKED` digests at a time:
        the first answer's position, every answer's changes, and as ``others`` how many
        changed handles no answer named."""
        pages = [await asyncio.to_thread(_post_json, url, {
            "since": since, "limit": PAGE, "digests": held[start:start + MAX_ASKED]},
            self.timeout) for start in range(0, max(len(held), 1), MAX_ASKED)]
        changed = {d for page in pages for d in page["changes"]}
        total = max(len(page["changes"]) + page["others"] for page in pages)
        return {**pages[0], "changes": changed, "others": total - len(changed)}

    async def _discover(self, server: Server) -> str | None:
        """The change feed URL of ``server`` from its site information, if it has one."""
        msg = Message(GetSiteInfoRequest(), Header(0), Envelope(request_id=next_request_id()))
        answer = await request(msg, server, timeout=self.timeout)
        if not isinstance(answer.body, GetSiteInfoResponse):
            return None
        port = _http_port(answer.body.site, server)
        if port is None:
            return None
        host = f"[{server.host}]" if ip_address(server.host).version == 6 else server.host
        return f"http://{host}:{port}/api/changes"

    async def _get(self, url: str) -> dict[str, Any]:
        return await asyncio.to_thread(_get_json, url, self.timeout)


def _http_port(site: SiteInfo, server: Server) -> int | None:
    """The HTTP port of the record of ``site`` that is ``server``: among the records with its
    native ports, the one with its address, else the only one; else the site's only record
    (a node listening on a wildcard address may not know the address it is reached at).
    None if that record lists no HTTP port."""
    native = {(TransportProtocol.TCP, server.tcp_port), (TransportProtocol.UDP,
                                                           server.udp_port)}
    try:
        address: object = ip_address(server.host)
    except ValueError:
        address = None
    same_ports = [r for r in site.servers
                  if native & {(i.protocol, i.port) for i in r.interfaces}]
    chosen = [r for r in same_ports if r.ip == address] or same_ports
    if len(chosen) != 1:
        chosen = list(site.servers) if len(site.servers) == 1 and not same_ports else []
    for record in chosen[:1]:
        for itf in record.interfaces:
            if itf.protocol == TransportProtocol.HTTP and itf.port:
                return int(itf.port)
    return None


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A feed is read where the server's site information says, never elsewhere."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


#: an opener that never follows redirects (the change follower, the mirror)
NO_REDIRECTS = urllib.request.build_opener(_NoRedirects)
MAX_PAGE_BYTES = 1 << 20  # 10,000 digests of 16 hex digits fit in a quarter of it


def fetch_json(request: str | urllib.request.Request, timeout: float,
               max_bytes: int) -> dict[str, Any]:
    """A JSON object from another node's HTTP API (the change feed, the replication log):
    never following redirects, never reading more than ``max_bytes``. ValueError naming what
    is wrong; HTTPError (a URLError) for an error status."""
    url = request if isinstance(request, str) else request.full_url
    with NO_REDIRECTS.open(request, timeout=timeout) as response:
        raw = response.read(max_bytes + 1)
    if len(raw) > max_bytes:
        raise ValueError(f"{url}: a page larger than {max_bytes} bytes")
    body = json.loads(raw)
    if not isinstance(body, dict):
        raise ValueError(f"{url}: not a JSON object")
    return body


def _get_json(url: str, timeout: float) -> dict[str, Any]:
    """The feed's position: ValueError naming what is wrong with the answer."""
    return _checked(url, _fetch(url, timeout))


def _post_json(url: str, question: dict[str, Any], timeout: float) -> dict[str, Any]:
    """One page of the feed, checked: ValueError naming what is wrong with it."""
    request = urllib.request.Request(  # noqa: S310 - http:// built by _discover
        url, json.dumps(question).encode(), {"Content-Type": "application/json"},
        method="POST")
    body = _checked(url, _fetch(request, timeout))
    changes, others = body.get("changes"), body.get("others")
    if not isinstance(changes, list) or not all(isinstance(d, str) for d in changes):
        raise ValueError(f"{url}: 'changes' is not a list of digests")
    if type(others) is not int or others < 0:
        raise ValueError(f"{url}: 'others' is not a count: {others!r:.40}")
    return body


def _fetch(request: str | urllib.request.Request, timeout: float) -> dict[str, Any]:
    try:
        return fetch_json(request, timeout, MAX_PAGE_BYTES)
    except urllib.error.HTTPError as exc:
        raise ValueError(f"{exc.url}: HTTP {exc.code}") from None


def _checked(url: str, body: dict[str, Any]) -> dict[str, Any]:
    position = body.get("next")
    if type(position) is not int or position < 0:
        raise ValueError(f"{url}: 'next' is not a position: {position!r:.40}")
    return body


__all__ = ["INTERVAL", "ChangeFollower"]
