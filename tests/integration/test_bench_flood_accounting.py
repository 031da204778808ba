"""The flood benchmark's prober accounts honestly: an unanswered resolution is lost, an answer
after :data:`~millnet.bench.flood.LOST_AFTER` is lost too (a client would have given up), an
answer other than SUCCESS is an error, and any of them makes the run's result not ok. Peers
are minimal UDP servers over real sockets (:func:`_udp_server`)."""

from __future__ import annotations

import threading

from millnet.bench.flood import LOST_AFTER, Phase, Prober, deep_requests
from millnet.protocols.handle import ResolutionRequest, decode_message
from tests.integration.test_bench_accounting import _answer, _udp_server


def test_lost_late_and_failed_resolutions_are_counted() -> None:
    def reply(n: int, data: bytes) -> bytes | None:
        if n % 5 == 1:
            return None  # never answered
        if n % 5 == 2:
            return _answer(data, 100)  # HANDLE_NOT_FOUND
        if n % 5 == 3:
            threading.Event().wait(LOST_AFTER + 0.2)  # late: blocks this peer, delays others
        return _answer(data)

    prober = Prober(_udp_server(reply), handles=10, rate=10.0)
    phase = Phase("p")
    try:
        prober.run(phase, 1.0)
        prober.drain()
    finally:
        prober.close()
    assert phase.sent == 10
    assert phase.lost + phase.errors + len(phase.samples) == phase.sent
    assert phase.errors >= 1 and phase.lost >= 3  # the unanswered and the late ones
    assert all(s < LOST_AFTER for s in phase.samples)
    summary = phase.summary()
    assert summary["p_lost"] == phase.lost and summary["p_sent"] == 10


def test_flood_requests_are_deep_distinct_and_317_octets() -> None:
    requests = deep_requests(2000)
    assert {len(r) for r in requests} == {317}
    names = set()
    for data in requests:
        body = decode_message(data).body
        assert isinstance(body, ResolutionRequest)
        prefix = body.handle.partition("/")[0]
        assert len(prefix) == 255 and prefix.count(".") == 127
        names.add(prefix)
    assert len(names) == 2000
