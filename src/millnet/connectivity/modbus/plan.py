"""The read planner (pure): which requests poll a set of mapped addresses.

Input: the items of one (unit id, table, poll group), each an ``address`` and a ``width`` (in
registers, or 1 for a coil or discrete input). Output: as few read requests as possible such
that

* every item lies wholly inside exactly one request;
* a request reads at most ``max_count`` units (the protocol allows 125 registers and 2,000
  coils or discrete inputs per read; a device may allow fewer) and stays within 0..65535;
* a request starts at its first item, ends with its last, and never bridges a gap of more than
  ``max_gap`` unmapped units between two items. Bridging a small gap costs a few bytes on the
  wire and saves a round trip, which is what dominates a poll; but devices with holes in their
  map answer a read that touches a hole with *illegal data address*, so ``max_gap = 0`` keeps
  requests to mapped addresses only.

The greedy sweep (sorted by address, extend the current request while both rules hold) is
optimal: no plan covers the items of the greedy's first request plus the next one in a single
request, by induction it needs at least as many requests. Overlapping items (validated away in
the register map) are still covered: a request extends to the farthest end it has seen.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

MAX_REGISTERS = 125  # read holding/input registers (functions 3, 4)
MAX_BITS = 2000  # read coils/discrete inputs (functions 1, 2)
ADDRESS_SPACE = 65536


@dataclass(frozen=True, slots=True)
class PlanItem:
    key: int  # the caller's index of the register
    address: int
    width: int


@dataclass(frozen=True, slots=True)
class ReadRequest:
    start: int
    count: int
    items: tuple[PlanItem, ...]  # sorted by address


def plan_reads(items: Sequence[PlanItem], max_count: int, max_gap: int) -> list[ReadRequest]:
    """As few requests as the rules above allow, in address order."""
    if max_count < 1 or max_gap < 0:
        raise ValueError("max_count must be >= 1 and max_gap >= 0")
    ordered = sorted(items, key=lambda it: (it.address, it.width))
    plan: list[ReadRequest] = []
    current: list[PlanItem] = []
    start = end = 0
    for item in ordered:
        if item.width > max_count or item.address + item.width > ADDRESS_SPACE:
            raise ValueError(f"item at {item.address} (width {item.width}) cannot be read "
                             f"in one request of at most {max_count}")
        item_end = item.address + item.width
        if current and (item.address - end <= max_gap
                        and max(end, item_end) - start <= max_count):
            current.append(item)
            end = max(end, item_end)
            continue
        if current:
            plan.append(ReadRequest(start, end - start, tuple(current)))
        current, start, end = [item], item.address, item_end
    if current:
        plan.append(ReadRequest(start, end - start, tuple(current)))
    return plan
