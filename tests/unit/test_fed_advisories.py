"""Advisories: parsing (errors name the field), matching an inventory by CPE vendor/product and
version ranges, replies, relays; and the inventory they are matched against (snapshot, diff)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from millnet.errors import InvalidInput
from millnet.federation.advisories import (
    Child,
    match_advisory,
    match_reply,
    parse_advisory,
    relay_messages,
)
from millnet.federation.inventory import (
    InventoryItem,
    ProbeHost,
    RegisteredDevice,
    inventory_diff,
    inventory_snapshot,
    item_from_body,
)

BASE = {"id": "CNVD-2026-0001", "title": "S7 stop by crafted packet", "severity": "critical",
        "published": "2026-11-01T00:00:00Z", "description": "..."}


def item(key: str, vendor: str, model: str, firmware: str) -> InventoryItem:
    return InventoryItem(key, "registered", vendor=vendor, model=model, firmware=firmware)


PLANT = [item("asset:a/plc1", "Siemens", "S7-1200", "V4.2.1"),
         item("asset:a/plc2", "Siemens", "S7-1200", "V4.5.0"),
         item("asset:a/plc3", "Siemens", "S7-1500", "2.9"),
         item("asset:a/hmi", "Schneider Electric", "Magelis HMI", ""),
         item("asset:a/other", "Rockwell", "1756-L8", "33.011")]


def keys(found: list) -> list[str]:  # type: ignore[type-arg]
    return [a.item_key for a in found]


def test_ranges_select_the_versions_between_their_bounds() -> None:
    adv = parse_advisory({**BASE, "affected": [{
        "cpe": "cpe:2.3:h:siemens:s7-1200:*:*:*:*:*:*:*:*",
        "versionStartIncluding": "V4.0", "versionEndExcluding": "V4.5"}]})
    assert keys(match_advisory(adv, PLANT)) == ["asset:a/plc1"]


def test_an_exact_version_and_a_wildcard_product() -> None:
    exact = parse_advisory({**BASE, "affected": [
        {"cpe": "cpe:2.3:h:siemens:s7-1500:2.9.0:*:*:*:*:*:*:*"}]})
    assert keys(match_advisory(exact, PLANT)) == ["asset:a/plc3"]
    family = parse_advisory({**BASE, "affected": [
        {"cpe": "cpe:2.3:*:siemens:s7-*:*:*:*:*:*:*:*:*", "versionEndIncluding": "4.2.1"}]})
    assert keys(match_advisory(family, PLANT)) == ["asset:a/plc1", "asset:a/plc3"]


def test_unknown_firmware_is_reported_as_uncertain() -> None:
    adv = parse_advisory({**BASE, "affected": [
        {"vendor": "Schneider Electric", "product": "Magelis HMI", "versionEndExcluding": "6.3"}]})
    [found] = match_advisory(adv, PLANT)
    assert found.item_key == "asset:a/hmi" and not found.certain
    assert match_reply(adv.id, [found])["affected"][0]["certain"] is False
    assert match_reply(adv.id, []) == {"advisory_id": adv.id, "affected": []}


@pytest.mark.parametrize(("change", "field"), [
    ({"severity": "dire"}, "severity"), ({"published": "soon"}, "published"),
    ({"id": "bad id!"}, "id"), ({"affected": []}, "affected"),
    ({"affected": [{"cpe": "cpe:2.3:h:x"}]}, "cpe"),
    ({"affected": [{"cpe": "cpe:2.3:h:a:b:*:*:*:*:*:*:*:*", "versionEndExcluding": "1;2"}]},
     "affected[0].versionEndExcluding"),
    ({"affected": [{"vendor": "a"}]}, "affected[0].product"), ({"regions": ["99"]}, "regions"),
])
def test_bad_advisories_are_refused_naming_the_field(change: dict[str, object], field: str) -> None:
    body = {**BASE, "affected": [{"vendor": "a", "product": "b"}], **change}
    with pytest.raises(InvalidInput) as info:
        parse_advisory(body)
    assert info.value.field == field


def test_relays_go_to_children_in_the_advisory_regions() -> None:
    children = [Child("ent-sz", "enterprise", "320500"), Child("ent-hz", "enterprise", "330100"),
                Child("sec-js", "secondary", "32")]
    everywhere = parse_advisory({**BASE, "affected": [{"vendor": "a", "product": "b"}]})
    assert [c for c, _, _ in relay_messages(everywhere, children)] == ["ent-hz", "ent-sz",
                                                                       "sec-js"]
    jiangsu = parse_advisory({**BASE, "affected": [{"vendor": "a", "product": "b"}],
                              "regions": ["3205"]})
    sent = relay_messages(jiangsu, children)
    assert [c for c, _, _ in sent] == ["ent-sz", "sec-js"]
    assert parse_advisory(sent[0][2]) == jiangsu  # the relayed body parses back the same


def test_inventory_merges_probe_hosts_into_registered_devices() -> None:
    devices = [RegisteredDevice("s/a/l/plc1", "plc1",
                                "Press PLC vendor=Siemens model=S7-1200 mac=AA:BB:CC:00:00:01"
                                " protocols=s7comm")]
    hosts = [ProbeHost("10.0.0.5", "aa:bb:cc:00:00:01", firmware="V4.2.1",
                       protocols=("S7comm", "snmp"), services=("102/tcp",)),
             ProbeHost("10.0.0.9", vendor="Moxa", model="NPort 5110")]
    snap = inventory_snapshot(devices, hosts)
    assert [i.key for i in snap] == ["asset:s/a/l/plc1", "host:10.0.0.9"]
    plc = snap[0]
    assert (plc.vendor, plc.model, plc.firmware, plc.address) == ("Siemens", "S7-1200",
                                                                  "V4.2.1", "10.0.0.5")
    assert plc.protocols == ("s7comm", "snmp") and plc.services == ("102/tcp",)
    assert snap[1].kind == "discovered" and snap[1].vendor == "Moxa"


def test_inventory_diff_names_added_removed_and_changed_fields() -> None:
    old = [item("a", "x", "m", "1.0"), item("b", "x", "m", "1.0")]
    new = [item("a", "x", "m", "1.1"), item("c", "y", "n", "")]
    diff = inventory_diff(old, new)
    assert [i.key for i in diff.added] == ["c"] and diff.removed == ("b",)
    assert diff.changed == (("a", {"firmware": "1.1"}),)
    assert inventory_diff(new, new).empty
    assert diff.to_body()["changed"] == [{"key": "a", "fields": {"firmware": "1.1"}}]


def test_the_advisory_published_time_is_utc() -> None:
    adv = parse_advisory({**BASE, "published": "2026-11-01T08:00:00+08:00",
                          "affected": [{"vendor": "a", "product": "b"}]})
    assert adv.published == datetime(2026, 11, 1, tzinfo=UTC)


def test_long_fields_are_clipped_so_the_parent_accepts_the_snapshot() -> None:
    deep = RegisteredDevice("x/" * 200 + "plc", "p" * 200, "vendor=" + "V" * 300)
    host = ProbeHost("10.0.0.1", services=tuple(f"{p}/tcp" for p in range(100)))
    for item in inventory_snapshot([deep], [host]):
        assert item_from_body(item.to_body()) == item
