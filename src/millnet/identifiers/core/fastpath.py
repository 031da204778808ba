"""The UDP resolution fast path: plain public resolutions answered straight from SQLite.

Most native traffic is one request shape: RESOLUTION of one handle, no credential, no
certification, one datagram; with no filter for an ordinary handle, and with a type filter
for a prefix record (``0.NA/88.100.5``: every Handle.Net client asks for its HS_SITE,
HS_SITE.6, HS_SERV and HS_NAMESPACE before anything else). For that shape, the general path
(decode into dataclasses, the service, SQLAlchemy, encode) costs ~200 µs; this path parses the
few fields it needs with :mod:`struct`, reads the handle's stored public wire form
(``handles.wire``, kept in step by every write) with one prepared statement on a read-only
:mod:`sqlite3` connection to the node's database, and writes the response bytes around it:
the same bytes :func:`~millnet.protocols.handle.make_response` and the codec would produce
(a test holds the two paths to byte equality).

Filters (indexes, types, and id-pointer-sdk's empty "auth bytes" trailer) select from the
stored values as :func:`~.values.select_values` does; a selection is remembered per (filter,
name) with the stored form it came from, so a repeated prefix lookup costs what an unfiltered
one does.

Anything else returns None and takes the general path, which then also produces every error:
other opcodes or flags (CT, ENC), credentials, fragments, versions the codec refuses,
handles that are invalid, not found, without public (or selected) values, or whose prefix is
neither exactly one this node serves nor ``0.NA`` with the record held here (a handle under a
delegated or a parent's prefix needs the referral logic; a prefix record held here is always
answered here, :func:`~.delegation.locate`).

Consistency: there is no cache of answers here; every answer reads the committed database, so
a write through any path is visible to the next resolution (WAL readers see the last commit).
A remembered selection is used only while the stored form is the one it was made from.
"""

from __future__ import annotations

import hashlib
import sqlite3
import struct
from collections.abc import Callable, Collection
from pathlib import Path

from millnet.errors import InvalidInput
from millnet.identifiers.core.delegation import GLOBAL_PREFIX
from millnet.identifiers.core.schema import PREFIX_MAX
from millnet.identifiers.core.values import canonical_handle, type_matches
from millnet.protocols.handle import HandleValue
from millnet.protocols.handle.constants import (
    DEFAULT_EXPIRATION_S,
    ECHOED_FLAGS,
    MAX_VERSION,
    MIN_VERSION,
    OpFlag,
)
from millnet.protocols.handle.replies import digest_algorithm
from millnet.protocols.handle.values import read_values
from millnet.protocols.handle.wire import Reader

_ENVELOPE = struct.Struct(">BBBBIIII")
_HEADER = struct.Struct(">IIIHBBII")
_U32 = struct.Struct(">I")
_ENVELOPE_SIZE, _HEADER_SIZE = _ENVELOPE.size, _HEADER.size
_BODY_START = _ENVELOPE_SIZE + _HEADER_SIZE
_EMPTY_FILTERS = b"\0" * 8
_NO_CREDENTIAL = b"\0" * 4
_SLOW_FLAGS = int(OpFlag.CT | OpFlag.ENC)
_RD, _ECHOED = int(OpFlag.RD), int(ECHOED_FLAGS)
_HASHES = {1: hashlib.md5, 2: hashlib.sha1, 3: hashlib.sha256}
_FAST_VERSION = (2, 1)  # answers in older versions carry a legacy digest
MMAP_BYTES = 1 << 30
_WIRE = "SELECT wire FROM handles WHERE handle = ?"
#: id-pointer-sdk's resolution requests end with an empty octet string ("auth bytes")
_NO_AUTH_BYTES = b"\0" * 4
_RECORD = f"{GLOBAL_PREFIX}/".encode()
_VALUE_HEAD = struct.Struct(">IIBIBI")  # index, timestamp, TTL type, TTL, permissions, type
#: filters longer than this (indexes or types) take the general path
MAX_FAST_FILTERS = 32
#: remembered selections (filter, name) -> (stored form, answer); stored forms above
#: MEMO_WIRE_MAX octets are selected every time
MEMO_SIZE, MEMO_WIRE_MAX = 4096, 4096


class FastResolver:
    """``resolver(datagram) -> response bytes | None`` over the node's SQLite database."""

    def __init__(self, database: Path, served: Collection[str],
                 clock: Callable[[], float] | None = None) -> None:
        import time

        self._db = sqlite3.connect(f"file:{database}?mode=ro", uri=True,
                                   check_same_thread=False, cached_statements=16)
        # Pages read through the OS page cache mapping instead of copied into SQLite's cache.
        self._db.execute(f"PRAGMA mmap_size={MMAP_BYTES}")
        self._cursor = self._db.cursor()  # reused: one less object per request
        self._served = frozenset(served)
        self._clock = clock or time.time
        self._memo: dict[tuple[bytes, bytes], tuple[bytes, bytes | None]] = {}
        self.answered = 0

    def close(self) -> None:
        self._db.close()

    def __call__(self, data: bytes) -> bytes | None:
        size = len(data)
        if size < _BODY_START + 12:
            return None
        major, minor, eflags, sminor, session, request_id, _, length = \
            _ENVELOPE.unpack_from(data)
        if major != 2 or eflags & 0xE0 or length != size - _ENVELOPE_SIZE \
                or (major, minor) < MIN_VERSION:
            return None
        opcode, code, opflags, _, recursion, _, _, body_length = \
            _HEADER.unpack_from(data, _ENVELOPE_SIZE)
        body_end = _BODY_START + body_length
        if opcode != 1 or code or opflags & _SLOW_FLAGS:
            return None
        if body_end != size and (body_end + 4 != size or data[body_end:] != _NO_CREDENTIAL):
            return None  # anything but an empty credential (or none) after the body
        (handle_length,) = _U32.unpack_from(data, _BODY_START)
        end = _BODY_START + 4 + handle_length
        if end + 8 > body_end:
            return None
        raw = data[_BODY_START + 4:end]
        values = self._values(raw)
        if values is None:
            return None
        filters = data[end:body_end]
        if filters != _EMPTY_FILTERS and filters != _EMPTY_FILTERS + _NO_AUTH_BYTES:
            values = self._selected(filters, raw, values)
            if values is None:
                return None
        # The answer: make_response's version, flags, digest and expiration, then the body.
        suggested = (eflags & 0x03, sminor) if eflags & 0x03 else (major, minor)
        version = min(suggested, MAX_VERSION)
        if version < _FAST_VERSION:
            return None  # a 1.x answer (legacy digest): the general path (found by fuzzing)
        flags = opflags & _ECHOED
        out = bytearray(_BODY_START)
        if opflags & _RD:
            algorithm = digest_algorithm(version)
            out.append(algorithm)
            out += _HASHES[algorithm](data[_ENVELOPE_SIZE:body_end],
                                      usedforsecurity=False).digest()
            flags |= _RD
        out += data[_BODY_START:end]  # the handle as asked (length + octets)
        out += values
        body_length = len(out) - _BODY_START
        out += _NO_CREDENTIAL
        expiration = (int(self._clock()) + DEFAULT_EXPIRATION_S) & 0xFFFFFFFF
        _HEADER.pack_into(out, _ENVELOPE_SIZE, 1, 1, flags, 0, recursion, 0, expiration,
                          body_length)
        _ENVELOPE.pack_into(out, 0, version[0], version[1], MAX_VERSION[0], MAX_VERSION[1],
                            session, request_id, 0, len(out) - _ENVELOPE_SIZE)
        self.answered += 1
        return bytes(out)

    def public_values(self, name: str) -> tuple[HandleValue, ...] | None:
        """The public values of ``name`` (the REST API's hot path); None where the general
        path must answer (not found, nothing public, not served exactly here)."""
        wire = self._wire(name)
        return read_values(Reader(wire)) if wire is not None else None

    def _values(self, raw: bytes) -> bytes | None:
        """The encoded public values of the handle named by ``raw``; None for the slow path."""
        try:
            name = raw.decode("utf-8")
        except UnicodeDecodeError:
            return None
        if raw[:5] == _RECORD and raw == raw.upper():
            # A prefix record as hdllib sends it (upper-cased whole): canonical already, so
            # the lookup needs no normalization (an invalid name matches no stored row).
            return self._lookup(name) if _record_name(name) else None
        return self._wire(name, records=True)

    def _selected(self, filters: bytes, name: bytes, wire: bytes) -> bytes | None:
        """The values of ``wire`` the request's ``filters`` (index list, type list, optional
        empty auth bytes) select, encoded as a value list; None for the general path.
        Remembered per (filters, name) with the stored form it was made from: a write
        changes the stored form, and the selection is made again."""
        key = (filters, name)
        memo = self._memo
        known = memo.get(key)
        if known is not None and known[0] == wire:
            return known[1]
        wanted = parse_filters(filters)
        chosen = select_wire(wire, *wanted) if wanted is not None else None
        if len(wire) <= MEMO_WIRE_MAX:
            if len(memo) >= MEMO_SIZE:
                memo.clear()  # crude but bounded: refilled by the next requests
            memo[key] = (wire, chosen)
        return chosen

    def _wire(self, name: str, *, records: bool = False) -> bytes | None:
        # Stored names are canonical, so a name that is already canonical needs no
        # normalization (and one that is invalid simply matches nothing: the general path
        # then says why). Only a prefix in another case is normalized here. With
        # ``records``, prefix records (0.NA/...) held here are answered too.
        if name.partition("/")[0] not in self._served:
            try:
                name, prefix = canonical_handle(name)
            except InvalidInput:
                return None
            if prefix not in self._served and not (records and prefix == GLOBAL_PREFIX
                                                   and _record_name(name)):
                return None
        return self._lookup(name)

    def _lookup(self, name: str) -> bytes | None:
        """The stored public form of the canonical ``name``; None when missing or empty."""
        try:
            found = self._cursor.execute(_WIRE, (name,)).fetchone()
            if found is None:
                return None  # not found: the general path answers HANDLE_NOT_FOUND
            wire: bytes | None = found[0]
        except sqlite3.Error:
            return None  # e.g. a schema not migrated yet: the general path reports it
        return wire or None  # empty: no public value, VALUE_NOT_FOUND from the general path


def _record_name(name: str) -> bool:
    """``0.NA/<p>`` whose ``p`` :func:`~.delegation.locate` accepts as a prefix (it refuses
    the name otherwise, before looking the record up)."""
    label = name[len(GLOBAL_PREFIX) + 1:].partition("/")[0]
    return 0 < len(label) <= PREFIX_MAX


def parse_filters(filters: bytes) -> tuple[frozenset[int], tuple[str, ...]] | None:
    """(indexes, types) of a resolution request's body after the handle, which may end with
    an empty auth-bytes string; None when it is anything else or longer than
    :data:`MAX_FAST_FILTERS` (the codec then judges it)."""
    try:
        (count,) = _U32.unpack_from(filters, 0)
        if count > MAX_FAST_FILTERS:
            return None
        indexes = frozenset(struct.unpack_from(f">{count}I", filters, 4))
        at = 4 + 4 * count
        (count,) = _U32.unpack_from(filters, at)
        if count > MAX_FAST_FILTERS:
            return None
        at += 4
        types = []
        for _ in range(count):
            (length,) = _U32.unpack_from(filters, at)
            at += 4
            if at + length > len(filters):
                return None
            types.append(filters[at:at + length].decode("utf-8"))
            at += length
    except (struct.error, UnicodeDecodeError):
        return None
    if filters[at:] not in (b"", _NO_AUTH_BYTES):
        return None
    return indexes, tuple(types)


def select_wire(wire: bytes, indexes: frozenset[int], types: tuple[str, ...]) -> bytes | None:
    """The values of a stored value list (``handles.wire``) that ``indexes`` OR ``types``
    select (:func:`~.values.select_values`), as a value list; None when none is selected.
    Each value is copied as stored, never decoded and encoded again."""
    if not indexes and not types:
        return wire
    picked: list[bytes] = []
    try:
        (count,) = _U32.unpack_from(wire, 0)
        at = 4
        for _ in range(count):
            start = at
            index, _, _, _, _, length = _VALUE_HEAD.unpack_from(wire, at)
            at += _VALUE_HEAD.size
            value_type = wire[at:at + length]
            at += length
            at += 4 + _U32.unpack_from(wire, at)[0]  # data
            (references,) = _U32.unpack_from(wire, at)
            at += 4
            for _ in range(references):
                at += 8 + _U32.unpack_from(wire, at)[0]  # handle, index
            if index in indexes or (types and type_matches(value_type.decode("utf-8"), types)):
                picked.append(wire[start:at])
    except (struct.error, UnicodeDecodeError):
        return None  # not a stored form this reads: the general path reports it
    return _U32.pack(len(picked)) + b"".join(picked) if picked else None


def sqlite_path(url: str) -> Path | None:
    """The database file of a ``sqlite:///path`` URL; None for other databases (no fast
    path) and for in-memory SQLite."""
    prefix = "sqlite:///"
    if not url.startswith(prefix) or url[len(prefix):] in ("", ":memory:"):
        return None
    return Path(url[len(prefix):])
