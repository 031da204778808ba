"""The alarm store over a real database (SQLite, and PostgreSQL when its binaries are here):
migration 0011 matches the metadata, batched writes, filters, the trail and a period's events."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

import millnet.alarms.schema  # its tables on the shared metadata
import millnet.identifiers.core.schema
import millnet.registry.schema  # noqa: F401
from millnet.alarms.records import AlarmFilter, AlarmRecord, EventDraft, Write
from millnet.alarms.store import AlarmStore
from millnet.db.migrate import VERSION_TABLE
from millnet.db.schema import metadata
from millnet.errors import NotFound
from millnet.model.alarms import AlarmState, Priority
from tests.integration.registry_fixtures import registry_url

__all__ = ["registry_url"]

S = AlarmState
T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
T0_NS = int(T0.timestamp()) * 10**9


@pytest.fixture
def store(registry_url: str) -> Iterator[AlarmStore]:
    with AlarmStore.open(registry_url) as s:
        yield s


def alarm(rule_id: int, asset_id: int, state: AlarmState = S.UNACK, tenant_id: int = 1,
          active: bool = True, alarm_id: int = 0) -> AlarmRecord:
    return AlarmRecord(alarm_id, tenant_id, rule_id, asset_id, f"rule-{rule_id}", Priority.HIGH,
                       state, active, False, "too hot", 97.5, ("ops",), T0,
                       first_activated_at=T0, last_activated_at=T0, activation_count=1)


def draft(event: str, before: AlarmState, after: AlarmState, active: bool,
          ts_ns: int = T0_NS, user: str | None = None) -> EventDraft:
    return EventDraft(event, before, after, active, ts_ns, user, None, 97.5)


def test_the_migrated_alarm_tables_match_the_metadata(store: AlarmStore) -> None:
    with store.engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "version_table": VERSION_TABLE})
        mine = [d for d in compare_metadata(context, metadata) if "alarm" in repr(d)]
    assert mine == []


def test_a_batch_inserts_updates_and_records_every_event(store: AlarmStore) -> None:
    a = alarm(1, 10)
    writes = [
        Write(a, draft("activated", S.NORMAL, S.UNACK, True)),
        Write(alarm(2, 10, tenant_id=2), draft("activated", S.NORMAL, S.UNACK, True)),
        # the same new alarm again in the same batch: updated, not inserted twice
        Write(alarm(1, 10, S.RTN_UNACK, active=False),
              draft("cleared", S.UNACK, S.RTN_UNACK, False, T0_NS + 10**9)),
    ]
    done = store.apply(writes, T0)
    assert done[0][0] == done[2][0] != done[1][0]
    assert done[0][1] < done[1][1] < done[2][1]
    stored = store.get(done[0][0])
    assert stored.state is S.RTN_UNACK and not stored.condition_active
    assert stored.notify == ("ops",) and stored.priority is Priority.HIGH
    trail = store.events(stored.id)
    assert [e.event for e in trail] == ["cleared", "activated"]  # newest first
    assert trail[0].from_state is S.UNACK and trail[0].ts_ns == T0_NS + 10**9
    assert store.find([(1, 10), (2, 10), (3, 10)]).keys() == {(1, 10), (2, 10)}
    assert {r.key for r in store.unsettled()} == {(1, 10), (2, 10)}
    with pytest.raises(NotFound, match="alarm 999 not found"):
        store.get(999)


def test_listing_filters(store: AlarmStore) -> None:
    rows = [alarm(1, 10), alarm(1, 11, S.ACKED), alarm(2, 10, S.NORMAL, active=False),
            alarm(3, 12, tenant_id=2)]
    ids = [i for i, _ in store.apply(
        [Write(r, draft("activated", S.NORMAL, r.state, r.condition_active)) for r in rows],
        T0)]

    def listed(**f: object) -> list[int]:
        return [r.id for r in store.list_alarms(AlarmFilter(**f))]  # type: ignore[arg-type]

    assert listed() == ids[::-1]
    assert listed(tenant_id=1) == ids[2::-1]
    assert listed(states=(S.UNACK, S.ACKED), tenant_id=1) == [ids[1], ids[0]]
    assert listed(rule_id=1, asset_ids=(11,)) == [ids[1]]
    assert listed(active=False) == [ids[2]]
    assert listed(priority=Priority.LOW) == []
    assert listed(since=T0, until=T0 + timedelta(seconds=1), limit=2) == ids[:1:-1]
    assert listed(before=ids[1]) == [ids[0]]


def test_a_period_carries_the_alarms_active_at_its_start(store: AlarmStore) -> None:
    hour = 3600 * 10**9
    a, b = alarm(1, 10), alarm(2, 10)
    ids = store.apply([
        Write(a, draft("activated", S.NORMAL, S.UNACK, True, T0_NS - 2 * hour)),
        Write(b, draft("activated", S.NORMAL, S.UNACK, True, T0_NS - hour)),
        Write(b, draft("cleared", S.UNACK, S.RTN_UNACK, False, T0_NS - hour // 2)),
        Write(b, draft("activated", S.RTN_UNACK, S.UNACK, True, T0_NS + 60 * 10**9)),
    ], T0)
    period = store.period(1, T0_NS, T0_NS + hour)
    assert period.active_at_start == {ids[0][0]: T0_NS}  # a: last activation (T0), b: clear
    assert [(e.alarm_id, e.from_state) for e in period.events] == [(ids[1][0], S.RTN_UNACK)]
    assert period.names[ids[0][0]] == ("rule-1", 10)
    assert store.period(2, T0_NS, T0_NS + hour).events == []
