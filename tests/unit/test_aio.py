"""millnet.aio.keep_cancel: a cancellation that a library's ``asyncio.wait_for`` swallowed on
Python 3.11 (its result and the cancellation arriving together) is raised anyway."""

from __future__ import annotations

import asyncio

import pytest

from millnet.aio import keep_cancel, until_cancelled


async def _swallowing(result: int) -> int:
    """What 3.11's wait_for does when the awaited result raced the cancellation."""
    try:
        await asyncio.sleep(10)
    except asyncio.CancelledError:
        return result
    return -1


def test_a_swallowed_cancellation_is_raised() -> None:
    async def main() -> None:
        task = asyncio.create_task(keep_cancel(_swallowing(7)))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())


def test_the_race_of_wait_for_stops_the_loop() -> None:
    """The race itself: the awaited future completes and the task is cancelled in the same
    turn. With keep_cancel the loop around it stops (without it, on 3.11, it ran on)."""
    async def main() -> None:
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[int]] = []
        rounds = 0

        async def publisher() -> None:
            nonlocal rounds
            while True:
                fut: asyncio.Future[int] = loop.create_future()
                futures.append(fut)
                await keep_cancel(asyncio.wait_for(fut, 10))  # as a library waits
                rounds += 1

        task = asyncio.create_task(publisher())
        await asyncio.sleep(0)
        futures[-1].set_result(1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 5)
        assert rounds <= 1

    asyncio.run(main())


def test_results_and_errors_pass_through() -> None:
    async def fails() -> None:
        raise ValueError("bad")

    async def main() -> None:
        assert await keep_cancel(asyncio.sleep(0, result=3)) == 3
        with pytest.raises(ValueError, match="bad"):
            await keep_cancel(fails())

    asyncio.run(main())


def test_until_cancelled_stops_a_job_that_swallows_the_first_cancellation() -> None:
    swallowed = 0

    async def stubborn() -> None:
        nonlocal swallowed
        while True:  # the first cancellation is swallowed, as the race of wait_for does
            if swallowed == 0:
                await _swallowing(0)
                swallowed += 1
            await asyncio.sleep(0.01)

    async def main() -> None:
        task = asyncio.create_task(until_cancelled(stubborn()))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            async with asyncio.timeout(5):
                await task
        assert swallowed == 1

    asyncio.run(main())


def test_until_cancelled_returns_and_raises_what_the_job_does() -> None:
    async def fails() -> None:
        raise ValueError("bad")

    async def main() -> None:
        assert await until_cancelled(asyncio.sleep(0, result=4)) == 4
        with pytest.raises(ValueError, match="bad"):
            await until_cancelled(fails())

    asyncio.run(main())
