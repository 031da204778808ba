"""Binds what sources call their points (a device path and a point name) to series ids.

The registry is the authority (it creates assets and points on first sight); this cache keeps the
hot path to dictionary lookups. Registry calls are synchronous and run in a worker thread.

Sources create devices and points on first sight, so the binder is where hostile input would
grow the registry without bound: every spec is checked with the registry's own rules first (a
bad point costs a counted rejection of that point, not the message or the node), and the
tenant's quotas on automatically created devices and points are enforced here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from millnet.errors import InvalidInput, QuotaExceeded, RejectedMessage
from millnet.model import AssetKind, PointSpec
from millnet.registry import Registry
from millnet.registry.assets import check_path
from millnet.registry.points import check_specs

DevicePath = tuple[str, str, str, str]  # site, area, line, device

_LEVELS = (AssetKind.SITE, AssetKind.AREA, AssetKind.LINE, AssetKind.DEVICE)


@dataclass(frozen=True, slots=True)
class Quotas:
    """Per-tenant bounds on what sources may create without an operator (None: unbounded)."""

    max_devices: int | None = None
    max_points: int | None = None


@dataclass(frozen=True, slots=True)
class Refusal:
    """A point the binder would not bind: its name, the counter reason and why."""

    name: str
    reason: str
    detail: str


@dataclass(frozen=True, slots=True)
class Binding:
    ids: dict[str, int]
    refused: tuple[Refusal, ...] = ()


class SeriesBinder:
    @property
    def tenant_id(self) -> int:
        return self._tenant_id

    def __init__(self, registry: Registry, tenant_id: int, enterprise: str,
                 quotas: Quotas = Quotas()) -> None:
        self._registry = registry
        self._tenant_id = tenant_id
        self._enterprise = enterprise
        self._quotas = quotas
        self._points: dict[DevicePath, dict[str, int]] = {}

    def known(self, device: DevicePath) -> dict[str, int]:
        """Series ids already bound for ``device`` (a live view; do not mutate)."""
        ids = self._points.get(device)
        return ids if ids is not None else {}

    async def bind(self, device: DevicePath, specs: Sequence[PointSpec]) -> Binding:
        """Create or update the device's points; name -> series id for the accepted ``specs``.

        Raises :class:`RejectedMessage` when the device itself cannot be created (a bad name,
        the device quota); single points that are invalid or beyond the point quota are
        returned as refusals. :class:`StorageError` (the registry is unreachable) propagates:
        the input is fine, the caller should retry it later."""
        path = [(AssetKind.ENTERPRISE, self._enterprise), *zip(_LEVELS, device, strict=True)]
        try:
            check_path(path)
        except InvalidInput as exc:
            where = "/".join(device)[:120]
            raise RejectedMessage("invalid_device", f"device {where!r}: {exc}") from None
        good, refused = _screen(specs)
        if not good:
            return Binding({}, tuple(refused))
        try:
            ids = await asyncio.to_thread(self._bind_sync, path, good)
        except QuotaExceeded as exc:
            raise RejectedMessage("quota", str(exc)) from None
        refused += [Refusal(s.name, "quota",
                            f"tenant point quota {self._quotas.max_points} reached")
                    for s in good if s.name not in ids]
        self._points.setdefault(device, {}).update(ids)
        return Binding(ids, tuple(refused))

    def _bind_sync(self, path: list[tuple[AssetKind, str]],
                   specs: list[PointSpec]) -> dict[str, int]:
        device_id = self._registry.ensure_path(self._tenant_id, path,
                                               max_devices=self._quotas.max_devices)[-1]
        return self._registry.upsert_points(self._tenant_id, device_id, specs,
                                            max_points=self._quotas.max_points)


def _screen(specs: Sequence[PointSpec]) -> tuple[list[PointSpec], list[Refusal]]:
    """Split ``specs`` into those the registry accepts and refusals naming what was wrong."""
    good: list[PointSpec] = []
    refused: list[Refusal] = []
    seen: set[str] = set()
    for spec in specs:
        try:
            check_specs([spec])
        except InvalidInput as exc:
            refused.append(Refusal(str(spec.name)[:40], "invalid_point", str(exc)))
            continue
        if spec.name in seen:
            refused.append(Refusal(spec.name, "invalid_point", f"duplicate name {spec.name!r}"))
            continue
        seen.add(spec.name)
        good.append(spec)
    return good, refused
