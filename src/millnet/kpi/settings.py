"""The ``[kpi]`` section: shifts, planned times and the points KPIs are computed from.

::

    [kpi]
    time_zone = "Europe/Berlin"
    days_off = ["sun"]                 # no shift starts on these days

    [[kpi.shifts]]
    name = "A"
    start = "06:00"
    end = "14:00"
    breaks = [{ start = "10:00", end = "10:15" }]   # planned down time (PDOT)

    [[kpi.shifts]]
    name = "C"
    start = "22:00"
    end = "06:00"                      # crosses midnight: belongs to the day it starts

    [kpi.ideal_cycle_s]                # PRI, seconds per item, per asset type
    cnc = 9.8

Without shifts there is one shift ``day`` from 00:00 to 00:00 (24 hours) without breaks.
"""

from __future__ import annotations

import re
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MINUTES_PER_DAY = 24 * 60


def minutes(hhmm: str) -> int:
    """Minutes after midnight of ``HH:MM`` (ValueError otherwise)."""
    m = _HHMM.match(hhmm)
    if m is None:
        raise ValueError(f"{hhmm!r} is not a time of day HH:MM (00:00 to 23:59)")
    return int(m.group(1)) * 60 + int(m.group(2))


class BreakSpec(BaseModel):
    """A planned break within a shift (planned down time, PDOT)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    start: str
    end: str

    @field_validator("start", "end")
    @classmethod
    def _hhmm(cls, value: str) -> str:
        minutes(value)
        return value


class ShiftSpec(BaseModel):
    """One shift of the daily calendar; ``end`` at or before ``start`` crosses midnight
    (``start == end``: 24 hours)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_.-]+$")
    start: str
    end: str
    breaks: tuple[BreakSpec, ...] = ()

    @field_validator("start", "end")
    @classmethod
    def _hhmm(cls, value: str) -> str:
        minutes(value)
        return value

    def span(self) -> tuple[int, int]:
        """Start and end in minutes after the start day's midnight (end may exceed 1440)."""
        start, end = minutes(self.start), minutes(self.end)
        return start, end if end > start else end + MINUTES_PER_DAY

    def break_spans(self) -> list[tuple[int, int]]:
        """Breaks in minutes after the start day's midnight, like :meth:`span`."""
        start, _ = self.span()
        spans = []
        for b in self.breaks:
            offset = MINUTES_PER_DAY if minutes(b.start) < start else 0
            bs, be = minutes(b.start) + offset, minutes(b.end) + offset
            spans.append((bs, be if be > bs else be + MINUTES_PER_DAY))
        return spans

    @model_validator(mode="after")
    def _breaks_inside(self) -> ShiftSpec:
        start, end = self.span()
        spans = self.break_spans()
        for i, (bs, be) in enumerate(spans):
            if bs < start or be > end:
                raise ValueError(f"break {i} ({self.breaks[i].start}-{self.breaks[i].end}) "
                                 f"is not within the shift {self.start}-{self.end}")
        ordered = sorted(spans)
        if any(ordered[i][0] < ordered[i - 1][1] for i in range(1, len(ordered))):
            raise ValueError("breaks overlap")
        return self


class StateValues(BaseModel):
    """Which values of the state point mean what (the demo factory's by default: 0 stopped,
    1 running, 2 idle, 3 setup, 4 fault). Values in none of the lists (stopped, idle, unknown)
    count as actual unit down time (ADOT)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    running: tuple[int, ...] = (1,)
    setup: tuple[int, ...] = (3,)
    fault: tuple[int, ...] = (4,)
    planned_stop: tuple[int, ...] = ()

    @model_validator(mode="after")
    def _disjoint(self) -> StateValues:
        seen: dict[int, str] = {}
        for name in ("running", "setup", "fault", "planned_stop"):
            for v in getattr(self, name):
                if v in seen:
                    raise ValueError(f"state value {v} is in both {seen[v]} and {name}")
                seen[v] = name
        return self


class KpiSection(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    time_zone: str = Field(default="UTC", description="IANA zone of the shift calendar")
    shifts: tuple[ShiftSpec, ...] = ()
    days_off: tuple[Weekday, ...] = ()
    state_point: str = "State"
    good_point: str = "Parts/Good"
    scrap_point: str = "Parts/Scrap"
    states: StateValues = StateValues()
    # PRI, seconds per item. The demo's machines count good parts at 1/10 s (cnc) and 1/1.25 s
    # (press) and scrap at 2 % and 1.25 % of that on top: 0.102 and 0.81 items/s in all, so
    # these ideal cycle times put a machine that always runs just under 100 % effectiveness.
    ideal_cycle_s: dict[str, float] = Field(default_factory=lambda: {"cnc": 9.8, "press": 1.23})
    flush_interval_s: float = Field(default=10.0, gt=0, le=3600)

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @field_validator("ideal_cycle_s")
    @classmethod
    def _positive(cls, value: dict[str, float]) -> dict[str, float]:
        for kind, seconds in value.items():
            if not seconds > 0:
                raise ValueError(f"ideal cycle time of {kind!r} must be positive")
        return value

    @model_validator(mode="after")
    def _shifts_apart(self) -> KpiSection:
        names = [s.name for s in self.shifts]
        if len(set(names)) != len(names):
            raise ValueError("shift names must be unique")
        taken = [""] * MINUTES_PER_DAY
        for shift in self.shifts:
            start, end = shift.span()
            for minute in range(start, end):
                other = taken[minute % MINUTES_PER_DAY]
                if other:
                    raise ValueError(f"shifts {other} and {shift.name} overlap")
                taken[minute % MINUTES_PER_DAY] = shift.name
        return self

    def effective_shifts(self) -> tuple[ShiftSpec, ...]:
        return self.shifts or (ShiftSpec(name="day", start="00:00", end="00:00"),)
