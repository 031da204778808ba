"""Finite-capacity list scheduling of work orders over the plant's lines (pure).

A line runs one operation at a time (its throughput is in the operation's cycle time). Work
orders are taken in a fixed order (release time, then id); each operation, in routing order,
goes into the earliest gap of its line that starts no earlier than the order's release and the
end of the order's previous operation and is long enough for it. Gaps left by earlier bookings
are used (insertion), but a booking is never moved: what was promised to one customer is not
taken back for the next. The same bookings and orders always give the same plan.

Times are seconds (floats, epoch or any origin).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Step:
    """One operation to plan: on ``line``, taking ``duration_s``."""

    line: int
    duration_s: float


@dataclass(frozen=True, slots=True)
class Job:
    """A work order to plan: its operations in routing order, not before ``release_s``."""

    id: int
    release_s: float
    steps: tuple[Step, ...]


@dataclass(frozen=True, slots=True)
class Slot:
    line: int
    start_s: float
    end_s: float


class LineCalendar:
    """The booked intervals of each line, kept sorted and disjoint."""

    def __init__(self, booked: Mapping[int, Iterable[tuple[float, float]]] | None = None,
                 ) -> None:
        self._starts: dict[int, list[float]] = {}
        self._ends: dict[int, list[float]] = {}
        for line, intervals in (booked or {}).items():
            for start, end in sorted(intervals):
                self._merge(line, start, end)

    def _merge(self, line: int, start: float, end: float) -> None:
        """Book ``[start, end)``, merged with what it overlaps (existing bookings may overlap
        when the plant ran late: a line busy longer than planned)."""
        if end <= start:
            return
        starts = self._starts.setdefault(line, [])
        ends = self._ends.setdefault(line, [])
        i = bisect.bisect_left(ends, start)  # first interval that ends at or after start
        j = i
        while j < len(starts) and starts[j] <= end:
            start, end = min(start, starts[j]), max(end, ends[j])
            j += 1
        starts[i:j] = [start]
        ends[i:j] = [end]

    def earliest(self, line: int, not_before: float, duration: float) -> float:
        """The earliest start ``>= not_before`` of a free gap of ``duration`` on ``line``."""
        starts = self._starts.get(line, [])
        ends = self._ends.get(line, [])
        t = not_before
        i = bisect.bisect_right(ends, t)  # intervals ending after t
        while i < len(starts):
            if starts[i] >= t + duration:
                return t
            t = max(t, ends[i])
            i += 1
        return t

    def book(self, line: int, start: float, end: float) -> None:
        self._merge(line, start, end)

    def intervals(self, line: int) -> list[tuple[float, float]]:
        return list(zip(self._starts.get(line, []), self._ends.get(line, []), strict=True))


def plan_job(calendar: LineCalendar, job: Job) -> list[Slot]:
    """Book ``job``'s operations in ``calendar``; their slots in routing order."""
    slots: list[Slot] = []
    ready = job.release_s
    for step in job.steps:
        start = calendar.earliest(step.line, ready, step.duration_s)
        end = start + step.duration_s
        calendar.book(step.line, start, end)
        slots.append(Slot(step.line, start, end))
        ready = end
    return slots


def plan(booked: Mapping[int, Iterable[tuple[float, float]]], jobs: Sequence[Job],
         ) -> dict[int, list[Slot]]:
    """Plan ``jobs`` (by release time, then id) around ``booked``; slots by job id."""
    calendar = LineCalendar(booked)
    return {job.id: plan_job(calendar, job)
            for job in sorted(jobs, key=lambda j: (j.release_s, j.id))}
