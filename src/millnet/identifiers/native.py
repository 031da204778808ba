"""The native-protocol request handler: decoded requests in, responses out.

Transport-free (the servers in :mod:`.transport` call it per message). Today it answers what
needs no authentication: RESOLUTION (index and type filters; values without public read are
withheld) and GET_SITEINFO. Administrative operations answer AUTHEN_NEEDED until the
challenge-response session lands; unknown operations answer OPERATION_DENIED.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from millnet.errors import MillnetError
from millnet.identifiers.errors import error_code
from millnet.identifiers.store import IdentifierStore
from millnet.protocols.handle import (
    ErrorResponse,
    GetSiteInfoRequest,
    GetSiteInfoResponse,
    Message,
    Permission,
    ResolutionRequest,
    ResolutionResponse,
    ResponseCode,
    SiteInfo,
    make_response,
)
from millnet.protocols.handle.responses import Body

_PUBLIC_READ = int(Permission.PUBLIC_READ)


class NativeHandler:
    """``handler(message, peer) -> [response]`` over an :class:`IdentifierStore`."""

    def __init__(self, store: IdentifierStore, site: SiteInfo,
                 clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._site = site
        self._clock = clock

    def __call__(self, msg: Message, peer: tuple[str, int]) -> list[Message]:
        now = int(self._clock())
        body = msg.body
        try:
            if isinstance(body, ResolutionRequest):
                values = self._store.get(body.handle, body.indexes, body.types)
                public = tuple(v for v in values if v.permissions & _PUBLIC_READ)
                reply: Body = ResolutionResponse(body.handle, public)
            elif isinstance(body, GetSiteInfoRequest):
                reply = GetSiteInfoResponse(self._site)
            else:
                reply = ErrorResponse(msg.opcode, ResponseCode.AUTHEN_NEEDED,
                                      "administrative operations need authentication")
        except MillnetError as exc:
            reply = ErrorResponse(msg.opcode, error_code(exc), str(exc))
        return [make_response(msg, reply, now=now)]
