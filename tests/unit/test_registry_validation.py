"""The registry's pure checks: names, slugs, the ISA-95 kind order, token format."""

from __future__ import annotations

import re
import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from millnet.errors import InvalidInput
from millnet.model import AssetKind
from millnet.registry.assets import check_kind, check_path
from millnet.registry.tokens import find_token, hash_token, new_token
from millnet.registry.validation import check_asset_name, check_name, check_slug

# Mostly ordinary text, with the characters the rules are about mixed in often.
names = st.text(
    st.one_of(st.characters(), st.sampled_from(["/", " ", "\t", "\x00", "\x7f", "\x85", "a"])),
    max_size=210,
)


def _acceptable(name: str, slash_ok: bool) -> bool:
    return (bool(name.strip()) and len(name) <= 200
            and not any(unicodedata.category(c) in ("Cc", "Cs") for c in name)
            and (slash_ok or "/" not in name))


@given(names)
def test_asset_names_are_accepted_exactly_when_they_follow_the_rules(name: str) -> None:
    try:
        assert check_asset_name(name, "path[2].name") == name
    except InvalidInput as err:
        assert err.field == "path[2].name"
        assert str(err).startswith("path[2].name: ")
        assert not _acceptable(name, slash_ok=False)
    else:
        assert _acceptable(name, slash_ok=False)


@given(names)
def test_point_names_may_contain_slashes(name: str) -> None:
    try:
        check_name(name, "specs[0].name")
    except InvalidInput:
        assert not _acceptable(name, slash_ok=True)
    else:
        assert _acceptable(name, slash_ok=True)


@given(st.text(max_size=70))
def test_slugs(value: str) -> None:
    ok = re.fullmatch(r"[a-z0-9][a-z0-9_-]*", value, re.ASCII) is not None and len(value) <= 63
    try:
        check_slug(value, "name")
    except InvalidInput as err:
        assert err.field == "name" and not ok
    else:
        assert ok


@pytest.mark.parametrize("parent", [None, *AssetKind])
@pytest.mark.parametrize("kind", list(AssetKind))
def test_a_child_is_exactly_one_level_below_its_parent(
        parent: AssetKind | None, kind: AssetKind) -> None:
    levels = list(AssetKind)
    allowed = (kind is AssetKind.ENTERPRISE if parent is None
               else levels.index(kind) == levels.index(parent) + 1)
    if allowed:
        assert check_kind(kind.value, parent, "kind") is kind
    else:
        with pytest.raises(InvalidInput) as err:
            check_kind(kind, parent, "kind")
        assert err.value.field == "kind"


def test_check_path_names_the_wrong_element() -> None:
    with pytest.raises(InvalidInput) as err:
        check_path([(AssetKind.ENTERPRISE, "a"), ("site",)])  # type: ignore[list-item]
    assert err.value.field == "path[1]"
    with pytest.raises(InvalidInput) as err:
        check_path("acme/plant")  # type: ignore[arg-type]
    assert err.value.field == "path"


def test_new_tokens_are_random_well_formed_and_hashed() -> None:
    tokens = {new_token() for _ in range(100)}
    assert len(tokens) == 100
    for plaintext, prefix in tokens:
        assert re.fullmatch(rf"mn_{prefix}_[A-Za-z0-9_-]{{43}}", plaintext)
        assert re.fullmatch(r"[0-9a-f]{64}", hash_token(plaintext))


@given(st.one_of(st.text(), st.binary(), st.integers(), st.none()))
def test_garbage_is_never_a_token(value: object) -> None:
    # find_token parses before it touches the connection; garbage never reaches the database.
    assert find_token(None, value) is None  # type: ignore[arg-type]
