"""The notifier against real HTTP receivers on ephemeral ports: signed delivery, retries with
backoff while a target is down, permanent refusals, the outbox across a restart, one slow
target beside a fast one, and a full outbox."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import select

from millnet.model.alarms import AlarmNotice, AlarmState, Priority
from millnet.notify.outbox import OutboxStore
from millnet.notify.schema import notify_outbox
from millnet.notify.service import Notifier
from millnet.notify.settings import NotifySection
from millnet.notify.webhook import verify
from tests.support.receiver import Receiver

SECRET = "whsec-test"
FAST_RETRY = {"backoff_base_s": 0.05, "backoff_cap_s": 0.2, "max_attempts": 100}


def notice(n: int = 1, notify: tuple[str, ...] = ()) -> AlarmNotice:
    return AlarmNotice(
        alarm_id=10 + n, event_id=100 + n, event="activated", state=AlarmState.UNACK,
        rule_id=3, rule_name="high-temp", tenant_id=1, asset_id=7,
        asset_path="plant-1/press/line-3/press-7", priority=Priority.HIGH,
        message="temperature above 90 C", ts_ns=1_767_225_600_123_456_789, value=91.5,
        received_ns=time.time_ns(), notify=notify)


def hook(name: str, receiver: Receiver, **extra: Any) -> dict[str, Any]:
    return {"name": name, "kind": "webhook", "url": receiver.url(), "secret": SECRET,
            "default": True, **extra}


def section(*targets: dict[str, Any], **extra: Any) -> NotifySection:
    return NotifySection.model_validate({"targets": list(targets), "retry": FAST_RETRY,
                                         **extra})


class Outcomes:
    """What the notifier reports, as events to wait for."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, float]] = []
        self._changed = asyncio.Event()

    def __call__(self, target: str, _notice: AlarmNotice, outcome: str) -> None:
        self.seen.append((target, outcome, time.monotonic()))
        self._changed.set()

    def count(self, target: str, outcome: str) -> int:
        return sum(1 for t, o, _ in self.seen if (t, o) == (target, outcome))

    async def until(self, target: str, outcome: str, n: int = 1) -> None:
        async with asyncio.timeout(10):
            while self.count(target, outcome) < n:
                self._changed.clear()
                await self._changed.wait()


@asynccontextmanager
async def running(store: OutboxStore, settings: NotifySection,
                  outcomes: Outcomes) -> AsyncIterator[Notifier]:
    notifier = Notifier(store, settings, on_outcome=outcomes)
    task = asyncio.create_task(notifier.run())
    try:
        yield notifier
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def rows(store: OutboxStore) -> list[Any]:
    with store.engine.connect() as conn:
        return list(conn.execute(select(notify_outbox).order_by(notify_outbox.c.id)))


def run(scenario: Callable[[OutboxStore], Any], tmp_path: Path) -> None:
    with OutboxStore.open(f"sqlite:///{tmp_path / 'outbox.sqlite'}") as store:
        asyncio.run(scenario(store))


def test_a_notice_is_posted_signed_and_recorded_delivered(tmp_path: Path) -> None:
    async def scenario(store: OutboxStore) -> None:
        receiver = Receiver()
        await receiver.start()
        outcomes = Outcomes()
        async with running(store, section(hook("ops", receiver)), outcomes) as notifier:
            sent = notice()
            notifier.submit([sent])
            request = await asyncio.wait_for(receiver.arrived.get(), 10)
            await outcomes.until("ops", "delivered")
            status = notifier.status()[0]
        await receiver.close()
        assert verify(SECRET.encode(), request.body, request.headers["x-millnet-signature"])
        assert request.headers["x-millnet-event"] == "activated"
        doc = json.loads(request.body)
        assert doc["delivery_id"] == request.headers["x-millnet-delivery"]
        assert (doc["alarm_id"], doc["priority"], doc["state"]) == (11, "high", "unack_active")
        assert doc["ts"] == "2026-01-01T00:00:00.123456Z" and doc["ts_ms"] == 1767225600123
        assert doc["value"] == 91.5 and doc["asset_path"] == sent.asset_path
        assert (status.delivered, status.pending, status.failed) == (1, 0, 0)
        assert status.destination == f"http://127.0.0.1:{receiver.port}"  # no path, no token
        [row] = rows(store)
        assert row.status == "delivered" and row.attempts == 1
        assert row.delivery_id == doc["delivery_id"] and row.delivered_at is not None

    run(scenario, tmp_path)


def test_a_target_that_is_down_is_retried_with_backoff_and_gets_it_when_back(
        tmp_path: Path) -> None:
    async def scenario(store: OutboxStore) -> None:
        receiver = Receiver()  # not listening yet: connections are refused
        outcomes = Outcomes()
        async with running(store, section(hook("ops", receiver)), outcomes) as notifier:
            notifier.submit([notice()])
            await outcomes.until("ops", "retry", 3)
            down = notifier.status()[0]
            await receiver.start()
            await outcomes.until("ops", "delivered")
            up = notifier.status()[0]
        await receiver.close()
        assert down.consecutive_failures >= 3 and down.pending == 1 and down.delivered == 0
        assert down.last_error is not None and "Connect" in down.last_error
        times = [at for t, o, at in outcomes.seen if o == "retry"]
        # Equal jitter: at least half the base after the first failure, half of twice it after
        # the second (an attempt itself takes a little time too).
        assert times[1] - times[0] >= 0.025 and times[2] - times[1] >= 0.05
        assert (up.delivered, up.pending, up.consecutive_failures) == (1, 0, 0)
        assert receiver.count == 1
        [row] = rows(store)
        assert row.status == "delivered" and row.attempts >= 4

    run(scenario, tmp_path)


def test_a_permanent_refusal_is_not_retried(tmp_path: Path) -> None:
    async def scenario(store: OutboxStore) -> None:
        receiver = Receiver(status=400)
        await receiver.start()
        outcomes = Outcomes()
        async with running(store, section(hook("ops", receiver)), outcomes) as notifier:
            notifier.submit([notice()])
            await outcomes.until("ops", "failed")
            status = notifier.status()[0]
        await receiver.close()
        assert (status.failed, status.pending, status.retried) == (1, 0, 0)
        assert status.last_error == "HTTP 400"
        assert receiver.count == 1 and outcomes.count("ops", "retry") == 0
        [row] = rows(store)
        assert row.status == "failed" and row.attempts == 1 and "HTTP 400" in row.last_error

    run(scenario, tmp_path)


def test_undelivered_notifications_are_sent_after_a_restart(tmp_path: Path) -> None:
    async def scenario(store: OutboxStore) -> None:
        receiver = Receiver()
        outcomes = Outcomes()
        settings = section(hook("ops", receiver))
        async with running(store, settings, outcomes) as notifier:
            notifier.submit([notice(1), notice(2)])
            await outcomes.until("ops", "retry", 2)
        before = rows(store)
        assert [r.status for r in before] == ["pending", "pending"]
        assert all(r.attempts >= 1 and r.last_error for r in before)

        await receiver.start()
        with OutboxStore.open(str(store.engine.url)) as reopened:
            async with running(reopened, settings, outcomes):
                await outcomes.until("ops", "delivered", 2)
            after = rows(reopened)
        await receiver.close()
        got = set()
        while not receiver.arrived.empty():
            got.add(receiver.arrived.get_nowait().headers["x-millnet-delivery"])
        assert got == {r.delivery_id for r in before}  # the same ids: receivers can dedupe
        assert [r.status for r in after] == ["delivered", "delivered"]

    run(scenario, tmp_path)


def test_a_slow_target_does_not_delay_another(tmp_path: Path) -> None:
    async def scenario(store: OutboxStore) -> None:
        release = asyncio.Event()
        slow, fast = Receiver(hold=release), Receiver()
        await slow.start()
        await fast.start()
        outcomes = Outcomes()
        settings = section(hook("slow", slow, concurrency=1, timeout_s=30), hook("fast", fast))
        async with running(store, settings, outcomes) as notifier:
            started = time.monotonic()
            notifier.submit([notice(n) for n in range(5)])
            await outcomes.until("fast", "delivered", 5)
            fast_done = time.monotonic() - started
            held = slow.count
            release.set()
            await outcomes.until("slow", "delivered", 5)
        await slow.close()
        await fast.close()
        assert held == 1  # the slow target's first request was still unanswered
        assert fast_done < 1.0, fast_done

    run(scenario, tmp_path)


def test_a_full_outbox_drops_the_oldest_and_counts_it(tmp_path: Path) -> None:
    async def scenario(store: OutboxStore) -> None:
        receiver = Receiver()  # down
        outcomes = Outcomes()
        settings = section(hook("ops", receiver), max_pending_per_target=2)
        async with running(store, settings, outcomes) as notifier:
            notifier.submit([notice(n) for n in range(5)])
            status = notifier.status()[0]
            await outcomes.until("ops", "retry", 2)
        assert (status.dropped, status.pending) == (3, 2)
        by_event = {json.loads(r.notice)["event_id"]: r for r in rows(store)}
        assert sorted(k for k, r in by_event.items() if r.status == "pending") == [103, 104]
        assert all("outbox was full" in by_event[k].last_error for k in (100, 101, 102))

    run(scenario, tmp_path)


def test_rules_route_by_name_and_unknown_names_are_reported(tmp_path: Path) -> None:
    async def scenario(store: OutboxStore) -> None:
        a, b = Receiver(), Receiver()
        await a.start()
        await b.start()
        outcomes = Outcomes()
        settings = section(hook("a", a, default=False), hook("b", b))
        async with running(store, settings, outcomes) as notifier:
            notifier.submit([notice(1, notify=("a", "nope"))])
            await outcomes.until("a", "delivered")
            notifier.submit([notice(2)])  # no route: the default target b
            await outcomes.until("b", "delivered")
            unknown = notifier.unknown_targets
        await a.close()
        await b.close()
        assert (a.count, b.count) == (1, 1)
        assert unknown == {"nope": 1}

    run(scenario, tmp_path)
