"""Rules (issue 12; docs/rules.md): list, read, create, replace, delete, validate.

Any token reads its tenant's rules; creating, replacing and deleting them needs an admin token
(a rule decides which alarms operators see, so it is configuration, like tokens and sources).
A rule's body is its flat form, exactly as in a rule file; a wrong one answers 400 naming the
field (``above``, ``applies_to.devices[0]``). Rules loaded from files are read-only here: 409
naming the file. After each change the running engine is told (``changed(tenant_id)``), on the
event loop. A node-wide token names the tenant with ``tenant_id`` (403 otherwise); another
tenant's rule answers 404.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from millnet.api.auth import Admin, Caller, Viewer
from millnet.api.changes import config_changed
from millnet.api.context import ApiContext, Ctx
from millnet.api.errors import AUTH_ERRORS, responses
from millnet.api.params import INT32_MAX, ObjectId
from millnet.api.scope import tenant_of_request
from millnet.errors import Conflict, InvalidInput, QuotaExceeded
from millnet.rules.definitions import parse_rule
from millnet.rules.runtime import RuleRuntime, RuleStatus
from millnet.rules.store import RuleStore, StoredRule

router = APIRouter(tags=["rules"])

RULE_EXAMPLE: dict[str, Any] = {
    "name": "spindle-hot", "kind": "threshold", "priority": "high",
    "point": "Spindle/Temperature", "above": 80, "deadband": 2, "on_delay": "5s",
    "message": "{device}: spindle at {value:.1f} °C (limit {limit})",
    "applies_to": {"asset_type": "cnc", "branch": "Acme/Suzhou/Machining"},
    "suppress_when": "State == 0", "notify": ["shift-leads"],
}
RuleBody = Annotated[dict[str, Any], Body(
    description="The rule's flat form, as in a rule file (docs/rules.md); unknown keys are "
                "refused naming the closest known one", examples=[RULE_EXAMPLE])]
TenantQuery = Annotated[int | None, Query(
    ge=1, le=INT32_MAX, description="The tenant: a tenant token's own by default; a node-wide "
                                    "token must name one (403 otherwise)")]


class RuleStatusOut(BaseModel):
    bindings: int = Field(description="Devices the rule is bound to")
    active: int = Field(description="Devices whose condition is active")
    evaluations: int
    errors: int = Field(description="Run-time errors (a division by zero, a missing point)")
    last_error: str | None
    last_error_at_ns: int | None
    detail: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def of(cls, s: RuleStatus) -> RuleStatusOut:
        return cls(bindings=s.bindings, active=s.active, evaluations=s.evaluations,
                   errors=s.errors, last_error=s.last_error,
                   last_error_at_ns=s.last_error_at_ns, detail=dict(s.detail))


class RuleOut(BaseModel):
    id: int
    tenant_id: int
    name: str
    kind: str
    enabled: bool
    origin: str = Field(description="api: defined through this API; file: from a rule file "
                                    "(read-only here)", examples=["api"])
    file: str | None = Field(description="The rule file, for origin file")
    created_at: datetime
    updated_at: datetime
    created_by: int | None = Field(description="The API token that created it")
    definition: dict[str, Any] = Field(description="The canonical flat form",
                                       examples=[RULE_EXAMPLE])
    status: RuleStatusOut | None = Field(
        default=None, description="How the rule runs (GET of one rule, on a running node)")

    @classmethod
    def of(cls, s: StoredRule, status: RuleStatus | None = None) -> RuleOut:
        return cls(id=s.id, tenant_id=s.tenant_id, name=s.rule.name, kind=s.rule.kind.value,
                   enabled=s.rule.enabled, origin=s.origin, file=s.file,
                   created_at=s.created_at, updated_at=s.updated_at, created_by=s.created_by,
                   definition=s.rule.to_dict(),
                   status=None if status is None else RuleStatusOut.of(status))


class RuleProblem(BaseModel):
    field: str | None = Field(examples=["above"])
    message: str = Field(examples=["must be a number (got 'hot')"])


class ValidationOut(BaseModel):
    valid: bool
    rule: dict[str, Any] | None = Field(description="The canonical form, when valid")
    errors: list[RuleProblem]


# ``{rule_id:int}``: /rules/validate is no rule id, so other methods on it answer 405 (not a
# 422 from the id's parsing); the document shows ``{rule_id}``.


def _store(request: Request) -> RuleStore:
    store: RuleStore = request.app.state.rules
    return store


def _changed(request: Request, tenant_id: int) -> None:
    runtime: RuleRuntime | None = getattr(request.app.state, "rule_runtime", None)
    if runtime is not None:
        runtime.changed(tenant_id)


def _create(ctx: ApiContext, store: RuleStore, caller: Caller, tenant_id: int | None,
            body: dict[str, Any]) -> StoredRule:
    rule = parse_rule(body)
    tenant = tenant_of_request(ctx, caller, tenant_id)
    try:
        return store.create(tenant, rule, created_by=caller.token_id)
    except QuotaExceeded as exc:
        raise Conflict(str(exc)) from exc


@router.get("/rules", response_model=list[RuleOut], summary="The tenant's rules",
            responses=responses(*AUTH_ERRORS, 404))
async def list_rules(request: Request, ctx: Ctx, caller: Viewer,
                     tenant_id: TenantQuery = None) -> list[RuleOut]:
    def work() -> list[StoredRule]:
        return _store(request).list(tenant_of_request(ctx, caller, tenant_id))

    return [RuleOut.of(s) for s in await run_in_threadpool(work)]


@router.get("/rules/{rule_id:int}", response_model=RuleOut,
            summary="One rule, with how it runs", responses=responses(*AUTH_ERRORS, 404))
async def get_rule(request: Request, caller: Viewer, rule_id: ObjectId) -> RuleOut:
    stored = await run_in_threadpool(_store(request).get, rule_id, tenant_id=caller.tenant_id)
    runtime: RuleRuntime | None = getattr(request.app.state, "rule_runtime", None)
    return RuleOut.of(stored, runtime.status(stored.id) if runtime is not None else None)


@router.post("/rules", response_model=RuleOut, status_code=201,
             summary="Create a rule (admins)", responses=responses(*AUTH_ERRORS, 400, 404, 409))
async def create_rule(request: Request, ctx: Ctx, caller: Admin, body: RuleBody,
                      tenant_id: TenantQuery = None) -> RuleOut:
    stored = await run_in_threadpool(_create, ctx, _store(request), caller, tenant_id, body)
    _changed(request, stored.tenant_id)
    config_changed(request, caller, "rule", "created", stored.id, tenant_id=stored.tenant_id)
    return RuleOut.of(stored)


@router.put("/rules/{rule_id:int}", response_model=RuleOut,
            summary="Replace a rule (admins; not a file's rule)",
            responses=responses(*AUTH_ERRORS, 400, 404, 409))
async def replace_rule(request: Request, caller: Admin, rule_id: ObjectId,
                       body: RuleBody) -> RuleOut:
    rule = parse_rule(body)
    stored = await run_in_threadpool(_store(request).update, rule_id, rule,
                                     tenant_id=caller.tenant_id)
    _changed(request, stored.tenant_id)
    config_changed(request, caller, "rule", "replaced", rule_id, tenant_id=stored.tenant_id)
    return RuleOut.of(stored)


@router.delete("/rules/{rule_id:int}", response_model=RuleOut,
               summary="Delete a rule (admins; not a file's rule); what it was",
               responses=responses(*AUTH_ERRORS, 404, 409))
async def delete_rule(request: Request, caller: Admin, rule_id: ObjectId) -> RuleOut:
    stored = await run_in_threadpool(_store(request).delete, rule_id,
                                     tenant_id=caller.tenant_id)
    _changed(request, stored.tenant_id)
    config_changed(request, caller, "rule", "deleted", rule_id, tenant_id=stored.tenant_id)
    return RuleOut.of(stored)


@router.post("/rules/validate", response_model=ValidationOut,
             summary="Check a rule without storing it: its canonical form or its error",
             responses=responses(*AUTH_ERRORS))
async def validate_rule(caller: Viewer, body: RuleBody) -> ValidationOut:
    try:
        rule = parse_rule(body)
    except InvalidInput as exc:
        message = str(exc)
        if exc.field and message.startswith(f"{exc.field}: "):
            message = message[len(exc.field) + 2:]
        return ValidationOut(valid=False, rule=None,
                             errors=[RuleProblem(field=exc.field, message=message)])
    return ValidationOut(valid=True, rule=rule.to_dict(), errors=[])
