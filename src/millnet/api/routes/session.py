"""``GET /api/v1/me``: who the calling token is, and what this node serves.

The web console asks once after login: it shows the token's name and tenant, hides the actions
the role cannot do (the API still refuses them) and shows only the pages of the areas the node
serves. A node-wide token sees the list of tenants to choose from; a tenant token its own.
Served by the platform's API and by a national node's (``monitoring_app``).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from millnet.api.auth import Viewer
from millnet.api.errors import AUTH_ERRORS, responses
from millnet.api.schemas import Me, TenantRef
from millnet.registry import Registry

router = APIRouter(tags=["tenants"])

#: Area -> the ``app.state`` attribute set when the node serves it.
_AREAS = {"alarms": "alarms", "kpi": "kpi", "rules": "rules", "live": "live",
          "federation": "federation_views", "security": "security", "sources": "sources",
          "commands": "commands", "identifiers": "identifiers"}


def _token_and_tenants(registry: Registry, token_id: int, tenant_id: int | None,
                       ) -> tuple[str, list[TenantRef]]:
    token = registry.get_token(token_id)
    tenants = [registry.get_tenant(tenant_id)] if tenant_id is not None else (
        registry.list_tenants())
    return token.name, [TenantRef(id=t.id, name=t.name, display_name=t.display_name)
                        for t in tenants]


@router.get("/me", response_model=Me, summary="The calling token: name, tenant, role, and "
                                              "what the node serves",
            responses=responses(*AUTH_ERRORS))
async def me(request: Request, caller: Viewer) -> Me:
    ctx = request.app.state.millnet
    name, tenants = await run_in_threadpool(_token_and_tenants, ctx.registry, caller.token_id,
                                            caller.tenant_id)
    areas = [area for area, attr in _AREAS.items()
             if getattr(request.app.state, attr, None) is not None]
    if getattr(ctx, "store", None) is not None:
        areas.insert(0, "assets")  # the platform: the asset tree, devices, telemetry
    if "federation" in areas and getattr(ctx, "role", "") in ("secondary", "national"):
        areas.append("situation")  # the enterprises under this node, side by side
    return Me(token_id=caller.token_id, token_name=name, tenant_id=caller.tenant_id,
              role=caller.role, tenants=tenants, node=getattr(ctx, "node_name", ""),
              node_role=getattr(ctx, "role", ""), areas=areas)
