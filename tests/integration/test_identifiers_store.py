"""The identifier store on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from millnet.errors import InvalidInput
from millnet.identifiers import (
    MAX_BATCH,
    HandleExists,
    HandleNotFound,
    IdentifierStore,
    InvalidValue,
    ValueExists,
    ValueNotFound,
)
from millnet.identifiers.core.schema import handle_txns, handles
from millnet.identifiers.hierarchy.cache import change_digest
from millnet.protocols.handle import HandleValue, ValueReference
from tests.integration.identifier_fixtures import identifier_url, shared_store, store

__all__ = ["identifier_url", "shared_store", "store"]  # fixtures

URL = HandleValue(1, "URL", b"https://plant.example/pump-1")
EMAIL = HandleValue(2, "EMAIL", b"ops@plant.example")
MODEL = HandleValue(3, "88.100.5/MODEL", b"X200", references=(ValueReference("88.100.5/T", 1),))


def _rows(store: IdentifierStore) -> tuple[int, int]:
    """(handles, transaction log rows) in the database."""
    with store.engine.connect() as conn:
        return (conn.execute(select(func.count()).select_from(handles)).scalar_one(),
                conn.execute(select(func.count()).select_from(handle_txns)).scalar_one())


def test_create_get_and_delete(store: IdentifierStore) -> None:
    assert store.create_handle("88.100.5/PUMP-1", [MODEL, URL, EMAIL]) == "88.100.5/PUMP-1"
    assert store.get("88.100.5/PUMP-1") == (URL, EMAIL, MODEL)  # index order
    assert store.exists("88.100.5/PUMP-1")
    with pytest.raises(HandleExists):
        store.create_handle("88.100.5/PUMP-1", [URL])
    store.delete_handle("88.100.5/PUMP-1")
    assert _rows(store) == (0, 2)  # logged: created, deleted
    with pytest.raises(HandleNotFound):
        store.get("88.100.5/PUMP-1")
    with pytest.raises(HandleNotFound):
        store.delete_handle("88.100.5/PUMP-1")


def test_case_rule_prefix_folds_suffix_does_not(store: IdentifierStore) -> None:
    store.create_handle("88.100.abc/PUMP-1", [URL])
    store.create_handle("88.100.ABC/pump-1", [EMAIL])  # another suffix: another handle
    assert store.get("88.100.ABC/PUMP-1") == (URL,)
    assert store.get("88.100.aBc/PUMP-1") == (URL,)  # the same handle, other prefix case
    assert store.get("88.100.abc/pump-1") == (EMAIL,)
    with pytest.raises(HandleExists):
        store.create_handle("88.100.Abc/PUMP-1", [URL])
    with pytest.raises(HandleNotFound):
        store.get("88.100.ABC/Pump-1")
    assert store.list_handles("88.100.abc") == ["88.100.ABC/PUMP-1", "88.100.ABC/pump-1"]
    assert store.create_handle("0.na/88.100.abc", [URL]) == "0.NA/88.100.ABC"


def test_filters_match_index_or_type(store: IdentifierStore) -> None:
    url_us = HandleValue(4, "url.us", b"u")
    store.create_handle("88.100.5/F", [URL, EMAIL, MODEL, url_us])
    assert store.get("88.100.5/F", indexes=[2]) == (EMAIL,)
    assert store.get("88.100.5/F", types=["url"]) == (URL,)  # exact, case-insensitive
    assert store.get("88.100.5/F", types=["URL."]) == (URL, url_us)  # a type family
    assert store.get("88.100.5/F", indexes=[2], types=["URL"]) == (URL, EMAIL)  # OR
    assert store.get("88.100.5/F", indexes=[99], types=["NONE"]) == ()


def test_value_operations_are_all_or_nothing(store: IdentifierStore) -> None:
    store.create_handle("88.100.5/V", [URL])
    store.add_values("88.100.5/V", [EMAIL])
    with pytest.raises(ValueExists):
        store.add_values("88.100.5/V", [MODEL, HandleValue(1, "URL", b"again")])
    assert store.get("88.100.5/V") == (URL, EMAIL)
    changed = HandleValue(1, "URL", b"https://new.example", ttl=60, timestamp=7)
    store.modify_values("88.100.5/V", [changed])
    with pytest.raises(ValueNotFound):
        store.modify_values("88.100.5/V", [HandleValue(2, "EMAIL", b"x"), MODEL])
    assert store.get("88.100.5/V") == (changed, EMAIL)
    with pytest.raises(ValueNotFound):
        store.remove_values("88.100.5/V", [2, 3])
    store.remove_values("88.100.5/V", [2])
    assert store.get("88.100.5/V") == (changed,)
    with pytest.raises(HandleNotFound):
        store.add_values("88.100.5/MISSING", [URL])


def test_overwrite_replaces_the_values(store: IdentifierStore) -> None:
    store.create_handle("88.100.5/O", [URL, EMAIL])
    store.create_handle("88.100.5/o", [MODEL], overwrite=True)
    store.create_handle("88.100.5/O", [MODEL], overwrite=True)
    assert store.get("88.100.5/O") == (MODEL,)
    assert store.get("88.100.5/o") == (MODEL,)


def test_invalid_input_names_the_field(store: IdentifierStore) -> None:
    with pytest.raises(InvalidInput) as caught:
        store.create_handle("no-slash", [URL])
    assert caught.value.field == "handle"
    with pytest.raises(InvalidValue, match=r"values\[1\]\.index"):
        store.create_handle("88.100.5/X", [URL, HandleValue(1, "EMAIL", b"")])
    with pytest.raises(InvalidValue, match=r"values\[0\]\.index"):
        store.create_handle("88.100.5/X", [HandleValue(0, "URL", b"")])
    with pytest.raises(InvalidValue, match=r"values\[0\]\.ttl"):
        store.create_handle("88.100.5/X", [HandleValue(1, "URL", b"", ttl=-1)])
    with pytest.raises(InvalidValue, match=r"values\[0\]\.type: NUL"):
        store.create_handle("88.100.5/X", [HandleValue(1, "U\0RL", b"")])
    with pytest.raises(InvalidValue, match="at least one"):
        store.create_handle("88.100.5/X", [])
    with pytest.raises(InvalidInput, match="stored maximum"):
        store.create_handle("88.100.5/" + "x" * 3000, [URL])
    assert _rows(store) == (0, 0)


def _batch(n: int, tag: str = "B") -> list[tuple[str, list[HandleValue]]]:
    return [(f"88.100.5/{tag}{i:05d}", [URL, EMAIL]) for i in range(n)]


def test_create_many_stores_a_full_batch(store: IdentifierStore) -> None:
    items = _batch(MAX_BATCH)
    names = store.create_many(items)
    assert names == [h for h, _ in items]
    assert _rows(store) == (MAX_BATCH, MAX_BATCH)
    assert store.get("88.100.5/B09999") == (URL, EMAIL)
    assert store.count("88.100.5") == MAX_BATCH
    with pytest.raises(InvalidInput, match="at most"):
        store.create_many(_batch(MAX_BATCH + 1, "C"))


@pytest.mark.parametrize("bad", ["invalid", "exists", "twice"])
def test_create_many_is_all_or_nothing(store: IdentifierStore, bad: str) -> None:
    store.create_handle("88.100.5/EXISTING", [URL])
    items = _batch(MAX_BATCH - 1)
    position = 7777
    if bad == "invalid":
        items.insert(position, ("88.100.5/BAD", [HandleValue(1, "URL", b"", ttl_type=256)]))
        error: type[Exception] = InvalidValue
        match = rf"items\[{position}\]\.values\[0\]\.ttl_type"
    elif bad == "exists":
        items.insert(position, ("88.100.5/EXISTING", [URL]))
        error, match = HandleExists, "88.100.5/EXISTING"
    else:
        items.insert(position, items[1])
        error, match = HandleExists, "twice"
    with pytest.raises(error, match=match):
        store.create_many(items)
    assert _rows(store) == (1, 1)


def test_list_count_iterate_and_mint(store: IdentifierStore) -> None:
    store.create_many([*_batch(25), ("88.100.50/X", [URL]), ("88.100/X", [URL]),
                       ("88.100.5.1/X", [URL])])
    assert store.count() == 28
    assert store.count("88.100.5") == 25
    assert store.list_handles("88.100.5", page=2, limit=10) == [
        f"88.100.5/B{i:05d}" for i in range(20, 25)]
    assert list(store.iter_handles("88.100.5", batch=7)) == [h for h, _ in _batch(25)]
    assert store.list_handles("88.100") == ["88.100/X"]
    suffixes = [store.mint_suffix("88.100.5") for _ in range(50)]
    assert len(set(suffixes)) == 50 and all(len(s) == 26 for s in suffixes)
    with pytest.raises(InvalidInput):
        store.count("88/100")


u32 = st.integers(0, 0xFFFFFFFF)
u8 = st.integers(0, 0xFF)
texts = st.text(st.characters(codec="utf-8"), max_size=12)
types = texts.filter(lambda t: "\0" not in t)
values = st.lists(
    st.builds(HandleValue, st.integers(1, 0xFFFFFFFF), types, st.binary(max_size=40), u8, u32,
              u32, u8, st.lists(st.builds(ValueReference, texts, u32), max_size=3).map(tuple)),
    min_size=1, max_size=5, unique_by=lambda v: v.index)


suffixes = st.text(st.characters(codec="utf-8", exclude_categories=["Cc", "Cs"]),
                   min_size=1, max_size=20)


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=values, suffix=suffixes)
def test_values_round_trip_through_the_store(store: IdentifierStore, values: list[HandleValue],
                                             suffix: str) -> None:
    handle = f"88.100.5/{suffix}"
    name = store.create_handle(handle, values, overwrite=True)
    assert store.get(name) == tuple(sorted(values, key=lambda v: v.index))
    assert name in store.list_handles("88.100.5", limit=MAX_BATCH)
    store.delete_handle(name)


def test_concurrent_value_changes_to_one_handle_are_not_lost(store: IdentifierStore) -> None:
    """Values live in the handle's record, so every change is read-modify-write: concurrent
    writers must be serialized on the record (FOR UPDATE on PostgreSQL, the write lock on
    SQLite), or one change would overwrite the other."""
    from concurrent.futures import ThreadPoolExecutor

    store.create_handle("88.100.5/BUSY", [URL])
    indexes = range(10, 50)

    def add(i: int) -> None:
        store.add_values("88.100.5/BUSY", [HandleValue(i, "NOTE", str(i).encode())])

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(add, indexes))
    assert [v.index for v in store.get("88.100.5/BUSY")] == [1, *indexes]


def test_log_ids_follow_commit_order(store: IdentifierStore) -> None:
    """A writer that took a log id but commits late must not be skipped by a reader that asks
    for "ids above N" meanwhile (PostgreSQL sequences hand ids out at insert: the log lock
    makes the second writer wait; on SQLite the database lock does)."""
    import threading

    from millnet.identifiers.core.store import _load, _save
    from millnet.identifiers.http.changes import change_feed

    store.create_handle("88.100.5/A", [URL])
    store.create_handle("88.100.5/B", [URL])
    start = change_feed(store, None, 10)["next"]
    second = threading.Thread(target=store.modify_values,
                              args=("88.100.5/B", [HandleValue(1, "URL", b"b2")]))
    with store._writer.begin() as conn:  # writer 1: logged, not yet committed
        handle_id, _ = _load(conn, "88.100.5/A", lock=True)
        _save(conn, handle_id, "88.100.5/A", [HandleValue(1, "URL", b"a2")])
        second.start()
        second.join(0.5)
        assert second.is_alive()  # writer 2 waits for writer 1
        assert change_feed(store, start, 10)["changes"] == []
    second.join(10)
    page = change_feed(store, start, 10)
    assert page["changes"] == [change_digest("88.100.5/A"), change_digest("88.100.5/B")]
