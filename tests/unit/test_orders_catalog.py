"""Configurable products: a configuration is refused naming the option or the rule broken."""

from __future__ import annotations

from pathlib import Path

import pytest

from millnet.errors import InvalidInput
from millnet.orders.catalog import (
    ConfigurationRefused,
    ProductDefinition,
    check_selection,
    duration_s,
    parse_product,
)
from millnet.orders.files import load_product_file

DEMO = Path(__file__).parents[2] / "src" / "millnet" / "demo_products.toml"


@pytest.fixture(scope="module")
def pump() -> ProductDefinition:
    return load_product_file(DEMO)[0]


def test_a_valid_configuration_gets_defaults_lead_time_and_its_routing(
        pump: ProductDefinition) -> None:
    done = check_selection(pump, {"motor": "11kW", "seal": "SiC"})
    assert done.selection == {"motor": "11kW", "seal": "SiC", "coating": "none"}
    assert done.lead_time_s == 20.0  # the longest lead time of the choices
    assert [op.id for op in done.routing] == ["housing", "machining", "assembly"]
    coated = check_selection(pump, {"seal": "EPDM", "coating": "epoxy"})
    assert [op.id for op in coated.routing] == ["housing", "machining", "coating", "assembly"]


@pytest.mark.parametrize(("chosen", "rule"), [
    ({"motor": "11kW", "seal": "NBR"}, "R1-motor-seal"),  # requires
    ({"seal": "NBR", "coating": "epoxy-food"}, "R2-food-seal"),  # excludes
    ({"motor": "5.5kW", "seal": "EPDM", "coating": "epoxy-food"}, "R3-coated-motors"),
])
def test_a_broken_rule_is_named_with_its_message(pump: ProductDefinition,
                                                 chosen: dict[str, str], rule: str) -> None:
    with pytest.raises(ConfigurationRefused) as caught:
        check_selection(pump, chosen)
    assert caught.value.rule is not None and caught.value.rule.id == rule
    assert rule in str(caught.value) and caught.value.rule.message in str(caught.value)


def test_every_broken_rule_is_listed(pump: ProductDefinition) -> None:
    with pytest.raises(ConfigurationRefused) as caught:
        check_selection(pump, {"motor": "11kW", "seal": "NBR", "coating": "epoxy-food"})
    assert [r.id for r in caught.value.broken] == ["R1-motor-seal", "R2-food-seal",
                                                   "R3-coated-motors"]


@pytest.mark.parametrize(("chosen", "field", "words"), [
    ({"seal": "SiC", "colour": "red"}, "options.colour", "unknown option 'colour'"),
    ({"seal": "rubber"}, "options.seal", "unknown choice 'rubber' for option seal"),
    ({}, "options.seal", "option seal must be chosen"),
])
def test_unknown_or_missing_options_are_named(pump: ProductDefinition, chosen: dict[str, str],
                                              field: str, words: str) -> None:
    with pytest.raises(ConfigurationRefused) as caught:
        check_selection(pump, chosen)
    assert caught.value.field == field and words in str(caught.value)
    assert caught.value.rule is None


def _product(**changes: object) -> dict[str, object]:
    base: dict[str, object] = {
        "name": "p", "options": [{"id": "a", "choices": [{"id": "x"}, {"id": "y"}]}],
        "routing": [{"id": "op", "line": "S/A/L1", "cycle_s": 1}]}
    return base | changes


@pytest.mark.parametrize(("changes", "field", "words"), [
    ({"rules": [{"id": "r", "kind": "requires", "message": "m", "when": {"b": "x"},
                 "then": {"a": ["x"]}}]}, None, "unknown option 'b'"),
    ({"rules": [{"id": "r", "kind": "requires", "message": "m", "when": {"a": "z"},
                 "then": {"a": ["x"]}}]}, None, "'z' is not a choice of a"),
    ({"rules": [{"id": "r", "kind": "allowed", "message": "m", "options": ["a"],
                 "combinations": [["x", "y"]]}]}, "rules.0", "one choice per option"),
    ({"rules": [{"id": "r", "kind": "forbids", "message": "m"}]}, "rules.0.kind", "requires"),
    ({"lead_time": "2 weeks"}, "lead_time", "not a duration"),
    ({"routing": []}, "routing", "at least 1"),
])
def test_a_product_definition_names_what_is_wrong(changes: dict[str, object],
                                                  field: str | None, words: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_product(_product(**changes))
    assert words in str(caught.value)
    if field is not None:
        assert caught.value.field == field


def test_durations() -> None:
    assert duration_s("90s") == 90 and duration_s("15m") == 900
    assert duration_s("2d") == 172800 and duration_s(3.5) == 3.5
    bad: object
    for bad in ("", "3 weeks", "-1s", "400d", {}, None, True):
        with pytest.raises(ValueError, match="duration"):
            duration_s(bad)
