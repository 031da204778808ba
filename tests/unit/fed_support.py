"""A SQLite database migrated to head, for the federation report tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from millnet.db import migrate
from millnet.db.engine import create_db_engine


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    eng = create_db_engine(f"sqlite:///{tmp_path / 'fed.sqlite'}")
    migrate.upgrade(eng)
    yield eng
    eng.dispose()
