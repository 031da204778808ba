"""A secondary forwards what it applies, in the applying transaction, one enqueue per batch:
a message its handler refuses is neither stored nor forwarded while the rest of its batch is,
events below the parent's policy stay at the secondary, and a batch sent again forwards
nothing twice (the inbox's batch hook: flushed after the last handler, discarded on rollback).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import text

from millnet.db.engine import writer
from millnet.federation import reports
from millnet.federation.children import origin_allowed, sender_origins
from millnet.federation.inbox import ApplyResult, PeerInfo
from millnet.federation.links import FederationLinks
from millnet.monitoring import _Forwarding
from millnet.protocols.federation import Message
from tests.support.federation import node

PLANT = PeerInfo("plant-a", "enterprise", "310100", "C34", "88.100.1")


def event(seq: int, severity: str) -> Message:
    body: dict[str, Any] = {"id": f"e-{seq}", "kind": "auth.brute_force", "severity": severity,
                            "occurred_at": "2026-12-01T00:00:00+00:00", "count": 1}
    return Message(seq, 1_764_547_200_000, "security.event", PLANT.node_id, body)


def secondary(tmp: Path) -> FederationLinks:
    links = node(tmp, "sec-31", "secondary")
    reports.register_handlers(_Forwarding(links.inbox, links.outbox_up),
                              lambda conn, peer: sender_origins(conn, peer.node_id))
    return links


def apply(links: FederationLinks, messages: list[Message]) -> ApplyResult:
    with writer(links.engine).begin() as conn:
        return links.inbox.apply(conn, PLANT.node_id, PLANT, messages, origin_allowed)


def forwarded(links: FederationLinks) -> list[tuple[str, str]]:
    assert links.outbox_up is not None
    return [(p.kind, p.origin) for p in links.outbox_up.pending(100, 1 << 20)
            if p.kind == "security.event"]


def stored(links: FederationLinks) -> list[str]:
    with links.engine.begin() as conn:
        return [r[0] for r in conn.execute(text("SELECT event_id FROM fed_events "
                                                "ORDER BY event_id"))]


def test_a_refused_message_is_not_forwarded_the_rest_of_its_batch_is(tmp_path: Path) -> None:
    links = secondary(tmp_path)
    result = apply(links, [event(1, "high"), event(2, "bogus"), event(3, "critical"),
                           event(4, "low")])
    assert (result.applied_seq, result.applied, len(result.rejected)) == (4, 3, 1)
    assert stored(links) == ["e-1", "e-3", "e-4"]
    # e-4 is below the default policy (high): kept here, not forwarded.
    assert forwarded(links) == [("security.event", "plant-a")] * 2
    links.close()


def test_a_batch_sent_again_forwards_nothing_twice(tmp_path: Path) -> None:
    links = secondary(tmp_path)
    batch = [event(1, "high"), event(2, "high")]
    apply(links, batch)
    again = apply(links, batch)
    assert (again.applied, again.duplicates) == (0, 2)
    assert len(forwarded(links)) == 2
    links.close()
