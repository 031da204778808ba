"""KPIs after ISO 22400-2 per machine or line (``GET /kpi``) and continuous roll-ups
(``GET /telemetry/rollups``); docs/kpi.md has the definitions.

Every answer carries the elements its KPIs were computed from (times in seconds, counts), so
that the arithmetic can be checked. An asset or series of another tenant answers 404 like one
that does not exist; any role reads.
"""

from __future__ import annotations

import asyncio
import time
from datetime import date
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from millnet.api.auth import Viewer
from millnet.api.context import Ctx
from millnet.api.errors import AUTH_ERRORS, responses
from millnet.api.params import INT32_MAX, parse_series, parse_time, time_range, to_ms
from millnet.api.scope import check_series, visible_asset
from millnet.errors import InvalidInput
from millnet.kpi.report import KpiRow
from millnet.kpi.tracker import KpiTracker
from millnet.model import AssetKind
from millnet.telemetry.rollups import RollupRow, Rollups

router = APIRouter(tags=["kpi"])
rollup_router = APIRouter(prefix="/telemetry", tags=["telemetry"])
DAY_NS = 86_400 * 1_000_000_000
MAX_RANGE_NS = 400 * DAY_NS


class KpiInputs(BaseModel):
    pbt_s: float = Field(description="Planned busy time: observed time in shifts, less breaks "
                                     "and planned stops (APT + AUST + ADET + ADOT)")
    apt_s: float = Field(description="Actual production time (running)")
    aust_s: float = Field(description="Actual unit setup time")
    adet_s: float = Field(description="Actual unit delay time (fault)")
    adot_s: float = Field(description="Actual unit down time (stopped, idle)")
    pdot_s: float = Field(description="Planned down time in a planned-stop state (breaks are "
                                      "outside PBT)")
    pq: float = Field(description="Produced quantity: GQ + SQ + RQ")
    gq: float = Field(description="Good quantity")
    sq: float = Field(description="Scrap quantity")
    rq: float = Field(description="Rework quantity (0: not measured)")
    ideal_s: float | None = Field(description="PRI x PQ summed per machine (null when a "
                                              "machine's type has no ideal cycle time)")
    tbf_s: float = Field(description="Operating time between failures: APT + AUST")
    failures: int = Field(description="Failure events (entries into a fault state)")
    restorations: int
    ttr_s: float = Field(description="Sum of the times to restoration")


class KpiValues(BaseModel):
    availability: float | None = Field(description="APT / PBT")
    effectiveness: float | None = Field(description="PRI x PQ / APT")
    quality_ratio: float | None = Field(description="GQ / PQ")
    oee: float | None = Field(description="availability x effectiveness x quality ratio")
    mtbf_s: float | None = Field(description="TBF / failures")
    mttr_s: float | None = Field(description="TTR / restorations")


class KpiRowOut(BaseModel):
    shift: str | None = Field(description="The shift (by=shift), else null")
    day: date | None = Field(description="The local date the shift instance starts on")
    start_ms: float | None
    end_ms: float | None
    machines: int = Field(description="Machines with data in this row")
    inputs: KpiInputs
    kpis: KpiValues

    @classmethod
    def of(cls, r: KpiRow) -> KpiRowOut:
        e, k = r.elements, r.kpis
        return cls(
            shift=r.shift, day=r.day,
            start_ms=None if r.start_ns is None else to_ms(r.start_ns),
            end_ms=None if r.end_ns is None else to_ms(r.end_ns), machines=r.machines,
            inputs=KpiInputs(pbt_s=e.pbt_s, apt_s=e.apt_s, aust_s=e.aust_s, adet_s=e.adet_s,
                             adot_s=e.adot_s, pdot_s=e.pdot_s, pq=e.pq, gq=e.gq, sq=e.sq,
                             rq=e.rq, ideal_s=e.ideal_s, tbf_s=e.tbf_s, failures=e.failures,
                             restorations=e.restorations, ttr_s=e.ttr_s),
            kpis=KpiValues(availability=k.availability, effectiveness=k.effectiveness,
                           quality_ratio=k.quality_ratio, oee=k.oee, mtbf_s=k.mtbf_s,
                           mttr_s=k.mttr_s))


class KpiAnswer(BaseModel):
    level: Literal["machine", "line"]
    asset_id: int
    start_ms: float
    end_ms: float
    by: Literal["shift", "none"]
    rows: list[KpiRowOut] = Field(description="by=shift: one row per shift instance starting "
                                              "in the range; by=none: one row")


def _range(start: str | None, end: str | None) -> tuple[int, int]:
    end_ns = parse_time(end, "end") if end is not None else time.time_ns()
    start_ns = parse_time(start, "start") if start is not None else end_ns - DAY_NS
    if end_ns - start_ns > MAX_RANGE_NS:
        raise InvalidInput("the range is longer than 400 days", "start")
    return start_ns, end_ns


@router.get("/kpi", response_model=KpiAnswer,
            summary="ISO 22400-2 KPIs of a machine or a line, per shift or over a range",
            responses=responses(*AUTH_ERRORS, 400, 404))
async def get_kpis(
    request: Request, ctx: Ctx, caller: Viewer,
    asset_id: Annotated[int, Query(ge=1, le=INT32_MAX, description="A device (level=machine) "
                                                                   "or a line (level=line)")],
    level: Literal["machine", "line"] = "machine",
    start: Annotated[str | None, Query(description="Shift instances starting at or after "
                                                   "(ISO 8601 or epoch ms); default a day "
                                                   "before end")] = None,
    end: Annotated[str | None, Query(description="... and before this; default now")] = None,
    by: Literal["shift", "none"] = "shift",
) -> KpiAnswer:
    start_ns, end_ns = _range(start, end)
    tracker: KpiTracker = request.app.state.kpi
    kind = AssetKind.DEVICE if level == "machine" else AssetKind.LINE
    asset = await asyncio.to_thread(visible_asset, ctx, caller, asset_id, kind)
    machines = [asset.id]
    if level == "line":
        children = await asyncio.to_thread(ctx.registry.list_children, asset.tenant_id, asset.id)
        machines = [c.id for c in children if c.kind is AssetKind.DEVICE]
    rows = await tracker.query(machines, start_ns, end_ns, by_shift=by == "shift")
    return KpiAnswer(level=level, asset_id=asset_id, start_ms=to_ms(start_ns),
                     end_ms=to_ms(end_ns), by=by, rows=[KpiRowOut.of(r) for r in rows])


class RollupSeries(BaseModel):
    series_id: int
    ts_ms: list[float] = Field(description="Bucket starts (epoch-aligned, epoch ms UTC)")
    count: list[int] = Field(description="GOOD and UNCERTAIN samples, NaN excluded")
    sum: list[float]
    min: list[float]
    max: list[float]
    first_ts_ms: list[float]
    first: list[float]
    last_ts_ms: list[float]
    last: list[float]


class RollupAnswer(BaseModel):
    width: Literal["1m", "1h"]
    start_ms: float
    end_ms: float
    series: list[RollupSeries] = Field(description="In the order requested; buckets without "
                                                   "samples are left out")


def _series(sid: int, rows: list[RollupRow]) -> RollupSeries:
    return RollupSeries(
        series_id=sid, ts_ms=[to_ms(r.bucket_ns) for r in rows], count=[r.count for r in rows],
        sum=[r.sum for r in rows], min=[r.min for r in rows], max=[r.max for r in rows],
        first_ts_ms=[to_ms(r.first_ns) for r in rows], first=[r.first for r in rows],
        last_ts_ms=[to_ms(r.last_ns) for r in rows], last=[r.last for r in rows])


@rollup_router.get("/rollups", response_model=RollupAnswer,
                   summary="Continuous 1m or 1h roll-ups of one or more series (kept "
                           "incrementally: no raw data is read)",
                   responses=responses(*AUTH_ERRORS, 400, 404))
async def get_rollups(
    request: Request, ctx: Ctx, caller: Viewer,
    series: Annotated[list[str] | None, Query(description="Series ids, repeated or "
                                                          "comma-separated")] = None,
    width: Literal["1m", "1h"] = "1m",
    start: Annotated[str | None, Query(description="Buckets starting at or after; default "
                                                   "an hour before end")] = None,
    end: Annotated[str | None, Query(description="... and before this; default now")] = None,
) -> RollupAnswer:
    ids = parse_series(series or [], ctx.limits.max_series)
    start_ns, end_ns = time_range(start, end, ctx.limits)
    await asyncio.to_thread(check_series, ctx, caller, ids)
    rollups: Rollups = request.app.state.rollups
    found = await rollups.query(ids, width, start_ns, end_ns) if start_ns < end_ns else []
    by_series: dict[int, list[RollupRow]] = {sid: [] for sid in ids}
    for row in found:
        by_series[row.series_id].append(row)
    return RollupAnswer(width=width, start_ms=to_ms(start_ns), end_ms=to_ms(end_ns),
                        series=[_series(sid, by_series[sid]) for sid in ids])
