"""Identifiers in EPCIS events, and the key the trace graph knows each one by.

Products, batches and parts carry Handle identifiers (``prefix/suffix``). In an EPCIS event an
EPC is a URI, so a Handle identifier is written as its proxy URL
``https://hdl.handle.net/88.100.5/BATCH-42`` (or ``hdl:88.100.5/BATCH-42``); GS1 identifiers
come as EPC URNs (``urn:epc:id:sgtin:...``) or GS1 Digital Link URIs. The *key* of an identifier
is what links events: the bare handle for Handle forms, the canonical GS1 Digital Link URI for
GS1 keys (the hash generator's normaliser: an SGTIN URN and its Digital Link are one key), and
the URI itself otherwise. docs/traceability.md states the convention.
"""

from __future__ import annotations

from typing import Final

from millnet.trace.fasthash import normalise_gs1

HANDLE_PROXIES: Final = ("https://hdl.handle.net/", "http://hdl.handle.net/")
HDL_SCHEME: Final = "hdl:"


def handle_of(uri: str) -> str | None:
    """The handle a Handle-style URI names, None for other URIs."""
    if not uri.startswith(("http", "hdl")):
        return None
    for proxy in HANDLE_PROXIES:
        if uri.startswith(proxy):
            rest = uri[len(proxy):]
            if "?" in rest or "#" in rest:
                rest = rest.split("?", 1)[0].split("#", 1)[0]
            return rest if "/" in rest else None
    if uri.startswith(HDL_SCHEME):
        rest = uri[len(HDL_SCHEME):]
        return rest if "/" in rest else None
    return None


def is_bare_handle(text: str) -> bool:
    """``88.100.5/BATCH-42``: a prefix without a URI scheme, a slash, a suffix."""
    prefix, sep, suffix = text.partition("/")
    return bool(sep and prefix and suffix) and ":" not in prefix


def key_of(identifier: str) -> str:
    """The trace graph's key of an identifier written as a URI or a bare handle."""
    # A proxy URL, the usual form, is never a bare handle (its "prefix" is "https:").
    if not identifier.startswith(HANDLE_PROXIES) and is_bare_handle(identifier):
        return identifier
    handle = handle_of(identifier)
    if handle is not None:
        return handle
    return normalise_gs1(identifier) or identifier


def prefix_of(key: str) -> str | None:
    """The Handle prefix of a key, None when the key is not a handle."""
    return key.partition("/")[0] if is_bare_handle(key) else None


def uri_of(handle: str) -> str:
    """The EPC URI of a handle, as the platform writes it in the events it emits."""
    return HANDLE_PROXIES[0] + handle
