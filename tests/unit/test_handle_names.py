"""The case rule for handle names: prefix ASCII-upcased, suffix kept, global handles whole."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from millnet.errors import InvalidInput
from millnet.protocols.handle import (
    MAX_HANDLE_BYTES,
    normalize_handle,
    prefix_handle,
    split_handle,
)

NAME_CHARS = st.characters(codec="utf-8", exclude_categories=["Cc"])


@pytest.mark.parametrize(("raw", "normal"), [
    ("88.100.5/Pump-7", "88.100.5/Pump-7"),
    ("abc.def/Item/With/Slashes", "ABC.DEF/Item/With/Slashes"),
    ("cn.zj/批次-001", "CN.ZJ/批次-001"),
    ("0.na/88.100.5", "0.NA/88.100.5"),  # global handles are prefix names: upcased whole
    ("0.NA/abc.def", "0.NA/ABC.DEF"),
    ("ß.x/ß", "ß.X/ß"),  # only ASCII folds
    ("a/ b ", "A/ b "),
])
def test_normalize(raw: str, normal: str) -> None:
    assert normalize_handle(raw) == normal


@pytest.mark.parametrize(("raw", "why"), [
    ("", "no '/'"), ("88.100.5", "no '/'"), ("/abc", "empty prefix"), ("abc/", "empty suffix"),
    ("a/b\x00", "control character U\\+0000"), ("a/b\n", "U\\+000A"), ("a\x7f/b", "U\\+007F"),
    ("a/\x85", "U\\+0085"), ("a/\ud800", "U\\+D800"),
    ("a/" + "x" * MAX_HANDLE_BYTES, "longer than"), ("a/" + "é" * 2100, "in UTF-8"),
])
def test_invalid_handles(raw: str, why: str) -> None:
    with pytest.raises(InvalidInput, match=why) as info:
        normalize_handle(raw)
    assert info.value.field == "handle"


@given(st.text(NAME_CHARS, min_size=1, max_size=20).filter(lambda s: "/" not in s),
       st.text(NAME_CHARS, min_size=1, max_size=20))
def test_prefix_is_case_insensitive_suffix_is_not(prefix: str, suffix: str) -> None:
    a = normalize_handle(f"{prefix}/{suffix}")
    assert normalize_handle(a) == a  # idempotent
    assert normalize_handle(f"{prefix.lower()}/{suffix}") == normalize_handle(
        f"{prefix.upper()}/{suffix}") or not prefix.isascii()
    if not prefix.startswith("0."):
        assert a.partition("/")[2] == suffix


def test_helpers() -> None:
    assert split_handle("88.100.5/Pump/7") == ("88.100.5", "Pump/7")
    assert prefix_handle("cn.zj") == "0.NA/CN.ZJ"
