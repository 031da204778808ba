"""ISA-95 asset kinds and point descriptions."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class AssetKind(StrEnum):
    """ISA-95 equipment hierarchy levels, top down."""

    ENTERPRISE = "enterprise"
    SITE = "site"
    AREA = "area"
    LINE = "line"
    DEVICE = "device"

    @property
    def parent(self) -> AssetKind | None:
        order = list(AssetKind)
        i = order.index(self)
        return order[i - 1] if i else None


class DataType(StrEnum):
    """Datatype of a point's value (the Sparkplug basic types, named)."""

    INT8 = "int8"
    INT16 = "int16"
    INT32 = "int32"
    INT64 = "int64"
    UINT8 = "uint8"
    UINT16 = "uint16"
    UINT32 = "uint32"
    UINT64 = "uint64"
    FLOAT = "float"
    DOUBLE = "double"
    BOOLEAN = "boolean"
    STRING = "string"
    DATETIME = "datetime"
    TEXT = "text"
    UUID = "uuid"
    BYTES = "bytes"

    @property
    def is_text(self) -> bool:
        return self in (DataType.STRING, DataType.TEXT, DataType.UUID)

    @property
    def is_numeric(self) -> bool:
        """Numeric, boolean and datetime values are stored as doubles in the narrow table."""
        return not self.is_text and self is not DataType.BYTES


@dataclass(frozen=True, slots=True)
class PointSpec:
    """What a source says about a point when it announces it (a Sparkplug BIRTH metric, say)."""

    name: str
    datatype: DataType
    unit: str | None = None
    description: str | None = None
    eng_low: float | None = None
    eng_high: float | None = None
