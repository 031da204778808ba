"""Composition of what turns a node's data into decisions (issue 12): the rule engine, alarms,
notifications, KPIs and roll-ups, built from the settings beside the ingest pipeline.

Data flow: the pipeline hands every chunk of samples to three taps (rules, KPIs, roll-ups);
the rule engine's condition changes go to the alarm service, whose stored transitions go to the
notifier. Nothing here can hold ingest up: taps are vectorised and bounded, the alarm service
and notifier queue and return. Part of the composition root (``node.py`` calls it).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from prometheus_client import Counter

from millnet import heap
from millnet.alarms.service import AlarmService
from millnet.alarms.store import AlarmStore
from millnet.config import Settings
from millnet.ingest.pipeline import IngestPipeline
from millnet.kpi.store import KpiStore
from millnet.kpi.tracker import KpiTracker, MachineBinding, bindings_from_points
from millnet.model import AlarmNotice
from millnet.notify.outbox import OutboxStore
from millnet.notify.service import Notifier
from millnet.registry import Registry
from millnet.rules.engine import RuleEngine, States
from millnet.rules.files import load_rule_file
from millnet.rules.store import RuleStore
from millnet.supervise import supervise
from millnet.telemetry.rollups import Rollups, RollupStore

log = logging.getLogger("millnet.insight")


@dataclass
class Insight:
    registry: Registry
    rules: RuleStore
    engine: RuleEngine
    alarm_store: AlarmStore
    alarms: AlarmService
    outbox: OutboxStore
    notifier: Notifier
    kpi: KpiTracker
    rollups: Rollups
    rollup_store: RollupStore
    #: Extra listeners of stored alarm transitions (benchmarks, tests); called on the loop.
    listeners: list[Callable[[list[AlarmNotice]], None]] = field(default_factory=list)

    def close(self) -> None:
        self.rollup_store.close()


def build_insight(settings: Settings, registry: Registry, pipeline: IngestPipeline,
                  tenant_id: int) -> Insight:
    """Open the stores (on the registry's database; roll-ups in their own DuckDB file), load
    the rule files into the rule store, and tap the pipeline. Starts nothing."""
    rules = RuleStore(registry.engine, max_rules_per_tenant=settings.rules.max_rules_per_tenant)
    for path in settings.rules.resolved_files(settings.config_path):
        rules.sync_file_rules(tenant_id, path, load_rule_file(path))
    alarm_store = AlarmStore(registry.engine)
    outbox = OutboxStore(registry.engine)
    notifier = Notifier(outbox, settings.notify)
    paths: dict[int, str] = {}

    def asset_path(asset_id: int) -> str:  # called in the alarm writer's thread
        if asset_id not in paths:
            paths[asset_id] = registry.get_asset(asset_id).path
        return paths[asset_id]

    insight_ref: list[Insight] = []

    def on_notices(notices: list[AlarmNotice]) -> None:
        notifier.submit(notices)
        for listener in insight_ref[0].listeners if insight_ref else ():
            listener(notices)

    alarms = AlarmService(alarm_store, settings.alarms, asset_path, on_notices)

    def initial() -> States:
        return {(r.rule_id, r.asset_id): (r.condition_active, 0, r.suppressed)
                for r in alarm_store.unsettled() if r.condition_active or r.suppressed}

    engine = RuleEngine(rules, registry, alarms.submit, settings.rules, initial=initial)
    kpi = KpiTracker(settings.kpi, machines(registry, settings), KpiStore(registry))
    kpi.restore()
    rollup_store = RollupStore(settings.node.data_dir / "rollups.duckdb")
    rollups = Rollups(rollup_store)
    pipeline.add_tap(engine)
    pipeline.add_tap(kpi, prompt=False)
    pipeline.add_tap(rollups, prompt=False)
    insight = Insight(registry, rules, engine, alarm_store, alarms, outbox, notifier, kpi,
                      rollups, rollup_store)
    insight_ref.append(insight)
    engine.rebound.append(lambda: _refresh_kpi(insight, settings))
    engine.rebound.append(heap.freeze)  # the new bindings live long too
    return insight


def machines(registry: Registry, settings: Settings) -> list[MachineBinding]:
    """The machines KPIs follow, over every tenant (blocking)."""
    found: list[MachineBinding] = []
    for tenant in registry.list_tenants():
        found += bindings_from_points(tenant.id, registry.list_points(tenant.id),
                                      registry.asset_types(tenant.id), settings.kpi)
    return found


def _refresh_kpi(insight: Insight, settings: Settings) -> None:
    """Devices or points changed (the rule engine re-bound): follow the new machines too."""
    async def refresh() -> None:
        found = await asyncio.to_thread(machines, insight.registry, settings)
        insight.kpi.set_machines(found)

    task = asyncio.get_running_loop().create_task(refresh())
    _background.add(task)
    task.add_done_callback(_background.discard)


_background: set[asyncio.Task[None]] = set()


def start(insight: Insight, tg: asyncio.TaskGroup, restarts: Counter,
          ) -> list[asyncio.Task[None]]:
    """Run the services in ``tg``, each supervised (restarted if it fails)."""
    return [tg.create_task(supervise(name, run, restarts))
            for name, run in (("rule engine", insight.engine.run),
                              ("alarms", insight.alarms.run),
                              ("notifier", insight.notifier.run),
                              ("kpi", insight.kpi.run),
                              ("rollups", insight.rollups.run))]
