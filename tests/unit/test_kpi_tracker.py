"""The KPI tracker on constructed sample streams whose answers are known by hand."""

from __future__ import annotations

import asyncio
import random
from datetime import datetime

import numpy as np
import pytest

from millnet.kpi.settings import KpiSection
from millnet.kpi.shifts import NS_PER_S
from millnet.kpi.tracker import KpiTracker, MachineBinding
from millnet.model import Quality, SampleBatch

MIN = 60 * NS_PER_S
SECTION = KpiSection.model_validate({
    "shifts": [{"name": "A", "start": "06:00", "end": "14:00",
                "breaks": [{"start": "10:00", "end": "10:15"}]},
               {"name": "B", "start": "14:00", "end": "22:00"}],
    "ideal_cycle_s": {"cnc": 10.0, "press": 1.25}})
CNC = MachineBinding(10, 1, "cnc", state_series=1, good_series=2, scrap_series=3)
PRESS = MachineBinding(20, 1, "press", state_series=11, good_series=12, scrap_series=13)
RUN, IDLE, FAULT = 1.0, 2.0, 4.0
Row = tuple[int, int, float]


def at(hhmm: str, day: str = "2025-01-06") -> int:
    return int(datetime.fromisoformat(f"{day}T{hhmm}+00:00").timestamp()) * NS_PER_S


def batch(rows: list[Row], quality: int = Quality.GOOD) -> SampleBatch:
    return SampleBatch(np.array([r[0] for r in rows], np.int32),
                       np.array([r[1] for r in rows], np.int64),
                       np.array([r[2] for r in rows], np.float64),
                       np.full(len(rows), quality, np.uint8))


def feed(tracker: KpiTracker, rows: list[Row], chunk: int = 7, seed: int = 1) -> None:
    """In chunks, each shuffled and mixed with samples of other series (the tracker orders a
    chunk by time and skips what is not a KPI point)."""
    rng = random.Random(seed)
    for i in range(0, len(rows), chunk):
        part = rows[i:i + chunk] + [(500 + k, at("07:00"), 1e9) for k in range(5)]
        rng.shuffle(part)
        tracker.on_samples(batch(part), [], historical=False, received_ns=0)


def shift_a(state: int, good: int, scrap: int) -> list[Row]:
    """An 8 h shift: running from 06:00, a fault 08:00-08:30, running until 14:00; counters
    sampled every 30 min up to 2,500 good and 50 scrap parts."""
    rows: list[Row] = [(state, at("06:00"), RUN), (state, at("08:00"), FAULT),
                       (state, at("08:30"), RUN)]
    for k in range(17):  # 06:00 .. 14:00
        ts = at("06:00") + k * 30 * MIN
        rows += [(good, ts, round(2500 * k / 16)), (scrap, ts, round(50 * k / 16))]
    rows.append((state, at("14:00"), IDLE))
    return sorted(rows, key=lambda r: r[1])


def test_an_eight_hour_shift_with_a_fault_and_a_break() -> None:
    tracker = KpiTracker(SECTION, [CNC])
    feed(tracker, shift_a(1, 2, 3))
    (row,) = asyncio.run(tracker.query([10], at("00:00"), at("23:59"), by_shift=True,
                                       now_ns=at("14:00")))
    e, k = row.elements, row.kpis
    assert (row.shift, row.machines) == ("A", 1)
    # Planned: 480 min less the 15 min break = 465 min; 30 of them in fault.
    assert e.pbt_s == 465 * 60 and e.adet_s == 30 * 60 and e.apt_s == 435 * 60
    assert (e.gq, e.sq, e.failures, e.restorations, e.ttr_s) == (2500, 50, 1, 1, 1800)
    assert k.availability == pytest.approx(435 / 465)
    assert k.effectiveness == pytest.approx(2550 * 10 / (435 * 60))
    assert k.quality_ratio == pytest.approx(2500 / 2550)
    assert k.oee == pytest.approx(435 / 465 * 25_500 / 26_100 * 2500 / 2550)
    assert k.mtbf_s == 435 * 60 and k.mttr_s == 1800


def test_the_current_state_counts_up_to_now_and_shifts_are_cut_at_their_boundaries() -> None:
    tracker = KpiTracker(SECTION, [CNC])
    feed(tracker, [(1, at("13:00"), RUN)])
    rows = asyncio.run(tracker.query([10], at("00:00"), at("23:59"), by_shift=True,
                                     now_ns=at("15:30")))
    assert [(r.shift, r.elements.apt_s) for r in rows] == [("A", 3600), ("B", 5400)]
    (whole,) = asyncio.run(tracker.query([10], at("00:00"), at("23:59"), by_shift=False,
                                         now_ns=at("15:30")))
    assert whole.elements.apt_s == 9000 and whole.kpis.availability == 1.0


def test_a_counter_reset_is_not_negative_production() -> None:
    tracker = KpiTracker(SECTION, [CNC])
    feed(tracker, [(2, at("07:00"), 100), (2, at("07:10"), 150), (2, at("07:20"), 20),
                   (2, at("07:30"), 50)], chunk=2)
    (row,) = asyncio.run(tracker.query([10], at("00:00"), at("23:59"), by_shift=False,
                                       now_ns=at("08:00")))
    assert row.elements.gq == 50 + 20 + 30


def test_late_bad_and_nan_samples_are_left_out() -> None:
    tracker = KpiTracker(SECTION, [CNC])
    feed(tracker, [(1, at("07:00"), RUN), (1, at("08:00"), IDLE)])
    tracker.on_samples(batch([(1, at("07:30"), FAULT)]), [], historical=True, received_ns=0)
    tracker.on_samples(batch([(1, at("08:10"), FAULT)], Quality.BAD), [], historical=False,
                       received_ns=0)
    tracker.on_samples(batch([(1, at("08:20"), float("nan"))]), [], historical=False,
                       received_ns=0)
    (row,) = asyncio.run(tracker.query([10], at("00:00"), at("23:59"), by_shift=False,
                                       now_ns=at("09:00")))
    assert tracker.late_samples == 1
    assert (row.elements.apt_s, row.elements.adot_s, row.elements.failures) == (3600, 3600, 0)


def test_a_line_sums_times_and_counts_and_weights_each_machine_by_its_own_ideal_time() -> None:
    tracker = KpiTracker(SECTION, [CNC, PRESS])
    feed(tracker, shift_a(1, 2, 3))
    press = [(11, at("06:00"), RUN), (11, at("12:00"), IDLE), (11, at("14:00"), IDLE),
             (12, at("06:00"), 0), (12, at("14:00"), 14_000), (13, at("06:00"), 0),
             (13, at("14:00"), 400)]
    feed(tracker, press)
    (line,) = asyncio.run(tracker.query([10, 20], at("00:00"), at("23:59"), by_shift=False,
                                        now_ns=at("14:00")))
    e = line.elements
    # press: 360 min running less the 15 min break, then 120 min idle
    assert e.apt_s == (435 + 345) * 60 and e.adot_s == 120 * 60
    assert e.pbt_s == 2 * 465 * 60
    assert e.ideal_s == pytest.approx(2550 * 10 + 14_400 * 1.25)
    assert line.kpis.availability == pytest.approx(780 / 930)
    assert line.kpis.quality_ratio == pytest.approx((2500 + 14_000) / (2550 + 14_400))
    assert line.machines == 2
