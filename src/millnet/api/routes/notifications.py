"""Notification targets (issue 12) and how their deliveries go: node-wide admins only.

Targets are the node's configuration (``[[notify.targets]]``), shared by every tenant, so only a
node-wide admin sees them. Secrets never appear, nor URL paths and queries (a webhook URL may
carry a token): a target's ``destination`` is its scheme, host and port.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from millnet.api.auth import Admin
from millnet.api.errors import AUTH_ERRORS, responses
from millnet.errors import PermissionDenied
from millnet.notify.service import Notifier, TargetStatus

router = APIRouter(tags=["notifications"])


class TargetOut(BaseModel):
    name: str
    kind: Literal["webhook", "smtp", "mqtt"]
    destination: str = Field(description="scheme://host:port (no path, no credentials)")
    events: list[str] = Field(description="The alarm events this target gets")
    min_priority: str = Field(description="The least urgent priority it gets")
    default: bool = Field(description="Gets the notices of rules that name no target")
    delivered: int = Field(description="Since the node started")
    failed: int = Field(description="Given up since the node started (permanent refusals, "
                                    "attempts or age exhausted, dropped)")
    dropped: int = Field(description="Given up because the target's outbox was full")
    retried: int = Field(description="Failed attempts that were scheduled again")
    pending: int = Field(description="Not delivered yet (in flight included)")
    in_flight: int
    consecutive_failures: int
    last_error: str | None
    last_error_at: float | None = Field(description="Unix seconds")
    last_success_at: float | None = Field(description="Unix seconds")

    @classmethod
    def of(cls, s: TargetStatus) -> TargetOut:
        return cls(name=s.name, kind=s.kind, destination=s.destination,  # type: ignore[arg-type]
                   events=list(s.events), min_priority=s.min_priority, default=s.default,
                   delivered=s.delivered, failed=s.failed, dropped=s.dropped,
                   retried=s.retried, pending=s.pending, in_flight=s.in_flight,
                   consecutive_failures=s.consecutive_failures, last_error=s.last_error,
                   last_error_at=s.last_error_at, last_success_at=s.last_success_at)


@router.get("/notifications/targets", response_model=list[TargetOut],
            summary="Notification targets and their delivery status (node-wide admins)",
            responses=responses(*AUTH_ERRORS))
async def list_targets(request: Request, caller: Admin) -> list[TargetOut]:
    if not caller.node_wide:
        raise PermissionDenied("notification targets are the node's: node-wide admins only")
    notifier: Notifier = request.app.state.notifier
    return [TargetOut.of(s) for s in notifier.status()]
