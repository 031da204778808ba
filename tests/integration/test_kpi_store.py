"""KPI state in the registry database (SQLite and PostgreSQL): the migration matches the
metadata, and a tracker restarted half way through a shift gives the answer of one that ran
through."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import numpy as np
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from millnet.db.migrate import VERSION_TABLE
from millnet.db.schema import metadata
from millnet.kpi import schema as kpi_schema
from millnet.kpi.settings import KpiSection
from millnet.kpi.shifts import NS_PER_S
from millnet.kpi.store import KpiStore
from millnet.kpi.tracker import KpiTracker, MachineBinding, bindings_from_points
from millnet.model import DataType, PointSpec, SampleBatch
from millnet.registry import Registry
from tests.integration.registry_fixtures import DEVICE_PATH, registry, registry_url

__all__ = ["registry", "registry_url"]  # fixtures, imported to be found by pytest

SECTION = KpiSection.model_validate({
    "shifts": [{"name": "A", "start": "06:00", "end": "14:00",
                "breaks": [{"start": "10:00", "end": "10:15"}]}],
    "ideal_cycle_s": {"press": 1.25}})
Row = tuple[int, int, float]


def at(hhmm: str) -> int:
    return int(datetime.fromisoformat(f"2025-01-06T{hhmm}+00:00").timestamp()) * NS_PER_S


def send(tracker: KpiTracker, rows: list[Row]) -> None:
    tracker.on_samples(SampleBatch(np.array([r[0] for r in rows], np.int32),
                                   np.array([r[1] for r in rows], np.int64),
                                   np.array([r[2] for r in rows], np.float64),
                                   np.zeros(len(rows), np.uint8)),
                       [], historical=False, received_ns=0)


def test_the_kpi_tables_match_the_metadata(registry: Registry) -> None:
    assert kpi_schema.kpi_shift_totals.name in metadata.tables

    def only_kpi(obj: Any, name: str | None, type_: str, reflected: bool,
                 compare_to: object) -> bool:
        table = name if type_ == "table" else getattr(getattr(obj, "table", None), "name", "")
        if str(table).startswith("kpi_"):
            compared.add(str(table))
            return True
        return False

    compared: set[str] = set()
    with registry.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={
            "compare_type": True, "version_table": VERSION_TABLE, "include_object": only_kpi})
        assert compare_metadata(context, metadata) == []
    assert compared == {"kpi_shift_totals", "kpi_machines"}


def _machine(registry: Registry) -> MachineBinding:
    tenant = registry.ensure_tenant("acme").id
    device = registry.ensure_path(tenant, DEVICE_PATH)[-1]
    registry.upsert_points(tenant, device, [
        PointSpec("State", DataType.INT32), PointSpec("Parts/Good", DataType.INT64),
        PointSpec("Parts/Scrap", DataType.INT64), PointSpec("Ram/Force", DataType.FLOAT)])
    (binding,) = bindings_from_points(tenant, registry.list_points(tenant),
                                      {device: "press"}, SECTION)
    return binding


def _stream(m: MachineBinding) -> tuple[list[Row], list[Row]]:
    assert m.state_series and m.good_series and m.scrap_series
    first: list[Row] = [(m.state_series, at("06:00"), 1), (m.good_series, at("06:00"), 0),
             (m.scrap_series, at("06:00"), 0), (m.state_series, at("08:00"), 4),
             (m.good_series, at("08:00"), 5000), (m.scrap_series, at("08:00"), 40)]
    second: list[Row] = [(m.state_series, at("08:20"), 1), (m.good_series, at("12:00"), 3000),
              (m.scrap_series, at("12:00"), 100), (m.state_series, at("13:00"), 3),
              (m.state_series, at("14:00"), 2), (m.good_series, at("14:00"), 4000)]
    return first, second


def test_a_restarted_tracker_carries_on_where_it_stopped(registry: Registry) -> None:
    machine = _machine(registry)
    first, second = _stream(machine)
    window = (at("00:00"), at("23:00"))

    through = KpiTracker(SECTION, [machine])
    send(through, first)
    send(through, second)
    expected = asyncio.run(through.query([machine.asset_id], *window, by_shift=True,
                                         now_ns=at("14:00")))

    before = KpiTracker(SECTION, [machine], KpiStore(registry))
    send(before, first)
    asyncio.run(before.flush())
    after = KpiTracker(SECTION, [machine], KpiStore(registry))
    after.restore(now_ns=at("08:10"))
    send(after, second)
    asyncio.run(after.flush())
    got = asyncio.run(after.query([machine.asset_id], *window, by_shift=True,
                                  now_ns=at("14:00")))
    assert got == expected
    # the counter reset at 12:00 (5000 -> 3000) counts 3000, then 1000 more
    assert got[0].elements.gq == 5000 + 3000 + 1000
    assert got[0].elements.failures == 1 and got[0].elements.ttr_s == 20 * 60
    assert got[0].elements.aust_s == 3600

    # a third tracker that holds nothing in memory answers from the database alone
    cold = KpiTracker(SECTION, [machine], KpiStore(registry))
    assert asyncio.run(cold.query([machine.asset_id], *window, by_shift=True,
                                  now_ns=at("14:00"))) == expected
