"""The report handlers and the situation view on SQLite and PostgreSQL: every report applied
twice leaves the same rows, an inventory diff applied at the parent rebuilds the new snapshot,
and the situation adds up on both backends."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, select, text

from millnet.federation import reports
from millnet.federation.inventory import InventoryItem, inventory_diff
from millnet.federation.report_schema import fed_inventory
from millnet.federation.situation import SituationQuery, situation
from millnet.registry import Registry
from tests.integration.registry_fixtures import registry, registry_url
from tests.unit.test_fed_reports import MESSAGES, TABLES

__all__ = ["registry", "registry_url"]

T0 = datetime(2026, 12, 1, 8, tzinfo=UTC)


def dump(conn: Connection) -> dict[str, list[tuple[Any, ...]]]:
    return {t: sorted(map(tuple, conn.execute(text(f"SELECT * FROM {t}")))) for t in TABLES}


def test_reports_are_idempotent_and_add_up_on_both_backends(registry: Registry) -> None:
    with registry.engine.begin() as conn:
        for kind, body in MESSAGES:
            reports.REPORT_HANDLERS[kind](conn, "sec-js", "ent-a", body, T0)
        first = dump(conn)
        for kind, body in MESSAGES:
            reports.REPORT_HANDLERS[kind](conn, "sec-js", "ent-a", body, T0)
        assert dump(conn) == first
        view = situation(conn, SituationQuery(T0 - timedelta(hours=1), T0 + timedelta(hours=1),
                                              900), T0).to_body()
    assert view["totals"] == {"enterprises": 1, "assets": 2, "events": 4, "incidents": 1,
                              "incidents_open": 1}
    assert view["by_province"][0]["code"] == "32"
    assert view["top_products"][0]["product"] == "s7-1200"


ITEMS = st.lists(st.builds(
    InventoryItem, key=st.sampled_from([f"asset:d{i}" for i in range(6)]),
    kind=st.just("registered"), vendor=st.sampled_from(["", "Siemens", "Moxa"]),
    firmware=st.sampled_from(["", "1.0", "V2"]),
    protocols=st.sampled_from([(), ("modbus",), ("modbus", "s7comm")])),
    max_size=6, unique_by=lambda i: i.key)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ITEMS, ITEMS)
def test_a_diff_applied_at_the_parent_rebuilds_the_new_inventory(
        registry: Registry, old: list[InventoryItem], new: list[InventoryItem]) -> None:
    with registry.engine.connect() as conn, conn.begin() as tx:
        reports.apply_inventory_snapshot(conn, "ent-a", "ent-a",
                                         {"items": [i.to_body() for i in old]}, T0)
        reports.apply_inventory_change(conn, "ent-a", "ent-a",
                                       inventory_diff(old, new).to_body(), T0)
        stored = conn.execute(select(fed_inventory.c.item).order_by(
            fed_inventory.c.item_key)).scalars().all()
        tx.rollback()
    assert [json.loads(s) for s in stored] == [i.to_body()
                                               for i in sorted(new, key=lambda i: i.key)]
