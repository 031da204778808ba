"""Request and response bodies of the registry-backed routes (pydantic, for OpenAPI)."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema

from millnet.api.params import INT32_MAX
from millnet.model import AssetKind, DataType
from millnet.model.limits import RETENTION_DAYS_MAX
from millnet.registry import Asset, AssetNode, Point, Product, Role, Tenant, TokenInfo

# What the registry accepts, stated as patterns: pydantic checks them (422), the document shows
# them, and anything that matches is stored (a name: no control characters, not blank).
_CONTROL = r"\x00-\x1f\x7f-\x9f"
NAME_PATTERN = rf"^[^\s{_CONTROL}][^{_CONTROL}]*$"
ASSET_NAME_PATTERN = rf"^[^\s{_CONTROL}/][^{_CONTROL}/]*$"
TEXT_PATTERN = r"^[^\x00]*$"
REQUIRED_TEXT_PATTERN = rf"^[^\s{_CONTROL}][^\x00]*$"
SLUG_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
HANDLE_PATTERN = r"^[^\x00]*/[^\x00]*$"
PREFIX_PATTERN = r"^[!-.0-~]{1,255}$"  # printable ASCII but space and '/'
# Date-times in bodies: RFC 3339 (the document's ``format: date-time``, so an offset), of the
# years 1000 to 9998, so that every offset keeps the moment within Python's datetime in UTC
# (0001-01-01T00:00:00+01:00 is a valid RFC 3339 date-time before datetime.min).
TIME_PATTERN = r"^([1-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9]|999[0-8])-"
_RFC3339 = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?"
                      r"([Zz]|[+-][0-9]{2}:[0-9]{2})")
_TIME = re.compile(TIME_PATTERN)


_IN = ConfigDict(extra="forbid")


def _json_typed(kind: type | tuple[type, ...], name: str) -> Callable[[object], object]:
    """A check that the JSON value is of the documented type: pydantic's lax mode would turn
    ``"1"`` into 1 and ``0`` into False, accepting what the document calls invalid."""

    def check(value: object) -> object:
        if value is not None and (not isinstance(value, kind) or
                                  (kind is not bool and isinstance(value, bool))):
            raise ValueError(f"must be {name}")
        return value

    return check


# JSON Schema's integer includes 1.0; pydantic turns an integral float into an int.
_INTEGER = BeforeValidator(_json_typed((int, float), "an integer"))
JsonId = Annotated[int, Field(ge=1, le=INT32_MAX), _INTEGER]
JsonDays = Annotated[int, Field(ge=1, le=RETENTION_DAYS_MAX), _INTEGER]
JsonBool = Annotated[bool, BeforeValidator(_json_typed(bool, "true or false"))]


def _rfc3339(value: object) -> object:
    """Only what the document calls a date-time: pydantic's lax mode would also take a date, a
    time without offset (naive, which no UTC column stores) or epoch seconds."""
    if not isinstance(value, str) or not _RFC3339.fullmatch(value) or not _TIME.match(value):
        raise ValueError("must be an RFC 3339 date-time with an offset (Z or +hh:mm), of the "
                         "years 1000 to 9998")
    return value


JsonTime = Annotated[datetime, BeforeValidator(_rfc3339),
                     WithJsonSchema({"type": "string", "format": "date-time",
                                     "pattern": TIME_PATTERN})]


ASSET_TYPE_PATTERN = r"^[A-Za-z0-9._-]{1,64}$"


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class TenantOut(_Out):
    id: int
    name: str = Field(description="Unique short name, used in MQTT topics and configuration")
    display_name: str
    created_at: datetime
    retention_days: int | None = Field(
        default=None, description="Telemetry retention override; null: the node's default")

    @classmethod
    def of(cls, tenant: Tenant) -> TenantOut:
        return cls.model_validate(tenant)


class TenantIn(BaseModel):
    model_config = _IN

    name: str = Field(pattern=SLUG_PATTERN, description="1 to 63 of a-z, 0-9, '-', '_'",
                      examples=["acme"])
    display_name: str | None = Field(default=None, max_length=200, pattern=NAME_PATTERN,
                                     examples=["ACME Steel"])
    retention_days: JsonDays | None = Field(
        default=None, description="Telemetry retention override; null: the node's default")


class IdentifierPrefixes(BaseModel):
    """Identifier prefixes of a tenant (``88.100.5``): its records link to handles under
    these only."""

    model_config = _IN

    prefixes: list[Annotated[str, Field(pattern=PREFIX_PATTERN)]] = Field(
        max_length=100, examples=[["88.100.5"]])


class TenantSettings(BaseModel):
    """Tenant settings an admin of the tenant may change."""

    model_config = _IN

    retention_days: JsonDays | None = Field(
        description="Telemetry retention override; null: the node's default")


class AssetOut(_Out):
    id: int
    tenant_id: int
    parent_id: int | None
    kind: AssetKind
    name: str
    path: str = Field(description="Names from the root, '/'-joined", examples=["acme/plant1"])
    description: str | None
    created_at: datetime
    asset_type: str | None = Field(
        default=None, description="What kind of machine this is; rules attach to it",
        examples=["cnc"])

    @classmethod
    def of(cls, asset: Asset) -> AssetOut:
        return cls.model_validate(asset)


class AssetNodeOut(BaseModel):
    """One node of the asset tree, children in name order."""

    id: int
    kind: AssetKind
    name: str
    path: str
    description: str | None = None
    children: list[AssetNodeOut] = Field(default_factory=list)


class AssetTreeOut(BaseModel):
    tenant_id: int
    roots: list[AssetNodeOut]

    @classmethod
    def of(cls, tenant_id: int, roots: list[AssetNode]) -> AssetTreeOut:
        return cls(tenant_id=tenant_id, roots=[AssetNodeOut.model_validate(n) for n in roots])


class AssetIn(BaseModel):
    model_config = _IN

    parent_id: JsonId | None = Field(
        description="The parent asset; null for a root (an enterprise)")
    kind: AssetKind = Field(
        description="One level below the parent's kind (an enterprise for a root); another "
                    "kind answers 409")
    name: str = Field(max_length=200, pattern=ASSET_NAME_PATTERN,
                      description="Unique among its siblings; no '/'", examples=["line-3"])
    description: str | None = Field(default=None, pattern=TEXT_PATTERN)
    tenant_id: JsonId | None = Field(
        default=None,
        description="Defaults to the caller's tenant; a node-wide token must name one (403 "
                    "otherwise)")
    asset_type: str | None = Field(
        default=None, pattern=ASSET_TYPE_PATTERN, max_length=64,
        description="What kind of machine this is (rules attach to it)", examples=["cnc"])


class AssetPatch(BaseModel):
    model_config = _IN

    asset_type: str | None = Field(
        pattern=ASSET_TYPE_PATTERN, max_length=64,
        description="What kind of machine this is; null removes the type. Rules that attach "
                    "to a type cover the asset from then on", examples=["press"])


class PointOut(_Out):
    series_id: int = Field(description="Id of the point's samples in telemetry queries")
    tenant_id: int
    device_id: int
    name: str
    datatype: DataType
    unit: str | None
    description: str | None
    eng_low: float | None
    eng_high: float | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, point: Point) -> PointOut:
        return cls.model_validate(point)


class DeviceOut(AssetOut):
    points: list[PointOut] = Field(default_factory=list)
    identifier: str | None = Field(
        default=None, description="The device's global identifier (prefix/suffix), if any",
        examples=["88.100.5/EQ-SUZHOU-L1-CNC-101"])


class ProductIn(BaseModel):
    model_config = _IN

    serial: str = Field(min_length=1, max_length=128, pattern=REQUIRED_TEXT_PATTERN,
                        examples=["SN260000123"])
    model: str = Field(min_length=1, max_length=128, pattern=REQUIRED_TEXT_PATTERN,
                       examples=["P-200"])
    line_id: JsonId | None = Field(
        default=None, description="The line that made it (404 unless a line)")
    batch: str | None = Field(default=None, max_length=2048, pattern=TEXT_PATTERN,
                              description="Its batch (an identifier, e.g. 88.100.5/BATCH-...)")
    produced_at: JsonTime | None = Field(default=None, description="Default: now")
    tenant_id: JsonId | None = Field(
        default=None, description="Defaults to the caller's tenant; a node-wide "
                                              "token must name one (403 otherwise)")


class ProductOut(_Out):
    id: int
    tenant_id: int
    serial: str
    model: str
    line_id: int | None
    batch: str | None
    produced_at: datetime
    identifier: str | None = Field(description="Its global identifier, once linked")
    created_at: datetime

    @classmethod
    def of(cls, product: Product) -> ProductOut:
        return cls.model_validate(product)


class IdentifierIn(BaseModel):
    model_config = _IN

    handle: str = Field(min_length=3, max_length=2048, pattern=HANDLE_PATTERN,
                        description="prefix/suffix, under one of the tenant's identifier "
                                    "prefixes (403 otherwise)",
                        examples=["88.100.5/EQ-SUZHOU-L1-CNC-101"])


class TokenOut(_Out):
    id: int
    tenant_id: int | None = Field(description="null: a node-wide token")
    name: str
    role: Role
    prefix: str = Field(description="Start of the token, safe to display", examples=["mn_3f9a0c1d"])
    created_at: datetime
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None

    @classmethod
    def of(cls, info: TokenInfo) -> TokenOut:
        return cls.model_validate(info)


class TokenIn(BaseModel):
    model_config = _IN

    name: str = Field(min_length=1, max_length=100, pattern=NAME_PATTERN, examples=["grafana"])
    role: Role = Field(examples=["viewer"])
    tenant_id: JsonId | None = Field(
        default=None,
        description="Tenant of the new token; defaults to the caller's own tenant. A node-wide "
                    "admin must name a tenant (403 otherwise), or set node_wide")
    node_wide: JsonBool = Field(
        default=False, description="Create a node-wide token (node-wide admins only, 403 "
                                   "otherwise); with a tenant_id it answers 409")


class TokenCreated(BaseModel):
    token: str = Field(description="The secret; shown once, store it now")
    info: TokenOut


class TenantRef(BaseModel):
    id: int
    name: str
    display_name: str | None


class Me(BaseModel):
    """The calling token, for a client that adapts to it (the web console)."""

    token_id: int
    token_name: str = Field(examples=["olga"])
    tenant_id: int | None = Field(description="null: node-wide")
    role: Role
    tenants: list[TenantRef] = Field(description="The tenants the token sees (a node-wide "
                                                "token: all of them)")
    node: str = Field(description="The node's name")
    node_role: str = Field(description="enterprise, secondary or national")
    areas: list[str] = Field(description="What the node serves: assets (the platform's tree "
                                         "and telemetry), alarms, kpi, rules, live, "
                                         "identifiers, federation, situation...",
                             examples=[["assets", "alarms", "kpi", "live"]])
