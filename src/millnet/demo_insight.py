"""What ``millnet demo`` shows of issue 12: the demo's rules (``demo_rules.toml``), the asset
types of its machines, and the console tables of alarms and OEE.

* Asset types are set once the devices exist (they are created by their first data): ``cnc``
  and ``press`` for the Sparkplug machines, ``cnc-opcua``, ``pump`` and ``counter`` for the OPC
  UA plant, ``energy-meter``, ``vfd`` and ``packer`` behind the Modbus gateway. The rule engine
  is told to re-bind, which also refreshes the KPI tracker's machines.
* The alarm tables read the alarm service (the store) and the transitions it annunciated (a
  listener of the node's insight); OEE per line is the KPI tracker's query over each line's
  devices, as ``GET /api/v1/kpi?level=line`` computes it, for the current shift.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table

from millnet.alarms.records import AlarmFilter, AlarmRecord
from millnet.insight import Insight
from millnet.model import AlarmNotice, AlarmState, Priority
from millnet.registry import Registry
from millnet.sim.factory import Machine

RULES_FILE = Path(__file__).with_name("demo_rules.toml")
#: The field devices of ``demo_field`` and what they are.
FIELD_TYPES = {"CNC-1": "cnc-opcua", "Pump-1": "pump", "Counter-1": "counter",
               "meter-1": "energy-meter", "pump-vfd-1": "vfd", "packer-1": "packer"}
#: Ideal cycle times (s per part) of the demo's asset types; cnc and press are the defaults.
IDEAL_CYCLE_S = {"cnc": 9.8, "press": 1.23, "cnc-opcua": 3.3}
_OPEN = (AlarmState.UNACK, AlarmState.ACKED, AlarmState.RTN_UNACK, AlarmState.SUPPRESSED,
         AlarmState.SHELVED, AlarmState.OUT_OF_SERVICE)
_BOOKKEEPING = frozenset({"suppressed", "unsuppressed"})  # counted, not listed
#: CNCs with a bad coolant pump (docs of ``millnet.sim.factory``): (site, line, machine).
BAD_PUMPS = (("Suzhou", "L1", "CNC-104"), ("Wuxi", "L1", "CNC-107"))
PUMPS_OUT = (("Suzhou", "L3", "CNC-305"),)  # out from the start: an alarm within a minute


def coolant_incidents(machines: list[Machine]) -> tuple[list[int], list[int]]:
    """Indices of the machines of :data:`BAD_PUMPS` and :data:`PUMPS_OUT` in the plant."""
    where = {(m.site, m.line, m.name): i for i, m in enumerate(machines)}
    return ([where[k] for k in BAD_PUMPS if k in where],
            [where[k] for k in PUMPS_OUT if k in where])


def asset_types(machines: list[Machine]) -> dict[str, str]:
    """Device name -> asset type, for every simulated device."""
    return {m.name: m.kind for m in machines} | FIELD_TYPES


async def assign_asset_types(insight: Insight, tenant_id: int, machines: list[Machine],
                             console: Console) -> None:
    """Type each device as soon as it exists; returns once all of them are typed."""
    wanted = asset_types(machines)
    expected = len(machines) + len(FIELD_TYPES)
    while True:
        devices = await asyncio.to_thread(insight.registry.list_devices, tenant_id)
        typed = changed = 0
        for d in devices:
            kind = wanted.get(d.name)
            if kind is None:
                continue
            if d.asset_type != kind:
                await asyncio.to_thread(insight.registry.set_asset_type, tenant_id, d.id, kind)
                changed += 1
            typed += 1
        if changed:
            insight.engine.changed(tenant_id)  # rules by asset type bind the typed devices
        if typed >= expected:
            console.print(f"asset types: {typed} devices typed (cnc, press, cnc-opcua, pump, "
                          "counter, energy-meter, vfd, packer); rules bound to them")
            return
        await asyncio.sleep(1.0)


@dataclass
class InsightView:
    """Keeps the latest annunciated transitions and renders the demo's insight tables."""

    insight: Insight
    registry: Registry
    tenant_id: int
    recent: deque[AlarmNotice] = field(default_factory=lambda: deque(maxlen=5))
    _lines: dict[str, list[int]] = field(default_factory=dict)
    _devices: int = -1

    def __post_init__(self) -> None:
        self.insight.listeners.append(self._on_notices)

    def _on_notices(self, notices: list[AlarmNotice]) -> None:
        self.recent.extend(n for n in notices if n.event not in _BOOKKEEPING)

    async def open_alarms(self) -> list[AlarmRecord]:
        return await self.insight.alarms.list_alarms(
            AlarmFilter(tenant_id=self.tenant_id, states=_OPEN, limit=10_000))

    async def summary(self) -> str:
        """One line: active alarms by priority, unacknowledged, suppressed."""
        records = await self.open_alarms()
        return summary_line(records)

    async def tables(self) -> list[Table]:
        records = await self.open_alarms()
        return [alarm_table(records), self.recent_table(), await self.oee_table()]

    def recent_table(self) -> Table:
        table = Table(title="latest alarm transitions (UTC)")
        for column in ("time", "priority", "event", "line", "message"):
            table.add_column(column, no_wrap=column != "message")
        for n in reversed(self.recent):
            when = datetime.fromtimestamp(n.ts_ns / 1e9, UTC).strftime("%H:%M:%S")
            line = n.asset_path.split("/", 1)[-1].rsplit("/", 1)[0]
            table.add_row(when, n.priority.label, n.event, line, n.message)
        return table

    async def lines(self) -> dict[str, list[int]]:
        """Line path (without the tenant) -> its devices, re-read when devices were added."""
        devices = await asyncio.to_thread(self.registry.list_devices, self.tenant_id)
        if len(devices) != self._devices:
            self._devices = len(devices)
            found: dict[str, list[int]] = {}
            for d in devices:
                found.setdefault(d.path.rsplit("/", 1)[0].split("/", 1)[-1], []).append(d.id)
            self._lines = found
        return self._lines

    async def oee_table(self) -> Table:
        kpi = self.insight.kpi
        now = time.time_ns()
        shift = kpi.calendar.instance_at(now)
        title = "OEE per line (ISO 22400-2), shift " + (shift.key if shift else "none")
        table = Table(title=title)
        for column in ("line", "machines", "avail.", "perf.", "quality", "OEE"):
            table.add_column(column, justify="left" if column == "line" else "right",
                             no_wrap=True)
        if shift is None:
            return table
        for line, devices in sorted((await self.lines()).items()):
            rows = await kpi.query(devices, shift.start_ns, shift.end_ns, by_shift=True,
                                   now_ns=now)
            if not rows or rows[-1].machines == 0:
                continue  # no machines there (a utility, a gateway)
            k = rows[-1].kpis
            table.add_row(line, str(rows[-1].machines), _pct(k.availability),
                          _pct(k.effectiveness), _pct(k.quality_ratio), _pct(k.oee))
        return table


def summary_line(records: list[AlarmRecord]) -> str:
    active = [r for r in records if r.state in (AlarmState.UNACK, AlarmState.ACKED)]
    by = {p: sum(r.priority is p for r in active) for p in Priority}
    parts = ", ".join(f"{p.label} {n}" for p, n in by.items() if n)
    unack = sum(r.state in (AlarmState.UNACK, AlarmState.RTN_UNACK) for r in records)
    suppressed = sum(r.state is AlarmState.SUPPRESSED for r in records)
    return (f"alarms {len(active)} active ({parts or 'none'}), {unack} unack, "
            f"{suppressed} suppressed")


def alarm_table(records: list[AlarmRecord]) -> Table:
    """Active alarms by priority, with the newest one of each."""
    table = Table(title="active alarms by priority")
    for column in ("priority", "active", "unack", "latest"):
        table.add_column(column, no_wrap=column != "latest")
    for p in Priority:
        mine = [r for r in records if r.priority is p
                and r.state in (AlarmState.UNACK, AlarmState.ACKED)]
        unack = sum(r.state in (AlarmState.UNACK, AlarmState.RTN_UNACK) for r in records
                    if r.priority is p)
        latest = max(mine, key=lambda r: r.last_activated_at or r.updated_at, default=None)
        table.add_row(p.label, str(len(mine)), str(unack),
                      latest.message if latest is not None else "")
    return table


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"
