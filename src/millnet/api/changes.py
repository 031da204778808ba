"""Configuration changes made through the API as security events (``config.change``): who
(the token), what (rules, sources, assets, tokens, tenants...), which id, and how (created,
replaced, deleted...). An unexpected change is how a stolen admin token shows itself.

Routes call :func:`config_changed` after the change succeeded; without a security monitor
(``app.state.security``) it does nothing. Reporting never blocks (the monitor folds in memory).
"""

from __future__ import annotations

from fastapi import Request

from millnet.api.auth import Caller
from millnet.model.security import EventKind, SecurityEvent, Severity
from millnet.security.base import clip

#: Changes that hand out or take away access weigh more than the plant's configuration.
ACCESS: frozenset[str] = frozenset({"token", "tenant", "identifier_prefixes"})


def config_changed(request: Request, caller: Caller, what: str, action: str, ident: object,
                   *, tenant_id: int | None = None) -> None:
    """Report that ``caller`` did ``action`` (created, replaced, deleted...) to the ``what``
    ``ident``; the event belongs to ``tenant_id`` (the changed object's) or else the caller's
    tenant, so a tenant sees the changes made to its configuration."""
    monitor = getattr(request.app.state, "security", None)
    if monitor is None:
        return
    who = f"token:{caller.token_id}"
    target = clip(f"{what}:{ident}")
    monitor.report(SecurityEvent(
        EventKind.CONFIG_CHANGE, Severity.LOW if what in ACCESS else Severity.INFO,
        clip(f"{what} {ident} {action} by {who} ({caller.role.value})", 500),
        source=who, target=target,
        detail={"object": what, "id": clip(str(ident)), "action": action,
                "role": caller.role.value}),
        tenant_id if tenant_id is not None else caller.tenant_id)
