"""Values written to a variable, converted to its own OPC UA built-in type."""

from __future__ import annotations

import math

from asyncua import ua

_INT_RANGES: dict[ua.VariantType, tuple[int, int]] = {
    ua.VariantType.SByte: (-(2**7), 2**7 - 1),
    ua.VariantType.Byte: (0, 2**8 - 1),
    ua.VariantType.Int16: (-(2**15), 2**15 - 1),
    ua.VariantType.UInt16: (0, 2**16 - 1),
    ua.VariantType.Int32: (-(2**31), 2**31 - 1),
    ua.VariantType.UInt32: (0, 2**32 - 1),
    ua.VariantType.Int64: (-(2**63), 2**63 - 1),
    ua.VariantType.UInt64: (0, 2**64 - 1),
}


def coerce(value: float | int | bool | str, variant: ua.VariantType) -> float | int | bool | str:
    """``value`` as the Python value of ``variant``; ValueError says why it does not fit."""
    if variant == ua.VariantType.Boolean:
        if isinstance(value, bool):
            return value
        if isinstance(value, int | float) and value in (0, 1):
            return bool(value)
        raise ValueError(f"{value!r} is not a Boolean")
    if variant in _INT_RANGES:
        low, high = _INT_RANGES[variant]
        if isinstance(value, str) or (isinstance(value, float) and not value.is_integer()):
            raise ValueError(f"{value!r} is not an integer ({variant.name})")
        number = int(value)
        if not low <= number <= high:
            raise ValueError(f"{number} is outside {variant.name} [{low}, {high}]")
        return number
    if variant in (ua.VariantType.Float, ua.VariantType.Double):
        if isinstance(value, str):
            raise ValueError(f"{value!r} is not a number ({variant.name})")
        number_f = float(value)
        if variant == ua.VariantType.Float and math.isfinite(number_f) \
                and abs(number_f) > 3.4028234663852886e38:
            raise ValueError(f"{number_f} is outside Float")
        return number_f
    if variant == ua.VariantType.String:
        return value if isinstance(value, str) else str(value)
    raise ValueError(f"writing {variant.name} values is not supported")
