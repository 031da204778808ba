"""``GET /api/v1/assets/{asset_id}/status``: the state of every machine under an asset and the
roll-up per site, area and line (running, idle, down, unknown machines and active alarms).

A machine's state is the last value of its state point (``kpi.state_point``, ``State`` in the
demo factory), read from the telemetry store's in-memory last values, never from raw telemetry;
what the values mean is ``[kpi.states]``: running, fault (down), anything else idle (setup,
stopped, planned stop). A device without a state point, without a value yet, or whose last value
is bad or stale (its source went away) is unknown; a device without a state point is no machine
(a meter, an edge node's own metrics) and is not counted. Active alarms are those annunciated with
their condition active (``unack_active``, ``acked_active``), counted at their asset and at every
ancestor. One request costs three registry queries (the asset, the tree, the state points),
one alarm query and a memory lookup.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from millnet.alarms.records import AlarmFilter
from millnet.alarms.service import AlarmService
from millnet.api.auth import Viewer
from millnet.api.context import ApiContext
from millnet.api.errors import AUTH_ERRORS, responses
from millnet.api.params import ObjectId, to_ms
from millnet.api.scope import visible_asset
from millnet.kpi.settings import StateValues
from millnet.model import AssetKind, Quality
from millnet.model.alarms import AlarmState
from millnet.registry import AssetNode

router = APIRouter(tags=["assets"])

MachineState = Literal["running", "idle", "down", "unknown"]
#: Active alarms counted at most this many per request (newest first); beyond, ``truncated``.
MAX_ALARMS = 10_000


class DeviceStatus(BaseModel):
    device_id: int
    state: MachineState | None = Field(
        description="null: not a machine (the device has no state point); not counted")
    value: float | None = Field(description="The state point's last value")
    ts_ms: float | None = Field(description="When it was measured (epoch ms)")
    alarms: int = Field(description="Active alarms of the device")


class NodeStatus(BaseModel):
    asset_id: int
    kind: AssetKind
    running: int
    idle: int
    down: int
    unknown: int
    alarms: int = Field(description="Active alarms of the asset and everything under it")


class AssetStatus(BaseModel):
    asset_id: int
    state_point: str = Field(description="The point whose value is a machine's state")
    nodes: list[NodeStatus] = Field(description="The asset and every asset under it that is "
                                                "not a device, in tree order")
    devices: list[DeviceStatus] = Field(description="Every device under the asset")
    alarms_truncated: bool = Field(description="More active alarms than counted "
                                               f"({MAX_ALARMS:,})")


@dataclass
class _Counts:
    running: int = 0
    idle: int = 0
    down: int = 0
    unknown: int = 0
    alarms: int = 0
    devices: list[int] = field(default_factory=list)


def _subtree(roots: list[AssetNode], asset_id: int) -> AssetNode | None:
    stack = list(roots)
    while stack:
        node = stack.pop()
        if node["id"] == asset_id:
            return node
        stack.extend(node["children"])
    return None


def state_of(value: float | None, quality: int | None, states: StateValues) -> MachineState:
    if value is None or quality is None or quality >= Quality.BAD or math.isnan(value):
        return "unknown"
    if int(value) in states.running:
        return "running"
    if int(value) in states.fault:
        return "down"
    return "idle"


def _machine_states(ctx: ApiContext, tenant_id: int, device_ids: set[int], point: str,
                    states: StateValues) -> dict[int, tuple[MachineState | None, float | None,
                                                            float | None]]:
    series = {device: sid for device, sid in ctx.registry.series_named(tenant_id, point).items()
              if device in device_ids}
    last = ctx.store.last_values(series.values())
    found: dict[int, tuple[MachineState | None, float | None, float | None]] = {}
    for device in device_ids:
        if device not in series:
            found[device] = (None, None, None)
            continue
        lv = last.get(series[device])
        if lv is None or lv.text is not None:
            found[device] = ("unknown", None, None)
            continue
        value = None if lv.value is None or math.isnan(lv.value) else lv.value
        found[device] = (state_of(value, int(lv.quality), states), value, to_ms(lv.ts_ns))
    return found


def _tree(ctx: ApiContext, tenant_id: int, asset_id: int) -> AssetNode:
    node = _subtree(ctx.registry.asset_tree(tenant_id), asset_id)
    assert node is not None  # visible_asset found it in this tenant
    return node


@router.get("/assets/{asset_id}/status", response_model=AssetStatus,
            summary="Machine states and alarm counts under an asset, rolled up per level",
            responses=responses(*AUTH_ERRORS, 404))
async def asset_status(request: Request, caller: Viewer, asset_id: ObjectId) -> AssetStatus:
    ctx: ApiContext = request.app.state.millnet
    asset = await run_in_threadpool(visible_asset, ctx, caller, asset_id)
    root = await run_in_threadpool(_tree, ctx, asset.tenant_id, asset_id)
    kpi = getattr(request.app.state, "kpi", None)
    point = kpi.section.state_point if kpi is not None else "State"
    values: StateValues = kpi.section.states if kpi is not None else StateValues()
    devices: list[int] = []
    parent: dict[int, int] = {}
    stack = [root]
    while stack:
        node = stack.pop()
        if node["kind"] == AssetKind.DEVICE:
            devices.append(node["id"])
        for child in node["children"]:
            parent[child["id"]] = node["id"]
            stack.append(child)
    machine = await run_in_threadpool(_machine_states, ctx, asset.tenant_id, set(devices),
                                      point, values)
    alarms_at, truncated = await _active_alarms(request, asset.tenant_id)
    counts: dict[int, _Counts] = {}

    def up(start: int) -> list[_Counts]:  # the asset and its ancestors within the subtree
        chain = [start]
        while chain[-1] in parent:
            chain.append(parent[chain[-1]])
        return [counts.setdefault(a, _Counts()) for a in chain]

    for device in devices:
        state = machine[device][0]
        if state is None:
            continue
        for c in up(device):
            setattr(c, state, getattr(c, state) + 1)
    for where, n in alarms_at.items():
        if where == asset_id or where in parent:
            for c in up(where):
                c.alarms += n
    nodes = []
    order = [root]
    while order:
        node = order.pop(0)
        if node["kind"] != AssetKind.DEVICE:
            c = counts.get(node["id"], _Counts())
            nodes.append(NodeStatus(asset_id=node["id"], kind=AssetKind(node["kind"]),
                                    running=c.running, idle=c.idle, down=c.down,
                                    unknown=c.unknown, alarms=c.alarms))
            order.extend(node["children"])
    return AssetStatus(
        asset_id=asset_id, state_point=point, nodes=nodes, alarms_truncated=truncated,
        devices=[DeviceStatus(device_id=d, state=machine[d][0], value=machine[d][1],
                              ts_ms=machine[d][2], alarms=alarms_at.get(d, 0))
                 for d in sorted(devices)])


async def _active_alarms(request: Request, tenant_id: int) -> tuple[dict[int, int], bool]:
    """Asset id -> active alarms there (none when the node runs no alarms)."""
    service: AlarmService | None = getattr(request.app.state, "alarms", None)
    if service is None:
        return {}, False
    found = await service.list_alarms(AlarmFilter(
        tenant_id=tenant_id, states=(AlarmState.UNACK, AlarmState.ACKED), limit=MAX_ALARMS + 1))
    at: dict[int, int] = {}
    for alarm in found[:MAX_ALARMS]:
        at[alarm.asset_id] = at.get(alarm.asset_id, 0) + 1
    return at, len(found) > MAX_ALARMS
