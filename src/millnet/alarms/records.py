"""The records the alarm store keeps and the service holds, and how a lifecycle step changes
an alarm's record (pure)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from millnet.alarms.lifecycle import Status, Step
from millnet.model.alarms import AlarmState, ConditionChange, Priority

Key = tuple[int, int]  # (rule_id, asset_id): what names an alarm
TEXT_MAX = 1000


def bounded(text: str | None) -> str | None:
    """Operator text as the audit keeps it: bounded, NUL replaced (PostgreSQL text has none)."""
    return None if text is None else text[:TEXT_MAX].replace("\x00", "\ufffd")


@dataclass(frozen=True, slots=True)
class AlarmRecord:
    """One alarm: a rule's condition for one asset, its state and latest actions."""

    id: int  # 0 until first stored
    tenant_id: int
    rule_id: int
    asset_id: int
    rule_name: str
    priority: Priority
    state: AlarmState
    condition_active: bool
    suppressed: bool
    message: str
    value: float | None
    notify: tuple[str, ...]
    updated_at: datetime
    first_activated_at: datetime | None = None
    last_activated_at: datetime | None = None
    acked_at: datetime | None = None
    acked_by: str | None = None
    cleared_at: datetime | None = None
    shelved_until: datetime | None = None
    shelved_by: str | None = None
    shelve_comment: str | None = None
    oos_by: str | None = None
    oos_comment: str | None = None
    activation_count: int = 0

    @property
    def key(self) -> Key:
        return (self.rule_id, self.asset_id)


@dataclass(frozen=True, slots=True)
class EventDraft:
    """An event before it is stored."""

    event: str
    from_state: AlarmState
    to_state: AlarmState
    condition_active: bool
    ts_ns: int
    user: str | None = None
    comment: str | None = None
    value: float | None = None


@dataclass(frozen=True, slots=True)
class AlarmEvent:
    id: int
    alarm_id: int
    tenant_id: int
    event: str
    from_state: AlarmState
    to_state: AlarmState
    condition_active: bool
    user: str | None
    comment: str | None
    value: float | None
    ts_ns: int
    stored_at: datetime


@dataclass(frozen=True, slots=True)
class Write:
    """An alarm's row as it is after ``event``."""

    alarm: AlarmRecord
    event: EventDraft


@dataclass(frozen=True, slots=True)
class AlarmFilter:
    tenant_id: int | None = None  # None: every tenant
    states: tuple[AlarmState, ...] = ()
    priority: Priority | None = None
    rule_id: int | None = None
    asset_ids: tuple[int, ...] = ()
    active: bool | None = None  # the condition
    since: datetime | None = None  # updated at or after
    until: datetime | None = None  # updated before
    before: int | None = None  # ids below this one (paging, newest first)
    limit: int = 100


def status_of(record: AlarmRecord) -> Status:
    return Status(record.state, record.condition_active, record.suppressed)


def fresh(change: ConditionChange, now: datetime) -> AlarmRecord:
    """An alarm never stored: NORMAL, its condition inactive."""
    return AlarmRecord(0, change.tenant_id, change.rule_id, change.asset_id, change.rule_name,
                       change.priority, AlarmState.NORMAL, False, False, change.message,
                       change.value, change.notify, now)


def advance(record: AlarmRecord, step: Step, at: datetime, now: datetime) -> AlarmRecord:
    """The record after ``step`` (at ``at``: the sample's time or the action's)."""
    after = step.after
    record = replace(record, state=after.state, condition_active=after.active,
                     suppressed=after.suppressed, updated_at=now)
    if step.activation:
        record = replace(record, activation_count=record.activation_count + 1,
                         first_activated_at=record.first_activated_at or at,
                         last_activated_at=at)
    elif step.before.active and not after.active:
        record = replace(record, cleared_at=at)
    if after.state is not AlarmState.SHELVED:
        record = replace(record, shelved_until=None)
    return record


