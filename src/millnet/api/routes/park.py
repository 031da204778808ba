"""The industrial park's view (issue 15, docs/park.md): its member enterprises side by side.

Mounted on a secondary node with ``park.enabled`` (``mount``); node-wide viewers only (the
figures span enterprises).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, FastAPI, Query, Request
from sqlalchemy import Engine

from millnet.api.auth import Viewer
from millnet.api.errors import AUTH_ERRORS, responses
from millnet.api.params import parse_time
from millnet.errors import NotFound, PermissionDenied
from millnet.park.store import members

if TYPE_CHECKING:
    from millnet.monitoring import Monitoring

API_PREFIX = "/api/v1"
router = APIRouter(tags=["park"])
TimeQuery = Annotated[str | None, Query(max_length=40, description="ISO 8601 or epoch ms")]


def mount(app: FastAPI, monitoring: Monitoring) -> None:
    if monitoring.park is not None:
        app.state.park = monitoring.park
        app.include_router(router, prefix=API_PREFIX)


def _time(raw: str, field: str) -> datetime:
    return datetime.fromtimestamp(parse_time(raw, field) / 1e9, UTC)


@router.get("/park/members", response_model=dict[str, Any],
            summary="Each member enterprise's output, energy, energy per good part and OEE "
                    "over the periods (shift instances) that start in the window",
            responses=responses(*AUTH_ERRORS, 404))
async def park_members(request: Request, caller: Viewer, since: TimeQuery = None,
                       until: TimeQuery = None) -> dict[str, Any]:
    if not caller.node_wide:
        raise PermissionDenied("the park's view is for node-wide tokens")
    engine: Engine | None = getattr(request.app.state, "park", None)
    if engine is None:
        raise NotFound("this node is no park")
    end = _time(until, "until") if until else datetime.now(UTC)
    start = _time(since, "since") if since else end - timedelta(days=1)
    found = await asyncio.to_thread(members, engine, start, end)
    return {"since": start.isoformat(), "until": end.isoformat(),
            "members": [m.json() for m in found]}
