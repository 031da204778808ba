"""Rule files in TOML and YAML: rules read back equal, errors at the right line and field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from millnet.rules.definitions import Rule, parse_rule
from millnet.rules.files import RuleFileError, load_rule_file, read_rule_file

TOML = """\
# plant rules
[[rules]]
name = "spindle-hot"
kind = "threshold"
point = "Spindle/Temperature"
above = 80
on_delay = "5s"
applies_to = { asset_type = "cnc" }

[[rules]]
name = "bad"
kind = "threshold"
point = "T"
above = "hot"
applies_to = { asset_type = "cnc" }

[[rules]]
name = "silent"
kind = "stale"
point = "*"
timeout = "5s"

[rules.applies_to]
branch = "Acme"
devices = ["ok", "bad/x"]

[[rules]]
name = "spindle-hot"
kind = "stale"
point = "*"
timeout = "5s"
applies_to.devices = ["*"]
"""

YAML = """\
rules:
  - name: a
    kind: threshold
    point: T
    above: 3
    applies_to: {asset_type: cnc}
  - name: b
    kind: expression
    expression: "A +"
    applies_to:
      devices: [x]
  - name: c
    kind: rate
    point: T
    applies_to:
      devices:
        - x
        - "a/b"
    max_rise_per_s: 2
  - name: d
    kind: rate
    point: T
    applies_to: {asset_type: cnc}
    max_rise: 3
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_toml_errors_point_at_the_line_and_field(tmp_path: Path) -> None:
    path = write(tmp_path, "rules.toml", TOML)
    rules, errors = read_rule_file(path)
    assert [r.name for r in rules] == ["spindle-hot"]
    assert [str(e) for e in errors] == [
        f"{path}:14: rules[1].above: must be a number (got 'hot')",
        f"{path}:25: rules[2].applies_to.devices[1]: not a device name pattern: "
        "must not contain '/'",
        f"{path}:28: rules[3].name: duplicate name 'spindle-hot' (also rules[0])",
    ]
    with pytest.raises(RuleFileError) as caught:
        load_rule_file(path)
    assert caught.value.line == 14 and caught.value.field == "rules[1].above"


def test_yaml_errors_point_at_the_line_and_field(tmp_path: Path) -> None:
    path = write(tmp_path, "rules.yml", YAML)
    rules, errors = read_rule_file(path)
    assert [r.name for r in rules] == ["a"]
    assert [(e.line, e.field) for e in errors] == [
        (9, "rules[1].expression"), (18, "rules[2].applies_to.devices[1]"),
        (24, "rules[3].max_rise")]
    assert "at column 4" in errors[0].message
    assert "did you mean 'max_rise_per_s'?" in errors[2].message


def test_syntax_errors_keep_the_parsers_line(tmp_path: Path) -> None:
    toml = write(tmp_path, "broken.toml", '[[rules]]\nname = "a"\nkind = \n')
    [error] = read_rule_file(toml)[1]
    assert error.line == 3 and "line 3, column 8" in str(error)
    yml = write(tmp_path, "broken.yaml", "rules:\n  - name: a\n    kind: [\n")
    [error] = read_rule_file(yml)[1]
    assert error.line == 4 and str(error).startswith(f"{yml}:4: not valid YAML")


@pytest.mark.parametrize(("name", "text", "message"), [
    ("r.json", "{}", "ends in .toml, .yaml or .yml"),
    ("r.toml", 'title = "x"\n', "unknown key"),
    ("r.yaml", "rulez: []\n", "one key, rules"),
    ("r.yaml", "rules: 3\n", "must be a list"),
    ("r.toml", "rules = 3\n", "must be [[rules]] tables"),
])
def test_the_shape_of_the_file_is_checked(tmp_path: Path, name: str, text: str,
                                          message: str) -> None:
    [error] = read_rule_file(write(tmp_path, name, text))[1]
    assert message in str(error)


def test_an_empty_file_has_no_rules(tmp_path: Path) -> None:
    assert load_rule_file(write(tmp_path, "e.yaml", "")) == []
    assert load_rule_file(write(tmp_path, "e.toml", "# nothing yet\n")) == []


def test_a_missing_file_is_an_error_naming_it(tmp_path: Path) -> None:
    [error] = read_rule_file(tmp_path / "gone.toml")[1]
    assert str(error).startswith(f"{tmp_path / 'gone.toml'}: cannot read")


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(float(value))
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"


def to_toml(rules: list[Rule]) -> str:
    blocks = ["[[rules]]\n" + "".join(f"{key} = {toml_value(value)}\n"
                                      for key, value in rule.to_dict().items())
              for rule in rules]
    return "\n".join(blocks)


texts = st.text(st.characters(codec="ascii", categories=("L", "N", "P", "Zs")), max_size=12)
rule_data = st.one_of(
    st.fixed_dictionaries({"kind": st.just("threshold"), "point": texts.filter(str.strip),
                           "above": st.floats(-1e6, 1e6), "description": texts}),
    st.fixed_dictionaries({"kind": st.just("stale"), "point": st.just("*"),
                           "timeout": st.floats(0.5, 600)}),
    st.fixed_dictionaries({"kind": st.just("expression"),
                           "expression": st.sampled_from(["A > 1", "{x y} % 2 == 1"]),
                           "on_delay": st.sampled_from(["1s", "250ms", 3])}),
)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(rule_data, min_size=1, max_size=5), st.data())
def test_files_written_from_rules_read_back_equal_and_errors_find_their_line(
        tmp_path: Path, items: list[dict[str, Any]], data: st.DataObject) -> None:
    rules = [parse_rule({**item, "name": f"r{i}", "applies_to": {"devices": ["*"]}})
             for i, item in enumerate(items)]
    toml = write(tmp_path, "gen.toml", to_toml(rules))
    yml = write(tmp_path, "gen.yaml", yaml.safe_dump({"rules": [r.to_dict() for r in rules]}))
    assert load_rule_file(toml) == rules
    assert load_rule_file(yml) == rules
    # Break one rule's "kind" key: the error names that rule and lands on its kind line.
    bad = data.draw(st.integers(0, len(rules) - 1))
    broken = [r.to_dict() for r in rules]
    broken[bad]["kind"] = "bogus"
    for path, text in ((toml, "\n".join("[[rules]]\n" + "".join(
            f"{k} = {toml_value(v)}\n" for k, v in d.items()) for d in broken)),
                       (yml, yaml.safe_dump({"rules": broken}))):
        path.write_text(text, encoding="utf-8")
        [error] = read_rule_file(path)[1]
        assert error.field == f"rules[{bad}].kind"
        assert error.line is not None
        line = text.splitlines()[error.line - 1]
        assert "bogus" in line, (line, str(error))
