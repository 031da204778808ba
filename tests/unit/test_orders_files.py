"""Product files report each problem with its file, line and field (TOML and YAML), and
``millnet orders validate`` prints them."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from millnet.cli import app
from millnet.orders.files import read_product_file

TOML = """\
[[products]]
name = "ok"
[[products.options]]
id = "a"
choices = [{ id = "x" }]
[[products.routing]]
id = "r"
line = "S/A/L1"
cycle_s = 1

[[products]]
name = "bad"
[[products.options]]
id = "a"
choices = [{ id = "x" }]
[[products.options]]
id = "b"
choices = [{ id = "y", lead_time = "soon" }]
[[products.routing]]
id = "r"
line = "S/A/L1"
cycle_s = 1
"""

YAML = """\
products:
  - name: bad
    options:
      - id: a
        choices:
          - id: x
    routing:
      - id: r
        line: S/A/L1
        cycle_s: -1
"""


@pytest.mark.parametrize(("name", "text", "line", "field"), [
    ("p.toml", TOML, 18, "products[1].options[1].choices[0].lead_time"),
    ("p.yaml", YAML, 10, "products[0].routing[0].cycle_s"),
    ("p.toml", TOML.replace("cycle_s = 1\n\n", "cycle_s = 1\nextra = 2\n\n"), 10,
     "products[0].routing[0].extra"),
])
def test_a_problem_names_line_and_field(tmp_path: Path, name: str, text: str, line: int,
                                        field: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    _, errors = read_product_file(path)
    assert (errors[0].line, errors[0].field) == (line, field), str(errors[0])
    assert str(errors[0]).startswith(f"{path}:{line}: {field}: ")


def test_cli_validate(tmp_path: Path) -> None:
    good, bad = tmp_path / "good.toml", tmp_path / "bad.yaml"
    good.write_text(TOML.split("\n\n[[products]]", maxsplit=1)[0])
    bad.write_text(YAML)
    result = CliRunner().invoke(app, ["orders", "validate", str(good), str(bad)])
    assert result.exit_code == 1
    assert "good.toml: 1 product ok" in result.output
    assert f"{bad}:10: products[0].routing[0].cycle_s" in result.output
