"""Request bodies (RFC 3652 section 3 and hdllib ``Encoder``), one frozen dataclass each.

A body knows its operation code and response code, writes itself after the header and reads
itself from a :class:`~.wire.Reader` bounded to the body. The request digest that precedes
every response body when the RD flag is set is read and written by :mod:`.codec` with the
helpers defined here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Self

from .constants import DIGEST_SIZES, DigestAlgorithm, OpCode, ResponseCode
from .values import HandleValue, read_values, write_values
from .wire import U32, Reader, fail, put_octets, put_u32_list, put_utf8, put_utf8_list


@dataclass(frozen=True, slots=True)
class RequestDigest:
    """Digest of the request's header and body, echoed in a response when RD is set."""

    algorithm: int  # DigestAlgorithm
    digest: bytes


# ------------------------------------------------------------------------------ requests

@dataclass(frozen=True, slots=True)
class ResolutionRequest:
    """Empty ``indexes`` and ``types`` ask for all values. ``auth_bytes`` is the optional
    trailing octet string id-pointer-sdk appends (absent from RFC clients)."""

    handle: str
    indexes: tuple[int, ...] = ()
    types: tuple[str, ...] = ()
    auth_bytes: bytes | None = None
    opcode: ClassVar[int] = OpCode.RESOLUTION
    response_code: ClassVar[int] = ResponseCode.RESERVED

    def write(self, buf: bytearray) -> None:
        put_utf8(buf, self.handle)
        put_u32_list(buf, self.indexes)
        put_utf8_list(buf, self.types)
        if self.auth_bytes is not None:
            put_octets(buf, self.auth_bytes)

    @classmethod
    def read(cls, r: Reader, opcode: int, response_code: int) -> Self:
        handle = r.utf8("handle")
        indexes = r.u32_list("indexes")
        types = r.utf8_list("types")
        auth = r.octets("auth_bytes") if r.remaining() else None
        return cls(handle, indexes, types, auth)


@dataclass(frozen=True, slots=True)
class _HandleOnly:
    """Requests whose body is one handle (hdllib's GenericRequest layout)."""

    handle: str
    response_code: ClassVar[int] = ResponseCode.RESERVED

    def write(self, buf: bytearray) -> None:
        put_utf8(buf, self.handle)

    @classmethod
    def read(cls, r: Reader, opcode: int, response_code: int) -> Self:
        return cls(r.utf8("handle"))


@dataclass(frozen=True, slots=True)
class GetSiteInfoRequest(_HandleOnly):
    """The handle is ignored by servers; hdllib and the CAICT SDK send "/"."""

    handle: str = "/"
    opcode: ClassVar[int] = OpCode.GET_SITEINFO


@dataclass(frozen=True, slots=True)
class DeleteHandleRequest(_HandleOnly):
    opcode: ClassVar[int] = OpCode.DELETE_HANDLE


@dataclass(frozen=True, slots=True)
class ListHandlesRequest(_HandleOnly):
    """``handle`` is the prefix handle whose handles are listed, e.g. ``0.NA/88.100.5``."""

    opcode: ClassVar[int] = OpCode.LIST_HANDLE


@dataclass(frozen=True, slots=True)
class _HandleValues:
    handle: str
    values: tuple[HandleValue, ...] = ()

    def write(self, buf: bytearray) -> None:
        put_utf8(buf, self.handle)
        write_values(buf, self.values)

    @classmethod
    def read(cls, r: Reader, opcode: int, response_code: int) -> Self:
        return cls(r.utf8("handle"), read_values(r))


@dataclass(frozen=True, slots=True)
class CreateHandleRequest(_HandleValues):
    opcode: ClassVar[int] = OpCode.CREATE_HANDLE
    response_code: ClassVar[int] = ResponseCode.RESERVED


@dataclass(frozen=True, slots=True)
class AddValueRequest(_HandleValues):
    opcode: ClassVar[int] = OpCode.ADD_VALUE
    response_code: ClassVar[int] = ResponseCode.RESERVED


@dataclass(frozen=True, slots=True)
class ModifyValueRequest(_HandleValues):
    opcode: ClassVar[int] = OpCode.MODIFY_VALUE
    response_code: ClassVar[int] = ResponseCode.RESERVED


@dataclass(frozen=True, slots=True)
class RemoveValueRequest:
    handle: str
    indexes: tuple[int, ...]
    opcode: ClassVar[int] = OpCode.REMOVE_VALUE
    response_code: ClassVar[int] = ResponseCode.RESERVED

    def write(self, buf: bytearray) -> None:
        put_utf8(buf, self.handle)
        put_u32_list(buf, self.indexes)

    @classmethod
    def read(cls, r: Reader, opcode: int, response_code: int) -> Self:
        return cls(r.utf8("handle"), r.u32_list("indexes"))


@dataclass(frozen=True, slots=True)
class ChallengeAnswer:
    """OC_CHALLENGE_RESPONSE (200): the client's answer to a :class:`Challenge`.

    ``auth_type`` is "HS_PUBKEY" or "HS_SECKEY"; ``signed_response`` is opaque here."""

    auth_type: str
    key_handle: str
    key_index: int
    signed_response: bytes
    opcode: ClassVar[int] = OpCode.CHALLENGE_RESPONSE
    response_code: ClassVar[int] = ResponseCode.RESERVED

    def write(self, buf: bytearray) -> None:
        put_utf8(buf, self.auth_type)
        put_utf8(buf, self.key_handle)
        buf += U32.pack(self.key_index)
        put_octets(buf, self.signed_response)

    @classmethod
    def read(cls, r: Reader, opcode: int, response_code: int) -> Self:
        return cls(r.utf8("auth_type"), r.utf8("key_handle"), r.u32("key_index"),
                   r.octets("signed_response"))


def read_digest(r: Reader, field: str) -> RequestDigest:
    algorithm = r.u8(field)
    if algorithm == DigestAlgorithm.LEGACY:
        # The legacy form is a u32 length whose high octet (0) doubles as "algorithm 0".
        r.pos -= 1
        return RequestDigest(algorithm, r.octets(field))
    size = DIGEST_SIZES.get(algorithm)
    if size is None:
        raise fail(field, f"unknown digest algorithm {algorithm}")
    return RequestDigest(algorithm, r.raw(size, field))


def write_digest(buf: bytearray, digest: RequestDigest) -> None:
    if digest.algorithm == DigestAlgorithm.LEGACY:
        put_octets(buf, digest.digest)
        return
    if DIGEST_SIZES.get(digest.algorithm) != len(digest.digest):
        raise ValueError(f"a digest of algorithm {digest.algorithm} cannot have "
                         f"{len(digest.digest)} octets")
    buf.append(digest.algorithm)
    buf += digest.digest


@dataclass(frozen=True, slots=True)
class VerifyChallengeRequest:
    """OC_VERIFY_RESPONSE (201): a server asks the key holder's home server to check an
    HS_SECKEY answer. hdllib writes ``digest`` in the legacy length-prefixed form."""

    key_handle: str
    key_index: int
    nonce: bytes
    digest: RequestDigest
    signed_response: bytes
    opcode: ClassVar[int] = OpCode.VERIFY_RESPONSE
    response_code: ClassVar[int] = ResponseCode.RESERVED

    def write(self, buf: bytearray) -> None:
        put_utf8(buf, self.key_handle)
        buf += U32.pack(self.key_index)
        put_octets(buf, self.nonce)
        write_digest(buf, self.digest)
        put_octets(buf, self.signed_response)

    @classmethod
    def read(cls, r: Reader, opcode: int, response_code: int) -> Self:
        return cls(r.utf8("key_handle"), r.u32("key_index"), r.octets("nonce"),
                   read_digest(r, "digest"), r.octets("signed_response"))


@dataclass(frozen=True, slots=True)
class PasswordLoginRequest:
    """IDIS LOGIN (2000). The CAICT SDK reuses the resolution request layout: the user name
    as the handle, an empty index list and a one-item type list holding the password."""

    username: str
    password: str
    opcode: ClassVar[int] = OpCode.LOGIN
    response_code: ClassVar[int] = ResponseCode.RESERVED

    def write(self, buf: bytearray) -> None:
        ResolutionRequest(self.username, (), (self.password,)).write(buf)

    @classmethod
    def read(cls, r: Reader, opcode: int, response_code: int) -> Self:
        shaped = ResolutionRequest.read(r, opcode, response_code)
        if shaped.indexes or len(shaped.types) != 1 or shaped.auth_bytes is not None:
            raise fail("password", "a login carries no indexes and exactly one password")
        return cls(shaped.handle, shaped.types[0])


@dataclass(frozen=True, slots=True)
class PublicKeyLoginRequest:
    """IDIS LOGIN_ID_SYSTEM (2001): the user's handle and the index of its HS_PUBKEY; the
    server answers with a :class:`Challenge` (402) that the client signs."""

    key_handle: str
    key_index: int
    opcode: ClassVar[int] = OpCode.LOGIN_ID_SYSTEM
    response_code: ClassVar[int] = ResponseCode.RESERVED

    def write(self, buf: bytearray) -> None:
        put_utf8(buf, self.key_handle)
        buf += U32.pack(self.key_index)

    @classmethod
    def read(cls, r: Reader, opcode: int, response_code: int) -> Self:
        return cls(r.utf8("key_handle"), r.u32("key_index"))


