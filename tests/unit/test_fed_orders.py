"""Rectification orders: the transition table, the audit trail, overdue (computed and flagged
once), the enterprise's copy and the issuer's forward-only tracking."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine

from millnet.errors import Conflict, InvalidInput, NotFound
from millnet.federation import orders
from millnet.federation.advisories import Child
from millnet.federation.downward import apply_order, downward_handlers, relay_downward
from tests.unit.fed_support import engine

__all__ = ["engine"]

T0 = datetime(2026, 12, 1, 8, tzinfo=UTC)
BODY = {"id": "RO-1", "targets": ["ent-b", "ent-a"], "title": "Patch S7-1200",
        "action": "Update firmware to V4.5", "deadline": "2026-12-10T00:00:00Z",
        "advisory_id": "CNVD-2026-0001"}


def test_the_table_allows_the_forward_path_and_names_the_allowed_moves() -> None:
    for state, allowed in orders.TRANSITIONS.items():
        for new in orders.STATES:
            if new in allowed:
                orders.check_transition(state, new)
            else:
                with pytest.raises(Conflict, match="allowed"):
                    orders.check_transition(state, new)
    with pytest.raises(Conflict, match="allowed: in_progress, done"):
        orders.check_transition("acknowledged", "received")
    with pytest.raises(InvalidInput, match="unknown state"):
        orders.check_transition("issued", "overdue")
    # every state reaches done
    for state in orders.STATES:
        seen, todo = {state}, [state]
        while todo:
            for nxt in orders.TRANSITIONS[todo.pop()]:
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        assert "done" in seen


def test_issuer_tracks_every_target_forward_only(engine: Engine) -> None:
    order = orders.parse_order(BODY, issuer="national")
    with engine.begin() as conn:
        assert orders.create_order(conn, order, T0)
        assert not orders.create_order(conn, order, T0)  # again: nothing new
        status = orders.status_body("RO-1", "acknowledged", "olga", "on it", T0 + timedelta(1))
        assert orders.apply_status(conn, "ent-a", status)
        assert not orders.apply_status(conn, "ent-a", status)  # replayed
        stale = orders.status_body("RO-1", "received", "olga", "", T0)
        assert not orders.apply_status(conn, "ent-a", stale)  # late: never moves back
        with pytest.raises(NotFound):
            orders.apply_status(conn, "ent-z", status)
        with pytest.raises(InvalidInput, match="state"):
            orders.apply_status(conn, "ent-a", {**status, "state": "burnt"})
        states = {s.target: s.state for s in orders.target_statuses(conn, "RO-1", T0)}
        assert states == {"ent-a": "acknowledged", "ent-b": "issued"}
        trail = orders.audit_trail(conn, "RO-1")
        assert [(e.target, e.from_state, e.to_state) for e in trail][-1] == (
            "ent-a", "issued", "acknowledged")
        assert trail[-1].actor == "ent-a:olga" and trail[-1].comment == "on it"
        late = T0 + timedelta(days=30)
        assert orders.pending_targets(conn, T0) == [("RO-1", "ent-b", "issued", False)]
        assert orders.pending_targets(conn, late) == [("RO-1", "ent-a", "acknowledged", True),
                                                      ("RO-1", "ent-b", "issued", True)]
        assert orders.flag_overdue(conn, late) == [("RO-1", "ent-a"), ("RO-1", "ent-b")]
        assert orders.flag_overdue(conn, late) == []  # flagged once


def test_enterprise_keeps_its_own_target_and_moves_it_by_the_table(engine: Engine) -> None:
    with engine.begin() as conn:
        apply_order(conn, "sec-js", "national", BODY, T0, self_node_id="ent-a")
        apply_order(conn, "sec-js", "national", BODY, T0, self_node_id="ent-a")  # again
        assert [s.state for s in orders.target_statuses(conn, "RO-1", T0)] == ["received"]
        with pytest.raises(Conflict, match="allowed: acknowledged"):
            orders.transition(conn, "RO-1", "ent-a", "done", "olga", "", T0)
        orders.transition(conn, "RO-1", "ent-a", "acknowledged", "olga", "", T0)
        orders.transition(conn, "RO-1", "ent-a", "in_progress", "olga", "", T0)
        assert orders.transition(conn, "RO-1", "ent-a", "done", "olga", "patched", T0) == \
            "in_progress"
        assert orders.target_statuses(conn, "RO-1", T0 + timedelta(days=99))[0].overdue is False
        with pytest.raises(InvalidInput, match="targets"):
            apply_order(conn, "sec-js", "national", {**BODY, "id": "RO-2"}, T0,
                        self_node_id="ent-q")


@pytest.mark.parametrize(("change", "field"), [
    ({"targets": []}, "targets"), ({"deadline": "someday"}, "deadline"), ({"title": ""}, "title"),
    ({"id": "a b"}, "id"), ({"advisory_id": 7}, "advisory_id"), ({"targets": ["x y"]}, "targets"),
])
def test_bad_orders_are_refused_naming_the_field(change: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidInput) as info:
        orders.parse_order({**BODY, **change}, issuer="national")
    assert info.value.field == field


def test_a_secondary_relays_new_advisories_and_orders_once(engine: Engine) -> None:
    sent: list[tuple[str, str]] = []
    after_advisory, after_order = relay_downward(
        lambda conn, child, kind, body: sent.append((child, kind)),
        lambda conn: [Child("ent-a", "enterprise", "320500"),
                      Child("ent-c", "enterprise", "330100")],
        lambda conn: {"ent-a": "ent-a", "ent-b": "ent-b"})
    handlers = downward_handlers(None, after_advisory, after_order)
    advisory = {"id": "A-1", "title": "t", "severity": "high", "published": "2026-11-01",
                "regions": ["32"], "affected": [{"vendor": "a", "product": "b"}]}
    with engine.begin() as conn:
        for _ in range(2):  # the second delivery is a replay: nothing relayed again
            handlers["advisory"](conn, "national", "national", advisory, T0)
            handlers["order"](conn, "national", "national", {**BODY, "issuer": "national"}, T0)
        assert {s.target for s in orders.target_statuses(conn, "RO-1", T0)} == {"ent-a",
                                                                                "ent-b"}
    assert sent == [("ent-a", "advisory"), ("ent-a", "order"), ("ent-b", "order")]
