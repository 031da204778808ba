"""Golden bytes built by hand from the RFC 3652 layout (independent of the encoder), and the
version, flag and digest rules checked against hdllib and the CAICT SDK."""

from __future__ import annotations

import hashlib
import struct

import pytest

from millnet.errors import ProtocolError
from millnet.protocols import handle as h

NOW = 1_767_225_600


def u32(n: int) -> bytes:
    return struct.pack(">I", n)


def utf8(s: str) -> bytes:
    b = s.encode()
    return u32(len(b)) + b


def envelope(major: int, minor: int, flags: int, sminor: int, session: int, request: int,
             seq: int, length: int) -> bytes:
    return bytes([major, minor, flags, sminor]) + u32(session) + u32(request) + u32(seq) + u32(
        length)


def header(opcode: int, code: int, opflags: int, serial: int, recursion: int, expiration: int,
           body_length: int) -> bytes:
    return (u32(opcode) + u32(code) + u32(opflags) + struct.pack(">H", serial)
            + bytes([recursion, 0]) + u32(expiration) + u32(body_length))


# A resolution request as the CAICT SDK 2.0.3 sends it: envelope 2.3 suggesting 2.10,
# RD asked, two indexes and one type, an empty credential.
REQ_BODY = utf8("88.100.5/Pump-7") + u32(2) + u32(1) + u32(100) + u32(1) + utf8("URL")
REQ_HEADER = header(1, 0, 0x00800000, 0, 0, NOW, len(REQ_BODY))
REQ_PAYLOAD = REQ_HEADER + REQ_BODY + u32(0)
REQ = envelope(2, 3, 0x02, 10, 0, 0x1234, 0, len(REQ_PAYLOAD)) + REQ_PAYLOAD


def test_golden_resolution_request_decodes() -> None:
    msg = h.decode_message(REQ)
    assert msg.body == h.ResolutionRequest("88.100.5/Pump-7", (1, 100), ("URL",))
    assert msg.envelope == h.Envelope(2, 3, 2, 10, request_id=0x1234)
    assert msg.envelope.suggested_version == (2, 10)
    assert msg.header == h.Header(h.OpFlag.RD, 0, 0, NOW)
    assert msg.credential == b""
    assert msg.signed_part == REQ_HEADER + REQ_BODY
    assert h.encode_message(msg) == REQ


def _url_value() -> bytes:
    return (u32(1) + u32(NOW) + bytes([0]) + u32(86400) + bytes([0x0E]) + utf8("URL")
            + u32(19) + b"https://example.org" + u32(0))


def _admin_value() -> bytes:
    data = struct.pack(">H", 0x0FFF) + utf8("0.NA/88.100.5") + u32(200)
    return (u32(100) + u32(NOW) + bytes([1]) + u32(NOW + 60) + bytes([0x0C]) + utf8("HS_ADMIN")
            + u32(len(data)) + data + u32(1) + utf8("88.100.5/ADMIN") + u32(300))


def test_golden_resolution_response_encodes() -> None:
    request = h.decode_message(REQ)
    digest = hashlib.sha256(REQ_HEADER + REQ_BODY).digest()  # hdllib: header+body, >= 2.7
    values = _url_value() + _admin_value()
    body = bytes([3]) + digest + utf8("88.100.5/Pump-7") + u32(2) + values
    payload = header(1, 1, 0x00800000, 0, 0, NOW + 43200, len(body)) + body + u32(0)
    expected = envelope(2, 10, 0x02, 11, 0, 0x1234, 0, len(payload)) + payload

    admin = h.encode_admin(h.AdminRecord(0x0FFF, "0.NA/88.100.5", 200))
    response = h.make_response(request, h.ResolutionResponse("88.100.5/Pump-7", (
        h.HandleValue(1, "URL", b"https://example.org", 0, 86400, NOW, 0x0E),
        h.HandleValue(100, "HS_ADMIN", admin, h.TTLType.ABSOLUTE, NOW + 60, NOW, 0x0C,
                      (h.ValueReference("88.100.5/ADMIN", 300),)),
    )), now=NOW)
    assert h.encode_message(response) == expected
    decoded = h.decode_message(expected)
    assert decoded == response
    assert decoded.request_digest == h.RequestDigest(h.DigestAlgorithm.SHA256, digest)


def test_public_key_login_without_credential_section() -> None:
    # id-pointer-sdk sends LOGIN_ID_SYSTEM as header + body with no credential length at all.
    body = utf8("88.100.5/USER") + u32(301)
    payload = header(2001, 0, 0x00800000, 0, 0, NOW, len(body)) + body
    msg = h.decode_message(envelope(2, 10, 0x02, 11, 0, 9, 0, len(payload)) + payload)
    assert msg.body == h.PublicKeyLoginRequest("88.100.5/USER", 301)
    assert msg.credential is None
    assert h.encode_message(msg) == envelope(2, 10, 0x02, 11, 0, 9, 0, len(payload)) + payload


def test_password_login_uses_the_resolution_layout() -> None:
    # CAICT LoginRequest: user as handle, no indexes, the password as the only type.
    body = utf8("admin") + u32(0) + u32(1) + utf8("s3cret")
    payload = header(2000, 0, 0, 0, 0, NOW, len(body)) + body + u32(0)
    msg = h.decode_message(envelope(2, 3, 0x02, 10, 0, 5, 0, len(payload)) + payload)
    assert msg.body == h.PasswordLoginRequest("admin", "s3cret")


def test_get_siteinfo_request_as_caict_sends_it() -> None:
    body = utf8("/")
    payload = header(2, 0, 0, 0, 0, NOW, len(body)) + body + u32(0)
    msg = h.decode_message(envelope(2, 3, 0x02, 10, 0, 1, 0, len(payload)) + payload)
    assert msg.body == h.GetSiteInfoRequest("/")


@pytest.mark.parametrize(("major", "minor", "flags", "sminor", "answer"), [
    (2, 1, 0x00, 0, (2, 1)),  # nothing suggested: answered in its own version
    (2, 3, 0x02, 10, (2, 10)),  # CAICT SDK
    (2, 10, 0x02, 10, (2, 10)),
    (2, 11, 0x02, 11, (2, 11)),  # Handle.Net 9
    (2, 10, 0x02, 12, (2, 11)),  # a future client: capped at ours
])
def test_versions_are_decoded_and_answered(major: int, minor: int, flags: int, sminor: int,
                                           answer: tuple[int, int]) -> None:
    payload = REQ_PAYLOAD
    msg = h.decode_message(envelope(major, minor, flags, sminor, 0, 1, 0, len(payload)) + payload)
    reply = h.make_response(msg, h.ResolutionResponse("88.100.5/Pump-7", ()), now=NOW)
    assert reply.envelope.version == answer
    algorithm = h.DigestAlgorithm.SHA256 if answer >= (2, 7) else h.DigestAlgorithm.SHA1
    assert reply.request_digest == h.compute_request_digest(msg.signed_part, algorithm)
    assert reply.header.expiration == NOW + 43200


@pytest.mark.parametrize(("major", "minor"), [(2, 0), (5, 0), (1, 9), (3, 0)])
def test_unsupported_versions_keep_their_request_id(major: int, minor: int) -> None:
    data = envelope(major, minor, 0, 0, 0, 77, 0, len(REQ_PAYLOAD)) + REQ_PAYLOAD
    with pytest.raises(h.UnsupportedVersion) as info:
        h.decode_message(data)
    assert info.value.envelope.request_id == 77
    reply = h.error_reply(info.value, now=NOW)
    assert reply is not None
    assert reply.body == h.ErrorResponse(1, h.ResponseCode.PROTOCOL_ERROR, str(info.value))
    assert reply.envelope.request_id == 77


def test_envelope_flag_octet() -> None:
    env = h.Envelope(2, 10, 2, 11, compressed=True, encrypted=True, truncated=True)
    raw = h.encode_envelope(env, 0)
    assert raw[2] == 0x80 | 0x40 | 0x20 | 0x02
    assert raw[3] == 11
    assert h.decode_envelope(raw) == (env, 0)
    # reserved bits (0x1C) are ignored, as hdllib ignores them
    assert h.decode_envelope(raw[:2] + bytes([raw[2] | 0x1C]) + raw[3:])[0] == env
    with pytest.raises(ValueError, match="2 bits"):
        h.encode_envelope(h.Envelope(suggested_major=4), 0)


def test_encrypted_messages_are_refused_with_context() -> None:
    data = envelope(2, 10, 0x40 | 0x02, 10, 3, 4, 0, len(REQ_PAYLOAD)) + REQ_PAYLOAD
    with pytest.raises(h.UnsupportedEnvelope) as info:
        h.decode_message(data)
    assert (info.value.envelope.session_id, info.value.opcode) == (3, 1)


@pytest.mark.parametrize(("code", "old", "new"), [
    (h.ResponseCode.VALUE_INVALID, 201, 202),
    (h.ResponseCode.SERVER_BACKUP, 303, 7),
])
def test_codes_unknown_before_2_5_are_rewritten(code: int, old: int, new: int) -> None:
    for minor, wire in ((4, old), (5, new)):
        msg = h.Message(h.ErrorResponse(1, code, "x"), envelope=h.Envelope(2, minor))
        assert h.encode_message(msg)[24:28] == u32(wire)
    old_backup = h.Message(h.ErrorResponse(1, h.ResponseCode.SERVER_BACKUP, "busy"),
                           envelope=h.Envelope(2, 4))
    decoded = h.decode_message(h.encode_message(old_backup))
    assert decoded.body == h.ErrorResponse(1, h.ResponseCode.SERVER_BACKUP, "busy")


def test_challenge_always_carries_the_digest() -> None:
    plain = REQ_HEADER[:8] + u32(0) + REQ_HEADER[12:]  # no RD asked
    payload = plain + REQ_BODY + u32(0)
    request = h.decode_message(envelope(2, 10, 0x02, 10, 0, 8, 0, len(payload)) + payload)
    challenge = h.make_response(request, h.Challenge(1, b"n" * 16), now=NOW)
    raw = h.encode_message(challenge)
    assert raw[28:32] == u32(0x00800000)
    assert raw[44] == h.DigestAlgorithm.SHA256
    assert raw[45:77] == hashlib.sha256(plain + REQ_BODY).digest()
    assert raw[77:81] == u32(16)


def test_legacy_digest_and_old_sha1() -> None:
    legacy = h.compute_request_digest(b"abc", h.DigestAlgorithm.LEGACY)
    assert legacy.digest == hashlib.md5(b"abc", usedforsecurity=False).digest()
    assert h.digest_algorithm((2, 6)) == h.DigestAlgorithm.SHA1
    assert h.digest_algorithm((2, 0)) == h.DigestAlgorithm.LEGACY
    msg = h.Message(h.GenericResponse(h.OpCode.DELETE_HANDLE), request_digest=legacy)
    raw = h.encode_message(msg)
    assert raw[44:48] == u32(16)  # the legacy form is a length-prefixed MD5
    assert h.decode_message(raw).request_digest == legacy


def test_request_digest_rules() -> None:
    with pytest.raises(ValueError, match="request digest"):
        h.encode_message(h.Message(h.DeleteHandleRequest("a/b"),
                                   request_digest=h.RequestDigest(1, bytes(16))))
    with pytest.raises(ValueError, match="cannot have"):
        h.encode_message(h.Message(h.GenericResponse(101),
                                   request_digest=h.RequestDigest(3, bytes(16))))
    # RD on a response without a digest is dropped: the flag means "digest present".
    msg = h.Message(h.GenericResponse(101), h.Header(opflags=h.OpFlag.RD | h.OpFlag.AT))
    assert h.decode_message(h.encode_message(msg)).header.opflags == h.OpFlag.AT


def test_bodies_refuse_codes_of_other_bodies() -> None:
    for code in (0, 1, 302, 303, 402):
        with pytest.raises(ValueError, match="own body class"):
            h.encode_message(h.Message(h.ErrorResponse(1, code)))
    with pytest.raises(ValueError, match="302 or 303"):
        h.encode_message(h.Message(h.ServiceReferral(1, "0.NA/88", None, 2)))


def test_make_response_echoes_flags_like_hdllib() -> None:
    flags = h.OpFlag.AT | h.OpFlag.CT | h.OpFlag.KA | h.OpFlag.PO | h.OpFlag.MINT
    request = h.decode_message(h.encode_message(h.Message(
        h.ResolutionRequest("a/b"), h.Header(flags, 3, 2, NOW), h.Envelope(2, 10, 2, 10, 5, 6))))
    reply = h.make_response(request, h.ResolutionResponse("a/b"), now=NOW, continued=True)
    assert reply.header.opflags == h.OpFlag.AT | h.OpFlag.CT | h.OpFlag.PO | h.OpFlag.CN
    assert reply.header.recursion_count == 2
    assert (reply.envelope.session_id, reply.envelope.request_id) == (5, 6)
    with pytest.raises(ValueError, match="not decoded"):
        h.make_response(h.Message(h.ResolutionRequest("a/b"), h.Header(h.OpFlag.RD)),
                        h.ResolutionResponse("a/b"), now=NOW)


def test_error_reply_never_answers_a_response() -> None:
    bad = h.encode_message(h.Message(h.ResolutionResponse("a/b")))
    broken = bad[:-9] + b"\xff" + bad[-8:]  # corrupt the value count
    with pytest.raises(h.MessageError) as info:
        h.decode_message(broken)
    assert h.error_reply(info.value, now=NOW) is None


def test_unknown_operation_is_answered_operation_denied() -> None:
    body = utf8("a/b")
    payload = header(1234, 0, 0, 0, 0, 0, len(body)) + body + u32(0)
    with pytest.raises(h.UnknownOperation) as info:
        h.decode_message(envelope(2, 10, 2, 10, 0, 1, 0, len(payload)) + payload)
    reply = h.error_reply(info.value, now=NOW)
    assert reply is not None and reply.body.response_code == h.ResponseCode.OPERATION_DENIED
    assert reply.body.opcode == 1234


def test_credential_section_structure() -> None:
    cred = h.Credential("88.100.5/ADMIN", 300, "HS_SIGNED", "SHA-256", b"\x01\x02")
    raw = h.encode_credential(cred)
    expected = (bytes([0, 0]) + b"\0\0" + utf8("88.100.5/ADMIN") + u32(300) + utf8("HS_SIGNED")
                + u32(4 + 7 + 4 + 2) + utf8("SHA-256") + u32(2) + b"\x01\x02")
    assert raw == expected
    assert h.decode_credential(raw) == cred
    msg = h.Message(h.DeleteHandleRequest("a/b"), credential=raw)
    assert h.decode_credential(h.decode_message(h.encode_message(msg)).credential or b"") == cred
    with pytest.raises(ProtocolError, match=r"credential\.signed_info\.length"):
        h.decode_credential(raw[:-1])
