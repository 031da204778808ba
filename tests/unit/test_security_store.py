"""The security event store and the monitor over a real SQLite database."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from millnet.errors import Conflict, InvalidInput, NotFound
from millnet.model.security import EventKind, SecurityEvent, Severity
from millnet.security import (
    OVERFLOW_KIND,
    EventQuery,
    SecurityEventStore,
    SecurityMonitor,
    SecuritySettings,
    StoredEvent,
    build_security,
    metric_set,
)
from millnet.security.records import Fold

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
WINDOW = timedelta(minutes=5)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SecurityEventStore]:
    with SecurityEventStore.open(f"sqlite:///{tmp_path / 'sec.sqlite'}") as s:
        yield s


def _ev(kind: str = EventKind.AUTH_BRUTE_FORCE, *, at: datetime = T0, source: str = "10.0.0.1",
        target: str = "api", severity: Severity = Severity.MEDIUM, n: int = 0) -> SecurityEvent:
    return SecurityEvent(kind, severity, f"summary {n}", source=source, target=target,
                         occurred_at=at, detail={"n": n})


def _rec(store: SecurityEventStore, event: SecurityEvent, tenant: int | None = None,
         count: int = 1) -> StoredEvent:
    return store.record([Fold.of(event, tenant, count)], WINDOW)[0]


def test_repeats_within_the_window_fold_into_one_row(store: SecurityEventStore) -> None:
    a = _rec(store, _ev(n=1), count=10)
    b = _rec(store, _ev(at=T0 + timedelta(minutes=4), severity=Severity.HIGH, n=2), count=5)
    assert a.id == b.id and b.count == 15 and b.severity is Severity.HIGH
    assert (b.first_seen, b.last_seen) == (T0, T0 + timedelta(minutes=4))
    assert b.detail == {"n": 2} and b.summary == "summary 2"
    # Out of the window of the last occurrence: a new event.
    c = _rec(store, _ev(at=T0 + timedelta(minutes=10)))
    assert c.id != a.id and c.count == 1
    # Other source, other target, other tenant, node-wide: separate rows.
    ids = {_rec(store, _ev(source="10.0.0.2")).id, _rec(store, _ev(target="handle")).id,
           _rec(store, _ev(), tenant=7).id}
    assert len(ids) == 3 and a.id not in ids


def test_an_acknowledged_event_is_not_extended(store: SecurityEventStore) -> None:
    a = _rec(store, _ev())
    acked = store.set_status(a.id, "acknowledged", user="olga", comment="blocked at firewall")
    assert (acked.status, acked.acked_by, acked.ack_comment) == (
        "acknowledged", "olga", "blocked at firewall")
    assert acked.acked_at is not None
    b = _rec(store, _ev(at=T0 + timedelta(seconds=30)))
    assert b.id != a.id and b.status == "open"
    with pytest.raises(Conflict):
        store.set_status(a.id, "acknowledged", user="olga", comment=None)
    closed = store.set_status(a.id, "closed", user="ivan", comment=None)
    assert closed.status == "closed" and closed.acked_by == "olga"
    with pytest.raises(Conflict):
        store.set_status(a.id, "closed", user="ivan", comment=None)
    with pytest.raises(InvalidInput):
        store.set_status(b.id, "open", user="x", comment=None)


def test_tenants_see_only_their_events(store: SecurityEventStore) -> None:
    node = _rec(store, _ev(source="n"))
    mine = _rec(store, _ev(source="m"), tenant=1)
    _rec(store, _ev(source="o"), tenant=2)
    own = EventQuery.for_caller(1, None)
    assert [e.id for e in store.query(own)[0]] == [mine.id]
    assert EventQuery.for_caller(1, 2) == own  # a tenant cannot name another
    assert len(store.query(EventQuery.for_caller(None, None))[0]) == 3
    assert [e.id for e in store.query(EventQuery.for_caller(None, 2))[0]] != [node.id]
    with pytest.raises(NotFound):
        store.get(node.id, own)
    with pytest.raises(NotFound):
        store.set_status(node.id, "acknowledged", user="t", comment=None, scope=own)


def test_filters_and_cursor_pages(store: SecurityEventStore) -> None:
    kinds = [EventKind.AUTH_BRUTE_FORCE, EventKind.DEVICE_UNKNOWN, EventKind.PROTOCOL_MALFORMED]
    for i in range(30):
        sev = Severity(i % 5)
        _rec(store, _ev(kinds[i % 3], at=T0 + timedelta(hours=i), source=f"s{i % 2}",
                        severity=sev))
    everything = EventQuery()
    seen: list[int] = []
    cursor: int | None = None
    while True:
        page, cursor = store.query(everything, cursor=cursor, limit=7)
        seen.extend(e.id for e in page)
        if cursor is None:
            break
    assert len(seen) == 30 and seen == sorted(seen, reverse=True)
    auth = store.query(EventQuery(kind_prefix="auth."))[0]
    assert len(auth) == 10 and all(e.kind.startswith("auth.") for e in auth)
    high = store.query(EventQuery(min_severity=Severity.HIGH))[0]
    assert len(high) == 12 and all(e.severity >= Severity.HIGH for e in high)
    recent = store.query(EventQuery(since=T0 + timedelta(hours=20),
                                    until=T0 + timedelta(hours=25)))[0]
    assert sorted(e.first_seen for e in recent) == [T0 + timedelta(hours=h) for h in range(20, 25)]
    assert len(store.query(EventQuery(source="s1"))[0]) == 15
    with pytest.raises(InvalidInput):
        EventQuery(kind_prefix="auth%")
    with pytest.raises(InvalidInput):
        store.query(everything, limit=0)


def test_counts_by_bucket_kind_and_severity(store: SecurityEventStore) -> None:
    _rec(store, _ev(at=T0 + timedelta(minutes=5)), count=100)
    _rec(store, _ev(at=T0 + timedelta(minutes=50), source="x"), count=3)
    _rec(store, _ev(EventKind.DEVICE_UNKNOWN, at=T0 + timedelta(hours=1, minutes=1)))
    _rec(store, _ev(at=T0 + timedelta(hours=3)))  # outside
    q = EventQuery(since=T0, until=T0 + timedelta(hours=2))
    got = [(c.start, c.kind, c.severity, c.events, c.occurrences)
           for c in store.counts(q, timedelta(hours=1))]
    assert got == [(T0, "auth.brute_force", Severity.MEDIUM, 2, 103),
                   (T0 + timedelta(hours=1), "device.unknown", Severity.MEDIUM, 1, 1)]
    with pytest.raises(InvalidInput):
        store.counts(EventQuery(), timedelta(hours=1))
    with pytest.raises(InvalidInput):
        store.counts(q, timedelta(seconds=0.1))


# -- the monitor ------------------------------------------------------------------------------
def _settings(**kw: object) -> SecuritySettings:
    return SecuritySettings(flush_s=0, **kw)  # type: ignore[arg-type]


def test_reports_from_threads_are_folded_and_written_in_one_batch(
    store: SecurityEventStore,
) -> None:
    monitor = SecurityMonitor(store, _settings())
    heard: list[StoredEvent] = []
    monitor.add_listener(heard.append)

    def attack() -> None:
        for _ in range(2500):
            monitor.report(_ev())

    threads = [threading.Thread(target=attack) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert monitor.pending == 1
    stored = asyncio.run(monitor.flush())
    assert [(e.kind, e.count) for e in stored] == [("auth.brute_force", 10_000)]
    assert heard == stored
    assert store.query(EventQuery())[0][0].count == 10_000


def test_overflow_is_counted_into_one_summary_event(store: SecurityEventStore) -> None:
    monitor = SecurityMonitor(store, _settings(max_pending=10))
    accepted = [monitor.report(_ev(source=f"10.0.0.{i}")) for i in range(25)]
    assert accepted.count(False) == 15
    assert monitor.report(_ev(source="10.0.0.3"))  # a repeat still folds in
    stored = asyncio.run(monitor.flush())
    overflow = [e for e in stored if e.kind == OVERFLOW_KIND]
    assert len(stored) == 11 and overflow[0].count == 15 and overflow[0].tenant_id is None


def test_the_writer_task_writes_what_threads_report_and_the_rest_at_cancel(
    store: SecurityEventStore,
) -> None:
    async def scenario() -> list[StoredEvent]:
        monitor = SecurityMonitor(store, _settings())
        heard: list[StoredEvent] = []

        async def listener(event: StoredEvent) -> None:
            heard.append(event)

        def broken(event: StoredEvent) -> None:
            raise RuntimeError("listener bug")

        monitor.add_listener(broken)
        monitor.add_listener(listener)
        task = asyncio.create_task(monitor.run(tick_s=30))
        await asyncio.sleep(0.01)
        await asyncio.to_thread(monitor.report, _ev(EventKind.DEVICE_UNKNOWN), 4)
        for _ in range(200):
            if heard:
                break
            await asyncio.sleep(0.01)
        monitor.report(_ev(source="late"))
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert monitor.stats["listener_failures"] == 1
        return heard

    heard = asyncio.run(scenario())
    assert [(e.kind, e.tenant_id) for e in heard] == [("device.unknown", 4)]
    assert {e.source for e in store.query(EventQuery())[0]} == {"10.0.0.1", "late"}


def test_a_failed_write_keeps_the_batch(tmp_path: Path) -> None:
    store = SecurityEventStore.open(f"sqlite:///{tmp_path / 'gone.sqlite'}")
    monitor = SecurityMonitor(store, _settings())
    monitor.report(_ev(), count=3)
    with store.engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE security_events RENAME TO moved")
    assert asyncio.run(monitor.flush()) == []
    assert monitor.stats["write_failures"] == 1 and monitor.pending == 1
    with store.engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE moved RENAME TO security_events")
    monitor.report(_ev(), count=2)
    assert [e.count for e in asyncio.run(monitor.flush())] == [5]
    store.close()


# -- device fingerprints ----------------------------------------------------------------------
def test_devices_are_raised_once_and_remembered_across_a_restart(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fp.sqlite'}"
    monitor = build_security(_settings(), url)
    fp = {"app_uri": "urn:acme:plc1", "product": "S7-1500", **metric_set(["a", "b"])}
    devices = monitor.devices
    assert devices.observe_device(1, "acme/plc1", fp) == EventKind.DEVICE_UNKNOWN
    assert devices.observe_device(1, "acme/plc1", dict(fp)) is None
    assert devices.observe_device(1, "acme/plc2", fp, registered=True) is None
    assert devices.observe_device(2, "acme/plc1", fp) == EventKind.DEVICE_UNKNOWN  # other tenant
    asyncio.run(monitor.flush())
    monitor.store.close()

    again = build_security(_settings(), url)
    assert again.devices.observe_device(1, "acme/plc1", fp) is None
    changed = {**fp, **metric_set(["a", "b", "backdoor"])}
    assert again.devices.observe_device(1, "acme/plc1", changed) == \
        EventKind.DEVICE_FINGERPRINT_CHANGED
    stored = asyncio.run(again.flush())
    (event,) = stored
    assert event.severity is Severity.HIGH and event.detail["changed"] == "metric_names,metrics"
    assert event.target == "acme/plc1" and event.tenant_id == 1
    again.store.close()


def test_hostile_fingerprints_are_cut_to_fit(store: SecurityEventStore) -> None:
    monitor = SecurityMonitor(store, _settings())
    huge = {"app_uri": "urn:" + "x" * 10_000, "k\x00ey": "v"}
    assert monitor.devices.observe_device(1, "d" * 1000, huge) == EventKind.DEVICE_UNKNOWN
    assert monitor.devices.observe_device(1, "d" * 1000, dict(huge)) is None
    (event,) = asyncio.run(monitor.flush())
    assert str(event.detail["app_uri"]).startswith("sha256:")
    with pytest.raises(InvalidInput):
        monitor.devices.observe_device(1, "d", {str(i): "v" for i in range(33)})


@settings(max_examples=80, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(st.text(max_size=80), st.text(max_size=600), max_size=32),
       st.text(max_size=500))
def test_any_fingerprint_is_judged_once_and_then_recognised(
    store: SecurityEventStore, fingerprint: dict[str, str], device: str,
) -> None:
    """Whatever a device announces (keys and values off the network), the first sighting is
    one report and the same announcement again is none; nothing raises."""
    monitor = SecurityMonitor(store, _settings())
    assert monitor.devices.observe_device(1, device, fingerprint) == EventKind.DEVICE_UNKNOWN
    assert monitor.devices.observe_device(1, device, dict(fingerprint)) is None
    assert monitor.pending == 1
