"""The registry's one entry point: :class:`Registry`, a synchronous, thread-safe repository.

Every method runs in its own short transaction on a pooled connection, so threads may share one
``Registry`` (async callers use ``asyncio.to_thread``). Writes that may race with other callers
creating the same rows (``ensure_path``, ``upsert_points``, ``ensure_tenant``) are retried: the
loser of a unique-constraint race re-reads and finds the winner's row.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import TypeVar

from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from millnet.db.sqlstore import SqlStore
from millnet.errors import Conflict, QuotaExceeded, StorageError
from millnet.model import AssetKind, PointSpec
from millnet.registry import assets, points, products, tenants, tokens
from millnet.registry import prefixes as prefix_table
from millnet.registry.records import (
    Asset,
    AssetNode,
    Point,
    Principal,
    Product,
    Role,
    Tenant,
    TokenInfo,
)

log = logging.getLogger("millnet.registry")

T = TypeVar("T")
_ATTEMPTS = 4
# PostgreSQL: deadlock detected, serialization failure. Safe to retry the whole transaction.
_RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})


def _now() -> datetime:
    return datetime.now(UTC)


class Registry(SqlStore):
    """Tenants, ISA-95 assets, points (the series dictionary) and API tokens."""

    label = "registry"

    def _run(self, work: Callable[[Connection], T], *, write: bool = False,
             retry: bool = False) -> T:
        """Run ``work`` in one transaction; retry it on races when ``retry``."""
        engine = self._writer if write else self._engine
        for attempt in range(1, _ATTEMPTS + 1):
            last = attempt == _ATTEMPTS or not retry
            try:
                with engine.begin() as conn:
                    return work(conn)
            except IntegrityError as exc:
                if last:
                    raise Conflict("the change collides with a concurrent one or with existing "
                                   "data") from exc
                log.debug("registry write raced with another, retrying (attempt %d)", attempt)
            except (OperationalError, InterfaceError) as exc:
                if last or getattr(exc.orig, "sqlstate", None) not in _RETRYABLE_SQLSTATES:
                    raise StorageError(f"registry database error: {exc.orig!s}") from exc
            except PoolTimeout as exc:
                raise StorageError(f"registry database busy: {exc}") from exc
        raise AssertionError("unreachable")

    # Tenants

    def create_tenant(self, name: str, display_name: str | None = None, *,
                      retention_days: int | None = None) -> Tenant:
        """A new tenant; ``name`` is a slug (a-z, 0-9, '-', '_'). Conflict if it exists."""
        now = _now()
        return self._run(lambda c: tenants.create_tenant(c, name, display_name, retention_days,
                                                         now), write=True)

    def ensure_tenant(self, name: str, display_name: str | None = None) -> Tenant:
        """The tenant named ``name``, created if missing (safe under concurrent callers)."""
        for _ in range(_ATTEMPTS):
            found = self._run(lambda c: tenants.find_tenant(c, name))
            if found is not None:
                return found
            try:
                return self.create_tenant(name, display_name)
            except Conflict:
                continue  # created meanwhile by someone else: read it
        return self.get_tenant(name)

    def get_tenant(self, key: int | str) -> Tenant:
        """By id (int) or name (str); NotFound if missing."""
        return self._run(lambda c: tenants.get_tenant(c, key))

    def list_tenants(self) -> list[Tenant]:
        return self._run(tenants.list_tenants)

    def set_retention(self, tenant_id: int, retention_days: int | None) -> Tenant:
        return self._run(lambda c: tenants.set_retention(c, tenant_id, retention_days),
                         write=True)

    def set_identifier_prefixes(self, tenant_id: int, prefixes: Sequence[str]) -> list[str]:
        """Replace the identifier prefixes of a tenant (see :mod:`.prefixes`)."""
        return self._run(lambda c: prefix_table.set_prefixes(c, tenant_id, prefixes),
                         write=True)

    def identifier_prefixes(self, tenant_id: int) -> list[str]:
        return self._run(lambda c: prefix_table.prefixes_of(c, tenant_id))

    # Assets

    def ensure_path(self, tenant_id: int, path: assets.PathSpec, *,
                    max_devices: int | None = None) -> list[int]:
        """Ids of the assets along ``path`` (root first), creating the missing ones.

        ``path`` is ``[(AssetKind.ENTERPRISE, name), (AssetKind.SITE, name), ...]`` from the
        root down; idempotent and safe under concurrent callers. With ``max_devices``, creating
        a device when the tenant already has that many raises :class:`QuotaExceeded`.
        """
        checked = assets.check_path(path)
        ids = self._run(lambda c: assets.find_path(c, tenant_id, checked))
        if len(ids) == len(checked):
            return ids
        now = _now()

        def ensure(conn: Connection) -> list[int]:
            if max_devices is not None and checked[-1][0] is AssetKind.DEVICE:
                found = assets.find_path(conn, tenant_id, checked)
                if len(found) < len(checked):
                    count = assets.count_devices(conn, tenant_id)
                    if count >= max_devices:
                        raise QuotaExceeded(
                            f"tenant {tenant_id} has {count} devices, its quota is "
                            f"{max_devices}: device {checked[-1][1][:40]!r} not created")
            return assets.ensure_path(conn, tenant_id, checked, now)

        return self._run(ensure, write=True, retry=True)

    def create_asset(self, tenant_id: int, parent_id: int | None, kind: AssetKind | str,
                     name: str, description: str | None = None) -> Asset:
        """One new asset; its kind must be one level below its parent's (a root: enterprise)."""
        now = _now()
        return self._run(lambda c: assets.create_asset(c, tenant_id, parent_id, kind, name,
                                                       description, now), write=True)

    def get_asset(self, asset_id: int, *, tenant_id: int | None = None) -> Asset:
        """NotFound if missing or, given ``tenant_id``, in another tenant."""
        return self._run(lambda c: assets.get_asset(c, asset_id, tenant_id))

    def find_asset(self, tenant_id: int, path: str) -> Asset:
        """The asset at ``path``, its names from the root joined by '/'."""
        return self._run(lambda c: assets.find_asset(c, tenant_id, path))

    def set_identifier(self, tenant_id: int, asset_id: int, handle: str) -> None:
        """Link an asset of ``tenant_id`` to its global identifier (replacing any previous
        one); NotFound, InvalidInput, or Conflict when the handle names another asset."""
        self._run(lambda c: assets.set_identifier(c, tenant_id, asset_id, handle, _now()),
                  write=True)

    def identifier_of(self, asset_id: int) -> str | None:
        return self._run(lambda c: assets.identifier_of(c, asset_id))

    def create_product(self, tenant_id: int, serial: str, model: str, *,
                       line_id: int | None = None, batch: str | None = None,
                       produced_at: datetime | None = None) -> Product:
        """A new product of ``tenant_id``; Conflict when its serial exists in the tenant."""
        now = _now()
        return self._run(lambda c: products.create_product(
            c, tenant_id, serial, model, line_id, batch, produced_at or now, now), write=True)

    def get_product(self, product_id: int, *, tenant_id: int | None = None) -> Product:
        return self._run(lambda c: products.get_product(c, product_id, tenant_id))

    def list_products(self, tenant_id: int, *, limit: int = 1000,
                      after: int = 0) -> list[Product]:
        """Products by id, ``limit`` of them after id ``after`` (keyset paging)."""
        return self._run(lambda c: products.list_products(c, tenant_id, limit=limit,
                                                          after=after))

    def set_product_identifier(self, tenant_id: int, product_id: int, handle: str) -> Product:
        return self._run(lambda c: products.set_product_identifier(c, tenant_id, product_id,
                                                                   handle), write=True)

    def set_asset_type(self, tenant_id: int, asset_id: int, asset_type: str | None) -> Asset:
        """Say what kind of machine an asset is (None: no type); rules attach to types."""
        return self._run(lambda c: assets.set_asset_type(c, tenant_id, asset_id, asset_type),
                         write=True)

    def list_devices(self, tenant_id: int | None = None) -> list[Asset]:
        """Every device of ``tenant_id`` (None: of every tenant), in id order."""
        return self._run(lambda c: assets.list_devices(c, tenant_id))

    def asset_types(self, tenant_id: int) -> dict[int, str | None]:
        """Device id -> its asset type, for every device of the tenant."""
        return {a.id: a.asset_type for a in self.list_devices(tenant_id)}

    def list_children(self, tenant_id: int, parent_id: int | None = None) -> list[Asset]:
        """The children of ``parent_id`` (None: the tenant's enterprises), in name order."""
        return self._run(lambda c: assets.list_children(c, tenant_id, parent_id))

    def asset_tree(self, tenant_id: int) -> list[AssetNode]:
        """The tenant's hierarchy as nested dicts (roots first, children in name order)."""
        return self._run(lambda c: assets.asset_tree(c, tenant_id))

    # Points, the series dictionary

    def upsert_points(self, tenant_id: int, device_id: int, specs: Sequence[PointSpec], *,
                      max_points: int | None = None) -> dict[str, int]:
        """Make the device's points match ``specs``; name -> series id for every spec.

        Missing points are created, points whose metadata differs are updated (the spec is
        authoritative: None clears a field), others are left alone; all in one transaction.
        With ``max_points``, new points that would take the tenant beyond that many are not
        created and are absent from the answer (the caller tells which were refused).
        """
        checked = points.check_specs(specs)
        plan = self._run(lambda c: points.plan_upsert(c, tenant_id, device_id, checked))
        if plan.noop:  # a rebirth of a known device: no write lock taken
            return {s.name: plan.ids[s.name] for s in checked}
        now = _now()

        def upsert(conn: Connection) -> dict[str, int]:
            fresh = points.plan_upsert(conn, tenant_id, device_id, checked)
            wanted = checked
            if max_points is not None and fresh.new:
                room = max(0, max_points - points.count_points(conn, tenant_id))
                refused = {s.name for s in fresh.new[room:]}
                if refused:
                    wanted = [s for s in checked if s.name not in refused]
                    fresh = points.UpsertPlan(fresh.ids, fresh.new[:room], fresh.changed)
            return points.apply_upsert(conn, tenant_id, device_id, wanted, fresh, now)

        return self._run(upsert, write=True, retry=True)

    def get_point(self, series_id: int, *, tenant_id: int | None = None) -> Point:
        """NotFound if missing or, given ``tenant_id``, in another tenant."""
        return self._run(lambda c: points.get_point(c, series_id, tenant_id))

    def list_points(self, tenant_id: int, device_id: int | None = None) -> list[Point]:
        """The tenant's points (or one device's), in series id order."""
        return self._run(lambda c: points.list_points(c, tenant_id, device_id))

    def points_tenant(self, series_ids: Iterable[int]) -> dict[int, int]:
        """series id -> owning tenant id; ids that do not exist are absent from the answer."""
        wanted = list(series_ids)
        return self._run(lambda c: points.points_tenant(c, wanted))

    def series_named(self, tenant_id: int, name: str) -> dict[int, int]:
        """device id -> series id of the tenant's points called ``name`` (a machine's state
        point, say), without reading the others."""
        return self._run(lambda c: points.series_named(c, tenant_id, name))

    def series_ids_of_tenant(self, tenant_id: int) -> list[int]:
        return self._run(lambda c: points.series_ids_of_tenant(c, tenant_id))

    # API tokens

    def create_token(self, tenant_id: int | None, role: Role | str,
                     name: str) -> tuple[str, TokenInfo]:
        """A new token (``tenant_id`` None: node-wide). The plaintext is returned only here."""
        now = _now()
        return self._run(lambda c: tokens.create_token(c, tenant_id, role, name, now),
                         write=True)

    def verify_token(self, plaintext: str) -> Principal | None:
        """Who ``plaintext`` authenticates, or None for unknown, malformed or revoked tokens."""
        found = self._run(lambda c: tokens.find_token(c, plaintext))
        if found is None:
            return None
        principal, last_used_at = found
        now = _now()
        if tokens.needs_touch(last_used_at, now):
            try:
                self._run(lambda c: tokens.touch(c, principal.token_id, now), write=True)
            except StorageError as exc:  # bookkeeping only; the token itself is valid
                log.warning("could not record the use of token %d: %s", principal.token_id, exc)
        return principal

    def get_token(self, token_id: int) -> TokenInfo:
        return self._run(lambda c: tokens.get_token(c, token_id))

    def revoke_token(self, token_id: int) -> TokenInfo:
        """Revoke (idempotent; the first revocation time is kept). NotFound if missing."""
        now = _now()
        return self._run(lambda c: tokens.revoke_token(c, token_id, now), write=True)

    def list_tokens(self, tenant_id: int | None) -> list[TokenInfo]:
        """The tenant's tokens (``tenant_id`` None: the node-wide ones), revoked included."""
        return self._run(lambda c: tokens.list_tokens(c, tenant_id))
