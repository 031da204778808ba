"""The resolver cache of a recursing node: answers obtained from other nodes, positive and
negative, for as long as their TTLs allow.

* A positive entry (the values of a resolution) lives for the smallest TTL of its values: a
  relative TTL counts seconds from the moment the answer was received, an absolute TTL is a
  Unix time. A value with TTL 0 makes the answer uncacheable.
* A negative entry (HANDLE_NOT_FOUND 100, VALUE_NOT_FOUND 200 from the responsible node)
  lives ``negative_ttl`` seconds (60 by default): the protocol carries no TTL for an absence.
* The cache is bounded (``max_entries``, least recently used dropped first).
* Freshness: for handles of this node's own store, the node's writes call
  :meth:`ResolverCache.invalidate` (wired to :class:`IdentifierService` listeners): the
  handle's entries are dropped, and a write to a prefix record ``0.NA/<p>`` (a delegation
  changed) drops every entry under ``p`` and its sub-prefixes. For answers of other nodes,
  each entry remembers the server that gave it; :mod:`.freshness` follows those servers'
  change feeds and drops the entries of handles they changed
  (:meth:`ResolverCache.invalidate_digests`), else the TTL is the only rule, as in DNS.
* Every lookup by handle is a dictionary lookup (entries are indexed by handle, by the
  handle's change digest and by source), so a batch of 10,000 local writes costs 10,000
  lookups, not a scan of the cache each.

Keys are (handle, index list, type list) with the handle in the canonical form of
:func:`normalize_handle` (prefixes are ASCII case-insensitive, suffixes are not); a Unicode
case mapping would make distinct prefixes (``88.straße``, ``88.STRASSE``) share entries.

Thread safety: the event loop reads and fills the cache while the identifier service's
listeners invalidate it from the threads that run writes; every method takes one lock.
An answer already on its way when its handle was invalidated is not stored
(:meth:`ResolverCache.ticket`).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Hashable, Iterable, Sequence
from dataclasses import dataclass

from millnet.errors import InvalidInput
from millnet.identifiers.core.delegation import GLOBAL_PREFIX
from millnet.protocols.handle import HandleValue, TTLType, normalize_handle

NEGATIVE_TTL = 60
MAX_ENTRIES = 10_000
#: invalidated names and sources remembered for in-flight answers (older ones: all stale)
RECENT_INVALIDATIONS = 4096

Key = tuple[str, tuple[int, ...], tuple[str, ...]]


@dataclass(frozen=True, slots=True)
class Cached:
    """A cached answer: ``values`` for a positive one, else the negative ``code``."""

    expires: float
    values: tuple[HandleValue, ...] | None = None
    code: int = 0
    message: str = ""
    source: Hashable | None = None  # the server that answered (None: not known)


def change_digest(handle: str) -> str:
    """The short name of a handle in a change feed (:mod:`.freshness`): 16 hex digits of the
    SHA-256 of its canonical name. Not a secret: anyone can compute it for a name they guess,
    so the feed answers only about digests it is asked about."""
    return hashlib.sha256(handle.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def _fold(handle: str) -> str:
    """The handle as stores name it (:func:`normalize_handle`: ASCII letters of the prefix
    upper-cased, all of a ``0.*`` handle), so keys and change digests match the responsible
    node's; a name that is not a valid handle is kept as it is (it is only ever a miss)."""
    try:
        return normalize_handle(handle)
    except InvalidInput:
        return handle


def cache_key(handle: str, indexes: Sequence[int] = (), types: Sequence[str] = ()) -> Key:
    return _fold(handle), tuple(indexes), tuple(types)


def positive_lifetime(values: Sequence[HandleValue], now: float) -> float:
    """Seconds the answer may be kept: the smallest TTL of its values (0: do not cache)."""
    lifetime = float("inf")
    for v in values:
        if v.ttl_type == TTLType.ABSOLUTE:
            lifetime = min(lifetime, v.ttl - now)
        else:
            lifetime = min(lifetime, float(v.ttl))
    return max(lifetime, 0.0) if values else 0.0


class ResolverCache:
    """LRU cache of remote resolution answers; ``clock`` is injectable for tests."""

    def __init__(self, max_entries: int = MAX_ENTRIES, negative_ttl: float = NEGATIVE_TTL,
                 clock: Callable[[], float] = time.time) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.max_entries = max_entries
        self.negative_ttl = negative_ttl
        self.clock = clock
        self._entries: OrderedDict[Key, Cached] = OrderedDict()
        self._by_name: dict[str, set[Key]] = {}
        self._by_digest: dict[str, str] = {}
        self._digest_of: dict[str, str] = {}  # name -> change digest, of every cached name
        self._by_source: dict[Hashable, set[Key]] = {}
        self._lock = threading.RLock()
        # Invalidation tickets: a counter bumped by every invalidation, the counter at which
        # each recently invalidated name (and source) last was, and a floor below which every
        # ticket counts as invalidated (wide invalidations, forgotten names).
        self._counter = 0
        self._recent: OrderedDict[object, int] = OrderedDict()
        self._floor = 0
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def ticket(self) -> int:
        """Taken before asking another node: an answer put with it is dropped if its handle
        (or its source) was invalidated since, e.g. by a change feed that overtook it."""
        with self._lock:
            return self._counter

    def get(self, key: Key) -> Cached | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                self.misses += 1
                return None
            if entry.expires <= self.clock():
                self._drop(key)
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return entry

    def put_values(self, key: Key, values: Sequence[HandleValue], *,
                   source: Hashable | None = None, ticket: int | None = None) -> None:
        now = self.clock()
        lifetime = positive_lifetime(values, now)
        if lifetime > 0:
            self._put(key, Cached(now + lifetime, tuple(values), source=source), ticket)

    def put_negative(self, key: Key, code: int, message: str = "", *,
                     source: Hashable | None = None, ticket: int | None = None) -> None:
        if self.negative_ttl > 0:
            self._put(key, Cached(self.clock() + self.negative_ttl, None, code, message,
                                  source), ticket)

    def _stale(self, key: Key, source: Hashable | None, ticket: int | None) -> bool:
        if ticket is None:
            return False
        if self._floor > ticket:
            return True
        return any(self._recent.get(mark, -1) > ticket
                   for mark in (("name", key[0]), ("source", source)))

    def _invalidated(self, mark: object | None = None) -> None:
        """Count an invalidation of ``mark`` (None: of everything)."""
        self._counter += 1
        if mark is None:
            self._floor = self._counter
            return
        self._recent[mark] = self._counter
        self._recent.move_to_end(mark)
        while len(self._recent) > RECENT_INVALIDATIONS:
            _, at = self._recent.popitem(last=False)
            self._floor = max(self._floor, at)

    def _put(self, key: Key, entry: Cached, ticket: int | None = None) -> None:
        with self._lock:
            if not self._stale(key, entry.source, ticket):
                self._store(key, entry)

    def _store(self, key: Key, entry: Cached) -> None:
        if key in self._entries:
            self._drop(key)
        self._entries[key] = entry
        name = key[0]
        keys = self._by_name.get(name)
        if keys is None:
            keys = self._by_name[name] = set()
            digest = self._digest_of[name] = change_digest(name)
            self._by_digest[digest] = name
        keys.add(key)
        if entry.source is not None:
            self._by_source.setdefault(entry.source, set()).add(key)
        while len(self._entries) > self.max_entries:
            self._drop(next(iter(self._entries)))

    def _drop(self, key: Key) -> None:
        entry = self._entries.pop(key)
        name = key[0]
        keys = self._by_name[name]
        keys.discard(key)
        if not keys:
            del self._by_name[name]
            digest = self._digest_of.pop(name)
            if self._by_digest.get(digest) == name:  # (another name could share a digest)
                del self._by_digest[digest]
        if entry.source is not None:
            held = self._by_source[entry.source]
            held.discard(key)
            if not held:
                del self._by_source[entry.source]

    def invalidate(self, handle: str) -> int:
        """Drop the entries of ``handle``; for a prefix record ``0.NA/<p>``, every entry
        under ``p`` and its sub-prefixes too. The number of entries dropped."""
        name = _fold(handle)
        prefix, _, suffix = name.partition("/")
        with self._lock:
            doomed = set(self._by_name.get(name, ()))
            if prefix == GLOBAL_PREFIX and suffix:  # a delegation changed: rare, a scan
                doomed.update(k for k in self._entries if _covers(suffix, k[0]))
                self._invalidated()
            else:
                self._invalidated(("name", name))
            for k in doomed:
                self._drop(k)
            return len(doomed)

    def invalidate_digests(self, digests: Iterable[str]) -> int:
        """Drop the entries of the handles with these change digests (see
        :func:`change_digest`); the number of entries dropped. A digest of no cached handle
        still makes in-flight answers of that handle stale: nothing names it, so every
        ticket taken before counts as invalidated."""
        dropped = 0
        with self._lock:
            for digest in digests:
                name = self._by_digest.get(digest)
                if name is not None:
                    dropped += self.invalidate(name)
                else:
                    self._invalidated()
        return dropped

    def digests_from(self, source: Hashable) -> list[str]:
        """The change digests of the handles with entries from ``source`` (what a follower
        asks that server's change feed about)."""
        with self._lock:
            return list({self._digest_of[k[0]] for k in self._by_source.get(source, ())})

    def invalidate_changes(self, source: Hashable, asked: Collection[str],
                           changed: Iterable[str], *, others: bool) -> int:
        """Apply a change feed's answer from ``source`` to a question about the digests
        ``asked``: drop the ``changed`` handles (only those asked about: a server cannot
        evict the answers of others); when ``others`` changed too, also what nobody asked
        about: answers on their way (their tickets turn stale) and entries of ``source``
        stored since the question. The number of entries dropped."""
        with self._lock:
            dropped = self.invalidate_digests(d for d in changed if d in asked)
            if others:
                self._invalidated()
                late = {k[0] for k in self._by_source.get(source, ())
                        if self._digest_of[k[0]] not in asked}
                for name in late:
                    dropped += self.invalidate(name)
            return dropped

    def holds_from(self, source: Hashable) -> bool:
        """True while some entry came from ``source``."""
        with self._lock:
            return source in self._by_source

    def drop_source(self, source: Hashable) -> int:
        """Drop every entry that came from ``source``; how many."""
        with self._lock:
            doomed = list(self._by_source.get(source, ()))
            self._invalidated(("source", source))
            for k in doomed:
                self._drop(k)
            return len(doomed)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._by_name.clear()
            self._by_digest.clear()
            self._digest_of.clear()
            self._by_source.clear()
            self._invalidated()


def _covers(prefix: str, handle: str) -> bool:
    """True if ``handle`` is under ``prefix`` or one of its sub-prefixes."""
    head = handle.partition("/")[0]
    return head == prefix or head.startswith(prefix + ".")


__all__ = ["MAX_ENTRIES", "NEGATIVE_TTL", "Cached", "ResolverCache", "cache_key",
           "change_digest", "positive_lifetime"]
