"""One message on the wire: envelope, header, body, credential (RFC 3652 section 2.2).

``encode_message`` and ``decode_message`` handle one complete message; :mod:`.framing` cuts
TCP streams and UDP fragments into those. Nothing here does I/O or reads a clock.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from millnet.errors import ProtocolError

from .constants import (
    ENVELOPE_SIZE,
    HEADER_SIZE,
    MIN_VERSION,
    SUGGESTED_MAJOR_MASK,
    EnvelopeFlag,
    OpFlag,
    ResponseCode,
)
from .requests import RequestDigest, read_digest, write_digest
from .responses import REQUESTS, SUCCESSES, Body, Challenge, ErrorResponse, ServiceReferral
from .wire import U32, Reader, fail

_ENVELOPE = struct.Struct(">BBBBIIII")
_HEADER = struct.Struct(">IIIHBBII")
_KNOWN_CODES = frozenset(int(c) for c in ResponseCode)
# Plain ints on the hot path: operators on IntFlag members go through enum machinery.
_CP, _EC, _TC = int(EnvelopeFlag.CP), int(EnvelopeFlag.EC), int(EnvelopeFlag.TC)
_RD = int(OpFlag.RD)


@dataclass(frozen=True, slots=True)
class Envelope:
    """The 20-octet envelope minus the message length, which the codec computes.

    ``suggested_major`` 0 means the sender suggested nothing (protocol 2.1 to 2.9 senders);
    :attr:`suggested_version` then falls back to the message's own version, as hdllib does."""

    major: int = 2
    minor: int = 10
    suggested_major: int = 0
    suggested_minor: int = 0
    session_id: int = 0
    request_id: int = 0
    sequence: int = 0
    compressed: bool = False
    encrypted: bool = False
    truncated: bool = False

    @property
    def version(self) -> tuple[int, int]:
        return (self.major, self.minor)

    @property
    def suggested_version(self) -> tuple[int, int]:
        if self.suggested_major == 0:
            return (self.major, self.minor)
        return (self.suggested_major, self.suggested_minor)


@dataclass(frozen=True, slots=True)
class Header:
    """The header fields that do not follow from the body (opcode, response code, length)."""

    opflags: int = 0
    site_info_serial: int = 0
    recursion_count: int = 0
    expiration: int = 0


@dataclass(frozen=True, slots=True)
class Message:
    """A whole message. ``request_digest`` is present in a response exactly when its RD flag
    is set; ``credential`` holds the octets after the credential length (``b""`` for the
    empty credential, None when the sender left the section out, as the IDIS SDKs do for
    LOGIN_ID_SYSTEM). ``signed_part`` is the header and body as received: what a request
    digest or a signature covers. It is empty on messages built locally."""

    body: Body
    header: Header = Header()
    envelope: Envelope = Envelope()
    request_digest: RequestDigest | None = None
    credential: bytes | None = b""
    signed_part: bytes = field(default=b"", compare=False, repr=False)

    @property
    def opcode(self) -> int:
        return self.body.opcode

    @property
    def response_code(self) -> int:
        return self.body.response_code

    @property
    def is_request(self) -> bool:
        return self.body.response_code == ResponseCode.RESERVED


class MessageError(ProtocolError):
    """A message whose envelope (and maybe header) decoded but which cannot be used.

    Carries what is known so that a server can still answer the request id it came with."""

    def __init__(self, message: str, envelope: Envelope, opcode: int | None = None,
                 response_code: int | None = None) -> None:
        super().__init__(message)
        self.envelope = envelope
        self.opcode = opcode
        self.response_code = response_code


class UnsupportedVersion(MessageError):
    """Protocol 2.0, "5.0" (very old clients) or another major version."""


class UnknownOperation(MessageError):
    """An operation code (or response code) this codec has no body layout for."""


class UnsupportedEnvelope(MessageError):
    """Compressed or encrypted messages: they need a session this codec does not keep."""


# ------------------------------------------------------------------------------ envelope

def decode_envelope(data: bytes | bytearray, offset: int = 0) -> tuple[Envelope, int]:
    """The envelope at ``offset`` and the message length it announces."""
    if len(data) - offset < ENVELOPE_SIZE:
        raise fail("envelope", f"needs {ENVELOPE_SIZE} bytes, got {len(data) - offset}")
    major, minor, flags, sminor, session, request, seq, length = _ENVELOPE.unpack_from(
        data, offset)
    # Reserved flag bits are ignored, as hdllib does: only CP, EC, TC and the low two bits
    # (the suggested major version, protocol 2.10 and later) mean something.
    env = Envelope(major, minor, flags & SUGGESTED_MAJOR_MASK, sminor, session, request, seq,
                   bool(flags & _CP), bool(flags & _EC), bool(flags & _TC))
    return env, length


def encode_envelope(env: Envelope, message_length: int) -> bytes:
    if env.suggested_major > SUGGESTED_MAJOR_MASK:
        raise ValueError(f"suggested major version {env.suggested_major} does not fit 2 bits")
    flags = env.suggested_major
    if env.compressed:
        flags |= _CP
    if env.encrypted:
        flags |= _EC
    if env.truncated:
        flags |= _TC
    return _ENVELOPE.pack(env.major, env.minor, flags, env.suggested_minor, env.session_id,
                          env.request_id, env.sequence, message_length)


# ------------------------------------------------------------------------------- message

def _wire_code(code: int, version: tuple[int, int]) -> int:
    # hdllib writeHeader: clients before 2.5 know neither VALUE_INVALID nor SERVER_BACKUP.
    if version < (2, 5):
        if code == ResponseCode.VALUE_INVALID:
            return ResponseCode.VALUE_ALREADY_EXIST
        if code == ResponseCode.SERVER_BACKUP:
            return ResponseCode.NA_DELEGATE
    return code


def encode_message(msg: Message) -> bytes:
    """Envelope, header, body and credential of ``msg`` as one byte string."""
    body = msg.body
    code = body.response_code
    flags = int(msg.header.opflags) & ~_RD
    buf = bytearray(ENVELOPE_SIZE + HEADER_SIZE)
    if code == 0:
        if msg.request_digest is not None:
            raise ValueError("a request carries no request digest (set OpFlag.RD to ask)")
        flags |= msg.header.opflags & _RD
    elif msg.request_digest is not None:
        flags |= _RD
        write_digest(buf, msg.request_digest)
    try:
        body.write(buf)
        body_length = len(buf) - ENVELOPE_SIZE - HEADER_SIZE
        h = msg.header
        _HEADER.pack_into(buf, ENVELOPE_SIZE, body.opcode,
                          _wire_code(code, msg.envelope.version), flags, h.site_info_serial,
                          h.recursion_count, 0, h.expiration, body_length)
    except struct.error as exc:
        raise ValueError(f"{type(body).__name__}: a field is out of range ({exc})") from None
    if msg.credential is not None:
        buf += U32.pack(len(msg.credential))
        buf += msg.credential
    buf[:ENVELOPE_SIZE] = encode_envelope(msg.envelope, len(buf) - ENVELOPE_SIZE)
    return bytes(buf)


def decode_message(data: bytes) -> Message:
    """Decode one unfragmented message: the envelope and exactly the length it announces."""
    env, length = decode_envelope(data)
    if length != len(data) - ENVELOPE_SIZE:
        raise fail("envelope.message_length",
                   f"announces {length} bytes, {len(data) - ENVELOPE_SIZE} follow")
    if env.truncated:
        raise MessageError("envelope.truncated: a fragment; reassemble it first", env)
    return decode_payload(env, data, ENVELOPE_SIZE)


def decode_payload(env: Envelope, data: bytes, offset: int = 0) -> Message:
    """Decode header, body and credential from ``data[offset:]`` (all of it)."""
    end = len(data)
    if end - offset < HEADER_SIZE:
        raise MessageError(f"header: needs {HEADER_SIZE} bytes, got {end - offset}", env)
    opcode, code, flags, serial, recursion, _, expiration, body_length = _HEADER.unpack_from(
        data, offset)
    body_start = offset + HEADER_SIZE
    body_end = body_start + body_length
    if body_length > end - body_start:
        raise MessageError(f"header.body_length: {body_length} exceeds remaining "
                           f"{end - body_start} bytes", env, opcode, code)
    if env.version < MIN_VERSION or env.major != 2:
        raise UnsupportedVersion(f"envelope.version: {env.major}.{env.minor} is not supported",
                                 env, opcode, code)
    if env.compressed or env.encrypted:
        raise UnsupportedEnvelope("envelope: compressed or encrypted messages need a session",
                                  env, opcode, code)
    r = Reader(data, body_start, body_end)
    try:
        digest = read_digest(r, "request_digest") if code and flags & _RD else None
        body = _read_body(r, opcode, code, env.version)
        r.done("body")
    except _NoLayout as exc:
        raise UnknownOperation(str(exc), env, opcode, code) from None
    except ProtocolError as exc:
        raise MessageError(str(exc), env, opcode, code) from None
    credential: bytes | None = None
    if body_end != end:
        if end - body_end < 4:
            raise MessageError(f"credential: {end - body_end} bytes cannot hold its length",
                               env, opcode, code)
        (cred_length,) = U32.unpack_from(data, body_end)
        if cred_length != end - body_end - 4:
            raise MessageError(f"credential: length {cred_length} but {end - body_end - 4} "
                               f"bytes remain", env, opcode, code)
        credential = data[body_end + 4:end]
    header = Header(flags, serial, recursion, expiration)
    return Message(body, header, env, digest, credential, data[offset:body_end])


class _NoLayout(ProtocolError):
    pass


def _read_body(r: Reader, opcode: int, code: int, version: tuple[int, int]) -> Body:
    if code == ResponseCode.RESERVED:
        cls = REQUESTS.get(opcode)
    elif code == ResponseCode.SUCCESS:
        cls = SUCCESSES.get(opcode)
    elif code == ResponseCode.SERVICE_REFERRAL or (
            code == ResponseCode.NA_DELEGATE and version >= (2, 5)):
        return ServiceReferral.read(r, opcode, code)
    elif code == ResponseCode.AUTHEN_NEEDED:
        return Challenge.read(r, opcode, code)
    elif code == ResponseCode.NA_DELEGATE:  # before 2.5, 303 was hdllib's SERVER_BACKUP
        return ErrorResponse.read(r, opcode, ResponseCode.SERVER_BACKUP)
    elif code in _KNOWN_CODES:
        return ErrorResponse.read(r, opcode, code)
    else:
        raise _NoLayout(f"header.response_code: unknown code {code}")
    if cls is None:
        kind = "request" if code == ResponseCode.RESERVED else "success response"
        raise _NoLayout(f"header.opcode: no {kind} layout for operation {opcode}")
    return cls.read(r, opcode, code)
