"""Identifier stores for tests: one database per module and backend, emptied before each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import delete

from millnet.identifiers import IdentifierStore
from millnet.identifiers.core.schema import handle_txns, handles
from tests.integration.registry_fixtures import BACKENDS, _postgres_database
from tests.servers import Postgres


@pytest.fixture(scope="module", params=BACKENDS)
def identifier_url(request: pytest.FixtureRequest,
                   tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('ids') / 'ids.sqlite'}"
        return
    server: Postgres = request.getfixturevalue("postgres_server")
    yield from _postgres_database(server)


@pytest.fixture(scope="module")
def shared_store(identifier_url: str) -> Iterator[IdentifierStore]:
    with IdentifierStore.open(identifier_url) as store:
        yield store


@pytest.fixture
def store(shared_store: IdentifierStore) -> IdentifierStore:
    with shared_store.engine.begin() as conn:
        conn.execute(delete(handle_txns))
        conn.execute(delete(handles))
    return shared_store
