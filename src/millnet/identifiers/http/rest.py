"""The Handle.Net-compatible HTTP JSON API: ``/api/handles`` as plain Starlette routes.

``create_handle_app(store, service)`` returns a Starlette app (mount it in the node's app):

=========================================  ===============================================
``GET /api/handles/{handle}``              resolve; ``index``/``type`` filters (repeatable,
                                           index OR type), ``publicOnly``, ``auth`` (ignored:
                                           this server is authoritative)
``PUT /api/handles/{handle}``              create, or replace the record (``overwrite``
                                           defaults to true; ``overwrite=false`` -> 409/101)
``PUT ...?index=i&index=j``                add or replace those values (``index=various``:
                                           the body's indexes); with ``overwrite=false`` add only
``PUT /api/handles/{prefix}/...?mintNewSuffix=true``  create ``{handle}{new suffix}``
``DELETE /api/handles/{handle}[?index=i]``  delete the handle, or remove values
``GET /api/handles?prefix=P&page=&pageSize=``  list handles (``page`` counts from 0)
=========================================  ===============================================

Every body carries ``responseCode`` (the Handle protocol code); the HTTP status follows
Handle.Net's ``statusCodeFromResponse``: success 200 (201 when a handle or values were
certainly created), value not found 200 in resolution / 400 otherwise, handle not found 404,
exists 409, invalid or malformed 400, not responsible 400 (301), referral 300, not authorized
403, authentication needed or failed 401 (402 / 403), anything else 500 (2).

Writes and listing authenticate with HTTP Basic: user ``index:handle`` URL-encoded (pyhandle
sends ``300%3A88.100.5/ADMIN``), password the HS_SECKEY at that index. The service then checks
HS_ADMIN rights. Unlike Handle.Net, credentials are accepted over plain HTTP too: put TLS in
front in deployment. Secrets are never logged or echoed.

Resolution is the hot path: one store read, values encoded by msgspec; query strings are
parsed only when present. Store calls run in the thread pool (``inline_reads=True`` runs
resolutions on the event loop, for an embedded SQLite store).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import parse_qsl

import msgspec
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from millnet.errors import InvalidInput, MillnetError
from millnet.identifiers.core.delegation import Referral
from millnet.identifiers.core.errors import HandleExists
from millnet.identifiers.core.errors import error_code as _error_code
from millnet.identifiers.core.fastpath import FastResolver
from millnet.identifiers.core.offload import Busy, Offload
from millnet.identifiers.core.service import IdentifierService
from millnet.identifiers.core.store import IdentifierStore
from millnet.identifiers.http.basic_auth import PrincipalThrottle, authenticate
from millnet.identifiers.http.rest_json import parse_values, value_json
from millnet.identifiers.wire.auth import AuthThrottle
from millnet.model.limits import ascii_digits
from millnet.protocols.handle import (
    AdminPermission,
    HandleValue,
    ResponseCode,
    ValueReference,
    normalize_handle,
    prefix_handle,
)

log = logging.getLogger("millnet.identifiers.http.rest")

T = TypeVar("T")
_JSON = "application/json"
_ENCODE = msgspec.json.Encoder().encode
_DECODE = msgspec.json.Decoder().decode
#: the highest listing page (page * pageSize must stay a 64-bit offset)
MAX_PAGE = 1 << 40
_TRUE = frozenset({"", "true", "yes"})
_MINT_ATTEMPTS = 3

#: HTTP status per response code (Handle.Net ``statusCodeFromResponse``; 402 and 403 from
#: HTTP Basic are 401, as Handle.Net's authentication filter answers them).
STATUS: dict[int, int] = {
    1: 200, 2: 500, 3: 503, 4: 400, 5: 501, 7: 503, 100: 404, 101: 409, 102: 400, 200: 400,
    201: 409, 202: 400, 301: 400, 302: 300, 303: 300, 400: 403, 401: 403, 402: 401, 403: 401,
    404: 403,
}


class RequestError(InvalidInput):
    """A malformed request (query, body, JSON): PROTOCOL_ERROR, 400."""

    code = ResponseCode.PROTOCOL_ERROR


def error_code(exc: BaseException) -> int:
    return int(getattr(exc, "code", 0) or _error_code(exc))


def _json(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    return Response(_ENCODE(body), status, headers, _JSON)


def _same_handle(a: str, b: str) -> bool:
    try:
        return normalize_handle(a) == normalize_handle(b)
    except InvalidInput:
        return a == b


def error_response(exc: MillnetError, handle: str | None = None) -> Response:
    code = error_code(exc)
    if isinstance(exc, Busy):  # the node's offload is full: come back in a moment
        return _json(429, {"responseCode": code, "message": str(exc)}, {"Retry-After": "1"})
    if code == ResponseCode.ERROR:
        log.error("handle API request for %r failed: %s", handle, exc)
    body: dict[str, Any] = {"responseCode": code}
    if handle:
        body["handle"] = handle
    body["message"] = str(exc) if code != 2 else "internal error"
    headers = {"WWW-Authenticate": 'Basic realm="handle"'} if code == 402 else None
    return _json(STATUS.get(code, 500), body, headers)


class Query:
    """The query parameters Handle.Net reads, parsed once."""

    __slots__ = ("params",)

    def __init__(self, raw: bytes) -> None:
        self.params = parse_qsl(raw.decode("latin-1"), keep_blank_values=True) if raw else []

    def all(self, name: str) -> list[str]:
        return [v for k, v in self.params if k == name]

    def first(self, name: str) -> str | None:
        return next((v for k, v in self.params if k == name), None)

    def flag(self, name: str, default: bool = False) -> bool:
        value = self.first(name)
        return default if value is None else value.lower() in _TRUE

    def integer(self, name: str, default: int) -> int:
        value = self.first(name)
        if value is None:
            return default
        try:
            return int(value)
        except ValueError:
            raise RequestError(f"{value[:20]!r} is not an integer", name) from None

    def indexes(self) -> list[int]:
        try:
            return [int(v) for v in self.all("index")]
        except ValueError:
            raise RequestError("indexes must be integers", "index") from None


async def read_json(request: Request, max_bytes: int) -> Any:
    """The request's JSON body; RequestError naming what is wrong (media type, size, JSON)."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != _JSON:
        raise RequestError(f"unsupported media type {kind[:40]!r}; send application/json",
                           "Content-Type")
    declared = request.headers.get("content-length")
    if declared is not None and ascii_digits(declared, 20) and int(declared) > max_bytes:
        raise RequestError(f"body larger than {max_bytes} bytes", "body")
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > max_bytes:
            raise RequestError(f"body larger than {max_bytes} bytes", "body")
    try:
        return _DECODE(raw)
    except msgspec.DecodeError as exc:
        raise RequestError(f"invalid JSON: {exc}", "body") from None
    except RecursionError:  # found by review: '[' * 100000 was an HTTP 500
        raise RequestError("JSON nested too deeply", "body") from None


class HandleApi:
    """The endpoints; one instance per app."""

    def __init__(self, store: IdentifierStore, service: IdentifierService, *,
                 max_page_size: int, max_body_bytes: int, inline_reads: bool,
                 offload: Offload) -> None:
        self.store = store
        self.service = service
        self.offload = offload
        self.max_page_size = max_page_size
        self.max_body_bytes = max_body_bytes
        self.inline_reads = inline_reads

    async def _run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """A read in Starlette's thread pool."""
        return await run_in_threadpool(fn, *args, **kwargs)

    async def _admin(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """A write or a listing in the node's bounded offload (Busy, 429, beyond it)."""
        return await self.offload.run(fn, *args, **kwargs)

    async def _principal(self, request: Request, *, required: bool) -> ValueReference | None:
        if not required and "authorization" not in request.headers:
            return None
        return await authenticate(request, self.service)

    # GET /api/handles/{handle}

    async def get_handle(self, request: Request) -> Response:
        handle: str = request.path_params["handle"]
        try:
            if not handle:
                raise InvalidInput("empty handle", "handle")
            raw_query: bytes = request.scope["query_string"]
            if not raw_query and "authorization" not in request.headers:
                values = await self._resolve(handle, (), (), True, None)
            else:
                query = Query(raw_query)
                principal = await self._principal(request, required=False)
                public_only = query.flag("publicOnly", default=principal is None)
                values = await self._resolve(handle, query.indexes(), query.all("type"),
                                             public_only, principal)
        except MillnetError as exc:
            return await self._resolution_error(exc, handle)
        body = {"responseCode": 1, "handle": handle, "values": [value_json(v) for v in values]}
        return Response(_ENCODE(body), 200, None, _JSON)

    async def _resolve(self, handle: str, indexes: Sequence[int], types: Sequence[str],
                       public_only: bool,
                       principal: ValueReference | None) -> tuple[HandleValue, ...]:
        if self.inline_reads:
            return self.service.resolve(handle, indexes, types, public_only=public_only,
                                        principal=principal)
        return await self._run(self.service.resolve, handle, indexes, types,
                               public_only=public_only, principal=principal)

    async def _resolution_error(self, exc: MillnetError, handle: str) -> Response:
        code = error_code(exc)
        if code == ResponseCode.VALUE_NOT_FOUND:  # a resolution with nothing left: 200
            return _json(200, {"responseCode": code, "handle": handle, "values": []})
        if code == ResponseCode.HANDLE_NOT_FOUND and self.service.served:
            try:
                where = await self._run(self.service.locate, handle)
            except MillnetError as located:
                return error_response(located, handle)
            if isinstance(where, Referral):
                return _json(300, {"responseCode": int(ResponseCode.SERVICE_REFERRAL),
                                   "handle": handle, "referralPrefix": where.prefix,
                                   "values": [value_json(v) for v in where.values]})
        return error_response(exc, handle)

    # PUT /api/handles/{handle}

    async def put_handle(self, request: Request) -> Response:
        handle: str = request.path_params["handle"]
        try:
            query = Query(request.scope["query_string"])
            principal = await self._principal(request, required=True)
            assert principal is not None
            values = await self._body_values(request, handle)
            overwrite = query.flag("overwrite", default=True)
            if query.flag("mintNewSuffix"):
                minted = await self._admin(self._mint, principal, handle, values)
                return _json(201, {"responseCode": 1, "handle": minted})
            if not handle:
                raise InvalidInput("empty handle", "handle")
            wanted = query.all("index")
            if not wanted:
                await self._admin(self.service.create_handle, principal, handle, values,
                                  overwrite=overwrite)
                return _json(200 if overwrite else 201, {"responseCode": 1, "handle": handle})
            if wanted != ["various"]:
                indexes = query.indexes()
                if set(indexes) != {v.index for v in values}:
                    raise RequestError("the index parameters must list exactly the indexes of "
                                       "the values sent", "index")
            created = await self._admin(self._put_values, principal, handle, values,
                                        overwrite)
            return _json(201 if created else 200, {"responseCode": 1, "handle": handle})
        except MillnetError as exc:
            return error_response(exc, handle)

    async def _body_values(self, request: Request, handle: str) -> tuple[HandleValue, ...]:
        body = await read_json(request, self.max_body_bytes)
        values, named = parse_values(body)
        if named is not None and not _same_handle(named, handle):
            raise RequestError(f"the body names handle {named[:200]!r}, the URL {handle[:200]!r}",
                               "handle")
        return values

    def _mint(self, principal: ValueReference, base: str,
              values: tuple[HandleValue, ...]) -> str:
        """Handle.Net's mintNewSuffix: ``base`` + a new suffix (``88.100.5/`` or
        ``88.100.5/batch-``)."""
        prefix, slash, stem = base.partition("/")
        if not slash or not prefix:
            raise InvalidInput("mintNewSuffix needs prefix/ or prefix/stem in the URL", "handle")
        if not stem:
            return self.service.mint_handle(principal, prefix, values)
        for _ in range(_MINT_ATTEMPTS):
            name = f"{base}{self.store.mint_suffix(prefix)}"
            try:
                return self.service.create_handle(principal, name, values)
            except HandleExists:
                continue
        raise HandleExists(f"could not mint a free handle after {base}")

    def _put_values(self, principal: ValueReference, handle: str,
                    values: tuple[HandleValue, ...], overwrite: bool) -> bool:
        """Add (or, with overwrite, replace) values, all or nothing; True if all were new.
        (Found by fuzzing: a modification then an addition left the modification in place
        when the addition was refused.)"""
        if not overwrite:
            self.service.add_values(principal, handle, values)
            return True
        return self.service.put_values(principal, handle, values)

    # DELETE /api/handles/{handle}

    async def delete_handle(self, request: Request) -> Response:
        handle: str = request.path_params["handle"]
        try:
            query = Query(request.scope["query_string"])
            principal = await self._principal(request, required=True)
            assert principal is not None
            if not handle:
                raise InvalidInput("empty handle", "handle")
            if query.all("index"):
                await self._admin(self.service.remove_values, principal, handle,
                                  query.indexes())
            else:
                await self._admin(self.service.delete_handle, principal, handle)
            return _json(200, {"responseCode": 1, "handle": handle})
        except MillnetError as exc:
            return error_response(exc, handle)

    # GET /api/handles?prefix=

    async def list_handles(self, request: Request) -> Response:
        query = Query(request.scope["query_string"])
        given = query.first("prefix")
        try:
            if given is None:
                raise InvalidInput("empty handle: give /api/handles/{handle} or ?prefix=",
                                   "handle")
            prefix = given[5:] if given.upper().startswith("0.NA/") else given
            page = query.integer("page", -1)
            size = query.integer("pageSize", -1)
            paged = page >= 0 and size >= 0
            if size > self.max_page_size:
                raise InvalidInput(f"pageSize above {self.max_page_size}", "pageSize")
            if page > MAX_PAGE:  # found by review: a huge page overflowed SQLite (500)
                raise InvalidInput(f"page above {MAX_PAGE}", "page")
            principal = await self._principal(request, required=True)
            assert principal is not None
            handles, total = await self._admin(self._list, principal, prefix,
                                               max(page, 0) if paged else 0,
                                               size if paged else self.max_page_size)
        except MillnetError as exc:
            return error_response(exc, given)
        body: dict[str, Any] = {"responseCode": 1, "prefix": given, "totalCount": str(total)}
        if paged:
            body["page"] = page
            body["pageSize"] = size
        body["handles"] = handles
        return _json(200, body)

    def _list(self, principal: ValueReference, prefix: str, page: int,
              size: int) -> tuple[list[str], int]:
        if size == 0:  # Handle.Net: only the count
            self.service.authorize(principal, prefix_handle(prefix), AdminPermission.LIST_HANDLES)
            return [], self.store.count(prefix)
        handles = self.service.list_handles(principal, prefix, page=page, limit=size)
        return handles, self.store.count(prefix)


async def _http_error(request: Request, exc: Exception) -> Response:
    """Unknown endpoints and methods, as Handle.Net answers them: JSON, PROTOCOL_ERROR."""
    status = exc.status_code if isinstance(exc, HTTPException) else 400
    return _json(status, {"responseCode": int(ResponseCode.PROTOCOL_ERROR),
                          "message": f"unknown HTTP API endpoint {request.method} "
                                     f"{request.url.path[:200]}"})


async def _server_error(request: Request, exc: Exception) -> Response:
    return _json(500, {"responseCode": int(ResponseCode.ERROR), "message": "internal error"})


class HotResolution:
    """``GET /api/handles/{handle}`` without query or credentials, answered from the handle's
    stored wire form (:meth:`FastResolver.public_values`) before Starlette routing: the body
    is the one :meth:`HandleApi.get_handle` writes (a test holds them equal). Everything else,
    and every handle the fast reader declines, goes to ``app``."""

    def __init__(self, app: ASGIApp, reader: FastResolver, base: str) -> None:
        self.app, self.reader, self.path = app, reader, f"{base}/handles/"
        self.answered = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET" and not scope["query_string"] \
                and scope["path"].startswith(self.path):
            handle = scope["path"][len(self.path):]
            if handle and not any(k == b"authorization" for k, _ in scope["headers"]):
                values = self.reader.public_values(handle)
                if values is not None:
                    body = _ENCODE({"responseCode": 1, "handle": handle,
                                    "values": [value_json(v) for v in values]})
                    await send({"type": "http.response.start", "status": 200, "headers": [
                        (b"content-length", str(len(body)).encode()),
                        (b"content-type", b"application/json")]})
                    await send({"type": "http.response.body", "body": body})
                    self.answered += 1
                    return
        await self.app(scope, receive, send)


def create_handle_app(store: IdentifierStore, service: IdentifierService, *,
                      path_prefix: str = "/api", max_page_size: int = 10_000,
                      max_body_bytes: int = 1 << 20, inline_reads: bool = False,
                      routes: Sequence[BaseRoute] = (),
                      fast: FastResolver | None = None,
                      offload: Offload | None = None,
                      on_auth_failure: Callable[[str, str, str], None] | None = None,
                      ) -> ASGIApp:
    """The HTTP JSON API over ``service`` (and its ``store``), under ``path_prefix``, with
    ``routes`` appended (other APIs of the identifier node); with a ``fast`` reader, plain
    resolutions take :class:`HotResolution`.

    Without ``page``/``pageSize`` a listing returns at most ``max_page_size`` handles
    (``totalCount`` tells whether there are more). Writes, listings and secret checks run
    in ``offload`` (the node shares one with its native handler and closes it)."""
    offload = offload if offload is not None else Offload()
    api = HandleApi(store, service, max_page_size=max_page_size,
                    max_body_bytes=max_body_bytes, inline_reads=inline_reads, offload=offload)
    base = path_prefix.rstrip("/")
    app = Starlette(exception_handlers={HTTPException: _http_error, 500: _server_error}, routes=[
        Route(f"{base}/handles", api.list_handles, methods=["GET"]),
        Route(f"{base}/handles/{{handle:path}}", api.get_handle, methods=["GET"]),
        Route(f"{base}/handles/{{handle:path}}", api.put_handle, methods=["PUT"]),
        Route(f"{base}/handles/{{handle:path}}", api.delete_handle, methods=["DELETE"]),
        *routes,
    ])
    #: failed HTTP Basic authentications per client host and per principal (authenticate()
    #: reads them)
    app.state.throttle = AuthThrottle()
    app.state.throttle.on_failure = on_auth_failure  # the security monitor's, if any
    app.state.principal_throttle = PrincipalThrottle()
    app.state.offload = offload  # authenticate() and the batch route run there
    return HotResolution(app, fast, base) if fast is not None else app
