"""Pure parts of the identifier service: filters, value checks, error codes, names."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from millnet.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    PermissionDenied,
    StorageError,
    Unauthenticated,
)
from millnet.identifiers import (
    AuthenticationNeeded,
    HandleExists,
    HandleNotFound,
    InvalidValue,
    NotAuthorized,
    NotResponsible,
    ValueExists,
    ValueNotFound,
    error_code,
    select_values,
    type_matches,
)
from millnet.identifiers.core import store as store_module
from millnet.identifiers.core.delegation import ancestors, parent_record, prefix_key
from millnet.identifiers.core.values import check_value, check_values
from millnet.protocols.handle import HandleValue, ResponseCode, ValueReference
from millnet.protocols.handle import normalize_handle as normalize


@pytest.mark.parametrize(("value_type", "wanted", "expected"), [
    ("URL", ["URL"], True),
    ("url", ["URL"], True),  # ASCII case-insensitive
    ("URL.US", ["URL"], False),  # exact entries match exactly
    ("URL.US", ["url."], True),  # a family
    ("URL", ["URL."], True),  # the family's own type
    ("URLX", ["URL."], False),
    ("URL", ["URL.JP"], False),
    ("HS_SITE.PREFIX", ["HS_SITE."], True),
    ("", ["."], False),
    ("ÄRL", ["äRL"], False),  # only ASCII folds
])
def test_type_matches_like_hdllib(value_type: str, wanted: list[str], expected: bool) -> None:
    assert type_matches(value_type, wanted) is expected


def test_select_values_is_index_or_type() -> None:
    a, b, c = (HandleValue(1, "URL"), HandleValue(2, "EMAIL"), HandleValue(3, "URL.ALT"))
    assert select_values([a, b, c]) == (a, b, c)
    assert select_values([a, b, c], [2]) == (b,)
    assert select_values([a, b, c], [2], ["URL."]) == (a, b, c)
    assert select_values([a, b, c], [9], ["EMAIL"]) == (b,)


@pytest.mark.parametrize(("error", "code"), [
    (HandleNotFound("x"), 100), (ValueNotFound("x"), 200), (HandleExists("x"), 101),
    (ValueExists("x"), 201), (InvalidInput("x", field="handle"), 102),
    (InvalidValue("x", "values[0].ttl"), 202), (InvalidInput("x", field="page"), 202),
    (NotAuthorized("x"), 400), (PermissionDenied("x"), 400), (AuthenticationNeeded("x"), 402),
    (Unauthenticated("x"), 403), (NotFound("x"), 100), (Conflict("x"), 101),
    (NotResponsible("x"), 301), (StorageError("x"), 2), (ValueError("x"), 2),
])
def test_error_codes(error: Exception, code: int) -> None:
    assert error_code(error) == ResponseCode(code)


def test_the_codec_s_invalid_handle_error_maps_to_102() -> None:
    with pytest.raises(InvalidInput) as caught:
        normalize("nope")
    assert error_code(caught.value) == ResponseCode.INVALID_HANDLE


u32 = st.integers(-2, 0x1_0000_0001)
u8 = st.integers(-2, 0x101)
some_values = st.builds(
    HandleValue, u32, st.text(max_size=5), st.binary(max_size=4), u8, u32, u32, u8,
    st.lists(st.builds(ValueReference, st.text(max_size=4), u32), max_size=2).map(tuple))


def _slow(values: list[HandleValue]) -> bool:
    try:
        for i, v in enumerate(values):
            check_value(v, f"values[{i}]")
    except InvalidValue:
        return False
    return bool(values) and len({v.index for v in values}) == len(values)


@given(st.lists(some_values, max_size=4))
def test_the_fast_path_accepts_exactly_what_the_full_check_accepts(
        values: list[HandleValue]) -> None:
    try:
        check_values(values)
        accepted = True
    except InvalidValue:
        accepted = False
    assert accepted == _slow(values)


def test_minted_suffixes_sort_by_time(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = iter([1_000_000_000_000_000, 1_000_000_001_000_000])
    monkeypatch.setattr("time.time_ns", lambda: next(clock))
    first, second = store_module.new_suffix(), store_module.new_suffix()
    assert len(first) == 26 and first < second
    assert set(first + second) <= set(store_module._CROCKFORD)


def test_prefix_hierarchy() -> None:
    assert ancestors("88.100.5") == ["88.100.5", "88.100", "88"]
    assert prefix_key("88.abc") == "88.ABC"
    assert parent_record("88.100.5") == "0.NA/88.100"
    assert parent_record("88") == "0.NA/0.NA"
