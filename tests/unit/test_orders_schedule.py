"""The scheduler's properties: no line runs two operations at once, a routing's operations run
in order after the release, bookings are never moved, and the plan is deterministic."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from millnet.orders.schedule import Job, LineCalendar, Slot, Step, plan, plan_job

LINES = st.integers(min_value=1, max_value=4)
TIME = st.floats(min_value=0, max_value=1000, allow_nan=False)
DURATION = st.floats(min_value=0.5, max_value=100, allow_nan=False)
steps = st.lists(st.builds(Step, LINES, DURATION), min_size=1, max_size=5)
jobs = st.lists(st.tuples(TIME, steps), min_size=1, max_size=12).map(
    lambda items: [Job(i, release, tuple(s)) for i, (release, s) in enumerate(items)])
booked = st.dictionaries(LINES, st.lists(st.tuples(TIME, DURATION).map(
    lambda t: (t[0], t[0] + t[1])), max_size=4), max_size=4)


def _overlap(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return a[0] < b[1] - 1e-9 and b[0] < a[1] - 1e-9


@settings(max_examples=300, deadline=None)
@given(booked, jobs)
def test_plan_properties(existing: dict[int, list[tuple[float, float]]],
                         work: list[Job]) -> None:
    result = plan(existing, work)
    by_line: dict[int, list[tuple[float, float]]] = {}
    for job in work:
        slots = result[job.id]
        assert [s.line for s in slots] == [s.line for s in job.steps]
        ready = job.release_s
        for slot, step in zip(slots, job.steps, strict=True):
            assert slot.start_s >= ready - 1e-9  # routing order, after the release
            assert abs((slot.end_s - slot.start_s) - step.duration_s) < 1e-6
            ready = slot.end_s
            by_line.setdefault(slot.line, []).append((slot.start_s, slot.end_s))
    for line, intervals in by_line.items():
        for i, a in enumerate(intervals):  # capacity: one operation at a time
            assert not any(_overlap(a, b) for b in intervals[i + 1:])
            assert not any(_overlap(a, b) for b in existing.get(line, []))
    assert plan(existing, list(reversed(work))) == result  # deterministic, whatever the order


def test_a_gap_between_bookings_is_used_when_long_enough() -> None:
    calendar = LineCalendar({1: [(0, 10), (20, 30)]})
    assert plan_job(calendar, Job(1, 0, (Step(1, 5),))) == [Slot(1, 10, 15)]
    assert plan_job(calendar, Job(2, 0, (Step(1, 6),))) == [Slot(1, 30, 36)]
    assert calendar.intervals(1) == [(0, 15), (20, 36)]


def test_the_next_operation_waits_for_its_line_and_its_predecessor() -> None:
    calendar = LineCalendar({2: [(0, 50)]})
    slots = plan_job(calendar, Job(1, 5, (Step(1, 10), Step(2, 10), Step(1, 1))))
    assert slots == [Slot(1, 5, 15), Slot(2, 50, 60), Slot(1, 60, 61)]
