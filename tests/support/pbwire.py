"""A tiny protobuf wire-format writer, independent of millnet's generated Sparkplug code.

Tests build Sparkplug B frames with it from the field numbers of the published schema, so that
millnet's decoder is checked against bytes it did not produce itself.
"""

from __future__ import annotations

import struct


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def key(field: int, wire: int) -> bytes:
    return varint(field << 3 | wire)


def f_varint(field: int, n: int) -> bytes:
    return key(field, 0) + varint(n)


def f_bytes(field: int, data: bytes) -> bytes:
    return key(field, 2) + varint(len(data)) + data


def f_double(field: int, x: float) -> bytes:
    return key(field, 1) + struct.pack("<d", x)


def f_float(field: int, x: float) -> bytes:
    return key(field, 5) + struct.pack("<f", x)


# Sparkplug B: Payload{timestamp=1, metrics=2, seq=3}; Metric{name=1, alias=2, timestamp=3,
# datatype=4, is_historical=5, is_null=7, properties=9, int_value=10, long_value=11,
# float_value=12, double_value=13, boolean_value=14, string_value=15};
# PropertySet{keys=1, values=2}; PropertyValue{type=1, string_value=8, double_value=6}.
DOUBLE, INT64, BOOLEAN, STRING, FLOAT, INT32 = 10, 4, 11, 12, 9, 3


def metric(*, name: str | None = None, alias: int | None = None, ts: int | None = None,
           datatype: int | None = None, value: float | int | bool | str | None = None,
           historical: bool = False, unit: str | None = None) -> bytes:
    out = b""
    if name is not None:
        out += f_bytes(1, name.encode())
    if alias is not None:
        out += f_varint(2, alias)
    if ts is not None:
        out += f_varint(3, ts)
    if datatype is not None:
        out += f_varint(4, datatype)
    if historical:
        out += f_varint(5, 1)
    if unit is not None:
        prop = f_varint(1, STRING) + f_bytes(8, unit.encode())
        out += f_bytes(9, f_bytes(1, b"engUnit") + f_bytes(2, prop))
    if value is None:
        return out + f_varint(7, 1)
    if datatype == DOUBLE:
        return out + f_double(13, float(value))
    if datatype == FLOAT:
        return out + f_float(12, float(value))
    if datatype == BOOLEAN:
        return out + f_varint(14, int(bool(value)))
    if datatype == STRING:
        return out + f_bytes(15, str(value).encode())
    if datatype == INT32:
        return out + f_varint(10, int(value) & 0xFFFFFFFF)
    return out + f_varint(11, int(value) & 0xFFFFFFFFFFFFFFFF)


def payload(metrics: list[bytes], *, ts: int | None = None, seq: int | None = None) -> bytes:
    out = b""
    if ts is not None:
        out += f_varint(1, ts)
    for m in metrics:
        out += f_bytes(2, m)
    if seq is not None:
        out += f_varint(3, seq)
    return out
