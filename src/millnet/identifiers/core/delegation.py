"""Prefix records and delegation: ``0.NA/<prefix>`` handles and where a prefix is served.

A prefix record ``0.NA/88.100.5`` holds HS_ADMIN (who administers the prefix: who may create
handles under it and, with ADD_NA, delegate prefixes below it) and HS_SITE / HS_SERV values (which
service answers for the prefix). A node keeps the records of the prefixes it serves and of the
prefixes it delegates; :func:`locate` walks ``88.100.5`` -> ``88.100`` -> ``88`` to decide whether
this node answers a handle or refers the client to the site of a delegated prefix.

:func:`bootstrap_prefix` gives a fresh node its prefix the way Handle.Net sets one up:
``0.NA/<prefix>`` with HS_ADMIN -> ``<prefix>/ADMIN`` index 300 and HS_SITE, and
``<prefix>/ADMIN`` with the secret key at index 300 and its own HS_ADMIN.

HS_SECKEY data is the secret's UTF-8 octets, as Handle.Net tools store it by default: the
native challenge-response is an HMAC keyed by the secret, so the server must hold the secret
itself, not a slow hash of it. The value is admin-read only, never resolved publicly.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, Select, bindparam, select

from millnet.errors import InvalidInput, ProtocolError
from millnet.identifiers.core.errors import HandleExists, HandleNotFound, NotResponsible
from millnet.identifiers.core.schema import PREFIX_MAX, handles
from millnet.identifiers.core.store import IdentifierStore
from millnet.identifiers.core.values import canonical_handle, select_values, stored_values
from millnet.protocols.handle import (
    ALL_ADMIN_PERMISSIONS,
    AdminRecord,
    HandleValue,
    Permission,
    SiteInfo,
    ValueReference,
    decode_serv,
    encode_admin,
    encode_site,
    encode_vlist,
    prefix_handle,
)

ADMIN_SUFFIX = "ADMIN"
ADMIN_INDEX = 100  # the HS_ADMIN value of prefix records and admin handles
SECKEY_INDEX = 300  # the admin's HS_SECKEY: principals are written 300:<prefix>/ADMIN
SITE_INDEX = 1
#: ``200:0.NA/<prefix>``: an HS_VLIST of the prefix's administrators. Handle.Net's admin tool
#: and pyhandle name it as the owner (HS_ADMIN) of the handles they create by default.
ADMIN_GROUP_INDEX = 200
GLOBAL_PREFIX = "0.NA"
#: Value types that say who serves a prefix; "HS_SITE." also matches HS_SITE.PREFIX.
DELEGATION_TYPES = ("HS_SITE.", "HS_SERV")

#: Prefixes deeper than this many labels are not delegated: :func:`locate` does not look for
#: their prefix records, and :func:`~.hierarchy.register_delegation` refuses them. A handle's
#: prefix may have 128 labels (255 characters, "1.1.1..."), and looking up the record of
#: every ancestor was work an unauthenticated request could multiply; real prefixes have a
#: few labels (``20.500.12345``, ``88.100.5``).
MAX_DELEGATION_DEPTH = 16
#: names :func:`held_records` looks up at once: the record asked for and the prefix records of
#: every ancestor of a prefix of :data:`PREFIX_MAX` characters ("1.1.1..." has 128)
MAX_CANDIDATES = 1 + (PREFIX_MAX + 1) // 2

PUBLIC = Permission.PUBLIC_READ | Permission.ADMIN_READ | Permission.ADMIN_WRITE
PRIVATE = Permission.ADMIN_READ | Permission.ADMIN_WRITE


@dataclass(frozen=True, slots=True)
class Local:
    """This node answers for the handle: ``prefix`` is the served prefix that covers it."""

    prefix: str


@dataclass(frozen=True, slots=True)
class Referral:
    """Another service answers for ``prefix``: its HS_SITE / HS_SERV values, for a
    SERVICE_REFERRAL response."""

    prefix: str
    values: tuple[HandleValue, ...]


def prefix_key(prefix: str) -> str:
    """A prefix as stored (ASCII upper-cased); InvalidInput (field "handle") if malformed."""
    return canonical_handle(f"{prefix}/x")[1]


def ancestors(prefix: str) -> list[str]:
    """``88.100.5`` -> ``["88.100.5", "88.100", "88"]``: the prefix, then each parent
    (slices at the dots: linear in the prefix's length, not quadratic)."""
    found = [prefix]
    end = prefix.rfind(".")
    while end >= 0:
        found.append(prefix[:end])
        end = prefix.rfind(".", 0, end)
    return found


def parent_record(prefix: str) -> str:
    """The record whose admins may delegate ``prefix``: ``0.NA/88.100`` for ``88.100.5``,
    the root ``0.NA/0.NA`` for a top-level prefix."""
    parents = ancestors(prefix_key(prefix))[1:]
    return prefix_handle(parents[0] if parents else GLOBAL_PREFIX)


def admin_record_value(admin: ValueReference, index: int = ADMIN_INDEX,
                       permissions: int = ALL_ADMIN_PERMISSIONS, *,
                       timestamp: int = 0) -> HandleValue:
    return HandleValue(index, "HS_ADMIN", encode_admin(AdminRecord(permissions, admin.handle,
                                                                   admin.index)),
                       timestamp=timestamp, permissions=PUBLIC)


def site_value(site: SiteInfo, index: int = SITE_INDEX, *, timestamp: int = 0) -> HandleValue:
    return HandleValue(index, "HS_SITE", encode_site(site), timestamp=timestamp,
                       permissions=PUBLIC)


def bootstrap_prefix(store: IdentifierStore, prefix: str, admin_secret: str | bytes,
                     site: SiteInfo, *, now: int = 0) -> bool:
    """Create ``0.NA/<prefix>`` and ``<prefix>/ADMIN`` if missing; True if anything was new.

    Idempotent on restart: an existing admin handle is left alone (its key may have been
    rotated since), an existing prefix record only gets its HS_SITE brought up to ``site``
    (the node's own configuration)."""
    key = prefix_key(prefix)
    admin = ValueReference(f"{key}/{ADMIN_SUFFIX}", SECKEY_INDEX)
    secret = admin_secret.encode("utf-8") if isinstance(admin_secret, str) else admin_secret
    if not secret:
        raise ValueError("the admin secret is empty")
    created = _create_missing(store, admin.handle, (
        admin_record_value(admin, timestamp=now),
        HandleValue(SECKEY_INDEX, "HS_SECKEY", secret, timestamp=now, permissions=PRIVATE),
    ))
    record = prefix_handle(key)
    wanted_site = site_value(site, timestamp=now)
    group = HandleValue(ADMIN_GROUP_INDEX, "HS_VLIST", encode_vlist((admin,)), timestamp=now,
                        permissions=PUBLIC)
    if _create_missing(store, record, (admin_record_value(admin, timestamp=now),
                                       wanted_site, group)):
        return True
    current = {v.index: v for v in store.get(record, indexes=(SITE_INDEX, ADMIN_GROUP_INDEX))}
    if SITE_INDEX not in current:
        store.add_values(record, [wanted_site])
    elif current[SITE_INDEX].data != wanted_site.data or current[SITE_INDEX].type != "HS_SITE":
        store.modify_values(record, [wanted_site])
    if ADMIN_GROUP_INDEX not in current:  # records made before the group existed
        store.add_values(record, [group])
    return created


def _create_missing(store: IdentifierStore, handle: str,
                    values: tuple[HandleValue, ...]) -> bool:
    try:
        store.create_handle(handle, values)
    except HandleExists:
        return False
    return True


def delegation(store: IdentifierStore, prefix: str) -> Referral | None:
    """The referral ``0.NA/<prefix>`` describes, None without one (or without a record)."""
    record = prefix_handle(prefix)
    found = held_records(store, [record])
    return _referral(store, prefix, found[record]) if record in found else None


def _referral(store: IdentifierStore, prefix: str, public_wire: bytes) -> Referral | None:
    """The referral of a prefix record from its stored public values; None without one."""
    if not public_wire:
        return None
    public = select_values(stored_values(public_wire, None), (), DELEGATION_TYPES)
    if not public:
        return None
    return Referral(prefix, tuple(site for v in public for site in _expanded(store, v)))


def held_records(store: IdentifierStore, names: Sequence[str]) -> dict[str, bytes]:
    """``{name: public wire}`` of those of ``names`` (canonical handles) held here, in ONE
    indexed statement (``handle IN (...)`` on the unique index): :func:`locate` asks it for
    every ancestor of a prefix at once. The wire is empty for a record without a public
    value."""
    if not names:
        return {}
    if len(names) > MAX_CANDIDATES:
        raise InvalidInput(f"{len(names)} names; at most {MAX_CANDIDATES}", "handle")
    query = _records_query(len(names))
    params = {f"n{i}": name for i, name in enumerate(names)}

    def work(conn: Connection) -> dict[str, bytes]:
        return {str(row.handle): bytes(row.wire or b"")
                for row in conn.execute(query, params)}

    return store._run(work)  # the store's transaction and error handling


def _expanded(store: IdentifierStore, value: HandleValue) -> tuple[HandleValue, ...]:
    """An HS_SERV value as the HS_SITE values of its service handle when that handle is held
    here (one lookup; a service handle is not followed further), else the value itself for the
    resolver to follow."""
    if value.type != "HS_SERV":
        return (value,)
    try:
        service = decode_serv(value.data)
        sites = store.get(service, types=("HS_SITE",))
    except (ProtocolError, HandleNotFound, InvalidInput):
        return (value,)
    public = tuple(v for v in sites if v.permissions & Permission.PUBLIC_READ)
    return public or (value,)


@functools.cache
def _records_query(count: int) -> Select[tuple[str, bytes | None]]:
    """``handle IN (:n0, ..., :n<count-1>)``: one statement per count (at most
    :data:`MAX_CANDIDATES` of them), compiled once; an expanding IN was compiled again on every
    execution and cost twice as much."""
    names = [bindparam(f"n{i}", type_=handles.c.handle.type) for i in range(count)]
    return select(handles.c.handle, handles.c.wire).where(handles.c.handle.in_(names))


def locate(store: IdentifierStore, served: Collection[str], handle: str) -> Local | Referral:
    """Who answers for ``handle``: the longest served prefix covering it (Local) unless a
    longer prefix is delegated (Referral). NotResponsible when neither is known here.

    Prefix records ``0.NA/<p>`` held here are answered here; others belong with ``p``'s
    parent prefix (Handle.Net keeps derived prefix records on the parent's service).

    Cost (found by review: one query per ancestor let a 317-byte UDP request for a
    255-character prefix ``1.1.1...`` hold the event loop for 32 ms): the name is bounded by
    :func:`canonical_handle` before anything else (2,048 bytes, a prefix of 255 characters);
    only ancestors that are served here or at most :data:`MAX_DELEGATION_DEPTH` labels deep
    are considered (:func:`candidates`); those longer than the longest served one, with the
    record asked for itself, are looked up together in one indexed statement
    (:func:`held_records`), and a handle under a served prefix with no longer candidate
    costs no lookup. Only a referral through an HS_SERV value reads one more handle (its
    service handle)."""
    name, prefix = canonical_handle(handle)
    own: list[str] = []
    if prefix == GLOBAL_PREFIX:
        own = [name]  # the record itself: answered here when held
        found_in = candidates(prefix_key(name.partition("/")[2]), served, proper=True)
    else:
        found_in = candidates(prefix, served)
    longer: list[str] = []  # prefixes longer than the longest served one: maybe delegated
    local: str | None = None
    for candidate in found_in:
        if candidate in served:
            local = candidate
            break
        longer.append(candidate)
    # Canonical prefix keys are ASCII upper-case already: 0.NA/<key> is the record's name.
    records = [f"{GLOBAL_PREFIX}/{p}" for p in longer]
    found = held_records(store, own + records)
    if own and name in found:
        return Local(GLOBAL_PREFIX)
    for candidate, record in zip(longer, records, strict=True):
        if record in found:
            referral = _referral(store, candidate, found[record])
            if referral is not None:
                return referral
    if local is not None:
        return Local(local)
    raise NotResponsible(f"no prefix of {name} is served or delegated here")


def candidates(prefix: str, served: Collection[str], *, proper: bool = False) -> list[str]:
    """The ancestors of ``prefix`` (itself first unless ``proper``) that may answer for a
    handle under it, longest first: those served here, and those of at most
    :data:`MAX_DELEGATION_DEPTH` labels (which may be delegated). At most that many plus the
    number of served prefixes, whatever the depth of ``prefix`` (up to 128 labels)."""
    labels = prefix.split(".")
    top = len(labels) - 1 if proper else len(labels)
    depths = set(range(1, min(top, MAX_DELEGATION_DEPTH) + 1))
    depths.update(d for d in _served_depths(served) if d <= top)
    return [".".join(labels[:d]) for d in sorted(depths, reverse=True)]


def _served_depths(served: Collection[str]) -> frozenset[int]:
    """How many labels the served prefixes have (computed once per served set)."""
    if isinstance(served, frozenset):
        return _frozen_depths(served)
    return frozenset(p.count(".") + 1 for p in served)


@functools.lru_cache(maxsize=16)
def _frozen_depths(served: frozenset[str]) -> frozenset[int]:
    return frozenset(p.count(".") + 1 for p in served)
