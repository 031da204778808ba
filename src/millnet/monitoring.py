"""Composition of the three-level security monitoring (issue 13): the federation's links, the
reports a parent keeps and the views over them, the node's own security events, and the jobs
that send an enterprise's inventory, events and summaries upward.

Data flow, enterprise: detectors and the probe -> :class:`SecurityMonitor` (stored, folded) ->
``security.event`` in the upward outbox; operators' incidents -> ``incident``, enqueued in the
transaction of each change; :func:`watch_platform` hooks the platform (ingest rejections,
Sparkplug births and message rates, anomaly-rule alarms) to the monitor; every ``SUMMARY_S``
the counts of the last closed buckets -> ``summary``; the inventory (registry devices, probe
hosts) -> ``inventory.*``.
Secondary: what its enterprises send is stored (reports) and passed up by the parent's policy
(:mod:`millnet.federation.forwarding`) in the transaction that applies it, so a crash forwards a
message exactly when it applied it. National: stores what comes up, issues advisories and
orders. Part of the composition root (``node.py`` calls it).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, insert, select, update

from millnet.config import Settings
from millnet.db.engine import writer
from millnet.errors import MillnetError, StorageError
from millnet.federation import advisories, downward, orders, reports
from millnet.federation.children import sender_origins
from millnet.federation.forwarding import Policy, current_policy, forward_decision
from millnet.federation.identity import NodeIdentity
from millnet.federation.inventory import (
    inventory_messages,
    inventory_snapshot,
    registry_devices,
)
from millnet.federation.links import FederationLinks
from millnet.federation.outbox import Outbox
from millnet.federation.report_schema import fed_settings
from millnet.federation.schema import federation_children, federation_origins
from millnet.federation.views import PARENT, FederationViews
from millnet.model import PointSpec
from millnet.model.security import EventKind, SecurityEvent, Severity
from millnet.security import SecurityEventStore, SecurityMonitor, StoredEvent
from millnet.security.anomalies import AnomalyAlarms
from millnet.security.devices import birth_fingerprint
from millnet.security.incidents import ChangeHook, Incident, incident_body
from millnet.security.rates import RateFeeder
from millnet.security.records import EventQuery

if TYPE_CHECKING:
    from millnet.connectivity.sparkplug_mqtt import SparkplugSource
    from millnet.ingest.metrics import IngestMetrics
    from millnet.insight import Insight

log = logging.getLogger("millnet.monitoring")

SUMMARY_S = 60  # the width of a summary bucket, and how often closed buckets are sent
INVENTORY_S = 60.0  # how often the inventory is compared with what was sent
RATE_S = 60.0  # the interval of per-device message rates
RESEND_S = 600  # on start, events of this many seconds are sent again (idempotent upserts)
SUMMARY_MARK = "summary_sent_until"
FORWARDED_KINDS = ("inventory.snapshot", "inventory.change", "security.event", "incident",
                   "summary", "advisory.match", "order.status")


@dataclass
class Monitoring:
    links: FederationLinks
    views: FederationViews
    security: SecurityMonitor | None
    role: str
    #: Hosts the passive probe found (the inventory's second source): by default what sensors
    #: posted to ``/security/hosts``.
    probe_hosts: Callable[[], list[Any]] = list
    #: Each gives (tenant, messages per device since the last call): the per-device rates.
    rate_feeds: list[Callable[[], tuple[int | None, dict[str, int]]]] = field(
        default_factory=list)
    #: Shares with partner enterprises (an enterprise), the park's database (a park), and
    #: their jobs by name (``millnet.partners`` sets them).
    collaboration: Any = None
    park: Any = None
    extra_jobs: dict[str, Callable[[], Any]] = field(default_factory=dict)


def key_path(settings: Settings) -> Path:
    return settings.federation.key_file or settings.node.data_dir / "federation.key"


def build_monitoring(settings: Settings, engine: Engine) -> Monitoring | None:
    """The federation and the security monitor on ``engine`` (the registry's database, at
    head: one database, so an event and the message that reports it can share a transaction);
    starts nothing. None on an edge node (it reports through its central node)."""
    role = settings.node.role
    if role == "edge":
        return None
    identity = NodeIdentity.load_or_create(key_path(settings), settings.node.name)
    security = None
    if settings.security.enabled:
        security = SecurityMonitor(SecurityEventStore(engine), settings.security)
        security.devices.load()

    def rejected(sender: str, reason: str, summary: str) -> None:
        if security is not None:
            security.report(SecurityEvent(
                EventKind.FEDERATION_REJECTED, Severity.MEDIUM,
                f"federation message from {sender[:64]!r} refused: {reason}"[:500],
                source=sender[:256], target="federation",
                detail={"reason": reason[:256], "message": summary[:256]}))

    links = FederationLinks(settings.federation, engine, identity, role, on_rejected=rejected)

    def send(conn: Connection, peer: str, kind: str, body: dict[str, Any],
             origin: str | None) -> None:
        box = links.outbox_up if peer == PARENT else links.outbox_down(peer)
        if box is None:
            raise MillnetError(f"a {role} node has no parent to send {kind} to")
        box.enqueue(kind, body, conn, origin=origin)

    views = FederationViews(engine, node_id=identity.node_id, role=role, send=send,
                            children=_children, routes=_routes)
    monitoring = Monitoring(links, views, security, role)
    if security is not None:
        book = security.hosts
        monitoring.probe_hosts = book.current
        if links.outbox_up is not None:
            security.incidents.on_change = _incidents_upward(links.outbox_up)
    _register(monitoring, send)
    return monitoring


def _incidents_upward(up: Outbox) -> ChangeHook:
    """Each incident change goes up in the transaction that makes it: a refusal (the outbox
    over its hard limit; incidents are a critical kind) undoes the change, so the parent's view
    never silently misses one."""
    def enqueue(conn: Connection, incident: Incident) -> None:
        if up.enqueue("incident", incident_body(incident), conn) is None:
            raise StorageError("the federation outbox is full: the incident was not changed")

    return enqueue


def _children(conn: Connection) -> list[advisories.Child]:
    return [advisories.Child(r.node_id, r.role, r.region)
            for r in conn.execute(select(federation_children))]


def _routes(conn: Connection) -> Mapping[str, str]:
    """Every enterprise below this node -> the child it is reached through."""
    out = {r.node_id: r.node_id for r in conn.execute(select(federation_children))
           if r.role == "enterprise"}
    out.update({r.origin: r.child for r in conn.execute(select(federation_origins))})
    return out


def _register(m: Monitoring, send: Callable[..., None]) -> None:
    """The inbox's handlers for this node's role."""
    links, role = m.links, m.role
    inbox: Any = links.inbox
    if role == "enterprise":
        def enqueue_up(conn: Connection, kind: str, body: dict[str, Any]) -> None:
            send(conn, PARENT, kind, body, None)

        def order_received(conn: Connection, order: Any) -> None:
            # The issuer tracks "received" too: reported in the transaction that records it.
            enqueue_up(conn, "order.status", orders.status_body(
                order.id, "received", "millnet", "received", datetime.now(UTC)))

        extra = downward.downward_handlers(
            links.identity.node_id, downward.answer_advisories(enqueue_up, m.probe_hosts),
            order_received)
    else:
        def to_child(conn: Connection, child: str, kind: str, body: dict[str, Any]) -> None:
            send(conn, child, kind, body, None)

        after_advisory, after_order = downward.relay_downward(to_child, _children, _routes)
        extra = downward.downward_handlers(None, after_advisory, after_order)
        if role == "secondary":
            inbox = _Forwarding(links.inbox, links.outbox_up)
    reports.register_handlers(
        inbox, lambda conn, peer: sender_origins(conn, peer.node_id), extra)
    if role == "national":
        _record_reported_children(links)


# The policy read for the batch being applied, and the forwards it gathered so far.
_Pending = tuple[Policy, list[tuple[str, dict[str, Any], str | None]]]


class _Forwarding:
    """A secondary's inbox: each report it applies from a child also goes up when the parent's
    policy asks for it, in the same transaction (applied and forwarded, or neither). The
    forwards of one batch are gathered on the connection and enqueued together when the batch
    is applied (an inbox batch hook), and the policy is read once per batch: one enqueue per
    message cost a secondary more than applying the message did."""

    KEY = "millnet.forwards"

    def __init__(self, inbox: Any, outbox_up: Outbox | None) -> None:
        self._inbox, self._up = inbox, outbox_up
        if outbox_up is not None:
            inbox.batch_hooks.append(self)

    def register(self, kind: str, handler: Callable[[Connection, Any, Any], None]) -> None:
        if kind not in FORWARDED_KINDS or self._up is None:
            self._inbox.register(kind, handler)
            return

        def forwarding(conn: Connection, sender: Any, message: Any) -> None:
            handler(conn, sender, message)
            pending = self._pending(conn)
            if forward_decision(pending[0], kind, message.body):
                pending[1].append((kind, message.body, message.origin or sender.node_id))

        self._inbox.register(kind, forwarding)

    def register_batch(self, kind: str, handler: Callable[[Connection, Any, list[Any]],
                                                          list[tuple[Any, Exception]]]) -> None:
        if kind not in FORWARDED_KINDS or self._up is None:
            self._inbox.register_batch(kind, handler)
            return

        def forwarding(conn: Connection, sender: Any,
                       messages: list[Any]) -> list[tuple[Any, Exception]]:
            refused = handler(conn, sender, messages)
            pending = self._pending(conn)
            skip = {id(message) for message, _ in refused}
            pending[1].extend((kind, m.body, m.origin or sender.node_id) for m in messages
                              if id(m) not in skip and forward_decision(pending[0], kind, m.body))
            return refused

        self._inbox.register_batch(kind, forwarding)

    def _pending(self, conn: Connection) -> _Pending:
        pending: _Pending | None = conn.info.get(self.KEY)
        if pending is None:
            pending = conn.info[self.KEY] = (current_policy(conn), [])
        return pending

    def flush(self, conn: Connection) -> None:
        pending = conn.info.pop(self.KEY, None)
        if pending is not None and pending[1] and self._up is not None:
            self._up.enqueue_many(pending[1], conn)

    def discard(self, conn: Connection) -> None:
        conn.info.pop(self.KEY, None)


def _record_reported_children(links: FederationLinks) -> None:
    """On the national node, a secondary's report of its enterprises also places them (region,
    sector) for the situation views."""
    from millnet.federation.children import CHILDREN_KIND

    apply_children_report = links.inbox.handler(CHILDREN_KIND)

    def children_report(conn: Connection, sender: Any, message: Any) -> None:
        apply_children_report(conn, sender, message)
        for entry in message.body.get("children", []):
            if entry.get("role") == "enterprise":
                reports.record_enterprise(conn, str(entry["node_id"]), sender.node_id,
                                          str(entry["region"]), str(entry["sector"]),
                                          datetime.now(UTC))

    links.inbox.register(CHILDREN_KIND, children_report, replace=True)


# -- an enterprise's upward reports ----------------------------------------------------------

def event_body(event: StoredEvent) -> dict[str, Any]:
    """What a parent keeps of a security event: kind, severity, time, count and target; never
    the detail (addresses and names stay in the plant)."""
    return {"id": f"se-{event.id}", "kind": event.kind, "severity": event.severity.label,
            "occurred_at": event.first_seen.isoformat(), "count": event.count,
            "target": event.target[:255]}


async def forward_events(m: Monitoring) -> None:
    """Send the security events stored from now on upward (a listener on the monitor), after
    sending again those of the last ``RESEND_S`` seconds: an event stored just before a crash
    may not have been enqueued, and the parent's upsert by id makes repeats harmless."""
    security, up = m.security, m.links.outbox_up
    if security is None or up is None:
        return
    queue: asyncio.Queue[StoredEvent] = asyncio.Queue()
    security.add_listener(queue.put_nowait)
    since = datetime.now(UTC) - timedelta(seconds=RESEND_S)
    recent = await asyncio.to_thread(_recent_events, security.store, since)
    await asyncio.to_thread(up.enqueue_many, [("security.event", event_body(e), None)
                                              for e in recent])
    while True:
        batch = [await queue.get()]
        while not queue.empty():
            batch.append(queue.get_nowait())
        await asyncio.to_thread(up.enqueue_many,
                                [("security.event", event_body(e), None) for e in batch])


def _recent_events(store: SecurityEventStore, since: datetime) -> list[StoredEvent]:
    out: list[StoredEvent] = []
    cursor: int | None = None
    while True:
        events, cursor = store.query(EventQuery(since=since, node_wide=True), cursor=cursor,
                                     limit=500)
        out.extend(events)
        if cursor is None:
            return out


async def send_summaries(m: Monitoring) -> None:
    """Every ``SUMMARY_S``: the counts of the buckets closed since the last summary sent, then
    the mark moves on (a crash in between sends a bucket again: the parent replaces it)."""
    security, up = m.security, m.links.outbox_up
    if security is None or up is None:
        return
    every = m.links.settings.summary_every_s
    while True:
        await asyncio.to_thread(_summarize, m.links.engine, security.store, up,
                                every < SUMMARY_S)
        await asyncio.sleep(every)


def _summarize(engine: Engine, store: SecurityEventStore, up: Outbox,
               open_bucket: bool = False) -> None:
    """``open_bucket``: also the bucket not closed yet, as it stands (the parent replaces it
    with the fuller one sent later; the mark still stops at the closed buckets)."""
    now = datetime.now(UTC)
    closed = datetime.fromtimestamp(now.timestamp() // SUMMARY_S * SUMMARY_S, UTC)
    until = now if open_bucket else closed
    with engine.connect() as conn:
        mark = _setting(conn, SUMMARY_MARK)
    since = datetime.fromisoformat(mark) if mark else closed - timedelta(seconds=SUMMARY_S)
    if since >= until:
        return
    counts = store.counts(EventQuery(since=since, until=until, node_wide=True),
                          timedelta(seconds=SUMMARY_S))
    buckets: dict[datetime, list[dict[str, Any]]] = {}
    for c in counts:
        if c.start < until:
            buckets.setdefault(c.start, []).append(
                {"kind": c.kind, "severity": c.severity.label, "count": c.occurrences})
    # The write lock up front: a read upgraded to a write fails at once when busy.
    with writer(engine).begin() as conn:
        for start, rows in sorted(buckets.items()):
            up.enqueue("summary", {"bucket_start": start.isoformat(),
                                   "bucket_seconds": SUMMARY_S, "counts": rows}, conn)
        _set_setting(conn, SUMMARY_MARK, closed.isoformat())


async def send_inventory(m: Monitoring) -> None:
    """The inventory upward: a snapshot the first time, then its changes (checked every
    ``INVENTORY_S``)."""
    if m.links.outbox_up is None:
        return
    while True:
        await asyncio.to_thread(_inventory_round, m)
        await asyncio.sleep(INVENTORY_S)


def _inventory_round(m: Monitoring) -> None:
    up = m.links.outbox_up
    assert up is not None
    with writer(m.links.engine).begin() as conn:  # it writes: the lock up front, as above
        current = inventory_snapshot(registry_devices(conn), m.probe_hosts())
        for kind, body in inventory_messages(conn, current, datetime.now(UTC)):
            up.enqueue(kind, body, conn)


def _setting(conn: Connection, key: str) -> str | None:
    value = conn.execute(select(fed_settings.c.value).where(fed_settings.c.name == key)).scalar()
    return None if value is None else str(value)


def _set_setting(conn: Connection, key: str, value: str) -> None:
    now = datetime.now(UTC)
    if conn.execute(update(fed_settings).where(fed_settings.c.name == key)
                    .values(value=value, updated_at=now)).rowcount == 0:
        conn.execute(insert(fed_settings).values(name=key, value=value, updated_at=now))


def watch_platform(m: Monitoring, metrics: IngestMetrics, sparkplug: SparkplugSource | None,
                   insight: Insight) -> None:
    """The platform's signals as security events: ingest rejections (protocol violations),
    Sparkplug births (device fingerprints) and message counts (per-device rates), and the
    activations of anomaly-detector rules (``anomaly.alarm``, an alarm service listener)."""
    security = m.security
    if security is None:
        return
    metrics.on_reject = security.violations.rejection_hook("ingest")
    if sparkplug is not None:
        devices = security.devices

        def birth(tenant_id: int, key: str, specs: Sequence[PointSpec]) -> None:
            devices.observe_device(tenant_id, key, birth_fingerprint(specs))

        sparkplug.on_birth = birth
        m.rate_feeds.append(sparkplug.take_message_counts)
    rules = insight.rules
    insight.listeners.append(AnomalyAlarms(
        security, lambda rule_id: rules.get(rule_id).rule.kind.value))


async def feed_rates(m: Monitoring) -> None:
    """Every ``RATE_S``: the messages each device sent, to the rate-anomaly detector."""
    security = m.security
    if security is None or not m.rate_feeds:
        return
    feeder = RateFeeder(security.rates, security.settings.max_tracked)
    last = time.monotonic()
    while True:
        await asyncio.sleep(RATE_S)
        now = time.monotonic()
        for take in m.rate_feeds:
            tenant_id, counts = take()
            feeder.feed(counts, now - last, tenant_id=tenant_id)
        last = now


def jobs(m: Monitoring) -> dict[str, Callable[[], Any]]:
    """The long-running jobs of this node's monitoring, by name (``node.py`` supervises them)."""
    out: dict[str, Callable[[], Any]] = {}
    if m.links.settings.enabled:
        out["federation link"] = m.links.run
    if m.security is not None:
        security = m.security
        out["security events"] = security.run
        if m.rate_feeds:
            out["device rates"] = lambda: feed_rates(m)
    if m.role == "enterprise":
        out["security upward"] = lambda: forward_events(m)
        out["security summaries"] = lambda: send_summaries(m)
        out["inventory upward"] = lambda: send_inventory(m)
    out.update(m.extra_jobs)
    return out
