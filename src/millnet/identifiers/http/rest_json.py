"""Handle values as JSON, the way the Handle.Net HTTP JSON API writes and reads them.

Checked against Handle.Net's own ``GsonUtility`` (as vendored in ``teleinfo-dev/id-pointer-sdk``)
and its ``HandleJsonRestApiServlet``; nothing copied. A value is::

    {"index": 1, "type": "URL", "data": {"format": "string", "value": "https://..."},
     "ttl": 86400, "timestamp": "2026-01-01T00:00:00Z"}

* ``data`` is written as ``admin`` (HS_ADMIN), ``vlist`` (HS_VLIST), ``site`` (HS_SITE,
  HS_SITE.PREFIX, HS_NA_DELEGATE), ``key`` (HS_PUBKEY with an RSA or DSA key, JWK-style
  base64url integers), else ``string`` when the octets are UTF-8 text without control
  characters (tab, CR and LF allowed), else ``base64``. A typed layout that does not decode
  falls through to string/base64, as Handle.Net does. ``hex`` is accepted, never written.
* Read side: ``data`` may also be a bare JSON string (pyhandle sends ``"data": "https://..."``);
  admin ``index`` may be a numeric string (pyhandle sends ``"200"``); admin ``permissions`` is
  a 0/1 string with the lowest bit rightmost (``"011111110011"``), ``"*"``, a boolean, an
  integer or an array of truthy flags (element 0 = bit 0).
* ``permissions`` of the value itself (adminRead adminWrite publicRead publicWrite, e.g.
  ``"1110"``) is written only when it differs from that default; a shorter string sets the
  rightmost bits only. ``ttl`` is a number (relative) or an ISO time (absolute).
* ``timestamp`` is written when non-zero and ignored on input (the service stamps values).
* Then, as for values of every path (``values.canonical_value``): an ``HS_`` type in any
  case is stored upper-cased (``hs_admin`` is an HS_ADMIN and needs the admin rights), and a
  secret (``HS_SECKEY``) never keeps public read or write: sent without ``permissions`` it is
  stored as ``1100``, readable by admins only.

Every input problem raises :class:`InvalidValue` naming the JSON path, e.g.
``values[2].data.value.permissions``.
"""

from __future__ import annotations

import base64
import binascii
import re
import time
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import msgspec

from millnet.errors import ProtocolError
from millnet.identifiers.core.errors import InvalidValue
from millnet.identifiers.core.values import canonical_type
from millnet.model.limits import ascii_digits
from millnet.protocols.handle import (
    AdminRecord,
    HandleValue,
    PublicKeyRecord,
    ServerRecord,
    ServiceInterface,
    SiteInfo,
    TTLType,
    ValueReference,
    address_octets,
    decode_admin,
    decode_pubkey,
    decode_site,
    decode_vlist,
    encode_admin,
    encode_pubkey,
    encode_site,
    encode_vlist,
    java_bigint,
)

DEFAULT_VALUE_PERMISSIONS = 0b1110  # admin read, admin write, public read
_ALL_ADMIN = 0x0FFF
_BINARY = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_PROTOCOLS = ("UDP", "TCP", "HTTP", "HTTPS")
_SITE_TYPES = frozenset({"HS_SITE", "HS_SITE.PREFIX", "HS_NA_DELEGATE"})
_KEY_FIELDS = {"RSA_PUB_KEY": ("RSA", ("e", "n")), "DSA_PUB_KEY": ("DSA", ("q", "p", "g", "y"))}
_KTY = {kty: (key_type, fields) for key_type, (kty, fields) in _KEY_FIELDS.items()}


class JsonData(msgspec.Struct):
    format: str
    value: Any


class JsonValue(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One value as written (field order as Handle.Net writes them)."""

    index: int
    type: str
    data: JsonData
    permissions: str | None = None
    ttl: int | str
    timestamp: str | None = None
    references: list[dict[str, Any]] | None = None


# ----------------------------------------------------------------------------- writing

@lru_cache(maxsize=4096)
def iso_time(seconds: int) -> str:
    """``2026-01-01T00:00:00Z`` (Handle.Net's ISO 8601 without milliseconds)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def _b64url(octets: bytes) -> str:
    stripped = octets.lstrip(b"\0") or b"\0"  # JWK integers are unsigned, minimal
    return base64.urlsafe_b64encode(stripped).rstrip(b"=").decode("ascii")


def plain_data(data: bytes) -> JsonData:
    """``string`` for text, else ``base64`` (hdllib ``Util.looksLikeBinary``)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return JsonData("base64", base64.b64encode(data).decode("ascii"))
    if _BINARY.search(text):
        return JsonData("base64", base64.b64encode(data).decode("ascii"))
    return JsonData("string", text)


def _admin_json(record: AdminRecord) -> dict[str, Any]:
    return {"handle": record.handle, "index": record.index,
            "permissions": format(record.permissions & _ALL_ADMIN, "012b")}


def _key_json(data: bytes) -> dict[str, Any] | None:
    key = decode_pubkey(data)
    known = _KEY_FIELDS.get(key.key_type)
    if known is None:
        return None
    kty, fields = known
    out: dict[str, Any] = {"kty": kty}
    # parts are in wire order: RSA exponent, modulus; DSA q, p, g, y
    for name, part in zip(fields, key.parts, strict=True):
        out[name] = _b64url(part)
    return out


def _site_json(site: SiteInfo) -> dict[str, Any]:
    out: dict[str, Any] = {
        "version": site.data_format_version,
        "protocolVersion": f"{site.protocol_major}.{site.protocol_minor}",
        "serialNumber": site.serial_number, "primarySite": site.primary,
        "multiPrimary": site.multi_primary,
    }
    if site.hash_option != 2:  # hdllib HASH_TYPE_BY_ALL is the default, left out
        out["hashOption"] = site.hash_option
    if site.hash_filter:
        out["hashFilter"] = site.hash_filter.decode("utf-8", "replace")
    out["attributes"] = [{"name": n, "value": v} for n, v in site.attributes]
    out["servers"] = [_server_json(s) for s in site.servers]
    return out


def _server_json(server: ServerRecord) -> dict[str, Any]:
    try:
        jwk = _key_json(server.public_key) if server.public_key else None
    except ProtocolError:
        jwk = None
    key = ({"format": "key", "value": jwk} if jwk is not None
           else {"format": "base64", "value": base64.b64encode(server.public_key).decode()})
    return {"serverId": server.server_id, "address": str(server.ip), "publicKey": key,
            "interfaces": [{"query": bool(i.service_type & 2), "admin": bool(i.service_type & 1),
                            "protocol": (_PROTOCOLS[i.protocol] if i.protocol < 4
                                         else i.protocol), "port": i.port}
                           for i in server.interfaces]}


def value_data(value: HandleValue) -> JsonData:
    kind = canonical_type(value.type)  # ASCII only: as the store and the guards see it
    try:
        if kind == "HS_ADMIN":
            admin = decode_admin(value.data)
            if not admin.permissions & ~_ALL_ADMIN:  # else not representable: octets
                return JsonData("admin", _admin_json(admin))
        elif kind == "HS_VLIST":
            return JsonData("vlist", [{"handle": r.handle, "index": r.index}
                                      for r in decode_vlist(value.data)])
        elif kind in _SITE_TYPES:
            site = _site_json(decode_site(value.data))
            # Sites with fields the JSON form cannot carry (a binary hash filter, unknown
            # interface bits) are shown as their octets, so a GET-then-PUT never alters them.
            if decode_site(_site(site, "data")) == decode_site(value.data):
                return JsonData("site", site)
        if kind == "HS_PUBKEY":
            key = _key_json(value.data)
            if key is not None:
                return JsonData("key", key)
    except (ProtocolError, InvalidValue):
        pass  # an undecodable typed value is shown as its octets
    return plain_data(value.data)


def value_json(value: HandleValue) -> JsonValue:
    perms = value.permissions & 0xF
    return JsonValue(
        index=value.index, type=value.type, data=value_data(value),
        permissions=None if perms == DEFAULT_VALUE_PERMISSIONS else format(perms, "04b"),
        ttl=value.ttl if value.ttl_type == TTLType.RELATIVE else iso_time(value.ttl),
        timestamp=iso_time(value.timestamp) if value.timestamp else None,
        references=[{"handle": r.handle, "index": r.index} for r in value.references] or None)


# ----------------------------------------------------------------------------- reading

def _fail(field: str, message: str) -> InvalidValue:
    return InvalidValue(message, field)


def _int(raw: object, field: str, maximum: int = 0xFFFFFFFF) -> int:
    if isinstance(raw, bool):
        raise _fail(field, "expected an integer, got a boolean")
    if isinstance(raw, str) and ascii_digits(raw.strip(), 20):
        raw = int(raw.strip())
    if not isinstance(raw, int):
        raise _fail(field, f"expected an integer, got {type(raw).__name__}")
    if not 0 <= raw <= maximum:
        raise _fail(field, f"{raw} is outside 0..{maximum}")
    return raw


def _str(raw: object, field: str) -> str:
    if not isinstance(raw, str):
        raise _fail(field, f"expected a string, got {type(raw).__name__}")
    return raw


def _obj(raw: object, field: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise _fail(field, f"expected an object, got {type(raw).__name__}")
    return raw


def _list(raw: object, field: str) -> list[Any]:
    if not isinstance(raw, list):
        raise _fail(field, f"expected an array, got {type(raw).__name__}")
    return raw


def _time(raw: str, field: str) -> int:
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise _fail(field, f"not an ISO 8601 time: {raw[:40]!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())


def _bits(text: str, field: str, width: int) -> int:
    if not text or len(text) > width or text.strip("01"):
        raise _fail(field, f"expected 1 to {width} characters 0/1 (lowest bit rightmost)")
    return int(text, 2)


def admin_permissions(raw: object, field: str) -> int:
    if raw is None:
        return 0
    if raw == "*" or raw is True:
        return _ALL_ADMIN
    if raw is False:
        return 0
    if isinstance(raw, str):
        return _bits(raw, field, 12)
    if isinstance(raw, int):
        return raw & _ALL_ADMIN
    if isinstance(raw, list):
        return sum(1 << i for i, flag in enumerate(raw[:12]) if flag not in (None, False, 0, ""))
    raise _fail(field, f"expected a string of 0/1, got {type(raw).__name__}")


def _ref(raw: object, field: str) -> ValueReference:
    obj = _obj(raw, field)
    return ValueReference(_str(obj.get("handle"), f"{field}.handle"),
                          _int(obj.get("index"), f"{field}.index"))


def _b64(text: str, field: str) -> bytes:
    cleaned = "".join(text.split())
    try:
        if "-" in cleaned or "_" in cleaned:
            return base64.urlsafe_b64decode(cleaned + "=" * (-len(cleaned) % 4))
        return base64.b64decode(cleaned + "=" * (-len(cleaned) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise _fail(field, "invalid base64") from None


def _key(raw: object, field: str) -> bytes:
    obj = _obj(raw, field)
    kty = _str(obj.get("kty"), f"{field}.kty").upper()
    known = _KTY.get(kty)
    if known is None:
        raise _fail(f"{field}.kty", f"unsupported key type {kty!r} (RSA or DSA)")
    key_type, fields = known
    parts = tuple(java_bigint(int.from_bytes(_b64(_str(obj.get(n), f"{field}.{n}"),
                                                  f"{field}.{n}"), "big")) for n in fields)
    return encode_pubkey(PublicKeyRecord(key_type, parts))


def _site(raw: object, field: str) -> bytes:
    obj = _obj(raw, field)
    major, minor = 2, 10
    if "protocolVersion" in obj:
        version = _str(obj["protocolVersion"], f"{field}.protocolVersion")
        head, dot, tail = version.partition(".")
        if not (dot and ascii_digits(head, 3) and ascii_digits(tail, 3)):
            raise _fail(f"{field}.protocolVersion", "expected major.minor, e.g. 2.10")
        major, minor = int(head), int(tail)
        if max(major, minor) > 0xFF:  # found by fuzzing: the site encoder raised
            raise _fail(f"{field}.protocolVersion", f"{version} has a part above 255")
    attrs_raw = obj.get("attributes") or []
    if isinstance(attrs_raw, dict):
        attributes = tuple((k, str(v)) for k, v in attrs_raw.items())
    else:
        attributes = tuple((_str(_obj(a, f"{field}.attributes[{i}]").get("name"),
                                 f"{field}.attributes[{i}].name"),
                            _str(a.get("value"), f"{field}.attributes[{i}].value"))
                           for i, a in enumerate(_list(attrs_raw, f"{field}.attributes")))
    servers = tuple(_server(s, f"{field}.servers[{i}]")
                    for i, s in enumerate(_list(obj.get("servers", []), f"{field}.servers")))
    site = SiteInfo(
        serial_number=_int(obj.get("serialNumber", 1), f"{field}.serialNumber", 0xFFFF),
        servers=servers, attributes=attributes,
        primary=bool(obj.get("primarySite", True)), multi_primary=bool(obj.get("multiPrimary")),
        protocol_major=major, protocol_minor=minor,
        hash_option=_int(obj.get("hashOption", 2), f"{field}.hashOption", 0xFF),
        hash_filter=_str(obj.get("hashFilter", ""), f"{field}.hashFilter").encode("utf-8"),
        data_format_version=_int(obj.get("version", 1), f"{field}.version", 0xFFFF))
    return encode_site(site)


def _server(raw: object, field: str) -> ServerRecord:
    obj = _obj(raw, field)
    try:
        address = address_octets(_str(obj.get("address"), f"{field}.address"))
    except ValueError:
        raise _fail(f"{field}.address", "not an IP address") from None
    key = data_octets(obj["publicKey"], f"{field}.publicKey") \
        if "publicKey" in obj else b""
    interfaces = []
    for i, itf in enumerate(_list(obj.get("interfaces", []), f"{field}.interfaces")):
        entry = _obj(itf, f"{field}.interfaces[{i}]")
        proto = entry.get("protocol")
        protocol = (_PROTOCOLS.index(proto) if proto in _PROTOCOLS
                    else _int(proto, f"{field}.interfaces[{i}].protocol", 0xFF))
        interfaces.append(ServiceInterface(
            (2 if entry.get("query") else 0) | (1 if entry.get("admin") else 0), protocol,
            _int(entry.get("port"), f"{field}.interfaces[{i}].port")))
    return ServerRecord(_int(obj.get("serverId", 1), f"{field}.serverId"), address, key,
                        tuple(interfaces))


def data_octets(raw: object, field: str) -> bytes:
    """The octets a JSON ``data`` stands for."""
    if isinstance(raw, str):
        return raw.encode("utf-8")
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        return str(raw).encode("utf-8")
    obj = _obj(raw, field)
    kind = _str(obj.get("format"), f"{field}.format").lower()
    value = obj.get("value")
    where = f"{field}.value"
    try:
        if kind == "string":
            return _str(value, where).encode("utf-8")
        if kind == "base64":
            return _b64(_str(value, where), where)
        if kind == "hex":
            return bytes.fromhex(_str(value, where))
        if kind == "admin":
            admin = _obj(value, where)
            return encode_admin(AdminRecord(
                admin_permissions(admin.get("permissions"), f"{where}.permissions"),
                _str(admin.get("handle"), f"{where}.handle"),
                _int(admin.get("index"), f"{where}.index")))
        if kind == "vlist":
            return encode_vlist(tuple(_ref(r, f"{where}[{i}]")
                                      for i, r in enumerate(_list(value, where))))
        if kind == "site":
            return _site(value, where)
        if kind == "key":
            return _key(value, where)
    except (ValueError, UnicodeEncodeError) as exc:
        if isinstance(exc, InvalidValue):
            raise
        raise _fail(where, f"invalid {kind} data: {exc}") from None
    raise _fail(f"{field}.format", f"unknown format {kind!r} (string, base64, hex, admin, "
                "vlist, site, key)")


def _value_permissions(raw: object, field: str) -> int:
    if raw == "*":
        return 0xF
    text = _str(raw, field)
    given = _bits(text, field, 4)
    mask = (1 << len(text)) - 1
    return (DEFAULT_VALUE_PERMISSIONS & ~mask) | given


def parse_value(raw: object, field: str) -> HandleValue:
    obj = _obj(raw, field)
    for key in ("index", "type", "data"):
        if key not in obj:
            raise _fail(f"{field}.{key}", "missing")
    value_type = _str(obj["type"], f"{field}.type")
    if not value_type.strip():  # nothing could ask for it by type, nor say what it holds
        raise _fail(f"{field}.type", "blank; a value needs a type")
    ttl_type, ttl = TTLType.RELATIVE, 86400
    if obj.get("ttl") is not None:
        if isinstance(obj["ttl"], str) and not ascii_digits(obj["ttl"], 20):
            ttl_type, ttl = TTLType.ABSOLUTE, _time(obj["ttl"], f"{field}.ttl")
        else:
            ttl = _int(obj["ttl"], f"{field}.ttl")
    refs = obj.get("references") or []
    return HandleValue(
        index=_int(obj["index"], f"{field}.index"), type=value_type,
        data=data_octets(obj["data"], f"{field}.data"),
        ttl_type=ttl_type, ttl=ttl,
        permissions=(_value_permissions(obj["permissions"], f"{field}.permissions")
                     if obj.get("permissions") is not None else DEFAULT_VALUE_PERMISSIONS),
        references=tuple(_ref(r, f"{field}.references[{i}]")
                         for i, r in enumerate(_list(refs, f"{field}.references"))))


def parse_values(body: object) -> tuple[tuple[HandleValue, ...], str | None]:
    """(values, the body's ``handle`` if it names one) from a PUT body: an array of values,
    an object with ``values`` (other properties ignored), or a single value."""
    if isinstance(body, list):
        return tuple(parse_value(v, f"values[{i}]") for i, v in enumerate(body)), None
    if isinstance(body, dict):
        if "values" in body:
            named = body.get("handle")
            values = _list(body["values"], "values")
            return (tuple(parse_value(v, f"values[{i}]") for i, v in enumerate(values)),
                    named if isinstance(named, str) else None)
        if {"index", "type", "data"} <= body.keys():
            return (parse_value(body, "values[0]"),), None
    raise _fail("values", "expected an array of values, an object with \"values\", or one value")
