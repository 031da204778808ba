"""The pure rules of the OPC UA adapter: status codes to quality, OPC UA types to point types,
address-space paths to ISA-95 devices and points, deadbands to data-change filters.

StatusCode -> Quality (OPC UA Part 4, 7.39: the two top bits are the severity):

=====================  ==============  ===========================
severity bits 31..30   Quality         value stored
=====================  ==============  ===========================
00 Good                ``GOOD``        the value
01 Uncertain           ``UNCERTAIN``   the value (NaN if none)
10/11 Bad              ``BAD``         NaN: nothing is invented
=====================  ==============  ===========================
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from asyncua import ua
from asyncua.ua.status_codes import StatusCodes

from millnet.connectivity.opcua.spec import DeadbandKind
from millnet.ingest.binder import DevicePath
from millnet.model import DataType, Quality
from millnet.model.limits import ascii_digits

_SEVERITY_MASK = 0xC0000000
_UNCERTAIN = 0x40000000
# InfoType DataValue (bit 10) with the Overflow bit (bit 7): the server's queue dropped values.
OVERFLOW_BITS = 0x00000480


def quality_of(status: int) -> Quality:
    """The sample quality of an OPC UA StatusCode value (see the module's table)."""
    severity = status & _SEVERITY_MASK
    if severity == 0:
        return Quality.GOOD
    if severity == _UNCERTAIN:
        return Quality.UNCERTAIN
    return Quality.BAD


def overflowed(status: int) -> bool:
    """Whether the server says its queue for this item overflowed (values were discarded)."""
    return status & OVERFLOW_BITS == OVERFLOW_BITS


def status_name(status: int) -> str:
    """``BadTypeMismatch`` for 0x80740000; hex for a code the table does not know."""
    name = StatusCodes.__dict__
    for key, value in name.items():
        if value == status & 0xFFFF0000 and not key.startswith("_"):
            return str(key)
    return f"0x{status:08X}"


_TYPES: dict[ua.VariantType, DataType] = {
    ua.VariantType.Boolean: DataType.BOOLEAN,
    ua.VariantType.SByte: DataType.INT8,
    ua.VariantType.Byte: DataType.UINT8,
    ua.VariantType.Int16: DataType.INT16,
    ua.VariantType.UInt16: DataType.UINT16,
    ua.VariantType.Int32: DataType.INT32,
    ua.VariantType.UInt32: DataType.UINT32,
    ua.VariantType.Int64: DataType.INT64,
    ua.VariantType.UInt64: DataType.UINT64,
    ua.VariantType.Float: DataType.FLOAT,
    ua.VariantType.Double: DataType.DOUBLE,
    ua.VariantType.String: DataType.STRING,
    ua.VariantType.DateTime: DataType.DATETIME,
    ua.VariantType.Guid: DataType.UUID,
    ua.VariantType.LocalizedText: DataType.TEXT,
}


def datatype_of(variant: ua.VariantType) -> DataType | None:
    """The point type for an OPC UA built-in type; None for types not ingested (structures,
    arrays of bytes...)."""
    return _TYPES.get(variant)


def as_number(value: Any) -> float | None:
    """The value a numeric point stores, or None when the value is not a number."""
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float):
        return float(value)
    return None


def as_text(value: Any) -> str:
    if isinstance(value, ua.LocalizedText):
        return value.Text or ""
    return str(value)


def data_change_filter(kind: DeadbandKind, value: float) -> ua.DataChangeFilter | None:
    """The filter a monitored item is created with (None: the server's default, StatusValue)."""
    if kind == "none":
        return None
    flt = ua.DataChangeFilter()
    flt.Trigger = ua.DataChangeTrigger.StatusValue
    flt.DeadbandType = (ua.DeadbandType.Absolute if kind == "absolute"
                        else ua.DeadbandType.Percent)
    flt.DeadbandValue = float(value)
    return flt


@dataclass(frozen=True, slots=True)
class Placement:
    """Where an imported variable goes: its device and point name."""

    device: DevicePath
    point: str


def _bare(name: str) -> str:
    """A browse name without its namespace index (``2:Pump`` -> ``Pump``)."""
    head, sep, tail = name.partition(":")
    return tail if sep and ascii_digits(head, 5) else name


def place_by_path(path: Sequence[str]) -> Placement | None:
    """The path rule: ``<Site>/<Area>/<Line>/<Device>/<Variable...>`` below Objects.

    ``path`` holds the browse names from below the Objects folder to the variable; a variable
    fewer than five levels down has no device and is not imported (None)."""
    names = [_bare(p) for p in path]
    if len(names) < 5:
        return None
    site, area, line, device, *rest = names
    return Placement((site, area, line, device), ".".join(rest))


def place_in_device(device: DevicePath, below_folder: Sequence[str]) -> Placement | None:
    """The device rule: a variable below the imported folder is a point of ``device`` named by
    its path below the folder (``Motor/Current`` -> ``Motor.Current``)."""
    names = [_bare(p) for p in below_folder]
    if not names:
        return None
    return Placement(device, ".".join(names))


def nan_if_missing(value: float | None) -> float:
    return math.nan if value is None else value
