"""Situation queries over reports from several children in several provinces and sectors,
written through the real handlers; expected figures are recomputed from the generated data."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine

from millnet.errors import InvalidInput
from millnet.federation import orders, reports
from millnet.federation.situation import SituationQuery, situation
from tests.unit.fed_support import engine

__all__ = ["engine"]

T0 = datetime(2026, 12, 1, tzinfo=UTC)
# (enterprise, via, region, sector)
ENTERPRISES = [("ent-sz", "sec-js", "320500", "C"), ("ent-nj", "sec-js", "320100", "D"),
               ("ent-hz", "sec-zj", "330100", "C"), ("ent-gz", "ent-gz", "440100", "C")]
SEVERITIES = ["info", "low", "medium", "high", "critical"]


def generate(engine: Engine, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    expected: dict[str, Any] = {"events": Counter(), "by_province": Counter(),
                                "by_severity": Counter(), "incidents": Counter(),
                                "timeline": Counter()}
    with engine.begin() as conn:
        for ent, via, region, sector in ENTERPRISES:
            n_items = rng.randint(1, 5)
            items = [{"key": f"asset:{ent}/{i}", "kind": "registered", "vendor": "Siemens",
                      "model": "S7-1200" if i % 2 else "S7-1500", "firmware": "4.2",
                      "address": f"10.0.0.{i}"} for i in range(n_items)]
            reports.apply_inventory_snapshot(conn, via, ent, {
                "items": items, "region": region, "sector": sector}, T0)
            expected.setdefault("assets", {})[ent] = n_items
            for hour in range(6):
                start = T0 + timedelta(hours=hour)
                counts = []
                for sev in rng.sample(SEVERITIES, 2):
                    n = rng.randint(0, 9)
                    counts.append({"kind": "network.scan", "severity": sev, "count": n})
                    expected["events"][ent] += n
                    expected["by_province"][region[:2]] += n
                    expected["by_severity"][sev] += n
                    expected["timeline"][start] += n
                reports.apply_summary(conn, via, ent, {
                    "bucket_start": start.isoformat(), "bucket_seconds": 3600,
                    "counts": counts}, T0)
            reports.apply_incident(conn, via, ent, {
                "id": f"inc-{ent}", "severity": "high", "status": "open", "title": "stop",
                "opened_at": (T0 + timedelta(minutes=30)).isoformat()}, T0)
            expected["incidents"][region[:2]] += 1
            reports.apply_advisory_match(conn, via, ent, {"advisory_id": "CNVD-1", "affected": [
                {"item_key": i["key"], "vendor": "siemens", "product": i["model"].lower(),
                 "version": "4.2"} for i in items]}, T0)
            reports.apply_security_event(conn, via, ent, {
                "id": "e1", "kind": "field.plc_stop", "severity": "critical", "count": 2,
                "occurred_at": (T0 + timedelta(hours=1)).isoformat(), "target": "10.0.0.0"},
                T0)
        order = orders.parse_order({"id": "RO-1", "targets": ["ent-sz", "ent-hz"], "title": "t",
                                    "action": "patch", "deadline": "2026-12-02T00:00:00Z"},
                                   issuer="national")
        orders.create_order(conn, order, T0)
        orders.apply_status(conn, "ent-hz", orders.status_body(
            "RO-1", "acknowledged", "li", "", T0))
    return expected


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_national_view_adds_up_by_province_severity_and_time(engine: Engine, seed: int) -> None:
    expected = generate(engine, seed)
    q = SituationQuery(T0, T0 + timedelta(days=1), 3600)
    with engine.connect() as conn:
        body = situation(conn, q, now=T0 + timedelta(hours=2)).to_body()
    totals = body["totals"]
    assert totals["enterprises"] == 4 and totals["assets"] == sum(expected["assets"].values())
    assert totals["events"] == sum(expected["events"].values())
    assert totals["incidents"] == totals["incidents_open"] == 4
    provinces = {p["code"]: p for p in body["by_province"]}
    assert set(provinces) == {"32", "33", "44"} and provinces["32"]["name"] == "Jiangsu"
    assert {c: p["events"] for c, p in provinces.items()} == dict(expected["by_province"])
    assert {c: p["incidents"] for c, p in provinces.items()} == dict(expected["incidents"])
    assert provinces["32"]["enterprises"] == 2
    sectors = {s["code"]: s["enterprises"] for s in body["by_sector"]}
    assert sectors == {"C": 3, "D": 1}
    assert {s["severity"]: s["events"] for s in body["by_severity"] if s["events"]} == {
        k: v for k, v in expected["by_severity"].items() if v}
    timeline = {t["bucket_start"]: t["events"] for t in body["timeline"]}
    assert timeline == {k.isoformat(): v for k, v in expected["timeline"].items()}
    top = body["top_products"]
    assert top[0]["vendor"] == "siemens" and top[0]["advisories"] == ["CNVD-1"]
    assert sum(p["matched_assets"] for p in top) == totals["assets"]
    assert sum(p["events"] for p in top) == 8  # each enterprise's plc_stop on its asset 0
    assert body["pending_orders"] == [
        {"order_id": "RO-1", "target": "ent-sz", "state": "issued", "overdue": False}]


def test_region_and_sector_narrow_the_view(engine: Engine) -> None:
    expected = generate(engine, 7)
    with engine.connect() as conn:
        jiangsu = situation(conn, SituationQuery(T0, T0 + timedelta(days=1), 3600,
                                                 region="32"), T0).to_body()
        power = situation(conn, SituationQuery(T0, T0 + timedelta(days=1), 3600,
                                               sector="D"), T0).to_body()
        late = situation(conn, SituationQuery(T0, T0 + timedelta(days=1), 3600),
                         now=T0 + timedelta(days=3)).to_body()
    assert jiangsu["totals"]["events"] == expected["by_province"]["32"]
    assert [p["code"] for p in jiangsu["by_province"]] == ["32"]
    assert power["totals"]["enterprises"] == 1
    assert power["totals"]["events"] == expected["events"]["ent-nj"]
    assert jiangsu["pending_orders"][0]["target"] == "ent-sz"
    assert all(p["overdue"] for p in late["pending_orders"])
    assert [p["target"] for p in late["pending_orders"]] == ["ent-hz", "ent-sz"]


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"until": T0}, "until"), ({"bucket_seconds": 10}, "bucket"), ({"region": "99"}, "region"),
    ({"sector": "Z"}, "sector"), ({"until": T0 + timedelta(days=400), "bucket_seconds": 60},
                                  "bucket"),
])
def test_bad_queries_are_refused_naming_the_parameter(kwargs: dict[str, Any], field: str) -> None:
    args: dict[str, Any] = {"since": T0, "until": T0 + timedelta(days=1), **kwargs}
    with pytest.raises(InvalidInput) as info:
        SituationQuery(**args)
    assert info.value.field == field
