"""What sensors post (events, hosts), the per-device rate feeder, anomaly-rule alarms and the
hosts book: parsers over arbitrary JSON refuse with the field named, never anything else."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from millnet.errors import InvalidInput
from millnet.federation.reports import INCIDENT_STATUSES as FEDERATION_STATUSES
from millnet.model.alarms import AlarmNotice, AlarmState, Priority
from millnet.model.security import EventKind, SecurityEvent, Severity
from millnet.security import RateAnomalyDetector, SecuritySettings
from millnet.security.anomalies import AnomalyAlarms
from millnet.security.hosts import HostBook, ReportedHost
from millnet.security.intake import MAX_EVENTS, SENSOR_DETAIL, parse_events, parse_hosts
from millnet.security.rates import RateFeeder
from millnet.security.schema import INCIDENT_STATUSES

NOW = datetime(2026, 12, 3, 12, tzinfo=UTC)


class Reports:
    def __init__(self) -> None:
        self.events: list[tuple[SecurityEvent, int | None]] = []

    def report(self, event: SecurityEvent, tenant_id: int | None = None,
               count: int = 1) -> bool:
        self.events.append((event, tenant_id))
        return True


def scan(**changes: Any) -> dict[str, Any]:
    return {"kind": "network.scan", "severity": "high", "summary": "10.0.0.66 scanned 40 ports",
            "source": "10.0.0.66", "target": "10.0.0.0/24",
            "occurred_at": "2026-12-03T11:59:00+00:00", "detail": {"ports": 40}, **changes}


def test_a_batch_of_events_is_parsed_and_tagged_with_its_reporter() -> None:
    (event,) = parse_events({"events": [scan()]}, "token:7", NOW)
    assert (event.kind, event.severity, event.source, event.target) == (
        "network.scan", Severity.HIGH, "10.0.0.66", "10.0.0.0/24")
    assert event.occurred_at == NOW - timedelta(minutes=1)
    assert event.detail == {"ports": 40, SENSOR_DETAIL: "token:7"}
    # A severity may be a number; a missing time is now.
    (numbered,) = parse_events({"events": [scan(severity=4, occurred_at=None)]}, "t", NOW)
    assert numbered.severity is Severity.CRITICAL and numbered.occurred_at == NOW


@pytest.mark.parametrize(("entry", "field"), [
    (scan(kind="Scan"), "events[1].kind"),
    (scan(severity="severe"), "events[1].severity"),
    (scan(summary=""), "events[1].summary"),
    (scan(source="x" * 300), "events[1].source"),
    (scan(occurred_at="2026-12-03T11:59:00"), "events[1].occurred_at"),
    (scan(occurred_at="2027-01-01T00:00:00Z"), "events[1].occurred_at"),
    (scan(detail={"nested": {"a": 1}}), "events[1].detail.nested"),
    (scan(detail={SENSOR_DETAIL: "forged"}), "events[1].detail"),
    (scan(detail={"x": float("nan")}), "events[1].detail.x"),
])
def test_a_bad_field_is_named(entry: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_events({"events": [scan(), entry]}, "t", NOW)
    assert caught.value.field == field


def test_batches_are_bounded_and_must_be_lists_of_objects() -> None:
    for body, field in (({"events": [scan()] * (MAX_EVENTS + 1)}, "events"),
                        ({"events": []}, "events"), ([], "body"),
                        ({"events": [1]}, "events[0]")):
        with pytest.raises(InvalidInput) as caught:
            parse_events(body, "t", NOW)
        assert caught.value.field == field


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner,
                                                                 max_size=4),
    max_leaves=20)
FIELDS = st.fixed_dictionaries({}, optional={
    "kind": st.sampled_from(["network.scan", "x", "a.b.c.d.e"]) | st.text(max_size=10),
    "severity": st.sampled_from(["low", "HIGH", 3, 9, True]) | JSON,
    "summary": st.text(max_size=10) | JSON, "source": JSON, "target": JSON,
    "occurred_at": st.sampled_from(["2026-12-03T00:00:00Z", "yesterday", 1.7e9, -1e20]) | JSON,
    "detail": JSON, "address": st.sampled_from(["10.0.0.1", "::1", "host"]) | JSON,
    "mac": st.sampled_from(["aa:bb:cc:dd:ee:ff", "aa-bb"]) | JSON, "roles": JSON,
    "first_seen": JSON, "vendor": JSON})


@settings(max_examples=300, deadline=None)
@given(st.lists(FIELDS | JSON, max_size=3), st.sampled_from(["events", "hosts"]))
def test_arbitrary_json_is_parsed_or_refused_with_a_field(entries: list[Any], name: str) -> None:
    parsed: list[Any]
    try:
        if name == "events":
            parsed = parse_events({name: entries}, "t", NOW)
        else:
            parsed = parse_hosts({name: entries}, NOW)
    except InvalidInput as exc:
        assert exc.field is not None and exc.field.startswith((name, "body"))
        return
    assert len(parsed) == len(entries)


def test_hosts_are_parsed_and_the_book_keeps_the_first_sighting() -> None:
    (host,) = parse_hosts({"hosts": [{
        "address": "10.0.0.10", "mac": "AA-00-00-00-00-01", "roles": ["server"],
        "protocols": ["modbus"], "vendor": "Acme", "first_seen": 1_764_000_000.0,
        "last_seen": "2026-12-03T11:00:00Z"}]}, NOW)
    assert host.mac == "aa:00:00:00:00:01" and host.protocols == ("modbus",)
    assert host.first_seen == datetime.fromtimestamp(1_764_000_000, UTC)
    with pytest.raises(InvalidInput) as caught:
        parse_hosts({"hosts": [{"address": "10.0.0.300"}]}, NOW)
    assert caught.value.field == "hosts[0].address"
    book = HostBook(limit=2)
    book.update([host])
    later = ReportedHost("10.0.0.10", vendor="Acme", first_seen=NOW, last_seen=NOW)
    assert book.update([later, ReportedHost("10.0.0.11"), ReportedHost("10.0.0.12")]) == 2
    assert [h.address for h in book.current()] == ["10.0.0.11", "10.0.0.12"]  # bounded
    book.update([host, later])
    (kept,) = [h for h in book.current() if h.address == "10.0.0.10"]
    assert kept.first_seen == host.first_seen and kept.last_seen == NOW


def test_the_rate_feeder_sees_a_silent_device_as_zero() -> None:
    reports = Reports()
    detector = RateAnomalyDetector(reports, SecuritySettings(rate_warmup=5, rate_baseline=20))
    feeder = RateFeeder(detector, limit=100)
    for _ in range(10):
        assert feeder.feed({"plant/edge1": 600, "plant/edge2": 60}, 60.0, tenant_id=1) == {}
    # edge1 stops sending: absent from the counts, it is observed at zero.
    assert feeder.feed({"plant/edge2": 60}, 60.0, tenant_id=1) == {"plant/edge1": "silence"}
    assert feeder.feed({"plant/edge1": 600, "plant/edge2": 6000}, 60.0,
                       tenant_id=1) == {"plant/edge2": "flood"}
    assert [(e.kind, e.target, t) for e, t in reports.events] == [
        (EventKind.DEVICE_RATE_ANOMALY, "silence", 1), (EventKind.DEVICE_RATE_ANOMALY, "flood", 1)]


def notice(rule_id: int, event: str = "activated", value: float | None = 7.5) -> AlarmNotice:
    return AlarmNotice(alarm_id=3, event_id=9, event=event, state=AlarmState.UNACK,
                       rule_id=rule_id, rule_name=f"rule-{rule_id}", tenant_id=2, asset_id=5,
                       asset_path="acme/p1/press/l1/plc1", priority=Priority.HIGH,
                       message="anomaly", ts_ns=1_764_763_200 * 10**9, value=value)


def test_only_activations_of_anomaly_rules_become_events() -> None:
    reports = Reports()
    kinds = {1: "anomaly", 2: "threshold"}
    looked_up: list[int] = []

    def kind(rule_id: int) -> str:
        looked_up.append(rule_id)
        return kinds[rule_id]

    hook = AnomalyAlarms(reports, kind)
    hook([notice(1), notice(2), notice(1, "cleared"), notice(1, value=None)])
    assert len(reports.events) == 2
    (event, tenant), (unscored, _) = reports.events
    assert (event.kind, event.target, event.source, tenant) == (
        "anomaly.alarm", "acme/p1/press/l1/plc1", "rule:rule-1", 2)
    assert event.detail["score"] == 7.5 and event.severity is Severity.MEDIUM
    assert "score" not in unscored.detail
    assert looked_up == [1, 2]  # remembered, not looked up per notice


def test_the_incident_statuses_are_the_federations() -> None:
    assert INCIDENT_STATUSES == FEDERATION_STATUSES
