"""EEMUA 191 figures (millnet.alarms.flood) over constructed event lists."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from millnet.alarms.flood import (
    INTERVAL_NS,
    FloodEvent,
    Limits,
    annunciates,
    assess,
    figures,
)
from millnet.model.alarms import AlarmState

S = AlarmState
SEC = 1_000_000_000
HOUR = 3600 * SEC


def activated(alarm_id: int, ts_ns: int) -> FloodEvent:
    return FloodEvent(alarm_id, ts_ns, S.NORMAL, S.UNACK, True)


def cleared(alarm_id: int, ts_ns: int) -> FloodEvent:
    return FloodEvent(alarm_id, ts_ns, S.ACKED, S.NORMAL, False)


def test_rates_per_ten_minutes_peak_and_flood_share() -> None:
    # One hour: six intervals. 12 alarms in the second interval (a flood), 3 in the fifth.
    events = [activated(100 + i, INTERVAL_NS + i * SEC) for i in range(12)]
    events += [activated(200 + i, 4 * INTERVAL_NS + i * SEC) for i in range(3)]
    f = figures(events, 0, HOUR)
    assert f.intervals == 6 and f.annunciated == 15
    assert f.average_per_10min == pytest.approx(15 / 6)
    assert f.peak_per_10min == 12
    assert f.flood_intervals == 1 and f.flood_share == pytest.approx(1 / 6)
    assert f.assessment == "demanding"


def test_only_entries_into_unack_are_annunciations() -> None:
    unshelved_active = FloodEvent(1, SEC, S.SHELVED, S.UNACK, True)
    hidden = FloodEvent(2, SEC, S.SHELVED, S.SHELVED, True)
    acked = FloodEvent(3, SEC, S.UNACK, S.ACKED, True)
    assert annunciates(unshelved_active)
    assert not annunciates(hidden) and not annunciates(acked)
    f = figures([unshelved_active, hidden, acked], 0, INTERVAL_NS)
    assert f.annunciated == 1 and f.top == [(1, 1)]


def test_events_outside_the_period_are_ignored_and_a_partial_interval_counts() -> None:
    events = [activated(1, -SEC), activated(2, 5 * SEC), activated(3, INTERVAL_NS + SEC)]
    f = figures(events, 0, INTERVAL_NS + 2 * SEC)
    assert f.intervals == 2 and f.annunciated == 2 and f.peak_per_10min == 1


def test_standing_alarms_are_active_longer_than_the_limit_at_the_end() -> None:
    limits = Limits(standing_after_ns=HOUR)
    events = [activated(1, 0), activated(2, 10 * SEC), cleared(2, 20 * SEC),
              activated(3, 2 * HOUR)]
    f = figures(events, 0, 3 * HOUR, active_at_start={4: -5 * HOUR}, limits=limits)
    # 4 carried over (oldest first), 1 since the start; 2 cleared; 3 only an hour old
    assert f.standing == [4, 1]


def test_chattering_needs_the_count_within_the_window() -> None:
    limits = Limits(chatter_count=3, chatter_window_ns=60 * SEC)
    events = []
    for t in (0, 20, 40):  # three activations within 60 s: chattering
        events += [activated(1, t * SEC), cleared(1, (t + 5) * SEC)]
    for t in (0, 40, 80):  # three within 80 s, never three within 60: not
        events += [activated(2, t * SEC), cleared(2, (t + 5) * SEC)]
    for t in range(0, 50, 10):  # five within 50 s
        events += [activated(3, t * SEC), cleared(3, (t + 5) * SEC)]
    f = figures(sorted(events, key=lambda e: e.ts_ns), 0, INTERVAL_NS, limits=limits)
    assert f.chattering == [3, 1]


def test_top_ten_most_frequent_first() -> None:
    events = [activated(a, (a * 20 + n) * SEC) for a in range(1, 13) for n in range(a)]
    f = figures(events, 0, HOUR)
    assert f.top == [(a, a) for a in range(12, 2, -1)]


def test_the_benchmarks_assessment() -> None:
    assert [assess(x) for x in (0.5, 1.0, 1.5, 2.0, 9.0, 10.5)] == [
        "acceptable", "acceptable", "manageable", "manageable", "demanding", "flood"]


def test_an_empty_period_is_refused() -> None:
    with pytest.raises(ValueError, match="end after"):
        figures([], 10, 10)


@given(st.lists(st.tuples(st.integers(1, 5), st.integers(0, HOUR - 1)), max_size=80))
def test_counts_add_up(raw: list[tuple[int, int]]) -> None:
    events = sorted((activated(a, t) for a, t in raw), key=lambda e: e.ts_ns)
    f = figures(events, 0, HOUR)
    assert f.annunciated == len(raw) == sum(n for _, n in f.top)
    assert f.peak_per_10min <= f.annunciated
    assert f.average_per_10min * f.intervals == pytest.approx(len(raw))
