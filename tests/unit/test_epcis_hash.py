"""The fast EPCIS event hash equals the reference package's (epcis-event-hash-generator) on
the package's own example events and on generated plain events; the schema's errors carry
JSON paths; identifiers map to their trace keys."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from millnet.errors import InvalidInput
from millnet.trace import capture, ehash, fasthash, ids

DATA = Path(__file__).resolve().parents[1] / "data" / "epcis"
CTX = ehash.STANDARD_CONTEXT


def _example_events() -> list[tuple[str, int, dict[str, Any], Any]]:
    out = []
    for path in sorted(DATA.glob("*.jsonld")):
        doc = json.loads(path.read_text())
        body = doc["epcisBody"]
        events = body.get("eventList") or ([body["event"]] if "event" in body else
                                           body["queryResults"]["resultsBody"]["eventList"])
        out += [(path.name, i, e, doc["@context"]) for i, e in enumerate(events)]
    return out


_KNOWN = fasthash.TOP_KEYS | {"id", "epcClass", "quantity", "uom", "set", "unset",
                              "sensorMetadata", "sensorReport", "bizTransaction", "source",
                              "destination", *fasthash._REPORT, *fasthash._META}


def _strip(obj: Any) -> Any:
    """The event without its user extensions (keys the standard context does not define)."""
    if isinstance(obj, dict):
        return {k: _strip(v) for k, v in obj.items() if k in _KNOWN}
    if isinstance(obj, list):
        return [_strip(v) for v in obj]
    return obj


EXAMPLES = _example_events()


@pytest.mark.parametrize(("name", "index", "event", "context"), EXAMPLES,
                         ids=[f"{n}-{i}" for n, i, _, _ in EXAMPLES])
def test_the_hash_of_every_example_event_is_the_packages(name: str, index: int,
                                                         event: dict[str, Any],
                                                         context: Any) -> None:
    assert ehash.prehash(event, context) == ehash.prehash_reference(event, context)
    plain = _strip(event)
    assert fasthash.render(plain, ehash.vocabulary()) == ehash.prehash_reference(plain, CTX)


def test_the_fast_path_serves_the_plain_examples() -> None:
    rendered = 0
    for _, _, event, _ in EXAMPLES:
        try:
            fasthash.render(_strip(event), ehash.vocabulary())
            rendered += 1
        except fasthash.NotPlain:
            pass
    assert rendered >= 35


def test_a_known_hash() -> None:
    """The package's README example hash (ReferenceEventHashAlgorithm.jsonld)."""
    doc = json.loads((DATA / "ReferenceEventHashAlgorithm.jsonld").read_text())
    event = doc["epcisBody"]["eventList"][0]
    assert ehash.event_hash(event, doc["@context"]) == ehash.hash_of_prehash(
        ehash.prehash_reference(event, doc["@context"]))


# -- generated plain events ------------------------------------------------------------------

STEPS = ["assembling", "shipping", "commissioning", "packing", "receiving",
         "urn:epcglobal:cbv:bizstep:shipping", "https://ref.gs1.org/cbv/BizStep-packing",
         "cbv:BizStep-storing", "my_own_step", "https://example.com/steps/weld"]
DISPOSITIONS = ["in_progress", "active", "urn:epcglobal:cbv:disp:in_transit",
                "https://ref.gs1.org/cbv/Disp-sellable_accessible", "recalled"]
EPCS = st.one_of(
    st.from_regex(r"https://hdl\.handle\.net/88\.1\d{2}\.[1-9]/[A-Z]{2,5}-[0-9]{1,4}",
                  fullmatch=True),
    st.from_regex(r"hdl:88\.100\.5/[A-Z]{1,4}[0-9]{1,3}", fullmatch=True),
    st.from_regex(r"urn:epc:id:sgtin:4012345\.0[0-9]{5}\.[0-9A-Za-z]{1,8}", fullmatch=True),
    st.from_regex(r"https://id\.gs1\.org/01/0401234512345[0-9]/21/[0-9a-z]{1,6}",
                  fullmatch=True),
    st.from_regex(r"urn:epc:id:sscc:4012345\.[0-9]{10}", fullmatch=True),
    st.sampled_from(["shipping", "x", "urn:x:1.2"]),
)
TIMES = st.one_of(
    st.from_regex(r"20[0-9]{2}-0[1-9]-[0-2][1-9]T[01][0-9]:[0-5][0-9]:[0-5][0-9]"
                  r"(\.[0-9]{1,3})?Z", fullmatch=True),
    st.from_regex(r"20[0-9]{2}-0[1-9]-[0-2][1-9]T[01][0-9]:[0-5][0-9]:[0-5][0-9]"
                  r"(\.[0-9]{1,6})?[+-]0[0-9]:[03]0", fullmatch=True),
)
NUMBERS = st.one_of(st.integers(0, 10_000), st.floats(0, 1e6, allow_nan=False).map(
    lambda f: round(f, 3)))
QUANTITY = st.fixed_dictionaries(
    {"epcClass": st.sampled_from(["urn:epc:class:lgtin:4012345.012345.998877",
                                  "https://hdl.handle.net/88.100.5/PARTS-3",
                                  "urn:epc:idpat:sgtin:4012345.012345.*"])},
    optional={"quantity": NUMBERS, "uom": st.sampled_from(["KGM", "EA", "MTR"])})
PAIRS = st.lists(st.sampled_from([
    {"type": "po", "bizTransaction": "urn:epcglobal:cbv:bt:0614141073467:PO-1"},
    {"bizTransaction": "http://transaction.example.com/po/12345678", "type": "inv"},
    {"type": "urn:epcglobal:cbv:btt:desadv", "bizTransaction": "urn:x:desadv:1"}]),
    max_size=3)
SOURCES = st.lists(st.sampled_from([
    {"type": "owning_party", "source": "urn:epc:id:pgln:4012345.00001"},
    {"type": "location", "source": "urn:epc:id:sgln:4012345.00011.0"}]), max_size=2)
REPORT = st.fixed_dictionaries(
    {"type": st.sampled_from(["Temperature", "gs1:RelativeHumidity",
                              "https://gs1.org/voc/Pressure"])},
    optional={"value": NUMBERS, "uom": st.sampled_from(["CEL", "KEL", "A93"]),
              "minValue": NUMBERS, "maxValue": NUMBERS,
              "time": TIMES, "deviceID": st.just("urn:epc:id:giai:4000001.111"),
              "component": st.sampled_from(["x", "y"]),
              "exception": st.just("ALARM_CONDITION"), "stringValue": st.text(max_size=5),
              "booleanValue": st.booleans()})
SENSORS = st.lists(st.fixed_dictionaries(
    {"sensorReport": st.lists(REPORT, min_size=1, max_size=3)},
    optional={"sensorMetadata": st.fixed_dictionaries(
        {"time": TIMES}, optional={"deviceID": st.just("urn:epc:id:giai:4000001.111"),
                                   "bizRules": st.just("https://example.com/rules/1")})}),
    max_size=2)


@st.composite
def events(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["ObjectEvent", "AggregationEvent", "TransformationEvent",
                                 "AssociationEvent"]))
    event: dict[str, Any] = {"type": kind, "eventTime": draw(TIMES),
                             "eventTimeZoneOffset": draw(st.sampled_from(["+00:00", "-05:30"]))}
    if kind == "TransformationEvent":
        event["inputEPCList"] = draw(st.lists(EPCS, max_size=4))
        event["outputEPCList"] = draw(st.lists(EPCS, max_size=2))
        if draw(st.booleans()):
            event["inputQuantityList"] = draw(st.lists(QUANTITY, min_size=1, max_size=2))
    elif kind in ("AggregationEvent", "AssociationEvent"):
        event["parentID"] = draw(EPCS)
        event["childEPCs"] = draw(st.lists(EPCS, max_size=4))
        event["action"] = draw(st.sampled_from(["ADD", "DELETE", "OBSERVE"]))
        if draw(st.booleans()):
            event["childQuantityList"] = draw(st.lists(QUANTITY, min_size=1, max_size=2))
    else:
        event["epcList"] = draw(st.lists(EPCS, max_size=4))
        event["action"] = draw(st.sampled_from(["ADD", "DELETE", "OBSERVE"]))
        if draw(st.booleans()):
            event["quantityList"] = draw(st.lists(QUANTITY, min_size=1, max_size=2))
    for key, strategy in (("bizStep", st.sampled_from(STEPS)),
                          ("disposition", st.sampled_from(DISPOSITIONS)),
                          ("readPoint", st.just({"id": "urn:epc:id:sgln:4012345.00001.0"})),
                          ("bizLocation", st.just({"id": "https://id.gs1.org/414/4012345000016"})),
                          ("bizTransactionList", PAIRS), ("sourceList", SOURCES),
                          ("destinationList", SOURCES), ("sensorElementList", SENSORS),
                          ("persistentDisposition", st.just({"set": ["completeness_verified"],
                                                             "unset": ["completeness_inferred"]})),
                          ("eventID", st.just("urn:uuid:0b1a5e62-3a37-4c2f-9c4e-8d5b2f6a7c11"))):
        if draw(st.booleans()):
            event[key] = draw(strategy)
    return event


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events())
def test_generated_plain_events_hash_like_the_package(event: dict[str, Any]) -> None:
    try:
        fast = fasthash.render(event, ehash.vocabulary())
    except fasthash.NotPlain:
        return
    except (ValueError, OverflowError):  # e.g. a stringValue "INF": the package fails too
        with pytest.raises(InvalidInput):
            ehash.prehash_reference(event, CTX)
        return
    assert fast == ehash.prehash_reference(event, CTX)


@settings(max_examples=100, deadline=None)
@given(events(), st.randoms())
def test_the_hash_ignores_key_and_list_order(event: dict[str, Any], rnd: Any) -> None:
    shuffled = dict(rnd.sample(list(event.items()), len(event)))
    for key in ("epcList", "inputEPCList", "childEPCs"):
        if key in shuffled:
            shuffled[key] = rnd.sample(shuffled[key], len(shuffled[key]))
    assert ehash.event_hash(shuffled) == ehash.event_hash(event)


# -- validation and identifiers ----------------------------------------------------------------

def test_errors_name_the_json_path_of_each_problem() -> None:
    good = {"type": "ObjectEvent", "eventTime": "2026-01-01T00:00:00Z",
            "eventTimeZoneOffset": "+00:00", "epcList": ["hdl:88.100.5/X-1"],
            "action": "OBSERVE"}
    doc = {"@context": [CTX], "type": "EPCISDocument", "schemaVersion": "2.0",
           "creationDate": "2026-01-01T00:00:00Z",
           "epcisBody": {"eventList": [good, {**good, "action": "DANCE"},
                                       {**good, "epcList": "not a list"}]}}
    with pytest.raises(capture.InvalidDocument) as caught:
        capture.parse(doc)
    paths = {e.path for e in caught.value.errors}
    assert {"epcisBody.eventList[1].action", "epcisBody.eventList[2].epcList"} <= paths
    assert capture.json_path(["a", 0, "b", 12]) == "a[0].b[12]"
    with pytest.raises(capture.InvalidDocument):
        capture.parse([good])


@given(st.from_regex(r"[0-9]{2}\.[0-9]{1,3}(\.[0-9]{1,3})?/[A-Za-z0-9._-]{1,20}",
                     fullmatch=True))
def test_every_handle_form_has_one_key(handle: str) -> None:
    assert ids.key_of(handle) == handle
    assert ids.key_of(f"hdl:{handle}") == handle
    assert ids.key_of(ids.uri_of(handle)) == handle
    assert ids.prefix_of(handle) == handle.split("/", maxsplit=1)[0]


def test_gs1_forms_of_one_key_are_one_key() -> None:
    assert ids.key_of("urn:epc:id:sgtin:4012345.011111.9876") == \
        ids.key_of("https://id.gs1.org/01/04012345111118/21/9876")
    assert ids.prefix_of(ids.key_of("urn:epc:id:sgtin:4012345.011111.9876")) is None


def test_nothing_is_fetched_for_an_unknown_context() -> None:
    event = {"type": "ObjectEvent", "eventTime": "2026-01-01T00:00:00Z",
             "eventTimeZoneOffset": "+00:00", "epcList": ["hdl:88.100.5/X-1"],
             "action": "OBSERVE"}
    with pytest.raises(InvalidInput, match="never-fetched"):
        ehash.event_hash(event, ["https://example.com/never-fetched.jsonld"])


def test_a_business_transaction_without_type_is_hashed_not_refused() -> None:
    """Valid EPCIS that the package cannot hash (it indexes a missing pair element)."""
    event = {"type": "ObjectEvent", "eventTime": "2026-01-01T00:00:00Z",
             "eventTimeZoneOffset": "+00:00", "epcList": ["hdl:88.100.5/X-1"],
             "action": "OBSERVE", "bizTransactionList": [{"bizTransaction": "urn:x:po:1"}]}
    typed = {**event, "bizTransactionList": [{"type": "po", "bizTransaction": "urn:x:po:1"}]}
    with pytest.raises(InvalidInput):
        ehash.prehash_reference(event)
    assert ehash.prehash(event).endswith("bizTransactionListbizTransaction=urn:x:po:1")
    assert ehash.event_hash(event) != ehash.event_hash(typed)
