"""KPIs of machines and lines from shift totals: sums of times and counts, then the ISO
22400-2 formulas over the sums.

A line's (or any group's) KPIs are computed from the summed elements of its machines, never by
averaging their KPIs: availability = sum(APT) / sum(PBT) (time-weighted), effectiveness =
sum(PRI_m x PQ_m) / sum(APT) (each machine with its own PRI), quality ratio = sum(GQ) /
sum(PQ), OEE = their product; MTBF = sum(operating time) / sum(failures), MTTR = sum(TTR) /
sum(restorations).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date

from millnet.kpi.iso22400 import Elements, Kpis, kpis
from millnet.kpi.store import ShiftTotals


@dataclass(frozen=True, slots=True)
class KpiRow:
    """KPIs of one shift instance (``shift``, ``day``, its times) or of a whole range (all
    None), over ``machines`` machines, with the elements they were computed from."""

    shift: str | None
    day: date | None
    start_ns: int | None
    end_ns: int | None
    machines: int
    elements: Elements
    kpis: Kpis


def _elements(rows: list[ShiftTotals], types: Mapping[int, str | None],
              ideal_cycle_s: Mapping[str, float]) -> Elements:
    ideal: float | None = 0.0
    for t in rows:
        kind = types.get(t.asset_id)
        pri = ideal_cycle_s.get(kind) if kind is not None else None
        ideal = None if ideal is None or pri is None else ideal + pri * (t.gq + t.sq)
    apt = sum(t.apt_s for t in rows)
    aust = sum(t.aust_s for t in rows)
    adet = sum(t.adet_s for t in rows)
    adot = sum(t.adot_s for t in rows)
    return Elements(
        pbt_s=apt + aust + adet + adot, apt_s=apt, aust_s=aust, adet_s=adet, adot_s=adot,
        pdot_s=sum(t.pdot_s for t in rows), gq=sum(t.gq for t in rows),
        sq=sum(t.sq for t in rows), ideal_s=ideal if rows else 0.0,
        failures=sum(t.failures for t in rows),
        restorations=sum(t.restorations for t in rows), ttr_s=sum(t.ttr_s for t in rows))


def report(rows: Iterable[ShiftTotals], types: Mapping[int, str | None],
           ideal_cycle_s: Mapping[str, float], *, by_shift: bool) -> list[KpiRow]:
    """One row per shift instance (in start order) with ``by_shift``, else one row."""
    every = list(rows)
    if not by_shift:
        e = _elements(every, types, ideal_cycle_s)
        return [KpiRow(None, None, None, None, len({t.asset_id for t in every}), e, kpis(e))]
    groups: dict[tuple[date, str], list[ShiftTotals]] = {}
    for t in every:
        groups.setdefault((t.day, t.shift), []).append(t)
    answer = []
    for (day, shift), group in sorted(groups.items(), key=lambda g: g[1][0].start_ns):
        e = _elements(group, types, ideal_cycle_s)
        answer.append(KpiRow(shift, day, group[0].start_ns, group[0].end_ns,
                             len({t.asset_id for t in group}), e, kpis(e)))
    return answer
