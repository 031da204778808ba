"""The administrative operations of the native protocol carried out through the service, as
an authenticated principal: CREATE_HANDLE (OW, MINT), DELETE_HANDLE, ADD/REMOVE/MODIFY_VALUE
and LIST_HANDLE. Blocking (writes, listings, template checks): :class:`~.native.NativeHandler`
runs them in its offload's worker threads, never on the event loop."""

from __future__ import annotations

import logging

from millnet.errors import InvalidInput
from millnet.identifiers.core.delegation import GLOBAL_PREFIX
from millnet.identifiers.core.errors import HandleExists
from millnet.identifiers.core.service import IdentifierService
from millnet.protocols.handle import (
    AddValueRequest,
    CreateHandleRequest,
    CreateHandleResponse,
    DeleteHandleRequest,
    GenericResponse,
    ListHandlesRequest,
    ListHandlesResponse,
    Message,
    ModifyValueRequest,
    OpFlag,
    RemoveValueRequest,
    ValueReference,
)
from millnet.protocols.handle.responses import Body

log = logging.getLogger("millnet.identifiers")

AdminBody = (CreateHandleRequest | DeleteHandleRequest | AddValueRequest | RemoveValueRequest
             | ModifyValueRequest | ListHandlesRequest)
ADMIN_TYPES = (CreateHandleRequest, DeleteHandleRequest, AddValueRequest, RemoveValueRequest,
               ModifyValueRequest, ListHandlesRequest)
_OW, _MINT = int(OpFlag.OW), int(OpFlag.MINT)
_MINT_ATTEMPTS = 3


def administer(service: IdentifierService, who: ValueReference, original: Message,
               body: AdminBody, *, list_batch: int, max_listed: int) -> list[Body]:
    """The answer bodies of ``original`` carried out as ``who`` (several for a LIST_HANDLE of
    more than ``list_batch`` handles, up to ``max_listed``); the service's errors raise."""
    flags = original.header.opflags
    if isinstance(body, CreateHandleRequest):
        if flags & _MINT:
            return [CreateHandleResponse(_mint(service, who, body))]
        service.create_handle(who, body.handle, body.values, overwrite=bool(flags & _OW))
        return [CreateHandleResponse()]
    if isinstance(body, DeleteHandleRequest):
        service.delete_handle(who, body.handle)
    elif isinstance(body, AddValueRequest):
        service.add_values(who, body.handle, body.values)
    elif isinstance(body, RemoveValueRequest):
        service.remove_values(who, body.handle, body.indexes)
    elif isinstance(body, ModifyValueRequest):
        service.modify_values(who, body.handle, body.values)
    else:
        return _list(service, who, listed_prefix(body.handle), list_batch, max_listed)
    return [GenericResponse(original.opcode)]


def _mint(service: IdentifierService, who: ValueReference, body: CreateHandleRequest) -> str:
    """MINT: the handle sent is ``prefix/`` or ``prefix/stem``; the minted suffix is
    appended to the stem (Handle.Net appends its suffix to what the client sent)."""
    prefix, _, stem = body.handle.partition("/")
    if not stem:
        return service.mint_handle(who, prefix, body.values)
    for _ in range(_MINT_ATTEMPTS):
        suffix = service.store.mint_suffix(prefix)
        try:
            return service.create_handle(who, f"{prefix}/{stem}{suffix}", body.values)
        except HandleExists:
            continue
    raise HandleExists(f"could not mint a free suffix under {body.handle}")


def _list(service: IdentifierService, who: ValueReference, prefix: str, batch: int,
          max_listed: int) -> list[Body]:
    batches: list[Body] = []
    listed = 0
    while listed < max_listed:
        handles = service.list_handles(who, prefix, page=len(batches), limit=batch)
        if handles or not batches:
            batches.append(ListHandlesResponse(tuple(handles)))
        listed += len(handles)
        if len(handles) < batch:
            break
    else:
        log.warning("LIST_HANDLE of %s stopped after %d handles", prefix, max_listed)
    return batches


def listed_prefix(handle: str) -> str:
    """LIST_HANDLE names the prefix record ``0.NA/<prefix>``; a bare prefix is accepted."""
    head, slash, tail = handle.partition("/")
    if not slash:
        return head
    if head.upper() == GLOBAL_PREFIX and tail:
        return tail
    raise InvalidInput(f"LIST_HANDLE names a prefix record 0.NA/<prefix>, not {handle}",
                       field="handle")


__all__ = ["ADMIN_TYPES", "AdminBody", "administer", "listed_prefix"]
