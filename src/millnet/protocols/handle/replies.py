"""Building responses the way Handle.Net servers do: version, flags, digest, expiration."""

from __future__ import annotations

import hashlib

from .codec import Envelope, Header, Message, MessageError, UnknownOperation
from .constants import (
    DEFAULT_EXPIRATION_S,
    ECHOED_FLAGS,
    MAX_VERSION,
    MIN_VERSION,
    DigestAlgorithm,
    OpFlag,
    ResponseCode,
)
from .requests import RequestDigest
from .responses import Body, Challenge, ErrorResponse

_HASHES: dict[int, str] = {DigestAlgorithm.LEGACY: "md5", DigestAlgorithm.MD5: "md5",
                           DigestAlgorithm.SHA1: "sha1", DigestAlgorithm.SHA256: "sha256"}
_ECHOED, _RD, _CN = int(ECHOED_FLAGS), int(OpFlag.RD), int(OpFlag.CN)


def response_version(env: Envelope, supported: tuple[int, int] = MAX_VERSION) -> tuple[int, int]:
    """hdllib answers in the version the request suggests, capped at its own; a sender that
    suggests nothing (before 2.10) gets its own version. The CAICT SDK sends 2.3 suggesting
    2.10, so it is answered in 2.10. A suggestion below every version millnet writes (only a
    malformed request makes one, e.g. 2.3 suggesting 1.0) gets the request's own version."""
    version = min(env.suggested_version, supported)
    if version < MIN_VERSION:
        version = max(min((env.major, env.minor), supported), MIN_VERSION)
    return version


def digest_algorithm(version: tuple[int, int]) -> DigestAlgorithm:
    """The request digest hdllib puts in a response of ``version``."""
    if version >= (2, 7):
        return DigestAlgorithm.SHA256
    if version >= (2, 1):
        return DigestAlgorithm.SHA1
    return DigestAlgorithm.LEGACY


def compute_request_digest(signed_part: bytes, algorithm: int) -> RequestDigest:
    """Digest over the request's header and body as received (:attr:`Message.signed_part`):
    not the envelope, not the credential (hdllib ``takeDigestOfRequest``)."""
    name = _HASHES.get(algorithm)
    if name is None:
        raise ValueError(f"unknown digest algorithm {algorithm}")
    digest = hashlib.new(name, signed_part, usedforsecurity=False).digest()
    return RequestDigest(algorithm, digest)


def make_response(request: Message, body: Body, *, now: int, continued: bool = False,
                  site_info_serial: int = 0, supported: tuple[int, int] = MAX_VERSION) -> Message:
    """A response to ``request``: same session and request id, negotiated version, the flags
    hdllib echoes, a request digest when RD asked for one (always on a Challenge), and an
    expiration 12 hours after ``now`` (Unix seconds; the CAICT SDK refuses expired ones)."""
    req_env = request.envelope
    major, minor = response_version(req_env, supported)
    env = Envelope(major, minor, supported[0], supported[1], req_env.session_id,
                   req_env.request_id)
    flags = request.header.opflags & _ECHOED
    if continued:
        flags |= _CN
    digest = None
    if request.header.opflags & _RD or isinstance(body, Challenge):
        if not request.signed_part:
            raise ValueError("the request was not decoded from bytes: nothing to digest")
        digest = compute_request_digest(request.signed_part, digest_algorithm((major, minor)))
        flags |= _RD
    header = Header(flags, site_info_serial, request.header.recursion_count,
                    (now + DEFAULT_EXPIRATION_S) & 0xFFFFFFFF)
    return Message(body, header, env, digest)


def error_reply(exc: MessageError, *, now: int, supported: tuple[int, int] = MAX_VERSION,
                ) -> Message | None:
    """The error a server sends back for a request it could not decode; None when the bad
    message was itself a response (never answer those)."""
    if exc.response_code not in (None, ResponseCode.RESERVED):
        return None
    env = exc.envelope
    version = min(env.suggested_version, supported) if env.major == 2 else MIN_VERSION
    version = max(version, MIN_VERSION)
    code = (ResponseCode.OPERATION_DENIED if isinstance(exc, UnknownOperation)
            else ResponseCode.PROTOCOL_ERROR)
    body = ErrorResponse(exc.opcode or 0, code, str(exc))
    reply_env = Envelope(version[0], version[1], supported[0], supported[1], env.session_id,
                         env.request_id)
    return Message(body, Header(expiration=(now + DEFAULT_EXPIRATION_S) & 0xFFFFFFFF),
                   reply_env)
