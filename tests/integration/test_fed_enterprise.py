"""The enterprise side over a real registry: its inventory (devices' described vendor, model
and firmware, merged with probe hosts) goes up as a snapshot then as changes only; an advisory
from the parent is matched against it and answered once; the answer lands at the parent."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, select

from millnet.federation import reports
from millnet.federation.downward import answer_advisories, apply_advisory
from millnet.federation.inventory import (
    ProbeHost,
    forget_sent,
    inventory_messages,
    inventory_snapshot,
    registry_devices,
)
from millnet.federation.report_schema import fed_advisory_matches, fed_inventory
from millnet.model import AssetKind
from millnet.registry import Registry

T0 = datetime(2026, 12, 1, tzinfo=UTC)
ADVISORY = {"id": "CNVD-2026-1", "title": "S7 stop", "severity": "critical",
            "published": "2026-11-01T00:00:00Z", "issuer": "national",
            "affected": [{"cpe": "cpe:2.3:h:siemens:s7-1200:*:*:*:*:*:*:*:*",
                          "versionEndExcluding": "V4.5"}]}


def plant(tmp: Path, name: str) -> Registry:
    reg = Registry.open(f"sqlite:///{tmp / name}")
    tenant = reg.create_tenant("acme").id
    line = reg.ensure_path(tenant, [(AssetKind.ENTERPRISE, "acme"), (AssetKind.SITE, "p1"),
                                    (AssetKind.AREA, "press"), (AssetKind.LINE, "l1")])[-1]
    reg.create_asset(tenant, line, AssetKind.DEVICE, "plc1",
                     "Press PLC vendor=Siemens model=S7-1200 firmware=V4.2.1 mac=aa:00:00:00:00:01")
    reg.create_asset(tenant, line, AssetKind.DEVICE, "plc2",
                     "vendor=Siemens model=S7-1200 firmware=V4.5.0")
    reg.create_asset(tenant, line, AssetKind.DEVICE, "hmi", "no attributes here")
    return reg


def test_enterprise_inventory_and_advisory_answer_reach_the_parent(tmp_path: Path) -> None:
    ent, parent = plant(tmp_path, "ent.sqlite"), plant(tmp_path, "parent.sqlite")
    hosts = [ProbeHost("10.0.0.5", "AA:00:00:00:00:01", protocols=("s7comm",)),
             ProbeHost("10.0.0.77", vendor="Moxa", model="NPort 5110", firmware="3.9")]
    outbox: list[tuple[str, dict[str, Any]]] = []

    def enqueue(conn: Connection, kind: str, body: dict[str, Any]) -> None:
        outbox.append((kind, body))

    try:
        with ent.engine.begin() as conn:
            items = inventory_snapshot(registry_devices(conn), hosts)
            assert [i.key for i in items] == ["asset:acme/p1/press/l1/hmi",
                                              "asset:acme/p1/press/l1/plc1",
                                              "asset:acme/p1/press/l1/plc2", "host:10.0.0.77"]
            assert items[1].address == "10.0.0.5" and items[1].protocols == ("s7comm",)
            first = inventory_messages(conn, items, T0)
            assert [k for k, _ in first] == ["inventory.snapshot"]
            assert inventory_messages(conn, items, T0) == []  # nothing changed
            fewer = inventory_messages(conn, items[:3], T0)
            assert fewer == [("inventory.change", {"added": [], "removed": ["host:10.0.0.77"],
                                                   "changed": []})]
            forget_sent(conn)
            assert inventory_messages(conn, items, T0)[0][0] == "inventory.snapshot"

            after = answer_advisories(enqueue, lambda: hosts)
            apply_advisory(conn, "sec-js", "national", ADVISORY, T0, after)
            apply_advisory(conn, "sec-js", "national", ADVISORY, T0, after)  # replayed
        [(kind, answer)] = outbox
        assert kind == "advisory.match"
        assert [a["item_key"] for a in answer["affected"]] == ["asset:acme/p1/press/l1/plc1"]

        with parent.engine.begin() as conn:
            reports.apply_inventory_snapshot(conn, "sec-js", "ent-a", first[0][1], T0)
            reports.apply_advisory_match(conn, "sec-js", "ent-a", answer, T0)
            kept = conn.execute(select(fed_inventory.c.item_key)).scalars().all()
            matches = conn.execute(select(fed_advisory_matches.c.product)).scalars().all()
        assert len(kept) == 4 and matches == ["s7-1200"]
    finally:
        ent.close()
        parent.close()
