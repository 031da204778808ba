"""The OPC UA adapter: one client session per source, subscriptions into the pipeline.

Flow and backpressure: asyncua's publish loop sends one Publish request at a time and awaits
the subscription's ``publish_callback`` before it acknowledges and asks for more. This adapter's
subscription handles each PublishResponse in that callback, on the node's event loop: it awaits
``sink.capacity()`` first, so while the pipeline is full no new Publish request goes out and the
notifications wait in the server's queues (the server's queue is bounded by ``queue_size`` per
item; when the server discards, it says so with the Overflow bit, which is counted as
``server_overflows``). Nothing is dropped on this side.

Timestamps: a sample carries the value's SourceTimestamp, else its ServerTimestamp, else the
time it arrived. Status codes map to quality as in :mod:`.mapping` (Bad: NaN).

Reconnect: when the session is lost, the mapped points get one BAD/NaN sample (the gap shows),
health goes DOWN and a new session is opened with exponential backoff; the monitored items are
created anew (a restarted server has lost the old subscription).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from asyncua import ua
from asyncua.client.client import Client
from asyncua.common.subscription import Subscription
from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256
from asyncua.ua.attribute_ids import AttributeIds
from asyncua.ua.uaerrors import UaError, UaStatusCodeError

from millnet.connectivity.adapter import FieldSink, Health, HealthState, WriteRequest, WriteResult
from millnet.connectivity.opcua.browse import import_folder
from millnet.connectivity.opcua.mapping import (
    as_number,
    as_text,
    data_change_filter,
    datatype_of,
    overflowed,
    quality_of,
    status_name,
)
from millnet.connectivity.opcua.security import (
    APPLICATION_URI,
    check_trusted,
    ensure_own_certificate,
    load_der,
)
from millnet.connectivity.opcua.spec import Monitoring, OpcUaSpec
from millnet.connectivity.opcua.values import coerce
from millnet.errors import MillnetError, RejectedMessage
from millnet.ingest.binder import DevicePath
from millnet.model import DataType, PointSpec, Quality

log = logging.getLogger("millnet.opcua")

_EPOCH = datetime.datetime(1970, 1, 1)
_ONE_US = datetime.timedelta(microseconds=1)
_CONNECT_ERRORS = (OSError, TimeoutError, UaError, ConnectionError, MillnetError)


@dataclass
class _Item:
    """A monitored variable: where it goes and how it is watched."""

    where: str  # the spec entry, for messages: nodes[3] or import_folders[0]:<path>
    node_id: str
    device: DevicePath
    point: str
    monitoring: Monitoring
    datatype: DataType = DataType.DOUBLE
    variant: ua.VariantType = ua.VariantType.Double
    unit: str | None = None
    description: str | None = None
    series_id: int | None = None


def _ts_ns(dv: ua.DataValue) -> int:
    stamp: datetime.datetime | None = dv.SourceTimestamp or dv.ServerTimestamp
    if stamp is None:
        return time.time_ns()
    if stamp.tzinfo is not None:
        stamp = stamp.astimezone(datetime.UTC).replace(tzinfo=None)
    return int((stamp - _EPOCH) // _ONE_US) * 1000


class _SinkSubscription(Subscription):
    """A subscription whose PublishResponses go straight to the adapter (no task per value)."""

    def __init__(self, client: Client, params: ua.CreateSubscriptionParameters,
                 adapter: OpcUaAdapter) -> None:
        super().__init__(client.uaclient.session, params, None, queue_maxsize=1)
        self._adapter = adapter

    async def publish_callback(self, publish_result: ua.PublishResult) -> None:
        await self._adapter._on_publish(publish_result)


class OpcUaAdapter:
    """An OPC UA server's variables as device points (see the module docstring)."""

    kind = "opcua"

    def __init__(self, spec: OpcUaSpec, sink: FieldSink, data_dir: Path) -> None:
        self.name = spec.name
        self.spec = spec
        self._sink = sink
        self._data_dir = data_dir
        self._health = Health()
        self._items: list[_Item] = []
        self._by_point: dict[tuple[DevicePath, str], _Item] = {}
        self._client: Client | None = None

    def health(self) -> Health:
        return self._health

    # -- session lifecycle ----------------------------------------------------------------------
    async def run(self) -> None:
        delay = 0.2
        try:
            while True:
                was_up = False
                try:
                    was_up = await self._session()
                except _CONNECT_ERRORS as exc:
                    self._down(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
                delay = 0.2 if was_up else min(delay * 2, self.spec.reconnect_max_s)
                await asyncio.sleep(delay)
        finally:
            self._health.enter(HealthState.STOPPED)

    async def _session(self) -> bool:
        """One connection: connect, subscribe, ingest until the connection is lost."""
        client = await self._make_client()
        lost = asyncio.Event()

        async def on_lost(exc: Exception) -> None:
            lost.set()

        client.connection_lost_callback = on_lost
        await client.connect()
        try:
            await self._prepare(client)
            await self._subscribe(client)
            self._client = client
            problems = [i for i in self._items if i.series_id is None]
            self._health.enter(HealthState.DEGRADED if problems else HealthState.UP,
                               self._health.detail if problems else "")
            self._health.count("connects")
            await lost.wait()
            raise ConnectionError(f"{self.spec.endpoint}: connection lost")
        finally:
            self._client = None
            with contextlib.suppress(*_CONNECT_ERRORS):
                async with asyncio.timeout(self.spec.timeout_s):
                    await client.disconnect()

    async def _make_client(self) -> Client:
        spec = self.spec
        client = Client(spec.endpoint, timeout=spec.timeout_s, watchdog_intervall=1.0)
        client.application_uri = APPLICATION_URI
        client.name = client.description = f"millnet {spec.name}"
        if spec.username is not None and spec.password is not None:
            client.set_user(spec.username)
            client.set_password(spec.password.get_secret_value())
        if spec.security == "sign_encrypt":
            assert spec.server_certificate is not None  # the spec requires it
            own = await asyncio.to_thread(ensure_own_certificate, self._data_dir)
            trusted = await asyncio.to_thread(load_der, Path(spec.server_certificate))
            probe = Client(spec.endpoint, timeout=spec.timeout_s)
            check_trusted(await probe.connect_and_get_server_endpoints(), trusted,
                          spec.endpoint)
            await client.set_security(SecurityPolicyBasic256Sha256, str(own.cert),
                                      str(own.key), server_certificate=trusted,
                                      mode=ua.MessageSecurityMode.SignAndEncrypt)
        return client

    def _down(self, detail: str) -> None:
        if self._health.state in (HealthState.UP, HealthState.DEGRADED):
            self._mark_gap()
        log.warning("opcua source %s down: %s", self.name, detail)
        self._health.enter(HealthState.DOWN, detail)
        self._health.count("disconnects")

    def _mark_gap(self) -> None:
        ids = [i.series_id for i in self._items
               if i.series_id is not None and not i.datatype.is_text]
        if ids:
            self._sink.emit_bad(ids, time.time_ns())
            self._sink.done(len(ids))

    # -- what to monitor ------------------------------------------------------------------------
    async def _prepare(self, client: Client) -> None:
        """Resolve the mapped nodes and imported folders, check them, bind their points."""
        items = [_Item(f"nodes[{i}]", n.node_id, n.device_path, n.point, n)
                 for i, n in enumerate(self.spec.nodes)]
        for i, folder in enumerate(self.spec.import_folders):
            found = await import_folder(client, folder)
            for entry, placed in found.placed:
                items.append(_Item(f"import_folders[{i}]:{'/'.join(entry.path)}", entry.node_id,
                                   placed.device, placed.point, folder,
                                   entry.datatype or DataType.DOUBLE, unit=entry.unit,
                                   description=entry.description))
            self._health.count("import_skipped", len(found.skipped))
        problems: list[str] = []
        types = await client.read_attributes(
            [client.get_node(i.node_id) for i in items], AttributeIds.DataType) if items else []
        usable: list[_Item] = []
        for item, dv in zip(items, types, strict=True):
            variant = _variant_of(dv)
            datatype = datatype_of(variant) if variant is not None else None
            if variant is None or datatype is None:
                code = dv.StatusCode.value if dv.StatusCode is not None else 0
                why = status_name(code) if code else "a type that is not ingested"
                problems.append(f"{item.where}.node_id {item.node_id}: {why}")
                continue
            item.variant, item.datatype = variant, datatype
            usable.append(item)
        await self._bind(usable, problems)
        self._items = items
        self._by_point = {(i.device, i.point): i for i in usable if i.series_id is not None}
        if problems:
            self._health.detail = "; ".join(problems)[:2000]
            log.warning("opcua source %s: %s", self.name, self._health.detail)

    async def _bind(self, items: list[_Item], problems: list[str]) -> None:
        by_device: dict[DevicePath, list[_Item]] = {}
        for item in items:
            by_device.setdefault(item.device, []).append(item)
        for device, group in by_device.items():
            specs = [PointSpec(i.point, i.datatype, i.unit, i.description) for i in group]
            try:
                ids = await self._sink.bind(device, specs)
            except RejectedMessage as exc:
                self._sink.reject(exc.reason, str(exc))
                problems.append(f"device {'/'.join(device)}: {exc}")
                continue
            for item in group:
                item.series_id = ids.get(item.point)
                if item.series_id is None:
                    problems.append(f"{item.where}: point {item.point!r} refused by the registry")

    async def _subscribe(self, client: Client) -> None:
        params = ua.CreateSubscriptionParameters()
        params.RequestedPublishingInterval = self.spec.publishing_interval_ms
        params.RequestedLifetimeCount = 10_000
        params.RequestedMaxKeepAliveCount = client.get_keepalive_count(
            self.spec.publishing_interval_ms)
        params.MaxNotificationsPerPublish = self.spec.max_notifications_per_publish
        params.PublishingEnabled = True
        sub = _SinkSubscription(client, params, self)
        await sub.init()
        requests = [_monitor_request(handle, item) for handle, item in enumerate(self._items)
                    if item.series_id is not None]
        if not requests:
            return
        results = await sub.create_monitored_items(requests)
        for req, res in zip(requests, results, strict=True):
            if isinstance(res, ua.StatusCode):
                item = self._items[req.RequestedParameters.ClientHandle]
                self._health.count("monitor_failures")
                self._health.detail = (f"{self._health.detail}; {item.where}: "
                                       f"{status_name(res.value)}").strip("; ")

    # -- notifications --------------------------------------------------------------------------
    async def _on_publish(self, result: ua.PublishResult) -> None:
        data = result.NotificationMessage.NotificationData
        if not data:
            return
        await self._sink.capacity()
        sink, items, health = self._sink, self._items, self._health
        count = 0
        for notif in data:
            if isinstance(notif, ua.StatusChangeNotification):
                health.count("status_changes")
                log.info("opcua source %s: subscription status %s", self.name,
                         status_name(notif.Status.value))
                continue
            if not isinstance(notif, ua.DataChangeNotification):
                continue
            for mi in notif.MonitoredItems:
                handle = mi.ClientHandle
                if handle >= len(items) or (sid := items[handle].series_id) is None:
                    health.count("unknown_handles")
                    continue
                dv = mi.Value
                code = dv.StatusCode.value if dv.StatusCode is not None else 0
                quality = quality_of(code)
                if code and overflowed(code):
                    health.count("server_overflows")
                value = dv.Value.Value if dv.Value is not None else None
                if items[handle].datatype.is_text:
                    if quality is not Quality.BAD and value is not None:
                        sink.emit_text(sid, _ts_ns(dv), as_text(value), quality)
                        count += 1
                    continue
                number = as_number(value) if quality is not Quality.BAD else None
                if number is None:
                    sink.emit(sid, _ts_ns(dv), float("nan"), quality if quality is not
                              Quality.GOOD else Quality.BAD)
                else:
                    sink.emit(sid, _ts_ns(dv), number, quality)
                count += 1
        if count:
            sink.done(count)
            health.count("notifications", count)
            health.last_data_at = time.time()

    # -- writes ---------------------------------------------------------------------------------
    def writable(self, device: DevicePath, point: str) -> bool:
        item = self._by_point.get((device, point))
        return item is not None and item.monitoring.writable

    async def write(self, request: WriteRequest) -> WriteResult:
        item = self._by_point.get((request.device, request.point))
        if item is None or not item.monitoring.writable:
            return WriteResult(False, f"{'/'.join(request.device)}/{request.point}: "
                               "not a writable point of this source")
        client = self._client
        if client is None:
            return WriteResult(False, f"{self.spec.endpoint}: not connected")
        try:
            value = coerce(request.value, item.variant)
        except ValueError as exc:
            return WriteResult(False, f"value: {exc}")
        node = client.get_node(item.node_id)
        try:
            async with asyncio.timeout(request.timeout_s):
                await node.write_attribute(AttributeIds.Value,
                                           ua.DataValue(ua.Variant(value, item.variant)))
                back: Any = await node.read_value()
        except UaStatusCodeError as exc:
            return WriteResult(False, status_name(exc.code))
        except TimeoutError:
            return WriteResult(False, f"timeout after {request.timeout_s} s")
        except (UaError, OSError, ConnectionError) as exc:
            return WriteResult(False, f"{type(exc).__name__}: {exc}")
        self._health.count("writes")
        if isinstance(back, bool | int | float | str):
            return WriteResult(True, read_back=back)
        return WriteResult(True, read_back=as_text(back))


def _variant_of(dv: ua.DataValue) -> ua.VariantType | None:
    if dv.StatusCode is not None and not dv.StatusCode.is_good():
        return None
    type_id = dv.Value.Value if dv.Value is not None else None
    if not isinstance(type_id, ua.NodeId) or type_id.NamespaceIndex != 0:
        return None
    try:
        return ua.VariantType(int(type_id.Identifier))
    except (ValueError, TypeError):
        return None


def _monitor_request(handle: int, item: _Item) -> ua.MonitoredItemCreateRequest:
    m = item.monitoring
    rv = ua.ReadValueId()
    rv.NodeId = ua.NodeId.from_string(item.node_id)
    rv.AttributeId = AttributeIds.Value
    mp = ua.MonitoringParameters()
    mp.ClientHandle = handle
    mp.SamplingInterval = m.sampling_interval_ms
    mp.QueueSize = m.queue_size
    mp.DiscardOldest = True
    flt = data_change_filter(m.deadband_type, m.deadband)
    if flt is not None:
        mp.Filter = flt
    req = ua.MonitoredItemCreateRequest()
    req.ItemToMonitor = rv
    req.MonitoringMode = ua.MonitoringMode.Reporting
    req.RequestedParameters = mp
    return req
