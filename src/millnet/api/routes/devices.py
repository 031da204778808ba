"""Devices (assets of kind ``device``) and their points (the series telemetry is queried by)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter

from millnet.api.auth import Operator, Viewer
from millnet.api.context import Ctx
from millnet.api.errors import AUTH_ERRORS, responses
from millnet.api.params import ObjectId
from millnet.api.routes.assets import TENANT_QUERY
from millnet.api.schemas import AssetOut, DeviceOut, IdentifierIn, PointOut
from millnet.api.scope import tenant_of_request, visible_asset, visible_point
from millnet.model import AssetKind

router = APIRouter(tags=["devices"])


def _device_ids(nodes: Any) -> Iterator[int]:
    for node in nodes:
        if node["kind"] == AssetKind.DEVICE:
            yield int(node["id"])
        yield from _device_ids(node.get("children", ()))


@router.get("/devices", response_model=list[AssetOut], summary="The tenant's devices",
            responses=responses(*AUTH_ERRORS, 404))
def list_devices(ctx: Ctx, caller: Viewer, tenant_id: int | None = TENANT_QUERY
                 ) -> list[AssetOut]:
    tenant = tenant_of_request(ctx, caller, tenant_id)
    # The registry has no "assets of a kind" query yet: walk the tree, then read each device.
    tree = ctx.registry.asset_tree(tenant)
    devices = [ctx.registry.get_asset(i, tenant_id=tenant) for i in _device_ids(tree)]
    return [AssetOut.of(d) for d in sorted(devices, key=lambda d: d.path)]


@router.get("/devices/{device_id}", response_model=DeviceOut,
            summary="One device with its points", responses=responses(*AUTH_ERRORS, 404))
def get_device(ctx: Ctx, caller: Viewer, device_id: ObjectId) -> DeviceOut:
    device = visible_asset(ctx, caller, device_id, AssetKind.DEVICE)
    points = ctx.registry.list_points(device.tenant_id, device_id)
    return DeviceOut.model_validate(
        {**AssetOut.of(device).model_dump(), "points": [PointOut.of(p) for p in points],
         "identifier": ctx.registry.identifier_of(device_id)})


@router.put("/devices/{device_id}/identifier", response_model=DeviceOut,
            summary="Link a device to its global identifier (operators)",
            responses=responses(*AUTH_ERRORS, 404, 409))
def set_device_identifier(ctx: Ctx, caller: Operator, device_id: ObjectId,
                          body: IdentifierIn) -> DeviceOut:
    """Record which identifier (registered at an identifier node, e.g. with ``millnet id
    register``) names this device; resolving the identifier should link back here."""
    device = visible_asset(ctx, caller, device_id, AssetKind.DEVICE)
    ctx.registry.set_identifier(device.tenant_id, device_id, body.handle)
    return get_device(ctx, caller, device_id)


@router.get("/devices/{device_id}/points", response_model=list[PointOut],
            summary="The points of a device", responses=responses(*AUTH_ERRORS, 404))
def list_device_points(ctx: Ctx, caller: Viewer, device_id: ObjectId) -> list[PointOut]:
    device = visible_asset(ctx, caller, device_id, AssetKind.DEVICE)
    return [PointOut.of(p) for p in ctx.registry.list_points(device.tenant_id, device_id)]


@router.get("/points", response_model=list[PointOut], summary="All points of the tenant",
            responses=responses(*AUTH_ERRORS, 404))
def list_points(ctx: Ctx, caller: Viewer, tenant_id: int | None = TENANT_QUERY
                ) -> list[PointOut]:
    tenant = tenant_of_request(ctx, caller, tenant_id)
    return [PointOut.of(p) for p in ctx.registry.list_points(tenant)]


@router.get("/points/{series_id}", response_model=PointOut, summary="One point by series id",
            responses=responses(*AUTH_ERRORS, 404))
def get_point(ctx: Ctx, caller: Viewer, series_id: ObjectId) -> PointOut:
    return PointOut.of(visible_point(ctx, caller, series_id))
