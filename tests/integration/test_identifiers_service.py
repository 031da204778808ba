"""The identifier service over a real store (SQLite and PostgreSQL): permissions, admins across
prefixes, HS_VLIST groups, secret keys, prefix bootstrap and referrals."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from millnet.errors import InvalidInput
from millnet.identifiers import (
    AuthenticationNeeded,
    HandleExists,
    HandleNotFound,
    IdentifierService,
    IdentifierStore,
    InvalidValue,
    Local,
    NotAuthorized,
    NotResponsible,
    Referral,
    ValueNotFound,
    bootstrap_prefix,
)
from millnet.identifiers.core.delegation import admin_record_value, site_value
from millnet.protocols.handle import (
    AdminPermission,
    HandleValue,
    Permission,
    ServerRecord,
    SiteInfo,
    ValueReference,
    address_octets,
    decode_admin,
    decode_vlist,
    encode_serv,
    encode_vlist,
    prefix_handle,
)
from tests.integration.identifier_fixtures import identifier_url, shared_store, store

__all__ = ["identifier_url", "shared_store", "store"]  # fixtures

P = AdminPermission
SITE = SiteInfo(servers=(ServerRecord(1, address_octets("192.0.2.5")),))
OTHER_SITE = SiteInfo(serial_number=2, servers=(ServerRecord(1, address_octets("192.0.2.9")),))
ADMIN5 = ValueReference("88.100.5/ADMIN", 300)
ADMIN6 = ValueReference("88.100.6/ADMIN", 300)
NOW = 1_700_000_000
URL = HandleValue(1, "URL", b"https://plant.example/pump-1")
SECRET = HandleValue(2, "EMAIL", b"private@plant.example",
                     permissions=Permission.ADMIN_READ | Permission.ADMIN_WRITE)


@pytest.fixture
def service(store: IdentifierStore) -> IdentifierService:
    bootstrap_prefix(store, "88.100.5", "secret-5", SITE, now=NOW)
    bootstrap_prefix(store, "88.100.6", "secret-6", SITE, now=NOW)
    return IdentifierService(store, ["88.100.5", "88.100.6"], clock=lambda: NOW)


def test_bootstrap_creates_the_prefix_record_and_admin_handle_once(store: IdentifierStore) -> None:
    assert bootstrap_prefix(store, "88.100.abc", "s3cret", SITE, now=NOW)
    record = store.get("0.NA/88.100.ABC")
    admin = decode_admin(record[1].data) if record[1].type == "HS_ADMIN" else None
    assert [v.type for v in record] == ["HS_SITE", "HS_ADMIN", "HS_VLIST"]
    assert admin is not None and admin.handle == "88.100.ABC/ADMIN" and admin.index == 300
    assert admin.permissions == 0x0FFF
    # 200:0.NA/<prefix> lists the prefix admin (the default owner Handle.Net tools write).
    assert record[2].index == 200
    assert decode_vlist(record[2].data) == (ValueReference("88.100.ABC/ADMIN", 300),)
    keys = store.get("88.100.ABC/ADMIN", types=["HS_SECKEY"])
    assert keys[0].index == 300 and keys[0].data == b"s3cret"
    assert not keys[0].permissions & Permission.PUBLIC_READ
    before = (store.get("0.NA/88.100.ABC"), store.get("88.100.ABC/ADMIN"))
    assert not bootstrap_prefix(store, "88.100.abc", "other", SITE, now=NOW + 5)
    assert (store.get("0.NA/88.100.ABC"), store.get("88.100.ABC/ADMIN")) == before
    # A restart with another site configuration updates HS_SITE only.
    assert not bootstrap_prefix(store, "88.100.ABC", "other", OTHER_SITE, now=NOW + 9)
    assert store.get("0.NA/88.100.ABC", indexes=[1]) == (site_value(OTHER_SITE, timestamp=NOW + 9),)
    assert store.get("88.100.ABC/ADMIN") == before[1]


def test_verify_secret(service: IdentifierService) -> None:
    assert service.verify_secret("88.100.5/ADMIN", 300, "secret-5")
    assert service.verify_secret("88.100.5/ADMIN", 300, b"secret-5")
    assert not service.verify_secret("88.100.5/ADMIN", 300, "secret-6")
    assert not service.verify_secret("88.100.5/ADMIN", 100, "secret-5")  # the HS_ADMIN index
    assert not service.verify_secret("88.100.5/admin", 300, "secret-5")  # suffix case differs
    assert not service.verify_secret("88.100.7/ADMIN", 300, "secret-5")
    assert not service.verify_secret("not a handle", 300, "x")
    assert service.secret_key("88.100.5/ADMIN", 300) == b"secret-5"


def test_public_only_resolution_hides_admin_read_values(service: IdentifierService) -> None:
    service.create_handle(ADMIN5, "88.100.5/PUMP-1", [URL, SECRET])
    public = service.resolve("88.100.5/PUMP-1")
    assert [(v.index, v.type) for v in public] == [(1, "URL"), (100, "HS_ADMIN")]
    with pytest.raises(ValueNotFound):
        service.resolve("88.100.5/PUMP-1", types=["EMAIL"])
    with pytest.raises(AuthenticationNeeded):
        service.resolve("88.100.5/PUMP-1", types=["EMAIL"], public_only=False)
    found = service.resolve("88.100.5/PUMP-1", types=["EMAIL"], public_only=False,
                            principal=ADMIN5)
    assert [(v.index, v.data) for v in found] == [(2, SECRET.data)]
    with pytest.raises(NotAuthorized):
        service.resolve("88.100.5/PUMP-1", public_only=False, principal=ADMIN6)
    with pytest.raises(HandleNotFound):
        service.resolve("88.100.5/pump-1")
    assert service.resolve("88.100.5/ADMIN", types=["HS_SECKEY."], public_only=False,
                           principal=ADMIN5)[0].data == b"secret-5"


def test_created_values_are_stamped_and_get_a_default_admin(service: IdentifierService) -> None:
    service.create_handle(ADMIN5, "88.100.5/P2", [URL])
    url, admin = service.store.get("88.100.5/P2")
    assert url.timestamp == NOW and admin.type == "HS_ADMIN" and admin.index == 100
    assert decode_admin(admin.data).handle == "88.100.5/ADMIN"
    with pytest.raises(InvalidValue, match=r"values\[0\]\.data"):
        service.create_handle(ADMIN5, "88.100.5/P3", [HandleValue(1, "HS_ADMIN", b"\x01")])


def test_an_admin_of_one_prefix_cannot_touch_another(service: IdentifierService) -> None:
    service.create_handle(ADMIN6, "88.100.6/VALVE", [URL])
    new = HandleValue(5, "URL", b"x")
    attempts: list[Callable[[], object]] = [
        lambda: service.create_handle(ADMIN5, "88.100.6/MINE", [URL]),
        lambda: service.mint_handle(ADMIN5, "88.100.6", [URL]),
        lambda: service.delete_handle(ADMIN5, "88.100.6/VALVE"),
        lambda: service.add_values(ADMIN5, "88.100.6/VALVE", [new]),
        lambda: service.modify_values(ADMIN5, "88.100.6/VALVE", [URL]),
        lambda: service.remove_values(ADMIN5, "88.100.6/VALVE", [1]),
        lambda: service.list_handles(ADMIN5, "88.100.6"),
        lambda: service.create_handle(ADMIN5, "88.100.6/VALVE", [URL], overwrite=True),
        lambda: service.add_values(ADMIN5, "0.NA/88.100.6", [site_value(OTHER_SITE, 9)]),
        lambda: service.create_handle(ADMIN5, "0.NA/88.100.6.1", [URL]),
        lambda: service.delete_handle(ADMIN5, "0.NA/88.100.6"),
        lambda: service.create_handle(ValueReference("88.100.5/ADMIN", 301), "88.100.5/X",
                                      [URL]),
    ]
    for attempt in attempts:
        with pytest.raises(NotAuthorized):
            attempt()
    assert service.store.get("88.100.6/VALVE")[0] == service.resolve("88.100.6/VALVE")[0]
    assert service.store.count("88.100.6") == 2  # ADMIN and VALVE


def test_admin_operations_with_the_right_permissions(service: IdentifierService) -> None:
    name = service.mint_handle(ADMIN5, "88.100.5", [URL])
    assert name.startswith("88.100.5/") and len(name) == len("88.100.5/") + 26
    service.add_values(ADMIN5, name, [HandleValue(7, "EMAIL", b"a@b")])
    service.modify_values(ADMIN5, name, [HandleValue(7, "EMAIL", b"c@d")])
    service.remove_values(ADMIN5, name, [7])
    assert name in service.list_handles(ADMIN5, "88.100.5")
    service.delete_handle(ADMIN5, name)
    with pytest.raises(HandleExists):
        service.create_handle(ADMIN5, "88.100.5/ADMIN", [URL])


def test_limited_admins_need_the_admin_bits_for_hs_admin_values(
        service: IdentifierService) -> None:
    clerk = ValueReference("88.100.5/CLERK", 1)
    values_only = P.ADD_VALUE | P.MODIFY_VALUE | P.REMOVE_VALUE
    service.create_handle(ADMIN5, "88.100.5/LOT-1", [
        URL, admin_record_value(ADMIN5), admin_record_value(clerk, 101, values_only)])
    service.add_values(clerk, "88.100.5/LOT-1", [HandleValue(2, "EMAIL", b"x")])
    service.remove_values(clerk, "88.100.5/LOT-1", [2])
    clerk_attempts: tuple[Callable[[], object], ...] = (
        lambda: service.add_values(clerk, "88.100.5/LOT-1", [admin_record_value(clerk, 102)]),
        lambda: service.remove_values(clerk, "88.100.5/LOT-1", [100]),
        lambda: service.modify_values(clerk, "88.100.5/LOT-1", [admin_record_value(clerk, 100)]),
        lambda: service.delete_handle(clerk, "88.100.5/LOT-1"),
    )
    for attempt in clerk_attempts:
        with pytest.raises(NotAuthorized):
            attempt()


def test_admins_listed_through_an_hs_vlist_group(service: IdentifierService) -> None:
    alice = ValueReference("88.100.5/ALICE", 300)
    bob = ValueReference("88.100.5/BOB", 300)
    nested = ValueReference("88.100.5/NESTED", 200)
    service.create_handle(ADMIN5, "88.100.5/OPS", [
        HandleValue(200, "HS_VLIST", encode_vlist((alice, nested))),
        HandleValue(201, "HS_VLIST", encode_vlist((bob,)))])
    service.create_handle(ADMIN5, "88.100.5/NESTED", [
        HandleValue(200, "HS_VLIST", encode_vlist((bob,)))])
    service.create_handle(ADMIN5, "88.100.5/LINE", [
        URL, admin_record_value(ADMIN5), admin_record_value(ValueReference("88.100.5/OPS", 200),
                                                            101)])
    assert service.is_admin(alice, "88.100.5/LINE", P.MODIFY_VALUE)
    assert service.is_admin(ValueReference("88.100.5/alice", 300), "88.100.5/LINE",
                            P.MODIFY_VALUE) is False  # suffixes are case-sensitive
    assert not service.is_admin(bob, "88.100.5/LINE", P.MODIFY_VALUE)  # two levels down
    assert not service.is_admin(ValueReference("88.100.5/ALICE", 301), "88.100.5/LINE",
                                P.MODIFY_VALUE)
    # An HS_VLIST of another prefix's admins does not open this prefix to them.
    assert not service.is_admin(ADMIN6, "88.100.5/LINE", P.MODIFY_VALUE)


def test_any_index_admin_reference(service: IdentifierService) -> None:
    service.create_handle(ADMIN5, "88.100.5/ANY", [
        URL, admin_record_value(ValueReference("88.100.5/TEAM", 0))])
    assert service.is_admin(ValueReference("88.100.5/TEAM", 42), "88.100.5/ANY", P.ADD_VALUE)
    assert not service.is_admin(ValueReference("88.100.5/TEAMS", 42), "88.100.5/ANY",
                                P.ADD_VALUE)


def test_referrals_follow_the_prefix_hierarchy(store: IdentifierStore) -> None:
    # A secondary node serving 88.100, which delegated 88.100.5 to an enterprise node.
    bootstrap_prefix(store, "88.100", "secondary", SITE, now=NOW)
    store.create_handle("0.NA/88.100.5", [admin_record_value(ADMIN5),
                                          site_value(OTHER_SITE)])
    store.create_handle("0.NA/88.100.7", [admin_record_value(ADMIN5),
                                          HandleValue(2, "HS_SERV", encode_serv("0.NA/88.100.5"))])
    store.create_handle("0.NA/88.200", [site_value(OTHER_SITE)])
    secondary = IdentifierService(store, ["88.100"])
    assert secondary.locate("88.100/LOCAL") == Local("88.100")
    referral = secondary.locate("88.100.5/PUMP-1")
    assert isinstance(referral, Referral) and referral.prefix == "88.100.5"
    assert referral.values == (site_value(OTHER_SITE),)
    assert secondary.locate("88.100.5.9/X") == referral  # derived below a delegated prefix
    # HS_SERV naming a service handle held here: the referral carries its sites...
    serv = secondary.locate("88.100.7/X")
    assert isinstance(serv, Referral) and serv.values == (site_value(OTHER_SITE),)
    # ...naming one held elsewhere: the HS_SERV value itself, for the resolver to follow.
    store.modify_values("0.NA/88.100.7", [HandleValue(2, "HS_SERV",
                                                      encode_serv("88.300/SERV.X"))])
    far = secondary.locate("88.100.7/X")
    assert isinstance(far, Referral) and [v.type for v in far.values] == ["HS_SERV"]
    assert secondary.locate("88.100.8/X") == Local("88.100")  # not delegated: answered here
    assert secondary.locate("0.na/88.100.5") == Local("0.NA")  # a record held here
    assert secondary.locate("0.NA/88.100.99") == Local("88.100")  # the parent answers
    assert secondary.locate("88.200.1/X").prefix == "88.200"
    with pytest.raises(NotResponsible):
        secondary.locate("99.1/X")
    # The enterprise node answers its own prefix even though it holds its own record.
    enterprise = IdentifierService(store, ["88.100.5"])
    assert enterprise.locate("88.100.5/PUMP-1") == Local("88.100.5")
    assert prefix_handle("88.100.5") == "0.NA/88.100.5"


def test_batch_registration_is_all_or_nothing(service: IdentifierService) -> None:
    url = HandleValue(1, "URL", b"https://plant.example/batch")
    items = [(f"88.100.5/B-{i}", [url]) for i in range(50)]
    made = service.create_many(ADMIN5, items)
    assert made == [name for name, _ in items]
    got = service.store.get("88.100.5/B-7")
    assert [v.type for v in got] == ["URL", "HS_ADMIN"] and got[0].timestamp == NOW
    # One bad item: an error naming it, and nothing of the batch stored.
    bad = [(f"88.100.5/C-{i}", [url]) for i in range(10)]
    bad[4] = ("88.100.5/C-4", [HandleValue(1, "HS_ADMIN", b"\x01")])
    with pytest.raises(InvalidValue) as caught:
        service.create_many(ADMIN5, bad)
    assert caught.value.field == "items[4].values[0].data"
    bad[4] = ("88.100.5/\x00C-4", [url])
    with pytest.raises(InvalidInput) as invalid:
        service.create_many(ADMIN5, bad)
    assert invalid.value.field == "items[4].handle"
    with pytest.raises(HandleExists):
        service.create_many(ADMIN5, [("88.100.5/C-0", [url]), ("88.100.5/B-3", [url])])
    assert not service.store.exists("88.100.5/C-0")
    # A batch touching a foreign prefix is refused whole.
    with pytest.raises(NotAuthorized):
        service.create_many(ADMIN5, [("88.100.5/D-1", [url]), ("88.100.6/D-2", [url])])
    assert not service.store.exists("88.100.5/D-1")
    with pytest.raises(InvalidInput):
        service.create_many(ADMIN5, [(f"88.100.5/E-{i}", [url]) for i in range(10_001)])
