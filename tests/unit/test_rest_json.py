"""Handle.Net JSON values <-> HandleValue: round trips for every data format, and malformed
bodies give InvalidValue naming the field, never anything else."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from millnet.identifiers.core.errors import InvalidValue
from millnet.identifiers.http.rest_json import parse_values, value_json
from millnet.protocols import handle as h
from tests.unit.handle_strategies import admins, blobs, references, sites, u32

_ENCODE = msgspec.json.Encoder().encode
_DECODE = msgspec.json.Decoder().decode
names = st.text(st.characters(codec="utf-8"), min_size=1,
                max_size=12)
# Blank types are refused (a value needs a type); HS_ types are canonicalized, not plain.
plain = st.tuples(names.filter(lambda t: t.strip() != "" and not t.upper().startswith("HS_")),
                  blobs)
typed = st.one_of(
    plain,
    st.tuples(st.just("HS_ADMIN"), admins.map(
        lambda a: h.encode_admin(h.AdminRecord(a.permissions & 0x0FFF, a.handle, a.index)))),
    st.tuples(st.just("HS_VLIST"), references.map(h.encode_vlist)),
    st.tuples(st.just("HS_SITE"), sites.map(h.encode_site)),
)
handle_values = st.builds(
    lambda index, kind, ttl_type, ttl, perms, refs: h.HandleValue(
        index, kind[0], kind[1], ttl_type, ttl, 0, perms, refs),
    u32, typed, st.sampled_from([h.TTLType.RELATIVE, h.TTLType.ABSOLUTE]),
    st.integers(0, 2**31 - 1), st.integers(0, 15), references)


@given(st.lists(handle_values, max_size=4))
def test_values_survive_json(values: list[h.HandleValue]) -> None:
    body = _DECODE(_ENCODE({"values": [value_json(v) for v in values]}))
    parsed, named = parse_values(body)
    assert named is None
    assert len(parsed) == len(values)
    for sent, back in zip(values, parsed, strict=True):
        assert (back.index, back.type, back.ttl_type, back.ttl, back.permissions,
                back.references) == (sent.index, sent.type, sent.ttl_type, sent.ttl,
                                     sent.permissions, sent.references)
        if sent.type == "HS_SITE":  # re-encoded from its JSON: the same site
            assert h.decode_site(back.data) == h.decode_site(sent.data)
        else:
            assert back.data == sent.data


json_values: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(["values", "index", "type", "data", "format", "value", "ttl",
                         "permissions", "references", "handle", "x"]), inner, max_size=5),
    max_leaves=20)


@given(json_values)
def test_malformed_bodies_name_the_field(body: Any) -> None:
    try:
        parse_values(body)
    except InvalidValue as exc:
        assert exc.field  # names what was wrong
        assert exc.field.split("[")[0].split(".")[0] in {"values", "index", "type", "data"}


@pytest.mark.parametrize("version", ["2.999", "256.1", "1.2.3", "2.", "02.0010"])
def test_a_site_version_outside_the_wire_format_names_the_field(version: str) -> None:
    """Found by fuzzing: 2.999 reached the site encoder (struct.error, an HTTP 500)."""
    body = [{"index": 1, "type": "HS_SITE",
             "data": {"format": "site", "value": {"protocolVersion": version, "servers": []}}}]
    with pytest.raises(InvalidValue) as caught:
        parse_values(body)
    assert caught.value.field == "values[0].data.value.protocolVersion"
