"""The shift calendar: instances across midnight and daylight saving changes, breaks, days off,
configuration errors that name the field."""

from __future__ import annotations

from datetime import date, datetime
from itertools import pairwise
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from millnet.config import load_settings
from millnet.errors import ConfigError
from millnet.kpi.settings import KpiSection
from millnet.kpi.shifts import NS_PER_S, ShiftCalendar

H = 3600 * NS_PER_S
THREE = [{"name": "A", "start": "06:00", "end": "14:00",
          "breaks": [{"start": "10:00", "end": "10:15"}]},
         {"name": "B", "start": "14:00", "end": "22:00"},
         {"name": "C", "start": "22:00", "end": "06:00",
          "breaks": [{"start": "23:50", "end": "00:10"}, {"start": "02:00", "end": "02:30"}]}]


def ns(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp()) * NS_PER_S


def calendar(**kw: Any) -> ShiftCalendar:
    return ShiftCalendar(KpiSection.model_validate({"shifts": THREE, **kw}))


def test_a_night_shift_belongs_to_the_day_it_starts() -> None:
    cal = calendar()
    for when in ("2025-01-01T23:00+00:00", "2025-01-02T05:59+00:00"):
        inst = cal.instance_at(ns(when))
        assert inst is not None and (inst.shift, inst.day) == ("C", date(2025, 1, 1))
    inst = cal.instance_at(ns("2025-01-02T06:00+00:00"))
    assert inst is not None and inst.key == "2025-01-02/A"
    assert inst.end_ns - inst.start_ns == 8 * H
    assert inst.planned_busy_ns == 8 * H - 15 * 60 * NS_PER_S


def test_breaks_across_midnight_are_planned_down_time_of_the_night_shift() -> None:
    cal = calendar()
    (night,) = [i for i in cal.instances(ns("2025-01-01T22:00+00:00"),
                                         ns("2025-01-02T06:00+00:00")) if i.shift == "C"]
    assert night.break_ns == 50 * 60 * NS_PER_S
    segments = cal.split(night.start_ns, night.end_ns)
    breaks = [(s.start_ns, s.end_ns) for s in segments if not s.planned]
    assert breaks == [(ns("2025-01-01T23:50+00:00"), ns("2025-01-02T00:10+00:00")),
                      (ns("2025-01-02T02:00+00:00"), ns("2025-01-02T02:30+00:00"))]
    assert sum(s.end_ns - s.start_ns for s in segments if s.planned) == night.planned_busy_ns


@pytest.mark.parametrize(("day", "hours", "offset"), [
    ("2025-03-29", 7, "+01:00"), ("2025-10-25", 9, "+02:00"), ("2025-06-14", 8, "+02:00")])
def test_night_shift_over_a_daylight_saving_change(day: str, hours: int, offset: str) -> None:
    cal = calendar(time_zone="Europe/Berlin")
    y, m, d = map(int, day.split("-"))
    (night,) = [i for i in cal.instances_on(date(y, m, d)) if i.shift == "C"]
    assert night.end_ns - night.start_ns == hours * H
    assert night.start_ns == ns(f"{day}T22:00{offset}")


def test_one_all_day_shift_by_default_is_23_hours_on_the_spring_change() -> None:
    cal = ShiftCalendar(KpiSection(time_zone="Europe/Berlin"))
    (day,) = cal.instances_on(date(2025, 3, 30))
    assert (day.shift, day.end_ns - day.start_ns) == ("day", 23 * H)


def test_days_off_start_no_shift_but_saturday_night_runs_into_sunday() -> None:
    cal = calendar(days_off=["sun"])
    assert cal.instances_on(date(2025, 1, 5)) == []  # a Sunday
    inst = cal.instance_at(ns("2025-01-05T03:00+00:00"))
    assert inst is not None and inst.key == "2025-01-04/C"
    assert cal.instance_at(ns("2025-01-05T12:00+00:00")) is None


@pytest.mark.parametrize(("shifts", "key"), [
    ([{"name": "A", "start": "25:00", "end": "14:00"}], "kpi.shifts[0].start"),
    ([{"name": "A", "start": "06:00", "end": "14:00",
       "breaks": [{"start": "15:00", "end": "15:30"}]}], "kpi.shifts[0]"),
    ([{"name": "A", "start": "06:00", "end": "14:00"},
      {"name": "B", "start": "13:00", "end": "22:00"}], "kpi"),
    ([{"name": "A", "start": "06:00", "end": "14:00", "brakes": []}], "kpi.shifts[0].brakes"),
])
def test_configuration_errors_name_the_field(shifts: list[dict[str, Any]], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(overrides={"kpi": {"shifts": shifts}})
    assert caught.value.key == key


def test_an_unknown_time_zone_is_named() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(overrides={"kpi": {"time_zone": "Mars/Olympus"}})
    assert caught.value.key == "kpi.time_zone"


START = ns("2025-03-25T00:00+00:00")


@given(st.integers(0, 10 * 24 * H), st.integers(0, 3 * 24 * H),
       st.sampled_from(["UTC", "Europe/Berlin", "America/New_York"]))
def test_split_covers_the_range_inside_instances_exactly_once(
        offset: int, length: int, zone: str) -> None:
    cal = calendar(time_zone=zone)
    lo, hi = START + offset, START + offset + length
    segments = cal.split(lo, hi)
    assert all(lo <= s.start_ns < s.end_ns <= hi for s in segments)
    assert all(a.end_ns <= b.start_ns for a, b in pairwise(segments))
    inside = sum(min(hi, i.end_ns) - max(lo, i.start_ns) for i in cal.instances(lo, hi))
    assert sum(s.end_ns - s.start_ns for s in segments) == inside
    for s in segments:
        assert s.instance.start_ns <= s.start_ns and s.end_ns <= s.instance.end_ns
        middle = (s.start_ns + s.end_ns) // 2
        assert s.planned != any(b0 <= middle < b1 for b0, b1 in s.instance.breaks)
