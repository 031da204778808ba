"""The pre-hash string of a *plain* EPCIS event, rendered straight from its JSON.

What the reference implementation (``epcis-event-hash-generator``) does in four passes over
intermediate tuples, for an event whose keys all belong to the EPCIS 2.0 context and whose
values have the shapes the standard gives them:

1. JSON-LD expansion, only to learn the web-vocabulary IRIs (``https://ref.gs1.org/cbv/...``,
   ``https://gs1.org/voc/...``) of the event: here from the context's ``@vocab`` term tables,
   read once (:class:`Vocabulary`);
2. every string value that ends exactly one of those IRIs (after ``-`` or ``/``) becomes it;
3. the JSON -> XML data model conversion, and
4. ``name=value`` pairs in the order of ``PROP_ORDER``, sorted within a name, values
   canonicalised (CBV URNs to web vocabulary, numbers, GS1 keys to canonical Digital Link,
   times to UTC milliseconds); what the order does not name (business transactions, sources,
   destinations) follows, sorted.

:func:`render` raises :class:`NotPlain` for any shape it does not know; the caller then asks the
package itself. Equality with the package is tested, not argued (tests/unit/test_epcis_hash.py).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Final

from epcis_event_hash_generator import hash_generator as _hg
from epcis_event_hash_generator.dl_normaliser import normaliser as _dl_normaliser

VOCAB_PREFIXES: Final = ("https://ref.gs1.org/cbv", "https://gs1.org/voc")
_PAIR_LISTS: Final = ("bizTransactionList", "sourceList", "destinationList")


class NotPlain(Exception):
    """The fast path does not know what the reference does with this event."""


# -- the vocabulary of the context ------------------------------------------------------------

def _terms(scoped: Any) -> dict[str, str]:
    """Bare word -> compact IRI of a scoped context (a dict, or a list of them)."""
    out: dict[str, str] = {}
    for part in scoped if isinstance(scoped, list) else [scoped]:
        if isinstance(part, dict):
            out.update({k: v for k, v in part.items()
                        if isinstance(v, str) and not k.startswith("@")})
    return out


class Vocabulary:
    """What the JSON-LD expansion with the standard context does to a string, by position."""

    def __init__(self, ctx: dict[str, Any]) -> None:
        self.prefixes = {k: v for k, v in ctx.items() if isinstance(v, str)
                         and (v.startswith("http") or (v.startswith("urn:") and v.endswith(":")))}
        self.outer = frozenset(ctx)
        self._iris: dict[tuple[str, str, str], str] = {}
        sensor = ctx["sensorElementList"]["@context"]["sensorReport"]["@context"]
        disposition = _terms(ctx["persistentDisposition"]["@context"])
        self.vocab: dict[tuple[str, str], dict[str, str]] = {
            ("", "bizStep"): _terms(ctx["bizStep"]["@context"]),
            ("", "disposition"): _terms(ctx["disposition"]["@context"]),
            ("persistentDisposition", "set"): disposition,
            ("persistentDisposition", "unset"): disposition,
            ("bizTransactionList", "type"):
                _terms(ctx["bizTransactionList"]["@context"]["type"]["@context"]),
            ("sourceList", "type"): _terms(ctx["sourceList"]["@context"]["type"]["@context"]),
            ("destinationList", "type"):
                _terms(ctx["destinationList"]["@context"]["type"]["@context"]),
            ("sensorReport", "type"): _terms(sensor["type"]["@context"]),
            ("sensorReport", "exception"): _terms(sensor["exception"]["@context"]),
            ("sensorReport", "component"): _terms(sensor["component"]["@context"]),
        }

    def iri_of(self, parent: str, key: str, value: str) -> str | None:
        """The web-vocabulary IRI the expansion makes of ``value`` at ``key`` (a vocabulary
        or ``@id`` property) under ``parent``, None when it makes none; remembered (steps,
        dispositions, places and classes repeat from event to event)."""
        known = self._iris.get((parent, key, value))  # "" for none
        if known is not None:
            return known or None
        if key in _VOCAB_KEYS:
            expanded = self.expanded(parent, key, value)
        elif value.startswith(VOCAB_PREFIXES) or ":" not in value:
            expanded = value
        else:
            expanded = self.expand_compact(value)
        iri = expanded if expanded.startswith(VOCAB_PREFIXES) else ""
        if len(self._iris) >= 65_536:
            self._iris.clear()
        self._iris[parent, key, value] = iri
        return iri or None

    def expand_compact(self, value: str) -> str:
        prefix, sep, rest = value.partition(":")
        if sep and not rest.startswith("//") and prefix in self.prefixes:
            return self.prefixes[prefix] + rest
        return value

    def expanded(self, parent: str, key: str, value: str) -> str:
        """The IRI or literal the expansion makes of ``value`` at ``key`` under ``parent``."""
        terms = self.vocab.get(("" if key in ("bizStep", "disposition") else parent, key))
        if terms is not None:
            if value not in terms and value in self.outer:
                raise NotPlain(value)  # a term of the outer context: leave it to pyld
            return self.expand_compact(terms.get(value, value))
        if key in ID_KEYS:
            return self.expand_compact(value)
        return value


#: Properties typed ``@id`` (compact IRIs expand there; literals stay as they are elsewhere).
ID_KEYS: Final = frozenset({
    "certificationInfo", "parentID", "epcList", "childEPCs", "inputEPCList", "outputEPCList",
    "epcClass", "transformationID", "id", "source", "destination", "bizTransaction",
    "deviceID", "deviceMetadata", "rawData", "dataProcessingMethod", "bizRules",
    "coordinateReferenceSystem", "microorganism", "chemicalSubstance", "uriValue",
})


_VOCAB_KEYS: Final = frozenset({"bizStep", "disposition", "set", "unset", "type", "exception",
                                "component"})


def _collect(obj: Any, parent: str, key: str, vocab: Vocabulary, out: set[str]) -> None:
    """The web-vocabulary IRIs the JSON-LD expansion of ``obj`` (at ``key`` under ``parent``)
    would hold."""
    if type(obj) is str:
        if key in _VOCAB_KEYS or key in ID_KEYS:
            iri = vocab.iri_of(parent, key, obj)
            if iri is not None:
                out.add(iri)
        elif obj.startswith(VOCAB_PREFIXES):
            out.add(obj)
    elif isinstance(obj, dict):
        for k, v in obj.items():
            _collect(v, key, k, vocab, out)
    elif isinstance(obj, list):
        for v in obj:
            _collect(v, parent, key, vocab, out)


def _collect_event(event: dict[str, Any], vocab: Vocabulary, out: set[str]) -> None:
    """_collect for a whole event, with lists of EPCs (most of an event's strings) checked
    inline: an EPC expands to web vocabulary only if it is, or abbreviates, such an IRI."""
    prefixes = vocab.prefixes
    for key, value in event.items():
        if type(value) is str:  # _collect's first case, inline
            if key in _VOCAB_KEYS or key in ID_KEYS:
                iri = vocab.iri_of("", key, value)
                if iri is not None:
                    out.add(iri)
            elif value.startswith(VOCAB_PREFIXES):
                out.add(value)
        elif type(value) is list and key in _EPC_LISTS:
            for epc in value:
                if type(epc) is not str:
                    _collect(epc, "", key, vocab, out)
                elif epc.startswith(VOCAB_PREFIXES):
                    out.add(epc)
                elif epc.partition(":")[0] in prefixes:
                    _collect(epc, "", key, vocab, out)
        else:
            _collect(value, "", key, vocab, out)


_EPC_LISTS: Final = frozenset({"epcList", "childEPCs", "inputEPCList", "outputEPCList"})


@lru_cache(maxsize=4096)
def _replacements(expanded: frozenset[str]) -> dict[str, str]:
    """Bare value -> the one expanded IRI it ends (the package's heuristic: a value that ends
    two IRIs is left alone)."""
    found: dict[str, list[str]] = {}
    for iri in expanded:
        for i, ch in enumerate(iri):
            if ch in "-/":
                found.setdefault(iri[i + 1:], []).append(iri)
    return {bare: iris[0] for bare, iris in found.items() if len(set(iris)) == 1}


# -- value canonicalisation ------------------------------------------------------------------

_ISO: Final = re.compile(
    r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})")
_DL_HEAD: Final = re.compile(  # the first test of dl_normaliser for web URIs, verbatim
    r'^https?:(\/\/((([^\/?#]*)@)?([^\/?#:]*)(:([^\/?#]*))?))?((([^?#]*)(\/(01|gtin|8006|itip|'
    r'8010|cpid|414|gln|417|party|8017|gsrnp|8018|gsrn|255|gcn|00|sscc|253|gdti|401|ginc|402|'
    r'gsin|8003|grai|8004|giai)\/)(\d{4}[^\/]+)(\/[^/]+\/[^/]+)?[/]?(\?([^?\n]*))?(#([^\n]*))?)|'
    r'(\/[A-Za-z_-]{10}$))')
# What every string _DL_HEAD matches contains (its AI path segment, or its 10-letter tail): a
# linear search that rules most web URIs out before the backtracking one runs.
_DL_QUICK: Final = re.compile(
    r'/(01|gtin|8006|itip|8010|cpid|414|gln|417|party|8017|gsrnp|8018|gsrn|255|gcn|00|sscc|'
    r'253|gdti|401|ginc|402|gsin|8003|grai|8004|giai)/\d{4}|/[A-Za-z_-]{10}$')


def fix_time(text: str) -> str:
    """hash_generator._fix_time_stamp_format (dateutil) for the common ISO 8601 forms."""
    if _ISO.fullmatch(text) is None:
        return str(_hg._fix_time_stamp_format(text))
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:  # February 30th: dateutil refuses it too, and the text stays
        return str(_hg._fix_time_stamp_format(text))
    if text[-1] == "Z" and len(text) <= 24:  # UTC to the millisecond: only padding to do
        fraction = text[20:-1] if len(text) > 20 else ""
        return text[:19] + "." + (fraction + "000")[:3] + "Z"
    moment = moment.astimezone(UTC)
    moment = moment.replace(microsecond=round(moment.microsecond, -3))
    return moment.isoformat(timespec="milliseconds")[:-6] + "Z"


@lru_cache(maxsize=65_536)
def _normalise_cached(text: str) -> str | None:
    """Classes, locations and read points repeat from event to event."""
    return _dl_normaliser(text)  # type: ignore[no-any-return]


def normalise_gs1(text: str) -> str | None:
    """dl_normaliser.normaliser, skipped where it cannot match (it tries ~40 regexes)."""
    if "." not in text:
        return None
    if text.startswith("urn:epc:"):
        return _normalise_cached(text)
    if text.startswith("http") and _DL_QUICK.search(text) is not None \
            and _DL_HEAD.match(text) is not None:
        return _normalise_cached(text)
    return None


# What a string float() accepts may start with (after strip; digits of any script aside).
_FLOAT_HEADS: Final = frozenset("+-.nNiI")


def canonize(text: str) -> str:
    """hash_generator._canonize_value, remembered (steps, places, classes, units repeat)."""
    known = _CANON.get(text)
    if known is not None:
        return known
    out = _canonize(text)
    if len(_CANON) >= 65_536:
        _CANON.clear()
    _CANON[text] = out
    return out


_CANON: dict[str, str] = {}


def _canonize(text: str) -> str:
    if "urn:epcglobal:cbv:" in text:
        text = _hg._try_format_web_vocabulary(text)
    head = text[:1]
    # A digit of any script, as the package's float() takes it (not a number parsed here:
    # tests/unit/test_source_rules.py keeps str.isdigit out of network parsers).
    if unicodedata.digit(head, None) is not None or head in _FLOAT_HEADS:
        text = _hg._try_format_numeric(text)
    converted = normalise_gs1(text)
    return converted if converted else text


# -- rendering -------------------------------------------------------------------------------

Render = Callable[[str, Any, dict[str, str]], str]


def _scalar(value: Any) -> str:
    if isinstance(value, (dict, list)):
        raise NotPlain("a structure where a value belongs")
    return str(value)


def _is_time(name: str) -> bool:
    """Whether the package treats a field as a time (its name says "time", not "offset")."""
    known = _TIME_NAMES.get(name)
    if known is None:
        low = name.lower()
        known = _TIME_NAMES[name] = "time" in low and "offset" not in low
    return known


_TIME_NAMES: dict[str, bool] = {}


def _leaf(name: str, value: Any, rep: dict[str, str]) -> str:
    text = rep.get(value, value) if type(value) is str else _scalar(value)
    key = (name, text)
    out = _LEAVES.get(key)
    if out is None:
        out = _leaf_text(name, text)
        if len(_LEAVES) >= 65_536:
            _LEAVES.clear()
        _LEAVES[key] = out
    return out


def _leaf_text(name: str, text: str) -> str:
    """``name=value`` of a leaf (after vocabulary replacement), "" for a blank value."""
    text = text.strip()
    if text:
        text = fix_time(text) if _is_time(name) else canonize(text)
    return f"{name}={text}" if text else ""


#: Rendered leaves by (name, value): steps, places, offsets and times repeat between events.
_LEAVES: dict[tuple[str, str], str] = {}


def _items(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _fields(obj: Any, order: tuple[str, ...], rep: dict[str, str]) -> str:
    """An object whose keys are all leaves named by ``order``, rendered in that order."""
    if not isinstance(obj, dict) or not obj or not obj.keys() <= _key_set(order):
        raise NotPlain("an object of unexpected keys")
    return "".join(_leaf(k, obj[k], rep) for k in order if k in obj)


@lru_cache(maxsize=16)
def _key_set(order: tuple[str, ...]) -> frozenset[str]:
    return frozenset(order)


def _epcs(name: str, value: Any, rep: dict[str, str]) -> str:
    texts = []
    for v in _items(value):  # _leaf_text, not remembered: EPCs are mostly new
        text = (rep.get(v, v) if type(v) is str else _scalar(v)).strip()
        if text and (canonical := _canonize(text)):
            texts.append("epc=" + canonical)
    if not texts:
        return ""
    texts.sort()
    return name + "".join(texts)


_QUANTITY: Final = ("epcClass", "quantity", "uom")


def _quantities(name: str, value: Any, rep: dict[str, str]) -> str:
    for q in _items(value):
        if not isinstance(q, dict) or "epcClass" not in q:
            raise NotPlain("a quantity element without epcClass")
    texts = sorted(t for q in _items(value) if (t := _fields(q, _QUANTITY, rep)))
    return name + "".join("quantityElement" + t for t in texts) if texts else ""


def _many(name: str, value: Any, rep: dict[str, str]) -> str:
    return "".join(sorted(t for v in _items(value) if (t := _leaf(name, v, rep))))


def _persistent(name: str, value: Any, rep: dict[str, str]) -> str:
    if not isinstance(value, dict) or not value or not value.keys() <= {"set", "unset"}:
        raise NotPlain("persistentDisposition")
    text = "".join(_many(k, value[k], rep) for k in ("set", "unset") if k in value)
    return name + text if text else ""


def _location(name: str, value: Any, rep: dict[str, str]) -> str:
    if type(value) is dict and len(value) == 1 and "id" in value:
        text = _leaf("id", value["id"], rep)  # _fields, for the one shape there is
    else:
        text = _fields(value, ("id",), rep)
    return name + text if text else ""


_META: Final = ("time", "startTime", "endTime", "deviceID", "deviceMetadata", "rawData",
                "dataProcessingMethod", "bizRules")
_REPORT: Final = ("type", "exception", "deviceID", "deviceMetadata", "rawData",
                  "dataProcessingMethod", "time", "microorganism", "chemicalSubstance", "value",
                  "component", "stringValue", "booleanValue", "hexBinaryValue", "uriValue",
                  "minValue", "maxValue", "meanValue", "sDev", "percRank", "percValue", "uom",
                  "coordinateReferenceSystem")


def _sensor_element(element: Any, rep: dict[str, str]) -> str:
    if not isinstance(element, dict) or not element \
            or not element.keys() <= {"sensorMetadata", "sensorReport"}:
        raise NotPlain("sensorElement")
    text = ""
    if "sensorMetadata" in element:
        meta = _fields(element["sensorMetadata"], _META, rep)
        text += "sensorMetadata" + meta if meta else ""
    if "sensorReport" in element:
        reports = sorted(t for r in _items(element["sensorReport"])
                         if (t := _fields(r, _REPORT, rep)))
        text += "".join("sensorReport" + t for t in reports)
    return text


def _sensors(name: str, value: Any, rep: dict[str, str]) -> str:
    texts = sorted(t for e in _items(value) if (t := _sensor_element(e, rep)))
    return name + "".join("sensorElement" + t for t in texts) if texts else ""


#: PROP_ORDER of the package, as renderers of the JSON shapes of each property.
ORDER: Final[tuple[tuple[str, Render], ...]] = (
    ("eventTime", _leaf), ("eventTimeZoneOffset", _leaf), ("certificationInfo", _many),
    ("parentID", _leaf), ("epcList", _epcs), ("inputEPCList", _epcs), ("childEPCs", _epcs),
    ("quantityList", _quantities), ("childQuantityList", _quantities),
    ("inputQuantityList", _quantities), ("outputEPCList", _epcs),
    ("outputQuantityList", _quantities), ("action", _leaf), ("transformationID", _leaf),
    ("bizStep", _leaf), ("disposition", _leaf), ("persistentDisposition", _persistent),
    ("readPoint", _location), ("bizLocation", _location), ("sensorElementList", _sensors),
)
_ORDERED: Final = frozenset(name for name, _ in ORDER)
TOP_KEYS: Final = _ORDERED | frozenset(_PAIR_LISTS) | {"type", "recordTime", "eventID"}
_SCALAR_KEYS: Final = frozenset({"eventTime", "eventTimeZoneOffset", "parentID", "action",
                                 "transformationID", "bizStep", "disposition"})


def _pairs(name: str, value: Any, rep: dict[str, str]) -> str:
    """A business transaction, source or destination list: each element's two fields in the
    order they were written (the package keeps that order), the elements sorted. An element
    without ``type`` (valid EPCIS) makes the package fail; it is rendered with its one field."""
    texts = []
    for element in _items(value):
        if not isinstance(element, dict) or not element \
                or not element.keys() <= {"type", name[:-4]}:
            raise NotPlain(name)
        text = ""
        for key, val in element.items():
            raw = _scalar(rep.get(val, val) if isinstance(val, str) else val).strip()
            text += key + ("=" + canonize(raw) if raw else "")
        texts.append(text)
    return name + "".join(sorted(texts)) if texts else ""


def render(event: dict[str, Any], vocab: Vocabulary) -> str:
    """The pre-hash string of ``event``; NotPlain when the event is not plain."""
    if not event.keys() <= TOP_KEYS:
        raise NotPlain("a key outside the fast path")
    for key in _SCALAR_KEYS & event.keys():
        _scalar(event[key])
    expanded: set[str] = set()
    _collect_event(event, vocab, expanded)
    rep = _replacements(frozenset(expanded)) if expanded else {}
    kind = event.get("type", "")
    parts = ["eventType=", str(rep.get(kind, kind))]
    order, pairs = _order_of(tuple(event))
    for name, render_one in order:
        parts.append(render_one(name, event[name], rep))
    if pairs:
        parts.extend(sorted(t for name in pairs if (t := _pairs(name, event[name], rep))))
    return "".join(parts)


@lru_cache(maxsize=1024)
def _order_of(keys: tuple[str, ...]) -> tuple[tuple[tuple[str, Render], ...], tuple[str, ...]]:
    """The renderers of an event's keys in PROP_ORDER, and its pair lists (events of one
    source have the same keys)."""
    present = set(keys)
    return (tuple((name, render_one) for name, render_one in ORDER if name in present),
            tuple(name for name in _PAIR_LISTS if name in present))
