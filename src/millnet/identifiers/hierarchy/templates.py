"""Industry data templates: JSON Schemas that registered identifiers' data must follow.

Conventions (docs/identifier-registration.md):

* A template is a handle on the secondary node of its industry, ``<prefix>/TEMPLATE.<name>``
  (``88.100/TEMPLATE.product``), whose ``MN_SCHEMA`` value holds a JSON Schema (draft
  2020-12). A secondary node publishes the built-in templates (product, batch, equipment,
  part) under its prefix on start; its admin may publish more, or change them, like any handle.
* An identifier declares its template with an ``MN_TEMPLATE`` value (the template handle, or a
  built-in name) and carries its data as an ``MN_DATA`` value (a JSON object).
* At registration (single, batch, native or REST) :class:`TemplateCheck` validates ``MN_DATA``
  against the template: errors name the value and the JSON pointer inside it, e.g.
  ``values[2].data: /specs/ratedPowerKw: -5 is less than the minimum of 0`` (VALUE_INVALID,
  HTTP 400). A template handle not held locally is resolved through the hierarchy (the node's
  parent) and cached for ``ttl`` seconds (a failure for ``failure_ttl``).
* Which templates count (found by review): a node applies only templates published under its
  own prefix or the prefixes above it (``88.100.5`` uses ``88.100/TEMPLATE.*`` and
  ``88/TEMPLATE.*``: its industry's and the root's), never a schema from anywhere else. A
  schema is code the node runs: an arbitrary one could hold a regular expression that
  backtracks for minutes (``^(a|aa)+$``), stall the node, or name references that cannot be
  resolved. Types are compared ignoring ASCII case, as resolution filters do, so
  ``mn_data`` is checked like ``MN_DATA``.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from importlib import resources
from typing import Any

import jsonschema
import referencing.exceptions
from jsonschema.protocols import Validator

from millnet.errors import MillnetError
from millnet.identifiers.core.delegation import admin_record_value, ancestors, prefix_key
from millnet.identifiers.core.errors import HandleExists, HandleNotFound, InvalidValue
from millnet.identifiers.core.store import IdentifierStore
from millnet.identifiers.core.values import type_matches
from millnet.identifiers.hierarchy.client import Server
from millnet.protocols.handle import (
    HandleValue,
    ResolutionRequest,
    ResolutionResponse,
    ValueReference,
    fold_prefix,
)

TEMPLATE_TYPE = "MN_TEMPLATE"
DATA_TYPE = "MN_DATA"
SCHEMA_TYPE = "MN_SCHEMA"
TEMPLATE_STEM = "TEMPLATE."
BUILTIN = ("product", "batch", "equipment", "part")
#: the largest MN_DATA document accepted (bytes of JSON)
MAX_DATA_BYTES = 64 * 1024

Fetch = Callable[[str], bytes | None]


@cache
def builtin_schema(name: str) -> dict[str, Any]:
    """A built-in template's JSON Schema (shipped with millnet)."""
    if name not in BUILTIN:
        raise KeyError(name)
    text = resources.files("millnet.identifiers").joinpath(f"templates/{name}.json")
    schema: dict[str, Any] = json.loads(text.read_text(encoding="utf-8"))
    return schema


def template_handle(prefix: str, name: str) -> str:
    return f"{prefix}/{TEMPLATE_STEM}{name}"


def publish_builtin(store: IdentifierStore, prefix: str, admin: ValueReference) -> list[str]:
    """Create ``<prefix>/TEMPLATE.<name>`` for each built-in template that is missing (a
    secondary node serving its industry); the handles created."""
    made = []
    for name in BUILTIN:
        handle = template_handle(prefix, name)
        schema = json.dumps(builtin_schema(name), separators=(",", ":")).encode()
        try:
            store.create_handle(handle, (HandleValue(1, SCHEMA_TYPE, schema),
                                         admin_record_value(admin)))
        except HandleExists:
            continue
        made.append(handle)
    return made


def remote_fetcher(parent: Server, timeout: float = 3.0) -> Fetch:
    """Fetch a template's schema by resolving its handle from ``parent``, following
    referrals (an enterprise node asks its secondary node). Blocking, from any thread."""
    from millnet.identifiers.hierarchy.resolver import RecursiveResolver

    pool = ThreadPoolExecutor(1, thread_name_prefix="millnet-template")

    def fetch(handle: str) -> bytes | None:
        asked = ResolutionRequest(handle, (), (SCHEMA_TYPE,))
        job = pool.submit(asyncio.run, RecursiveResolver(udp=False, tcp_timeout=timeout)
                          .resolve(asked, [parent]))
        body = job.result(timeout * 3)
        if isinstance(body, ResolutionResponse):
            return next((v.data for v in body.values if v.type == SCHEMA_TYPE), None)
        return None

    return fetch


def trusted_prefixes(prefix: str) -> frozenset[str]:
    """``prefix`` and every prefix above it: ``88.100.5`` -> 88.100.5, 88.100, 88."""
    return frozenset(ancestors(prefix_key(prefix)))


class TemplateCheck:
    """A value check (``IdentifierService(value_checks=...)``) that validates ``MN_DATA``
    against the handle's ``MN_TEMPLATE``; compiled schemas are cached for ``ttl`` s, at most
    ``max_cached`` of them. ``trusted``: the prefixes whose ``TEMPLATE.*`` handles may be
    used (see the module); None accepts any (tests of the mechanism only)."""

    def __init__(self, store: IdentifierStore, fetch: Fetch | None = None, *,
                 trusted: Collection[str] | None = None, ttl: float = 300.0,
                 failure_ttl: float = 30.0, max_cached: int = 256,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._store, self._fetch, self._ttl, self._clock = store, fetch, ttl, clock
        self._trusted = frozenset(prefix_key(p) for p in trusted) \
            if trusted is not None else None
        self._failure_ttl, self._max_cached = failure_ttl, max_cached
        self._cache: OrderedDict[str, tuple[float, Validator | InvalidValue]] = OrderedDict()
        self._lock = threading.Lock()

    def validator(self, ref: str) -> Validator:
        """The compiled schema of template ``ref`` (a handle, or a built-in name)."""
        now = self._clock()
        with self._lock:
            hit = self._cache.get(ref)
        if hit is not None and hit[0] > now:
            if isinstance(hit[1], InvalidValue):
                raise hit[1]  # failed a moment ago: do not fetch again for every item
            return hit[1]
        try:
            validator = self._compile(ref)
        except InvalidValue as exc:
            self._remember(ref, now + self._failure_ttl, exc)
            raise
        self._remember(ref, now + self._ttl, validator)
        return validator

    def _remember(self, ref: str, until: float, what: Validator | InvalidValue) -> None:
        with self._lock:
            self._cache[ref] = (until, what)
            self._cache.move_to_end(ref)
            while len(self._cache) > self._max_cached:
                self._cache.popitem(last=False)

    def _compile(self, ref: str) -> Validator:
        schema = self._schema(ref)
        try:
            cls = jsonschema.validators.validator_for(schema, jsonschema.Draft202012Validator)
            cls.check_schema(schema)
        except jsonschema.SchemaError as exc:
            raise InvalidValue(f"template {ref} is not a valid JSON Schema: {exc.message}",
                               "template") from None
        except RecursionError:
            raise InvalidValue(f"template {ref} is nested too deeply", "template") from None
        validator: Validator = cls(schema, format_checker=cls.FORMAT_CHECKER)
        return validator

    def _schema(self, ref: str) -> dict[str, Any]:
        if "/" not in ref:
            try:
                return builtin_schema(ref)
            except KeyError:
                raise InvalidValue(f"unknown template {ref!r}: a handle, or one of "
                                   f"{', '.join(BUILTIN)}", "template") from None
        prefix, _, suffix = ref.partition("/")
        if self._trusted is not None and (not suffix.startswith(TEMPLATE_STEM) or (
                fold_prefix(prefix) not in self._trusted)):
            raise InvalidValue(
                f"template {ref} is not one this node applies: templates are "
                f"<prefix>/{TEMPLATE_STEM}<name> under {', '.join(sorted(self._trusted))}",
                "template")
        raw: bytes | None = None
        try:
            found = self._store.get(ref, types=(SCHEMA_TYPE,))
            raw = found[0].data if found else None
        except (HandleNotFound, InvalidValue):
            raw = None
        if raw is None and self._fetch is not None:
            try:
                raw = self._fetch(ref)
            except (OSError, TimeoutError, MillnetError) as exc:  # say so, keep the node up
                raise InvalidValue(f"template {ref} could not be fetched: {exc}",
                                   "template") from None
        if raw is None:
            raise InvalidValue(f"template {ref} not found (no {SCHEMA_TYPE} value)", "template")
        try:
            schema = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise InvalidValue(f"template {ref}: its {SCHEMA_TYPE} is not JSON",
                               "template") from None
        if not isinstance(schema, dict):
            raise InvalidValue(f"template {ref}: its schema is not an object", "template")
        return schema

    def __call__(self, handle: str, values: Sequence[HandleValue]) -> None:
        # Types ignoring ASCII case, as resolution filters compare them.
        template = [(i, v) for i, v in enumerate(values)
                    if type_matches(v.type, (TEMPLATE_TYPE,))]
        data = [(i, v) for i, v in enumerate(values) if type_matches(v.type, (DATA_TYPE,))]
        if not template:
            for i, value in data:  # data without a template must still be a JSON object
                _document(i, value)
            return
        if len(template) > 1:
            raise InvalidValue(f"{handle} names {len(template)} templates; at most one",
                               f"values[{template[1][0]}]")
        t_index, t_value = template[0]
        try:
            ref = t_value.data.decode("utf-8").strip()
        except UnicodeDecodeError:
            raise InvalidValue("not UTF-8", f"values[{t_index}].data") from None
        if not data:
            raise InvalidValue(f"template {ref} needs an {DATA_TYPE} value with the data",
                               "values")
        try:
            validator = self.validator(ref)
        except InvalidValue as exc:
            raise InvalidValue(str(exc).removeprefix("template: "),
                               f"values[{t_index}].data") from None
        for i, value in data:
            document = _document(i, value)
            try:
                error = jsonschema.exceptions.best_match(validator.iter_errors(document))
            except (referencing.exceptions.Unresolvable, RecursionError) as exc:
                raise InvalidValue(f"template {ref} cannot be applied: {exc}",
                                   f"values[{t_index}].data") from None
            if error is not None:
                pointer = "".join(f"/{p}" for p in error.absolute_path) or "/"
                raise InvalidValue(f"{pointer}: {error.message}", f"values[{i}].data")


def _document(i: int, value: HandleValue) -> Any:
    if len(value.data) > MAX_DATA_BYTES:
        raise InvalidValue(f"larger than {MAX_DATA_BYTES} bytes", f"values[{i}].data")
    try:
        document = json.loads(value.data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidValue(f"{DATA_TYPE} is not JSON: {exc}", f"values[{i}].data") from None
    except RecursionError:
        raise InvalidValue(f"{DATA_TYPE} is nested too deeply", f"values[{i}].data") from None
    if not isinstance(document, dict):
        raise InvalidValue(f"{DATA_TYPE} must be a JSON object", f"values[{i}].data")
    return document
