"""Identifier errors: :mod:`millnet.errors` classes narrowed to a Handle response code.

Every class carries ``code``, the :class:`ResponseCode` a server answers with;
:func:`error_code` maps any millnet error (these or their plain parents) to one::

    NotFound          -> HandleNotFound 100, ValueNotFound 200
    Conflict          -> HandleExists 101, ValueExists 201
    InvalidInput      -> InvalidHandle 102 (field "handle"), InvalidValue 202 (otherwise)
    PermissionDenied  -> NotAuthorized 400
    Unauthenticated   -> AuthenticationNeeded 402, AuthenticationFailed 403
    NotResponsible    -> 301 SERVER_NOT_RESP (this node neither serves nor knows the prefix)
    anything else     -> 2 ERROR
"""

from __future__ import annotations

from typing import ClassVar

from millnet.errors import (
    Conflict,
    InvalidInput,
    MillnetError,
    NotFound,
    PermissionDenied,
    Unauthenticated,
)
from millnet.protocols.handle import ResponseCode


class HandleNotFound(NotFound):
    code: ClassVar[ResponseCode] = ResponseCode.HANDLE_NOT_FOUND


class ValueNotFound(NotFound):
    code: ClassVar[ResponseCode] = ResponseCode.VALUE_NOT_FOUND


class HandleExists(Conflict):
    code: ClassVar[ResponseCode] = ResponseCode.HANDLE_ALREADY_EXIST


class ValueExists(Conflict):
    code: ClassVar[ResponseCode] = ResponseCode.VALUE_ALREADY_EXIST


class InvalidValue(InvalidInput):
    code: ClassVar[ResponseCode] = ResponseCode.VALUE_INVALID


class NotAuthorized(PermissionDenied):
    code: ClassVar[ResponseCode] = ResponseCode.NOT_AUTHORIZED


class AuthenticationNeeded(Unauthenticated):
    """Restricted values were asked for without credentials: the server should challenge."""

    code: ClassVar[ResponseCode] = ResponseCode.AUTHEN_NEEDED


class AuthenticationFailed(Unauthenticated):
    code: ClassVar[ResponseCode] = ResponseCode.AUTHEN_FAILED


class OperationDenied(MillnetError):
    """The request is refused as such (OPERATION_DENIED)."""

    code: ClassVar[ResponseCode] = ResponseCode.OPERATION_DENIED


class ReadOnlyMirror(MillnetError):
    """This node mirrors another: write there (SERVER_BACKUP)."""

    code: ClassVar[ResponseCode] = ResponseCode.SERVER_BACKUP


class NotResponsible(MillnetError):
    """No prefix of the handle is served here and no delegation record names who serves it."""

    code: ClassVar[ResponseCode] = ResponseCode.SERVER_NOT_RESP


_BY_PARENT: tuple[tuple[type[MillnetError], ResponseCode], ...] = (
    (NotFound, ResponseCode.HANDLE_NOT_FOUND),
    (Conflict, ResponseCode.HANDLE_ALREADY_EXIST),
    (PermissionDenied, ResponseCode.NOT_AUTHORIZED),
    (Unauthenticated, ResponseCode.AUTHEN_FAILED),
)


def error_code(exc: BaseException) -> ResponseCode:
    """The Handle response code a server answers ``exc`` with."""
    code = getattr(exc, "code", None)
    if isinstance(code, ResponseCode):
        return code
    if isinstance(exc, InvalidInput):
        return (ResponseCode.INVALID_HANDLE if exc.field == "handle"
                else ResponseCode.VALUE_INVALID)
    for parent, parent_code in _BY_PARENT:
        if isinstance(exc, parent):
            return parent_code
    return ResponseCode.ERROR


__all__ = [
    "AuthenticationFailed", "AuthenticationNeeded", "HandleExists", "HandleNotFound",
    "InvalidValue", "NotAuthorized", "NotResponsible", "ValueExists", "ValueNotFound",
    "error_code",
]
