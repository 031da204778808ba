"""Every rule example in docs/rules.md parses (an example that does not is a wrong document),
and the detector parameters of its anomaly examples are ones the detectors take."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

from millnet.analytics.anomaly.base import make_detector
from millnet.rules.definitions import AnomalyCondition, Rule, RuleKind, parse_rule

DOC = Path(__file__).resolve().parents[2] / "docs" / "rules.md"


def _examples() -> list[tuple[str, Rule]]:
    found = []
    for lang, body in re.findall(r"```(toml|yaml)\n(.*?)```", DOC.read_text(), re.S):
        data = tomllib.loads(body) if lang == "toml" else yaml.safe_load(body)
        for i, item in enumerate(data.get("rules", [])):
            if isinstance(item, dict):
                found.append((lang, parse_rule(item, f"{lang} example rules[{i}]")))
    return found


def test_every_example_in_the_rules_document_parses() -> None:
    kinds: dict[str, set[RuleKind]] = {"toml": set(), "yaml": set()}
    for lang, rule in _examples():
        kinds[lang].add(rule.kind)
    assert kinds["toml"] == kinds["yaml"] == set(RuleKind)


def test_anomaly_examples_name_parameters_their_detector_takes() -> None:
    # The parser checks only that params are numbers: the detector is what refuses a name.
    anomalies = [rule.condition for _, rule in _examples()
                 if isinstance(rule.condition, AnomalyCondition)]
    assert anomalies
    for cond in anomalies:
        assert cond.params, "an example shows how params are written"
        make_detector(cond.detector, len(cond.points), train_samples=cond.train_samples,
                      **dict(cond.params))
