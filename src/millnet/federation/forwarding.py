"""What a secondary passes up to its parent, and the summaries it makes of what it does not.

The parent sets the policy with a ``policy`` message (``{"forward_min_severity": "high",
"forward_inventory": false}``), kept in ``fed_settings``. :func:`forward_decision` then says,
per child message, whether it goes up as is: summaries, advisory answers and order statuses
always; security events and incidents at or above the policy's severity; inventory only when
the policy asks for it (a national node needs matches, not every enterprise's device list).
Every security event, forwarded or not, is also counted by a :class:`SummaryAggregator`, whose
closed buckets become the ``summary`` messages the parent always receives.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from sqlalchemy import Connection, insert, select, update

from millnet.errors import InvalidInput
from millnet.federation.report_schema import fed_settings
from millnet.model.security import Severity

POLICY_KEY: Final = "policy"
ALWAYS: Final = frozenset({"summary", "advisory.match", "order.status"})
BY_SEVERITY: Final = frozenset({"security.event", "incident"})
INVENTORY: Final = frozenset({"inventory.snapshot", "inventory.change"})


@dataclass(frozen=True, slots=True)
class Policy:
    forward_min_severity: Severity = Severity.HIGH
    forward_inventory: bool = False

    def to_body(self) -> dict[str, Any]:
        return {"forward_min_severity": self.forward_min_severity.label,
                "forward_inventory": self.forward_inventory}


def parse_policy(body: Any) -> Policy:
    if not isinstance(body, dict):
        raise InvalidInput("a policy is an object", "body")
    raw = body.get("forward_min_severity", "high")
    try:
        minimum = Severity.parse(raw) if isinstance(raw, str) else Severity(raw)
    except ValueError:
        raise InvalidInput("must be a severity name", "forward_min_severity") from None
    inventory = body.get("forward_inventory", False)
    if not isinstance(inventory, bool):
        raise InvalidInput("must be true or false", "forward_inventory")
    return Policy(minimum, inventory)


def forward_decision(policy: Policy, kind: str, body: Mapping[str, Any]) -> bool:
    """Whether a child's message of ``kind`` goes up to the parent as is. An event or incident
    whose severity cannot be read is not forwarded (its child's handler refuses it anyway)."""
    if kind in ALWAYS:
        return True
    if kind in INVENTORY:
        return policy.forward_inventory
    if kind in BY_SEVERITY:
        raw = body.get("severity")
        try:
            if isinstance(raw, str):
                level = Severity.parse(raw)
            elif isinstance(raw, int) and not isinstance(raw, bool):
                level = Severity(raw)
            else:
                return False
        except ValueError:
            return False
        return level >= policy.forward_min_severity
    return False


def apply_policy(conn: Connection, sender: str, origin: str, body: Any,
                 created_at: datetime) -> None:
    """The parent's forwarding policy (the latest applied wins)."""
    value = json.dumps(parse_policy(body).to_body())
    done = conn.execute(update(fed_settings).where(fed_settings.c.name == POLICY_KEY).values(
        value=value, updated_at=created_at))
    if done.rowcount == 0:
        conn.execute(insert(fed_settings).values(name=POLICY_KEY, value=value,
                                                 updated_at=created_at))


def current_policy(conn: Connection) -> Policy:
    """The parent's policy, or the default until one arrives."""
    row = conn.execute(select(fed_settings.c.value).where(
        fed_settings.c.name == POLICY_KEY)).first()
    return parse_policy(json.loads(row.value)) if row else Policy()


class SummaryAggregator:
    """Counts events per origin, kind and severity in fixed buckets; :meth:`drain` hands out
    the buckets that have closed as ``summary`` bodies. Not thread-safe: one owner feeds it."""

    def __init__(self, bucket_seconds: int = 300) -> None:
        if not 60 <= bucket_seconds <= 86_400:
            raise InvalidInput("must be 60-86400 seconds", "bucket_seconds")
        self.bucket_seconds = bucket_seconds
        self._counts: dict[tuple[str, datetime], dict[tuple[str, int], int]] = defaultdict(
            lambda: defaultdict(int))
        self._assets: dict[str, int] = {}

    def bucket_of(self, at: datetime) -> datetime:
        epoch = int(at.timestamp())
        return datetime.fromtimestamp(epoch - epoch % self.bucket_seconds, UTC)

    def add(self, origin: str, kind: str, severity: Severity, at: datetime,
            count: int = 1) -> None:
        self._counts[(origin, self.bucket_of(at))][(kind, int(severity))] += count

    def set_assets(self, origin: str, assets: int) -> None:
        """The origin's current asset count, sent with each of its summaries."""
        self._assets[origin] = assets

    def drain(self, now: datetime) -> list[tuple[str, dict[str, Any]]]:
        """(origin, summary body) of every bucket that ended at or before ``now``."""
        out = []
        width = timedelta(seconds=self.bucket_seconds)
        for origin, start in sorted(k for k in self._counts if k[1] + width <= now):
            counts = self._counts.pop((origin, start))
            body: dict[str, Any] = {
                "bucket_start": start.isoformat(), "bucket_seconds": self.bucket_seconds,
                "counts": [{"kind": k, "severity": Severity(s).label, "count": n}
                           for (k, s), n in sorted(counts.items())]}
            if origin in self._assets:
                body["assets"] = self._assets[origin]
            out.append((origin, body))
        return out
