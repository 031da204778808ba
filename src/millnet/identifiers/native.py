"""The native-protocol request handler: decoded requests in, responses out.

Transport-free (the servers in :mod:`.transport` call it per message). Today it answers what
needs no authentication: RESOLUTION (index and type filters; only values with public read, as
for any unauthenticated client) with a SERVICE_REFERRAL where another node is responsible, and
GET_SITEINFO. Administrative operations answer AUTHEN_NEEDED until the challenge-response
session lands.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from millnet.errors import MillnetError
from millnet.identifiers.delegation import Referral
from millnet.identifiers.errors import error_code
from millnet.identifiers.service import IdentifierService
from millnet.protocols.handle import (
    ErrorResponse,
    GetSiteInfoRequest,
    GetSiteInfoResponse,
    Message,
    ResolutionRequest,
    ResolutionResponse,
    ResponseCode,
    ServiceReferral,
    SiteInfo,
    make_response,
)
from millnet.protocols.handle.responses import Body


class NativeHandler:
    """``handler(message, peer) -> [response]`` over an :class:`IdentifierService`."""

    def __init__(self, service: IdentifierService, site: SiteInfo,
                 clock: Callable[[], float] = time.time) -> None:
        self._service = service
        self._site = site
        self._clock = clock

    def __call__(self, msg: Message, peer: tuple[str, int]) -> list[Message]:
        body = msg.body
        try:
            reply = self._answer(msg.opcode, body)
        except MillnetError as exc:
            reply = ErrorResponse(msg.opcode, error_code(exc), str(exc))
        return [make_response(msg, reply, now=int(self._clock()))]

    def _answer(self, opcode: int, body: Body) -> Body:
        if isinstance(body, ResolutionRequest):
            where = self._service.locate(body.handle)
            if isinstance(where, Referral):
                return ServiceReferral(opcode, body.handle, where.values)
            values = self._service.resolve(body.handle, body.indexes, body.types,
                                           public_only=True)
            return ResolutionResponse(body.handle, values)
        if isinstance(body, GetSiteInfoRequest):
            return GetSiteInfoResponse(self._site)
        return ErrorResponse(opcode, ResponseCode.AUTHEN_NEEDED,
                             "administrative operations need authentication")
