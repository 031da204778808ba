"""Property tests end to end (issue 9): hypothesis-generated JSON and Sparkplug B messages with
hostile values go through a real Mosquitto into a real node and its DuckDB store.

The properties: the node stays up (no source restarted, no unexpected error), every valid sample
is stored, every invalid message or metric is counted, and a valid message sent after the hostile
ones is stored.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from millnet.model import Quality
from millnet.model.limits import MAX_TS_MS, NAME_MAX, UNIT_MAX, name_problem
from millnet.node import Node, build_node, running
from tests.servers import Mosquitto, find_mosquitto
from tests.support import pbwire as w
from tests.support.mqttpeer import Peer
from tests.support.nodes import connected, metric_value, node_settings, until

T0 = 1_767_225_600_000


@dataclass
class LiveNode:
    node: Node
    peer: Peer

    def value(self, name: str, labels: dict[str, str] | None = None) -> float:
        return metric_value(self.node, name, labels)

    def rejected(self) -> float:
        samples = self.node.metrics.registry.get_sample_value
        return sum(samples("millnet_ingest_rejected_total", {"reason": r}) or 0.0
                   for r in _reasons(self.node))

    def wait(self, predicate: Callable[[], bool], what: str, limit_s: float = 5.0) -> None:
        deadline = time.monotonic() + limit_s
        while not predicate():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(0.01)

    def assert_healthy(self) -> None:
        assert self.value("millnet_ingest_rejected_total", {"reason": "internal_error"}) == 0
        for task in ("mqtt-json", "sparkplug", "maintenance"):
            assert self.value("millnet_task_restarts_total", {"task": task}) == 0, task


def _reasons(node: Node) -> list[str]:
    return [s.labels["reason"] for m in node.metrics.rejected.collect() for s in m.samples
            if s.name.endswith("_total")]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveNode]:
    binary = find_mosquitto()
    if binary is None:
        pytest.skip("mosquitto binary not installed (apt-get install mosquitto)")
    root = tmp_path_factory.mktemp("props")
    broker = Mosquitto(binary, root / "mosquitto")
    broker.start()
    node = build_node(node_settings(root, broker.port))
    ready = threading.Event()
    stop: list[Callable[[], object]] = []
    failure: list[BaseException] = []

    async def serve() -> None:
        done = asyncio.Event()
        stop.append(lambda: loop.call_soon_threadsafe(done.set))
        async with running(node, api=False):
            await until(lambda: connected(node, "mqtt-json") and connected(node, "sparkplug"))
            ready.set()
            await done.wait()

    loop = asyncio.new_event_loop()

    def thread_main() -> None:
        try:
            loop.run_until_complete(serve())
        except BaseException as exc:  # reported by the fixture's teardown
            failure.append(exc)
            ready.set()

    thread = threading.Thread(target=thread_main, daemon=True)
    thread.start()
    assert ready.wait(20), "node did not connect"
    peer = Peer(broker.port, "hypothesis")
    try:
        yield LiveNode(node, peer)
    finally:
        peer.close()
        if stop:
            stop[0]()
        thread.join(20)
        broker.kill()
    assert not failure, failure


# -- JSON ----------------------------------------------------------------------------------------

_NAME = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x2FF, exclude_characters="/",
                              exclude_categories=["Cc"]), min_size=1, max_size=12).filter(
    lambda s: name_problem(s) is None)  # a name of only spaces (U+00A0 too) is blank

_VALUE = st.one_of(st.floats(allow_nan=False, allow_infinity=False, width=64), st.booleans(),
                   st.integers(-(2**53), 2**53), st.text(max_size=8).filter(
                       lambda s: not any(0xD800 <= ord(c) <= 0xDFFF for c in s)))
_TS = st.integers(0, MAX_TS_MS)


@st.composite
def valid_json(draw: st.DrawFn) -> tuple[bytes, int]:
    values = draw(st.dictionaries(_NAME, _VALUE, min_size=1, max_size=5))
    ts = draw(st.one_of(st.none(), _TS))
    body: dict[str, object] = {"values": values}
    if ts is not None:
        body["ts"] = ts
    return json.dumps(body).encode(), len(values)


def _nested(depth: int) -> object:
    out: object = 1
    for _ in range(depth):
        out = [out]
    return out


_HOSTILE_FIELDS: list[st.SearchStrategy[dict[str, object]]] = [
    st.integers(MAX_TS_MS + 1, 2**70).map(lambda t: {"ts": t}),
    st.integers(-(2**70), -1).map(lambda t: {"ts": t}),
    st.sampled_from(["9999-01-01T00:00:00+00:00", "0001-01-01T00:00:00Z", "2262-04-12T00:00:00Z",
                     "not a time", "2026-01-01T00:00:00"]).map(lambda t: {"ts": t}),
    st.sampled_from(["", " ", "   ", "\t", "a\x00b", "x" * (NAME_MAX + 1), "\x85"]).map(
        lambda n: {"point": n}),
    st.sampled_from([float("nan"), float("inf"), -float("inf"), 1e400]).map(
        lambda v: {"value": v}),
    st.sampled_from([[1], {"a": 1}, _nested(200), _nested(5000)]).map(lambda v: {"value": v}),
    st.integers(UNIT_MAX + 1, 300).map(lambda n: {"unit": "u" * n}),
    st.sampled_from(["great", "", 3]).map(lambda q: {"quality": q}),
    st.just({"extra": 1}),
]


@st.composite
def hostile_json(draw: st.DrawFn) -> bytes:
    body: dict[str, object] = {"point": draw(_NAME), "value": draw(_VALUE), "ts": T0}
    body.update(draw(st.one_of(*_HOSTILE_FIELDS)))
    try:
        return json.dumps(body, allow_nan=True).encode()
    except RecursionError:
        return b'{"point":"p","value":' + b"[" * 5000 + b"]" * 5000 + b"}"


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(st.one_of(valid_json(), hostile_json()), min_size=1, max_size=8),
       st.integers(0, 99))
def test_json_messages_are_stored_or_counted(live: LiveNode, messages: list[tuple[bytes, int]
                                                                             | bytes],
                                             device: int) -> None:
    received = live.value("millnet_ingest_messages_received_total", {"source": "json"})
    stored = live.value("millnet_ingest_samples_stored_total")
    rejected = live.rejected()
    expect_stored = 0
    expect_rejected = 0
    for message in messages:
        if isinstance(message, tuple):
            payload, count = message
            expect_stored += count
        else:
            payload = message
            expect_rejected += 1
        live.peer.publish(f"millnet/site/area/line/dev-{device}", payload)
    live.wait(lambda: live.value("millnet_ingest_messages_received_total",
                                 {"source": "json"}) == received + len(messages), "messages")
    live.wait(lambda: live.value("millnet_ingest_samples_stored_total") == stored + expect_stored,
              f"{expect_stored} samples stored")
    assert live.rejected() == rejected + expect_rejected
    live.assert_healthy()


# -- Sparkplug B -----------------------------------------------------------------------------

_DATATYPES = [w.DOUBLE, w.INT64, w.BOOLEAN, w.STRING, w.FLOAT, w.INT32, 0, 7, 13, 99, 2**31]


@st.composite
def hostile_metric(draw: st.DrawFn, *, alias: int) -> bytes:
    name = draw(st.one_of(_NAME, st.sampled_from(["", "   ", "x" * 300, "a\x00b", "\x85"]),
                          st.binary(max_size=8).map(lambda b: b.decode("latin-1"))))
    datatype = draw(st.sampled_from(_DATATYPES))
    ts = draw(st.one_of(st.none(), st.integers(0, 2**64 - 1)))
    raw = w.f_bytes(1, name.encode("utf-8", "surrogatepass")) + w.f_varint(2, alias)
    if ts is not None:
        raw += w.f_varint(3, ts)
    raw += w.f_varint(4, datatype)
    value = draw(st.one_of(
        st.floats(allow_nan=True, allow_infinity=True).map(lambda x: w.f_double(13, x)),
        st.integers(0, 2**64 - 1).map(lambda n: w.f_varint(11, n)),
        st.binary(max_size=20).map(lambda b: w.f_bytes(15, b)),  # maybe not UTF-8
        st.just(w.f_varint(7, 1)),  # is_null
        st.just(b""),
    ))
    if draw(st.booleans()):
        unit = draw(st.text(max_size=100))
        prop = w.f_varint(1, w.STRING) + w.f_bytes(8, unit.encode("utf-8", "surrogatepass"))
        raw += w.f_bytes(9, w.f_bytes(1, b"engUnit") + w.f_bytes(2, prop))
    return raw + value


@st.composite
def sparkplug_session(draw: st.DrawFn) -> list[tuple[str, bytes]]:
    """An NBIRTH and DBIRTH with hostile metrics, then DATA (some garbage) for them."""
    n = draw(st.integers(1, 6))
    metrics = [draw(hostile_metric(alias=i + 1)) for i in range(n)]
    ts = draw(st.one_of(st.none(), st.integers(0, 2**64 - 1)))
    nbirth = w.payload([w.metric(name="bdSeq", datatype=w.INT64, value=0)], ts=ts, seq=0)
    dbirth = w.payload(metrics, ts=ts, seq=1)
    messages = [("NBIRTH/E", nbirth), ("DBIRTH/E/D", dbirth)]
    for seq in range(2, draw(st.integers(2, 5))):
        if draw(st.booleans()):
            data = w.payload(draw(st.lists(st.sampled_from(metrics), max_size=4)), ts=T0, seq=seq)
        else:
            data = draw(st.binary(max_size=64))
        messages.append(("DDATA/E/D", data))
    return messages


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(sparkplug_session(), st.integers(0, 10**6))
def test_sparkplug_sessions_never_stop_the_node(live: LiveNode,
                                                 session: list[tuple[str, bytes]],
                                                 group: int) -> None:
    received = live.value("millnet_ingest_messages_received_total", {"source": "sparkplug"})
    for suffix, payload in session:
        live.peer.publish(f"spBv1.0/G{group}/{suffix}", payload, qos=0)
    # A valid edge node afterwards is heard, and its value stored.
    canary = f"C{group}"
    value = float(group)
    live.peer.publish(f"spBv1.0/{canary}/NBIRTH/E", w.payload([
        w.metric(name="bdSeq", datatype=w.INT64, value=0),
        w.metric(name="Canary", alias=1, datatype=w.DOUBLE, value=value, ts=T0)], ts=T0, seq=0))
    live.wait(lambda: live.value("millnet_ingest_messages_received_total",
                                 {"source": "sparkplug"}) >= received + len(session) + 1,
              "sparkplug messages")

    def canary_stored() -> bool:
        node = live.node
        try:
            device = node.registry.find_asset(node.tenant_id, f"default/{canary}/E/E/E")
        except Exception:  # not created yet
            return False
        ids = [p.series_id for p in node.registry.list_points(node.tenant_id, device.id)
               if p.name == "Canary"]
        last = node.store.last_values(ids)
        return bool(ids) and ids[0] in last and last[ids[0]].value == value

    live.wait(canary_stored, "the canary's birth value")
    live.assert_healthy()


def test_nan_values_sent_as_json_null_are_bad_quality(live: LiveNode) -> None:
    stored = live.value("millnet_ingest_samples_stored_total")
    live.peer.publish("millnet/site/area/line/nulls", b'{"point":"n","value":null,"ts":1}')
    live.wait(lambda: live.value("millnet_ingest_samples_stored_total") >= stored + 1, "null")
    node = live.node
    [point] = [p for p in node.registry.list_points(node.tenant_id) if p.name == "n"]
    last = node.store.last_values([point.series_id])[point.series_id]
    assert last.value is None and last.quality is Quality.BAD  # NaN, as the store reports it
    [row] = node.store.query_range([point.series_id], 0, 10**7)
    assert row.value is None and row.quality is Quality.BAD
