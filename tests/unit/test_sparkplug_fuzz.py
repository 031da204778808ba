"""Whatever arrives, ``SparkplugHost.receive`` reports it and never crashes."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from millnet.errors import ProtocolError
from millnet.model import SampleBuffer
from millnet.protocols import sparkplug as sp
from millnet.protocols.sparkplug_host import BirthEvent, Event, SparkplugHost
from tests.support.mutate import Mutation, mutate
from tests.support.mutate import mutations as mutations_of
from tests.unit.test_sparkplug_host import DEVICE_METRICS, DT, NODE_METRICS, NOW, NT, T0, Session

TOPICS = [NT % k for k in ("NBIRTH", "NDATA", "NDEATH", "NCMD")] + [
    DT % k for k in ("DBIRTH", "DDATA", "DDEATH", "DCMD")] + ["spBv1.0/STATE/h"]


def _valid_payloads(seq: int) -> list[bytes]:
    """Well-formed messages; the DATA ones carry the seq the session expects next."""
    return [
        sp.encode_nbirth(NODE_METRICS, bd_seq=0, timestamp_ms=T0),
        sp.encode_dbirth(DEVICE_METRICS, seq=seq, timestamp_ms=T0),
        sp.encode_data([(10, 10, 1.5), (11, 3, -2), (14, 12, "x"), (13, 11, True),
                        (12, 1, 0), (15, 8, 2**64 - 1)], seq=seq, timestamp_ms=T0),
        sp.encode_data([(1, 9, 2.5), (10, 10, 0.0)], seq=seq, timestamp_ms=T0,
                       historical=True),
        sp.encode_ndeath(0),
        sp.encode_ddeath(seq=seq, timestamp_ms=T0),
        sp.state_payload(True, 1),
    ]


def _consistent(buf: SampleBuffer) -> bool:
    n = len(buf.series_id)
    return len(buf.ts_ns) == n and len(buf.value) == n and len(buf.quality) == n


def _feed(s: Session, topic: str, payload: bytes) -> list[Event]:
    try:
        events = s.rx(topic, payload)
    except ProtocolError:  # allowed by contract, although receive reports instead
        return []
    assert _consistent(s.out) and _consistent(s.hist)
    return events


mutations = mutations_of(("flip", "insert", "delete", "truncate"), max_size=6)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(TOPICS), st.binary(max_size=300)), max_size=8))
def test_arbitrary_bytes_never_crash(messages: list[tuple[str, bytes]]) -> None:
    s = Session()
    for topic, payload in messages:
        _feed(s, topic, payload)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(TOPICS), st.integers(0, 6), mutations),
                min_size=1, max_size=8))
def test_mutated_valid_payloads_never_crash(
        messages: list[tuple[str, int, list[Mutation]]]) -> None:
    s = Session()
    for topic, which, muts in messages:
        payload = mutate(_valid_payloads(s.seq + 1)[which], muts)
        s.seq += 1
        for event in _feed(s, topic, payload):
            if isinstance(event, BirthEvent):  # keep the session bound and going
                if event.device is None:
                    s.seq = 0
                ids = {p.name: i for i, p in enumerate(event.specs)}
                s.host.bind(event.group, event.edge, event.device, ids, s.out,
                            historical=s.hist)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60), st.binary(max_size=50))
def test_arbitrary_topics_never_crash(topic: str, payload: bytes) -> None:
    host, out = SparkplugHost("h"), SampleBuffer()
    host.receive(topic, payload, NOW, out)
    host.receive("spBv1.0/" + topic, payload, NOW, out)
    assert _consistent(out)
