"""Which targets get a notice: pure, no I/O.

A notice goes to the targets its rule names (``notice.notify``, in that order, once each); when
the rule names none, or only names that are not configured, to the ``default`` targets (so a
typo in a rule does not silence its alarms; the unknown names are reported). Every chosen
target then applies its own filters: the event must be one of its ``events`` and the priority
at least as urgent as its ``min_priority``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from millnet.model.alarms import AlarmNotice, Priority


class Routable(Protocol):
    """What routing reads of a target (the settings' target tables have it)."""

    @property
    def name(self) -> str: ...
    @property
    def events(self) -> frozenset[str]: ...
    @property
    def min_priority(self) -> Priority: ...
    @property
    def default(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class Route:
    targets: tuple[str, ...]  # the names of the targets that get the notice
    unknown: tuple[str, ...] = ()  # names in notice.notify that no target has


def accepts(target: Routable, notice: AlarmNotice) -> bool:
    """The target's own filters: event and priority (a lower value is more urgent)."""
    return notice.event in target.events and notice.priority <= target.min_priority


def route(notice: AlarmNotice, targets: Sequence[Routable]) -> Route:
    by_name = {t.name: t for t in targets}
    named = tuple(dict.fromkeys(notice.notify))
    unknown = tuple(n for n in named if n not in by_name)
    chosen = [by_name[n] for n in named if n in by_name]
    if not chosen:
        chosen = [t for t in targets if t.default]
    return Route(tuple(t.name for t in chosen if accepts(t, notice)), unknown)
