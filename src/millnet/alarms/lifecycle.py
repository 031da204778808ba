"""The ISA-18.2 alarm state machine, as pure code and tables (no I/O, no clocks).

An alarm's :class:`Status` is its state (:class:`~millnet.model.alarms.AlarmState`) plus what
is known of its condition: ``active`` (the rule's condition holds) and ``suppressed`` (the
rule's suppression-by-design condition holds). Two kinds of input move it:

* the condition (:func:`on_condition`, from a ``ConditionChange``);
* an operator's or the node's :class:`Action` (:func:`act`); one the state does not allow
  raises :class:`~millnet.errors.Conflict` naming the state and the action.

The annunciated states follow ISA-18.2 figure 5::

    NORMAL    --active-->  UNACK      --ack-->    ACKED   --clear--> NORMAL
    UNACK     --clear-->   RTN_UNACK  --ack-->    NORMAL
    RTN_UNACK --active-->  UNACK

SHELVED, SUPPRESSED (by design) and OUT_OF_SERVICE hide the alarm: its condition is still
tracked (the step is recorded, ``notify`` is False), and leaving them puts the alarm where the
condition says (:func:`resolved`). Every step names its event; the event names are those of
:class:`~millnet.model.alarms.AlarmNotice`, plus ``condition_active``/``condition_cleared``
(a hidden alarm's condition changed) and ``retired`` (its rule was removed).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from millnet.errors import Conflict
from millnet.model.alarms import AlarmState

S = AlarmState

#: The states in which an alarm is annunciated (shown and notified).
ANNUNCIATED = frozenset({S.NORMAL, S.UNACK, S.ACKED, S.RTN_UNACK})
#: The states that hide an alarm while its condition is still tracked.
HIDDEN = frozenset({S.SHELVED, S.SUPPRESSED, S.OUT_OF_SERVICE})
#: The states in which the condition is active, in the annunciated part.
ACTIVE_STATES = frozenset({S.UNACK, S.ACKED})

# (state, condition active) -> (next state, event); pairs not listed change nothing.
CONDITION_TABLE: dict[tuple[AlarmState, bool], tuple[AlarmState, str]] = {
    (S.NORMAL, True): (S.UNACK, "activated"),
    (S.UNACK, False): (S.RTN_UNACK, "cleared"),
    (S.ACKED, False): (S.NORMAL, "cleared"),
    (S.RTN_UNACK, True): (S.UNACK, "activated"),
}

ACK_TABLE: dict[AlarmState, AlarmState] = {S.UNACK: S.ACKED, S.RTN_UNACK: S.NORMAL}


class Action(StrEnum):
    ACKNOWLEDGE = "acknowledge"
    SHELVE = "shelve"
    UNSHELVE = "unshelve"
    SHELVE_EXPIRED = "shelve_expired"
    REMOVE_FROM_SERVICE = "remove_from_service"
    RETURN_TO_SERVICE = "return_to_service"
    RETIRE = "retire"


# Action -> (the states that allow it, or None for every state; the event it records).
ACTION_TABLE: dict[Action, tuple[frozenset[AlarmState] | None, str]] = {
    Action.ACKNOWLEDGE: (frozenset(ACK_TABLE), "acknowledged"),
    # Shelving again while shelved sets a new expiry.
    Action.SHELVE: (ANNUNCIATED | {S.SHELVED}, "shelved"),
    Action.UNSHELVE: (frozenset({S.SHELVED}), "unshelved"),
    Action.SHELVE_EXPIRED: (frozenset({S.SHELVED}), "unshelved"),
    Action.REMOVE_FROM_SERVICE: (frozenset(S) - {S.OUT_OF_SERVICE}, "out_of_service"),
    Action.RETURN_TO_SERVICE: (frozenset({S.OUT_OF_SERVICE}), "in_service"),
    Action.RETIRE: (None, "retired"),
}


@dataclass(frozen=True, slots=True)
class Status:
    state: AlarmState = S.NORMAL
    active: bool = False
    suppressed: bool = False


@dataclass(frozen=True, slots=True)
class Step:
    """One recorded change: ``event`` took the alarm from ``before`` to ``after``;
    ``notify`` says it is annunciated (hidden condition tracking is not)."""

    before: Status
    after: Status
    event: str
    notify: bool = True

    @property
    def activation(self) -> bool:
        """The condition became active (counted whether annunciated or not)."""
        return self.after.active and not self.before.active


def resolved(active: bool, suppressed: bool) -> AlarmState:
    """Where an alarm belongs when nothing hides it but (perhaps) suppression by design."""
    if suppressed:
        return S.SUPPRESSED
    return S.UNACK if active else S.NORMAL


def on_condition(status: Status, active: bool, suppressed: bool = False) -> Step | None:
    """The step a condition report causes; None when it changes nothing."""
    after = Status(status.state, active, suppressed)
    if after == status:
        return None
    state = status.state
    if state in (S.SHELVED, S.OUT_OF_SERVICE) or (state is S.SUPPRESSED and suppressed):
        return Step(status, after, _hidden_event(status, after), notify=False)
    if state is S.SUPPRESSED:
        return Step(status, Status(resolved(active, False), active, False), "unsuppressed")
    if suppressed:
        return Step(status, Status(S.SUPPRESSED, active, True), "suppressed")
    found = CONDITION_TABLE.get((state, active))
    if found is None:
        return None  # e.g. an ACKED alarm whose condition is reported active again
    return Step(status, Status(found[0], active, False), found[1])


def _hidden_event(before: Status, after: Status) -> str:
    if after.active != before.active:
        return "condition_active" if after.active else "condition_cleared"
    return "suppressed" if after.suppressed else "unsuppressed"


def act(status: Status, action: Action) -> Step:
    """The step ``action`` causes; Conflict when the state does not allow it."""
    allowed, event = ACTION_TABLE[action]
    state = status.state
    if allowed is not None and state not in allowed:
        raise Conflict(f"cannot {action.value.replace('_', ' ')} an alarm in state "
                       f"{state.value}")
    if action is Action.ACKNOWLEDGE:
        after = Status(ACK_TABLE[state], status.active, status.suppressed)
    elif action is Action.SHELVE:
        after = Status(S.SHELVED, status.active, status.suppressed)
    elif action is Action.REMOVE_FROM_SERVICE:
        after = Status(S.OUT_OF_SERVICE, status.active, status.suppressed)
    elif action is Action.RETIRE:
        after = Status()
    else:  # unshelve, shelve expired, return to service
        after = Status(resolved(status.active, status.suppressed), status.active,
                       status.suppressed)
    return Step(status, after, event)


def consistent(status: Status) -> bool:
    """The invariant every reachable status keeps: an annunciated state agrees with the
    condition, SUPPRESSED only while suppression holds."""
    if status.state in ANNUNCIATED:
        if status.suppressed:
            return False
        if status.state is S.RTN_UNACK or status.state is S.NORMAL:
            return not status.active
        return status.active
    return status.state is not S.SUPPRESSED or status.suppressed
