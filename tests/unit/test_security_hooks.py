"""The hooks that feed the detectors: the API's Authenticator and the identifier service's
AuthThrottle, each with the real authentication detector behind it."""

from __future__ import annotations

import pytest

from millnet.api.auth import Authenticator
from millnet.errors import RejectedMessage, Unauthenticated
from millnet.identifiers.wire.auth import AuthThrottle
from millnet.ingest.metrics import IngestMetrics
from millnet.model import DataType, PointSpec
from millnet.model.security import EventKind
from millnet.registry import Principal, Role
from millnet.security import (
    AuthFailureDetector,
    SecuritySettings,
    ViolationReporter,
    birth_fingerprint,
)
from tests.unit.test_security_detectors import Reports


def test_identifier_throttle_failures_are_brute_force_on_handle() -> None:
    reports = Reports()
    throttle = AuthThrottle(limit=1000)
    throttle.on_failure = AuthFailureDetector(reports, SecuritySettings()).hook("handle")
    for _ in range(12):
        throttle.failed("2001:db8::7")
    brute = [(e, c) for e, _, c in reports.got if e.kind == EventKind.AUTH_BRUTE_FORCE]
    assert {(e.source, e.target) for e, _ in brute} == {("2001:db8::/64", "handle")}
    assert sum(c for _, c in brute) == 12
    throttle.check("2001:db8::7")  # the throttle itself is unchanged (limit 1000)


def test_authenticator_reports_failures_with_a_keyed_fingerprint_only() -> None:
    failures: list[tuple[str, str, str]] = []
    auth = Authenticator(lambda token: None, on_failure=lambda *a: failures.append(a))
    for token in ("mn_0000_secret-one", "mn_0000_secret-one", "mn_0000_secret-two"):
        with pytest.raises(Unauthenticated):
            auth.verify(token, "192.0.2.9")
    sources, reasons, prints = zip(*failures, strict=True)
    assert set(sources) == {"192.0.2.9"} and set(reasons) == {"invalid"}
    assert prints[0] == prints[1] != prints[2] and all(len(p) == 12 for p in prints)
    assert not any("secret" in p for p in prints)
    # Another authenticator (another process) keys its fingerprints differently.
    other: list[tuple[str, str, str]] = []
    with pytest.raises(Unauthenticated):
        Authenticator(lambda t: None, on_failure=lambda *a: other.append(a)).verify(
            "mn_0000_secret-one")
    assert other[0][2] != prints[0]


def test_authenticator_tells_a_revoked_token_from_an_unknown_one() -> None:
    valid = {"good"}
    failures: list[tuple[str, str, str]] = []

    def verify(token: str) -> Principal | None:
        return Principal(1, 5, Role.VIEWER) if token in valid else None

    auth = Authenticator(verify, on_failure=lambda *a: failures.append(a))
    assert auth.verify("good").tenant_id == 5
    valid.clear()  # revoked through the API, which then forgets the cache
    auth.forget_all()
    for token in ("good", "never-seen"):
        with pytest.raises(Unauthenticated):
            auth.verify(token, "10.0.0.1")
    assert [r for _, r, _ in failures] == ["revoked", "invalid"]


def test_success_path_does_not_call_the_hook() -> None:
    called: list[object] = []
    auth = Authenticator(lambda t: Principal(1, None, Role.ADMIN),
                         on_failure=lambda *a: called.append(a))
    assert auth.verify("anything").node_wide
    assert called == []


def test_ingest_rejections_become_violations_of_the_edge_node() -> None:
    reports = Reports()
    hook = ViolationReporter(reports, SecuritySettings()).rejection_hook("sparkplug")
    hook("seq_gap", "spBv1.0/plant1/NDATA/edge7: seq 9 after 3", 1)
    hook("malformed", "spBv1.0/plant1/DDATA/edge7/press: not a payload", 2)
    hook("quota", "tenant point quota reached", 1)  # a node limit, not an attack
    hook("oversized", "bad/topic: 9999999 bytes", 1)
    got = [(e.kind, e.source, c) for e, _, c in reports.got]
    assert got == [("protocol.sequence_abuse", "plant1/edge7", 1),
                   ("protocol.malformed", "plant1/edge7", 1),
                   ("protocol.malformed", "sparkplug", 1)]


def test_birth_fingerprints_see_a_new_metric_and_a_changed_type() -> None:
    base = [PointSpec("temp", DataType.DOUBLE), PointSpec("rpm", DataType.INT32)]
    fp = birth_fingerprint(base)
    assert fp == birth_fingerprint(list(reversed(base)))
    assert fp != birth_fingerprint([*base, PointSpec("shell", DataType.STRING)])
    assert fp != birth_fingerprint([PointSpec("temp", DataType.FLOAT), base[1]])


def test_ingest_metrics_feed_the_violation_reporter() -> None:
    reports = Reports()
    metrics = IngestMetrics()
    metrics.on_reject = ViolationReporter(reports, SecuritySettings()).rejection_hook("mqtt")
    with metrics.rejecting("spBv1.0/g/NDATA/e1"):
        raise RejectedMessage("malformed", "spBv1.0/g/NDATA/e1: truncated protobuf")
    assert metrics.rejected_count("malformed") == 1
    assert [(e.kind, e.source) for e, _, _ in reports.got] == [("protocol.malformed", "g/e1")]
