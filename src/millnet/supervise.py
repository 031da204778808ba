"""Restart a node's background tasks when they fail, so one service cannot stop the others.

A source or a maintenance job that raises is logged with its traceback, counted on
``/metrics`` (``millnet_task_restarts_total{task=...}``) and started again after a backoff that
doubles up to a minute (and starts over once the task has run for a minute). Cancellation
passes through: stopping the node stops its tasks.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from prometheus_client import Counter

from millnet.aio import until_cancelled

log = logging.getLogger("millnet.supervise")

FIRST_BACKOFF_S = 1.0
MAX_BACKOFF_S = 60.0


async def supervise(name: str, run: Callable[[], Awaitable[None]], restarts: Counter, *,
                    first_backoff: float = FIRST_BACKOFF_S) -> None:
    """Run ``run()`` until it returns; restart it with backoff whenever it raises."""
    backoff = first_backoff
    while True:
        started = time.monotonic()
        try:
            # In a task of its own, cancelled until it stops: a library's swallowed
            # cancellation (millnet.aio) cannot keep a stopping node running.
            await until_cancelled(_call(run))
            return
        except Exception:
            if time.monotonic() - started >= MAX_BACKOFF_S:
                backoff = first_backoff
            restarts.labels(name).inc()
            log.exception("%s failed; restarting in %.0f s", name, backoff)
        await asyncio.sleep(backoff)
        backoff = min(backoff * 2, MAX_BACKOFF_S)


async def _call(run: Callable[[], Awaitable[None]]) -> None:
    await run()
