"""Capture: an EPCIS 2.0 document (or a single event) in, validated rows out.

Validation is GS1's EPCIS 2.0 JSON schema (shipped beside this module, see
``epcis-json-schema.NOTICE``), compiled once with ``jsonschema_rs`` (the pure-Python
``jsonschema`` spends ~6 ms on an event against this schema: a ceiling of 150 events/s). Every
error names the JSON path of the value it is about (``epcisBody.eventList[3].bizStep``). A
document is all or nothing: one bad event rejects it, and nothing of it is stored.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from importlib import resources
from typing import Any, Final

import jsonschema_rs

from millnet.errors import InvalidInput
from millnet.trace import ids
from millnet.trace.ehash import STANDARD_CONTEXT, event_hash
from millnet.trace.store import EventRow

SCHEMA_FILE: Final = "epcis-json-schema.json"
MAX_ERRORS: Final = 100
EVENT_TYPES: Final = ("ObjectEvent", "AggregationEvent", "TransformationEvent",
                      "AssociationEvent", "TransactionEvent")

# Roles of an identifier in an event: the edges of the trace graph.
EPC, PARENT, CHILD, INPUT, OUTPUT = 0, 1, 2, 3, 4
CLASS, CHILD_CLASS, INPUT_CLASS, OUTPUT_CLASS = 5, 6, 7, 8
ROLE_NAMES: Final = {EPC: "epc", PARENT: "parent", CHILD: "child", INPUT: "input",
                     OUTPUT: "output", CLASS: "class", CHILD_CLASS: "child_class",
                     INPUT_CLASS: "input_class", OUTPUT_CLASS: "output_class"}
_LISTS: Final = (("epcList", EPC), ("childEPCs", CHILD), ("inputEPCList", INPUT),
                 ("outputEPCList", OUTPUT))
_QUANTITIES: Final = (("quantityList", CLASS), ("childQuantityList", CHILD_CLASS),
                      ("inputQuantityList", INPUT_CLASS), ("outputQuantityList", OUTPUT_CLASS))
_STEP_PREFIXES: Final = ("https://ref.gs1.org/cbv/BizStep-", "urn:epcglobal:cbv:bizstep:",
                         "cbv:BizStep-", "https://gs1.org/voc/BizStep-")


@dataclass(frozen=True, slots=True)
class SchemaError:
    path: str
    message: str


class InvalidDocument(InvalidInput):
    """An EPCIS document that does not validate; ``errors`` name each problem's path."""

    def __init__(self, errors: list[SchemaError]) -> None:
        self.errors = errors
        first = errors[0] if errors else SchemaError("", "invalid")
        super().__init__(f"{len(errors)} error(s) in the EPCIS document; first at "
                         f"{first.path or '(root)'}: {first.message}", first.path or None)


@lru_cache(maxsize=1)
def schema() -> dict[str, Any]:
    text = resources.files("millnet.trace").joinpath(SCHEMA_FILE).read_text("utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


@lru_cache(maxsize=1)
def validator() -> Any:
    """The compiled validator (formats checked: date-time, uri)."""
    return jsonschema_rs.validator_for(schema(), validate_formats=True)


def json_path(parts: Any) -> str:
    """``["epcisBody", "eventList", 3, "bizStep"]`` -> ``epcisBody.eventList[3].bizStep``."""
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def validate(doc: Any) -> None:
    """InvalidDocument with every error's path (up to MAX_ERRORS) unless ``doc`` is valid."""
    if not isinstance(doc, dict):
        raise InvalidDocument([SchemaError("", "an EPCIS document or event must be an object")])
    errors = []
    for error in validator().iter_errors(doc):
        errors.append(SchemaError(json_path(error.instance_path), error.message))
        if len(errors) >= MAX_ERRORS:
            break
    if errors:
        raise InvalidDocument(errors)


def events_of(doc: dict[str, Any]) -> tuple[list[dict[str, Any]], Any, str]:
    """The events of a valid document or single event, its @context and the path prefix of
    its events."""
    context = doc.get("@context", STANDARD_CONTEXT)
    if doc.get("type") == "EPCISDocument":
        body = doc.get("epcisBody", {})
        if "eventList" in body:
            return list(body["eventList"]), context, "epcisBody.eventList"
        return [body["event"]] if "event" in body else [], context, "epcisBody.event"
    # A single event carries its own @context: the context of its document, not a field (the
    # hash must be that of the same event inside a document).
    return [{k: v for k, v in doc.items() if k != "@context"}], context, ""


def _time_us(text: str, event_path: str) -> int:
    path = event_path + ".eventTime"
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError as exc:
        raise InvalidDocument([SchemaError(path, f"not an ISO 8601 time: {text}")]) from exc
    if moment.tzinfo is None:
        raise InvalidDocument([SchemaError(path, "eventTime needs a time zone offset")])
    return int(moment.timestamp()) * 1_000_000 + moment.microsecond


def short_step(step: str | None) -> str | None:
    """A bizStep as its bare CBV word (``assembling``) whatever form it was written in."""
    if step is None:
        return None
    for prefix in _STEP_PREFIXES:
        if step.startswith(prefix):
            return step[len(prefix):]
    return step


def _links(event: dict[str, Any]) -> tuple[tuple[str, int], ...]:
    links: list[tuple[str, int]] = []
    key_of = ids.key_of
    if isinstance(parent := event.get("parentID"), str):
        links.append((key_of(parent), PARENT))
    for name, role in _LISTS:
        if epcs := event.get(name):
            links.extend((key_of(epc), role) for epc in epcs if isinstance(epc, str))
    for name, role in _QUANTITIES:
        for element in event.get(name) or ():
            if isinstance(element, dict) and isinstance(element.get("epcClass"), str):
                links.append((key_of(element["epcClass"]), role))
    return tuple(links)


def _id_of(value: Any) -> str | None:
    return value.get("id") if isinstance(value, dict) else None


def row_of(event: dict[str, Any], context: Any, path: str) -> EventRow:
    """The row of a schema-valid event: hashed, eventID defaulted to the hash."""
    try:
        digest = event_hash(event, context)
    except InvalidInput as exc:
        raise InvalidDocument([SchemaError(path, str(exc))]) from exc
    body = event if "eventID" in event else {**event, "eventID": digest}
    return EventRow(
        digest, str(event.get("type")),
        _time_us(str(event.get("eventTime")), path),
        short_step(event.get("bizStep")), _id_of(event.get("readPoint")),
        _id_of(event.get("bizLocation")), event.get("action"), body, _links(event))


def parse(doc: Any) -> list[EventRow]:
    """Validate a document (or single event) and turn its events into rows; InvalidDocument
    names every problem and nothing is returned unless every event is good."""
    validate(doc)
    events, context, prefix = events_of(doc)
    rows: list[EventRow] = []
    errors: list[SchemaError] = []
    for i, event in enumerate(events):
        path = f"{prefix}[{i}]" if prefix == "epcisBody.eventList" else prefix
        try:
            rows.append(row_of(event, context, path))
        except InvalidDocument as exc:
            errors.extend(exc.errors)
    if errors:
        raise InvalidDocument(errors[:MAX_ERRORS])
    return rows
