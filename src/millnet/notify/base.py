"""What every kind of target implements, and how a delivery fails."""

from __future__ import annotations

from typing import Protocol

from millnet.errors import MillnetError
from millnet.model.alarms import AlarmNotice


class DeliveryFailed(MillnetError):
    """An attempt failed. ``permanent``: trying again cannot help (a 4xx answer, a refused
    recipient), so the notification is given up at once; otherwise it is retried."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class Sender(Protocol):
    """Delivers notices to one target. ``send`` returns when the target took the notice and
    raises :class:`DeliveryFailed` otherwise; it may be called concurrently (up to the
    target's ``concurrency``). ``close`` releases connections."""

    async def send(self, delivery_id: str, notice: AlarmNotice) -> None: ...

    async def close(self) -> None: ...

    def describe(self) -> str:
        """Where it sends, without credentials (for status and logs)."""
        ...
