"""Rules on the source itself, so that a class of defect cannot come back unnoticed (issue 9)."""

from __future__ import annotations

import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "millnet"


def test_numbers_off_the_network_are_parsed_as_ascii_digits() -> None:
    """``str.isdigit`` accepts '²' and other digits that ``int()`` refuses (HTTP 500s and a
    crashed IDIS login): use ``millnet.model.limits.ascii_digits``, which also bounds length."""
    pattern = re.compile(r"\.(isdigit|isdecimal|isnumeric)\(\)")
    found = [f"{path.relative_to(SRC)}:{n}" for path in SRC.rglob("*.py")
             for n, line in enumerate(path.read_text().splitlines(), 1) if pattern.search(line)]
    assert not found, f"use ascii_digits() instead of str.isdigit() at {found}"
