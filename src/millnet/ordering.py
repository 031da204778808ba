"""Composition of personalized customization (issue 15): the order service and the tracker
that advances work orders from the ingest stream, built beside the pipeline; the handle
registrar once the node's identifier service runs. Part of the composition root (``node.py``
and ``services.py`` call it).
"""

from __future__ import annotations

from dataclasses import dataclass

from millnet.config import Settings
from millnet.identifiers.core.delegation import ADMIN_SUFFIX, SECKEY_INDEX, prefix_key
from millnet.identifiers.core.service import IdentifierService
from millnet.ingest.pipeline import IngestPipeline
from millnet.orders.files import load_product_file
from millnet.orders.service import OrderService, Registrar
from millnet.orders.store import OrderStore
from millnet.orders.tracker import FindSeries, LineSeries, OrderTracker
from millnet.protocols.handle import HandleValue, ValueReference
from millnet.registry import Registry


@dataclass
class Ordering:
    service: OrderService
    tracker: OrderTracker


def build_ordering(settings: Settings, registry: Registry, pipeline: IngestPipeline,
                   tenant_id: int) -> Ordering:
    """The service (with the products of the ``[orders]`` files, the default tenant's) and the
    tracker (restored from the database), tapped on the pipeline; starts nothing
    (:meth:`OrderTracker.run` is started with the node's services)."""
    store = OrderStore(registry)
    for path in settings.orders.resolved_files(settings.config_path):
        for product in load_product_file(path):
            store.put_product(tenant_id, product)
    ids = settings.identifiers
    service = OrderService(store, registry, node_prefix=ids.prefix or None)
    kpi = settings.kpi
    tracker = OrderTracker(store, line_series(registry, kpi.state_point, kpi.good_point,
                                              kpi.scrap_point), kpi.states.running,
                           flush_s=settings.orders.flush_interval_s)
    tracker.restore()
    pipeline.add_tap(tracker, prompt=False)
    return Ordering(service, tracker)


def line_series(registry: Registry, state: str, good: str, scrap: str) -> FindSeries:
    """The series of the machines below each line (any depth) that tell its production."""
    roles = {state: "state", good: "good", scrap: "scrap"}

    def find(lines: dict[int, int]) -> list[LineSeries]:
        found: list[LineSeries] = []
        for tenant in sorted(set(lines.values())):
            paths = {line: registry.get_asset(line).path + "/"
                     for line, owner in lines.items() if owner == tenant}
            owner_of: dict[int, int] = {}
            for device in registry.list_devices(tenant):
                for line, path in paths.items():
                    if device.path.startswith(path):
                        owner_of[device.id] = line
            found += [LineSeries(p.series_id, owner_of[p.device_id], roles[p.name])
                      for p in registry.list_points(tenant)
                      if p.device_id in owner_of and p.name in roles]
        return found

    return find


def attach_identifiers(ordering: Ordering, registrar: Registrar, api_url: str) -> None:
    """Register each new order's handle, its URL value the order's status URL."""
    ordering.service.registrar = registrar
    ordering.service.status_url = lambda identifier: f"{api_url}/api/v1/orders/{identifier}"


def handle_registrar(service: IdentifierService, prefix: str) -> Registrar:
    """A registrar over the node's identifier service (its own admin, ``<prefix>/ADMIN``)."""
    admin = ValueReference(f"{prefix_key(prefix)}/{ADMIN_SUFFIX}", SECKEY_INDEX)

    def register(identifier: str, url: str) -> None:
        service.create_many(admin, [(identifier, [HandleValue(1, "URL", url.encode())])])

    return register
