"""The standard EPCIS event hash (CBV 2.0 "event hash ID"), computed fast and offline.

The reference implementation is GS1's ``epcis-event-hash-generator`` (MIT; R. Troeger,
S. Schmittner): JSON-LD expansion of the document (pyld), a conversion to the XML data model,
then a pre-hash string of ``name=value`` pairs in the order the algorithm fixes, hashed with
SHA-256. It spends 2-4 ms on an event here, which would cap capture at a few hundred events
per second on a core.

:func:`event_hash` renders the same pre-hash string directly for *plain* events (every key one
the EPCIS 2.0 context defines, with the standard's shapes, and a standard ``@context``):
:mod:`millnet.trace.fasthash`. Every other event (user extensions, ``ilmd``, error
declarations, custom contexts) goes through the package itself, with the contexts it ships and
never the network. Both paths hash an event as if it were alone in its document: the package
lets the vocabulary of one event rename bare values of another in the same document, and a
hash that de-duplicates must not depend on an event's neighbours.
``tests/unit/test_epcis_hash.py`` holds the two paths to equality.
"""

from __future__ import annotations

import copy
import hashlib
import json
from functools import lru_cache
from importlib import resources
from typing import Any, Final

from epcis_event_hash_generator import hash_generator as _hg
from epcis_event_hash_generator import json_to_py as _jtp
from pyld import jsonld

from millnet.errors import InvalidInput
from millnet.trace.fasthash import NotPlain, Vocabulary, render

#: The context URLs whose documents the hash generator ships (nothing else is ever loaded).
CONTEXT_FILES: Final = {
    "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld":
        "e532647e8eb371379b8b0e8602d8981c8566bc60f7351f22c76a5bc865962008.jsonld",
    "https://gs1.github.io/EPCIS/epcis-context.jsonld":
        "14b10c9d3e92d35f577bfc610fe5ec15aa2941124987919389d7cd9998516861.jsonld",
}
STANDARD_CONTEXT: Final = "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"


@lru_cache(maxsize=4)
def context_document(url: str) -> dict[str, Any]:
    """The shipped JSON-LD context of ``url``; KeyError for any other URL."""
    name = CONTEXT_FILES[url]
    text = resources.files("epcis_event_hash_generator").joinpath(name).read_text("utf-8")
    doc: dict[str, Any] = json.loads(text)
    return doc


def _offline_loader(url: str, options: dict[str, Any] | None = None) -> dict[str, Any]:
    """pyld's document loader: the shipped contexts, a refusal for anything else (the
    package's own loader falls back to the network)."""
    if url not in CONTEXT_FILES:
        raise jsonld.JsonLdError(f"context {url} is not available offline",
                                 "jsonld.LoadDocumentError", code="loading document failed")
    return {"contentType": "application/ld+json", "contextUrl": None, "documentUrl": url,
            "document": context_document(url)}


jsonld.set_document_loader(_offline_loader)


@lru_cache(maxsize=1)
def vocabulary() -> Vocabulary:
    return Vocabulary(context_document(STANDARD_CONTEXT)["@context"])


def standard_context(context: Any) -> bool:
    """Whether ``context`` names only shipped standard contexts (the fast path's condition)."""
    if isinstance(context, str):
        return context in CONTEXT_FILES
    return isinstance(context, list) and bool(context) and all(
        isinstance(c, str) and c in CONTEXT_FILES for c in context)


def prehash_reference(event: dict[str, Any], context: Any = STANDARD_CONTEXT) -> str:
    """The package's pre-hash string of ``event`` alone in a document with ``context``."""
    doc = {"@context": context, "type": "EPCISDocument", "schemaVersion": "2.0",
           "creationDate": "2000-01-01T00:00:00Z",
           "epcisBody": {"eventList": [copy.deepcopy(event)]}}
    _jtp._namespaces.clear()  # module state the package keeps from one document to the next
    try:
        events = _jtp.event_list_from_epcis_document_json(doc)
        pre = _hg.derive_prehashes_from_events(events)
    except (jsonld.JsonLdError, ValueError, TypeError, KeyError, IndexError,
            AttributeError, OverflowError) as exc:
        raise InvalidInput(f"the event hash cannot be computed: {exc}", "event") from exc
    if not pre:
        raise InvalidInput("the event hash cannot be computed", "event")
    return str(pre[0])


def prehash(event: dict[str, Any], context: Any = STANDARD_CONTEXT) -> str:
    """The pre-hash string of ``event`` (rendered directly when the event is plain)."""
    if standard_context(context):
        try:
            return render(event, vocabulary())
        except NotPlain:
            pass
        except (ValueError, OverflowError) as exc:  # what the reference fails on too
            raise InvalidInput(f"the event hash cannot be computed: {exc}", "event") from exc
    return prehash_reference(event, context)


def hash_of_prehash(pre: str) -> str:
    return "ni:///sha-256;" + hashlib.sha256(pre.encode("utf-8")).hexdigest() + "?ver=CBV2.0"


def event_hash(event: dict[str, Any], context: Any = STANDARD_CONTEXT) -> str:
    """The standard event hash ID (``ni:///sha-256;...?ver=CBV2.0``) of ``event``."""
    return hash_of_prehash(prehash(event, context))
