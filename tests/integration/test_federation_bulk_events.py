"""The bulk path of ``security.event`` (one upsert for a run of events) stores and refuses
exactly what the per-message path does: a bad body is one rejection with the same reason, an
event sent twice in one batch keeps its later version, other kinds between events keep their
order, and the enterprise is placed once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import select

from millnet.db.engine import writer
from millnet.federation import reports
from millnet.federation.children import origin_allowed, sender_origins
from millnet.federation.inbox import ApplyResult, Inbox, PeerInfo
from millnet.federation.report_schema import fed_enterprises, fed_events, fed_incidents
from millnet.protocols.federation import Message
from tests.support.federation import node

PLANT = PeerInfo("plant-a", "enterprise", "310100", "C34", "88.100.1")
AT = "2026-12-01T00:00:00+00:00"


def event(seq: int, event_id: str, **body: Any) -> Message:
    full: dict[str, Any] = {"id": event_id, "kind": "auth.brute_force", "severity": "high",
                            "occurred_at": AT, "count": 1, **body}
    return Message(seq, 1_764_547_200_000, "security.event", PLANT.node_id, full)


def batch() -> list[Message]:
    return [
        event(1, "e-1"),
        event(2, "e-2", severity="bogus"),
        event(3, "e-3", count=-1),
        Message(4, 1_764_547_200_000, "incident", PLANT.node_id,
                {"id": "i-1", "status": "open", "severity": 3, "title": "t", "opened_at": AT}),
        event(5, "e-1", count=7),  # the same event again: the later version wins
        Message(6, 1_764_547_200_000, "security.event", PLANT.node_id, {"id": 5}),
        Message(7, 1_764_547_200_000, "security.event", "plant-b",  # not its origin
                {"id": "e-9", "kind": "x", "severity": 1, "occurred_at": AT}),
        event(8, "e-4", target="plc-1"),
    ]


def run(tmp: Path, bulk: bool) -> tuple[ApplyResult, list[tuple[Any, ...]]]:
    links = node(tmp, "sec-31", "secondary")
    inbox: Inbox = links.inbox
    reports.register_handlers(inbox, lambda conn, peer: sender_origins(conn, peer.node_id))
    if not bulk:
        inbox._batch_handlers.clear()
    with writer(links.engine).begin() as conn:
        result = inbox.apply(conn, PLANT.node_id, PLANT, batch(), origin_allowed)
    with links.engine.begin() as conn:
        rows = [tuple(r) for r in conn.execute(select(fed_events).order_by(
            fed_events.c.event_id))]
        rows.append(tuple(conn.execute(select(fed_incidents.c.incident_id)).scalars()))
        rows.append(tuple(conn.execute(select(fed_enterprises.c.node_id)).scalars()))
    links.close()
    return result, rows


def test_bulk_and_per_message_paths_store_and_refuse_the_same(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    bulk, bulk_rows = run(tmp_path / "a", bulk=True)
    one, one_rows = run(tmp_path / "b", bulk=False)
    assert bulk_rows == one_rows
    assert [r[2] for r in bulk_rows[:-2]] == ["e-1", "e-4"]
    assert next(r for r in bulk_rows[:-2] if r[2] == "e-1")[6] == 7
    assert bulk_rows[-2:] == [("i-1",), ("plant-a",)]
    assert (bulk.applied_seq, bulk.applied) == (one.applied_seq, one.applied) == (8, 4)
    assert [r[1] for r in bulk.rejected] == [r[1] for r in one.rejected] == [
        "invalid_content", "invalid_content", "invalid_content", "origin_not_allowed"]
    assert bulk.rejected == one.rejected
