"""Version order (a total order over PEP 440 and vendor strings, agreeing with packaging) and
CPE 2.3 formatted strings (parse, escape, format, wildcards), by examples and properties."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from packaging.version import Version

from millnet.errors import InvalidInput
from millnet.federation.cpe import (
    Cpe,
    attribute_matches,
    bind,
    format_cpe,
    parse_cpe,
    unescape,
)
from millnet.federation.versions import compare_versions, version_key

SEPARATORS = st.sampled_from([".", "-", "_", " ", ""])
WORDS = st.sampled_from(["a", "b", "rc", "beta", "sp", "p", "r", "v", "dev", "post", "x"])
VENDOR = st.builds(
    lambda first, rest: first + "".join(rest),
    st.sampled_from(["V", "v", "R", "", "FW"]),
    st.lists(st.tuples(st.integers(0, 2500).map(str) | WORDS, SEPARATORS).map("".join),
             min_size=1, max_size=6)).filter(lambda s: any(c.isalnum() for c in s))
PEP440 = st.builds(
    lambda rel, pre, post, dev: ".".join(map(str, rel)) + pre + post + dev,
    st.lists(st.integers(0, 30), min_size=1, max_size=4),
    st.sampled_from(["", "a1", "b2", "rc1", "a0"]),
    st.sampled_from(["", ".post1", ".post0"]),
    st.sampled_from(["", ".dev1", ".dev0"]))
ANY_VERSION = VENDOR | PEP440


@pytest.mark.parametrize(("older", "newer"), [
    ("V4.2.1", "V4.2.2"), ("4.2b1", "4.2"), ("4.2", "4.2 SP1"), ("4.2sp1", "4.2.1"),
    ("R2021a", "R2021b"), ("2.0b3", "2.0"), ("1.9", "1.10"), ("1.0.dev1", "1.0a1"),
    ("FW_3.10-rc2", "FW_3.10"), ("v1", "v1.0.1"),
])
def test_examples_order_as_vendors_mean_them(older: str, newer: str) -> None:
    assert compare_versions(older, newer) == -1
    assert compare_versions(newer, older) == 1


@pytest.mark.parametrize(("a", "b"), [("1.0", "1.0.0"), ("V4.2.1", "4.2.1"),
                                      ("1.post0", "1.0.post")])
def test_equivalent_spellings_compare_equal(a: str, b: str) -> None:
    assert compare_versions(a, b) == 0


@pytest.mark.parametrize("bad", ["", "   ", "1.0;drop", "x" * 65, "4.2\x00"])
def test_what_is_no_version_is_refused_naming_the_field(bad: str) -> None:
    with pytest.raises(InvalidInput, match="version"):
        version_key(bad)


@given(ANY_VERSION, ANY_VERSION, ANY_VERSION)
def test_comparison_is_a_total_order(a: str, b: str, c: str) -> None:
    assert compare_versions(a, a) == 0
    assert compare_versions(a, b) == -compare_versions(b, a)
    if compare_versions(a, b) <= 0 and compare_versions(b, c) <= 0:
        assert compare_versions(a, c) <= 0
    if compare_versions(a, b) == 0:
        assert compare_versions(a, c) == compare_versions(b, c)


@given(PEP440, PEP440)
def test_pep440_versions_order_as_packaging_orders_them(a: str, b: str) -> None:
    expected = (Version(a) > Version(b)) - (Version(a) < Version(b))
    assert compare_versions(a, b) == expected


@given(st.text(max_size=80))
def test_any_text_is_a_version_or_a_clear_refusal(text: str) -> None:
    try:
        version_key(text)
    except InvalidInput as exc:
        assert exc.field == "version"


def test_cpe_parses_with_escapes_and_formats_back() -> None:
    text = r"cpe:2.3:h:Siemens:s7-1200:4.2.1:*:*:*:*:*:*:*"
    cpe = parse_cpe(text)
    assert (cpe.part, cpe.vendor, cpe.product, cpe.version) == ("h", "siemens", "s7-1200", "4.2.1")
    assert format_cpe(cpe) == text.lower()
    escaped = parse_cpe(r"cpe:2.3:a:acme:web\:ui:1.0\*:*:*:*:*:*:*:*")
    assert escaped.product == r"web\:ui" and unescape(escaped.product) == "web:ui"
    assert unescape(escaped.version) == "1.0*"


@pytest.mark.parametrize(("text", "field"), [
    ("cpe:2.2:h:a:b", "cpe"), ("cpe:2.3:h:a:b", "cpe"),
    ("cpe:2.3:x:a:b:*:*:*:*:*:*:*:*", "cpe.part"),
    ("cpe:2.3:h:a:b c:*:*:*:*:*:*:*:*", "cpe.product"),
    ("cpe:2.3:h:a:*b*c:*:*:*:*:*:*:*:*", "cpe.product"),
])
def test_bad_cpe_names_are_refused_naming_the_attribute(text: str, field: str) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_cpe(text)
    assert info.value.field == field


def test_wildcards_match_at_either_end_only_where_unescaped() -> None:
    assert attribute_matches("s7-*", "s7-1500")
    assert attribute_matches("*", "")
    assert not attribute_matches("s7-*", "s5-100")
    assert attribute_matches("s7-12??", "s7-1200")
    assert not attribute_matches(r"s7\*", "s7-1200")
    assert attribute_matches(r"s7\*", "s7*")
    assert attribute_matches("-", "") and not attribute_matches("-", "x")


PLAIN = st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=20)


@given(PLAIN, PLAIN, PLAIN)
def test_bound_values_round_trip_and_match_themselves(vendor: str, product: str,
                                                     version: str) -> None:
    cpe = Cpe("a", bind(vendor), bind(product), bind(version))
    parsed = parse_cpe(format_cpe(cpe))
    assert parsed == cpe
    assert unescape(parsed.product) == product.lower()
    assert attribute_matches(parsed.product, product)


@given(st.text(max_size=200))
def test_any_text_parses_or_is_refused_clearly(text: str) -> None:
    for candidate in (text, "cpe:2.3:" + text):
        try:
            parse_cpe(candidate)
        except InvalidInput as exc:
            assert exc.field is not None and exc.field.startswith("cpe")
