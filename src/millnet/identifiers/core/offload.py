"""Blocking identifier work off the event loop, within a bound.

The loop that answers resolutions must never wait on the database's write lock (SQLite's busy
timeout is 10 s), a PBKDF2 check, a LIST_HANDLE of a large prefix or a template fetched from
the parent node. Those run in :class:`Offload`'s own small pool of threads: its own, so that
writes waiting on a lock cannot take the threads the platform's ingest or the HTTP API's reads
need. At most ``workers`` jobs run and ``backlog`` more wait; beyond, :class:`Busy` is raised
at once (SERVER_BUSY on the native protocol, 429 over HTTP) instead of queueing without limit.

``submit`` starts the job before it returns, so jobs start in the order they were submitted;
the caller awaits the future it returns. Cancelling that future cancels a job that has not
started; a started one finishes in its thread (a transaction is never cut in half).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ClassVar, ParamSpec, TypeVar

from millnet.errors import MillnetError
from millnet.protocols.handle import ResponseCode

P = ParamSpec("P")
T = TypeVar("T")

#: jobs run at once (SQLite has one writer: more threads would only wait on its lock)
WORKERS = 4
#: jobs waiting for a thread, beyond which new ones are refused
BACKLOG = 64


class Busy(MillnetError):
    """Too many administrative jobs already run or wait: try again later."""

    code: ClassVar[ResponseCode] = ResponseCode.SERVER_BUSY


class Offload:
    """A bounded pool of worker threads for the identifier service's blocking work; ``async
    with`` (or :meth:`aclose`) shuts it down, waiting for started jobs. Threads are made on
    first use."""

    def __init__(self, workers: int = WORKERS, backlog: int = BACKLOG, *,
                 name: str = "millnet-ids") -> None:
        self.workers, self.backlog, self._name = workers, backlog, name
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        #: jobs submitted and not yet finished (running or waiting)
        self.pending = 0
        #: jobs refused because the bound was reached
        self.refused = 0

    def submit(self, fn: Callable[P, T], /, *args: P.args,
               **kwargs: P.kwargs) -> asyncio.Future[T]:
        """Start ``fn(*args, **kwargs)`` in a worker thread; :class:`Busy` when ``workers``
        jobs run and ``backlog`` wait. Call it from the event loop."""
        with self._lock:
            if self.pending >= self.workers + self.backlog:
                self.refused += 1
                raise Busy(f"{self.pending} administrative requests in progress: "
                           "try again later")
            self.pending += 1
        try:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix=self._name)
            job = self._executor.submit(fn, *args, **kwargs)
        except BaseException:
            self._release(None)
            raise
        job.add_done_callback(self._release)
        return asyncio.wrap_future(job)

    async def run(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """``fn(*args, **kwargs)`` in a worker thread (see :meth:`submit`)."""
        return await self.submit(fn, *args, **kwargs)

    def _release(self, _job: object) -> None:
        with self._lock:
            self.pending -= 1

    async def aclose(self) -> None:
        """Refuse new jobs, drop those not started, wait for the running ones."""
        executor, self._executor = self._executor, None
        self.workers = self.backlog = 0  # submit() refuses from now on
        if executor is not None:
            await asyncio.to_thread(executor.shutdown, wait=True, cancel_futures=True)

    async def __aenter__(self) -> Offload:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


__all__ = ["BACKLOG", "WORKERS", "Busy", "Offload"]
