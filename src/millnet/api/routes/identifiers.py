"""``GET /api/v1/identifiers/{handle}``: resolve an identifier through the node's own
identifier service, for the web console (issue 14).

The Handle.Net-style REST API (``/api/handles``) listens on its own port
(``identifiers.http_port``) without bearer tokens; the console may only call its own origin
(``connect-src 'self'``), so the platform's API resolves on its behalf: read-only, public values
only, any role, the same answer shape as ``/api/handles`` (index, type, data). Mounted when the
node runs the identifier service beside the platform (``services.serving`` hands the service to
the platform before its API starts); absent, the console hides its identifier page.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import msgspec
from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, Field

from millnet.api.auth import Viewer
from millnet.api.errors import AUTH_ERRORS, responses
from millnet.errors import NotFound
from millnet.identifiers.core.errors import NotResponsible
from millnet.identifiers.core.service import IdentifierService
from millnet.identifiers.http.rest_json import value_json
from millnet.protocols.handle import normalize_handle

router = APIRouter(tags=["identifiers"])


class ResolvedValue(BaseModel):
    index: int = Field(examples=[1])
    type: str = Field(examples=["URL"])
    data: dict[str, Any] = Field(description="format (string, base64, admin, site, vlist...) "
                                             "and value, as /api/handles writes them",
                                 examples=[{"format": "string", "value": "https://x.example"}])
    ttl: int | str
    timestamp: str | None = None


class Resolved(BaseModel):
    handle: str = Field(examples=["88.100.5/PUMP-1"])
    values: list[ResolvedValue]


def _resolve(service: IdentifierService, handle: str) -> Resolved:
    canonical = normalize_handle(handle)
    try:
        values = service.resolve(canonical)
    except NotResponsible:
        raise NotFound(f"{handle} is not served by this node") from None
    return Resolved(handle=handle, values=[
        ResolvedValue.model_validate(msgspec.to_builtins(value_json(v))) for v in values])


@router.get("/identifiers/{handle:path}", response_model=Resolved,
            summary="Resolve an identifier held by this node (public values)",
            responses=responses(*AUTH_ERRORS, 400, 404))
async def resolve(request: Request, caller: Viewer,
                  handle: Annotated[str, Path(max_length=2048, examples=["88.100.5/PUMP-1"])],
                  ) -> Resolved:
    service: IdentifierService = request.app.state.identifiers
    return await asyncio.to_thread(_resolve, service, handle)
