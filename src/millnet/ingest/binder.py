"""Binds what sources call their points (a device path and a point name) to series ids.

The registry is the authority (it creates assets and points on first sight); this cache keeps the
hot path to dictionary lookups. Registry calls are synchronous and run in a worker thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from millnet.model import AssetKind, PointSpec
from millnet.registry import Registry

DevicePath = tuple[str, str, str, str]  # site, area, line, device

_LEVELS = (AssetKind.SITE, AssetKind.AREA, AssetKind.LINE, AssetKind.DEVICE)


class SeriesBinder:
    def __init__(self, registry: Registry, tenant_id: int, enterprise: str) -> None:
        self._registry = registry
        self._tenant_id = tenant_id
        self._enterprise = enterprise
        self._points: dict[DevicePath, dict[str, int]] = {}

    def known(self, device: DevicePath) -> dict[str, int]:
        """Series ids already bound for ``device`` (a live view; do not mutate)."""
        return self._points.setdefault(device, {})

    async def bind(self, device: DevicePath, specs: Sequence[PointSpec]) -> dict[str, int]:
        """Create or update the device's points; returns name -> series id for ``specs``."""
        ids = await asyncio.to_thread(self._bind_sync, device, list(specs))
        self.known(device).update(ids)
        return ids

    def _bind_sync(self, device: DevicePath, specs: list[PointSpec]) -> dict[str, int]:
        path = [(AssetKind.ENTERPRISE, self._enterprise), *zip(_LEVELS, device, strict=True)]
        device_id = self._registry.ensure_path(self._tenant_id, path)[-1]
        return self._registry.upsert_points(self._tenant_id, device_id, specs)
