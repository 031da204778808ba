"""ISO 22400-2 KPI formulas: the `oee` package's published worked examples, zero divisions and
properties over consistent inputs."""

from __future__ import annotations

import math
from datetime import date

import oee
import pytest
from hypothesis import given
from hypothesis import strategies as st

from millnet.kpi import iso22400 as iso
from millnet.kpi.report import report
from millnet.kpi.store import ShiftTotals


def test_the_oee_packages_worked_example_vorne_fast_guide() -> None:
    # oee's README: a 480 min shift with 60 min of breaks (PBT 420 min), 47 min down, an ideal
    # rate of 60 pieces per minute (PRI 1 s), 19,271 pieces of which 423 rejects. Published:
    # availability 0.888, performance 0.861, quality 0.978, OEE 0.748 (oee.com: 88.81 %,
    # 86.11 %, 97.80 %, 74.79 %).
    pot, pdot, down = 480 * 60.0, 60 * 60.0, 47 * 60.0
    pq, sq, pri = 19_271, 423, 1.0
    pbt = iso.planned_busy_time(pot, pdot)
    apt = pbt - down
    gq = pq - sq
    a = iso.availability(apt, pbt)
    e = iso.effectiveness(pri, iso.produced_quantity(gq, sq), apt)
    q = iso.quality_ratio(gq, pq)
    o = iso.oee_index(a, e, q)
    assert a is not None and e is not None and q is not None and o is not None
    assert (round(a, 3), round(e, 3), round(q, 3), round(o, 3)) == (0.888, 0.861, 0.978, 0.748)
    assert (round(100 * a, 2), round(100 * e, 2), round(100 * q, 2), round(100 * o, 2)) == (
        88.81, 86.11, 97.80, 74.79)
    # and the package itself, computing from the same inputs, agrees to the last digit
    ref = oee.oee(planned_production_time=420, downtime=47, ideal_rate=60, total_count=pq,
                  reject_count=sq, all_time=480)
    assert (a, e, q, o) == pytest.approx(
        (ref.availability, ref.performance, ref.quality, ref.oee), rel=1e-12)


def test_elements_give_the_same_kpis_as_the_separate_functions() -> None:
    e = iso.Elements(pbt_s=25_200, apt_s=22_380, gq=18_848, sq=423, ideal_s=19_271.0)
    k = iso.kpis(e)
    assert k.availability == iso.availability(22_380, 25_200)
    assert k.effectiveness == iso.effectiveness(1.0, 19_271, 22_380)
    assert k.quality_ratio == iso.quality_ratio(18_848, 19_271)
    assert k.oee == iso.oee_index(k.availability, k.effectiveness, k.quality_ratio)


def test_reliability_example_of_the_oee_package() -> None:
    # README: operating time 1000, 5 failures, 50 of repair: MTBF 200, MTTR 10.
    ref = oee.reliability(operating_time=1000, failures=5, total_repair_time=50)
    assert iso.mtbf(1000, 5) == ref.mtbf == 200
    assert iso.mttr(50, 5) == ref.mttr == 10
    k = iso.kpis(iso.Elements(pbt_s=1100, apt_s=900, aust_s=100, adet_s=50, failures=5,
                              restorations=5, ttr_s=50))
    assert (k.mtbf_s, k.mttr_s) == (200, 10)  # TBF is production plus setup time


def test_undefined_ratios_are_none_not_errors() -> None:
    assert iso.availability(0, 0) is None
    assert iso.effectiveness(1.0, 10, 0) is None
    assert iso.quality_ratio(0, 0) is None
    assert iso.oee_index(0.5, None, 1.0) is None
    assert iso.mtbf(3600, 0) is None
    assert iso.mttr(0, 0) is None
    k = iso.kpis(iso.Elements(pbt_s=0, apt_s=0, ideal_s=None))
    assert (k.availability, k.effectiveness, k.quality_ratio, k.oee, k.mtbf_s, k.mttr_s) == (
        None, None, None, None, None, None)


@st.composite
def consistent(draw: st.DrawFn) -> iso.Elements:
    pbt = draw(st.floats(1.0, 1e6))
    apt = draw(st.floats(0.0, 1.0)) * pbt
    pri = draw(st.floats(0.01, 100.0))
    pq = math.floor(apt / pri * draw(st.floats(0.0, 1.0)))
    sq = draw(st.integers(0, pq))
    return iso.Elements(pbt_s=pbt, apt_s=apt, adet_s=pbt - apt, gq=pq - sq, sq=sq,
                        ideal_s=pri * pq, failures=draw(st.integers(0, 50)))


@given(consistent())
def test_kpis_of_consistent_inputs_are_fractions_and_oee_is_their_product(
        e: iso.Elements) -> None:
    k = iso.kpis(e)
    assert k.availability is not None and 0.0 <= k.availability <= 1.0
    for factor in (k.effectiveness, k.quality_ratio):
        assert factor is None or 0.0 <= factor <= 1.0 + 1e-12
    if k.effectiveness is not None and k.quality_ratio is not None:
        assert k.oee == pytest.approx(k.availability * k.effectiveness * k.quality_ratio)
        assert k.oee is not None and 0.0 <= k.oee <= 1.0 + 1e-12
    else:
        assert k.oee is None
    assert (k.mtbf_s is None) == (e.failures == 0)


def test_a_group_is_computed_from_summed_elements_as_the_oee_package_aggregates() -> None:
    # oee's README: OEE 0.80 and 0.45 roll up to 0.5375 on their times, not the average.
    m1 = ShiftTotals(1, 1, "A", date(2025, 1, 6), 0, 1, apt_s=90, adet_s=10, gq=80, sq=0)
    m2 = ShiftTotals(2, 1, "A", date(2025, 1, 6), 0, 1, apt_s=150, adet_s=150, gq=135, sq=15)
    ref = oee.aggregate([
        oee.oee(planned_production_time=100, run_time=90, ideal_cycle_time=1, total_count=80,
                good_count=80),
        oee.oee(planned_production_time=300, run_time=150, ideal_cycle_time=1,
                total_count=150, good_count=135)])
    (row,) = report([m1, m2], {1: "x", 2: "x"}, {"x": 1.0}, by_shift=False)
    assert row.kpis.oee == pytest.approx(ref.oee) and row.kpis.oee == pytest.approx(0.5375)
    singles = [report([m], {1: "x", 2: "x"}, {"x": 1.0}, by_shift=False)[0].kpis.oee
               for m in (m1, m2)]
    assert singles == [pytest.approx(0.80), pytest.approx(0.45)]
