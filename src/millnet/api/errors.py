"""millnet errors as HTTP answers: one JSON shape, ``{"error": ..., "detail": ..., "field": ...}``.

=====================  ====  ====================
millnet error          HTTP  ``error``
=====================  ====  ====================
Unauthenticated        401   ``unauthenticated``
PermissionDenied       403   ``permission_denied``
NotFound               404   ``not_found``
Conflict               409   ``conflict``
QuotaExceeded          409   ``quota_exceeded``  (a per-tenant limit: devices, points, rules)
InvalidInput           400   ``invalid_input``
request schema error   422   ``invalid_input``
method not allowed     405   ``method_not_allowed`` (``Allow`` lists every method of the path)
StorageError           503   ``storage_unavailable``
anything else          500   ``internal_error``   (logged with its traceback)
=====================  ====  ====================

Out-of-tenant objects answer exactly like missing ones (404), so existence does not leak.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from millnet.errors import (
    Conflict,
    InvalidInput,
    MillnetError,
    NotFound,
    PermissionDenied,
    QuotaExceeded,
    StorageError,
    Unauthenticated,
)

log = logging.getLogger("millnet.api")

WWW_AUTHENTICATE = 'Bearer realm="millnet"'


class ErrorBody(BaseModel):
    """Every error answer of the API has this shape."""

    error: str = Field(description="Machine-readable error code", examples=["not_found"])
    detail: str = Field(description="Human-readable explanation", examples=["asset 7 not found"])
    field: str | None = Field(
        default=None, description="The request field that was wrong, when known",
        examples=["start"])


_STATUS: list[tuple[type[MillnetError], int, str]] = [
    (Unauthenticated, 401, "unauthenticated"),
    (PermissionDenied, 403, "permission_denied"),
    (NotFound, 404, "not_found"),
    (Conflict, 409, "conflict"),
    (QuotaExceeded, 409, "quota_exceeded"),
    (InvalidInput, 400, "invalid_input"),
    (StorageError, 503, "storage_unavailable"),
]

_DESCRIPTIONS = {
    400: "Invalid parameter value or query too large (``field`` names the parameter)",
    401: "Missing or invalid bearer token",
    403: "The token's role does not allow this",
    404: "Not found, or not visible to the token's tenant",
    409: "Already exists, or a per-tenant quota is reached",
    422: "Request body or parameters do not match this document (``field`` names the first)",
    500: "A bug, logged on the node",
    503: "A store is unavailable",
}


def responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for the given error status codes."""
    return {code: {"model": ErrorBody, "description": _DESCRIPTIONS[code]} for code in codes}


# What every authenticated route can answer besides its success.
AUTH_ERRORS = (401, 403, 422, 500, 503)


def error_response(status: int, error: str, detail: str, field: str | None = None) -> Response:
    headers = {"WWW-Authenticate": WWW_AUTHENTICATE} if status == 401 else None
    body = ErrorBody(error=error, detail=detail, field=field)
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


def millnet_error_response(exc: MillnetError) -> Response:
    for cls, status, code in _STATUS:
        if isinstance(exc, cls):
            field = exc.field if isinstance(exc, InvalidInput) else None
            detail = str(exc)
            if isinstance(exc, StorageError):
                log.warning("store error answering a request: %s", exc)
                detail = "telemetry or registry store unavailable"
            return error_response(status, code, detail, field)
    log.error("unmapped millnet error: %r", exc)
    return error_response(500, "internal_error", "internal error")


async def _on_millnet_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, MillnetError)
    return millnet_error_response(exc)


async def _on_validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    first = errors[0] if errors else {}
    loc = [str(p) for p in first.get("loc", ()) if p not in ("query", "path", "body", "header")]
    field = ".".join(loc) or None
    message = str(first.get("msg", "invalid request"))
    detail = f"{field}: {message}" if field else message
    return error_response(422, "invalid_input", detail, field)


async def _on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    codes = {400: "invalid_input", 404: "not_found", 405: "method_not_allowed",
             401: "unauthenticated", 403: "permission_denied"}
    code = codes.get(exc.status_code, "http_error")
    response = error_response(exc.status_code, code, str(exc.detail))
    if exc.headers:
        response.headers.update(exc.headers)
    if exc.status_code == 405:
        response.headers["Allow"] = ", ".join(allowed_methods(request))
    return response


def allowed_methods(request: Request) -> list[str]:
    """The methods the OpenAPI document lists for the request's path. Starlette's own ``Allow``
    names only the methods of the first route whose path matched, and FastAPI makes one route
    per method."""
    doc: dict[str, Any] = request.app.openapi()
    path = request.url.path
    if path in doc["paths"]:  # a literal path wins over a template (/rules/validate)
        return sorted(method.upper() for method in doc["paths"][path])
    for template, operations in doc["paths"].items():
        if re.fullmatch(re.sub(r"\\{[^/]+?\\}", "[^/]+", re.escape(template)), path):
            return sorted(method.upper() for method in operations)
    return []


async def _on_unexpected(request: Request, exc: Exception) -> Response:
    # A bug, not a condition: logged with its traceback, answered in the API's error shape.
    log.error("unhandled error answering %s %s", request.method, request.url.path,
              exc_info=exc)
    return error_response(500, "internal_error", "internal error")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(Exception, _on_unexpected)
    app.add_exception_handler(MillnetError, _on_millnet_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
