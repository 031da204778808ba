"""Device points and the series dictionary: a point's ``series_id`` keys its telemetry.

An upsert takes what a source announces (a Sparkplug BIRTH of a thousand metrics, a JSON
device's first message) and makes the registry agree with it in a constant number of statements:
:func:`plan_upsert` reads the device's points once, :func:`apply_upsert` sends one multi-row
INSERT ... RETURNING for the new ones and one executemany UPDATE for the changed ones. The
announcement is authoritative: a field the spec leaves None is cleared.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, func, insert, select, update

from millnet.db.schema import AnyRow
from millnet.errors import InvalidInput, NotFound
from millnet.model import AssetKind, DataType, PointSpec
from millnet.registry.assets import get_asset
from millnet.registry.records import Point
from millnet.registry.schema import points
from millnet.registry.tenants import require_tenant
from millnet.registry.validation import UNIT_MAX, check_finite, check_name, check_text

# Well below SQLite's 32,766 and PostgreSQL's 65,535 bound parameters per statement.
_IN_CHUNK = 5_000
_METADATA = ("datatype", "unit", "description", "eng_low", "eng_high")
_COLUMNS = (points.c.series_id, points.c.tenant_id, points.c.device_id, points.c.name,
            points.c.datatype, points.c.unit, points.c.description, points.c.eng_low,
            points.c.eng_high, points.c.created_at, points.c.updated_at)


@dataclass(frozen=True, slots=True)
class _Spec:
    """A validated PointSpec in storage form (the datatype as its string value)."""

    name: str
    datatype: str
    unit: str | None
    description: str | None
    eng_low: float | None
    eng_high: float | None

    def metadata(self) -> tuple[Any, ...]:
        return tuple(getattr(self, f) for f in _METADATA)


def _point(row: AnyRow) -> Point:
    return Point(
        row.series_id, row.tenant_id, row.device_id, row.name, DataType(row.datatype), row.unit,
        row.description, row.eng_low, row.eng_high, row.created_at, row.updated_at,
    )


def check_specs(specs: Sequence[PointSpec]) -> list[_Spec]:
    """Validate announced points; fields are named ``specs[i].name`` and so on."""
    checked: list[_Spec] = []
    seen: set[str] = set()
    for i, spec in enumerate(specs):
        field = f"specs[{i}]"
        if not isinstance(spec, PointSpec):
            raise InvalidInput(f"must be a PointSpec, not {type(spec).__name__}", field)
        name = check_name(spec.name, f"{field}.name")
        if name in seen:
            raise InvalidInput(f"duplicate point name {name!r}", f"{field}.name")
        seen.add(name)
        try:
            datatype = DataType(spec.datatype)
        except ValueError:
            raise InvalidInput(f"unknown datatype {spec.datatype!r}", f"{field}.datatype") from None
        checked.append(_Spec(
            name, datatype.value, check_text(spec.unit, f"{field}.unit", UNIT_MAX),
            check_text(spec.description, f"{field}.description"),
            check_finite(spec.eng_low, f"{field}.eng_low"),
            check_finite(spec.eng_high, f"{field}.eng_high"),
        ))
    return checked


def require_device(conn: Connection, tenant_id: int, device_id: int) -> None:
    device = get_asset(conn, device_id, tenant_id, "device_id")
    if device.kind is not AssetKind.DEVICE:
        raise InvalidInput(f"asset {device_id} is a {device.kind}, not a device", "device_id")


@dataclass(frozen=True, slots=True)
class UpsertPlan:
    """What an upsert has to do: ``ids`` of the points that exist, the ``new`` and ``changed``."""

    ids: dict[str, int]
    new: list[_Spec]
    changed: list[tuple[int, _Spec]]

    @property
    def noop(self) -> bool:
        return not self.new and not self.changed


def plan_upsert(
    conn: Connection, tenant_id: int, device_id: int, specs: list[_Spec],
) -> UpsertPlan:
    """Compare ``specs`` with the device's stored points (one query)."""
    require_device(conn, tenant_id, device_id)
    existing = {
        r.name: r for r in conn.execute(
            select(points.c.series_id, points.c.name, *(points.c[f] for f in _METADATA))
            .where(points.c.device_id == device_id))
    }
    ids = {name: int(r.series_id) for name, r in existing.items()}
    # Name order, so concurrent inserts lock index entries in one order (no deadlocks).
    new = sorted((s for s in specs if s.name not in existing), key=lambda s: s.name)
    changed = [
        (ids[s.name], s) for s in specs
        if s.name in existing
        and s.metadata() != tuple(getattr(existing[s.name], f) for f in _METADATA)
    ]
    return UpsertPlan(ids, new, changed)


def apply_upsert(
    conn: Connection, tenant_id: int, device_id: int, specs: list[_Spec], plan: UpsertPlan,
    now: datetime,
) -> dict[str, int]:
    """Carry out ``plan`` (made in this transaction); name -> series id for every spec.

    A unique violation from a concurrent insert propagates as IntegrityError; the caller
    retries the transaction, whose plan then sees the other caller's rows.
    """
    ids = dict(plan.ids)
    if plan.new:
        rows = [{"tenant_id": tenant_id, "device_id": device_id, "name": s.name,
                 "created_at": now, "updated_at": now,
                 **dict(zip(_METADATA, s.metadata(), strict=True))} for s in plan.new]
        inserted = conn.execute(insert(points).returning(points.c.name, points.c.series_id),
                                rows)
        ids.update({r.name: int(r.series_id) for r in inserted})
    if plan.changed:
        statement = (update(points).where(points.c.series_id == bindparam("b_series_id"))
                     .values(updated_at=now, **{f: bindparam(f"b_{f}") for f in _METADATA}))
        conn.execute(statement, [
            {"b_series_id": series_id,
             **{f"b_{f}": v for f, v in zip(_METADATA, s.metadata(), strict=True)}}
            for series_id, s in plan.changed
        ])
    return {s.name: ids[s.name] for s in specs}


def count_points(conn: Connection, tenant_id: int) -> int:
    return int(conn.execute(
        select(func.count()).select_from(points).where(points.c.tenant_id == tenant_id),
    ).scalar_one())


def get_point(conn: Connection, series_id: int, tenant_id: int | None) -> Point:
    query = select(*_COLUMNS).where(points.c.series_id == series_id)
    if tenant_id is not None:
        query = query.where(points.c.tenant_id == tenant_id)
    row = conn.execute(query).one_or_none()
    if row is None:
        raise NotFound(f"point {series_id!r} not found")
    return _point(row)


def list_points(conn: Connection, tenant_id: int, device_id: int | None) -> list[Point]:
    query = select(*_COLUMNS).where(points.c.tenant_id == tenant_id)
    if device_id is None:
        require_tenant(conn, tenant_id)
    else:
        get_asset(conn, device_id, tenant_id, "device_id")
        query = query.where(points.c.device_id == device_id)
    return [_point(r) for r in conn.execute(query.order_by(points.c.series_id))]


def points_tenant(conn: Connection, series_ids: Iterable[int]) -> dict[int, int]:
    """series id -> tenant id for the ids that exist; unknown ids are left out."""
    wanted = sorted({int(s) for s in series_ids})
    owners: dict[int, int] = {}
    for start in range(0, len(wanted), _IN_CHUNK):
        chunk = wanted[start:start + _IN_CHUNK]
        owners.update((int(r.series_id), int(r.tenant_id)) for r in conn.execute(
            select(points.c.series_id, points.c.tenant_id)
            .where(points.c.series_id.in_(chunk))))
    return owners


def series_named(conn: Connection, tenant_id: int, name: str) -> dict[int, int]:
    """device id -> series id of the tenant's points called ``name`` (one per device)."""
    return {int(r.device_id): int(r.series_id) for r in conn.execute(
        select(points.c.device_id, points.c.series_id)
        .where(points.c.tenant_id == tenant_id, points.c.name == name))}


def series_ids_of_tenant(conn: Connection, tenant_id: int) -> list[int]:
    return list(conn.execute(select(points.c.series_id).where(points.c.tenant_id == tenant_id)
                             .order_by(points.c.series_id)).scalars())
