"""How a Modbus TCP source is configured (one ``[[sources]]`` entry with ``kind = "modbus"``).

The register map comes from ``registers`` (TOML tables or JSON) and/or ``register_map_csv`` (a
CSV file with the same columns, one register a row); both are loaded and checked together at
load, and an entry that cannot work fails with an error naming it: ``registers[7].address: ...``
or ``map.csv:12: address: ...`` (the CSV's line number, its header being line 1).
"""

from __future__ import annotations

import csv
import io
import itertools
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from millnet.connectivity.modbus.codec import WIDTH, Order, RegType
from millnet.connectivity.modbus.plan import ADDRESS_SPACE
from millnet.connectivity.specs import SourceSpec, parse_device
from millnet.ingest.binder import DevicePath

Table = Literal["coil", "discrete_input", "holding", "input"]
BIT_TABLES = ("coil", "discrete_input")
WRITABLE_TABLES = ("coil", "holding")
GROUP_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
CSV_COLUMNS = ("device", "point", "table", "address", "type", "byte_order", "word_order",
               "scale", "offset", "unit", "poll_group", "writable", "unit_id")


class PollGroup(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=GROUP_NAME)
    interval_ms: int = Field(ge=10, le=86_400_000)


class RegisterSpec(BaseModel):
    """One point of a device: where it lives and how its registers become a value."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    device: str  # site/area/line/device
    point: str = Field(min_length=1, max_length=128)
    table: Table
    address: int = Field(ge=0, le=ADDRESS_SPACE - 1)  # 0-based protocol address
    type: RegType | None = None  # default: bool for coils/discrete inputs, else uint16
    byte_order: Order = "big"
    word_order: Order = "big"
    scale: float = 1.0
    offset: float = 0.0
    unit: str | None = Field(default=None, max_length=32)
    poll_group: str = "default"
    writable: bool = False
    unit_id: int | None = Field(default=None, ge=0, le=255)  # None: the source's unit_id

    @field_validator("device")
    @classmethod
    def _check_device(cls, v: str) -> str:
        parse_device(v)
        return v

    @field_validator("scale", "offset")
    @classmethod
    def _finite(cls, v: float) -> float:
        if not math.isfinite(v):
            raise ValueError("must be a finite number")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> RegisterSpec:
        if self.scale == 0.0:
            raise ValueError("scale: must not be 0")
        if self.table in BIT_TABLES and self.type not in (None, "bool"):
            raise ValueError(f"type: a {self.table} holds one bit, its type is bool")
        if self.writable and self.table not in WRITABLE_TABLES:
            raise ValueError(f"writable: a {self.table} is read-only in Modbus")
        if self.address + self.width > ADDRESS_SPACE:
            raise ValueError(f"address: {self.value_type} at {self.address} needs "
                             f"{self.width} registers, beyond the last address 65535")
        return self

    @property
    def value_type(self) -> RegType:
        if self.type is not None:
            return self.type
        return "bool" if self.table in BIT_TABLES else "uint16"

    @property
    def width(self) -> int:
        return 1 if self.table in BIT_TABLES else WIDTH[self.value_type]

    @property
    def device_path(self) -> DevicePath:
        return parse_device(self.device)


class ModbusSpec(SourceSpec):
    """A Modbus TCP server (a device or a gateway with several unit ids behind it)."""

    kind: Literal["modbus"] = "modbus"
    host: str = Field(min_length=1, max_length=253)
    port: int = Field(default=502, ge=1, le=65535)
    unit_id: int = Field(default=1, ge=0, le=255)
    timeout_s: float = Field(default=1.0, gt=0.0, le=60.0)
    backoff_initial_s: float = Field(default=0.5, gt=0.0, le=60.0)
    backoff_max_s: float = Field(default=30.0, gt=0.0, le=3600.0)
    poll_groups: list[PollGroup] = Field(
        default_factory=lambda: [PollGroup(name="default", interval_ms=1000)])
    # Unmapped units a read may bridge between two mapped ones (0 for devices with holes).
    max_gap_registers: int = Field(default=8, ge=0, le=120)
    max_gap_bits: int = Field(default=64, ge=0, le=1999)
    # What the device accepts in one read (the protocol's limits by default).
    max_registers_per_read: int = Field(default=125, ge=4, le=125)
    max_bits_per_read: int = Field(default=2000, ge=1, le=2000)
    registers: list[RegisterSpec] = Field(default_factory=list)
    register_map_csv: str | None = None

    _map: tuple[RegisterSpec, ...] = PrivateAttr(default=())

    @model_validator(mode="after")
    def _load_map(self) -> ModbusSpec:
        if self.backoff_max_s < self.backoff_initial_s:
            raise ValueError("backoff_max_s: must be at least backoff_initial_s")
        names = [g.name for g in self.poll_groups]
        if len(set(names)) != len(names):
            raise ValueError("poll_groups: names must be unique")
        entries = [(f"registers[{i}].", r) for i, r in enumerate(self.registers)]
        if self.register_map_csv is not None:
            path = Path(self.register_map_csv)
            try:
                text = path.read_text(encoding="utf-8-sig")
            except OSError as exc:
                raise ValueError(f"register_map_csv: cannot read {path}: "
                                 f"{exc.strerror or exc}") from None
            entries += parse_csv(text, path.name)
        check_map(entries, set(names), self.unit_id)
        self._map = tuple(r for _, r in entries)
        return self

    @property
    def register_map(self) -> tuple[RegisterSpec, ...]:
        """Every register, from ``registers`` then the CSV, checked together."""
        return self._map

    def unit_of(self, register: RegisterSpec) -> int:
        return self.unit_id if register.unit_id is None else register.unit_id

    def group_interval_s(self) -> dict[str, float]:
        return {g.name: g.interval_ms / 1000 for g in self.poll_groups}


def parse_csv(text: str, name: str) -> list[tuple[str, RegisterSpec]]:
    """Rows of a register map CSV -> (where, register); errors name ``name:line: column``."""
    reader = csv.DictReader(io.StringIO(text))
    header = reader.fieldnames or []
    unknown = [c for c in header if c not in CSV_COLUMNS]
    if unknown:
        raise ValueError(f"{name}:1: unknown column(s) {', '.join(unknown)}; "
                         f"columns are {', '.join(CSV_COLUMNS)}")
    out: list[tuple[str, RegisterSpec]] = []
    for row in reader:
        where = f"{name}:{reader.line_num}: "
        if None in row:
            raise ValueError(f"{where}more cells than columns")
        fields = {k: v.strip() for k, v in row.items() if v is not None and v.strip() != ""}
        try:
            out.append((where, RegisterSpec.model_validate(fields)))
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = ".".join(str(p) for p in err["loc"])
            raise ValueError(f"{where}{loc + ': ' if loc else ''}{err['msg']}") from None
    return out


def check_map(entries: Sequence[tuple[str, RegisterSpec]], groups: set[str],
              default_unit: int) -> None:
    """Errors that single entries cannot see: unknown poll groups, points mapped twice,
    registers that overlap in one unit's table."""
    points: dict[tuple[DevicePath, str], str] = {}
    spans: dict[tuple[int, str], list[tuple[int, int, str]]] = {}
    for where, reg in entries:
        if reg.poll_group not in groups:
            raise ValueError(f"{where}poll_group: {reg.poll_group!r} is not one of the "
                             f"poll_groups ({', '.join(sorted(groups))})")
        key = (reg.device_path, reg.point)
        if key in points:
            raise ValueError(f"{where}point: {reg.device}/{reg.point} is already mapped by "
                             f"{points[key].rstrip('. :')}")
        points[key] = where
        unit = default_unit if reg.unit_id is None else reg.unit_id
        spans.setdefault((unit, reg.table), []).append((reg.address, reg.width, where))
    for (unit, table), items in spans.items():
        _check_overlaps(unit, table, items)


def _check_overlaps(unit: int, table: str, items: Iterable[tuple[int, int, str]]) -> None:
    ordered = sorted(items)
    for (a_addr, a_width, a_where), (b_addr, _, b_where) in itertools.pairwise(ordered):
        if b_addr < a_addr + a_width:
            raise ValueError(f"{b_where}address: {table} {b_addr} of unit {unit} overlaps "
                             f"{a_where.rstrip('. :')} ({a_addr}..{a_addr + a_width - 1})")
