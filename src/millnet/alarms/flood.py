"""Alarm-system performance after EEMUA 191 (and ISA-18.2 section 16), from the event trail.

Pure: :func:`figures` takes a period's events (:class:`FloodEvent`, in time order) and the
alarms whose condition was already active when the period began. Definitions:

* an **annunciation** is an event that puts an alarm into UNACK from another state (activated,
  or unshelved / returned to service / unsuppressed while its condition holds): what the
  operator is shown as a new alarm;
* the **rate** is annunciations per 10-minute interval of the period (the last interval may be
  shorter and counts as one); **flood** intervals hold more than ``flood_per_10min``;
* a **standing** alarm is one whose condition has been active for longer than
  ``standing_after`` at the end of the period;
* a **chattering** alarm activated (its condition became active, annunciated or not)
  ``chatter_count`` times or more within ``chatter_window``;
* the **top ten** are the alarms annunciated most often (EEMUA's "bad actors").

EEMUA 191's benchmarks (:data:`BENCHMARKS`): an average of 1 alarm per 10 minutes is very
likely acceptable, 2 is the most that is manageable, more than 10 is a flood; an operator should
spend under 1 % of the time in a flood.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter, defaultdict
from dataclasses import dataclass

from millnet.model.alarms import AlarmState

INTERVAL_NS = 600 * 1_000_000_000
BENCHMARKS = {
    "acceptable_per_10min": 1.0,
    "manageable_per_10min": 2.0,
    "flood_per_10min": 10.0,
    "flood_share_max": 0.01,
}


@dataclass(frozen=True, slots=True)
class FloodEvent:
    alarm_id: int
    ts_ns: int
    from_state: AlarmState
    to_state: AlarmState
    active: bool  # the condition after the event


@dataclass(frozen=True, slots=True)
class Limits:
    standing_after_ns: int = 86_400 * 1_000_000_000
    chatter_count: int = 3
    chatter_window_ns: int = 60 * 1_000_000_000
    flood_per_10min: int = 10


@dataclass(frozen=True, slots=True)
class Figures:
    since_ns: int
    until_ns: int
    intervals: int
    annunciated: int
    average_per_10min: float
    peak_per_10min: int
    flood_intervals: int
    flood_share: float
    assessment: str  # acceptable, manageable, demanding, flood (by the average rate)
    standing: list[int]  # alarm ids, oldest activation first
    chattering: list[int]  # alarm ids, most activations first
    top: list[tuple[int, int]]  # (alarm id, annunciations), most first, at most 10


def annunciates(e: FloodEvent) -> bool:
    return e.to_state is AlarmState.UNACK and e.from_state is not AlarmState.UNACK


def assess(average: float) -> str:
    if average <= BENCHMARKS["acceptable_per_10min"]:
        return "acceptable"
    if average <= BENCHMARKS["manageable_per_10min"]:
        return "manageable"
    if average <= BENCHMARKS["flood_per_10min"]:
        return "demanding"
    return "flood"


def figures(events: list[FloodEvent], since_ns: int, until_ns: int,
            active_at_start: dict[int, int] | None = None, limits: Limits = Limits(),
            ) -> Figures:
    """The EEMUA figures of [since, until); ``events`` outside it are ignored."""
    if until_ns <= since_ns:
        raise ValueError("the period must end after it begins")
    inside = [e for e in events if since_ns <= e.ts_ns < until_ns]
    intervals = -(-(until_ns - since_ns) // INTERVAL_NS)
    per_interval = Counter((e.ts_ns - since_ns) // INTERVAL_NS for e in inside if annunciates(e))
    total = sum(per_interval.values())
    average = total / intervals
    floods = sum(1 for n in per_interval.values() if n > limits.flood_per_10min)
    top_counts = Counter(e.alarm_id for e in inside if annunciates(e))
    top = sorted(top_counts.items(), key=lambda item: (-item[1], item[0]))[:10]
    active_since, activations = _activations(inside, active_at_start or {})
    standing = sorted((t, a) for a, t in active_since.items()
                      if until_ns - t > limits.standing_after_ns)
    return Figures(
        since_ns, until_ns, intervals, total, average, max(per_interval.values(), default=0),
        floods, floods / intervals, assess(average), [a for _, a in standing],
        _chattering(activations, limits), top)


def _activations(events: list[FloodEvent], active_at_start: dict[int, int],
                 ) -> tuple[dict[int, int], dict[int, list[int]]]:
    """When each alarm still active at the end became active; every alarm's activation
    times (its condition went from inactive to active)."""
    active_since = dict(active_at_start)
    activations: dict[int, list[int]] = defaultdict(list)
    for e in events:
        was_active = e.alarm_id in active_since
        if e.active and not was_active:
            active_since[e.alarm_id] = e.ts_ns
            activations[e.alarm_id].append(e.ts_ns)
        elif not e.active and was_active:
            del active_since[e.alarm_id]
    return active_since, activations


def _chattering(activations: dict[int, list[int]], limits: Limits) -> list[int]:
    found: list[tuple[int, int]] = []
    for alarm_id, times in activations.items():
        times.sort()
        burst = max((bisect_left(times, t + limits.chatter_window_ns) - i
                     for i, t in enumerate(times)), default=0)
        if burst >= limits.chatter_count:
            found.append((len(times), alarm_id))
    return [a for _, a in sorted(found, key=lambda item: (-item[0], item[1]))]
