"""Round trips of every message body, and malformed messages: always ProtocolError, small
allocations only."""

from __future__ import annotations

import struct
import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from millnet.errors import ProtocolError
from millnet.protocols import handle as h
from tests.unit.handle_strategies import (
    REQUEST_STRATEGIES,
    RESPONSE_STRATEGIES,
    messages,
    requests,
    responses,
)


def _round_trip(msg: h.Message) -> None:
    raw = h.encode_message(msg)
    decoded = h.decode_message(raw)
    assert decoded == msg
    assert h.encode_message(decoded) == raw
    assert decoded.signed_part == raw[20:44 + struct.unpack_from(">I", raw, 40)[0]]


@settings(max_examples=200, deadline=None)
@given(messages(requests))
def test_every_request_round_trips(msg: h.Message) -> None:
    _round_trip(msg)


@settings(max_examples=200, deadline=None)
@given(messages(responses))
def test_every_response_round_trips(msg: h.Message) -> None:
    _round_trip(msg)


@settings(max_examples=1, deadline=None, database=None)
@given(st.data())
def test_strategies_cover_every_body_class(data: st.DataObject) -> None:
    # A new body class must get a strategy, or the round trips above skip it.
    expected = {*h.responses.REQUESTS.values(), *h.responses.SUCCESSES.values(),
                h.ErrorResponse, h.ServiceReferral, h.Challenge}
    seen = {type(data.draw(s)) for s in (*REQUEST_STRATEGIES, *RESPONSE_STRATEGIES)}
    assert seen == expected


# ----------------------------------------------------------------------- malformed input

SAMPLES = [
    h.Message(h.ResolutionRequest("88.100.5/x", (1, 2), ("URL", "EMAIL"))),
    h.Message(h.CreateHandleRequest("88.100.5/x", (
        h.HandleValue(1, "URL", b"https://a", references=(h.ValueReference("a/b", 7),)),))),
    h.Message(h.ResolutionResponse("88.100.5/x", (h.HandleValue(1, "URL", b"u"),)),
              request_digest=h.RequestDigest(3, bytes(32))),
    h.Message(h.GetSiteInfoResponse(h.SiteInfo(3, (h.ServerRecord(
        1, h.address_octets("192.0.2.1"), b"key", (h.ServiceInterface(),)),),
        (("desc", "primary"),)))),
    h.Message(h.ServiceReferral(1, "0.NA/88", (h.HandleValue(1, "HS_SERV", b"0.NA/88"),))),
    h.Message(h.VerifyChallengeRequest("a/b", 300, b"nonce", h.RequestDigest(0, b"d"), b"s")),
    h.Message(h.ListHandlesResponse(("a/1", "a/2"))),
    h.Message(h.Challenge(104, b"0123456789abcdef"), request_digest=h.RequestDigest(2, bytes(20))),
]


@pytest.mark.parametrize("msg", SAMPLES, ids=lambda m: type(m.body).__name__)
def test_truncated_at_every_offset(msg: h.Message) -> None:
    raw = h.encode_message(msg)
    for cut in range(len(raw)):
        with pytest.raises(ProtocolError):
            h.decode_message(raw[:cut])


@pytest.mark.parametrize("msg", SAMPLES, ids=lambda m: type(m.body).__name__)
def test_shortened_body_at_every_offset(msg: h.Message) -> None:
    # Consistent envelope and header, body cut short: every field must notice.
    raw = h.encode_message(msg)
    (body_length,) = struct.unpack_from(">I", raw, 40)
    for cut in range(body_length):
        body = raw[44:44 + cut]
        payload = raw[20:40] + struct.pack(">I", cut) + body + b"\0\0\0\0"
        env = raw[:16] + struct.pack(">I", len(payload))
        try:
            h.decode_message(env + payload)
        except ProtocolError:
            continue
        # a shorter body may still be valid (optional trailing fields): then it re-encodes
        assert h.encode_message(h.decode_message(env + payload)) == env + payload


def _with_u32(raw: bytes, offset: int, value: int) -> bytes:
    return raw[:offset] + struct.pack(">I", value) + raw[offset + 4:]


def test_lying_lengths_name_the_field() -> None:
    raw = h.encode_message(SAMPLES[1])  # create: handle at 44, value count, value...
    handle_len = len("88.100.5/x")
    value = 44 + 4 + handle_len + 4  # first value
    type_at = value + 14
    with pytest.raises(ProtocolError, match=r"values\[0\]\.type: length 4294967295 exceeds "
                                            r"remaining \d+ bytes"):
        h.decode_message(_with_u32(raw, type_at, 0xFFFFFFFF))
    with pytest.raises(ProtocolError, match=r"^handle: length 2147483648 exceeds"):
        h.decode_message(_with_u32(raw, 44, 0x80000000))
    with pytest.raises(ProtocolError, match=r"header.body_length: 4294967295 exceeds"):
        h.decode_message(_with_u32(raw, 40, 0xFFFFFFFF))
    with pytest.raises(ProtocolError, match=r"envelope.message_length"):
        h.decode_message(_with_u32(raw, 16, 0xFFFFFFFF))


@pytest.mark.parametrize("count", [0xFFFFFFFF, 1 << 16 + 1, 100])
def test_huge_counts_are_refused_before_allocating(count: int) -> None:
    raw = h.encode_message(SAMPLES[0])
    at = 44 + 4 + len("88.100.5/x")  # index count
    tracemalloc.start()
    try:
        with pytest.raises(ProtocolError, match=r"^indexes: count"):
            h.decode_message(_with_u32(raw, at, count))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024


def test_huge_value_count_in_a_large_message_allocates_little() -> None:
    # 1 MiB of zeros claims 2**32-1 values: refused by the count check, not by running out.
    body = struct.pack(">I", 1) + b"a" + struct.pack(">I", 0xFFFFFFFF) + bytes(1 << 20)
    msg = h.encode_message(h.Message(h.ResolutionResponse("a")))
    payload = msg[20:40] + struct.pack(">I", len(body)) + body + b"\0\0\0\0"
    data = msg[:16] + struct.pack(">I", len(payload)) + payload
    tracemalloc.start()
    try:
        with pytest.raises(ProtocolError, match="values: count 4294967295 exceeds the limit"):
            h.decode_message(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1.5 * len(data)  # the payload copy, nothing driven by the count


@pytest.mark.parametrize("bad", [b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"a\xe4\xb8"])
def test_bad_utf8_is_refused(bad: bytes) -> None:
    raw = h.encode_message(h.Message(h.DeleteHandleRequest("x" * len(bad))))
    raw = raw[:48] + bad + raw[48 + len(bad):]
    with pytest.raises(ProtocolError, match="handle: invalid UTF-8"):
        h.decode_message(raw)


def test_bad_utf8_in_a_list_names_the_item() -> None:
    raw = h.encode_message(h.Message(h.ResolutionRequest("a/b", (), ("URL", "EM"))))
    raw = raw.replace(b"EM", b"E\xff")
    with pytest.raises(ProtocolError, match=r"^types\[1\]: invalid UTF-8 at byte 1"):
        h.decode_message(raw)


@pytest.mark.parametrize(("opcode", "code"), [(999, 0), (999, 1), (1, 777), (0, 0)])
def test_unknown_opcodes_and_codes(opcode: int, code: int) -> None:
    raw = h.encode_message(h.Message(h.ErrorResponse(opcode, 2, "")))
    raw = _with_u32(raw, 24, code)
    with pytest.raises(h.UnknownOperation):
        h.decode_message(raw)


def test_trailing_bytes_in_body_and_credential() -> None:
    raw = h.encode_message(h.Message(h.DeleteHandleRequest("a/b"), credential=None))
    payload = raw[20:40] + struct.pack(">I", 8) + raw[44:] + b"x"
    with pytest.raises(ProtocolError, match="body: 1 unexpected trailing bytes"):
        h.decode_message(raw[:16] + struct.pack(">I", len(payload)) + payload)
    for tail in (b"\0", b"\0\0\0\x05abc", b"\0\0\0\x01ab"):
        payload = raw[20:] + tail
        with pytest.raises(ProtocolError, match="credential"):
            h.decode_message(raw[:16] + struct.pack(">I", len(payload)) + payload)


def test_fragment_is_not_a_message() -> None:
    raw = bytearray(h.encode_message(SAMPLES[0]))
    raw[2] |= 0x20
    with pytest.raises(h.MessageError, match="reassemble"):
        h.decode_message(bytes(raw))


def test_unknown_digest_algorithm() -> None:
    raw = h.encode_message(SAMPLES[2])
    with pytest.raises(ProtocolError, match="request_digest: unknown digest algorithm 9"):
        h.decode_message(raw[:44] + b"\x09" + raw[45:])


def test_password_login_shape_is_checked() -> None:
    raw = h.encode_message(h.Message(h.ResolutionRequest("u", (1,), ("p",))))
    with pytest.raises(ProtocolError, match="exactly one password"):
        h.decode_message(_with_u32(raw, 20, h.OpCode.LOGIN))


def test_out_of_range_fields_fail_encoding_with_value_error() -> None:
    with pytest.raises(ValueError, match="out of range"):
        h.encode_message(h.Message(h.ResolutionRequest("a/b", (1 << 32,))))
    with pytest.raises(ValueError, match="out of range"):
        h.encode_message(h.Message(h.ErrorResponse(-1, 2)))
