"""The parent's report handlers on a migrated SQLite database: each stores what it should, is
safe to apply again, refuses a bad body naming the field (and any hostile body with a millnet
error, never a crash), and the link-layer adapter keeps a child to its own origins. Also the
secondary's forwarding decision and summary aggregator."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, Engine, select, text

from millnet.errors import InvalidInput, MillnetError, PermissionDenied
from millnet.federation import reports
from millnet.federation.downward import downward_handlers
from millnet.federation.forwarding import (
    Policy,
    SummaryAggregator,
    current_policy,
    forward_decision,
)
from millnet.federation.report_schema import fed_enterprises, fed_inventory
from millnet.model.security import Severity
from tests.unit.fed_support import engine

__all__ = ["engine"]

T0 = datetime(2026, 12, 1, 8, tzinfo=UTC)
ITEM = {"key": "asset:s/plc1", "kind": "registered", "vendor": "Siemens", "model": "S7-1200",
        "firmware": "V4.2.1", "protocols": ["s7comm"]}
TABLES = ("fed_inventory", "fed_events", "fed_incidents", "fed_summaries", "fed_asset_counts",
          "fed_advisory_matches", "fed_advisory_replies", "fed_enterprises")
MESSAGES: list[tuple[str, dict[str, Any]]] = [
    ("inventory.snapshot", {"items": [ITEM, {**ITEM, "key": "host:10.0.0.9",
                                             "kind": "discovered", "vendor": "Moxa"}],
                            "region": "320500", "sector": "C38"}),
    ("inventory.change", {"added": [{**ITEM, "key": "asset:s/plc2"}], "removed": ["host:10.0.0.9"],
                          "changed": [{"key": "asset:s/plc1", "fields": {"firmware": "V4.5"}}]}),
    ("security.event", {"id": "ev-1", "kind": "network.scan", "severity": "high",
                        "occurred_at": "2026-12-01T07:59:00Z", "count": 3,
                        "target": "10.0.0.0/24"}),
    ("incident", {"id": "in-1", "severity": 4, "status": "open", "title": "PLC stopped",
                  "opened_at": "2026-12-01T07:58:00Z"}),
    ("summary", {"bucket_start": "2026-12-01T07:55:00Z", "bucket_seconds": 300, "assets": 12,
                 "counts": [{"kind": "network.scan", "severity": "high", "count": 3},
                            {"kind": "auth.brute_force", "severity": "medium", "count": 1}]}),
    ("advisory.match", {"advisory_id": "CNVD-1", "affected": [
        {"item_key": "asset:s/plc1", "vendor": "siemens", "product": "s7-1200",
         "version": "V4.2.1"}]}),
]


def dump(conn: Connection) -> dict[str, list[tuple[Any, ...]]]:
    return {t: sorted(map(tuple, conn.execute(text(f"SELECT * FROM {t}")))) for t in TABLES}


def test_every_report_is_stored_and_applying_again_changes_nothing(engine: Engine) -> None:
    with engine.begin() as conn:
        for kind, body in MESSAGES:
            reports.REPORT_HANDLERS[kind](conn, "sec-js", "ent-a", body, T0)
        first = dump(conn)
        for kind, body in MESSAGES:
            reports.REPORT_HANDLERS[kind](conn, "sec-js", "ent-a", body, T0)
        assert dump(conn) == first
    inventory = {r[2]: r[6] for r in first["fed_inventory"]}
    assert inventory == {"asset:s/plc1": "V4.5", "asset:s/plc2": "V4.2.1"}
    assert first["fed_events"][0][3:6] == ("network.scan", 3, "2026-12-01 07:59:00.000000")
    assert len(first["fed_summaries"]) == 2 and first["fed_asset_counts"][0][3] == 12
    assert first["fed_enterprises"][0][:4] == ("ent-a", "sec-js", "320500", "C")
    assert first["fed_advisory_replies"][0][3] == 1


def test_an_incident_update_replaces_it_and_a_summary_bucket_is_restated(engine: Engine) -> None:
    with engine.begin() as conn:
        reports.apply_incident(conn, "ent-a", "ent-a", MESSAGES[3][1], T0)
        reports.apply_incident(conn, "ent-a", "ent-a", {**MESSAGES[3][1], "status": "closed",
                                                        "closed_at": "2026-12-01T09:00:00Z"}, T0)
        reports.apply_summary(conn, "ent-a", "ent-a", MESSAGES[4][1], T0)
        reports.apply_summary(conn, "ent-a", "ent-a", {**MESSAGES[4][1], "counts": []}, T0)
        rows = dump(conn)
    assert [r[4] for r in rows["fed_incidents"]] == ["closed"]
    assert rows["fed_summaries"] == []


@pytest.mark.parametrize(("kind", "body", "field"), [
    ("security.event", {**MESSAGES[2][1], "severity": "dire"}, "severity"),
    ("security.event", {**MESSAGES[2][1], "kind": "Scan!"}, "kind"),
    ("security.event", {**MESSAGES[2][1], "count": -1}, "count"),
    ("incident", {**MESSAGES[3][1], "status": "lost"}, "status"),
    ("summary", {**MESSAGES[4][1], "bucket_seconds": 1}, "bucket_seconds"),
    ("summary", {**MESSAGES[4][1], "counts": [{"kind": "x.y", "severity": 1}]}, "counts[0]"),
    ("inventory.snapshot", {"items": [{**ITEM, "kind": "rumour"}]}, "items[0].kind"),
    ("inventory.change", {"changed": [{"key": "k", "fields": {"colour": "red"}}]},
     "changed[0].fields"),
    ("inventory.snapshot", {"items": [ITEM], "region": "990000", "sector": "C"}, "region"),
    ("advisory.match", {"advisory_id": "A", "affected": [{"item_key": "k"}]}, "affected[0]"),
    ("summary", [], "body"),
])
def test_a_bad_body_is_refused_naming_the_field_and_writes_nothing(
        engine: Engine, kind: str, body: Any, field: str) -> None:
    with engine.begin() as conn:
        before = dump(conn)
        with pytest.raises(InvalidInput) as info:
            reports.REPORT_HANDLERS[kind](conn, "ent-a", "ent-a", body, T0)
        assert info.value.field == field
        assert dump(conn) == before


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=12), inner, max_size=5), max_leaves=12)


def mutated(base: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.builds(lambda k, v, drop: {**{x: y for x, y in base.items() if x != drop}, k: v},
                     st.sampled_from(sorted(base)) | st.text(max_size=8), JSON,
                     st.sampled_from(sorted(base)))


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture],
          deadline=None)
@given(st.sampled_from(range(len(MESSAGES))).flatmap(
    lambda i: st.tuples(st.just(MESSAGES[i][0]), mutated(MESSAGES[i][1]) | JSON)))
def test_hostile_bodies_get_a_millnet_error_never_a_crash(engine: Engine,
                                                         case: tuple[str, Any]) -> None:
    kind, body = case
    conn = engine.connect()
    try:
        with conn.begin():
            reports.REPORT_HANDLERS[kind](conn, "ent-a", "ent-a", body, T0)
    except MillnetError:
        pass  # refused: the link layer counts it as one rejection
    finally:
        conn.close()


@dataclass
class Peer:
    node_id: str
    role: str
    region: str = ""
    sector: str = ""


@dataclass
class Msg:
    kind: str
    body: dict[str, Any]
    origin: str | None = None
    created_at: datetime = T0


@dataclass
class Inbox:
    handlers: dict[str, Callable[[Connection, Any, Any], None]] = field(default_factory=dict)

    def register(self, kind: str, handler: Callable[[Connection, Any, Any], None]) -> None:
        self.handlers[kind] = handler


def test_the_adapter_keeps_children_to_their_own_origins(engine: Engine) -> None:
    inbox = Inbox()
    under = {"sec-js": {"ent-a", "ent-b"}}
    reports.register_handlers(inbox, lambda conn, peer: under.get(peer.node_id, set()),
                              downward_handlers())
    assert set(inbox.handlers) >= {*reports.REPORT_HANDLERS, "advisory", "order", "policy"}
    snapshot = inbox.handlers["inventory.snapshot"]
    with engine.begin() as conn:
        snapshot(conn, Peer("ent-c", "enterprise", "330100", "C"), Msg("", {"items": [ITEM]}))
        snapshot(conn, Peer("sec-js", "secondary", "32", "C"),
                 Msg("", {"items": [ITEM]}, origin="ent-a"))
        with pytest.raises(PermissionDenied, match="sec-js may not report for ent-c"):
            snapshot(conn, Peer("sec-js", "secondary"), Msg("", {"items": []}, origin="ent-c"))
        owners = sorted(conn.execute(select(fed_inventory.c.child, fed_inventory.c.origin)))
        assert owners == [("ent-c", "ent-c"), ("sec-js", "ent-a")]
        assert conn.execute(select(fed_enterprises.c.region)).scalars().all() == ["330100"]
        inbox.handlers["policy"](conn, Peer("national", "national"),
                                 Msg("policy", {"forward_min_severity": "medium"}))
        assert current_policy(conn) == Policy(Severity.MEDIUM, False)


def test_forward_decision_follows_the_parent_policy() -> None:
    policy = Policy(Severity.HIGH)
    assert forward_decision(policy, "summary", {})
    assert forward_decision(policy, "order.status", {})
    assert forward_decision(policy, "security.event", {"severity": "critical"})
    assert forward_decision(policy, "incident", {"severity": 3})
    assert not forward_decision(policy, "security.event", {"severity": "medium"})
    assert not forward_decision(policy, "incident", {"severity": "bogus"})
    assert not forward_decision(policy, "inventory.snapshot", {})
    assert forward_decision(Policy(forward_inventory=True), "inventory.change", {})
    assert not forward_decision(policy, "telemetry", {})


def test_the_aggregator_turns_events_into_summaries_the_parent_accepts(engine: Engine) -> None:
    agg = SummaryAggregator(300)
    agg.add("ent-a", "network.scan", Severity.LOW, T0 + timedelta(seconds=10))
    agg.add("ent-a", "network.scan", Severity.LOW, T0 + timedelta(seconds=20), 4)
    agg.add("ent-a", "auth.brute_force", Severity.HIGH, T0 + timedelta(seconds=400))
    agg.set_assets("ent-a", 7)
    assert agg.drain(T0 + timedelta(seconds=299)) == []
    [(origin, body)] = agg.drain(T0 + timedelta(seconds=300))
    assert origin == "ent-a" and body["counts"] == [
        {"kind": "network.scan", "severity": "low", "count": 5}]
    assert body["assets"] == 7 and body["bucket_start"] == T0.isoformat()
    with engine.begin() as conn:
        reports.apply_summary(conn, "sec-js", origin, body, T0)
    assert len(agg.drain(T0 + timedelta(hours=1))) == 1


def test_times_beyond_the_calendar_are_refused_not_crashed(engine: Engine) -> None:
    with engine.begin() as conn, pytest.raises(InvalidInput, match="occurred_at"):
        reports.apply_security_event(conn, "ent-a", "ent-a", {
            **MESSAGES[2][1], "occurred_at": "9999-12-31T23:59:59-23:00"}, T0)
