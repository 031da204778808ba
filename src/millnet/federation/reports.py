"""What a parent keeps of its children's reports, and the message handlers that store them.

Every handler has the shape ``apply_<kind>(conn, sender, origin, body, created_at)``: ``sender``
is the child that sent the message, ``origin`` the enterprise it is about (the sender itself, or
an enterprise a secondary forwards for). Handlers run inside the link layer's transaction that
marks the message applied; each validates the whole body before writing (a bad body raises
:class:`~millnet.errors.InvalidInput` naming the field, so nothing is half-written and the link
layer counts one rejection) and is safe to apply again (upserts, replace-by-key, forward-only
order states). :func:`register_handlers` adapts them to the link layer's inbox, checking first
that the sender may write under the origin (``allowed_origins``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Final, Protocol, cast

from sqlalchemy import Connection, Executable, Table, bindparam, delete, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from millnet.errors import InvalidInput, MillnetError, PermissionDenied
from millnet.federation import advisories, orders
from millnet.federation.inbox import HANDLER_BUGS, batch_cache
from millnet.federation.inventory import InventoryItem, changed_fields, item_from_body
from millnet.federation.regions import region_code, sector_code
from millnet.federation.report_schema import (
    fed_advisory_matches,
    fed_advisory_replies,
    fed_asset_counts,
    fed_enterprises,
    fed_events,
    fed_incidents,
    fed_inventory,
    fed_summaries,
)
from millnet.model.security import KIND_PATTERN, Severity

MAX_ITEMS: Final = 20_000
MAX_COUNT: Final = 10**9
INCIDENT_STATUSES: Final = ("open", "investigating", "contained", "resolved", "closed")
Body = Mapping[str, Any]
Handler = Callable[[Connection, str, str, Any, datetime], None]


# Field readers: each names the field it refuses.

def text(body: Body, name: str, limit: int = 255, *, required: bool = True) -> str:
    value = body.get(name, None if required else "")
    if not isinstance(value, str) or len(value) > limit or (required and not value.strip()):
        raise InvalidInput(f"must be a {'non-empty ' if required else ''}string of at most "
                           f"{limit} characters", name)
    return value.strip()


def moment(body: Body, name: str, *, required: bool = True) -> datetime | None:
    raw = body.get(name)
    if raw is None and not required:
        return None
    raw_text = text(body, name, 40)
    try:
        value = datetime.fromisoformat(raw_text)
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)
    except (ValueError, OverflowError):
        raise InvalidInput("must be an ISO 8601 time", name) from None


def severity(body: Body, name: str = "severity") -> Severity:
    raw = body.get(name)
    if isinstance(raw, int) and not isinstance(raw, bool) and 0 <= raw <= max(Severity):
        return Severity(raw)
    if isinstance(raw, str):
        try:
            return Severity.parse(raw)
        except ValueError as exc:
            raise InvalidInput(str(exc), name) from None
    raise InvalidInput("must be a severity name or 0-4", name)


def count(body: Body, name: str, default: int | None = None) -> int:
    raw = body.get(name, default)
    if not isinstance(raw, int) or isinstance(raw, bool) or not 0 <= raw <= MAX_COUNT:
        raise InvalidInput(f"must be an integer 0-{MAX_COUNT}", name)
    return raw


def event_kind(body: Body) -> str:
    kind = text(body, "kind", 128)
    if not KIND_PATTERN.fullmatch(kind):
        raise InvalidInput("must be a dotted lower-case event kind", "kind")
    return kind


def as_body(body: Any) -> Body:
    if not isinstance(body, dict):
        raise InvalidInput("the message body must be an object", "body")
    return body


# Enterprises and inventory

def record_enterprise(conn: Connection, node_id: str, via: str, region: str, sector: str,
                      now: datetime) -> None:
    """Remember where an enterprise is and what it does (upsert)."""
    values = {"via": via, "region": region_code(region), "sector": sector_code(sector),
              "updated_at": now}
    done = conn.execute(update(fed_enterprises).where(
        fed_enterprises.c.node_id == node_id).values(**values))
    if done.rowcount == 0:
        conn.execute(insert(fed_enterprises).values(node_id=node_id, **values))


def _maybe_place(conn: Connection, body: Body, sender: str, origin: str,
                 now: datetime) -> None:
    """A forwarded body may say where its enterprise is (``region``/``sector``)."""
    if "region" in body or "sector" in body:
        record_enterprise(conn, origin, sender, text(body, "region", 6),
                          text(body, "sector", 5), now)


def _upsert_item(conn: Connection, sender: str, origin: str, item: InventoryItem,
                 now: datetime) -> None:
    key = (fed_inventory.c.child == sender, fed_inventory.c.origin == origin,
           fed_inventory.c.item_key == item.key)
    values = {"item": json.dumps(item.to_body()), "vendor": item.vendor.lower(),
              "model": item.model.lower(), "firmware": item.firmware, "updated_at": now}
    if conn.execute(update(fed_inventory).where(*key).values(**values)).rowcount == 0:
        conn.execute(insert(fed_inventory).values(
            child=sender, origin=origin, item_key=item.key, **values))


def _items(body: Body, name: str) -> list[InventoryItem]:
    raw = body.get(name, [])
    if not isinstance(raw, list) or len(raw) > MAX_ITEMS:
        raise InvalidInput(f"must be a list of at most {MAX_ITEMS} items", name)
    return [item_from_body(entry, f"{name}[{i}]") for i, entry in enumerate(raw)]


def apply_inventory_snapshot(conn: Connection, sender: str, origin: str, body: Any,
                             created_at: datetime) -> None:
    """The origin's whole inventory: replaces what was kept of it."""
    b = as_body(body)
    items = _items(b, "items")
    _maybe_place(conn, b, sender, origin, created_at)
    conn.execute(delete(fed_inventory).where(fed_inventory.c.child == sender,
                                             fed_inventory.c.origin == origin))
    for item in items:
        _upsert_item(conn, sender, origin, item, created_at)


def apply_inventory_change(conn: Connection, sender: str, origin: str, body: Any,
                           created_at: datetime) -> None:
    """Items added, removed and changed since the last snapshot or change."""
    b = as_body(body)
    added = _items(b, "added")
    removed = b.get("removed", [])
    if not isinstance(removed, list) or len(removed) > MAX_ITEMS or not all(
            isinstance(k, str) and 0 < len(k) <= 255 for k in removed):
        raise InvalidInput(f"must be a list of at most {MAX_ITEMS} item keys", "removed")
    raw_changed = b.get("changed", [])
    if not isinstance(raw_changed, list) or len(raw_changed) > MAX_ITEMS:
        raise InvalidInput(f"must be a list of at most {MAX_ITEMS} changes", "changed")
    changed = [(text(as_body(c), "key"), changed_fields(as_body(c).get("fields"),
                                                         f"changed[{i}].fields"))
               for i, c in enumerate(raw_changed)]
    for item in added:
        _upsert_item(conn, sender, origin, item, created_at)
    for key in removed:
        conn.execute(delete(fed_inventory).where(
            fed_inventory.c.child == sender, fed_inventory.c.origin == origin,
            fed_inventory.c.item_key == key))
    for key, fields in changed:
        row = conn.execute(select(fed_inventory.c.item).where(
            fed_inventory.c.child == sender, fed_inventory.c.origin == origin,
            fed_inventory.c.item_key == key)).first()
        if row is None:
            continue  # a change to an item never reported: the next snapshot brings it
        merged = {**json.loads(row.item), **{k: list(v) if isinstance(v, tuple) else v
                                              for k, v in fields.items()}}
        _upsert_item(conn, sender, origin, item_from_body(merged), created_at)


# Events, incidents, summaries

# Built once with bound parameters: events are the bulk of what comes up, and building a
# statement per event cost more than executing it (1.2 -> 0.3 ms per event). Where the database
# has an upsert (SQLite, PostgreSQL), a run of events is one executemany of it.
_EVENT_KEY = ("child", "origin", "event_id")
_EVENT_COLUMNS = ("kind", "severity", "occurred_at", "count", "target")
_EVENT_UPDATE = update(fed_events).where(
    *(fed_events.c[k] == bindparam(f"k_{k}") for k in _EVENT_KEY)).values(
    {c: bindparam(c) for c in _EVENT_COLUMNS})
_EVENT_INSERT = insert(fed_events).values(
    {c: bindparam(c) for c in _EVENT_COLUMNS} | {k: bindparam(f"k_{k}") for k in _EVENT_KEY})


def _upsert(dialect_insert: Callable[[Table], Any]) -> Executable:
    stmt = dialect_insert(fed_events)
    return cast(Executable, stmt.on_conflict_do_update(
        index_elements=list(_EVENT_KEY), set_={c: stmt.excluded[c] for c in _EVENT_COLUMNS}))


_EVENT_UPSERT: Final[dict[str, Executable]] = {
    "sqlite": _upsert(sqlite.insert), "postgresql": _upsert(postgresql.insert)}


def event_row(sender: str, origin: str, body: Any) -> dict[str, Any]:
    """The ``fed_events`` row of one event body (InvalidInput naming the field otherwise)."""
    b = as_body(body)
    return {"kind": event_kind(b), "severity": int(severity(b)),
            "occurred_at": moment(b, "occurred_at"), "count": count(b, "count", 1),
            "target": text(b, "target", 255, required=False),
            "event_id": advisories.check_id(text(b, "id", 64), "id"),
            "child": sender, "origin": origin}


def write_events(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Upsert event rows by key; of rows with one key, the last wins (as one by one would)."""
    latest = {(r["child"], r["origin"], r["event_id"]): r for r in rows}
    upsert = _EVENT_UPSERT.get(conn.dialect.name)
    if upsert is not None:
        conn.execute(upsert, list(latest.values()))
        return
    for row in latest.values():
        params = {c: row[c] for c in _EVENT_COLUMNS} | {f"k_{k}": row[k] for k in _EVENT_KEY}
        if conn.execute(_EVENT_UPDATE, params).rowcount == 0:
            conn.execute(_EVENT_INSERT, params)


def apply_security_event(conn: Connection, sender: str, origin: str, body: Any,
                         created_at: datetime) -> None:
    """One security event (its kind, severity, time and count; never the raw data)."""
    write_events(conn, [event_row(sender, origin, body)])


def apply_incident(conn: Connection, sender: str, origin: str, body: Any,
                   created_at: datetime) -> None:
    """An incident as it stands now (opened, updated or closed): upserted by its id."""
    b = as_body(body)
    status = text(b, "status", 16)
    if status not in INCIDENT_STATUSES:
        raise InvalidInput(f"must be one of {', '.join(INCIDENT_STATUSES)}", "status")
    values = {"severity": int(severity(b)), "status": status, "title": text(b, "title"),
              "opened_at": moment(b, "opened_at"),
              "closed_at": moment(b, "closed_at", required=False), "updated_at": created_at}
    incident_id = advisories.check_id(text(b, "id", 64), "id")
    key = (fed_incidents.c.child == sender, fed_incidents.c.origin == origin,
           fed_incidents.c.incident_id == incident_id)
    if conn.execute(update(fed_incidents).where(*key).values(**values)).rowcount == 0:
        conn.execute(insert(fed_incidents).values(
            child=sender, origin=origin, incident_id=incident_id, **values))


def apply_summary(conn: Connection, sender: str, origin: str, body: Any,
                  created_at: datetime) -> None:
    """Counts per kind and severity over one time bucket (and the asset count): replaces what
    was kept for that bucket, so a later, fuller summary of the same bucket wins."""
    b = as_body(body)
    start = moment(b, "bucket_start")
    seconds = count(b, "bucket_seconds")
    if not 60 <= seconds <= 86_400 * 31:
        raise InvalidInput("must be 60 s to 31 days", "bucket_seconds")
    raw = b.get("counts", [])
    if not isinstance(raw, list) or len(raw) > 1000:
        raise InvalidInput("must be a list of at most 1000 counts", "counts")
    rows: dict[tuple[str, int], int] = {}
    for i, entry in enumerate(raw):
        e = as_body(entry)
        try:
            key = (event_kind(e), int(severity(e)))
            rows[key] = rows.get(key, 0) + count(e, "count")
        except InvalidInput as exc:
            raise InvalidInput(str(exc), f"counts[{i}]") from None
    assets = count(b, "assets") if "assets" in b else None
    _maybe_place(conn, b, sender, origin, created_at)
    where = (fed_summaries.c.child == sender, fed_summaries.c.origin == origin,
             fed_summaries.c.bucket_start == start)
    conn.execute(delete(fed_summaries).where(*where))
    for (kind, sev), n in sorted(rows.items()):
        conn.execute(insert(fed_summaries).values(
            child=sender, origin=origin, bucket_start=start, bucket_seconds=seconds,
            kind=kind, severity=sev, count=n))
    if assets is not None:
        conn.execute(delete(fed_asset_counts).where(
            fed_asset_counts.c.child == sender, fed_asset_counts.c.origin == origin,
            fed_asset_counts.c.bucket_start == start))
        conn.execute(insert(fed_asset_counts).values(
            child=sender, origin=origin, bucket_start=start, assets=assets))


# Answers to advisories and orders

def apply_advisory_match(conn: Connection, sender: str, origin: str, body: Any,
                         created_at: datetime) -> None:
    """An enterprise's answer to an advisory: the assets it affects (maybe none)."""
    b = as_body(body)
    advisory_id = advisories.check_id(text(b, "advisory_id", 64), "advisory_id")
    raw = b.get("affected")
    if not isinstance(raw, list) or len(raw) > MAX_ITEMS:
        raise InvalidInput(f"must be a list of at most {MAX_ITEMS} assets", "affected")
    found = {}
    for i, entry in enumerate(raw):
        e = as_body(entry)
        try:
            found[text(e, "item_key")] = (text(e, "vendor", 128), text(e, "product", 128),
                                          text(e, "version", 128, required=False))
        except InvalidInput as exc:
            raise InvalidInput(str(exc), f"affected[{i}]") from None
    conn.execute(delete(fed_advisory_matches).where(
        fed_advisory_matches.c.advisory_id == advisory_id,
        fed_advisory_matches.c.origin == origin))
    for key, (vendor, product, version) in sorted(found.items()):
        conn.execute(insert(fed_advisory_matches).values(
            advisory_id=advisory_id, origin=origin, item_key=key, vendor=vendor.lower(),
            product=product.lower(), version=version))
    conn.execute(delete(fed_advisory_replies).where(
        fed_advisory_replies.c.advisory_id == advisory_id,
        fed_advisory_replies.c.origin == origin))
    conn.execute(insert(fed_advisory_replies).values(
        advisory_id=advisory_id, origin=origin, child=sender, affected=len(found),
        reported_at=created_at))


def apply_order_status(conn: Connection, sender: str, origin: str, body: Any,
                       created_at: datetime) -> None:
    """A target's new state of an order this node tracks (forward only)."""
    orders.apply_status(conn, origin, body)


REPORT_HANDLERS: Final[dict[str, Handler]] = {
    "inventory.snapshot": apply_inventory_snapshot,
    "inventory.change": apply_inventory_change,
    "security.event": apply_security_event,
    "incident": apply_incident,
    "summary": apply_summary,
    "advisory.match": apply_advisory_match,
    "order.status": apply_order_status,
}

#: Kinds applied a run at a time: each body's row (validated alone, from the sender, origin
#: and body), then one write for all.
RowOf = Callable[[str, str, Any], dict[str, Any]]
RowsWriter = Callable[[Connection, list[dict[str, Any]]], None]
BULK_HANDLERS: Final[dict[str, tuple[RowOf, RowsWriter]]] = {
    "security.event": (event_row, write_events),
}


# The link layer's side, as far as these handlers need it

class Peer(Protocol):
    @property
    def node_id(self) -> str: ...
    @property
    def role(self) -> str: ...
    @property
    def region(self) -> str: ...
    @property
    def sector(self) -> str: ...


class InboundMessage(Protocol):
    @property
    def kind(self) -> str: ...
    @property
    def origin(self) -> str | None: ...
    @property
    def body(self) -> dict[str, Any]: ...
    @property
    def created_at(self) -> datetime | int: ...  # the link layer's: epoch milliseconds


LinkHandler = Callable[[Connection, Any, Any], None]
LinkBatchHandler = Callable[[Connection, Any, list[Any]], list[tuple[Any, Exception]]]


class Inbox(Protocol):
    def register(self, kind: str, handler: LinkHandler) -> None: ...


AllowedOrigins = Callable[[Connection, Any], set[str]]


def _moment(created_at: datetime | int) -> datetime:
    """The link layer stamps messages in epoch milliseconds."""
    if isinstance(created_at, datetime):
        return created_at
    return datetime.fromtimestamp(created_at / 1000, UTC)


def adapt(handler: Handler, allowed_origins: AllowedOrigins) -> LinkHandler:
    """The link layer's ``handler(conn, sender, message)`` for one of ours: the origin is the
    message's or the sender's own id, and must be one the sender may write under."""

    def run(conn: Connection, sender: Any, message: Any) -> None:
        peer: Peer = sender
        msg: InboundMessage = message
        origin = msg.origin or peer.node_id
        if origin != peer.node_id and origin not in allowed_origins(conn, peer):
            raise PermissionDenied(f"{peer.node_id} may not report for {origin}")
        placed = batch_cache(conn).setdefault("placed", set())  # once per batch, not message
        place = origin == peer.node_id and peer.role == "enterprise" and bool(peer.region) \
            and bool(peer.sector) and origin not in placed
        if place:
            record_enterprise(conn, origin, origin, peer.region, peer.sector,
                              _moment(msg.created_at))
        handler(conn, peer.node_id, origin, msg.body, _moment(msg.created_at))
        if place:  # only once the message applied: a refused one rolls the record back
            placed.add(origin)

    return run


def adapt_bulk(row_of: RowOf, write: RowsWriter,
               allowed_origins: AllowedOrigins) -> LinkBatchHandler:
    """The link layer's batch handler for a kind of :data:`BULK_HANDLERS`: what :func:`adapt`
    does per message (origin check, placing the enterprise), each body validated alone and
    refused alone, the valid rows written at once."""

    def run(conn: Connection, sender: Any, messages: list[Any]) -> list[tuple[Any, Exception]]:
        peer: Peer = sender
        refused: list[tuple[Any, Exception]] = []
        rows: list[dict[str, Any]] = []
        allowed: set[str] | None = None
        place_at: datetime | None = None
        for message in messages:
            msg: InboundMessage = message
            origin = msg.origin or peer.node_id
            try:
                if origin != peer.node_id:
                    allowed = allowed_origins(conn, peer) if allowed is None else allowed
                    if origin not in allowed:
                        raise PermissionDenied(f"{peer.node_id} may not report for {origin}")
                rows.append(row_of(peer.node_id, origin, msg.body))
            except (MillnetError, *HANDLER_BUGS) as exc:
                refused.append((message, exc))  # the inbox re-raises the database's errors
                continue
            if place_at is None and origin == peer.node_id:
                place_at = _moment(msg.created_at)  # once: a datetime per message costs
        placed = batch_cache(conn).setdefault("placed", set())
        if place_at is not None and peer.role == "enterprise" and peer.region \
                and peer.sector and peer.node_id not in placed:
            record_enterprise(conn, peer.node_id, peer.node_id, peer.region, peer.sector,
                              place_at)
            placed.add(peer.node_id)
        if rows:
            write(conn, rows)
        return refused

    return run


def register_handlers(inbox: Inbox, allowed_origins: AllowedOrigins,
                      extra: Mapping[str, Handler] | None = None) -> None:
    """Register every report handler (and ``extra`` ones, e.g. the downward kinds of
    :mod:`millnet.federation.downward`) on the link layer's inbox, and the batch handlers of
    :data:`BULK_HANDLERS` where the inbox takes them."""
    for kind, handler in {**REPORT_HANDLERS, **(extra or {})}.items():
        inbox.register(kind, adapt(handler, allowed_origins))
    register_batch: Callable[[str, LinkBatchHandler], None] | None = getattr(
        inbox, "register_batch", None)
    if register_batch is None:
        return
    for kind, (row_of, write) in BULK_HANDLERS.items():
        if extra is None or kind not in extra:
            register_batch(kind, adapt_bulk(row_of, write, allowed_origins))
