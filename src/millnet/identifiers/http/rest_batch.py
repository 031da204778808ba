"""Batch registration over HTTP: ``POST /api/batch/handles`` (a millnet extension beside the
Handle.Net-compatible ``/api/handles``).

Body: ``{"items": [{"handle": "88.100.5/PUMP-1", "values": [...]}, ...]}`` with at most
10,000 items. Values are written as in ``PUT /api/handles`` (Handle.Net JSON). An item may
instead (or also) give ``"template"`` (a template handle or built-in name) and ``"data"``
(a JSON object): they become ``MN_TEMPLATE`` and ``MN_DATA`` values, validated against the
template. All or nothing: one bad item and nothing is stored; the error names it
(``items[7].values[1].data: ...``). Authentication: HTTP Basic, as for ``/api/handles``.

Answers ``201 {"responseCode": 1, "handles": [...]}`` with the canonical names in order;
errors carry the Handle response code and the HTTP status of the Handle API (400 invalid,
401/403 authentication and rights, 409 an existing handle, 413 more than 10,000 items).
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from millnet.errors import InvalidInput, MillnetError
from millnet.identifiers.core.offload import Offload
from millnet.identifiers.core.service import IdentifierService
from millnet.identifiers.core.store import MAX_BATCH
from millnet.identifiers.hierarchy.templates import DATA_TYPE, TEMPLATE_TYPE
from millnet.identifiers.http.basic_auth import authenticate
from millnet.identifiers.http.rest import error_response, read_json
from millnet.identifiers.http.rest_json import parse_value
from millnet.protocols.handle import HandleValue

MAX_BATCH_BODY = 32 << 20


def parse_item(raw: object, i: int) -> tuple[str, tuple[HandleValue, ...]]:
    """(handle, values) of one batch item; InvalidInput naming ``items[i]...``."""
    where = f"items[{i}]"
    if not isinstance(raw, dict):
        raise InvalidInput("expected an object with handle and values", where)
    handle = raw.get("handle")
    if not isinstance(handle, str) or not handle:
        raise InvalidInput("missing or not a string", f"{where}.handle")
    listed = raw.get("values", [])
    if not isinstance(listed, list):
        raise InvalidInput("expected an array of values", f"{where}.values")
    values = [parse_value(v, f"{where}.values[{j}]") for j, v in enumerate(listed)]
    if "template" in raw or "data" in raw:
        template, data = raw.get("template"), raw.get("data")
        if not isinstance(template, str) or not template:
            raise InvalidInput("a template handle or built-in name", f"{where}.template")
        if not isinstance(data, dict):
            raise InvalidInput("expected a JSON object", f"{where}.data")
        free = max((v.index for v in values), default=0) + 1
        values += [HandleValue(free, TEMPLATE_TYPE, template.encode()),
                   HandleValue(free + 1, DATA_TYPE,
                               json.dumps(data, ensure_ascii=False,
                                          separators=(",", ":")).encode())]
    if not values:
        raise InvalidInput("an item needs values, or a template and data", where)
    return handle, tuple(values)


def batch_routes(service: IdentifierService, base: str = "/api") -> list[Route]:
    async def register(request: Request) -> Response:
        try:
            principal = await authenticate(request, service)
            body: Any = await read_json(request, MAX_BATCH_BODY)
            raw_items = body.get("items") if isinstance(body, dict) else None
            if not isinstance(raw_items, list):
                raise InvalidInput('expected {"items": [...]}', "items")
            if len(raw_items) > MAX_BATCH:
                return Response(json.dumps({
                    "responseCode": 4, "message": f"items: {len(raw_items)} handles; at most "
                                                  f"{MAX_BATCH} per call"}),
                    413, media_type="application/json")
            items = [parse_item(raw, i) for i, raw in enumerate(raw_items)]
            offload: Offload = request.app.state.offload
            created = await offload.run(service.create_many, principal, items)
        except MillnetError as exc:
            return error_response(exc)
        return Response(json.dumps({"responseCode": 1, "handles": created}), 201,
                        media_type="application/json")

    return [Route(f"{base.rstrip('/')}/batch/handles", register, methods=["POST"])]
