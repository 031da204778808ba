"""Registers <-> values for every Modbus data type (pure, no I/O).

A value of ``width`` registers arrives as ``2 * width`` bytes in wire order. ``byte_order``
says whether each register carries its high byte first (``big``, the Modbus norm) or its low
byte first; ``word_order`` whether the first register holds the most significant word (``big``)
or the least (``little``, "word swapped", common for 32-bit floats from PLCs). Engineering
value = raw * scale + offset; writes invert it.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from typing import Literal

RegType = Literal["int16", "uint16", "int32", "uint32", "float32", "float64", "bool"]
Order = Literal["big", "little"]

WIDTH: dict[str, int] = {"int16": 1, "uint16": 1, "int32": 2, "uint32": 2, "float32": 2,
                         "float64": 4, "bool": 1}
_STRUCT: dict[str, struct.Struct] = {
    "int16": struct.Struct(">h"), "uint16": struct.Struct(">H"), "int32": struct.Struct(">i"),
    "uint32": struct.Struct(">I"), "float32": struct.Struct(">f"), "float64": struct.Struct(">d"),
}
_INT_RANGE: dict[str, tuple[int, int]] = {
    "int16": (-(2**15), 2**15 - 1), "uint16": (0, 2**16 - 1),
    "int32": (-(2**31), 2**31 - 1), "uint32": (0, 2**32 - 1),
}


def to_canonical(data: bytes, byte_order: Order, word_order: Order) -> bytes:
    """Wire bytes of one value -> big-endian bytes (most significant first). Its own inverse."""
    if byte_order == "little":
        data = b"".join(data[i + 1:i + 2] + data[i:i + 1] for i in range(0, len(data), 2))
    if word_order == "little" and len(data) > 2:
        data = b"".join(data[i:i + 2] for i in range(len(data) - 2, -1, -2))
    return data


def registers_to_bytes(registers: Sequence[int]) -> bytes:
    return struct.pack(f">{len(registers)}H", *registers)


def bytes_to_registers(data: bytes) -> list[int]:
    return list(struct.unpack(f">{len(data) // 2}H", data))


def decode_raw(data: bytes, offset: int, reg_type: RegType, byte_order: Order = "big",
               word_order: Order = "big") -> int | float | bool:
    """The raw value at register ``offset`` of ``data`` (a read's registers as wire bytes)."""
    width = WIDTH[reg_type]
    start = 2 * offset
    if reg_type == "bool":
        return data[start] != 0 or data[start + 1] != 0
    if byte_order == "big" and (word_order == "big" or width == 1):
        return _STRUCT[reg_type].unpack_from(data, start)[0]  # type: ignore[no-any-return]
    canonical = to_canonical(data[start:start + 2 * width], byte_order, word_order)
    return _STRUCT[reg_type].unpack(canonical)[0]  # type: ignore[no-any-return]


def decode_registers(registers: Sequence[int], reg_type: RegType, byte_order: Order = "big",
                     word_order: Order = "big") -> int | float | bool:
    return decode_raw(registers_to_bytes(registers), 0, reg_type, byte_order, word_order)


def scaled(raw: int | float | bool, scale: float, offset: float) -> float:
    """The engineering value stored for ``raw`` (a bool is 0.0 or 1.0)."""
    value = float(raw)
    if scale != 1.0 or offset != 0.0:
        value = value * scale + offset
    return value


def unscale(value: float | int | bool, reg_type: RegType, scale: float,
            offset: float) -> int | float | bool:
    """The raw value to write so that the device then reads as ``value``; ValueError when it
    does not fit the type."""
    if reg_type == "bool":
        if value not in (0, 1):  # True == 1, False == 0
            raise ValueError(f"value {value!r} is not a boolean (0/1, true/false)")
        return bool(value)
    x = float(value)
    if not math.isfinite(x):
        raise ValueError(f"value {value!r} is not finite")
    if scale != 1.0 or offset != 0.0:
        x = (x - offset) / scale
    if reg_type in _INT_RANGE:
        low, high = _INT_RANGE[reg_type]
        raw = round(x)
        if not low <= raw <= high:
            raise ValueError(f"value {value!r} (raw {raw}) does not fit {reg_type} "
                             f"[{low}, {high}]")
        return raw
    if reg_type == "float32" and abs(x) > 3.4028234663852886e38:
        raise ValueError(f"value {value!r} does not fit float32")
    return x


def encode_raw(raw: int | float | bool, reg_type: RegType, byte_order: Order = "big",
               word_order: Order = "big") -> list[int]:
    """Registers (in wire order) that hold ``raw``."""
    if reg_type == "bool":
        return [1 if raw else 0]
    try:
        canonical = _STRUCT[reg_type].pack(raw)
    except (struct.error, OverflowError) as exc:
        raise ValueError(f"value {raw!r} does not fit {reg_type}: {exc}") from None
    return bytes_to_registers(to_canonical(canonical, byte_order, word_order))


def encode(value: float | int | bool, reg_type: RegType, byte_order: Order = "big",
           word_order: Order = "big", scale: float = 1.0, offset: float = 0.0) -> list[int]:
    """Registers to write so the point reads ``value`` (scale and offset inverted)."""
    return encode_raw(unscale(value, reg_type, scale, offset), reg_type, byte_order, word_order)
