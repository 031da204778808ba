"""Notification payloads, webhook signatures and the retry backoff (pure; properties)."""

from __future__ import annotations

import hmac
import json
import math

from hypothesis import given
from hypothesis import strategies as st

from millnet.model.alarms import AlarmNotice, AlarmState, Priority
from millnet.notify import payload
from millnet.notify.mqtt import topic
from millnet.notify.settings import RetryPolicy
from millnet.notify.webhook import classify, signature, verify
from millnet.notify.worker import backoff_delay

text = st.text(max_size=40)
notices = st.builds(
    AlarmNotice, alarm_id=st.integers(1, 2**40), event_id=st.integers(1, 2**40),
    event=st.sampled_from(["activated", "cleared", "acknowledged"]),
    state=st.sampled_from(list(AlarmState)), rule_id=st.integers(1, 2**31),
    rule_name=text, tenant_id=st.integers(1, 2**31), asset_id=st.integers(1, 2**31),
    asset_path=text, priority=st.sampled_from(list(Priority)), message=text,
    ts_ns=st.integers(0, 2**62), value=st.none() | st.floats(allow_nan=True),
    user=st.none() | text, comment=st.none() | text, received_ns=st.integers(0, 2**62),
    stored_ns=st.integers(0, 2**62), notify=st.lists(text, max_size=3).map(tuple))


@given(notices)
def test_the_outbox_form_round_trips(notice: AlarmNotice) -> None:
    back = payload.from_json(payload.to_json(notice))
    if notice.value is not None and math.isnan(notice.value):
        assert back.value is not None and math.isnan(back.value)
        return
    assert back == notice


@given(notices, st.uuids())
def test_the_body_is_json_with_times_twice_and_the_priority_label(
        notice: AlarmNotice, delivery: object) -> None:
    doc = json.loads(payload.body(notice, str(delivery)))
    assert doc["delivery_id"] == str(delivery)
    assert doc["priority"] == notice.priority.label
    assert doc["state"] == notice.state.value
    assert doc["ts_ms"] == (notice.ts_ns // 1_000_000 if notice.ts_ns else None)
    if notice.ts_ns:
        assert doc["ts"].endswith("Z") and doc["ts"][:4].isdigit()
    value = notice.value
    assert doc["value"] == (value if value is not None and math.isfinite(value) else None)


@given(st.binary(min_size=1, max_size=64), st.binary(max_size=300), st.integers(0, 2**33))
def test_a_signature_verifies_and_any_change_breaks_it(secret: bytes, body: bytes,
                                                       t: int) -> None:
    header = signature(secret, body, t)
    assert verify(secret, body, header, now=t)
    assert not verify(secret + b"x", body, header, now=t)
    assert not verify(secret, body + b" ", header, now=t)
    assert not verify(secret, body, header, now=t + 301)  # a replay, too late
    assert not verify(secret, body, header.replace(f"t={t}", f"t={t + 1}"), now=t)


@given(st.text(max_size=80))
def test_verify_refuses_garbage_headers(header: str) -> None:
    assert not verify(b"k", b"{}", header, now=0)


def test_the_documented_example_verifies() -> None:
    body = b'{"event":"activated"}'
    assert signature(b"whsec", body, 1767225600) == (
        "t=1767225600,v1=" + hmac.new(
            b"whsec", b'1767225600.{"event":"activated"}', "sha256").hexdigest())


@given(st.integers(100, 599))
def test_http_answers_classify(status: int) -> None:
    failure = classify(status)
    if 200 <= status < 300:
        assert failure is None
    else:
        assert failure is not None
        assert failure.permanent == (status < 500 and status not in (408, 429))


policies = st.builds(RetryPolicy, backoff_base_s=st.floats(0.001, 10),
                     backoff_cap_s=st.floats(10, 1000))


@given(policies, st.integers(1, 10_000), st.floats(0, 1))
def test_backoff_grows_to_the_cap_and_keeps_half_fixed(policy: RetryPolicy, attempts: int,
                                                       rand: float) -> None:
    delay = backoff_delay(attempts, policy, rand)
    raw = min(policy.backoff_cap_s, policy.backoff_base_s * 2 ** min(attempts - 1, 60))
    assert raw / 2 - 1e-9 <= delay <= raw + 1e-9
    assert delay <= policy.backoff_cap_s + 1e-9
    assert backoff_delay(attempts + 1, policy, 1.0) >= backoff_delay(attempts, policy, 1.0)


@given(notices)
def test_topics_have_no_wildcards(notice: AlarmNotice) -> None:
    name = topic("millnet/alarms/{tenant}/{priority}/{rule}/{asset}", notice)
    assert "+" not in name and "#" not in name and "\x00" not in name
    assert name.startswith(f"millnet/alarms/{notice.tenant_id}/{notice.priority.label}/")
