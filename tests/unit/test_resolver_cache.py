"""The resolver cache's indexes (by handle, by change digest, by source) stay in step with its
entries through puts, replacements, LRU eviction, expiry and every kind of invalidation."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from millnet.identifiers.hierarchy.cache import ResolverCache, cache_key, change_digest
from millnet.protocols.handle import HandleValue

VALUE = HandleValue(1, "URL", b"https://plant.example/x", ttl=100)
NAMES = [f"88.100.{p}/H{i}" for p in (5, 6) for i in range(4)]
SOURCES = ["a", "b", None]


class Clock:
    now = 1000.0

    def __call__(self) -> float:
        return self.now


ops = st.lists(st.one_of(
    st.tuples(st.just("put"), st.sampled_from(NAMES), st.sampled_from([(), (1,)]),
              st.sampled_from(SOURCES), st.booleans()),
    st.tuples(st.just("get"), st.sampled_from(NAMES)),
    st.tuples(st.just("invalidate"), st.sampled_from(NAMES)),
    st.tuples(st.just("digests"), st.lists(st.sampled_from(NAMES), max_size=3)),
    st.tuples(st.just("source"), st.sampled_from(SOURCES[:2])),
    st.tuples(st.just("tick"), st.integers(0, 80)),
), max_size=60)


@settings(max_examples=300, deadline=None)
@given(ops, st.integers(1, 6))
def test_indexes_follow_the_entries(steps: list[tuple[object, ...]], size: int) -> None:
    clock = Clock()
    cache = ResolverCache(max_entries=size, negative_ttl=50, clock=clock)
    model: dict[tuple[object, ...], tuple[float, object]] = {}  # key -> (expires, source)
    order: list[tuple[object, ...]] = []  # least recently used first

    def touch(key: tuple[object, ...]) -> None:
        if key in order:
            order.remove(key)
        order.append(key)

    def drop(key: tuple[object, ...]) -> None:
        model.pop(key, None)
        if key in order:
            order.remove(key)

    for step in steps:
        kind = step[0]
        if kind == "put":
            _, name, indexes, source, negative = step
            key = cache_key(str(name), indexes)  # type: ignore[arg-type]
            if negative:
                cache.put_negative(key, 100, source=source)
                model[key] = (clock.now + 50, source)
            else:
                cache.put_values(key, [VALUE], source=source)
                model[key] = (clock.now + 100, source)
            touch(key)
            while len(model) > size:
                drop(order[0])
        elif kind == "get":
            key = cache_key(str(step[1]))
            live = key in model and model[key][0] > clock.now
            assert (cache.get(key) is not None) == live
            if live:
                touch(key)
            else:
                drop(key)
        elif kind == "invalidate":
            doomed = [k for k in model if k[0] == step[1]]
            assert cache.invalidate(str(step[1])) == len(doomed)
            for k in doomed:
                drop(k)
        elif kind == "digests":
            names = {str(n) for n in step[1]}  # type: ignore[attr-defined]
            doomed = [k for k in model if k[0] in names]
            assert cache.invalidate_digests(change_digest(n) for n in names) == len(doomed)
            for k in doomed:
                drop(k)
        elif kind == "source":
            doomed = [k for k, (_, source) in model.items() if source == step[1]]
            assert cache.holds_from(step[1]) == bool(doomed)
            assert cache.drop_source(step[1]) == len(doomed)
            for k in doomed:
                drop(k)
        else:
            clock.now += step[1]  # type: ignore[operator]
        assert len(cache) == len(model)


def test_a_prefix_record_drops_its_prefix_and_sub_prefixes_only() -> None:
    cache = ResolverCache()
    for name in ("88.100.5/A", "88.100.5.1/B", "88.1000/C", "88.100/D"):
        cache.put_values(cache_key(name), [VALUE], source="a")
    assert cache.invalidate("0.NA/88.100.5") == 2
    assert cache.invalidate_digests([change_digest("0.NA/88.100")]) == 0  # not a cached name
    assert cache.invalidate("0.na/88.100") == 1
    assert len(cache) == 1 and cache.holds_from("a")


def test_the_feed_of_a_server_is_found_in_its_site_information() -> None:
    from millnet.identifiers.hierarchy.client import Server
    from millnet.identifiers.hierarchy.freshness import _http_port
    from millnet.protocols.handle import (
        ServerRecord,
        ServiceInterface,
        SiteInfo,
        TransportProtocol,
        address_octets,
    )

    def record(n: int, ip: str, port: int, http: int | None) -> ServerRecord:
        itfs = [ServiceInterface(3, TransportProtocol.TCP, port),
                ServiceInterface(2, TransportProtocol.UDP, port)]
        if http is not None:
            itfs.append(ServiceInterface(3, TransportProtocol.HTTP, http))
        return ServerRecord(n, address_octets(ip), interfaces=tuple(itfs))

    replicas = SiteInfo(servers=(record(1, "10.0.0.1", 2641, 8000),
                                 record(2, "10.0.0.2", 2641, 8001),
                                 record(3, "10.0.0.1", 2642, 8002)))
    assert _http_port(replicas, Server("10.0.0.2", 2641, 2641)) == 8001
    assert _http_port(replicas, Server("10.0.0.1", 2642, 2642)) == 8002
    assert _http_port(replicas, Server("10.0.0.9", 2641, 2641)) is None  # ambiguous
    wildcard = SiteInfo(servers=(record(1, "0.0.0.0", 2641, 8000),))
    assert _http_port(wildcard, Server("10.0.0.5", 2641, 2641)) == 8000
    assert _http_port(wildcard, Server("10.0.0.5", 9999, 9999)) == 8000  # the only record
    assert _http_port(SiteInfo(servers=(record(1, "10.0.0.1", 2641, None),)),
                      Server("10.0.0.1", 2641, 2641)) is None  # no feed: TTLs only


def test_threads_filling_and_invalidating_keep_the_cache_consistent() -> None:
    """The event loop fills the cache while write threads invalidate it (service listeners)
    and the change follower drops sources: found by review raising KeyError without a lock."""
    import sys
    import threading

    cache = ResolverCache(max_entries=64)
    errors: list[str] = []
    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)

    def run(work: object) -> None:
        try:
            for i in range(20_000):
                work(i)  # type: ignore[operator]
        except Exception as exc:
            errors.append(repr(exc))

    jobs = [
        lambda i: cache.put_values(cache_key(f"88.1/h{i % 50}", (i % 3,)), [VALUE],
                                   source="ab"[i % 2]),
        lambda i: cache.invalidate(f"88.1/h{i % 50}" if i % 500 else "0.NA/88.1"),
        lambda i: cache.drop_source("a") if i % 100 == 0 else cache.get(cache_key("88.1/h1")),
        lambda i: cache.invalidate_digests([change_digest(f"88.1/h{i % 50}")]),
    ]
    threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(switch)
    assert errors == []
    cache.clear()
    assert len(cache) == 0 and not cache.holds_from("a") and not cache.holds_from("b")


def test_keys_use_the_stores_canonical_names() -> None:
    """Prefixes fold ASCII letters only (found by review: a Unicode upper-case made
    88.straße and 88.STRASSE one key), and change digests match the store's names."""
    cache = ResolverCache()
    cache.put_values(cache_key("88.STRASSE/login"), [VALUE], source="a")
    assert cache.get(cache_key("88.straße/login")) is None
    assert cache.get(cache_key("88.strasse/login")) is not None  # ASCII case folds
    for handle, stored in (("88.é/x", "88.é/x"), ("0.na/88.abc", "0.NA/88.ABC")):
        cache.put_values(cache_key(handle), [VALUE], source="a")
        assert cache.invalidate_digests([change_digest(stored)]) == 1


def test_an_answer_overtaken_by_an_invalidation_is_not_stored() -> None:
    cache = ResolverCache()
    key = cache_key("88.100.5/A")
    ticket = cache.ticket()  # the resolver asks the responsible node...
    cache.invalidate("88.100.5/A")  # ...and the change feed reports a change meanwhile
    cache.put_values(key, [VALUE], source="a", ticket=ticket)
    assert cache.get(key) is None
    cache.put_values(key, [VALUE], source="a", ticket=cache.ticket())
    assert cache.get(key) is not None
    other = cache.ticket()
    cache.invalidate("88.100.5/B")  # another handle: no effect on this answer
    cache.put_values(cache_key("88.100.5/C"), [VALUE], source="a", ticket=other)
    assert cache.get(cache_key("88.100.5/C")) is not None
    # A digest of a handle not in the cache cannot be told apart: in-flight answers go.
    late = cache.ticket()
    cache.invalidate_digests([change_digest("88.100.5/D")])
    cache.put_values(cache_key("88.100.5/D"), [VALUE], source="a", ticket=late)
    assert cache.get(cache_key("88.100.5/D")) is None
    # A source dropped (its feed reset) makes its in-flight answers stale too.
    late = cache.ticket()
    cache.drop_source("a")
    cache.put_values(cache_key("88.100.5/E"), [VALUE], source="a", ticket=late)
    cache.put_values(cache_key("88.100.5/F"), [VALUE], source="b", ticket=late)
    assert cache.get(cache_key("88.100.5/E")) is None
    assert cache.get(cache_key("88.100.5/F")) is not None
