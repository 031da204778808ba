"""Primary / mirror replication of an identifier node, over the node's HTTP API.

Handle.Net replicates a site's servers with a transaction queue that mirrors pull; millnet does
the same over HTTP:

* Every committed change of a handle appends a row to ``handle_txns`` in the same transaction
  (create, batch, delete, value changes). The log names the handle only.
* The primary serves ``GET /api/replication/txns?since=N&limit=L``: the next changes after
  transaction ``N``, each with the handle's *current* state (all of its values, restricted
  ones included, in Handle.Net JSON) or ``deleted``. Reading the state at pull time makes
  replay idempotent: a mirror that applies a page twice (a crash between applying and saving
  its position) ends in the same state. Access: HTTP Basic as the prefix's admin (the values
  include HS_SECKEY: serve it over TLS or a private network).
* A mirror (``millnet id serve --mirror-of http://primary:8000``) pulls from its last applied
  id, applies each change to its own store (values as the primary holds them, timestamps
  included), saves its position in ``replication.json`` after each page (atomic rename), and
  retries with backoff while the primary is unreachable; it keeps serving reads meanwhile.
  A new mirror starts from 0, which replays every handle ever written.
* A mirror refuses writes with SERVER_BACKUP (hdllib clients then go to the primary) naming the
  primary. Its own prefix record ``0.NA/<prefix>`` describes the mirror and is not replicated.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import urllib.error
import urllib.request
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote

import msgspec
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from millnet.errors import InvalidInput, MillnetError
from millnet.identifiers.core.errors import HandleNotFound
from millnet.identifiers.core.schema import handles
from millnet.identifiers.core.service import IdentifierService
from millnet.identifiers.core.store import IdentifierStore
from millnet.identifiers.hierarchy.freshness import fetch_json
from millnet.identifiers.http.basic_auth import authenticate
from millnet.identifiers.http.rest import error_response
from millnet.identifiers.http.rest_json import parse_value, value_json
from millnet.model.limits import ascii_digits
from millnet.protocols.handle import HandleValue, ValueReference, prefix_handle
from millnet.protocols.handle.constants import ALL_ADMIN_PERMISSIONS

log = logging.getLogger("millnet.identifiers.replication.replication")

PAGE = 1000
POSITION_FILE = "replication.json"
MAX_PAGE_BYTES = 256 << 20  # 10,000 handles of large values fit


def changes_since(store: IdentifierStore, since: int, limit: int) -> dict[str, Any]:
    """The page of changes after transaction ``since``: the latest change per handle, with
    the handle's current values (or deleted), and the id to ask from next. ``reset`` when
    changes after ``since`` were trimmed from the log: the mirror must take a dump."""
    page = store.log_after(since, limit)
    if page.reset:  # behind the trimmed log, or ahead of it: the mirror takes a dump
        return {"reset": True, "next": page.next, "more": False, "txns": []}
    latest: dict[str, int] = {}
    for txn_id, handle in page.changes:
        latest[handle] = txn_id
    txns = []
    for handle, txn_id in sorted(latest.items(), key=lambda item: item[1]):
        try:
            values = store.get(handle)
        except HandleNotFound:
            txns.append({"id": txn_id, "handle": handle, "deleted": True})
            continue
        txns.append({"id": txn_id, "handle": handle, "deleted": False,
                     "values": [_full_json(v) for v in values]})
    return {"next": page.next, "more": page.more, "txns": txns}


def dump_page(store: IdentifierStore, after: str, limit: int) -> dict[str, Any]:
    """Every handle after ``after`` in name order, ``limit`` of them, with all their values:
    how a mirror that fell behind a trimmed log starts again."""
    with store.engine.begin() as conn:
        names = list(conn.execute(select(handles.c.handle).where(handles.c.handle > after)
                                  .order_by(handles.c.handle).limit(limit)).scalars())
    page = []
    for name in names:
        with contextlib.suppress(HandleNotFound):  # deleted meanwhile: the log says so later
            page.append({"handle": name,
                         "values": [_full_json(v) for v in store.get(name)]})
    return {"handles": page, "last": names[-1] if names else None,
            "more": len(names) == limit}


def trim_log(store: IdentifierStore, keep: int) -> int:
    """Keep the newest ``keep`` log rows; how many older ones were deleted."""
    return store.trim_txns(keep)


def _full_json(value: HandleValue) -> dict[str, Any]:
    """A value in Handle.Net JSON with its timestamp as seconds (lossless, for replay)."""
    out: dict[str, Any] = msgspec.to_builtins(value_json(value))
    out["timestampSeconds"] = value.timestamp
    out["permissionsBits"] = value.permissions
    return out


def replication_routes(service: IdentifierService, prefix: str,
                       base: str = "/api") -> list[Route]:
    """``GET {base}/replication/txns`` and ``.../dump``: for a full admin of ``prefix`` only
    (every HS_ADMIN permission on ``0.NA/<prefix>``). The pages carry every value, secret keys
    included: an admin with fewer rights (an auditor allowed LIST_HANDLES, say) would learn
    the secret of a stronger admin from them (found by review)."""
    record = prefix_handle(prefix)

    async def txns(request: Request) -> Response:
        try:
            principal = await authenticate(request, service)
            await run_in_threadpool(service.authorize, principal, record,
                                    ALL_ADMIN_PERMISSIONS)
            since = _int(request.query_params.get("since", "0"), "since")
            limit = min(_int(request.query_params.get("limit", str(PAGE)), "limit"), 10 * PAGE)
            body = await run_in_threadpool(changes_since, service.store, since, max(limit, 1))
        except MillnetError as exc:
            return error_response(exc)
        return Response(json.dumps(body), media_type="application/json")

    async def dump(request: Request) -> Response:
        try:
            principal = await authenticate(request, service)
            await run_in_threadpool(service.authorize, principal, record,
                                    ALL_ADMIN_PERMISSIONS)
            after = request.query_params.get("after", "")
            limit = min(_int(request.query_params.get("limit", str(PAGE)), "limit"), 10 * PAGE)
            body = await run_in_threadpool(dump_page, service.store, after, max(limit, 1))
        except MillnetError as exc:
            return error_response(exc)
        return Response(json.dumps(body), media_type="application/json")

    root = base.rstrip("/")
    return [Route(f"{root}/replication/txns", txns, methods=["GET"]),
            Route(f"{root}/replication/dump", dump, methods=["GET"])]


def _int(text: str, field: str) -> int:
    if not ascii_digits(text, 20):
        raise InvalidInput(f"{text[:20]!r} is not a non-negative integer", field)
    return int(text)


@dataclass
class MirrorStats:
    applied: int = 0
    pulls: int = 0
    failures: int = 0
    position: int = 0
    resyncs: int = 0


class Mirror:
    """Pulls the primary's changes into ``store`` until cancelled."""

    def __init__(self, store: IdentifierStore, primary: str, admin: ValueReference,
                 secret: bytes, data_dir: Path, own_record: str, *, interval: float = 0.5,
                 max_backoff: float = 5.0) -> None:
        self.store = store
        self.url = primary.rstrip("/") + "/api/replication/txns"
        self.dump_url = primary.rstrip("/") + "/api/replication/dump"
        user = quote(f"{admin.index}:{admin.handle}").encode()
        self._auth = "Basic " + base64.b64encode(user + b":" + secret).decode()
        self.position_file = data_dir / POSITION_FILE
        self.own_record = own_record
        self.interval, self.max_backoff = interval, max_backoff
        self.stats = MirrorStats(position=self._load())

    def _load(self) -> int:
        """The saved position; 0 (replay everything, which is idempotent) when there is none
        or it was saved for another primary."""
        try:
            saved = json.loads(self.position_file.read_text())
            if saved.get("primary", self.url) != self.url:
                log.warning("mirror: the saved position is for %s; replaying %s from 0",
                            saved.get("primary"), self.url)
                return 0
            return int(saved["position"])
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return 0

    def _save(self, position: int) -> None:
        tmp = self.position_file.with_suffix(".tmp")
        with tmp.open("w") as out:
            out.write(json.dumps({"position": position, "primary": self.url}))
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, self.position_file)

    def _get(self, url: str) -> dict[str, Any]:
        # No redirects (found by review: urllib followed them with the Authorization header,
        # handing the prefix admin's secret to whatever host a redirect named).
        req = urllib.request.Request(url, headers={"Authorization": self._auth})  # noqa: S310
        return fetch_json(req, 30, MAX_PAGE_BYTES)

    def _fetch(self, since: int) -> dict[str, Any]:
        return self._get(f"{self.url}?since={since}&limit={PAGE}")

    def resync(self, resume_at: int) -> None:
        """Take a full dump (the log no longer reaches back to this mirror's position): every
        handle of the primary, then local handles the primary no longer has are deleted;
        pulling resumes at ``resume_at``, the newest change when the dump began (changes
        during the dump are replayed after it: idempotent)."""
        log.warning("mirror: %s trimmed its log past position %d: taking a full dump",
                    self.url, self.stats.position)
        seen: set[str] = set()
        after = ""
        while True:
            page = self._get(f"{self.dump_url}?after={quote(after)}&limit={PAGE}")
            for item in page["handles"]:
                seen.add(item["handle"])
                self.apply({"txns": [{"id": 0, "handle": item["handle"], "deleted": False,
                                      "values": item["values"]}]})
            if not page["more"] or page["last"] is None:
                break
            after = page["last"]
        stale = [name for name in self.store.iter_handles_all() if name not in seen
                 and name != self.own_record]
        for name in stale:
            with contextlib.suppress(HandleNotFound):
                self.store.delete_handle(name)
        self.stats.resyncs += 1
        self.stats.position = resume_at
        self._save(resume_at)

    def apply(self, page: dict[str, Any]) -> int:
        """Apply one page; how many changes were applied."""
        applied = 0
        for txn in page["txns"]:
            handle = txn["handle"]
            if handle == self.own_record:
                continue  # this node's own prefix record describes this node
            if txn["deleted"]:
                with contextlib.suppress(HandleNotFound):
                    self.store.delete_handle(handle)
            else:
                values = [_replayed(raw, f"txns[{txn['id']}].values[{i}]")
                          for i, raw in enumerate(txn["values"])]
                self.store.create_handle(handle, values, overwrite=True)
            applied += 1
        return applied

    def sync_once(self) -> bool:
        """Pull and apply until caught up; False if the primary could not be reached."""
        while True:
            try:
                page = self._fetch(self.stats.position)
            except (OSError, ValueError, urllib.error.URLError) as exc:
                self.stats.failures += 1
                log.warning("mirror: primary %s unreachable: %s", self.url, exc)
                return False
            self.stats.pulls += 1
            if page.get("reset"):
                try:
                    self.resync(int(page["next"]))
                except (OSError, ValueError, urllib.error.URLError) as exc:
                    self.stats.failures += 1
                    log.warning("mirror: dump from %s failed: %s", self.url, exc)
                    return False
                continue
            self.stats.applied += self.apply(page)
            if page["next"] != self.stats.position:
                self.stats.position = int(page["next"])
                self._save(self.stats.position)
            if not page["more"]:
                return True

    async def run(self) -> None:
        """Follow the primary until cancelled. Nothing ends the loop but cancellation (found
        by review: a truncated response or a malformed page ended it silently, and the node
        went on serving stale data): every failure is logged, counted and retried."""
        backoff = self.interval
        while True:
            try:
                ok = await asyncio.to_thread(self.sync_once)
            except Exception:
                self.stats.failures += 1
                log.exception("mirror: following %s failed; retrying", self.url)
                ok = False
            backoff = self.interval if ok else min(backoff * 2, self.max_backoff)
            await asyncio.sleep(backoff)


def _replayed(raw: dict[str, Any], field: str) -> HandleValue:
    value = parse_value(raw, field)
    return replace(value, timestamp=int(raw.get("timestampSeconds", value.timestamp)),
                   permissions=int(raw.get("permissionsBits", value.permissions)))
