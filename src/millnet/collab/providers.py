"""What a share carries: a small registry of providers, one per share kind.

A *provider* answers, for a tenant and a target (the part of the scope after the kind), the
payload a partner sees: a JSON-able dict built from the owner's own stores. It raises
``NotFound`` when the target does not exist in that tenant (a share of it is then refused),
and is called in a worker thread, at ``share create`` and on every push round while the share
is live. A payload should say what the target is now, not its history: a partner's node keeps
only the last one.

Providers are built from the node's stores (:class:`Sources`) by a *factory*:

    def share_provider(sources: Sources) -> Provider: ...
    register_kind("device-status", device_status)

``device-status`` is here. ``trace`` and ``order`` are offered when their packages
(``millnet.trace``, ``millnet.orders``) exist at start and define ``share_provider`` (a
factory as above): the packages' owners add it; nothing here imports their internals.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from millnet.alarms.records import AlarmFilter
from millnet.alarms.store import AlarmStore
from millnet.errors import InvalidInput, NotFound
from millnet.kpi.settings import KpiSection
from millnet.model import AssetKind
from millnet.registry import Registry
from millnet.telemetry.base import TelemetryStore

Provider = Callable[[int, str], dict[str, Any]]
log = logging.getLogger("millnet.collab")


@dataclass(frozen=True, slots=True)
class Sources:
    """The stores a provider may read (those of the enterprise's platform)."""

    registry: Registry
    telemetry: TelemetryStore
    alarms: AlarmStore | None
    kpi: KpiSection


ProviderFactory = Callable[[Sources], Provider]

_FACTORIES: dict[str, ProviderFactory] = {}
#: Kinds whose provider lives in another package: kind -> the package that may define one.
OPTIONAL = {"trace": "millnet.trace", "order": "millnet.orders"}
SCOPE_MAX = 512


def register_kind(kind: str, factory: ProviderFactory) -> None:
    _FACTORIES[kind] = factory


def kinds() -> dict[str, ProviderFactory]:
    """Every kind a share may have on this node (the optional ones when their package exists
    and defines ``share_provider``)."""
    out = dict(_FACTORIES)
    for kind, package in OPTIONAL.items():
        if kind in out or importlib.util.find_spec(package) is None:
            continue
        try:
            factory = getattr(importlib.import_module(package), "share_provider", None)
        except ImportError as exc:  # that package's own trouble: its kind is not offered
            log.warning("share kind %s not offered: %s does not import (%s)", kind, package, exc)
            continue
        if callable(factory):
            out[kind] = factory
    return out


def parse_scope(scope: str) -> tuple[str, str]:
    """``kind:target`` -> (kind, target), the kind one of :func:`kinds`."""
    kind, sep, target = scope.partition(":")
    if not sep or not target or len(scope) > SCOPE_MAX:
        raise InvalidInput("a scope is <kind>:<target>, e.g. device-status:Plant/Line1/Press",
                           "scope")
    if kind not in kinds():
        raise InvalidInput(f"no share kind {kind!r} on this node (known: "
                           f"{', '.join(sorted(kinds()))})", "scope")
    return kind, target


def machine_state(value: float | None, section: KpiSection) -> str | None:
    """The state point's value as the KPI tracker reads it."""
    if value is None or math.isnan(value):
        return None
    states = section.states
    for name in ("running", "setup", "fault", "planned_stop"):
        if int(value) in getattr(states, name):
            return name
    return "down"


def device_status(sources: Sources) -> Provider:
    """A device's last values, its machine state and how many of its alarms are active."""
    def provide(tenant_id: int, path: str) -> dict[str, Any]:
        try:
            device = sources.registry.find_asset(tenant_id, path)
        except NotFound:
            raise NotFound(f"no device {path!r}") from None
        if device.kind != AssetKind.DEVICE:
            raise NotFound(f"no device {path!r}")
        points = sources.registry.list_points(tenant_id, device.id)
        last = sources.telemetry.last_values([p.series_id for p in points])
        values: list[dict[str, Any]] = []
        newest: int | None = None
        state: float | None = None
        for p in sorted(points, key=lambda p: p.name):
            v = last.get(p.series_id)
            if v is None:
                continue
            value = None if v.value is None or math.isnan(v.value) else v.value
            values.append({"name": p.name, "value": value, "text": v.text, "unit": p.unit,
                           "ts_ms": v.ts_ns // 1_000_000, "quality": v.quality.name.lower()})
            newest = max(newest or 0, v.ts_ns // 1_000_000)
            if p.name == sources.kpi.state_point:
                state = value
        active = 0
        if sources.alarms is not None:
            active = len(sources.alarms.list_alarms(AlarmFilter(
                tenant_id=tenant_id, asset_ids=(device.id,), active=True, limit=10_000)))
        # The time of the newest value, not of the call: an unchanged device gives the same
        # payload, which is then not sent again.
        return {"device": device.path, "points": values,
                "machine_state": machine_state(state, sources.kpi), "active_alarms": active,
                "at_ms": newest}

    return provide


register_kind("device-status", device_status)
