"""Checks, filters and table rows for handle values; pure functions, no database.

Filters follow hdllib's ``Util.filterValues`` (RFC 3652 2.2.3): with no index and no type
asked for, every value matches; otherwise a value matches when its index is in the index list
*or* its type matches an entry of the type list. Types compare ASCII case-insensitively; an
entry ending in '.' names a type family (``URL.`` matches ``URL``, ``url.us`` and ``URL.JP``),
any other entry matches exactly that type (``URL`` does not match ``URL.US``).

Types have one canonical form on the way in (:func:`canonical_value`, applied by
:func:`check_values`, which every write of the service and the store passes through): the
types of the Handle system, those starting with ``HS_`` in any case, are stored ASCII
upper-cased (``hs_admin`` -> ``HS_ADMIN``); other types are kept as sent. And secret types
(:data:`SECRET_TYPES`) are never public: public read and public write are dropped from their
permissions, whatever the client sent or left out. :func:`is_admin_value` is the one test of
"this value is an HS_ADMIN" that authorization uses.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterable, Sequence

from millnet.errors import InvalidInput, ProtocolError, StorageError
from millnet.identifiers.core.errors import InvalidValue
from millnet.identifiers.core.schema import MAX_STORED_HANDLE_BYTES, PREFIX_MAX
from millnet.protocols.handle import HandleValue, Permission, ValueReference, normalize_handle
from millnet.protocols.handle.values import read_values, write_value
from millnet.protocols.handle.wire import MAX_COUNT, U32, Reader

U32_MAX = 0xFFFFFFFF
U8_MAX = 0xFF
MAX_TYPE_BYTES = 1024
_PUBLIC_READ = int(Permission.PUBLIC_READ)  # a plain int: IntFlag operators are slow
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_ASCII_UPPER = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_HS_HEADS = frozenset({"HS", "Hs", "hS", "hs"})
ADMIN_TYPE = "HS_ADMIN"
#: Value types that hold a secret: never readable (or writable) by the public.
SECRET_TYPES = frozenset({"HS_SECKEY"})
_PUBLIC = int(Permission.PUBLIC_READ | Permission.PUBLIC_WRITE)
#: types seen to be canonical and not secret (a memo of check_values, bounded; replaced, never
#: changed in place, so threads may read it while another one adds to it)
_PLAIN_TYPES: frozenset[str] = frozenset()
_PLAIN_TYPES_MAX = 4096


def stored_forms(values: Iterable[HandleValue],
                 timestamp: int | None = None) -> tuple[bytes, bytes | None]:
    """How a handle's values are stored: ``(public, hidden)``, the public-read values and the
    others, each in index order and encoded as a resolution response lists values (u32 count,
    then each value). ``public`` is empty when no value is public, ``hidden`` None when every
    value is. ``timestamp`` replaces the values' own (values stamped as they are stored).

    The encoding is lossless (every field of a value is on the wire), so the two columns are
    the whole handle: one record per handle, as the Handle.Net server keeps them."""
    ordered = list(values)
    if any(a.index > b.index for a, b in itertools.pairwise(ordered)):
        ordered.sort(key=lambda v: v.index)
    public = bytearray(4)
    hidden: bytearray | None = None
    shown = 0
    for v in ordered:
        if v.permissions & _PUBLIC_READ:
            write_value(public, v, timestamp)
            shown += 1
        else:
            if hidden is None:
                hidden = bytearray(4)
            write_value(hidden, v, timestamp)
    if hidden is not None:
        U32.pack_into(hidden, 0, len(ordered) - shown)
    if not shown:
        return b"", None if hidden is None else bytes(hidden)
    U32.pack_into(public, 0, shown)
    return bytes(public), None if hidden is None else bytes(hidden)


def stored_values(public: bytes | None, hidden: bytes | None) -> tuple[HandleValue, ...]:
    """The values of a handle from its two stored forms (:func:`stored_forms`), in index
    order. StorageError if a form does not decode: the database was changed behind the
    store's back."""
    try:
        shown = read_values(Reader(public)) if public else ()
        if not hidden:
            return shown
        merged = shown + read_values(Reader(hidden))
    except ProtocolError as exc:
        raise StorageError(f"a stored handle record does not decode: {exc}") from None
    return tuple(sorted(merged, key=lambda v: v.index))


def canonical_handle(handle: str) -> tuple[str, str]:
    """(normalized handle, its prefix); InvalidInput (field "handle") when it cannot be stored."""
    normalized = normalize_handle(handle)
    if len(normalized.encode("utf-8")) > MAX_STORED_HANDLE_BYTES:
        raise InvalidInput(f"longer than {MAX_STORED_HANDLE_BYTES} bytes in UTF-8 (the stored "
                           "maximum)", field="handle")
    prefix = normalized.partition("/")[0]
    if len(prefix) > PREFIX_MAX:
        raise InvalidInput(f"prefix longer than {PREFIX_MAX} characters", field="handle")
    return normalized, prefix


def _utf8(text: object, field: str, limit: int | None = None) -> str:
    if not isinstance(text, str):
        raise InvalidValue(f"expected text, got {type(text).__name__}", field)
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidValue("not encodable as UTF-8", field) from None
    if limit is not None and size > limit:
        raise InvalidValue(f"longer than {limit} bytes", field)
    return text


def _uint(number: object, field: str, maximum: int, minimum: int = 0) -> None:
    if not isinstance(number, int):
        raise InvalidValue(f"expected an integer, got {type(number).__name__}", field)
    if not minimum <= number <= maximum:
        raise InvalidValue(f"{number} is outside {minimum}..{maximum}", field)


def _plainly_valid(v: HandleValue) -> bool:
    # isinstance, not type(): the defaults are IntEnum / IntFlag members.
    return (isinstance(v.index, int) and 0 < v.index <= U32_MAX
            and isinstance(v.ttl_type, int) and 0 <= v.ttl_type <= U8_MAX
            and isinstance(v.ttl, int) and 0 <= v.ttl <= U32_MAX
            and isinstance(v.timestamp, int) and 0 <= v.timestamp <= U32_MAX
            and isinstance(v.permissions, int) and 0 <= v.permissions <= U8_MAX
            and type(v.data) is bytes and v.references == ()
            and type(v.type) is str and v.type.isascii() and len(v.type) <= MAX_TYPE_BYTES
            and "\0" not in v.type)


def _plainly_valid_value(v: object) -> bool:
    return isinstance(v, HandleValue) and _plainly_valid(v)


def _none(field: str) -> tuple[HandleValue, ...]:
    raise InvalidValue("at least one value is needed", field)


def check_value(value: object, field: str) -> HandleValue:
    """``value`` if it can be stored and sent; InvalidValue naming the field otherwise.

    Index 0 is refused: in an HS_ADMIN reference it means "any index of that handle"."""
    if not isinstance(value, HandleValue):
        raise InvalidValue(f"expected a HandleValue, got {type(value).__name__}", field)
    if _plainly_valid(value):  # the common case, in one expression
        return value
    _uint(value.index, f"{field}.index", U32_MAX, minimum=1)
    _utf8(value.type, f"{field}.type", MAX_TYPE_BYTES)
    if "\0" in value.type:  # PostgreSQL text cannot hold NUL; no real type contains one
        raise InvalidValue("NUL character in type", f"{field}.type")
    if not isinstance(value.data, bytes):
        raise InvalidValue("expected bytes", f"{field}.data")
    _uint(value.ttl_type, f"{field}.ttl_type", U8_MAX)
    _uint(value.ttl, f"{field}.ttl", U32_MAX)
    _uint(value.timestamp, f"{field}.timestamp", U32_MAX)
    _uint(value.permissions, f"{field}.permissions", U8_MAX)
    if not isinstance(value.references, tuple):
        raise InvalidValue("expected a tuple", f"{field}.references")
    if len(value.references) > MAX_COUNT:
        raise InvalidValue(f"more than {MAX_COUNT} references", f"{field}.references")
    for i, ref in enumerate(value.references):
        if not isinstance(ref, ValueReference):
            raise InvalidValue("expected a ValueReference", f"{field}.references[{i}]")
        _utf8(ref.handle, f"{field}.references[{i}].handle")
        _uint(ref.index, f"{field}.references[{i}].index", U32_MAX)
    return value


def canonical_type(value_type: str) -> str:
    """``value_type`` as stored: ASCII upper-cased when it starts with ``HS_`` in any case.

    ASCII only, like :func:`type_matches`: ``str.upper`` would also turn a dotless i or a long
    s into ASCII letters, and so make a type that no filter calls HS_ADMIN look like one."""
    if value_type[2:3] == "_" and value_type[:2] in _HS_HEADS:
        return value_type.translate(_ASCII_UPPER)
    return value_type


def canonical_value(value: HandleValue) -> HandleValue:
    """``value`` with its canonical type, and without public rights if it is a secret;
    ``value`` itself when nothing changes."""
    value_type = canonical_type(value.type)
    public = value.permissions & _PUBLIC if value_type in SECRET_TYPES else 0
    if value_type == value.type and not public:
        return value
    return dataclasses.replace(value, type=value_type, permissions=value.permissions & ~public)


def is_admin_value(value: HandleValue) -> bool:
    """Whether ``value`` is an HS_ADMIN: for every guard and every admin lookup (the same
    answer as a type filter ``HS_ADMIN`` gives, also for values stored in another case)."""
    return canonical_type(value.type) == ADMIN_TYPE


def check_values(values: Iterable[HandleValue], field: str = "values",
                 *, allow_empty: bool = False) -> tuple[HandleValue, ...]:
    """Checked values with distinct indexes (a handle holds at most one value per index), in
    canonical form (:func:`canonical_value`)."""
    global _PLAIN_TYPES  # noqa: PLW0603 - a memo, replaced whole (see its comment)
    checked = _checked(values, field, allow_empty)
    types = {v.type for v in checked}
    if types <= _PLAIN_TYPES:  # the common case, without a call per value
        return checked
    if SECRET_TYPES.isdisjoint(types) and all(canonical_type(t) == t for t in types):
        if len(_PLAIN_TYPES) < _PLAIN_TYPES_MAX:
            _PLAIN_TYPES = _PLAIN_TYPES | types
        return checked
    return tuple(map(canonical_value, checked))


def _checked(values: Iterable[HandleValue], field: str,
             allow_empty: bool) -> tuple[HandleValue, ...]:
    checked = tuple(values)
    if len(checked) > MAX_COUNT:  # what a response (and the stored record) can carry
        raise InvalidValue(f"{len(checked)} values; a handle holds at most {MAX_COUNT}", field)
    if not all(map(_plainly_valid_value, checked)):  # else find and name the bad one
        checked = tuple(check_value(v, f"{field}[{i}]") for i, v in enumerate(checked))
    elif len({v.index for v in checked}) == len(checked):
        return checked if checked or allow_empty else _none(field)
    if not checked and not allow_empty:
        raise InvalidValue("at least one value is needed", field)
    seen: set[int] = set()
    for i, value in enumerate(checked):
        if value.index in seen:
            raise InvalidValue(f"index {value.index} appears twice", f"{field}[{i}].index")
        seen.add(value.index)
    return checked


def check_indexes(indexes: Iterable[int], field: str = "indexes") -> tuple[int, ...]:
    checked = tuple(indexes)
    for i, index in enumerate(checked):
        _uint(index, f"{field}[{i}]", U32_MAX)
    return checked


# ----------------------------------------------------------------------------- filters

def _fold(text: str) -> str:
    return text.translate(_ASCII_LOWER)


def type_matches(value_type: str, wanted: Sequence[str]) -> bool:
    """hdllib ``isParentTypeInArray``: exact types, or families given with a trailing '.'."""
    if not value_type:
        return False
    folded = _fold(value_type)
    for entry in wanted:
        query = _fold(entry)
        if query.endswith("."):
            if folded.startswith(query) or folded == query[:-1]:
                return True
        elif folded == query:
            return True
    return False


def select_values(values: Sequence[HandleValue], indexes: Sequence[int] = (),
                  types: Sequence[str] = ()) -> tuple[HandleValue, ...]:
    """The values a resolution for ``indexes`` / ``types`` returns (index OR type match)."""
    if not indexes and not types:
        return tuple(values)
    wanted = frozenset(indexes)
    return tuple(v for v in values
                 if v.index in wanted or (types and type_matches(v.type, types)))
