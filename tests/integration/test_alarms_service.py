"""The alarm service over a real SQLite store in tmp_path: condition changes become stored
transitions and notices in order, operators' actions are audited, states survive a restart,
shelving expires by itself, and a failing store is retried without losing changes."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from millnet.alarms.records import AlarmFilter
from millnet.alarms.service import AlarmService
from millnet.alarms.settings import AlarmsSection
from millnet.alarms.store import AlarmStore
from millnet.errors import Conflict, InvalidInput, NotFound
from millnet.model.alarms import AlarmNotice, AlarmState, ConditionChange, Priority
from tests.support.nodes import until

S = AlarmState
TENANT = 7


def change(active: bool, rule_id: int = 1, asset_id: int = 10, *, ts_s: float = 0,
           suppressed: bool = False, value: float | None = 90.0) -> ConditionChange:
    return ConditionChange(rule_id, f"rule-{rule_id}", TENANT, asset_id, active,
                           int((1_767_600_000 + ts_s) * 1e9), Priority.HIGH, "temperature high",
                           value, time.time_ns(), suppressed, ("ops",))


@dataclass
class Running:
    service: AlarmService
    notices: list[AlarmNotice] = field(default_factory=list)

    def events(self) -> list[tuple[str, S]]:
        return [(n.event, n.state) for n in self.notices]

    async def wait(self, count: int) -> None:
        await until(lambda: len(self.notices) >= count, 5.0, f"{count} notices")


@asynccontextmanager
async def running(path: Path, settings: AlarmsSection | None = None,
                  ) -> AsyncIterator[Running]:
    store = AlarmStore.open(f"sqlite:///{path / 'alarms.sqlite'}")
    notices: list[AlarmNotice] = []
    service = AlarmService(store, settings or AlarmsSection(retry_first_s=0.02),
                           lambda asset_id: f"acme/plant/line/dev-{asset_id}", notices.extend)
    task = asyncio.create_task(service.run())
    try:
        yield Running(service, notices)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        store.close()


def test_changes_become_notices_in_order(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running(tmp_path) as r:
            r.service.submit([change(True), change(True, ts_s=1)])  # the second: no change
            r.service.submit([change(False, ts_s=2), change(True, asset_id=11, ts_s=2)])
            await r.wait(3)
            assert r.events() == [("activated", S.UNACK), ("cleared", S.RTN_UNACK),
                                  ("activated", S.UNACK)]
            first = r.notices[0]
            assert first.asset_path == "acme/plant/line/dev-10" and first.notify == ("ops",)
            assert first.value == 90.0 and first.priority is Priority.HIGH
            assert 0 < first.received_ns <= first.stored_ns
            assert [n.event_id for n in r.notices] == sorted(n.event_id for n in r.notices)
            alarm_id = first.alarm_id
            acked = await r.service.acknowledge(TENANT, alarm_id, "olga", "seen")
            assert acked.state is S.NORMAL and acked.acked_by == "olga"
            await r.wait(4)
            assert r.notices[3].user == "olga" and r.notices[3].comment == "seen"
            trail = await r.service.events(TENANT, alarm_id)
            assert [e.event for e in trail] == ["acknowledged", "cleared", "activated"]
            assert trail[0].user == "olga"
            with pytest.raises(Conflict, match="acknowledge an alarm in state normal"):
                await r.service.acknowledge(TENANT, alarm_id, "olga")
            with pytest.raises(NotFound):
                await r.service.acknowledge(TENANT + 1, alarm_id, "oscar")
            record = await r.service.get(None, alarm_id)
            assert record.activation_count == 1 and record.cleared_at is not None

    asyncio.run(scenario())


def test_states_survive_a_restart(tmp_path: Path) -> None:
    async def first_life() -> tuple[int, int]:
        async with running(tmp_path) as r:
            r.service.submit([change(True), change(True, asset_id=11), change(True, rule_id=2)])
            await r.wait(3)
            ids = [n.alarm_id for n in r.notices]
            await r.service.acknowledge(None, ids[0], "olga")
            await r.service.shelve(None, ids[1], "olga", duration_s=3600, comment="sensor")
            await r.service.remove_from_service(None, ids[2], "olga", "maintenance")
            r.service.submit([change(False, rule_id=2, ts_s=5)])  # tracked while out
            await until(lambda: r.service.store.events(ids[2])[0].event == "condition_cleared")
            return ids[0], ids[1]

    async def second_life(acked: int, shelved: int) -> None:
        async with running(tmp_path) as r:
            r.service.submit([change(False, ts_s=10), change(True, ts_s=11)])
            await r.wait(2)
            # ACKED -> NORMAL -> UNACK: the state was ACKED after the restart
            assert r.events() == [("cleared", S.NORMAL), ("activated", S.UNACK)]
            assert r.notices[1].alarm_id == acked
            record = await r.service.get(None, acked)
            assert record.activation_count == 2
            back = await r.service.unshelve(None, shelved, "olga")
            assert back.state is S.UNACK  # its condition still holds
            out = await r.service.list_alarms(AlarmFilter(states=(S.OUT_OF_SERVICE,)))
            assert len(out) == 1 and out[0].oos_comment == "maintenance"
            returned = await r.service.return_to_service(None, out[0].id, "olga")
            assert returned.state is S.NORMAL  # cleared while out of service

    ids = asyncio.run(first_life())
    asyncio.run(second_life(*ids))


def test_shelving_expires_by_itself_and_is_bounded(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running(tmp_path, AlarmsSection(max_shelve_s=60)) as r:
            r.service.submit([change(True)])
            await r.wait(1)
            alarm_id = r.notices[0].alarm_id
            with pytest.raises(InvalidInput, match="duration_s"):
                await r.service.shelve(None, alarm_id, "olga", duration_s=61)
            with pytest.raises(InvalidInput, match="duration_s"):
                await r.service.shelve(None, alarm_id, "olga")
            shelved = await r.service.shelve(None, alarm_id, "olga", duration_s=0.3)
            assert shelved.state is S.SHELVED and shelved.shelved_until is not None
            r.service.submit([change(False, ts_s=1), change(True, ts_s=2)])  # silent
            await r.wait(3)
            assert r.events()[1:] == [("shelved", S.SHELVED), ("unshelved", S.UNACK)]
            assert r.notices[2].user is None and r.notices[2].comment == "shelving expired"
            trail = [e.event for e in await r.service.events(None, alarm_id)]
            assert trail[:3] == ["unshelved", "condition_active", "condition_cleared"]

    asyncio.run(scenario())


def test_a_failing_store_is_retried_and_loses_nothing(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running(tmp_path) as r:
            r.service.submit([change(True)])
            await r.wait(1)
            db = sqlite3.connect(tmp_path / "alarms.sqlite", isolation_level=None)
            db.execute("ALTER TABLE alarm_events RENAME TO alarm_events_away")
            r.service.submit([change(False, ts_s=1)])
            r.service.submit([change(True, asset_id=n) for n in range(20, 30)])
            await until(lambda: r.service.store_failures >= 2, what="failed writes")
            assert len(r.notices) == 1
            db.execute("ALTER TABLE alarm_events_away RENAME TO alarm_events")
            db.close()
            await r.wait(12)
            assert r.events()[1] == ("cleared", S.RTN_UNACK)
            assert {n.asset_id for n in r.notices[2:]} == set(range(20, 30))

    asyncio.run(scenario())


def test_the_queue_is_bounded_and_never_blocks(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = AlarmStore.open(f"sqlite:///{tmp_path / 'alarms.sqlite'}")
        try:
            service = AlarmService(store, AlarmsSection(queue_max=100), str, lambda _: None)
            service.submit([change(True, asset_id=n) for n in range(150)])
            service.submit([change(True, asset_id=1000)])
            assert service.dropped == 51
        finally:
            store.close()

    asyncio.run(scenario())


def test_retiring_a_rule_returns_its_alarms_to_normal(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running(tmp_path) as r:
            r.service.submit([change(True), change(True, asset_id=11), change(True, rule_id=2)])
            await r.wait(3)
            r.service.retire_rule(1)
            await r.wait(5)
            assert {(n.event, n.state, n.rule_id) for n in r.notices[3:]} == {
                ("retired", S.NORMAL, 1)}
            assert len(await r.service.list_alarms(AlarmFilter(states=(S.UNACK,)))) == 1

    asyncio.run(scenario())


def test_changes_queued_when_the_node_stops_are_stored_before_the_writer_ends(
        tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running(tmp_path) as r:
            await asyncio.sleep(0.05)  # the writer has loaded what was stored
            # Handed over by the engine just as the node stops: the writer has not had a turn.
            r.service.submit([change(True, asset_id=20), change(True, asset_id=21)])
        store = AlarmStore.open(f"sqlite:///{tmp_path / 'alarms.sqlite'}")
        try:
            stored = store.find([(1, 20), (1, 21)])
        finally:
            store.close()
        assert {k: v.state for k, v in stored.items()} == {(1, 20): S.UNACK, (1, 21): S.UNACK}

    asyncio.run(scenario())
