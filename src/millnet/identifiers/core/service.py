"""The identifier service: resolution, administration and authorization over the store.

Pure logic, synchronous, no sockets: the UDP/TCP/HTTP servers authenticate a client (challenge-
response against :meth:`IdentifierService.secret_key` / :meth:`verify_secret`, or HTTP Basic),
then call these methods with the resulting principal, a :class:`ValueReference` such as
``300:88.100.5/ADMIN``, and turn errors into response codes with :func:`error_code`.

Authorization follows Handle.Net: a principal may change a handle when one of the handle's
HS_ADMIN values names it (same handle, same index, or index 0 for "any key of that handle"),
directly or through an HS_VLIST group it names (one level, groups held on this node), and that
HS_ADMIN grants the :class:`AdminPermission` bit of the operation. Creating and listing handles
under a prefix are checked against the prefix record ``0.NA/<prefix>``; creating or deleting a
prefix record ``0.NA/<p>`` against the record of ``p``'s parent (ADD_NA / DELETE_NA). So an admin
of ``88.100.5`` can do nothing under ``88.100.6``.

Changing an HS_ADMIN value needs the value right and the admin right together: ADD_VALUE and
ADD_ADMIN to add one, MODIFY_VALUE and MODIFY_ADMIN to change one (or to change any value into
or out of one), REMOVE_VALUE and REMOVE_ADMIN to remove one. Which values are HS_ADMIN is
decided by one function, :func:`~.values.is_admin_value`, for the admin lookup and every guard
alike; values arrive with canonical types (``hs_admin`` is stored as ``HS_ADMIN``), and a
record stored in another case before that is still guarded (found by review: the lookup
matched ``hs_admin`` while the guards did not, so ADD_VALUE alone made its holder an admin).
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Callable, Iterable, Sequence

from millnet.errors import InvalidInput, ProtocolError
from millnet.identifiers.core.delegation import (
    ADMIN_INDEX,
    GLOBAL_PREFIX,
    Local,
    Referral,
    locate,
    parent_record,
)
from millnet.identifiers.core.errors import (
    AuthenticationNeeded,
    HandleExists,
    HandleNotFound,
    InvalidValue,
    NotAuthorized,
    ReadOnlyMirror,
    ValueNotFound,
)
from millnet.identifiers.core.store import MAX_BATCH, IdentifierStore
from millnet.identifiers.core.values import (
    ADMIN_TYPE,
    canonical_handle,
    canonical_type,
    check_values,
    is_admin_value,
)
from millnet.model.limits import ascii_digits
from millnet.protocols.handle import (
    ALL_ADMIN_PERMISSIONS,
    AdminPermission,
    AdminRecord,
    HandleValue,
    Permission,
    ValueReference,
    decode_admin,
    decode_pubkey,
    decode_serv,
    decode_site,
    decode_vlist,
    encode_admin,
    normalize_handle,
    prefix_handle,
)

log = logging.getLogger("millnet.identifiers")

#: A check run on values before they are stored: raise InvalidValue to refuse them. Industry
#: templates (typed product, batch and equipment values) plug in here.
ValueCheck = Callable[[str, Sequence[HandleValue]], None]
_LAYOUTS: dict[str, Callable[[bytes], object]] = {
    ADMIN_TYPE: decode_admin, "HS_SITE": decode_site, "HS_VLIST": decode_vlist,
    "HS_SERV": decode_serv, "HS_PUBKEY": decode_pubkey,
}
_MINT_ATTEMPTS = 3


def check_layouts(handle: str, values: Sequence[HandleValue]) -> None:
    """Refuse values of the typed HS_ types whose data does not decode (default ValueCheck)."""
    for i, value in enumerate(values):
        decode = _LAYOUTS.get(canonical_type(value.type))
        if decode is None:
            continue
        try:
            decode(value.data)
        except ProtocolError as exc:
            raise InvalidValue(f"{value.type} of {handle}: {exc}", f"values[{i}].data") from None


def _readable(value: HandleValue, admin: bool) -> bool:
    mask = Permission.PUBLIC_READ | Permission.ADMIN_READ if admin else Permission.PUBLIC_READ
    return bool(value.permissions & mask)


class IdentifierService:
    """Resolution and administration of the prefixes this node serves."""

    def __init__(self, store: IdentifierStore, served_prefixes: Iterable[str] = (), *,
                 value_checks: Sequence[ValueCheck] = (check_layouts,),
                 clock: Callable[[], float] = time.time, mirror_of: str | None = None) -> None:
        self.store = store
        #: set on a mirror: the primary's URL; every write through this service is refused
        self.mirror_of = mirror_of
        self.served = frozenset(canonical_handle(f"{p}/x")[1] for p in served_prefixes)
        self._checks = tuple(value_checks)
        self._clock = clock
        #: called with the handle's name after each write through this service (a resolver
        #: cache of the node drops its entries there)
        self.listeners: list[Callable[[str], object]] = []

    def _writable(self) -> None:
        if self.mirror_of is not None:
            raise ReadOnlyMirror(f"this node mirrors {self.mirror_of}: write there")

    def _changed(self, handle: str) -> None:
        for listener in self.listeners:
            listener(handle)

    # Resolution

    def resolve(self, handle: str, indexes: Sequence[int] = (), types: Sequence[str] = (), *,
                public_only: bool = True,
                principal: ValueReference | None = None) -> tuple[HandleValue, ...]:
        """The values a resolution returns.

        ``public_only`` (the PO flag) drops values without public-read. Otherwise restricted
        values are returned to a principal with READ_VALUE on the handle (admin-read values),
        AuthenticationNeeded is raised without a principal (the server challenges), and
        NotAuthorized for a principal without the right. ValueNotFound when nothing is left."""
        values = self.store.get(handle, indexes, types)
        restricted = [v for v in values if not v.permissions & Permission.PUBLIC_READ]
        admin = False
        if restricted and not public_only:
            if principal is None:
                raise AuthenticationNeeded(f"{handle} has restricted values")
            self.authorize(principal, handle, AdminPermission.READ_VALUE)
            admin = True
        found = tuple(v for v in values if _readable(v, admin))
        if not found:
            raise ValueNotFound(f"no {'public ' if not admin else ''}value of {handle} matches")
        return found

    def locate(self, handle: str) -> Local | Referral:
        """Local if this node answers for ``handle``, else the Referral to send
        (NotResponsible when no prefix of it is served or delegated here)."""
        return locate(self.store, self.served, handle)

    # Authentication material

    def secret_key(self, admin_handle: str, index: int) -> bytes | None:
        """The HS_SECKEY data at ``index`` of ``admin_handle`` (the key of a challenge's MAC),
        None when there is none."""
        for value in self._values(admin_handle, (index,)):
            if value.index == index and value.type == "HS_SECKEY":
                return value.data
        return None

    def public_key(self, admin_handle: str, index: int) -> bytes | None:
        """The HS_PUBKEY data at ``index`` of ``admin_handle``, None when there is none."""
        for value in self._values(admin_handle, (index,)):
            if value.index == index and value.type == "HS_PUBKEY":
                return value.data
        return None

    def verify_secret(self, admin_handle: str, index: int, secret: str | bytes) -> bool:
        """True when ``secret`` is the HS_SECKEY at ``index`` of ``admin_handle``. Compared in
        constant time; False (never an error) for unknown handles and indexes."""
        given = secret.encode("utf-8") if isinstance(secret, str) else secret
        stored = self.secret_key(admin_handle, index)
        if stored is None:
            hmac.compare_digest(given, given)  # the same work as a real comparison
            return False
        return hmac.compare_digest(stored, given)

    def _values(self, handle: str, indexes: Sequence[int] = (),
                types: Sequence[str] = ()) -> tuple[HandleValue, ...]:
        """Values for internal checks: none (not an error) when the handle is unknown."""
        try:
            return self.store.get(handle, indexes, types)
        except (HandleNotFound, InvalidInput):
            return ()

    # Authorization

    def authorize(self, principal: ValueReference, handle: str,
                  permission: AdminPermission) -> None:
        """Return if an HS_ADMIN of ``handle`` grants ``permission`` to ``principal``, else
        raise NotAuthorized (also when the handle does not exist)."""
        if not self.is_admin(principal, handle, permission):
            raise NotAuthorized(f"{principal.index}:{principal.handle} lacks "
                                f"{_name(permission)} on {handle}")

    def _authorize_existing(self, principal: ValueReference, handle: str,
                            permission: AdminPermission) -> None:
        """:meth:`authorize` for an operation on an existing handle: HANDLE_NOT_FOUND when it
        does not exist (as Handle.Net answers; resolution tells that to anyone anyway)."""
        if not self.is_admin(principal, handle, permission):
            if not self.store.exists(canonical_handle(handle)[0]):
                raise HandleNotFound(f"{handle} does not exist")
            self.authorize(principal, handle, permission)

    def is_admin(self, principal: ValueReference, handle: str,
                 permission: AdminPermission) -> bool:
        try:
            who = ValueReference(normalize_handle(principal.handle), principal.index)
        except InvalidInput:
            return False
        for value in filter(is_admin_value, self._values(handle)):
            record = _admin_record(handle, value)
            if record is not None and record.permissions & permission == permission \
                    and self._names(record, who):
                return True
        return False

    def _names(self, record: AdminRecord, who: ValueReference) -> bool:
        """Whether ``record`` names ``who``, directly or through one HS_VLIST held here."""
        try:
            target = normalize_handle(record.handle)
        except InvalidInput:
            return False
        if _matches(target, record.index, who):
            return True
        if record.index == 0:
            return False
        for value in self._values(target, (record.index,)):
            if value.type != "HS_VLIST":
                continue
            try:
                members = decode_vlist(value.data)
            except ProtocolError:
                return False
            return any(_member(member, who) for member in members)
        return False

    def _guard_for_create(self, handle: str) -> tuple[str, AdminPermission]:
        """(handle whose HS_ADMIN decides, permission) for creating ``handle``."""
        return _guard_for(*canonical_handle(handle))

    # Administration

    def create_handle(self, principal: ValueReference, handle: str,
                      values: Sequence[HandleValue], *, overwrite: bool = False) -> str:
        """Create ``handle`` (ADD_HANDLE on its prefix record; ADD_NA on the parent's for a
        prefix record). Values are stamped with the current time; without an HS_ADMIN the
        handle gets one at index 100 naming ``principal`` with every right. ``overwrite``
        replaces an existing handle's values if the principal may also delete it."""
        self._writable()
        guard, permission = self._guard_for_create(handle)
        self.authorize(principal, guard, permission)
        name, _ = canonical_handle(handle)
        if overwrite and self.store.exists(name):
            self.authorize(principal, name, AdminPermission.DELETE_HANDLE)
        stamped = self._prepare(name, values)
        if not any(map(is_admin_value, stamped)):
            stamped += (HandleValue(_free_index(stamped), ADMIN_TYPE, _encode_admin(principal),
                                    timestamp=self._now()),)
        created = self.store.create_handle(name, stamped, overwrite=overwrite)
        self._changed(created)
        return created

    def create_many(self, principal: ValueReference,
                    items: Sequence[tuple[str, Sequence[HandleValue]]]) -> list[str]:
        """Batch registration: up to 10,000 new handles in one transaction, all or none
        (:meth:`IdentifierStore.create_many`), each checked and stamped as
        :meth:`create_handle` does; ADD_HANDLE is checked once per prefix of the batch.
        Errors name the item (``items[i]...``)."""
        self._writable()
        if len(items) > MAX_BATCH:
            raise InvalidInput(f"{len(items)} handles; at most {MAX_BATCH} per call", "items")
        guards: dict[str, tuple[str, AdminPermission]] = {}
        prepared: list[tuple[str, str, tuple[HandleValue, ...]]] = []
        seen: set[str] = set()
        admin = HandleValue(ADMIN_INDEX, ADMIN_TYPE, _encode_admin(principal))
        checks = self._checks
        for i, (handle, values) in enumerate(items):
            try:
                name, prefix = canonical_handle(handle)
                if prefix not in guards or prefix == GLOBAL_PREFIX:
                    guards[name if prefix == GLOBAL_PREFIX else prefix] = _guard_for(name,
                                                                                      prefix)
                checked = check_values(values)
                for check in checks:
                    check(name, checked)
            except InvalidInput as exc:
                raise _item_error(exc, i) from None
            if name in seen:  # named here, not later by the store without its item
                raise HandleExists(f"items[{i}].handle: {name} appears twice in the batch")
            seen.add(name)
            if not any(map(is_admin_value, checked)):
                if any(v.index == ADMIN_INDEX for v in checked):
                    # the first free index from 100 (found by review: max + 1 could pass
                    # 2**32 - 1 and fail without naming the item)
                    checked += (HandleValue(_free_index(checked), ADMIN_TYPE, admin.data),)
                else:
                    checked += (admin,)
            prepared.append((name, prefix, checked))
        for guard, permission in sorted(set(guards.values())):
            self.authorize(principal, guard, permission)
        created = self.store.create_checked(prepared, timestamp=self._now())
        for name in created:
            self._changed(name)
        return created

    def mint_handle(self, principal: ValueReference, prefix: str,
                    values: Sequence[HandleValue]) -> str:
        """Create a handle under ``prefix`` with a new suffix (the MINT flag); its name."""
        for _ in range(_MINT_ATTEMPTS):
            suffix = self.store.mint_suffix(prefix)
            try:
                return self.create_handle(principal, f"{prefix}/{suffix}", values)
            except HandleExists:
                continue
        raise HandleExists(f"could not mint a free suffix under {prefix}")

    def delete_handle(self, principal: ValueReference, handle: str) -> None:
        self._writable()
        name, prefix = canonical_handle(handle)
        if prefix == GLOBAL_PREFIX:
            self.authorize(principal, parent_record(name.partition("/")[2]),
                           AdminPermission.DELETE_NA)
        else:
            self._authorize_existing(principal, name, AdminPermission.DELETE_HANDLE)
        self.store.delete_handle(name)
        self._changed(name)

    def add_values(self, principal: ValueReference, handle: str,
                   values: Sequence[HandleValue]) -> None:
        self._writable()
        checked = check_values(values)
        self._authorize_add(principal, handle, checked)
        self.store.add_values(handle, self._prepare(handle, checked,
                                                    kept=self._values(handle)))
        self._changed(handle)

    def _authorize_add(self, principal: ValueReference, handle: str,
                       added: Sequence[HandleValue]) -> None:
        self._authorize_existing(principal, handle, AdminPermission.ADD_VALUE)
        if any(map(is_admin_value, added)):
            self.authorize(principal, handle, AdminPermission.ADD_ADMIN)

    def _authorize_modify(self, principal: ValueReference, handle: str,
                          changed: Sequence[HandleValue], current: Sequence[HandleValue]
                          ) -> None:
        """Rights to replace the ``current`` values by ``changed``: MODIFY_ADMIN too when an
        HS_ADMIN is on either side (a value turned into, or out of, an HS_ADMIN)."""
        self._authorize_existing(principal, handle, AdminPermission.MODIFY_VALUE)
        if any(map(is_admin_value, (*changed, *current))):
            self.authorize(principal, handle, AdminPermission.MODIFY_ADMIN)

    def put_values(self, principal: ValueReference, handle: str,
                   values: Sequence[HandleValue]) -> bool:
        """Add ``values``, replacing those at indexes the handle has, in one write: all or
        nothing (the HTTP API's ``PUT ?index=``). Needs the rights of both an addition and a
        modification, as far as the values are new or replace others. True if all were new."""
        self._writable()
        checked = check_values(values)
        stored = self._values(handle)
        changed = {v.index for v in checked}
        present = {v.index for v in stored} & changed
        if present != changed:
            self._authorize_add(principal, handle,
                                [v for v in checked if v.index not in present])
        if present:
            self._authorize_modify(principal, handle,
                                   [v for v in checked if v.index in present],
                                   [v for v in stored if v.index in present])
        self.store.put_values(handle, self._prepare(
            handle, checked, kept=[v for v in stored if v.index not in changed]))
        self._changed(handle)
        return not present

    def remove_values(self, principal: ValueReference, handle: str,
                      indexes: Sequence[int]) -> None:
        self._writable()
        self._authorize_existing(principal, handle, AdminPermission.REMOVE_VALUE)
        gone = set(indexes)
        stored = self._values(handle)
        if any(is_admin_value(v) for v in stored if v.index in gone):
            self.authorize(principal, handle, AdminPermission.REMOVE_ADMIN)
        self._check_record(handle, (), [v for v in stored if v.index not in gone])
        self.store.remove_values(handle, indexes)
        self._changed(handle)

    def modify_values(self, principal: ValueReference, handle: str,
                      values: Sequence[HandleValue]) -> None:
        self._writable()
        checked = check_values(values)
        changed = {v.index for v in checked}
        stored = self._values(handle)
        self._authorize_modify(principal, handle, checked,
                               [v for v in stored if v.index in changed])
        self.store.modify_values(handle, self._prepare(
            handle, checked, kept=[v for v in stored if v.index not in changed]))
        self._changed(handle)

    def list_handles(self, principal: ValueReference, prefix: str, *, page: int = 0,
                     limit: int = 100) -> list[str]:
        """Handles under ``prefix`` (LIST_HANDLES on its prefix record)."""
        self.authorize(principal, prefix_handle(prefix), AdminPermission.LIST_HANDLES)
        return self.store.list_handles(prefix, page=page, limit=limit)

    def _now(self) -> int:
        return int(self._clock())

    def _prepare(self, handle: str, values: Sequence[HandleValue], *,
                 kept: Sequence[HandleValue] | None = None) -> tuple[HandleValue, ...]:
        """Checked values, stamped with the current time, passed through the value checks:
        alone for a new handle, or as part of the record they will be in (with the stored
        values ``kept``)."""
        now = self._now()
        stamped = tuple(HandleValue(v.index, v.type, v.data, v.ttl_type, v.ttl, now,
                                    v.permissions, v.references) for v in check_values(values))
        if kept is None:
            for check in self._checks:
                check(handle, stamped)
        else:
            self._check_record(handle, stamped, kept)
        return stamped

    def _check_record(self, handle: str, change: tuple[HandleValue, ...],
                      kept: Sequence[HandleValue]) -> None:
        """Run the value checks on the record a change of values leaves: ``change`` plus the
        stored values ``kept``. A check of a part only would let a changed MN_DATA escape its
        template (found by review). Errors about a stored value name it by its index; errors
        about the change name it as the request did (``values[i]``)."""
        merged = (*change, *kept)
        try:
            for check in self._checks:
                check(handle, merged)
        except InvalidInput as exc:
            raise _repointed(exc, change, merged) from None


def _repointed(exc: InvalidInput, change: tuple[HandleValue, ...],
               merged: tuple[HandleValue, ...]) -> InvalidInput:
    """``exc`` with a field ``values[k]...`` about a stored value (k past the change) named
    by that value's index instead."""
    field = exc.field or ""
    head, bracket, rest = field.partition("[")
    number, close, tail = rest.partition("]")
    if head != "values" or not bracket or not close or not ascii_digits(number, 10) \
            or int(number) < len(change) or int(number) >= len(merged):
        return exc
    message = str(exc).removeprefix(f"{exc.field}: ")
    stored = merged[int(number)]
    return type(exc)(f"{message} (the stored value at index {stored.index})",
                     f"stored[{stored.index}]{tail}")


def _free_index(values: Sequence[HandleValue]) -> int:
    """The first index from 100 (HS_ADMIN's usual one) that ``values`` leave free."""
    taken = {v.index for v in values}
    index = ADMIN_INDEX
    while index in taken:
        index += 1
    return index


def _guard_for(name: str, prefix: str) -> tuple[str, AdminPermission]:
    """(handle whose HS_ADMIN decides, permission) for creating the canonical ``name``."""
    if prefix == GLOBAL_PREFIX:
        return parent_record(name.partition("/")[2]), AdminPermission.ADD_NA
    return prefix_handle(prefix), AdminPermission.ADD_HANDLE


def _item_error(exc: InvalidInput, i: int) -> InvalidInput:
    """``exc`` about item ``i`` of a batch: its field prefixed with ``items[i].``."""
    field = exc.field or "handle"
    message = str(exc).removeprefix(f"{exc.field}: ") if exc.field else str(exc)
    if field != "handle" and not field.startswith("values"):
        field = f"values.{field}"
    cls = InvalidValue if isinstance(exc, InvalidValue) else InvalidInput
    return cls(message, f"items[{i}].{field}")


def _admin_record(handle: str, value: HandleValue) -> AdminRecord | None:
    try:
        return decode_admin(value.data)
    except ProtocolError as exc:
        log.warning("ignoring undecodable HS_ADMIN %d of %s: %s", value.index, handle, exc)
        return None


def _encode_admin(principal: ValueReference) -> bytes:
    return encode_admin(AdminRecord(ALL_ADMIN_PERMISSIONS, principal.handle, principal.index))


def _matches(handle: str, index: int, who: ValueReference) -> bool:
    """A reference names ``who``: same handle and index; index 0 means any index."""
    return handle == who.handle and index in (0, who.index)


def _member(member: ValueReference, who: ValueReference) -> bool:
    try:
        return _matches(normalize_handle(member.handle), member.index, who)
    except InvalidInput:
        return False


def _name(permission: AdminPermission) -> str:
    return permission.name or str(int(permission))
