"""The rule model: parsing the flat form, errors that name the field, the canonical form,
scopes and message templates."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from millnet.errors import InvalidInput
from millnet.model.alarms import Priority
from millnet.rules.definitions import (
    AnomalyCondition,
    ExpressionCondition,
    RateOfChange,
    RuleKind,
    Scope,
    Stale,
    StateCondition,
    Threshold,
    check_template,
    parse_rule,
    render_message,
)
from millnet.rules.fields import parse_duration

SCOPE = {"asset_type": "cnc"}


def rule(**keys: Any) -> dict[str, Any]:
    return {"name": "r1", "applies_to": SCOPE, **keys}


def test_a_threshold_rule_with_every_common_key() -> None:
    parsed = parse_rule(rule(
        kind="threshold", point="Spindle/Temperature", above=80, below=10, deadband=2,
        on_delay="5s", off_delay="500ms", priority="high", description="hot spindle",
        message="{device}: {value:.1f} > {limit}", notify=["ops", "mail.shift-a"],
        suppress_when="State == 0", enabled=False,
        applies_to={"asset_type": "cnc", "branch": "Acme/Suzhou", "devices": ["CNC-1*"]}))
    assert parsed.kind is RuleKind.THRESHOLD
    assert parsed.condition == Threshold("Spindle/Temperature", 80.0, 10.0, 2.0, 5.0, 0.5)
    assert parsed.scope == Scope("cnc", "Acme/Suzhou", ("CNC-1*",))
    assert parsed.priority is Priority.HIGH and parsed.notify == ("ops", "mail.shift-a")
    assert parsed.suppress_when is not None and parsed.suppress_when.inputs == ("State",)
    assert not parsed.enabled and parsed.description == "hot spindle"
    assert parse_rule(parsed.to_dict()) == parsed


def test_every_kind_parses_with_defaults_and_round_trips() -> None:
    cases = [
        (rule(kind="rate", point="P", max_rise_per_s=2.5),
         RateOfChange("P", 2.5, None)),
        (rule(kind="stale", point="*", timeout="2m"), Stale("*", 120.0)),
        (rule(kind="state", point="Mode", values=[3, True]),
         StateCondition("Mode", (3.0, 1.0))),
        (rule(kind="state", point="Mode", texts=["ALARM", "E-STOP"], on_delay=1),
         StateCondition("Mode", (), ("ALARM", "E-STOP"), 1.0)),
        (rule(kind="anomaly", detector="pca", points=["A", "B"], params={"consecutive": 3}),
         AnomalyCondition("pca", ("A", "B"), 500, {"consecutive": 3.0})),
    ]
    for data, condition in cases:
        parsed = parse_rule(data)
        assert parsed.condition == condition
        assert parsed.priority is Priority.MEDIUM and parsed.enabled
        assert parsed.message  # a default per kind
        assert parse_rule(parsed.to_dict()) == parsed
    expression = parse_rule(rule(kind="expression", expression="{A} / {B} > 2"))
    assert isinstance(expression.condition, ExpressionCondition)
    assert expression.condition.expression.inputs == ("A", "B")


@pytest.mark.parametrize(("data", "field", "message"), [
    ({"kind": "stale"}, "rules[2].name", "required"),
    (rule(kind="threshold", point="T", above="hot"), "rules[2].above",
     "must be a number (got 'hot')"),
    (rule(kind="threshold", point="T", abov=3), "rules[2].abov", "did you mean 'above'?"),
    (rule(kind="threshold", point="T", above=3, timeout=4), "rules[2].timeout",
     "belongs to stale rules"),
    (rule(kind="threshold", point="T"), "rules[2].above", "give above, below or both"),
    (rule(kind="threshold", point="T", above=3, below=5), "rules[2].below", "must be below"),
    (rule(kind="threshold", point="T", above=5, below=3, deadband=2), "rules[2].deadband",
     "smaller than above - below"),
    (rule(kind="threshold", point="T", above=5, deadband=-1), "rules[2].deadband",
     "must not be negative"),
    (rule(kind="threshold", point="T", above=5, on_delay="2 days"), "rules[2].on_delay",
     "must be a duration"),
    (rule(kind="threshold", point="T", above=5, off_delay=86401), "rules[2].off_delay",
     "0 s to 1 day"),
    (rule(kind="bogus"), "rules[2].kind", "must be one of threshold"),
    (rule(kind="rate", point="T", max_fall_per_s=-1), "rules[2].max_fall_per_s",
     "must be positive"),
    (rule(kind="stale", point="T"), "rules[2].timeout", "required"),
    (rule(kind="state", point="T"), "rules[2].values", "either values"),
    (rule(kind="state", point="T", values=["x"]), "rules[2].values[0]", "must be a number"),
    (rule(kind="expression", expression="A +"), "rules[2].expression", "at column 4"),
    (rule(kind="anomaly", detector="magic", points=["A"]), "rules[2].detector", "one of"),
    (rule(kind="anomaly", detector="robust", points=[]), "rules[2].points", "at least one"),
    (rule(kind="anomaly", detector="robust", points=["A"], train_samples=5),
     "rules[2].train_samples", "from 10"),
    ({"name": "x", "kind": "stale", "point": "T", "timeout": 5, "applies_to": {}},
     "rules[2].applies_to", "at least one of"),
    ({"name": "x", "kind": "stale", "point": "T", "timeout": 5,
      "applies_to": {"asset_typ": "cnc"}}, "rules[2].applies_to.asset_typ", "asset_type"),
    ({"name": "x", "kind": "stale", "point": "T", "timeout": 5,
      "applies_to": {"branch": "Acme//Line"}}, "rules[2].applies_to.branch", "empty"),
    (rule(kind="stale", point="T", timeout=5, priority="urgent"), "rules[2].priority",
     "critical, high, medium, low"),
    (rule(kind="stale", point="T", timeout=5, notify=["ops", "ops"]), "rules[2].notify[1]",
     "listed twice"),
    (rule(kind="stale", point="T", timeout=5, enabled="yes"), "rules[2].enabled",
     "true or false"),
    (rule(kind="stale", point="T", timeout=5, message="{value.__class__}"),
     "rules[2].message", "no attribute or index access"),
    (rule(kind="stale", point="T", timeout=5, suppress_when="State =="),
     "rules[2].suppress_when", "at column"),
    ({"name": "has space", "kind": "stale"}, "rules[2].name", "must be 1 to 64"),
])
def test_errors_name_the_field(data: dict[str, Any], field: str, message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_rule(data, "rules[2]")
    assert caught.value.field == field
    assert message in str(caught.value)


def test_without_a_prefix_the_field_is_the_key_itself() -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_rule(rule(kind="threshold", point="T", above=[1]))
    assert caught.value.field == "above"


def test_durations() -> None:
    assert parse_duration("500ms", "d") == 0.5
    assert parse_duration("1.5s", "d") == 1.5
    assert parse_duration("2m", "d") == 120.0
    assert parse_duration("1h", "d") == 3600.0
    assert parse_duration(7, "d") == 7.0
    for bad in ("5", "5 days", "-1s", True, float("nan"), "25h", [1]):
        with pytest.raises(InvalidInput):
            parse_duration(bad, "d")


def test_scope_matching() -> None:
    scope = Scope(asset_type="cnc", branch="Acme/Suzhou", devices=("CNC-1*",))
    assert scope.matches(asset_type="cnc", path="Acme/Suzhou/Machining/CNC-12", device="CNC-12")
    assert scope.matches(asset_type="cnc", path="Acme/Suzhou", device="CNC-1")
    assert not scope.matches(asset_type="cnc", path="Acme/Suzhou2/CNC-1", device="CNC-1")
    assert not scope.matches(asset_type="lathe", path="Acme/Suzhou/CNC-1", device="CNC-1")
    assert not scope.matches(asset_type="cnc", path="Acme/Suzhou/CNC-2", device="CNC-2")
    assert not scope.matches(asset_type="cnc", path="Acme/Suzhou/cnc-1", device="cnc-1")
    assert Scope(devices=("*",)).matches(asset_type=None, path="A/B", device="B")


def test_message_templates() -> None:
    template = check_template("{device}: {point} = {value:.1f} above {limit:>8}", "message")
    text = render_message(template, device="CNC-1", point="T", value=81.25, limit=80.0)
    assert text == "CNC-1: T = 81.2 above     80.0"
    # Never raises at run time: missing names are "-", a text under a numeric format plain.
    assert render_message("{value:.1f} {limit}", value="RUN") == "RUN -"
    for bad in ("{value!r}", "{0}", "{}", "{value:{limit}}", "{value:100000}", "{device:.2f}",
                "{speed}", "{value[0]}", "", "{"):
        with pytest.raises(InvalidInput):
            check_template(bad, "message")


names = st.from_regex(r"[A-Za-z0-9._-]{1,64}", fullmatch=True)
finite = st.floats(-1e9, 1e9, allow_nan=False)
durations = st.one_of(st.floats(0, 86_400), st.sampled_from(["5s", "500ms", "2m", "1h"]))
scopes = st.fixed_dictionaries({}, optional={
    "asset_type": names, "branch": st.sampled_from(["Acme", "Acme/Suzhou/Machining"]),
    "devices": st.lists(st.sampled_from(["CNC-*", "Lathe?", "*"]), min_size=1, unique=True),
}).filter(bool)
kinds = st.one_of(
    st.fixed_dictionaries({"kind": st.just("threshold"), "point": st.just("T"),
                           "above": finite}, optional={"on_delay": durations}),
    st.fixed_dictionaries({"kind": st.just("rate"), "point": st.just("T"),
                           "max_fall_per_s": st.floats(0.001, 1e6)},
                          optional={"off_delay": durations}),
    st.fixed_dictionaries({"kind": st.just("stale"), "point": st.sampled_from(["*", "T"]),
                           "timeout": st.floats(0.001, 86_400)}),
    st.fixed_dictionaries({"kind": st.just("state"), "point": st.just("Mode"),
                           "texts": st.lists(st.text(st.characters(
                               codec="utf-8", exclude_categories=("Cc", "Cs")), max_size=10),
                               min_size=1, max_size=3,
                                             unique=True)}),
    st.fixed_dictionaries({"kind": st.just("expression"),
                           "expression": st.sampled_from(["A > 1", "{A b} / 2 == B"])}),
    st.fixed_dictionaries({"kind": st.just("anomaly"), "detector": st.just("river"),
                           "points": st.lists(st.sampled_from("ABC"), min_size=1, unique=True),
                           "params": st.dictionaries(st.just("quantile"),
                                                     st.floats(0.5, 0.999))}),
)


@settings(max_examples=200, deadline=None)
@given(kinds, names, scopes, st.sampled_from(["critical", "high", "medium", "low"]),
       st.lists(names, max_size=3, unique=True), st.booleans())
def test_the_canonical_form_round_trips(kind: dict[str, Any], name: str, scope: dict[str, Any],
                                        priority: str, notify: list[str], enabled: bool) -> None:
    data = {"name": name, "applies_to": scope, "priority": priority, "notify": notify,
            "enabled": enabled, **kind}
    parsed = parse_rule(data)
    canonical = parsed.to_dict()
    assert parse_rule(canonical) == parsed
    assert parse_rule(canonical).to_dict() == canonical
    assert hash(parsed) == hash(parse_rule(canonical))


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["name", "kind", "point", "above", "applies_to",
                                        "timeout", "values", "message", "expression"]),
                       st.one_of(st.none(), st.text(max_size=8), st.integers(), st.floats(),
                                 st.booleans(), st.lists(st.integers(), max_size=2),
                                 st.dictionaries(st.text(max_size=5), st.text(max_size=5),
                                                 max_size=2))))
def test_arbitrary_data_raises_only_invalid_input(data: dict[str, Any]) -> None:
    try:
        parse_rule(data, "rules[0]")
    except InvalidInput as exc:
        assert exc.field is not None and exc.field.startswith("rules[0]")
