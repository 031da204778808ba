"""Migration 0007: handles stored as value rows become one record per handle, and back."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, inspect, text

from millnet.db.engine import create_db_engine
from millnet.db.migrate import downgrade, upgrade
from millnet.identifiers import IdentifierStore
from millnet.identifiers.core.fastpath import FastResolver, sqlite_path
from millnet.identifiers.core.values import stored_forms
from millnet.protocols.handle import HandleValue, Permission, ValueReference
from tests.integration.registry_fixtures import registry_url

__all__ = ["registry_url"]  # fixture

SECRET = HandleValue(3, "HS_SECKEY", b"s3cret", permissions=int(Permission.ADMIN_READ))
URL = HandleValue(1, "URL", b"https://plant.example/p/1", ttl=3600, timestamp=1_700_000_000)
MODEL = HandleValue(2, "88.100.5/MODEL", "X200 \u6cf5".encode(),
                    references=(ValueReference("88.100.5/T", 1),), timestamp=1_700_000_001)
OLD = {"88.100.5/P1": [URL, MODEL, SECRET], "88.100.5/P2": [SECRET], "88.100.5/EMPTY": []}


def _seed_0006(engine: Engine) -> None:
    """Handles as revision 0006 stored them: a row per value, wire forms not yet computed."""
    now = datetime(2026, 1, 1, tzinfo=UTC).isoformat()
    with engine.begin() as conn:
        for handle_id, (name, values) in enumerate(OLD.items(), start=1):
            conn.execute(text(
                "INSERT INTO handles (id, handle, prefix, created_at, updated_at, wire) "
                "VALUES (:id, :h, '88.100.5', :now, :now, NULL)"),
                {"id": handle_id, "h": name, "now": now})
            for v in values:
                refs = json.dumps([[r.handle, r.index] for r in v.references]) \
                    if v.references else None
                conn.execute(text(
                    'INSERT INTO handle_values (handle_id, idx, type, data, ttl_type, ttl, '
                    '"timestamp", permissions, refs) VALUES (:id, :idx, :type, :data, '
                    ':ttl_type, :ttl, :ts, :perm, :refs)'),
                    {"id": handle_id, "idx": v.index, "type": v.type, "data": v.data,
                     "ttl_type": v.ttl_type, "ttl": v.ttl, "ts": v.timestamp,
                     "perm": v.permissions, "refs": refs})


def _value_rows(engine: Engine) -> list[tuple[object, ...]]:
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(text(
            'SELECT handle_id, idx, type, data, ttl_type, ttl, "timestamp", permissions, refs '
            "FROM handle_values ORDER BY handle_id, idx"))]


def test_value_rows_become_records_and_come_back(registry_url: str) -> None:
    engine = create_db_engine(registry_url)
    try:
        upgrade(engine, "0006")
        _seed_0006(engine)
        before = _value_rows(engine)
        upgrade(engine)
        assert "handle_values" not in inspect(engine).get_table_names()
        with IdentifierStore.open(registry_url) as store:
            for name, values in OLD.items():
                assert store.get(name) == tuple(sorted(values, key=lambda v: v.index))
            with engine.connect() as conn:
                wire, hidden = conn.execute(text(
                    "SELECT wire, hidden FROM handles WHERE handle = '88.100.5/P1'")).one()
            assert (bytes(wire), bytes(hidden)) == stored_forms(OLD["88.100.5/P1"])
            database = sqlite_path(registry_url)
            if database is not None:  # the fast path reads the converted public form
                fast = FastResolver(database, ["88.100.5"])
                try:
                    assert fast.public_values("88.100.5/P1") == (URL, MODEL)
                    assert fast.public_values("88.100.5/P2") is None  # nothing public
                finally:
                    fast.close()
            store.add_values("88.100.5/EMPTY", [URL])
            assert store.get("88.100.5/EMPTY") == (URL,)
            store.remove_values("88.100.5/EMPTY", [1])
        downgrade(engine, "0006")
        assert _value_rows(engine) == [tuple(row) for row in before]
    finally:
        engine.dispose()


@pytest.mark.parametrize("broken", [b"\x00\x00\x00\x02", b"\xff"])
def test_a_record_that_does_not_decode_is_a_storage_error(registry_url: str,
                                                          broken: bytes) -> None:
    from millnet.errors import StorageError

    with IdentifierStore.open(registry_url) as store:
        store.create_handle("88.100.5/X", [URL])
        with store.engine.begin() as conn:
            conn.execute(text("UPDATE handles SET hidden = :b"), {"b": broken})
        with pytest.raises(StorageError, match="does not decode"):
            store.get("88.100.5/X")
