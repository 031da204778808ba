"""The fuzz targets of tests/fuzz (the node's UDP and TCP request paths over a real store, the
REST JSON body parser), fed by hypothesis in the default run: generated requests, mutated
requests and random bytes. Longer, coverage-guided runs: ``python -m tests.fuzz.run``."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from millnet.protocols import handle as h
from tests.fuzz.targets import NativeTarget, rest_json
from tests.support.mutate import Mutation, mutate
from tests.support.mutate import mutations as mutations_of
from tests.unit.handle_strategies import messages, requests

RUNS = settings(max_examples=300, deadline=None,
                suppress_health_check=[HealthCheck.too_slow,
                                       HealthCheck.function_scoped_fixture])
mutations = mutations_of()
request_messages = messages(requests)
json_text = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["index", "type", "data", "format", "value", "ttl", "values",
                         "handle", "permissions", "timestamp", "x"]), inner, max_size=5),
    max_leaves=20)


@pytest.fixture(scope="module")
def node() -> Iterator[NativeTarget]:
    target = NativeTarget()
    yield target
    target.close()


@RUNS
@given(request_messages, mutations)
def test_requests_over_udp(node: NativeTarget, msg: h.Message, muts: list[Mutation]) -> None:
    data = h.encode_message(msg)
    node.udp(data)
    node.udp(mutate(data, muts))


@RUNS
@given(st.binary(max_size=400))
def test_random_datagrams(node: NativeTarget, data: bytes) -> None:
    node.udp(data)


@RUNS
@given(st.lists(request_messages, min_size=1, max_size=3), mutations)
def test_requests_over_tcp(node: NativeTarget, msgs: list[h.Message],
                           muts: list[Mutation]) -> None:
    stream = b"".join(h.encode_message(m) for m in msgs)
    node.tcp(stream)
    node.tcp(mutate(stream, muts))


def test_a_plain_resolution_is_answered_without_the_hidden_value(node: NativeTarget) -> None:
    from millnet.identifiers.client import resolution_request

    (answer,) = node.udp(h.encode_message(resolution_request("88.100.5/PUMP-1")))
    body = h.decode_message(answer).body
    assert isinstance(body, h.ResolutionResponse)
    assert [v.index for v in body.values] == [1, 100]  # URL and HS_ADMIN; NOTE is hidden


@RUNS
@given(json_text.map(lambda v: json.dumps(v).encode()) | st.binary(max_size=200))
def test_rest_json_bodies(data: bytes) -> None:
    rest_json(data)
