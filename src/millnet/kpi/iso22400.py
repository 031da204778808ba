"""KPIs of ISO 22400-2:2014 (Key performance indicators for manufacturing operations
management, Part 2: Definitions and descriptions), as pure functions over its elements.

Elements (clause 5, "Elements"), times in any one unit, quantities in items:

* POT planned operation time, PDOT planned down time, PBT = POT - PDOT planned busy time;
* APT actual production time (only the value-adding functions), AUST actual unit setup time,
  ADET actual unit delay time (malfunctions, minor stoppages: unplanned), ADOT actual unit down
  time (available but not running with orders);
* PQ produced quantity = GQ good + SQ scrap + RQ rework quantity;
* PRI planned run time per item (the ideal cycle time; named PRU in some editions' tables);
* FE failure events, TBF operating time between failures (setup and production time, no delay
  times, IEC 60050-191), TTR time to restoration (down state due to a failure).

KPIs (clause 6, "KPI descriptions"; the 2014 edition's numbering of its KPI list in brackets):
availability = APT / PBT (6.2.8), effectiveness = PRI x PQ / APT (6.2.9), quality ratio =
GQ / PQ (6.2.10), OEE index = availability x effectiveness x quality ratio (6.2.6), mean
operating time between failures MTBF = sum(TBF_i) / FE (6.2.31), mean time to restoration MTTR
= sum(TTR_i) / FE over the restored failures (6.2.33).

A ratio whose denominator is zero is undefined: the functions answer ``None``, never raise.
Nothing is capped: an effectiveness above 1 says that PRI is set too high (or counts are off),
and is shown as it is so that it gets fixed.
"""

from __future__ import annotations

from dataclasses import dataclass


def _ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator > 0 else None


def planned_busy_time(pot: float, pdot: float) -> float:
    """PBT = POT - PDOT (clause 5, time elements)."""
    return pot - pdot


def produced_quantity(gq: float, sq: float, rq: float = 0.0) -> float:
    """PQ = GQ + SQ + RQ (clause 5, quantity elements)."""
    return gq + sq + rq


def availability(apt: float, pbt: float) -> float | None:
    """Availability = APT / PBT (ISO 22400-2:2014, 6.2.8)."""
    return _ratio(apt, pbt)


def effectiveness(pri: float, pq: float, apt: float) -> float | None:
    """Effectiveness = PRI x PQ / APT (ISO 22400-2:2014, 6.2.9): the ideal time of what was
    produced over the time spent producing it (OEE's "performance")."""
    return _ratio(pri * pq, apt)


def quality_ratio(gq: float, pq: float) -> float | None:
    """Quality ratio = GQ / PQ (ISO 22400-2:2014, 6.2.10)."""
    return _ratio(gq, pq)


def oee_index(a: float | None, e: float | None, q: float | None) -> float | None:
    """OEE index = availability x effectiveness x quality ratio (ISO 22400-2:2014, 6.2.6);
    undefined when any factor is."""
    if a is None or e is None or q is None:
        return None
    return a * e * q


def mtbf(tbf_total: float, fe: int) -> float | None:
    """Mean operating time between failures = sum of TBF_i / FE (ISO 22400-2:2014, 6.2.31):
    the operating time (production and setup, no delay times) over the number of failures."""
    return _ratio(tbf_total, fe)


def mttr(ttr_total: float, restorations: int) -> float | None:
    """Mean time to restoration = sum of TTR_i / number of restored failures (ISO 22400-2:2014,
    6.2.33); a failure not yet restored has no TTR yet."""
    return _ratio(ttr_total, restorations)


@dataclass(frozen=True, slots=True)
class Elements:
    """The elements of one work unit (or a sum over several) for one period; times in
    seconds. ``ideal_s`` is PRI x PQ, summed per machine (machines differ in PRI); None when
    some machine's PRI is not known."""

    pbt_s: float
    apt_s: float
    aust_s: float = 0.0
    adet_s: float = 0.0
    adot_s: float = 0.0
    pdot_s: float = 0.0
    gq: float = 0.0
    sq: float = 0.0
    rq: float = 0.0
    ideal_s: float | None = 0.0
    failures: int = 0
    restorations: int = 0
    ttr_s: float = 0.0

    @property
    def pq(self) -> float:
        return produced_quantity(self.gq, self.sq, self.rq)

    @property
    def tbf_s(self) -> float:
        """Operating time: production and setup (TBF excludes delay times)."""
        return self.apt_s + self.aust_s


@dataclass(frozen=True, slots=True)
class Kpis:
    availability: float | None
    effectiveness: float | None
    quality_ratio: float | None
    oee: float | None
    mtbf_s: float | None
    mttr_s: float | None


def kpis(e: Elements) -> Kpis:
    """Every KPI of ``e``; effectiveness from ``ideal_s`` (PRI x PQ, already multiplied)."""
    a = availability(e.apt_s, e.pbt_s)
    eff = None if e.ideal_s is None else _ratio(e.ideal_s, e.apt_s)
    q = quality_ratio(e.gq, e.pq)
    return Kpis(a, eff, q, oee_index(a, eff, q), mtbf(e.tbf_s, e.failures),
                mttr(e.ttr_s, e.restorations))
