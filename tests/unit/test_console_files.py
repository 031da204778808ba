"""The console's files are package data: every file under ``console/static`` matches a
``[tool.setuptools.package-data]`` pattern, so a non-editable install serves the whole console
(a page added without its pattern would be missing from a wheel, not from a checkout)."""

from __future__ import annotations

import tomllib
from pathlib import Path, PurePosixPath

import millnet
from millnet.console import STATIC

ROOT = Path(__file__).parents[2]


def test_every_console_file_is_package_data() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = config["tool"]["setuptools"]["package-data"]["millnet"]
    package = Path(millnet.__file__).parent
    files = [p for p in STATIC.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    assert any(p.name == "index.html" for p in files)
    for path in files:
        relative = PurePosixPath(path.relative_to(package).as_posix())
        assert any(len(PurePosixPath(pattern).parts) == len(relative.parts)
                   and relative.match(pattern) for pattern in patterns), (
            f"{relative} matches no package-data pattern in pyproject.toml")


def test_no_page_writes_html_from_strings() -> None:
    """Names and values are rendered as text: no module assigns HTML (docs/console.md)."""
    for module in STATIC.rglob("*.js"):
        if module.parent.name == "vendor":
            continue
        source = module.read_text(encoding="utf-8")
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write"):
            assert sink not in source, f"{module.name} uses {sink}"
