from __future__ import annotations

import contextlib
import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from millnet.errors import RejectedMessage
from millnet.model import Quality
from millnet.protocols.json_telemetry import DevicePath, decode_payload, parse_topic

NOW = 1_767_225_600_000_000_000


def test_topic_scheme() -> None:
    assert parse_topic("millnet/S/A/L/D", "millnet") == DevicePath("S", "A", "L", "D")
    for bad in ("millnet/S/A/L", "millnet/S/A/L/D/x", "other/S/A/L/D", "millnet/S//L/D",
                "millnet/S/A/L/\x00"):
        with pytest.raises(RejectedMessage) as err:
            parse_topic(bad, "millnet")
        assert err.value.reason == "topic"


def test_single_sample_forms() -> None:
    [s] = decode_payload(b'{"point":"t","value":21.5,"ts":1767225600000,"unit":"degC"}', NOW)
    assert (s.point, s.value, s.ts_ns, s.quality, s.unit) == ("t", 21.5, NOW, Quality.GOOD, "degC")
    [s] = decode_payload(b'{"point":"t","value":3}', 5)
    assert (s.value, s.ts_ns) == (3.0, 5)
    [s] = decode_payload(b'{"point":"run","value":true,"quality":"uncertain"}', 5)
    assert (s.value, s.quality) == (1.0, Quality.UNCERTAIN)
    [s] = decode_payload(b'{"point":"state","value":"RUN","ts":"2026-01-01T00:00:00Z"}', 5)
    assert (s.value, s.ts_ns) == ("RUN", NOW)


def test_a_timestamp_written_as_an_integral_number_is_taken() -> None:
    """1767225600000.0 is the same JSON number as 1767225600000 (JSON Schema's integer too);
    a fraction of a millisecond is refused, naming the timestamp."""
    [s] = decode_payload(b'{"point":"t","value":1,"ts":1767225600000.0}', 5)
    assert s.ts_ns == NOW
    with pytest.raises(RejectedMessage) as err:
        decode_payload(b'{"point":"t","value":1,"ts":1767225600000.5}', 5)
    assert err.value.reason == "timestamp"
    with pytest.raises(RejectedMessage) as err:
        decode_payload(b'{"point":"t","value":1,"ts":1e300}', 5)
    assert err.value.reason == "timestamp"


def test_values_object_and_batches() -> None:
    body = [{"ts": 1767225600000, "values": {"a": 1, "b": None}}, {"point": "c", "value": 2}]
    out = decode_payload(json.dumps(body).encode(), 7)
    assert [(s.point, s.ts_ns) for s in out] == [("a", NOW), ("b", NOW), ("c", 7)]
    assert math.isnan(float(out[1].value))
    assert out[1].quality is Quality.BAD


@pytest.mark.parametrize(("payload", "reason", "words"), [
    (b"{", "malformed", "not JSON"),
    (b'{"point":"x"}', "malformed", "point and value"),
    (b'{"point":"x","value":1,"values":{"y":1}}', "malformed", "not both"),
    (b'{"point":"x","value":1,"extra":2}', "malformed", "extra"),
    (b'{"point":"x","value":[1]}', "malformed", "value"),
    (b'{"point":"x","value":1,"quality":"meh"}', "malformed", "quality"),
    (b'{"point":"x","value":1,"ts":-5}', "timestamp", "range"),
    (b'{"point":"x","value":1,"ts":"yesterday"}', "timestamp", "RFC 3339"),
    (b'{"point":"x","value":1,"ts":"2026-01-01T00:00:00"}', "timestamp", "timezone"),
    (b'{"point":"x","value":1e400}', "malformed", "out of range"),
    (b'{"point":"","value":1}', "malformed", "point name"),
    (b'\xff\xfe', "malformed", "JSON"),
])
def test_bad_payloads_are_named(payload: bytes, reason: str, words: str) -> None:
    with pytest.raises(RejectedMessage) as err:
        decode_payload(payload, NOW)
    assert err.value.reason == reason
    assert words in str(err.value)


@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_escape_as_other_errors(data: bytes) -> None:
    with contextlib.suppress(RejectedMessage):
        decode_payload(data, NOW)


names = st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), min_size=1,
                max_size=20).filter(lambda s: s.isprintable() and s.strip() != "")
scalars = st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.booleans(),
                    st.text(max_size=10), st.integers(-(2**53), 2**53))


@given(st.dictionaries(names, scalars, min_size=1, max_size=20),
       st.integers(0, 2**41))
def test_round_trip_values_object(values: dict[str, object], ts_ms: int) -> None:
    out = decode_payload(json.dumps({"ts": ts_ms, "values": values}).encode(), NOW)
    assert [s.point for s in out] == list(values)
    for s in out:
        raw = values[s.point]
        expected = float(raw) if isinstance(raw, bool | int | float) else raw
        assert s.value == expected
        assert s.ts_ns == ts_ms * 1_000_000
