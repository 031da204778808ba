"""The fuzz targets of tests/fuzz (the node's UDP and TCP request paths over a real store, the
REST JSON body parser, PUT /api/handles over a real store), fed by hypothesis in the default
run: generated requests, mutated requests, hostile value bodies and random bytes. Longer,
coverage-guided runs: ``python -m tests.fuzz.run``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from millnet.protocols import handle as h
from tests.fuzz.targets import NativeTarget, RestTarget, rest_json
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
    from millnet.identifiers.hierarchy.client import resolution_request

    (answer,) = node.udp(h.encode_message(resolution_request("88.100.5/PUMP-1")))
    body = h.decode_message(answer).body
    assert isinstance(body, h.ResolutionResponse)
    assert [v.index for v in body.values] == [1, 100]  # URL and HS_ADMIN; NOTE is hidden


@RUNS
@given(json_text.map(lambda v: json.dumps(v).encode()) | st.binary(max_size=200))
def test_rest_json_bodies(data: bytes) -> None:
    rest_json(data)


# ----------------------------------------------------------------------------- PUT bodies

def _mostly(valid: st.SearchStrategy[Any], hostile: st.SearchStrategy[Any]
            ) -> st.SearchStrategy[Any]:
    """``valid`` four times in five: a body with one bad field in several reaches the checks
    behind the parser (layouts, rights, the store) often enough."""
    # not one_of(valid, valid, ...): hypothesis flattens nested one_of into equal branches
    return st.integers(0, 4).flatmap(lambda pick: valid if pick else hostile)


#: integers where the API wants one, and everything a client might send instead
hostile_ints = (st.integers(-(2**70), 2**70) | st.sampled_from([0, 2**32 - 1, 2**32, 2**64])
                | st.sampled_from(["1", " 7 ", "2" * 30, "-1", "0x10", "1e3"]) | st.floats()
                | st.booleans() | st.none() | st.lists(st.integers(), max_size=2))
indexes = _mostly(st.integers(1, 3) | st.integers(90, 110) | st.integers(300, 302),
                  hostile_ints)
#: HS_ types in odd case, secrets, blank and overlong types, look-alikes, and not-strings
type_names = _mostly(
    st.sampled_from(["URL", "EMAIL", "HS_ADMIN", "hs_admin", "Hs_AdMiN", "HS_SECKEY",
                     "hs_seckey", "HS_VLIST", "hs_site.prefix", "HS_PUBKEY", "hs_admın",
                     "HS_ADMİN"]),
    st.sampled_from(["", " ", "\t", "a\0b"]) | st.text(min_size=1020, max_size=1030)
    | st.text(max_size=8) | st.integers() | st.none() | st.lists(st.text(max_size=3)))
admin_data = st.fixed_dictionaries({"format": st.just("admin"), "value": st.fixed_dictionaries(
    {"handle": _mostly(st.sampled_from(["88.100.5/ADMIN", "88.100.5/OTHER"]),
                       st.sampled_from(["", "x" * 300]) | st.integers()),
     "index": _mostly(st.integers(0, 400), hostile_ints),
     "permissions": _mostly(st.sampled_from(["*", "011111111111", "1"]),
                            st.text("01*", max_size=14) | hostile_ints)})})
data = _mostly(st.text(max_size=30) | admin_data,
               st.integers() | json_text | st.fixed_dictionaries({"format": st.sampled_from(
                   ["string", "base64", "hex", "admin", "vlist", "site", "key", "STRING",
                    "other"]), "value": json_text}))
hostile_value = st.fixed_dictionaries(
    {"index": indexes, "type": type_names, "data": data},
    optional={"permissions": _mostly(st.sampled_from(["1110", "1111", "0", "*"]),
                                     st.text("01*", max_size=6) | hostile_ints),
              "ttl": _mostly(st.integers(0, 86400),
                             hostile_ints | st.sampled_from(["2030-01-01T00:00:00Z", "soon"])),
              "references": st.lists(st.fixed_dictionaries(
                  {"handle": st.text(max_size=5), "index": hostile_ints}), max_size=2)
              | json_text})
hostile_body = _mostly(
    st.lists(hostile_value, min_size=1, max_size=4)
    | st.fixed_dictionaries({"values": st.lists(hostile_value, max_size=4)},
                            optional={"handle": st.sampled_from(["88.100.5/TARGET", "x"])}),
    hostile_value | json_text | st.fixed_dictionaries({"values": json_text}))


def _nested(depth: int, kind: int) -> bytes:
    """A body nested ``depth`` deep (built as text: json.dumps itself would recurse)."""
    if kind == 0:
        return b"[" * depth + b"]" * depth
    inner = b'{"format":"admin","value":' * depth + b"1" + b"}" * depth
    return b'[{"index":1,"type":"URL","data":' + inner + b"}]"


@pytest.fixture(scope="module")
def rest() -> Iterator[RestTarget]:
    target = RestTarget()
    yield target
    target.close()


@RUNS
@given(st.integers(0, 255), hostile_body)
def test_put_bodies_with_hostile_values(rest: RestTarget, variant: int, body: object) -> None:
    rest.put(bytes([variant]) + json.dumps(body).encode())


@settings(RUNS, max_examples=40)
@given(st.integers(0, 255), st.integers(1, 200_000), st.integers(0, 1))
def test_put_bodies_nested_deeply(rest: RestTarget, variant: int, depth: int,
                                  kind: int) -> None:
    assert rest.put(bytes([variant]) + _nested(depth, kind)) < 500


@pytest.mark.parametrize(("values", "field"), [
    ([{"index": "one", "type": "URL", "data": "x"}], "values[0].index"),
    ([{"index": 2**40, "type": "URL", "data": "x"}], "values[0].index"),
    ([{"index": 1, "type": 7, "data": "x"}], "values[0].type"),
    ([{"index": 1, "type": " ", "data": "x"}], "values[0].type"),
    ([{"index": 1, "type": "X" * 1025, "data": "x"}], "values[0].type"),
    ([{"index": 1, "type": "URL", "data": {"format": "admin", "value": []}}],
     "values[0].data.value"),
    ([{"index": 1, "type": "URL", "data": "x", "ttl": [1]}], "values[0].ttl"),
    ([{"index": 1, "type": "hs_admin", "data": "not an admin record"}], "values[0].data"),
])
def test_a_refused_body_names_its_field(rest: RestTarget, values: object, field: str) -> None:
    status = rest.put(b"\0" + json.dumps({"values": values}).encode())
    assert status == 400
    assert rest.last_message.startswith(f"{field}: "), rest.last_message


def test_a_refused_put_changes_nothing(rest: RestTarget) -> None:
    """Found by fuzzing: ?index=various replaced the values it could, then refused the
    others, and answered 400 with the replacement stored (and named the wrong value)."""
    body = [{"index": 1, "type": "URL", "data": "https://changed.example/"},
            {"index": 5, "type": "hs_admin", "data": "not an admin record"}]
    assert rest.put(b"\2" + json.dumps(body).encode()) == 400  # asserts nothing changed
    assert rest.last_message.startswith("values[1].data: "), rest.last_message
