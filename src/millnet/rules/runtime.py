"""What the API asks of the running rule engine (the node's engine implements it)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class RuleStatus:
    """How one rule runs: devices bound, conditions active, evaluations and run-time errors
    (a rule that fails is isolated and its last error kept here)."""

    rule_id: int
    bindings: int
    active: int
    evaluations: int
    errors: int
    last_error: str | None
    last_error_at_ns: int | None
    detail: Mapping[str, object] = field(default_factory=dict)


class RuleRuntime(Protocol):
    def changed(self, tenant_id: int) -> None:
        """The rules of a tenant changed (created, replaced, deleted): bind them again."""
        ...

    def status(self, rule_id: int) -> RuleStatus | None:
        """How a rule runs; None when the engine does not run it (yet)."""
        ...
