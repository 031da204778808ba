"""The collector's pauses, kept out of the latency of a running node.

CPython's cyclic collector examines every tracked object in a full (generation 2) collection:
with a node's heap of a few hundred thousand long-lived objects (modules, SQLAlchemy metadata,
the registry's caches, the rule engine's tables) one took 90-210 ms on this project's machine,
an event-loop stall that was the whole p99 of ``millnet bench rules``. Once the node has started,
:func:`freeze` collects once and moves every object alive then into the permanent generation,
which later collections skip (``gc.freeze``, the technique Instagram described for their Django
fleet); objects made afterwards are collected as usual. Frozen objects that later become cyclic
garbage are not reclaimed, which for start-up state (alive for the process's life) costs
nothing.
"""

from __future__ import annotations

import gc
import logging
import time

log = logging.getLogger("millnet.heap")


def freeze() -> None:
    """Collect, then exempt every object alive now from later collections."""
    started = time.perf_counter()
    gc.collect()
    gc.freeze()
    frozen = gc.get_freeze_count()
    log.debug("froze %d objects in %.0f ms", frozen, (time.perf_counter() - started) * 1e3)
