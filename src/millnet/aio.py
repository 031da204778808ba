"""asyncio on Python 3.11 without lost cancellations.

CPython 3.11's ``asyncio.wait_for`` returns the awaited result when that result and a
cancellation of the waiting task arrive together: the ``CancelledError`` is dropped and the task
runs on (CPython gh-86296, fixed in 3.12). A loop that is cancelled once, as a ``TaskGroup``
does when its owner stops, then never stops. millnet's own code waits with ``asyncio.timeout``
(which does not have the flaw, tests/unit/test_import_rules.py keeps ``wait_for`` out);
``keep_cancel`` guards an await into a library that still uses ``wait_for`` (aiomqtt's publish
and subscribe), and ``until_cancelled`` runs a long-lived job (a source's connection loop over
asyncua or pymodbus, which wait that way everywhere) so that stopping it cannot be lost.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


async def keep_cancel(awaitable: Awaitable[T]) -> T:
    """Await ``awaitable``; if this task was cancelled meanwhile and the cancellation was
    swallowed on the way, raise it now."""
    task = asyncio.current_task()
    before = task.cancelling() if task is not None else 0
    result = await awaitable
    if task is not None and task.cancelling() > before:
        raise asyncio.CancelledError
    return result


#: How often a job that is being stopped is cancelled again while it runs on.
RECANCEL_S = 0.5


async def until_cancelled(job: Coroutine[Any, Any, T]) -> T:
    """Run ``job`` in a task of its own and return what it returns; when this task is
    cancelled, cancel the job, and again every ``RECANCEL_S`` while a swallowed cancellation
    keeps it running, then raise the cancellation."""
    inner = asyncio.ensure_future(job)
    try:
        return await asyncio.shield(inner)
    except asyncio.CancelledError:
        while not inner.done():
            inner.cancel()
            await asyncio.wait((inner,), timeout=RECANCEL_S)
        if not inner.cancelled() and inner.exception() is not None:
            raise asyncio.CancelledError from inner.exception()
        raise
