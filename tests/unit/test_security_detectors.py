"""The security detectors, each fed directly, reporting to a list (the monitor's interface)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from millnet.errors import InvalidInput
from millnet.model.security import EventKind, SecurityEvent, Severity
from millnet.security import (
    AuthFailureDetector,
    RateAnomalyDetector,
    SecuritySettings,
    ViolationReporter,
)
from millnet.security.base import source_key
from millnet.security.violations import violation_kind


@dataclass
class Reports:
    """Collects what a detector reports, as the monitor would receive it."""

    got: list[tuple[SecurityEvent, int | None, int]] = field(default_factory=list)

    def report(self, event: SecurityEvent, tenant_id: int | None = None, count: int = 1) -> bool:
        self.got.append((event, tenant_id, count))
        return True

    def totals(self, kind: str) -> dict[str, int]:
        """Occurrences by source, as the store would fold them."""
        out: dict[str, int] = {}
        for event, _, count in self.got:
            if event.kind == kind:
                out[event.source] = out.get(event.source, 0) + count
        return out


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


S = SecuritySettings(brute_force_failures=10, stuffing_credentials=5, stuffing_sources=3,
                     auth_window_s=60)


def _auth() -> tuple[AuthFailureDetector, Reports, Clock]:
    reports, clock = Reports(), Clock()
    return AuthFailureDetector(reports, S, clock=clock), reports, clock


# -- authentication ---------------------------------------------------------------------------
def test_brute_force_is_raised_at_the_threshold_and_counts_every_failure() -> None:
    d, reports, clock = _auth()
    for _ in range(9):
        d.observe_failure("10.0.0.7", "invalid", "fp-same", target="api")
        clock.now += 1
    assert reports.totals(EventKind.AUTH_BRUTE_FORCE) == {}
    for _ in range(41):
        d.observe_failure("10.0.0.7", "invalid", "fp-same", target="api")
    assert reports.totals(EventKind.AUTH_BRUTE_FORCE) == {"10.0.0.7": 50}
    first = next(e for e, _, _ in reports.got if e.kind == EventKind.AUTH_BRUTE_FORCE)
    assert first.target == "api" and first.severity is Severity.MEDIUM
    # One fingerprint from one source is neither kind of stuffing.
    assert reports.totals(EventKind.AUTH_CREDENTIAL_STUFFING) == {}


def test_failures_spread_beyond_the_window_are_not_a_brute_force() -> None:
    d, reports, clock = _auth()
    for _ in range(30):
        d.observe_failure("10.0.0.8", "invalid", "fp")
        clock.now += 7  # at most 9 failures in any 60 s
    assert reports.got == []


def test_many_distinct_credentials_from_one_source_is_stuffing() -> None:
    d, reports, _ = _auth()
    for i in range(6):
        d.observe_failure("192.0.2.1", "invalid", f"fp{i}")
    assert reports.totals(EventKind.AUTH_CREDENTIAL_STUFFING) == {"192.0.2.1": 6}
    assert reports.totals(EventKind.AUTH_BRUTE_FORCE) == {}


def test_one_credential_failing_from_many_sources_is_stuffing() -> None:
    d, reports, _ = _auth()
    for i in range(4):
        d.observe_failure(f"198.51.100.{i}", "invalid", "leaked")
    assert reports.totals(EventKind.AUTH_CREDENTIAL_STUFFING) == {"credential:leaked": 4}


def test_revoked_and_other_tenant_tokens_are_misuse_at_once() -> None:
    d, reports, _ = _auth()
    d.observe_failure("10.1.1.1", "revoked", "fpA")
    d.observe_failure("10.1.1.2", "other_tenant", "fpB", tenant_id=3)
    misuse = [(e, t) for e, t, _ in reports.got if e.kind == EventKind.AUTH_TOKEN_MISUSE]
    assert [(e.source, e.detail["reason"], t) for e, t in misuse] == [
        ("10.1.1.1", "revoked", None), ("10.1.1.2", "other_tenant", 3)]
    assert all(e.severity is Severity.HIGH for e, _ in misuse)


def test_ipv6_sources_are_counted_by_their_64() -> None:
    assert source_key("2001:db8::1") == source_key("2001:db8::ffff") == "2001:db8::/64"
    assert source_key("::ffff:10.0.0.1") == "10.0.0.1"
    assert source_key("") == "unknown"
    assert source_key("evil\nname") == "evil?name"


def test_hook_reports_against_its_target() -> None:
    d, reports, _ = _auth()
    on_failure = d.hook("handle")
    for _ in range(10):
        on_failure("10.9.9.9", "invalid", "")
    assert [e.target for e, _, _ in reports.got] == ["handle"]


def test_memory_is_bounded_under_a_source_spray() -> None:
    reports = Reports()
    d = AuthFailureDetector(reports, SecuritySettings(max_tracked=10), clock=Clock())
    for i in range(1000):
        d.observe_failure(f"10.{i // 256}.{i % 256}.1", "invalid", f"fp{i}")
    assert len(d._by_source) <= 10 and len(d._by_credential) <= 10


failures = st.lists(st.tuples(st.sampled_from(["10.0.0.1", "10.0.0.2", "10.0.0.3"]),
                              st.sampled_from(["a", "b", "c", "d", "e", "f"])),
                    max_size=60)


@settings(max_examples=60, deadline=None)
@given(failures, st.randoms(use_true_random=False))
def test_counts_do_not_depend_on_the_order_of_failures(
    seen: list[tuple[str, str]], rnd: random.Random,
) -> None:
    """Within one window, the occurrences each event stands for are the same whatever the
    order (and interleaving) the failures arrive in."""
    def run(order: list[tuple[str, str]]) -> dict[str, dict[str, int]]:
        d, reports, _ = _auth()
        for src, fp in order:
            d.observe_failure(src, "invalid", fp)
        return {k: reports.totals(k) for k in (EventKind.AUTH_BRUTE_FORCE,
                                              EventKind.AUTH_CREDENTIAL_STUFFING)}

    shuffled = list(seen)
    rnd.shuffle(shuffled)
    assert run(seen) == run(shuffled)
    brute = run(seen)[EventKind.AUTH_BRUTE_FORCE]
    for src, total in brute.items():
        assert total == sum(1 for s, _ in seen if s == src) >= S.brute_force_failures


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=600), st.text(max_size=100), st.text(max_size=600))
def test_hostile_sources_and_labels_never_break_the_detector(
    source: str, reason: str, fingerprint: str,
) -> None:
    d, reports, _ = _auth()
    for _ in range(12):
        d.observe_failure(source, reason, fingerprint, target=source)
    assert reports.got  # twelve failures from one source: a brute force, whatever its name
    for event, _, _ in reports.got:
        assert len(event.source) <= 256 and len(event.target) <= 256


# -- message rates ----------------------------------------------------------------------------
def _rates(**kw: object) -> tuple[RateAnomalyDetector, Reports]:
    reports = Reports()
    return RateAnomalyDetector(reports, SecuritySettings(**kw)), reports  # type: ignore[arg-type]


def test_rates_are_not_judged_during_warm_up() -> None:
    d, reports = _rates(rate_warmup=10)
    assert [d.observe_rate("dev", n, 10) for n in (100, 5000, 0, 100)] == [None] * 4
    assert reports.got == []


def test_a_flood_and_a_silence_are_raised_against_the_baseline() -> None:
    d, reports = _rates(rate_warmup=10)
    rnd = random.Random(7)
    for _ in range(30):
        assert d.observe_rate("plant/press-1", rnd.randint(95, 105), 10.0) is None
    assert d.observe_rate("plant/press-1", 1000, 10.0) == "flood"
    assert d.observe_rate("plant/press-1", 0, 10.0) == "silence"
    assert d.observe_rate("plant/press-1", 104, 10.0) is None
    kinds = {(e.kind, e.target, e.source) for e, _, _ in reports.got}
    assert kinds == {(EventKind.DEVICE_RATE_ANOMALY, "flood", "plant/press-1"),
                     (EventKind.DEVICE_RATE_ANOMALY, "silence", "plant/press-1")}


def test_a_constant_rate_tolerates_small_steps() -> None:
    d, _ = _rates(rate_warmup=5)
    for _ in range(20):
        d.observe_rate("metronome", 60, 60.0)
    assert d.observe_rate("metronome", 62, 60.0) is None
    assert d.observe_rate("metronome", 600, 60.0) == "flood"


def test_a_lasting_new_rate_becomes_the_baseline() -> None:
    d, _ = _rates(rate_warmup=5, rate_relearn_after=3)
    for _ in range(10):
        d.observe_rate("dev", 10, 1.0)
    verdicts = [d.observe_rate("dev", 100, 1.0) for _ in range(3 + 5 + 1)]
    assert verdicts[:3] == ["flood"] * 3 and verdicts[-1] is None


def test_a_quiet_device_is_not_silent() -> None:
    d, reports = _rates(rate_warmup=5, rate_min_silence=1.0)
    for _ in range(10):
        d.observe_rate("rare", 1, 60.0)  # 1/60 msg/s
    assert d.observe_rate("rare", 0, 60.0) is None and reports.got == []


def test_bad_rate_input_is_refused() -> None:
    d, _ = _rates()
    with pytest.raises(InvalidInput):
        d.observe_rate("dev", -1, 10)
    with pytest.raises(InvalidInput):
        d.observe_rate("dev", 1, 0)


# -- protocol violations ----------------------------------------------------------------------
def test_violations_are_one_report_per_window_and_the_sum_at_its_end() -> None:
    reports, clock = Reports(), Clock()
    v = ViolationReporter(reports, SecuritySettings(violation_window_s=60), clock=clock)
    for _ in range(500):
        v.observe_violation("malformed", "edge/group1/node7", "bad protobuf")
    assert [(e.kind, c) for e, _, c in reports.got] == [("protocol.malformed", 1)]
    v.flush()  # the window has not ended
    assert len(reports.got) == 1
    clock.now += 61
    v.flush()
    assert [c for _, _, c in reports.got] == [1, 499]
    v.observe_violation("sequence_abuse", "edge/group1/node7", count=3)
    assert reports.got[-1][0].kind == "protocol.sequence_abuse"
    assert reports.got[-1][0].severity is Severity.MEDIUM and reports.got[-1][2] == 1


def test_a_new_window_reports_the_old_one_first() -> None:
    reports, clock = Reports(), Clock()
    v = ViolationReporter(reports, SecuritySettings(violation_window_s=10), clock=clock)
    v.observe_violation("malformed", "1.2.3.4", count=5)
    clock.now += 11
    v.observe_violation("malformed", "1.2.3.4")
    assert [c for _, _, c in reports.got] == [1, 4, 1]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.text(max_size=40), st.sampled_from(["x", "y"]),
                          st.integers(1, 50)), max_size=40))
def test_violation_totals_are_what_was_observed(
    seen: list[tuple[str, str, int]],
) -> None:
    """Whatever the labels (hostile ones included), no violation is lost or counted twice."""
    reports, clock = Reports(), Clock()
    v = ViolationReporter(reports, SecuritySettings(violation_window_s=5), clock=clock)
    for kind, source, count in seen:
        v.observe_violation(kind, source, count=count)
        clock.now += 1
    clock.now += 10
    v.flush()
    assert sum(c for _, _, c in reports.got) == sum(c for _, _, c in seen)


def test_violation_kinds() -> None:
    assert violation_kind("malformed") == "protocol.malformed"
    assert violation_kind("federation.rejected") == "federation.rejected"
    assert violation_kind("Not A Kind!") == "protocol.malformed"
