"""Operations: ``/healthz`` (no auth) and Prometheus ``/metrics`` (no auth)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field

from millnet.api.context import ApiContext, Ctx

log = logging.getLogger("millnet.api")

router = APIRouter(tags=["operations"])


class Check(BaseModel):
    ok: bool
    detail: str | None = Field(default=None, description="Why the check failed")


class Health(BaseModel):
    status: str = Field(description="``ok`` when every check passed, else ``degraded``",
                        examples=["ok"])
    node: str = Field(description="Node name")
    role: str = Field(description="Node role: enterprise, secondary or national")
    checks: dict[str, Check] = Field(description="One entry per dependency: registry, telemetry")


def _check(probe: Callable[[], object], what: str) -> Check:
    try:
        probe()
    # A health probe reports any failure of its dependency instead of raising; logged in full.
    except Exception as exc:
        log.warning("health check of %s failed", what, exc_info=True)
        return Check(ok=False, detail=f"{type(exc).__name__}")
    return Check(ok=True)


def health_of(ctx: ApiContext) -> Health:
    checks = {
        "registry": _check(ctx.registry.list_tenants, "registry"),
        # A range query that finds nothing: a real round trip to the database, but cheap (stats()
        # would count every row).
        "telemetry": _check(lambda: ctx.store.query_range([0], 0, 1_000, limit=1), "telemetry"),
    }
    status = "ok" if all(c.ok for c in checks.values()) else "degraded"
    return Health(status=status, node=ctx.node_name, role=ctx.role, checks=checks)


@router.get(
    "/healthz", response_model=Health, summary="Liveness and dependency health",
    responses={503: {"model": Health, "description": "A dependency is unreachable"}})
def healthz(ctx: Ctx, response: Response) -> Health:
    health = health_of(ctx)
    if health.status != "ok":
        response.status_code = 503
    return health


@router.get(
    "/metrics", summary="Prometheus metrics (ingest counters, queue depth, write latency)",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}},
                     "description": "Prometheus text exposition format"}})
def metrics(ctx: Ctx) -> Response:
    return Response(generate_latest(ctx.metrics.registry), media_type=CONTENT_TYPE_LATEST)
