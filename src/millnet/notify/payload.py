"""What a notification says: the JSON document every kind sends, and template fields.

The JSON is the notice's fields with times twice (ISO 8601 UTC and epoch milliseconds), the
priority as its label (and its level, 1 most urgent), and ``delivery_id``, which stays the same
across retries so that receivers can drop duplicates (delivery is at least once).
"""

from __future__ import annotations

import json
import math
import string
from datetime import UTC, datetime
from typing import Any

from millnet.model.alarms import AlarmNotice, AlarmState, Priority

SCHEMA_VERSION = 1


def iso_time(ts_ns: int) -> str:
    """``2026-12-03T08:15:02.123456Z`` (microseconds)."""
    moment = datetime.fromtimestamp(ts_ns // 1_000_000_000, UTC).replace(
        microsecond=(ts_ns % 1_000_000_000) // 1000)
    return moment.isoformat().replace("+00:00", "Z")


def _time(out: dict[str, Any], name: str, ts_ns: int) -> None:
    out[name] = iso_time(ts_ns) if ts_ns else None
    out[f"{name}_ms"] = ts_ns // 1_000_000 if ts_ns else None


def document(notice: AlarmNotice, delivery_id: str) -> dict[str, Any]:
    """The notice as a JSON-able dict (see docs/notifications.md, "Payload")."""
    out: dict[str, Any] = {
        "version": SCHEMA_VERSION, "delivery_id": delivery_id, "event": notice.event,
        "event_id": notice.event_id, "alarm_id": notice.alarm_id, "state": notice.state.value,
        "priority": notice.priority.label, "priority_level": int(notice.priority),
        "rule_id": notice.rule_id, "rule_name": notice.rule_name, "tenant_id": notice.tenant_id,
        "asset_id": notice.asset_id, "asset_path": notice.asset_path, "message": notice.message,
        "value": notice.value, "user": notice.user, "comment": notice.comment,
    }
    _time(out, "ts", notice.ts_ns)
    _time(out, "received", notice.received_ns)
    _time(out, "stored", notice.stored_ns)
    return out


def body(notice: AlarmNotice, delivery_id: str) -> bytes:
    """The JSON document as UTF-8 bytes (compact; NaN and infinities as null)."""
    doc = document(notice, delivery_id)
    value = doc["value"]
    if value is not None and not math.isfinite(value):
        doc["value"] = None
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def template_fields(notice: AlarmNotice) -> dict[str, str]:
    """The names subject and topic templates may use (settings.TEMPLATE_FIELDS)."""
    return {
        "tenant": str(notice.tenant_id), "priority": notice.priority.label,
        "event": notice.event, "state": notice.state.value, "rule": notice.rule_name,
        "rule_id": str(notice.rule_id), "asset": notice.asset_path,
        "asset_id": str(notice.asset_id), "alarm_id": str(notice.alarm_id),
        "message": notice.message,
    }


def render(template: str, fields: dict[str, str]) -> str:
    """``template`` with its ``{name}`` fields replaced (validated by the settings)."""
    out = []
    for literal, name, _, _ in string.Formatter().parse(template):
        out.append(literal)
        if name is not None:
            out.append(fields.get(name, ""))
    return "".join(out)


def to_json(notice: AlarmNotice) -> str:
    """The notice as the outbox stores it (every field, enums by value)."""
    data = {
        "alarm_id": notice.alarm_id, "event_id": notice.event_id, "event": notice.event,
        "state": notice.state.value, "rule_id": notice.rule_id, "rule_name": notice.rule_name,
        "tenant_id": notice.tenant_id, "asset_id": notice.asset_id,
        "asset_path": notice.asset_path, "priority": int(notice.priority),
        "message": notice.message, "ts_ns": notice.ts_ns, "value": notice.value,
        "user": notice.user, "comment": notice.comment, "received_ns": notice.received_ns,
        "stored_ns": notice.stored_ns, "notify": list(notice.notify),
    }
    return json.dumps(data, separators=(",", ":"))


def from_json(text: str) -> AlarmNotice:
    """The inverse of :func:`to_json`."""
    data = json.loads(text)
    data["state"] = AlarmState(data["state"])
    data["priority"] = Priority(data["priority"])
    data["notify"] = tuple(data["notify"])
    return AlarmNotice(**data)
