"""Authorization invariants of the identifier service over a real store: HS_ types have one
canonical (upper-case) form, every guard recognises an HS_ADMIN value the way the admin lookup
does, no combination of HS_ADMIN permission bits short of the right ones adds, changes or
removes an admin value, and secret values are never public."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import update

from millnet.errors import MillnetError
from millnet.identifiers import IdentifierService, IdentifierStore, NotAuthorized, bootstrap_prefix
from millnet.identifiers.core.delegation import admin_record_value
from millnet.identifiers.core.schema import handles
from millnet.identifiers.core.values import stored_forms
from millnet.protocols.handle import (
    ALL_ADMIN_PERMISSIONS,
    AdminPermission,
    HandleValue,
    Permission,
    ServerRecord,
    SiteInfo,
    ValueReference,
    address_octets,
)
from tests.integration.identifier_fixtures import identifier_url, shared_store, store

__all__ = ["identifier_url", "shared_store", "store"]  # fixtures

P = AdminPermission
SITE = SiteInfo(servers=(ServerRecord(1, address_octets("192.0.2.5")),))
NOW = 1_700_000_000
OWNER = ValueReference("88.100.5/ADMIN", 300)
OPERATOR = ValueReference("88.100.5/OPERATOR", 300)
TARGET = "88.100.5/TARGET"
URL = HandleValue(1, "URL", b"https://plant.example/target")
#: how a client could spell HS_ADMIN; the store and every guard must treat them alike
ADMIN_SPELLINGS = ("HS_ADMIN", "hs_admin", "Hs_AdMiN", "HS_admin")
BITS = tuple(P(1 << i) for i in range(12))
#: the rights each kind of change of an admin value needs (the value right and the admin one)
NEEDS = {"add": P.ADD_VALUE | P.ADD_ADMIN, "modify": P.MODIFY_VALUE | P.MODIFY_ADMIN,
         "remove": P.REMOVE_VALUE | P.REMOVE_ADMIN,
         "put": P.ADD_VALUE | P.ADD_ADMIN | P.MODIFY_VALUE | P.MODIFY_ADMIN}


def _service(store: IdentifierStore) -> IdentifierService:
    bootstrap_prefix(store, "88.100.5", "secret-5", SITE, now=NOW)
    return IdentifierService(store, ["88.100.5"], clock=lambda: NOW)


def _target(store: IdentifierStore, rights: int) -> None:
    """TARGET owned by OWNER (index 100, every right); OPERATOR holds ``rights`` (index 101)."""
    store.create_handle(TARGET, [URL, admin_record_value(OWNER),
                                 admin_record_value(OPERATOR, 101, rights)], overwrite=True)


def _grab(admin_type: str) -> HandleValue:
    """An HS_ADMIN value that would make OPERATOR a full admin of TARGET."""
    return HandleValue(102, admin_type, admin_record_value(OPERATOR).data)


def _attempt(service: IdentifierService, op: str, admin_type: str) -> None:
    if op == "add":
        service.add_values(OPERATOR, TARGET, [_grab(admin_type)])
    elif op == "modify":
        service.modify_values(OPERATOR, TARGET, [HandleValue(100, admin_type,
                                                             _grab(admin_type).data)])
    elif op == "put":  # replace the owner's HS_ADMIN and add one, in one write
        service.put_values(OPERATOR, TARGET, [
            HandleValue(100, admin_type, _grab(admin_type).data), _grab(admin_type)])
    else:
        service.remove_values(OPERATOR, TARGET, [100])


def _allowed(service: IdentifierService, store: IdentifierStore, rights: int, op: str,
             admin_type: str) -> bool:
    """Whether OPERATOR with ``rights`` could ``op`` an admin value; on refusal TARGET must be
    exactly as it was."""
    _target(store, rights)
    before = store.get(TARGET)
    try:
        _attempt(service, op, admin_type)
    except NotAuthorized:
        assert store.get(TARGET) == before
        return False
    return True


# ----------------------------------------------------------------------------- regression

def test_add_value_alone_cannot_make_its_holder_an_admin(store: IdentifierStore) -> None:
    """Found by review: ADD_VALUE + READ_VALUE was refused an HS_ADMIN value but allowed an
    ``hs_admin`` one with every right, and then removed the owner and rewrote the URL."""
    service = _service(store)
    _target(store, P.ADD_VALUE | P.READ_VALUE)
    for spelling in ADMIN_SPELLINGS:
        with pytest.raises(NotAuthorized, match="ADD_ADMIN"):
            service.add_values(OPERATOR, TARGET, [_grab(spelling)])
    assert [v.index for v in store.get(TARGET)] == [1, 100, 101]
    with pytest.raises(NotAuthorized):
        service.remove_values(OPERATOR, TARGET, [100])
    with pytest.raises(NotAuthorized):
        service.modify_values(OPERATOR, TARGET, [HandleValue(1, "URL", b"https://evil/")])
    assert store.get(TARGET, [1])[0].data == URL.data


def test_hs_types_are_stored_upper_case_on_every_write(store: IdentifierStore) -> None:
    service = _service(store)
    service.create_handle(OWNER, TARGET, [URL, HandleValue(2, "hs_vlist", b"\0\0\0\0"),
                                          HandleValue(3, "hs_Admin", admin_record_value(
                                              OWNER).data)])
    service.add_values(OWNER, TARGET, [HandleValue(4, "hs_site.prefix", b"x"),
                                       HandleValue(5, "url.us", b"kept as sent")])
    service.modify_values(OWNER, TARGET, [HandleValue(2, "Hs_SeRv", b"88.100/SERVICE")])
    service.create_many(OWNER, [("88.100.5/BATCHED", [HandleValue(1, "hs_pubkey.x", b"k")])])
    store.add_values(TARGET, [HandleValue(6, "hs_serv", b"88.100/SERVICE")])
    types = {v.index: v.type for v in store.get(TARGET)}
    assert types == {1: "URL", 2: "HS_SERV", 3: "HS_ADMIN", 4: "HS_SITE.PREFIX",
                     5: "url.us", 6: "HS_SERV"}
    assert [v.type for v in store.get("88.100.5/BATCHED")] == ["HS_PUBKEY.X", "HS_ADMIN"]
    # create_handle saw the hs_Admin value as the handle's HS_ADMIN: no default one added
    assert [v.index for v in store.get(TARGET, types=["HS_ADMIN"])] == [3]


def test_a_legacy_lower_case_admin_value_is_guarded_too(store: IdentifierStore) -> None:
    """A record written before types were made canonical (straight into the database) keeps
    its ``hs_admin``: the guards still see it as an admin value."""
    service = _service(store)
    _target(store, P.ADD_VALUE | P.REMOVE_VALUE | P.MODIFY_VALUE)
    legacy = [replace(v, type="hs_admin") if v.type == "HS_ADMIN" else v
              for v in store.get(TARGET)]
    with store.engine.begin() as conn:
        wire, hidden = stored_forms(legacy)
        conn.execute(update(handles).where(handles.c.handle == TARGET)
                     .values(wire=wire, hidden=hidden))
    assert [v.type for v in store.get(TARGET)] == ["URL", "hs_admin", "hs_admin"]
    assert service.is_admin(OWNER, TARGET, ALL_ADMIN_PERMISSIONS)
    with pytest.raises(NotAuthorized, match="REMOVE_ADMIN"):
        service.remove_values(OPERATOR, TARGET, [100])
    with pytest.raises(NotAuthorized, match="MODIFY_ADMIN"):
        service.modify_values(OPERATOR, TARGET, [HandleValue(100, "URL", b"gone")])


def test_secret_keys_are_never_public(store: IdentifierStore) -> None:
    service = _service(store)
    public = int(Permission.PUBLIC_READ | Permission.PUBLIC_WRITE | Permission.ADMIN_READ)
    service.create_handle(OWNER, TARGET, [URL, HandleValue(300, "HS_SECKEY", b"k1")])
    service.add_values(OWNER, TARGET, [HandleValue(301, "hs_seckey", b"k2",
                                                   permissions=public)])
    service.create_many(OWNER, [("88.100.5/B", [HandleValue(300, "HS_SECKEY", b"k3")])])
    store.add_values(TARGET, [HandleValue(302, "HS_SECKEY", b"k4")])
    keys = [*store.get(TARGET, types=["HS_SECKEY"]), *store.get("88.100.5/B", [300])]
    assert [v.data for v in keys] == [b"k1", b"k2", b"k4", b"k3"]
    for key in keys:
        assert key.type == "HS_SECKEY"
        assert not key.permissions & (Permission.PUBLIC_READ | Permission.PUBLIC_WRITE)
        assert key.permissions & Permission.ADMIN_READ
    assert all(v.type != "HS_SECKEY" for v in service.resolve(TARGET))
    assert service.verify_secret(TARGET, 301, "k2")


def test_put_values_needs_the_rights_of_what_it_does(store: IdentifierStore) -> None:
    """PUT ?index= adds and replaces in one write: ADD_VALUE alone cannot replace, and a
    refused part leaves the other undone."""
    service = _service(store)
    _target(store, P.ADD_VALUE)
    before = store.get(TARGET)
    note = HandleValue(5, "NOTE", b"new")
    with pytest.raises(NotAuthorized, match="MODIFY_VALUE"):
        service.put_values(OPERATOR, TARGET, [note, HandleValue(1, "URL", b"https://evil/")])
    assert store.get(TARGET) == before
    assert service.put_values(OPERATOR, TARGET, [note])
    assert not service.put_values(OWNER, TARGET, [HandleValue(5, "NOTE", b"changed"),
                                                  HandleValue(6, "NOTE", b"added")])
    assert [v.data for v in store.get(TARGET, [5, 6])] == [b"changed", b"added"]


# ----------------------------------------------------------------------------- every bit

@pytest.fixture(scope="module")
def sqlite_service(tmp_path_factory: pytest.TempPathFactory
                   ) -> Iterator[tuple[IdentifierService, IdentifierStore]]:
    path: Path = tmp_path_factory.mktemp("authz") / "ids.sqlite"
    with IdentifierStore.open(f"sqlite:///{path}") as own:
        yield _service(own), own


@pytest.mark.parametrize("op", sorted(NEEDS))
def test_each_permission_bit_alone_decides_nothing_else(
        sqlite_service: tuple[IdentifierService, IdentifierStore], op: str) -> None:
    """Every right but one bit of the needed pair is refused; the needed pair plus any one
    other bit is allowed (and takes effect)."""
    service, own = sqlite_service
    for bit in BITS:
        without = int(ALL_ADMIN_PERMISSIONS) & ~bit
        assert _allowed(service, own, without, op, "HS_ADMIN") == (not bit & NEEDS[op]), bit
        assert _allowed(service, own, NEEDS[op] | bit, op, "hs_admin"), bit


RIGHTS = settings(max_examples=150, deadline=None,
                  suppress_health_check=[HealthCheck.function_scoped_fixture])


@RIGHTS
@given(rights=st.integers(0, 0xFFFF), op=st.sampled_from(sorted(NEEDS)),
       spelling=st.sampled_from(ADMIN_SPELLINGS))
def test_no_combination_short_of_the_right_ones_changes_an_admin_value(
        sqlite_service: tuple[IdentifierService, IdentifierStore], rights: int, op: str,
        spelling: str) -> None:
    service, own = sqlite_service
    try:
        allowed = _allowed(service, own, rights, op, spelling)
    except MillnetError as exc:  # anything else than a refusal of rights is a bug here
        raise AssertionError(f"{op} with {rights:#x}: {exc!r}") from exc
    assert allowed == (rights & NEEDS[op] == NEEDS[op])
    if allowed and op != "remove":
        admins = [v for v in own.get(TARGET) if v.type == "HS_ADMIN"]
        assert len(admins) == 3 - (op == "modify")  # every admin value canonical
