"""The shift calendar: which shift instance (shift name and the local date it starts on) a time
belongs to, and which parts of a time range are planned busy time and which planned breaks.

Shifts are wall-clock times in the calendar's zone, so a shift that spans a daylight saving
change is an hour shorter or longer in real time (a night shift 22:00-06:00 lasts 7 or 9 hours
on those nights); every instant is in UTC nanoseconds. A wall time that does not exist (the
hour skipped in spring) is read with the offset before the change, as :mod:`zoneinfo` does with
``fold=0``. A shift that ends at or before its start time crosses midnight and belongs to the
day it starts on; ``days_off`` are days on which no shift starts.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

from millnet.kpi.settings import WEEKDAYS, KpiSection

NS_PER_S = 1_000_000_000
_CACHED_DAYS = 64


@dataclass(frozen=True, slots=True)
class ShiftInstance:
    """One occurrence of a shift; times in UTC nanoseconds, ``breaks`` sorted."""

    shift: str
    day: date
    start_ns: int
    end_ns: int
    breaks: tuple[tuple[int, int], ...] = ()

    @property
    def key(self) -> str:
        return f"{self.day.isoformat()}/{self.shift}"

    @property
    def break_ns(self) -> int:
        return sum(e - s for s, e in self.breaks)

    @property
    def planned_busy_ns(self) -> int:
        """The instance's length less its breaks (PBT before any planned stop state)."""
        return self.end_ns - self.start_ns - self.break_ns


@dataclass(frozen=True, slots=True)
class Segment:
    """A piece of a time range inside one instance: ``planned`` busy time, or a break."""

    instance: ShiftInstance
    start_ns: int
    end_ns: int
    planned: bool


class ShiftCalendar:
    """The calendar of a ``[kpi]`` section; instances of a day are computed once and cached."""

    def __init__(self, section: KpiSection) -> None:
        self._zone = ZoneInfo(section.time_zone)
        self._shifts = section.effective_shifts()
        self._off = {WEEKDAYS.index(d) for d in section.days_off}
        self._days: dict[date, list[ShiftInstance]] = {}

    @property
    def shift_names(self) -> list[str]:
        return [s.name for s in self._shifts]

    def _wall_ns(self, day: date, minute: int) -> int:
        # Aware datetime + timedelta is wall-clock arithmetic; timestamp() resolves the offset.
        wall = datetime.combine(day, time(0), self._zone) + timedelta(minutes=minute)
        return int(wall.timestamp()) * NS_PER_S

    def instances_on(self, day: date) -> list[ShiftInstance]:
        """The instances that start on local date ``day``, in start order."""
        found = self._days.get(day)
        if found is not None:
            return found
        found = []
        if day.weekday() not in self._off:
            for shift in self._shifts:
                start, end = shift.span()
                breaks = tuple(sorted((self._wall_ns(day, bs), self._wall_ns(day, be))
                                      for bs, be in shift.break_spans()))
                found.append(ShiftInstance(shift.name, day, self._wall_ns(day, start),
                                           self._wall_ns(day, end), breaks))
            found.sort(key=lambda i: i.start_ns)
        if len(self._days) >= _CACHED_DAYS:
            self._days.clear()
        self._days[day] = found
        return found

    def _local_day(self, ts_ns: int) -> date:
        return datetime.fromtimestamp(ts_ns // NS_PER_S, UTC).astimezone(self._zone).date()

    def instances(self, start_ns: int, end_ns: int) -> list[ShiftInstance]:
        """Instances that overlap ``[start_ns, end_ns)``, in start order."""
        if end_ns <= start_ns:
            return []
        day = self._local_day(start_ns) - timedelta(days=1)  # a night shift of the day before
        last = self._local_day(end_ns)
        found: list[ShiftInstance] = []
        while day <= last:
            found.extend(i for i in self.instances_on(day)
                         if i.start_ns < end_ns and i.end_ns > start_ns)
            day += timedelta(days=1)
        return found

    def instance_at(self, ts_ns: int) -> ShiftInstance | None:
        """The instance that contains ``ts_ns`` (breaks included), if any."""
        found = self.instances(ts_ns, ts_ns + 1)
        return found[0] if found else None

    def split(self, start_ns: int, end_ns: int) -> list[Segment]:
        """``[start_ns, end_ns)`` cut at instance and break boundaries; time outside every
        instance is left out."""
        segments: list[Segment] = []
        for inst in self.instances(start_ns, end_ns):
            lo, hi = max(start_ns, inst.start_ns), min(end_ns, inst.end_ns)
            cuts = sorted({lo, hi, *(t for b in inst.breaks for t in b if lo < t < hi)})
            starts = [b[0] for b in inst.breaks]
            for a, b in pairwise(cuts):
                k = bisect_right(starts, a) - 1
                in_break = k >= 0 and inst.breaks[k][0] <= a < inst.breaks[k][1]
                segments.append(Segment(inst, a, b, not in_break))
        return segments
