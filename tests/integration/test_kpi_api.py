"""GET /api/v1/kpi and GET /api/v1/telemetry/rollups over a real registry, KPI tracker and
roll-up store: answers with their inputs, tenant scoping, errors naming the parameter."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from millnet.api import create_app
from millnet.api.routes.kpi import KpiAnswer, RollupAnswer
from millnet.ingest.metrics import IngestMetrics
from millnet.kpi.settings import KpiSection
from millnet.kpi.store import KpiStore
from millnet.kpi.tracker import KpiTracker, bindings_from_points
from millnet.model import AssetKind, DataType, PointSpec, SampleBatch
from millnet.registry import Registry
from millnet.telemetry.duckdb_store import DuckDBTelemetryStore
from millnet.telemetry.rollups import Rollups, RollupStore

SECTION = KpiSection.model_validate({
    "shifts": [{"name": "A", "start": "06:00", "end": "14:00"},
               {"name": "B", "start": "14:00", "end": "22:00"}],
    "ideal_cycle_s": {"press": 2.0}})
POINTS = [PointSpec("State", DataType.INT32), PointSpec("Parts/Good", DataType.INT64),
          PointSpec("Parts/Scrap", DataType.INT64)]


def ms(hhmm: str) -> int:
    return int(datetime.fromisoformat(f"2025-01-06T{hhmm}+00:00").timestamp()) * 1000


@dataclass
class Plant:
    client: TestClient
    viewer: str
    other_viewer: str
    line: int
    presses: list[int]
    series: dict[tuple[int, str], int]
    foreign_device: int
    foreign_series: int

    def get(self, path: str, status: int = 200, token: str | None = None) -> Any:
        r = self.client.get(path, headers={"Authorization": f"Bearer {token or self.viewer}"})
        assert r.status_code == status, r.text
        return r.json()


def _devices(registry: Registry, tenant: str, names: list[str]) -> tuple[int, int, list[int]]:
    tid = registry.ensure_tenant(tenant).id
    path = [(AssetKind.ENTERPRISE, tenant), (AssetKind.SITE, "s"), (AssetKind.AREA, "a"),
            (AssetKind.LINE, "l1")]
    ids = [registry.ensure_path(tid, [*path, (AssetKind.DEVICE, n)])[-1] for n in names]
    for dev in ids:
        registry.upsert_points(tid, dev, POINTS)
    return tid, registry.ensure_path(tid, path)[-1], ids


def _feed(plant: Plant, tracker: KpiTracker, rollups: Rollups) -> None:
    """press 1 runs 06:00-14:00 and makes 12,000 good and 400 scrap parts; press 2 runs
    06:00-10:00, is in fault until 11:00, then idle."""
    p1, p2 = plant.presses
    s = plant.series
    rows = [(s[p1, "State"], "06:00", 1), (s[p1, "Parts/Good"], "06:00", 0),
            (s[p1, "Parts/Scrap"], "06:00", 0), (s[p1, "State"], "14:00", 2),
            (s[p1, "Parts/Good"], "14:00", 12_000), (s[p1, "Parts/Scrap"], "14:00", 400),
            (s[p2, "State"], "06:00", 1), (s[p2, "State"], "10:00", 4),
            (s[p2, "State"], "11:00", 2), (s[p2, "State"], "14:00", 2)]
    batch = SampleBatch(np.array([r[0] for r in rows], np.int32),
                        np.array([ms(r[1]) * 1_000_000 for r in rows], np.int64),
                        np.array([r[2] for r in rows], np.float64), np.zeros(len(rows), np.uint8))
    for tap in (tracker, rollups):
        tap.on_samples(batch, [], historical=False, received_ns=0)


@pytest.fixture
def plant(tmp_path: Path) -> Iterator[Plant]:
    registry = Registry.open(f"sqlite:///{tmp_path / 'registry.sqlite'}")
    store = DuckDBTelemetryStore(tmp_path / "telemetry.duckdb", tmp_path / "archive")
    rollup_store = RollupStore(tmp_path / "rollups.duckdb")
    try:
        tid, line, presses = _devices(registry, "acme", ["press-1", "press-2"])
        gid, _, (foreign,) = _devices(registry, "globex", ["robot-7"])
        points = registry.list_points(tid)
        machines = bindings_from_points(tid, points, {p: "press" for p in presses}, SECTION)
        tracker = KpiTracker(SECTION, machines, KpiStore(registry))
        rollups = Rollups(rollup_store)
        app = create_app(registry, store, IngestMetrics(), node_name="t", role="enterprise",
                         kpi=tracker, rollups=rollups)
        with TestClient(app) as client:
            p = Plant(client, registry.create_token(tid, "viewer", "v")[0],
                      registry.create_token(gid, "viewer", "g")[0], line, presses,
                      {(pt.device_id, pt.name): pt.series_id for pt in points}, foreign,
                      registry.list_points(gid)[0].series_id)
            _feed(p, tracker, rollups)
            yield p
    finally:
        rollup_store.close()
        store.close()
        registry.close()


def test_machine_kpis_per_shift_with_their_inputs(plant: Plant) -> None:
    p1 = plant.presses[0]
    body = plant.get(f"/api/v1/kpi?level=machine&asset_id={p1}&start={ms('00:00')}"
                     f"&end={ms('23:00')}&by=shift")
    answer = KpiAnswer.model_validate(body)
    a, b = answer.rows  # idle from 14:00 on: shift B (up to now, long after it) is idle
    assert (a.shift, b.shift, a.machines) == ("A", "B", 1)
    assert b.inputs.adot_s == 8 * 3600 and b.inputs.apt_s == 0 and b.kpis.availability == 0
    assert a.inputs.apt_s == 8 * 3600 and a.inputs.pq == 12_400 and a.inputs.gq == 12_000
    assert a.kpis.availability == 1.0
    assert a.kpis.effectiveness == pytest.approx(12_400 * 2.0 / (8 * 3600))
    assert a.kpis.quality_ratio == pytest.approx(12_000 / 12_400)


def test_line_kpis_sum_its_machines(plant: Plant) -> None:
    body = plant.get(f"/api/v1/kpi?level=line&asset_id={plant.line}&start={ms('00:00')}"
                     f"&end={ms('23:00')}&by=none")
    (row,) = KpiAnswer.model_validate(body).rows
    i = row.inputs
    assert row.machines == 2 and row.shift is None
    assert i.failures == 1 and i.restorations == 1 and i.ttr_s == 3600
    # shift A: press 1 runs 8 h, press 2 runs 4 h, faults 1 h, idles 3 h; shift B idle both
    assert i.apt_s == 12 * 3600 and i.adet_s == 3600
    assert row.kpis.availability == pytest.approx(i.apt_s / i.pbt_s)
    assert row.kpis.mtbf_s == 12 * 3600 and row.kpis.mttr_s == 3600


def test_other_tenants_assets_and_wrong_levels_answer_404(plant: Plant) -> None:
    plant.get(f"/api/v1/kpi?asset_id={plant.foreign_device}", 404)
    plant.get(f"/api/v1/kpi?asset_id={plant.presses[0]}", 404, token=plant.other_viewer)
    plant.get(f"/api/v1/kpi?level=line&asset_id={plant.presses[0]}", 404)
    bad = plant.get(f"/api/v1/kpi?asset_id={plant.presses[0]}&start=yesterday", 400)
    assert bad["field"] == "start"
    assert plant.client.get("/api/v1/kpi?asset_id=1").status_code == 401


def test_rollups_of_a_series(plant: Plant) -> None:
    good = plant.series[plant.presses[0], "Parts/Good"]
    body = plant.get(f"/api/v1/telemetry/rollups?series={good}&width=1h&start={ms('00:00')}"
                     f"&end={ms('23:00')}")
    answer = RollupAnswer.model_validate(body)
    (series,) = answer.series
    assert series.ts_ms == [ms("06:00"), ms("14:00")]
    assert series.count == [1, 1] and series.last == [0.0, 12_000.0]
    plant.get(f"/api/v1/telemetry/rollups?series={plant.foreign_series}", 404)
    assert plant.get(f"/api/v1/telemetry/rollups?series={good}&width=5m", 422)["error"]
