"""``millnet rules validate`` offline, and the [rules] settings section."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from millnet.cli import app
from millnet.rules.settings import RulesSection

GOOD = """\
[[rules]]
name = "spindle-hot"
kind = "threshold"
point = "Spindle/Temperature"
above = 80
applies_to = { asset_type = "cnc" }
"""
BAD = """\
rules:
  - name: hot
    kind: threshold
    point: T
    above: hot
    applies_to: {asset_type: cnc}
"""


def test_validate_prints_every_problem_and_exits_1(tmp_path: Path) -> None:
    good, bad = tmp_path / "good.toml", tmp_path / "bad.yaml"
    good.write_text(GOOD)
    bad.write_text(BAD)
    ok = CliRunner().invoke(app, ["rules", "validate", str(good)])
    assert ok.exit_code == 0 and f"{good}: 1 rule ok" in ok.output
    failed = CliRunner().invoke(app, ["rules", "validate", str(good), str(bad)])
    assert failed.exit_code == 1
    assert f"{bad}:5: rules[0].above: must be a number (got 'hot')" in failed.output


def test_add_checks_the_file_before_sending_anything(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD)
    # No node listens at this URL: exit 1 (the file) and not 2 (unreachable) proves nothing
    # was sent.
    result = CliRunner().invoke(app, ["rules", "add", str(bad), "--token", "t",
                                      "--url", "http://127.0.0.1:9"])
    assert result.exit_code == 1 and "rules[0].above" in result.output


def test_rules_settings(tmp_path: Path) -> None:
    section = RulesSection(files=(Path("rules/cnc.toml"), tmp_path / "abs.yaml"))
    config = tmp_path / "etc" / "node.toml"
    assert section.resolved_files(config) == (tmp_path / "etc" / "rules/cnc.toml",
                                              tmp_path / "abs.yaml")
    assert RulesSection().tick_ms == 10 and RulesSection().max_bindings == 1_000_000
    for bad in ({"tick_ms": 0}, {"tick_ms": 1001}, {"max_rules_per_tenant": 0},
                {"unknown": 1}):
        with pytest.raises(ValidationError):
            RulesSection.model_validate(bad)
