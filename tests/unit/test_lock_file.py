"""requirements.lock pins every dependency that pyproject.toml declares, at a version the
declared range admits, and the environment running the tests is the locked one (issue 10:
benchmark figures are only reproducible with the versions they were taken with)."""

from __future__ import annotations

import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]


def _locked() -> dict[str, str]:
    pins: dict[str, str] = {}
    for raw in (ROOT / "requirements.lock").read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith("#") and "==" in line:
            name, version = line.split("==", 1)
            pins[canonicalize_name(name)] = version.split()[0]
    return pins


def _declared() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [Requirement(r) for r in [*project["dependencies"],
                                     *project["optional-dependencies"]["dev"]]]


def test_every_declared_dependency_is_pinned_inside_its_range() -> None:
    pins = _locked()
    for req in _declared():
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} is declared but not in requirements.lock: run " \
                             "scripts/lock"
        assert req.specifier.contains(pins[name], prereleases=True), \
            f"{req.name}=={pins[name]} is outside {req.specifier}: run scripts/lock"


def test_the_installed_environment_is_the_locked_one() -> None:
    pins = _locked()
    for req in _declared():
        name = canonicalize_name(req.name)
        assert metadata.version(req.name) == pins[name], \
            f"{req.name} {metadata.version(req.name)} installed, {pins[name]} locked: " \
            "run scripts/bootstrap"
