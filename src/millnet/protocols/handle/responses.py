"""Response bodies and the tables that pick a body class for (operation, response code)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Self

from .constants import OpCode, ResponseCode
from .requests import (
    AddValueRequest,
    ChallengeAnswer,
    CreateHandleRequest,
    DeleteHandleRequest,
    GetSiteInfoRequest,
    ListHandlesRequest,
    ModifyValueRequest,
    PasswordLoginRequest,
    PublicKeyLoginRequest,
    RemoveValueRequest,
    ResolutionRequest,
    VerifyChallengeRequest,
    _HandleValues,
)
from .site import SiteInfo, read_site, write_site
from .values import HandleValue, read_values, write_values
from .wire import MAX_HANDLE_LIST, Reader, fail, put_octets, put_utf8, put_utf8_list

_REFERRALS = frozenset((ResponseCode.SERVICE_REFERRAL, ResponseCode.NA_DELEGATE))
#: codes whose body is not an error message: encoding them as ErrorResponse is a bug
_NOT_ERRORS = frozenset((ResponseCode.RESERVED, ResponseCode.SUCCESS,
                         ResponseCode.AUTHEN_NEEDED)) | _REFERRALS

# ----------------------------------------------------------------------------- responses

@dataclass(frozen=True, slots=True)
class ResolutionResponse(_HandleValues):
    opcode: ClassVar[int] = OpCode.RESOLUTION
    response_code: ClassVar[int] = ResponseCode.SUCCESS


@dataclass(frozen=True, slots=True)
class PasswordLoginResponse(_HandleValues):
    """Success of LOGIN (2000): the CAICT SDK reads a handle and a value count."""

    opcode: ClassVar[int] = OpCode.LOGIN
    response_code: ClassVar[int] = ResponseCode.SUCCESS


@dataclass(frozen=True, slots=True)
class GetSiteInfoResponse:
    site: SiteInfo
    opcode: ClassVar[int] = OpCode.GET_SITEINFO
    response_code: ClassVar[int] = ResponseCode.SUCCESS

    def write(self, buf: bytearray) -> None:
        write_site(buf, self.site)

    @classmethod
    def read(cls, r: Reader, opcode: int, response_code: int) -> Self:
        return cls(read_site(r))


@dataclass(frozen=True, slots=True)
class CreateHandleResponse:
    """``handle`` is sent back when the server minted the suffix; otherwise the body is empty."""

    handle: str | None = None
    opcode: ClassVar[int] = OpCode.CREATE_HANDLE
    response_code: ClassVar[int] = ResponseCode.SUCCESS

    def write(self, buf: bytearray) -> None:
        if self.handle is not None:
            put_utf8(buf, self.handle)

    @classmethod
    def read(cls, r: Reader, opcode: int, response_code: int) -> Self:
        return cls(r.utf8("handle") if r.remaining() else None)


@dataclass(frozen=True, slots=True)
class ListHandlesResponse:
    """One batch of handles; a server sends several with the CN flag on all but the last."""

    handles: tuple[str, ...]
    opcode: ClassVar[int] = OpCode.LIST_HANDLE
    response_code: ClassVar[int] = ResponseCode.SUCCESS

    def write(self, buf: bytearray) -> None:
        put_utf8_list(buf, self.handles)

    @classmethod
    def read(cls, r: Reader, opcode: int, response_code: int) -> Self:
        return cls(r.utf8_list("handles", MAX_HANDLE_LIST))


@dataclass(frozen=True, slots=True)
class VerifyChallengeResponse:
    valid: bool
    opcode: ClassVar[int] = OpCode.VERIFY_RESPONSE
    response_code: ClassVar[int] = ResponseCode.SUCCESS

    def write(self, buf: bytearray) -> None:
        buf.append(1 if self.valid else 0)

    @classmethod
    def read(cls, r: Reader, opcode: int, response_code: int) -> Self:
        octet = r.u8("valid")
        if octet > 1:
            raise fail("valid", f"expected 0 or 1, got {octet}")
        return cls(octet == 1)


@dataclass(frozen=True, slots=True)
class GenericResponse:
    """Success with an empty body: delete, add/remove/modify value, public-key login."""

    opcode: int
    response_code: ClassVar[int] = ResponseCode.SUCCESS

    def write(self, buf: bytearray) -> None:
        return

    @classmethod
    def read(cls, r: Reader, opcode: int, response_code: int) -> Self:
        return cls(opcode)


@dataclass(frozen=True, slots=True)
class ErrorResponse:
    """Any failure code: the body is one UTF8-String explaining it (may be empty)."""

    opcode: int
    response_code: int
    message: str = ""

    def write(self, buf: bytearray) -> None:
        if self.response_code in _NOT_ERRORS:
            raise ValueError(f"response code {self.response_code} has its own body class")
        put_utf8(buf, self.message)

    @classmethod
    def read(cls, r: Reader, opcode: int, response_code: int) -> Self:
        return cls(opcode, response_code, r.utf8("message"))


@dataclass(frozen=True, slots=True)
class ServiceReferral:
    """302 SERVICE_REFERRAL (or 303, a prefix referral, since 2.5): where to ask instead.

    ``values`` (HS_SITE / HS_SERV values) is omitted from the body when None."""

    opcode: int
    handle: str
    values: tuple[HandleValue, ...] | None = None
    response_code: int = ResponseCode.SERVICE_REFERRAL

    def write(self, buf: bytearray) -> None:
        if self.response_code not in _REFERRALS:
            raise ValueError(f"a referral is code 302 or 303, not {self.response_code}")
        put_utf8(buf, self.handle)
        if self.values is not None:
            write_values(buf, self.values)

    @classmethod
    def read(cls, r: Reader, opcode: int, response_code: int) -> Self:
        handle = r.utf8("handle")
        return cls(opcode, handle, read_values(r) if r.remaining() else None, response_code)


@dataclass(frozen=True, slots=True)
class Challenge:
    """402 AUTHEN_NEEDED to any operation: the nonce the client must sign. hdllib always
    sets RD on a challenge, so the digest of the challenged request precedes the nonce."""

    opcode: int
    nonce: bytes
    response_code: ClassVar[int] = ResponseCode.AUTHEN_NEEDED

    def write(self, buf: bytearray) -> None:
        put_octets(buf, self.nonce)

    @classmethod
    def read(cls, r: Reader, opcode: int, response_code: int) -> Self:
        return cls(opcode, r.octets("nonce"))


Body = (ResolutionRequest | GetSiteInfoRequest | CreateHandleRequest | DeleteHandleRequest
        | AddValueRequest | RemoveValueRequest | ModifyValueRequest | ListHandlesRequest
        | ChallengeAnswer | VerifyChallengeRequest | PasswordLoginRequest
        | PublicKeyLoginRequest | ResolutionResponse | GetSiteInfoResponse
        | CreateHandleResponse | ListHandlesResponse | VerifyChallengeResponse
        | PasswordLoginResponse | GenericResponse | ErrorResponse | ServiceReferral | Challenge)

BodyType = (type[ResolutionRequest] | type[GetSiteInfoRequest] | type[CreateHandleRequest]
            | type[DeleteHandleRequest] | type[AddValueRequest] | type[RemoveValueRequest]
            | type[ModifyValueRequest] | type[ListHandlesRequest] | type[ChallengeAnswer]
            | type[VerifyChallengeRequest] | type[PasswordLoginRequest]
            | type[PublicKeyLoginRequest] | type[ResolutionResponse]
            | type[GetSiteInfoResponse] | type[CreateHandleResponse]
            | type[ListHandlesResponse] | type[VerifyChallengeResponse]
            | type[PasswordLoginResponse] | type[GenericResponse])

REQUESTS: dict[int, BodyType] = {
    OpCode.RESOLUTION: ResolutionRequest,
    OpCode.GET_SITEINFO: GetSiteInfoRequest,
    OpCode.CREATE_HANDLE: CreateHandleRequest,
    OpCode.DELETE_HANDLE: DeleteHandleRequest,
    OpCode.ADD_VALUE: AddValueRequest,
    OpCode.REMOVE_VALUE: RemoveValueRequest,
    OpCode.MODIFY_VALUE: ModifyValueRequest,
    OpCode.LIST_HANDLE: ListHandlesRequest,
    OpCode.CHALLENGE_RESPONSE: ChallengeAnswer,
    OpCode.VERIFY_RESPONSE: VerifyChallengeRequest,
    OpCode.LOGIN: PasswordLoginRequest,
    OpCode.LOGIN_ID_SYSTEM: PublicKeyLoginRequest,
}

#: Bodies of RC SUCCESS by operation; the others with an empty body are GenericResponse.
SUCCESSES: dict[int, BodyType] = {
    OpCode.RESOLUTION: ResolutionResponse,
    OpCode.GET_SITEINFO: GetSiteInfoResponse,
    OpCode.CREATE_HANDLE: CreateHandleResponse,
    OpCode.LIST_HANDLE: ListHandlesResponse,
    OpCode.VERIFY_RESPONSE: VerifyChallengeResponse,
    OpCode.LOGIN: PasswordLoginResponse,
    OpCode.DELETE_HANDLE: GenericResponse,
    OpCode.ADD_VALUE: GenericResponse,
    OpCode.REMOVE_VALUE: GenericResponse,
    OpCode.MODIFY_VALUE: GenericResponse,
    OpCode.LOGIN_ID_SYSTEM: GenericResponse,
    OpCode.SESSION_TERMINATE: GenericResponse,
}
