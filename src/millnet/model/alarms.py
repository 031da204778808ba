"""What rules, alarms and notifications say to each other (issue 12).

The rule engine (``millnet.rules``) turns samples into :class:`ConditionChange` records: a rule's
condition became true or false for one asset. The alarm service (``millnet.alarms``) runs each
alarm's ISA-18.2 lifecycle from those changes and from operators' actions, stores it, and hands
an :class:`AlarmNotice` per transition to the notifier (``millnet.notify``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum, StrEnum

from millnet.model.limits import ascii_digits


class Priority(IntEnum):
    """Alarm priority, most urgent first (ISA-18.2 recommends three or four levels)."""

    CRITICAL = 1
    HIGH = 2
    MEDIUM = 3
    LOW = 4

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Priority:
        """``"high"`` (any case) or ``"2"``; ValueError naming the allowed values otherwise."""
        key = text.strip().upper()
        if key in cls.__members__:
            return cls[key]
        if ascii_digits(key, 2) and int(key) in {p.value for p in cls}:
            return cls(int(key))
        allowed = ", ".join(p.label for p in cls)
        raise ValueError(f"unknown priority {text!r}; one of {allowed}")


class AlarmState(StrEnum):
    """The ISA-18.2 alarm states (ANSI/ISA-18.2-2016, figure 5)."""

    NORMAL = "normal"                      # A: not active, acknowledged
    UNACK = "unack_active"                 # B: active, not acknowledged
    ACKED = "acked_active"                 # C: active, acknowledged
    RTN_UNACK = "rtn_unack"                # D: returned to normal, not acknowledged
    SHELVED = "shelved"                    # E: by an operator, until it expires or is unshelved
    SUPPRESSED = "suppressed_by_design"    # F: by the rule's own suppression condition
    OUT_OF_SERVICE = "out_of_service"      # G: removed from service (maintenance)


@dataclass(frozen=True, slots=True)
class ConditionChange:
    """A rule's condition for one asset became active (``active``) or returned to normal.

    ``rule_id`` and ``asset_id`` together name the alarm. ``ts_ns`` is the time of the sample
    that decided it (the source's clock); ``received_ns`` is when that sample entered the node
    (``time.time_ns()``), for latency figures. ``suppressed`` says the rule's suppression-by-
    design condition holds for the asset (the alarm goes to, or stays in, SUPPRESSED)."""

    rule_id: int
    rule_name: str
    tenant_id: int
    asset_id: int
    active: bool
    ts_ns: int
    priority: Priority
    message: str
    value: float | None = None
    received_ns: int = 0
    suppressed: bool = False
    notify: tuple[str, ...] = ()  # the rule's notification routes (target names)


@dataclass(frozen=True, slots=True)
class AlarmNotice:
    """One alarm transition, as notifications carry it.

    ``event`` is what happened: ``activated``, ``cleared`` (returned to normal),
    ``acknowledged``, ``shelved``, ``unshelved``, ``suppressed``, ``unsuppressed``,
    ``out_of_service``, ``in_service``. ``state`` is the state after it."""

    alarm_id: int
    event_id: int
    event: str
    state: AlarmState
    rule_id: int
    rule_name: str
    tenant_id: int
    asset_id: int
    asset_path: str
    priority: Priority
    message: str
    ts_ns: int
    value: float | None = None
    user: str | None = None
    comment: str | None = None
    received_ns: int = 0
    stored_ns: int = 0  # when the transition was committed (time.time_ns())
    notify: tuple[str, ...] = field(default=())
