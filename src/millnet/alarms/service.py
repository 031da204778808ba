"""The alarm service: runs every alarm's ISA-18.2 lifecycle from condition changes and
operators' actions, stores each transition, and hands its notice on.

Everything that changes an alarm goes through one queue, in order: the rule engine's condition
changes (:meth:`AlarmService.submit`, which never waits) and operators' actions (which wait for
their transition to be stored). One writer task takes everything queued per round, applies it to
the alarms held in memory (:mod:`.lifecycle` decides), commits the round's transitions in one
transaction in a worker thread, and then calls ``on_notices`` with the notices of the
annunciated ones. Since only the writer changes alarms, what it holds is what is stored plus the
round in flight; a store failure is retried with backoff and loses nothing.

Alarms in NORMAL are not loaded at start; the first change of such an alarm looks it up (once
per round for every alarm new to the round). Shelving expires by a timer per shelved alarm.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import ParamSpec, TypeVar

from millnet.alarms import flood
from millnet.alarms.lifecycle import Action, Status, Step, act, on_condition
from millnet.alarms.records import (
    AlarmEvent,
    AlarmFilter,
    AlarmRecord,
    EventDraft,
    Key,
    Write,
    advance,
    fresh,
    status_of,
)
from millnet.alarms.settings import AlarmsSection
from millnet.alarms.store import AlarmStore, utc_of_ns
from millnet.errors import Conflict, InvalidInput, MillnetError, NotFound, StorageError
from millnet.model.alarms import AlarmNotice, AlarmState, ConditionChange

log = logging.getLogger("millnet.alarms")
#: How long a stopping node waits for the last condition changes to be stored.
STOP_LIMIT_S = 5.0

P = ParamSpec("P")
T = TypeVar("T")
NoticeSink = Callable[[list[AlarmNotice]], None]


@dataclass(slots=True)
class _Act:
    """An action waiting in the queue; ``loaded`` is the alarm as read when it was asked for."""

    alarm_id: int
    action: Action
    user: str | None
    comment: str | None
    loaded: AlarmRecord | None = None
    until: datetime | None = None
    future: asyncio.Future[AlarmRecord] | None = None


@dataclass(frozen=True, slots=True)
class _Retire:
    rule_id: int


@dataclass(slots=True)
class _Pending:
    """A transition of the round: its write, whether it is annunciated, who waits for it."""

    write: Write
    notify: bool
    received_ns: int = 0
    future: asyncio.Future[AlarmRecord] | None = None


_Item = ConditionChange | _Act | _Retire


class AlarmService:
    """Alarms of one node. Use from the event loop; :meth:`run` must be running."""

    def __init__(self, store: AlarmStore, settings: AlarmsSection,
                 asset_path: Callable[[int], str], on_notices: NoticeSink) -> None:
        """``asset_path`` is called in a worker thread (it may block); ``on_notices`` on the
        event loop, after the transitions it gets are stored (it must not block)."""
        self.store = store
        self.settings = settings
        self._asset_path = asset_path
        self._on_notices = on_notices
        self._held: dict[Key, AlarmRecord] = {}
        self._ids: dict[int, Key] = {}
        # Keys of every stored alarm (loaded at start, kept by this, the only writer): a change
        # of a key never stored needs no look-up, one thread hop less on an alarm's way.
        self._stored: set[Key] = set()
        self._paths: dict[int, str] = {}
        self._queue: deque[_Item] = deque()
        self._queued_changes = 0
        self._wake = asyncio.Event()
        self._timers: dict[int, asyncio.TimerHandle] = {}
        self.dropped = 0  # condition changes refused because the queue was full
        self.store_failures = 0  # store calls that failed (and were retried)

    # -- input -------------------------------------------------------------------------------
    def submit(self, changes: Sequence[ConditionChange]) -> None:
        """Queue condition changes (returns at once; beyond ``queue_max`` they are counted in
        ``dropped`` and logged)."""
        room = self.settings.queue_max - self._queued_changes
        taken = changes if len(changes) <= room else changes[:max(room, 0)]
        self._queue.extend(taken)
        self._queued_changes += len(taken)
        if len(taken) < len(changes):
            before = self.dropped
            self.dropped += len(changes) - len(taken)
            if before == 0 or before // 1000 != self.dropped // 1000:
                log.warning("alarm queue full (%d changes): %d condition changes dropped so far",
                            self.settings.queue_max, self.dropped)
        if taken:
            self._wake.set()

    def retire_rule(self, rule_id: int) -> None:
        """Return the alarms of a removed rule to NORMAL (each with a ``retired`` event)."""
        self._queue.append(_Retire(rule_id))
        self._wake.set()

    # -- operators' actions ------------------------------------------------------------------
    async def acknowledge(self, tenant_id: int | None, alarm_id: int, user: str,
                          comment: str | None = None) -> AlarmRecord:
        return await self._act(tenant_id, alarm_id, Action.ACKNOWLEDGE, user, comment)

    async def shelve(self, tenant_id: int | None, alarm_id: int, user: str, *,
                     until: datetime | None = None, duration_s: float | None = None,
                     comment: str | None = None) -> AlarmRecord:
        """Shelve until ``until`` or for ``duration_s`` (exactly one; at most
        ``max_shelve_s``); InvalidInput naming the field otherwise."""
        return await self._act(tenant_id, alarm_id, Action.SHELVE, user, comment,
                               self._shelve_until(until, duration_s))

    async def unshelve(self, tenant_id: int | None, alarm_id: int, user: str,
                       comment: str | None = None) -> AlarmRecord:
        return await self._act(tenant_id, alarm_id, Action.UNSHELVE, user, comment)

    async def remove_from_service(self, tenant_id: int | None, alarm_id: int, user: str,
                                  comment: str | None = None) -> AlarmRecord:
        return await self._act(tenant_id, alarm_id, Action.REMOVE_FROM_SERVICE, user, comment)

    async def return_to_service(self, tenant_id: int | None, alarm_id: int, user: str,
                                comment: str | None = None) -> AlarmRecord:
        return await self._act(tenant_id, alarm_id, Action.RETURN_TO_SERVICE, user, comment)

    def _shelve_until(self, until: datetime | None, duration_s: float | None) -> datetime:
        if (until is None) == (duration_s is None):
            raise InvalidInput("give either duration_s or until", "duration_s")
        now = datetime.now(UTC)
        longest = timedelta(seconds=self.settings.max_shelve_s)
        if duration_s is not None:
            if not 0 < duration_s <= longest.total_seconds():
                raise InvalidInput(f"must be above 0 and at most {longest.total_seconds():g}",
                                   "duration_s")
            return now + timedelta(seconds=duration_s)
        assert until is not None
        if until.tzinfo is None:
            raise InvalidInput("needs a time zone", "until")
        if not now < until <= now + longest:
            raise InvalidInput(f"must be in the future and at most "
                               f"{self.settings.max_shelve_s} s ahead", "until")
        return until.astimezone(UTC)

    async def _act(self, tenant_id: int | None, alarm_id: int, action: Action, user: str,
                   comment: str | None, until: datetime | None = None) -> AlarmRecord:
        record = await self.get(tenant_id, alarm_id)
        future: asyncio.Future[AlarmRecord] = asyncio.get_running_loop().create_future()
        self._queue.append(_Act(alarm_id, action, user, comment, record, until, future))
        self._wake.set()
        return await future

    # -- reads -------------------------------------------------------------------------------
    async def get(self, tenant_id: int | None, alarm_id: int) -> AlarmRecord:
        """The alarm as held (the latest), NotFound if missing or of another tenant."""
        key = self._ids.get(alarm_id)
        record = self._held.get(key) if key is not None else None
        if record is None:
            record = await asyncio.to_thread(self.store.get, alarm_id)
        if tenant_id is not None and record.tenant_id != tenant_id:
            raise NotFound(f"alarm {alarm_id} not found")
        return record

    async def list_alarms(self, f: AlarmFilter) -> list[AlarmRecord]:
        return await asyncio.to_thread(self.store.list_alarms, f)

    async def events(self, tenant_id: int | None, alarm_id: int, *, before: int | None = None,
                     limit: int = 100) -> list[AlarmEvent]:
        await self.get(tenant_id, alarm_id)
        return await asyncio.to_thread(self.store.events, alarm_id, before=before, limit=limit)

    async def performance(self, tenant_id: int | None, since_ns: int,
                          until_ns: int) -> tuple[flood.Figures, dict[int, tuple[str, int]]]:
        """EEMUA figures of [since, until) and the (rule name, asset id) of the alarms named."""
        if until_ns <= since_ns:
            raise InvalidInput("must be after since", "until")
        if until_ns - since_ns > self.settings.performance_max_days * 86_400 * 10**9:
            raise InvalidInput(f"the period may span at most "
                               f"{self.settings.performance_max_days} days", "since")
        period = await asyncio.to_thread(self.store.period, tenant_id, since_ns, until_ns)
        s = self.settings
        limits = flood.Limits(s.standing_after_s * 10**9, s.chatter_count,
                              int(s.chatter_window_s * 1e9), s.flood_per_10min)
        return (flood.figures(period.events, since_ns, until_ns, period.active_at_start,
                              limits), period.names)

    # -- the writer --------------------------------------------------------------------------
    async def run(self) -> None:
        """Load the alarms that are not NORMAL, then apply what is queued until cancelled."""
        try:
            for record in await self._retrying(self.store.unsettled):
                self._hold(record)
                self._schedule(record)
            self._stored = await self._retrying(self.store.keys)
            while True:
                await self._wake.wait()
                self._wake.clear()
                while self._queue:
                    await self._round()
        except asyncio.CancelledError:
            await self._last_round()
            raise
        finally:
            for handle in self._timers.values():
                handle.cancel()
            self._timers.clear()
            for item in self._queue:
                if isinstance(item, _Act) and item.future is not None:
                    item.future.cancel()

    async def _last_round(self) -> None:
        """The node stops: store what the engine handed over before (its condition changes
        would otherwise be lost from the alarms' history), within ``STOP_LIMIT_S``."""
        changes = [i for i in self._queue if isinstance(i, ConditionChange)]
        if not changes:
            return
        self._queue = deque(changes)  # operators' actions in flight are cancelled as before
        try:
            async with asyncio.timeout(STOP_LIMIT_S):
                await self._round()
        except (StorageError, TimeoutError) as exc:
            log.warning("stopping with %d condition changes not stored: %s", len(changes), exc)

    def _hold(self, record: AlarmRecord) -> None:
        self._held[record.key] = record
        if record.id:
            self._ids[record.id] = record.key

    async def _round(self) -> None:
        items = list(self._queue)
        self._queue.clear()
        self._queued_changes = 0
        await self._look_up(items)
        pending: list[_Pending] = []
        for item in items:
            if isinstance(item, ConditionChange):
                self._on_change(item, pending)
            elif isinstance(item, _Act):
                self._on_act(item, pending)
            else:
                self._on_retire(item, pending)
        if pending:
            await self._commit(pending)

    async def _look_up(self, items: list[_Item]) -> None:
        """Hold every alarm the round's changes name: stored ones as stored, others fresh."""
        new = {(i.rule_id, i.asset_id): i for i in items
               if isinstance(i, ConditionChange) and (i.rule_id, i.asset_id) not in self._held}
        if not new:
            return
        stored = [key for key in new if key in self._stored]
        found = await self._retrying(self.store.find, stored) if stored else {}
        now = datetime.now(UTC)
        for key, change in new.items():
            self._hold(found.get(key) or fresh(change, now))

    def _on_change(self, change: ConditionChange, pending: list[_Pending]) -> None:
        record = self._held[(change.rule_id, change.asset_id)]
        step = on_condition(status_of(record), change.active, change.suppressed)
        if step is None:
            return
        at = utc_of_ns(change.ts_ns)
        record = replace(advance(record, step, at, datetime.now(UTC)),
                         rule_name=change.rule_name, priority=change.priority,
                         message=change.message, value=change.value, notify=change.notify)
        draft = EventDraft(step.event, step.before.state, step.after.state, step.after.active,
                           change.ts_ns, value=change.value)
        self._held[record.key] = record
        pending.append(_Pending(Write(record, draft), step.notify, change.received_ns))

    def _on_act(self, item: _Act, pending: list[_Pending]) -> None:
        key = self._ids.get(item.alarm_id)
        record = self._held.get(key) if key is not None else None
        if record is None and item.loaded is not None:
            self._hold(item.loaded)
            record = item.loaded
        if record is None:
            if item.future is not None and not item.future.done():
                item.future.set_exception(NotFound(f"alarm {item.alarm_id} not found"))
            return
        if item.action is Action.SHELVE_EXPIRED and (
                record.state is not AlarmState.SHELVED or record.shelved_until != item.until):
            return  # unshelved or shelved anew since this timer was set
        try:
            step = act(status_of(record), item.action)
        except Conflict as exc:
            if item.future is not None and not item.future.done():
                item.future.set_exception(exc)
            return
        self._record_action(record, step, item, pending)

    def _record_action(self, record: AlarmRecord, step: Step, item: _Act,
                       pending: list[_Pending]) -> None:
        now = datetime.now(UTC)
        record = advance(record, step, now, now)
        if item.action is Action.ACKNOWLEDGE:
            record = replace(record, acked_at=now, acked_by=item.user)
        elif item.action is Action.SHELVE:
            record = replace(record, shelved_until=item.until, shelved_by=item.user,
                             shelve_comment=item.comment)
        elif item.action is Action.REMOVE_FROM_SERVICE:
            record = replace(record, oos_by=item.user, oos_comment=item.comment)
        draft = EventDraft(step.event, step.before.state, step.after.state, step.after.active,
                           time.time_ns(), item.user, item.comment)
        self._held[record.key] = record
        pending.append(_Pending(Write(record, draft), step.notify, future=item.future))

    def _on_retire(self, item: _Retire, pending: list[_Pending]) -> None:
        for record in list(self._held.values()):
            if record.rule_id == item.rule_id and status_of(record) != Status():
                step = act(status_of(record), Action.RETIRE)
                self._record_action(record, step, _Act(record.id, Action.RETIRE, None,
                                                       "rule removed"), pending)

    async def _commit(self, pending: list[_Pending]) -> None:
        writes = [p.write for p in pending]
        ids = await self._retrying(self.store.apply, writes, datetime.now(UTC))
        stored_ns = time.time_ns()
        notices: list[tuple[_Pending, int, int]] = []
        for p, (alarm_id, event_id) in zip(pending, ids, strict=True):
            key = p.write.alarm.key
            self._stored.add(key)
            if self._held[key].id == 0:
                self._held[key] = replace(self._held[key], id=alarm_id)
                self._ids[alarm_id] = key
            stored = replace(p.write.alarm, id=alarm_id)
            self._reschedule(stored)
            if p.future is not None and not p.future.done():
                p.future.set_result(stored)
            if p.notify:
                notices.append((p, alarm_id, event_id))
        if notices:
            self._notify(await self._notices(notices, stored_ns))

    async def _notices(self, done: list[tuple[_Pending, int, int]],
                       stored_ns: int) -> list[AlarmNotice]:
        unknown = {p.write.alarm.asset_id for p, _, _ in done} - self._paths.keys()
        if unknown:  # an asset's path is looked up once (in a thread: it may block)
            self._paths.update(await asyncio.to_thread(self._look_up_paths, unknown))
        paths = self._paths
        out = []
        for p, alarm_id, event_id in done:
            a, e = p.write.alarm, p.write.event
            out.append(AlarmNotice(
                alarm_id, event_id, e.event, a.state, a.rule_id, a.rule_name, a.tenant_id,
                a.asset_id, paths[a.asset_id], a.priority, a.message, e.ts_ns, e.value, e.user,
                e.comment, p.received_ns, stored_ns, a.notify))
        return out

    def _look_up_paths(self, assets: set[int]) -> dict[int, str]:
        paths = {}
        for asset_id in assets:
            try:
                paths[asset_id] = self._asset_path(asset_id)
            except MillnetError as exc:  # a removed asset: its alarms still notify
                log.debug("no path for asset %d: %s", asset_id, exc)
                paths[asset_id] = f"asset {asset_id}"
        return paths

    def _notify(self, notices: list[AlarmNotice]) -> None:
        try:
            self._on_notices(notices)
        except Exception:  # a notifier's bug must not stop the alarms; it is logged in full
            log.exception("on_notices failed for %d alarm notices", len(notices))

    # -- shelving timers ---------------------------------------------------------------------
    def _reschedule(self, record: AlarmRecord) -> None:
        old = self._timers.pop(record.id, None)
        if old is not None:
            old.cancel()
        self._schedule(record)

    def _schedule(self, record: AlarmRecord) -> None:
        if record.state is not AlarmState.SHELVED or record.shelved_until is None:
            return
        delay = (record.shelved_until - datetime.now(UTC)).total_seconds()
        self._timers[record.id] = asyncio.get_running_loop().call_later(
            max(delay, 0.0), self._expire, record.id, record.shelved_until)

    def _expire(self, alarm_id: int, until: datetime) -> None:
        self._timers.pop(alarm_id, None)
        self._queue.append(_Act(alarm_id, Action.SHELVE_EXPIRED, None, "shelving expired",
                                until=until))
        self._wake.set()

    # -- retries -----------------------------------------------------------------------------
    async def _retrying(self, work: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """``work`` in a thread until it does not raise StorageError (doubling pauses)."""
        pause = self.settings.retry_first_s
        while True:
            try:
                return await asyncio.to_thread(work, *args, **kwargs)
            except StorageError as exc:
                self.store_failures += 1
                log.warning("alarm store failed (%s); retrying in %.2f s", exc, pause)
                await asyncio.sleep(pause)
                pause = min(pause * 2, self.settings.retry_max_s)

