"""What the security store takes and gives: folded reports, stored events, filters, counts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from millnet.errors import InvalidInput
from millnet.model.security import DetailValue, SecurityEvent, Severity

Status = Literal["open", "acknowledged", "closed"]
#: What a report is folded under, in memory and in the store.
FoldKey = tuple[int | None, str, str, str]  # tenant_id, kind, source, target

_KIND_PREFIX_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_.")


@dataclass(slots=True)
class Fold:
    """Reports of one key gathered before a write: the first and the latest event, how many
    occurrences they stand for, and the highest severity among them."""

    tenant_id: int | None
    first: SecurityEvent
    last: SecurityEvent
    count: int
    severity: Severity

    @classmethod
    def of(cls, event: SecurityEvent, tenant_id: int | None, count: int) -> Fold:
        return cls(tenant_id, event, event, count, event.severity)

    @property
    def key(self) -> FoldKey:
        return (self.tenant_id, self.first.kind, self.first.source, self.first.target)

    def add(self, event: SecurityEvent, count: int) -> None:
        self.count += count
        self.severity = max(self.severity, event.severity)
        if event.occurred_at >= self.last.occurred_at:
            self.last = event
        if event.occurred_at < self.first.occurred_at:
            self.first = event

    def merge(self, other: Fold) -> None:
        """Take in another fold of the same key."""
        self.add(other.first, other.count)
        if other.last.occurred_at >= self.last.occurred_at:
            self.last = other.last
        self.severity = max(self.severity, other.severity)


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """One row of ``security_events``: a folded event, its count and its handling."""

    id: int
    tenant_id: int | None
    kind: str
    severity: Severity
    summary: str
    source: str
    target: str
    first_seen: datetime
    last_seen: datetime
    detail: dict[str, DetailValue]
    count: int
    status: Status
    acked_by: str | None
    acked_at: datetime | None
    ack_comment: str | None


@dataclass(frozen=True, slots=True)
class EventQuery:
    """Filters of a listing. ``tenant_ids`` None: every tenant; ``node_wide``: include the
    node-wide events (tenant_id null). ``since``/``until`` select events seen in that period
    (last_seen at or after ``since``, first_seen before ``until``)."""

    kind_prefix: str | None = None
    min_severity: Severity = Severity.INFO
    since: datetime | None = None
    until: datetime | None = None
    source: str | None = None
    status: Status | None = None
    tenant_ids: tuple[int, ...] | None = None
    node_wide: bool = True

    def __post_init__(self) -> None:
        if self.kind_prefix is not None:
            check_kind_prefix(self.kind_prefix)
        if self.tenant_ids is not None and not self.tenant_ids and not self.node_wide:
            raise InvalidInput("the query selects no tenant at all", "tenant_id")

    @classmethod
    def for_caller(cls, caller_tenant: int | None, tenant_id: int | None,
                   **filters: object) -> EventQuery:
        """A tenant caller sees its own tenant's events, never node-wide ones; a node-wide
        caller every event, or one tenant's when it names one."""
        scope = caller_tenant if caller_tenant is not None else tenant_id
        if scope is None:
            return cls(**filters)  # type: ignore[arg-type]
        return cls(tenant_ids=(scope,), node_wide=False, **filters)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class BucketCount:
    """Events of one kind and severity first seen in one time bucket; ``occurrences`` sums
    their counts (a folded brute force is one event and many occurrences)."""

    start: datetime
    kind: str
    severity: Severity
    events: int
    occurrences: int


def check_kind_prefix(prefix: str) -> str:
    """A kind or the start of one (``auth``, ``auth.brute``): letters, digits, ``_`` and ``.``."""
    if not prefix or len(prefix) > 132 or not set(prefix) <= _KIND_PREFIX_CHARS:
        raise InvalidInput("a kind prefix is 1-132 characters of a-z, 0-9, '_' and '.'", "kind")
    return prefix
