"""Every rule example in docs/rules.md parses (an example that does not is a wrong document)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

from millnet.rules.definitions import RuleKind, parse_rule

DOC = Path(__file__).resolve().parents[2] / "docs" / "rules.md"


def test_every_example_in_the_rules_document_parses() -> None:
    kinds: dict[str, set[RuleKind]] = {"toml": set(), "yaml": set()}
    for lang, body in re.findall(r"```(toml|yaml)\n(.*?)```", DOC.read_text(), re.S):
        data = tomllib.loads(body) if lang == "toml" else yaml.safe_load(body)
        for i, item in enumerate(data.get("rules", [])):
            if isinstance(item, dict):
                kinds[lang].add(parse_rule(item, f"{lang} example rules[{i}]").kind)
    assert kinds["toml"] == kinds["yaml"] == set(RuleKind)
