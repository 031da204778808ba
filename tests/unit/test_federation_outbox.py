"""The durable outbox: seqs in the caller's transaction, acks, and the bound policy (issue 13)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from millnet.db import migrate
from millnet.db.engine import create_db_engine, writer
from millnet.errors import InvalidInput, RejectedMessage
from millnet.federation.outbox import Outbox, OutboxLimits
from millnet.federation.schema import UP


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = create_db_engine(f"sqlite:///{tmp_path / 'node.sqlite'}")
    migrate.upgrade(engine)
    yield engine
    engine.dispose()


def limits(soft: int = 100, hard: int = 150, soft_bytes: int = 10**6,
           hard_bytes: int = 2 * 10**6) -> OutboxLimits:
    return OutboxLimits(soft, soft_bytes, hard, hard_bytes, frozenset({"incident"}))


def test_seqs_follow_each_other_and_survive_an_empty_outbox(engine: Engine) -> None:
    box = Outbox(engine, UP, "plant-7", limits())
    assert [box.enqueue("security.event", {"n": i}) for i in range(3)] == [1, 2, 3]
    assert [p.seq for p in box.pending(10, 10**6)] == [1, 2, 3]
    assert box.ack(3) == 3
    assert box.status().depth == 0
    # Reopened (a restart) and empty: the next seq is 4, never 1 again.
    again = Outbox(engine, UP, "plant-7", limits())
    assert again.enqueue("security.event", {}) == 4


def test_enqueue_joins_the_callers_transaction(engine: Engine) -> None:
    woken: list[int] = []
    box = Outbox(engine, UP, "plant-7", limits(), wake=lambda: woken.append(1))
    with pytest.raises(RuntimeError), writer(engine).begin() as conn:
        conn.execute(text("CREATE TABLE scratch (x INTEGER)"))
        box.enqueue("incident", {"id": 1}, conn)
        raise RuntimeError("the caller's own write failed")
    assert box.pending(10, 10**6) == [] and woken == []
    with writer(engine).begin() as conn:
        box.enqueue("incident", {"id": 2}, conn)
        box.enqueue("incident", {"id": 3}, conn)
        assert woken == []  # not before the commit: the sender would find nothing
    assert woken == [1]  # once per transaction
    assert [p.body for p in box.pending(10, 10**6)] == [b'{"id":2}', b'{"id":3}']


def test_pending_respects_count_and_bytes_but_always_gives_one(engine: Engine) -> None:
    box = Outbox(engine, UP, "plant-7", limits())
    box.enqueue_many([("inventory.snapshot", {"pad": "x" * 100}, None)] * 5)
    assert len(box.pending(3, 10**6)) == 3
    assert len(box.pending(10, 250)) == 2
    assert len(box.pending(10, 1)) == 1
    assert [p.seq for p in box.pending(10, 10**6, after=3)] == [4, 5]


def test_when_full_droppable_kinds_are_refused_and_counted_critical_ones_kept(
        engine: Engine) -> None:
    box = Outbox(engine, UP, "plant-7", limits(soft=3, hard=5))
    assert box.enqueue_many([("security.event", {}, None)] * 4) == [1, 2, 3, None]
    assert box.enqueue("security.event", {}) is None
    assert box.enqueue("incident", {"severity": "high"}) == 4
    assert box.enqueue("incident", {}) == 5
    with pytest.raises(RejectedMessage) as caught:
        box.enqueue("incident", {})
    assert caught.value.reason == "outbox_full"
    status = box.status()
    assert (status.depth, status.refused, status.last_seq) == (5, 2, 5)
    box.ack(3)
    assert box.enqueue("security.event", {}) == 6  # room again below the soft bound


def test_the_byte_bound_applies_too(engine: Engine) -> None:
    box = Outbox(engine, UP, "plant-7", limits(soft_bytes=50, hard_bytes=80))
    assert box.enqueue("summary", {"pad": "y" * 40}) == 1
    assert box.enqueue("summary", {"pad": "y" * 40}) is None
    assert box.status().bytes == len(b'{"pad":""}') + 40


def test_bad_messages_are_refused_before_anything_is_written(engine: Engine) -> None:
    box = Outbox(engine, UP, "plant-7", limits())
    with pytest.raises(InvalidInput, match="kind"):
        box.enqueue("Bad Kind", {})
    with pytest.raises(InvalidInput, match="origin"):
        box.enqueue("summary", {}, origin="no spaces allowed")
    with pytest.raises(InvalidInput, match="body"):
        box.enqueue("summary", {"x": object()})
    assert box.status().last_seq == 0


def test_outboxes_of_different_peers_are_independent(engine: Engine) -> None:
    a = Outbox(engine, "plant-a", "prov-32", limits())
    b = Outbox(engine, "plant-b", "prov-32", limits())
    a.enqueue("advisory", {"to": "a"})
    b.enqueue("advisory", {"to": "b"})
    b.enqueue("advisory", {"to": "b"})
    assert [p.body for p in a.pending(10, 10**6)] == [b'{"to":"a"}']
    a.ack(10)
    assert b.status().depth == 2
