"""Handle values on the wire (RFC 3652 2.2.3.2) and the data layouts of typed values.

A value's ``data`` stays opaque bytes in :class:`HandleValue`; the typed layouts (HS_ADMIN,
HS_VLIST, HS_SERV, HS_PUBKEY) have their own encode/decode pairs, applied only by code that
needs to look inside. HS_SECKEY data is an opaque secret (hdllib may store it SHA-1 hashed and
hex-encoded): no layout. HS_SITE lives in :mod:`.site`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from millnet.errors import ProtocolError

from .constants import DEFAULT_PERMISSIONS, TTLType
from .wire import U32, Reader, fail, put_octets, put_u16, put_u32, put_utf8

# index u32, timestamp u32, ttl type u8, ttl u32, permissions u8
_VALUE_FIXED = struct.Struct(">IIBIB")
#: public for the UDP fast path, which writes values straight from database rows
VALUE_FIXED = _VALUE_FIXED
#: fixed part + type length + data length + reference count
MIN_VALUE_SIZE = _VALUE_FIXED.size + 12


@dataclass(frozen=True, slots=True)
class ValueReference:
    """A (handle, index) pair: value references and HS_VLIST entries."""

    handle: str
    index: int


@dataclass(frozen=True, slots=True)
class HandleValue:
    """One value of a handle. ``timestamp`` is in seconds (u32 on the wire, as hdllib sends;
    RFC 3651's data model describes it as 8 octets but the protocol carries 4)."""

    index: int
    type: str
    data: bytes = b""
    ttl_type: int = int(TTLType.RELATIVE)
    ttl: int = 86400
    timestamp: int = 0
    permissions: int = DEFAULT_PERMISSIONS
    references: tuple[ValueReference, ...] = ()


def read_references(r: Reader, field: str) -> tuple[ValueReference, ...]:
    n = r.count(field, 8)
    if n == 0:  # the common case, without a try block and a list
        return ()
    i = 0
    try:
        refs = []
        for i in range(n):  # noqa: B007 - i names the failing item below
            refs.append(ValueReference(r.utf8("handle"), r.u32("index")))
        return tuple(refs)
    except ProtocolError as exc:
        raise ProtocolError(f"{field}[{i}].{exc}") from None


def write_references(buf: bytearray, refs: tuple[ValueReference, ...]) -> None:
    buf += U32.pack(len(refs))
    for ref in refs:
        put_utf8(buf, ref.handle)
        buf += U32.pack(ref.index)


def read_value(r: Reader) -> HandleValue:
    index, timestamp, ttl_type, ttl, permissions = r.unpack(_VALUE_FIXED, "fixed fields")
    type_ = r.utf8("type")
    data = r.octets("data")
    refs = read_references(r, "references")
    return HandleValue(index, type_, data, ttl_type, ttl, timestamp, permissions, refs)


def write_value(buf: bytearray, v: HandleValue, timestamp: int | None = None) -> None:
    """``v`` on the wire; ``timestamp`` replaces its own (a store stamping new values)."""
    # Inlined UTF8-String and octet writes: this runs once per value of every response.
    type_ = v.type.encode("utf-8")
    buf += _VALUE_FIXED.pack(v.index, v.timestamp if timestamp is None else timestamp,
                             v.ttl_type, v.ttl, v.permissions)
    buf += U32.pack(len(type_))
    buf += type_
    buf += U32.pack(len(v.data))
    buf += v.data
    if v.references:
        write_references(buf, v.references)
    else:
        buf += b"\0\0\0\0"


def read_values(r: Reader, field: str = "values") -> tuple[HandleValue, ...]:
    n = r.count(field, MIN_VALUE_SIZE)
    i = 0
    try:
        values = []
        for i in range(n):  # noqa: B007 - i names the failing item below
            values.append(read_value(r))
        return tuple(values)
    except ProtocolError as exc:
        raise ProtocolError(f"{field}[{i}].{exc}") from None


def write_values(buf: bytearray, values: tuple[HandleValue, ...]) -> None:
    buf += U32.pack(len(values))
    for v in values:
        write_value(buf, v)


def encode_value(value: HandleValue) -> bytes:
    buf = bytearray()
    write_value(buf, value)
    return bytes(buf)


def decode_value(data: bytes) -> HandleValue:
    r = Reader(data)
    value = read_value(r)
    r.done("value")
    return value


# ----------------------------------------------------------------------------- HS_ADMIN

@dataclass(frozen=True, slots=True)
class AdminRecord:
    """HS_ADMIN data: who administers the handle (``handle``:``index``) and what they may do."""

    permissions: int
    handle: str
    index: int


def encode_admin(record: AdminRecord) -> bytes:
    buf = bytearray()
    put_u16(buf, record.permissions)
    put_utf8(buf, record.handle)
    put_u32(buf, record.index)
    return bytes(buf)


def decode_admin(data: bytes) -> AdminRecord:
    r = Reader(data)
    try:
        record = AdminRecord(r.u16("permissions"), r.utf8("handle"), r.u32("index"))
    except ProtocolError as exc:
        raise ProtocolError(f"HS_ADMIN.{exc}") from None
    # hdllib still reads records of old servers that wrote 2 padding octets at the end.
    if r.remaining() not in (0, 2):
        raise fail("HS_ADMIN", f"{r.remaining()} unexpected trailing bytes")
    return record


# ----------------------------------------------------------------------------- HS_VLIST

def encode_vlist(refs: tuple[ValueReference, ...]) -> bytes:
    buf = bytearray()
    write_references(buf, refs)
    return bytes(buf)


def decode_vlist(data: bytes) -> tuple[ValueReference, ...]:
    r = Reader(data)
    refs = read_references(r, "HS_VLIST")
    r.done("HS_VLIST")
    return refs


# ----------------------------------------------------------------------------- HS_SERV

def encode_serv(service_handle: str) -> bytes:
    """HS_SERV data is the service handle's UTF-8 bytes, without a length prefix."""
    return service_handle.encode("utf-8")


def decode_serv(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise fail("HS_SERV", f"invalid UTF-8 at byte {exc.start}") from None


# ----------------------------------------------------------------------------- HS_PUBKEY

#: Key types whose body is a fixed number of length-prefixed big integers (hdllib
#: ``Util.getBytesFromPublicKey``; SM2/SM9 from id-pointer-sdk): the order is the wire order.
KEY_PARTS: dict[str, tuple[str, ...]] = {
    "DSA_PUB_KEY": ("q", "p", "g", "y"),
    "RSA_PUB_KEY": ("exponent", "modulus"),
    "DH_PUB_KEY": ("y", "p", "g"),
    "SM2_PUB_KEY": ("x509_pem",),
    "SM9_PUB_KEY": ("id",),
}


@dataclass(frozen=True, slots=True)
class PublicKeyRecord:
    """HS_PUBKEY data: key type, 2 reserved flag octets, then the parts of that key type.

    A key type this codec does not know keeps its body in ``opaque``."""

    key_type: str
    parts: tuple[bytes, ...] = ()
    flags: int = 0
    opaque: bytes = b""

    def integer(self, name: str) -> int:
        """A named part as an integer (parts are Java ``BigInteger.toByteArray`` output)."""
        idx = KEY_PARTS[self.key_type].index(name)
        return int.from_bytes(self.parts[idx], "big", signed=True)


def java_bigint(value: int) -> bytes:
    """The two's-complement minimal big-endian form Java's ``BigInteger.toByteArray`` gives."""
    return value.to_bytes(value.bit_length() // 8 + 1, "big", signed=True)


def rsa_public_key(exponent: int, modulus: int) -> PublicKeyRecord:
    return PublicKeyRecord("RSA_PUB_KEY", (java_bigint(exponent), java_bigint(modulus)))


def encode_pubkey(key: PublicKeyRecord) -> bytes:
    expected = KEY_PARTS.get(key.key_type)
    if expected is not None and (len(key.parts) != len(expected) or key.opaque):
        raise ValueError(f"{key.key_type} needs parts {expected} and no opaque body")
    buf = bytearray()
    put_utf8(buf, key.key_type)
    put_u16(buf, key.flags)
    for part in key.parts:
        put_octets(buf, part)
    buf += key.opaque
    return bytes(buf)


def decode_pubkey(data: bytes) -> PublicKeyRecord:
    r = Reader(data)
    try:
        key_type = r.utf8("key_type")
        flags = r.u16("flags")
        names = KEY_PARTS.get(key_type)
        if names is None:
            return PublicKeyRecord(key_type, (), flags, r.rest())
        parts = tuple(r.octets(name) for name in names)
        r.done("key")
    except ProtocolError as exc:
        raise ProtocolError(f"HS_PUBKEY.{exc}") from None
    return PublicKeyRecord(key_type, parts, flags)


__all__ = [
    "AdminRecord",
    "HandleValue",
    "PublicKeyRecord",
    "ValueReference",
    "decode_admin",
    "decode_pubkey",
    "decode_serv",
    "decode_value",
    "decode_vlist",
    "encode_admin",
    "encode_pubkey",
    "encode_serv",
    "encode_value",
    "encode_vlist",
    "java_bigint",
    "rsa_public_key",
]
