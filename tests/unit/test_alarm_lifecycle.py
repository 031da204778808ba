"""The ISA-18.2 state machine (millnet.alarms.lifecycle): its tables, its refusals, and
properties that any sequence of inputs keeps."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from millnet.alarms.lifecycle import (
    ACTIVE_STATES,
    HIDDEN,
    Action,
    Status,
    Step,
    act,
    consistent,
    on_condition,
    resolved,
)
from millnet.errors import Conflict
from millnet.model.alarms import AlarmState

S = AlarmState


def run(status: Status, *inputs: bool | Action) -> Status:
    for given_input in inputs:
        if isinstance(given_input, Action):
            status = act(status, given_input).after
        else:
            step = on_condition(status, given_input)
            status = step.after if step else status
    return status


def test_the_annunciated_cycle_of_figure_5() -> None:
    normal = Status()
    unack = run(normal, True)
    assert unack == Status(S.UNACK, True)
    assert run(unack, Action.ACKNOWLEDGE) == Status(S.ACKED, True)
    assert run(unack, Action.ACKNOWLEDGE, False) == Status(S.NORMAL, False)
    assert run(unack, False) == Status(S.RTN_UNACK, False)
    assert run(unack, False, Action.ACKNOWLEDGE) == normal
    assert run(unack, False, True) == unack


def test_events_and_notification_of_each_step() -> None:
    first = on_condition(Status(), True)
    assert first == Step(Status(), Status(S.UNACK, True), "activated", True)
    assert first.activation
    cleared = on_condition(Status(S.ACKED, True), False)
    assert cleared is not None and cleared.event == "cleared" and not cleared.activation
    assert act(Status(S.UNACK, True), Action.ACKNOWLEDGE).event == "acknowledged"


def test_a_report_that_changes_nothing_is_no_step() -> None:
    assert on_condition(Status(), False) is None
    assert on_condition(Status(S.UNACK, True), True) is None
    assert on_condition(Status(S.ACKED, True), True) is None
    assert on_condition(Status(S.RTN_UNACK, False), False) is None
    assert on_condition(Status(S.SHELVED, True), True) is None


def test_shelved_alarms_track_their_condition_silently() -> None:
    shelved = act(Status(S.UNACK, True), Action.SHELVE).after
    assert shelved == Status(S.SHELVED, True)
    step = on_condition(shelved, False)
    assert step is not None and not step.notify and step.event == "condition_cleared"
    assert step.after == Status(S.SHELVED, False)
    assert act(step.after, Action.UNSHELVE).after == Status(S.NORMAL, False)
    again = on_condition(step.after, True)
    assert again is not None and again.event == "condition_active" and again.activation
    assert act(again.after, Action.SHELVE_EXPIRED).after == Status(S.UNACK, True)


def test_suppression_by_design() -> None:
    step = on_condition(Status(S.UNACK, True), True, suppressed=True)
    assert step is not None and step.event == "suppressed" and step.notify
    assert step.after == Status(S.SUPPRESSED, True, True)
    hidden = on_condition(step.after, False, suppressed=True)
    assert hidden is not None and not hidden.notify
    back = on_condition(hidden.after, True, suppressed=False)
    assert back is not None and back.event == "unsuppressed"
    assert back.after == Status(S.UNACK, True)
    assert on_condition(Status(S.SUPPRESSED, False, True), False) == Step(
        Status(S.SUPPRESSED, False, True), Status(), "unsuppressed")


def test_out_of_service_and_back() -> None:
    oos = act(Status(S.ACKED, True), Action.REMOVE_FROM_SERVICE).after
    assert oos == Status(S.OUT_OF_SERVICE, True)
    assert act(oos, Action.RETURN_TO_SERVICE).after == Status(S.UNACK, True)
    quiet = run(oos, False)
    assert act(quiet, Action.RETURN_TO_SERVICE).after == Status()


def test_retire_returns_any_alarm_to_normal() -> None:
    for state in S:
        step = act(Status(state, state in ACTIVE_STATES), Action.RETIRE)
        assert step.after == Status() and step.event == "retired"


@pytest.mark.parametrize(("status", "action", "words"), [
    (Status(), Action.ACKNOWLEDGE, "cannot acknowledge an alarm in state normal"),
    (Status(S.ACKED, True), Action.ACKNOWLEDGE, "acknowledge an alarm in state acked_active"),
    (Status(S.OUT_OF_SERVICE), Action.SHELVE, "cannot shelve an alarm in state out_of_service"),
    (Status(S.UNACK, True), Action.UNSHELVE, "cannot unshelve an alarm in state unack_active"),
    (Status(), Action.RETURN_TO_SERVICE, "return to service an alarm in state normal"),
    (Status(S.OUT_OF_SERVICE), Action.REMOVE_FROM_SERVICE, "state out_of_service"),
    (Status(S.SUPPRESSED, True, True), Action.SHELVE, "state suppressed_by_design"),
])
def test_refused_actions_name_state_and_action(status: Status, action: Action,
                                               words: str) -> None:
    with pytest.raises(Conflict, match=words):
        act(status, action)


inputs = st.one_of(
    st.tuples(st.booleans(), st.booleans()),  # a condition report (active, suppressed)
    st.sampled_from(list(Action)),
)


@given(st.lists(inputs, max_size=60))
def test_any_sequence_keeps_the_invariants(sequence: list[tuple[bool, bool] | Action]) -> None:
    status = Status()
    for item in sequence:
        if isinstance(item, Action):
            try:
                step = act(status, item)
            except Conflict:
                continue
            if item in (Action.UNSHELVE, Action.SHELVE_EXPIRED, Action.RETURN_TO_SERVICE):
                # leaving a hidden state lands where the condition says
                assert step.after.state is resolved(status.active, status.suppressed)
            if item is not Action.RETIRE:
                assert (step.after.active, step.after.suppressed) == (
                    status.active, status.suppressed)
        else:
            active, suppressed = item
            found = on_condition(status, active, suppressed)
            if found is None:
                assert status.active == active and status.suppressed == suppressed
                continue
            step = found
            assert step.after.active == active and step.after.suppressed == suppressed
            # hidden alarms are never annunciated, and only they are silent
            hidden = status.state in HIDDEN and step.after.state is status.state
            assert step.notify == (not hidden)
        assert step.before == status
        status = step.after
        assert consistent(status), status
        if status.state in ACTIVE_STATES:
            assert status.active
        if status.state is S.RTN_UNACK:
            assert not status.active
