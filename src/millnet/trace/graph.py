"""The trace of an identifier: upstream (what went into it, level by level through its bill of
materials, across nodes) and downstream (what it went into, where it was shipped), with the
production conditions of what was made here.

The local walk is breadth-first, one round of queries per level (links of every identifier of
the level, then the links of their events), never a query per node. An identifier this node
knows nothing upstream of, whose prefix is not one of the tenant's, belongs to another
enterprise: :class:`Remote` finds that enterprise's trace API (through the identifier
hierarchy) and asks it for the rest of the walk, with the depth left and a hop count, under a
timeout; an answer that does not come is an ``unreachable`` node in the tree, never a hang.
Cycles are cut: an identifier already in the walk is listed with ``status: "seen"``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from millnet.trace import ids
from millnet.trace.capture import (
    CHILD,
    CHILD_CLASS,
    EPC,
    INPUT,
    INPUT_CLASS,
    OUTPUT,
    OUTPUT_CLASS,
    PARENT,
    ROLE_NAMES,
)
from millnet.trace.store import EpcisStore, StoredEvent

MAX_DEPTH: Final = 12
MAX_HOPS: Final = 6
MAX_NODES: Final = 5_000
#: Upstream: the event made (output) or contains (parent) the identifier; its inputs and
#: children are what went in. Downstream the other way round.
_UP_FROM: Final = (OUTPUT, OUTPUT_CLASS, PARENT)
_UP_TO: Final = {OUTPUT: (INPUT, INPUT_CLASS), OUTPUT_CLASS: (INPUT, INPUT_CLASS),
                 PARENT: (CHILD, CHILD_CLASS)}
_DOWN_FROM: Final = (INPUT, INPUT_CLASS, CHILD, CHILD_CLASS, EPC)
_DOWN_TO: Final = {INPUT: (OUTPUT, OUTPUT_CLASS), INPUT_CLASS: (OUTPUT, OUTPUT_CLASS),
                   CHILD: (PARENT,), CHILD_CLASS: (PARENT,)}


class RemoteTrace(Protocol):
    """Asks other enterprises' nodes for the upstream traces of ``keys``: a tree per key
    (raises nothing: failures are ``unreachable`` trees)."""

    def __call__(self, keys: list[str], depth: int,
                 hops: int) -> Coroutine[Any, Any, dict[str, dict[str, Any]]]: ...


#: (tenant, read point, start µs, end µs) -> the telemetry summary and alarms of that place.
Conditions = Callable[[int, str, int, int], dict[str, Any] | None]


def summary(event: StoredEvent) -> dict[str, Any]:
    """What a trace shows of an event."""
    out: dict[str, Any] = {"id": event.id, "type": event.event_type,
                           "event_time": event.body.get("eventTime"),
                           "event_id": event.body.get("eventID")}
    for key, value in (("biz_step", event.biz_step), ("action", event.action),
                       ("read_point", event.read_point), ("biz_location", event.biz_location)):
        if value is not None:
            out[key] = value
    if event.body.get("destinationList"):
        out["destinations"] = event.body["destinationList"]
    return out


@dataclass
class _Level:
    """Identifier -> event ids and the identifiers reached through them, for one level."""

    events: dict[str, list[int]] = field(default_factory=dict)
    next_keys: dict[str, list[str]] = field(default_factory=dict)


class Tracer:
    """Walks one tenant's EPCIS graph; ``remote`` continues upstream walks on other nodes."""

    def __init__(self, store: EpcisStore, *, node_name: str,
                 own_prefixes: Callable[[int], list[str]],
                 remote: RemoteTrace | None = None, conditions: Conditions | None = None,
                 default_window_us: int = 15 * 60 * 1_000_000) -> None:
        self._store = store
        self._node = node_name
        self._own_prefixes = own_prefixes
        self._remote = remote
        self._conditions = conditions
        self._window = default_window_us

    async def trace(self, tenant_id: int, identifier: str, *, depth: int = 8,
                    hops: int = MAX_HOPS, upstream: bool = True, downstream: bool = True,
                    conditions: bool = True) -> dict[str, Any]:
        key = ids.key_of(identifier)
        depth = max(0, min(depth, MAX_DEPTH))
        root: dict[str, Any] = {"identifier": key, "node": self._node}
        if upstream:
            walked = await self._walk(tenant_id, [key], depth, hops, True, conditions)
            root["upstream"] = walked[key]
        if downstream:
            walked = await self._walk(tenant_id, [key], depth, hops, False, False)
            root["downstream"] = walked[key]
        made = await asyncio.to_thread(self._made, tenant_id, [key], conditions)
        root.update(made.get(key, {}))
        return root

    async def trace_many(self, tenant_id: int, identifiers: list[str], *, depth: int = 8,
                         hops: int = MAX_HOPS,
                         conditions: bool = True) -> dict[str, dict[str, Any]]:
        """The upstream trees of several identifiers in one walk (what another node asks for
        the identifiers of one level): one round of queries per level for all of them."""
        keys = list(dict.fromkeys(ids.key_of(i) for i in identifiers))
        depth = max(0, min(depth, MAX_DEPTH))
        walked = await self._walk(tenant_id, keys, depth, hops, True, conditions)
        made = await asyncio.to_thread(self._made, tenant_id, keys, conditions)
        return {key: {"identifier": key, "node": self._node, "upstream": walked[key],
                      **made.get(key, {})} for key in keys}

    # -- one direction, level by level ---------------------------------------------------------

    async def _walk(self, tenant_id: int, roots: list[str], depth: int, hops: int, up: bool,
                    conditions: bool) -> dict[str, list[dict[str, Any]]]:
        seen = set(roots)
        root_set = frozenset(roots)
        trees: dict[str, dict[str, Any]] = {}
        frontier = list(roots)
        children_of: dict[str, list[str]] = {}
        level_no = 0
        own = set(await asyncio.to_thread(self._own_prefixes, tenant_id))
        remote_jobs: list[asyncio.Task[dict[str, dict[str, Any]]]] = []
        while frontier and level_no < depth and len(seen) < MAX_NODES:
            level = await asyncio.to_thread(self._level, tenant_id, frontier, up)
            if up and self._remote is not None and hops > 0:
                # Identifiers of other enterprises that this node made nothing of: ask their
                # nodes, all of this level at once.
                foreign = [k for k in frontier if k not in root_set
                           and k not in level.events and ids.prefix_of(k) is not None
                           and ids.prefix_of(k) not in own]
                if foreign:
                    remote_jobs.append(asyncio.create_task(
                        self._remote(foreign, depth - level_no, hops - 1)))
            next_frontier: list[str] = []
            for parent in frontier:
                kids = level.next_keys.get(parent, [])
                children_of[parent] = kids
                for kid in kids:
                    if kid in seen:
                        continue
                    seen.add(kid)
                    next_frontier.append(kid)
            made = await asyncio.to_thread(self._made, tenant_id, next_frontier,
                                           conditions and up)
            for kid in next_frontier:
                trees[kid] = {"identifier": kid, "node": self._node, **made.get(kid, {})}
            frontier = next_frontier
            level_no += 1
        for job in remote_jobs:
            trees.update(await job)
        direction = "upstream" if up else "downstream"
        return {root: self._assemble(root, children_of, trees, {root}, direction)
                for root in roots}

    def _assemble(self, key: str, children_of: dict[str, list[str]],
                  trees: dict[str, dict[str, Any]], shown: set[str],
                  direction: str) -> list[dict[str, Any]]:
        """The tree below ``key``; an identifier shown already (a cycle, or a part shared by
        two branches) is shown again only as ``seen``."""
        out = []
        for kid in children_of.get(key, []):
            if kid in shown:
                out.append({"identifier": kid, "status": "seen"})
                continue
            shown.add(kid)
            tree = dict(trees.get(kid, {"identifier": kid, "status": "depth_limit"}))
            if direction not in tree:  # a remote answer brings its own
                if kid in children_of:
                    tree[direction] = self._assemble(kid, children_of, trees, shown,
                                                     direction)
                elif "status" not in tree:
                    tree["status"] = "depth_limit"
            out.append(tree)
        return out

    def _level(self, tenant_id: int, keys: list[str], up: bool) -> _Level:
        start = _UP_FROM if up else _DOWN_FROM
        ends = _UP_TO if up else _DOWN_TO
        links = self._store.links_of(tenant_id, keys, start)
        level = _Level()
        by_event: dict[int, list[tuple[str, int]]] = {}
        for key, event_id, role in links:
            level.events.setdefault(key, []).append(event_id)
            by_event.setdefault(event_id, []).append((key, role))
        if not by_event:
            return level
        event_links = self._store.event_links(tenant_id, by_event)
        for event_id, other, role in event_links:
            for key, from_role in by_event[event_id]:
                if role in ends.get(from_role, ()) and other != key:
                    kids = level.next_keys.setdefault(key, [])
                    if other not in kids:
                        kids.append(other)
        for kids in level.next_keys.values():
            kids.sort()  # one tree for the same data, whatever order the rows came in
        return level

    def _made(self, tenant_id: int, keys: list[str],
              conditions: bool) -> dict[str, dict[str, Any]]:
        """Per identifier: the events of this node naming it, and the conditions where it was
        made (the read point of the event that output it, from its first event to that)."""
        if not keys:
            return {}
        links = self._store.links_of(tenant_id, keys, tuple(ROLE_NAMES))
        events = self._store.get_events(tenant_id, {e for _, e, _ in links})
        out: dict[str, dict[str, Any]] = {}
        for key, event_id, role in links:
            entry = out.setdefault(key, {"events": []})
            event = events.get(event_id)
            if event is not None:
                entry["events"].append({**summary(event), "role": ROLE_NAMES[role]})
        for key, entry in out.items():
            entry["events"].sort(key=lambda e: (e.get("event_time") or "", e["id"]))
            if conditions and self._conditions is not None:
                found = self._production(tenant_id, key, links, events)
                if found is not None:
                    entry["conditions"] = found
        return out

    def _production(self, tenant_id: int, key: str, links: list[tuple[str, int, int]],
                    events: dict[int, StoredEvent]) -> dict[str, Any] | None:
        assert self._conditions is not None
        own = [events[e] for k, e, _ in links if k == key and e in events]
        made = [events[e] for k, e, role in links if k == key and e in events
                and events[e].read_point and (role in (OUTPUT, OUTPUT_CLASS) or (
                    role == EPC and events[e].action == "ADD"))]
        if not made:
            return None
        last = max(made, key=lambda e: e.event_time_us)  # finished (or started) here
        read_point = last.read_point
        assert read_point is not None
        end = last.event_time_us
        start = min(e.event_time_us for e in own if e.read_point == read_point)
        if start >= end:
            start = end - self._window
        found = self._conditions(tenant_id, read_point, start, end)
        if found is None:
            return None
        return {"read_point": read_point, "start_us": start, "end_us": end, **found}
