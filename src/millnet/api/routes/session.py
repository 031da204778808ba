"""``GET /api/v1/whoami``: who the token is, and what this node serves.

The web console asks once after login: it shows the tenant, hides the actions the role cannot
do (the API still refuses them) and shows only the pages of the areas the node serves. A
node-wide token sees the list of tenants to choose from; a tenant token only its own.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from millnet.api.auth import Viewer
from millnet.api.errors import AUTH_ERRORS, responses
from millnet.registry import Registry

router = APIRouter(tags=["tokens"])

#: Area -> the ``app.state`` attribute set when the node serves it.
_AREAS = {"alarms": "alarms", "kpi": "kpi", "rules": "rules", "live": "live",
          "federation": "federation_views", "security": "security", "sources": "sources",
          "commands": "commands"}


class TenantRef(BaseModel):
    id: int
    name: str
    display_name: str | None


class WhoAmI(BaseModel):
    token_id: int
    token_name: str = Field(examples=["olga"])
    role: str = Field(description="viewer, operator or admin", examples=["operator"])
    tenant_id: int | None = Field(description="The token's tenant; null for a node-wide token")
    tenants: list[TenantRef] = Field(description="The tenants the token sees")
    node: str = Field(description="The node's name")
    node_role: str = Field(description="enterprise, secondary or national")
    areas: list[str] = Field(description="What this node serves beyond the asset tree and "
                                         "telemetry: alarms, kpi, rules, live, federation...",
                             examples=[["alarms", "kpi", "live"]])


def _whoami(registry: Registry, token_id: int, tenant_id: int | None,
            ) -> tuple[str, list[TenantRef]]:
    token = registry.get_token(token_id)
    tenants = [registry.get_tenant(tenant_id)] if tenant_id is not None else (
        registry.list_tenants())
    return token.name, [TenantRef(id=t.id, name=t.name, display_name=t.display_name)
                        for t in tenants]


@router.get("/whoami", response_model=WhoAmI, summary="The caller's token, role and tenants",
            responses=responses(*AUTH_ERRORS))
async def whoami(request: Request, caller: Viewer) -> WhoAmI:
    ctx = request.app.state.millnet
    name, tenants = await run_in_threadpool(_whoami, ctx.registry, caller.token_id,
                                            caller.tenant_id)
    areas = [area for area, attr in _AREAS.items()
             if getattr(request.app.state, attr, None) is not None]
    return WhoAmI(token_id=caller.token_id, token_name=name, role=caller.role.value,
                  tenant_id=caller.tenant_id, tenants=tenants,
                  node=getattr(ctx, "node_name", ""), node_role=getattr(ctx, "role", ""),
                  areas=areas)
