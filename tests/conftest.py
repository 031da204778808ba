"""Shared fixtures: real servers started per test session or per test."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import Mosquitto, Postgres, find_mosquitto, postgres_bindir


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    """A fresh broker per test (tests kill and restart it)."""
    binary = find_mosquitto()
    if binary is None:
        pytest.skip("mosquitto binary not installed (apt-get install mosquitto)")
    broker = Mosquitto(binary, tmp_path / "mosquitto")
    broker.start()
    yield broker
    broker.kill()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Postgres]:
    """One PostgreSQL cluster for the session; tests create their own databases in it."""
    bindir = postgres_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not installed")
    with tempfile.TemporaryDirectory(prefix="millnet-pg-") as tmp:
        server = Postgres(bindir, Path(tmp))
        server.start()
        yield server
        server.stop()
