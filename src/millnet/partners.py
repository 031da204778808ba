"""Composition of what enterprises do together through the federation (issue 15): shares of
chosen data with a partner enterprise (:mod:`millnet.collab`) and the industrial park's member
summaries (:mod:`millnet.park`). Part of the composition root: ``node.py`` calls
:func:`attach` when it opens the monitoring, and :func:`attach_platform` once the enterprise's
platform (telemetry, alarms, KPIs) is built.

By role: an enterprise owns and receives shares and, with ``park.report_every_s``, reports
to its park; a secondary or national node relays shares (keeping nothing of them); a secondary
with ``park.enabled`` keeps its members' summaries.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, select

from millnet.collab.providers import Sources
from millnet.collab.relay import register_relay
from millnet.collab.service import Collaboration, sender
from millnet.config import Settings
from millnet.db.engine import writer
from millnet.errors import MillnetError, StorageError
from millnet.federation.schema import federation_children, federation_origins
from millnet.park import report as park_report
from millnet.park.store import apply_summary

if TYPE_CHECKING:
    from millnet.insight import Insight
    from millnet.monitoring import Monitoring
    from millnet.registry import Registry
    from millnet.telemetry.base import TelemetryStore


def routes_below(conn: Connection) -> Mapping[str, str]:
    """Every enterprise below this node -> the child it is reached through."""
    out = {r.node_id: r.node_id for r in conn.execute(select(federation_children))
           if r.role == "enterprise"}
    out.update({r.origin: r.child for r in conn.execute(select(federation_origins))})
    return out


def attach(settings: Settings, m: Monitoring) -> None:
    """Register this role's share and park handlers on the federation's inbox (before the
    link runs)."""
    links = m.links
    if m.role == "enterprise":
        up = links.outbox_up
        assert up is not None

        def send_up(conn: Connection, kind: str, body: dict[str, Any]) -> Any:
            return up.enqueue(kind, body, conn)

        m.collaboration = Collaboration(links.engine, links.identity.node_id, sender(send_up))
        m.collaboration.register(links.inbox)
        every = max(links.settings.heartbeat_s, 0.2)
        collab = m.collaboration
        m.extra_jobs["collaboration"] = lambda: collab.run(every)
        return

    def send(conn: Connection, peer: str, kind: str, body: dict[str, Any],
             origin: str | None) -> None:
        box = links.outbox_up if peer == "parent" else links.outbox_down(peer)
        if box is None or box.enqueue(kind, body, conn, origin=origin) is None:
            raise MillnetError(f"{kind} could not be queued for {peer}")

    register_relay(links.inbox, send, routes_below, links.outbox_up is not None)
    if settings.park.enabled and m.role == "secondary":
        links.inbox.register(park_report.KIND, apply_summary)
        m.park = links.engine


def attach_platform(settings: Settings, m: Monitoring, registry: Registry,
                    telemetry: TelemetryStore, insight: Insight | None) -> None:
    """An enterprise's providers read its platform; its park reporter too."""
    if m.collaboration is None:
        return
    alarms = insight.alarm_store if insight is not None else None
    m.collaboration.attach(Sources(registry, telemetry, alarms, settings.kpi))
    up = m.links.outbox_up
    if insight is None or up is None or settings.park.report_every_s <= 0:
        return

    def enqueue(bodies: list[dict[str, Any]]) -> None:
        with writer(m.links.engine).begin() as conn:
            for body in bodies:
                if up.enqueue(park_report.KIND, body, conn) is None:  # full: the next round
                    raise StorageError("the federation outbox is full: park summaries wait")

    reporter = park_report.ParkReporter(settings.park, insight.kpi, registry, telemetry,
                                        enqueue)
    m.extra_jobs["park summaries"] = reporter.run
