"""Registry databases for tests: SQLite in tmp_path, or a fresh PostgreSQL database per test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine

from millnet.model import AssetKind
from millnet.registry import Registry
from tests.servers import Postgres

BACKENDS = ["sqlite", "postgresql"]

DEVICE_PATH = [
    (AssetKind.ENTERPRISE, "acme"), (AssetKind.SITE, "plant-1"), (AssetKind.AREA, "press shop"),
    (AssetKind.LINE, "line 3"), (AssetKind.DEVICE, "press-7"),
]


def _postgres_database(server: Postgres) -> Iterator[str]:
    name = f"registry_{uuid.uuid4().hex[:16]}"
    admin = create_engine(server.url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        yield server.url.rsplit("/", 1)[0] + f"/{name}"
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        admin.dispose()


@pytest.fixture(params=BACKENDS)
def registry_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database: SQLite file in tmp_path, or a new database in the session's server."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'registry.sqlite'}"
        return
    server: Postgres = request.getfixturevalue("postgres_server")
    yield from _postgres_database(server)


@pytest.fixture
def registry(registry_url: str) -> Iterator[Registry]:
    with Registry.open(registry_url) as reg:
        yield reg
