"""The resolve benchmark's yardstick and its failure rule (issue 10): the trivial UDP
responder answers the generator's requests with SUCCESS under their own ids, the prefix
requests are hdllib's, and a phase that lost requests fails the run."""

from __future__ import annotations

from millnet.bench.load import Latencies, udp_load
from millnet.bench.resolve import (
    PREFIX_TYPES,
    _trivial_answer,
    _udp_requests,
    losses,
    prefix_requests,
)
from millnet.bench.trivial_udp import TrivialResponder
from millnet.protocols.handle import OpFlag, ResolutionRequest, decode_message


def test_the_trivial_responder_answers_every_request() -> None:
    with TrivialResponder(_trivial_answer(), workers=2) as trivial:
        measured = udp_load(trivial.port, _udp_requests(100, 1000), 0.5, 3, 4)
    assert measured.count > 100 and measured.lost == 0 and measured.late == 0


def test_prefix_requests_are_hdllibs() -> None:
    msg = decode_message(prefix_requests(1)[0])
    assert isinstance(msg.body, ResolutionRequest)
    assert msg.body.handle == "0.NA/88.100.5" and msg.body.types == PREFIX_TYPES
    assert msg.header.opflags == int(OpFlag.REC | OpFlag.CA | OpFlag.PO)
    assert (msg.envelope.major, msg.envelope.minor) == (2, 10)


def test_a_phase_that_lost_requests_fails_the_run() -> None:
    clean = Latencies(100, 1.0, [0.001] * 100)
    lossy = Latencies(99, 1.0, [0.001] * 99, lost=1)
    assert losses({"udp": clean, "rest": clean}) == []
    assert losses({"udp": clean, "prefix": lossy}) == ["prefix: 1 of 100 requests lost"]
