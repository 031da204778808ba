"""The park's store: summaries replaced by period, refused unless from a member enterprise
with sane figures; members summed with OEE weighted by planned time; energy from power
(integrated) or from a meter (its increase)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from sqlalchemy import insert

from millnet.errors import InvalidInput, RejectedMessage
from millnet.federation.inbox import PeerInfo
from millnet.federation.schema import federation_children
from millnet.model import AssetKind, DataType, PointSpec
from millnet.park.report import energy_kwh
from millnet.park.settings import ParkSection
from millnet.park.store import apply_summary, members
from millnet.protocols.federation import Message
from millnet.registry import Registry
from millnet.telemetry.base import Bucket, TelemetryStore

T0 = datetime(2026, 12, 3, tzinfo=UTC)
MEMBER = PeerInfo("ent-a", "enterprise")


def summary(start: datetime, good: float, oee: float | None, planned_s: float,
            energy: float | None = 10.0) -> dict[str, Any]:
    return {"period_start": start.isoformat(),
            "period_end": (start + timedelta(hours=8)).isoformat(), "shift": "early",
            "machines": 2, "good": good, "scrap": 1, "energy_kwh": energy,
            "planned_s": planned_s, "availability": oee, "effectiveness": 1.0,
            "quality": 1.0, "oee": oee, "produced_at": start.isoformat()}


def apply(reg: Registry, body: dict[str, Any], sender: PeerInfo = MEMBER,
          origin: str = "ent-a") -> None:
    with reg.engine.begin() as conn:
        apply_summary(conn, sender, Message(1, 0, "park.summary", origin, body))


def test_members_side_by_side(tmp_path: Path) -> None:
    reg = Registry.open(f"sqlite:///{tmp_path / 'park.sqlite'}")
    try:
        with reg.engine.begin() as conn:
            conn.execute(insert(federation_children), [{
                "node_id": n, "role": "enterprise", "region": "320500", "sector": "C",
                "prefix": "88", "public_key": b"k" * 32, "enrolled_at": T0, "child_depth": 0,
                "child_bytes": 0, "child_oldest_age_ms": 0, "child_refused": 0}
                for n in ("ent-a", "ent-b")])
        apply(reg, summary(T0, 100, 0.5, 3600))
        apply(reg, summary(T0, 120, 0.6, 3600))  # the same period again: replaced
        apply(reg, summary(T0 + timedelta(hours=8), 300, 0.9, 7200, energy=20.0))
        apply(reg, summary(T0 - timedelta(days=3), 999, 0.1, 3600))  # outside the window
        [a, b] = members(reg.engine, T0 - timedelta(hours=1), T0 + timedelta(days=1))
        assert (a.node_id, a.periods, a.good, a.scrap, a.energy_kwh) == \
            ("ent-a", 2, 420, 2, 30.0)
        assert a.oee == pytest.approx((0.6 * 3600 + 0.9 * 7200) / 10_800)
        assert a.json()["energy_per_good_part_kwh"] == pytest.approx(30 / 420)
        assert a.last_report is not None
        assert (b.node_id, b.periods, b.oee, b.last_report) == ("ent-b", 0, None, None)

        with pytest.raises(RejectedMessage):  # forwarded from below: not a member
            apply(reg, summary(T0, 1, 0.5, 1), PeerInfo("sec-2", "secondary"), "ent-z")
        for bad in ({"good": -1}, {"oee": 11}, {"planned_s": float("nan")},
                    {"period_start": "yesterday"}, {"good": True}):
            with pytest.raises(InvalidInput):
                apply(reg, {**summary(T0, 1, 0.5, 1), **bad})
    finally:
        reg.close()


class Buckets:
    """A telemetry store that answers buckets only."""

    def __init__(self, buckets: list[Bucket]) -> None:
        self.buckets = buckets

    def query_buckets(self, series: Any, start: int, end: int, width: int) -> list[Bucket]:
        return [b for b in self.buckets if b.series_id in series]


def test_energy_from_power_or_a_meter(tmp_path: Path) -> None:
    reg = Registry.open(f"sqlite:///{tmp_path / 'ent.sqlite'}")
    try:
        tenant = reg.create_tenant("acme").id
        line = reg.ensure_path(tenant, [(AssetKind.ENTERPRISE, "acme"), (AssetKind.SITE, "s"),
                                        (AssetKind.AREA, "a"), (AssetKind.LINE, "l")])[-1]
        press = reg.create_asset(tenant, line, AssetKind.DEVICE, "press")
        reg.upsert_points(tenant, press.id, [
            PointSpec("Power/Active", DataType.FLOAT, unit="kW"),
            PointSpec("Energy", DataType.FLOAT, unit="kWh")])
        points = {p.name: p for p in reg.list_points(tenant, press.id)}
        power, meter = points["Power/Active"], points["Energy"]
        minute = 60 * 10**9
        store = cast(TelemetryStore, Buckets([Bucket(power.series_id, 0, 6, 30.0, 20.0, 40.0, 30.0),
                         Bucket(power.series_id, minute, 6, 60.0, 60.0, 60.0, 60.0),
                         Bucket(meter.series_id, 0, 6, 101.0, 100.0, 102.0, 102.0),
                         Bucket(meter.series_id, minute, 6, 104.0, 103.0, 105.5, 105.5)]))
        section = ParkSection()
        # 30 kW for a minute and 60 kW for half of the next (the window ends there).
        assert energy_kwh(reg, store, section, 0, minute + minute // 2) == \
            pytest.approx(0.5 + 0.5)
        meters = ParkSection(energy_point="Energy", energy_counter=True)
        assert energy_kwh(reg, store, meters, 0, 2 * minute) == 5.5
        assert energy_kwh(reg, store, ParkSection(energy_point="none"), 0, 1) is None
    finally:
        reg.close()


def test_only_a_secondary_is_a_park_and_only_enterprises_report() -> None:
    from millnet.config import load_settings
    from millnet.errors import ConfigError

    with pytest.raises(ConfigError, match=r"park\.enabled"):
        load_settings(None, environ={}, overrides={"park": {"enabled": True}})
    with pytest.raises(ConfigError, match=r"park\.report_every_s"):
        load_settings(None, environ={}, overrides={"node": {"role": "secondary"},
                                                   "park": {"report_every_s": 60}})
    assert load_settings(None, environ={}, overrides={
        "node": {"role": "secondary"}, "park": {"enabled": True}}).park.enabled
