"""A real three-level chain (issue 13): a national node, a secondary and two enterprises, each a
``millnet node`` process enrolled with one-time tokens through the CLI. Security events raised
by real failed logins at an enterprise reach the national node; kill -9 of the secondary in the
middle of a stream of events loses and duplicates none; an advisory issued at the national
node reaches both enterprises and their answers come back up; an enterprise's key cannot write
or read another enterprise's data at the secondary.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from millnet.bench.federation_chain import (
    ChainNode,
    applications,
    install_apply_log,
    issue_token,
    query,
    wait_policy,
)
from tests.support.fedforge import forged_exchange

T = TypeVar("T")
# An enterprise raises auth.brute_force after 2 failures from one source (medium; high from
# 20 on) and reads the client address from X-Forwarded-For, so that one test can be many
# attackers.
ENTERPRISE = {"MILLNET_SECURITY__BRUTE_FORCE_FAILURES": "2",
              "MILLNET_API__TRUSTED_PROXIES": '["127.0.0.1/32"]'}
STREAM = 120  # attacking sources in the stream of (b): one event each


def parallel(work: Callable[[T], Any], items: list[T]) -> list[Any]:
    with ThreadPoolExecutor(len(items)) as pool:
        return list(pool.map(work, items))


def wait_for(what: str, check: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


@dataclass
class Chain:
    nat: ChainNode
    sec: ChainNode
    a: ChainNode
    b: ChainNode
    admin: dict[str, str]  # node-wide admin API tokens by node name


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[Chain]:
    """The chain, started as early as each step allows (on 2 shared cores a node takes seconds
    to import and start): the parent must serve before a child enrolls, a child is enrolled
    before it starts. The secondary and the enterprises enroll through the CLI, with the
    operator's recipe; tokens are made in this process (each CLI run costs seconds)."""
    nat = ChainNode("nat", "national", tmp_path)
    sec = ChainNode("sec-31", "secondary", tmp_path)
    a = ChainNode("plant-a", "enterprise", tmp_path, dict(ENTERPRISE))
    b = ChainNode("plant-b", "enterprise", tmp_path, dict(ENTERPRISE))
    nodes = [nat, sec, a, b]
    try:
        for node in nodes:
            node.data.mkdir(parents=True)
        token = nat.cli("federation", "token", sec.name, "--role", "secondary", "--region",
                        "310000", "--sector", "C", "--prefix", "88.100").splitlines()[-1]
        install_apply_log(nat.db)
        nat.start()
        admin = {"nat": nat.admin_token(), "a": a.admin_token()}
        nat.wait_ready()
        sec.cli("federation", "enroll", "--parent", nat.url, "--token", token)
        sec.start()
        tokens = [issue_token(sec, a.name, "310100", "C34", "88.100.1"),
                  issue_token(sec, b.name, "310100", "C38", "88.100.2")]
        nat.cli("federation", "policy", "--min-severity", "info")
        sec.wait_ready()
        parallel(lambda e: e[0].cli("federation", "enroll", "--parent", sec.url, "--token",
                                    e[1]), list(zip([a, b], tokens, strict=True)))
        for e in (a, b):
            e.start()
        parallel(lambda e: e.wait_ready(), [a, b])
        wait_policy(sec, "info")
        yield Chain(nat, sec, a, b, admin)
    finally:
        for node in nodes:
            node.kill()


def fail_logins(node: ChainNode, source: str, token: str, times: int) -> None:
    with httpx.Client(base_url=node.url, timeout=10) as client:
        for _ in range(times):
            r = client.get("/api/v1/assets", headers={"authorization": f"Bearer {token}",
                                                      "x-forwarded-for": source})
            assert r.status_code == 401


def attack(node: ChainNode, sources: int) -> None:
    """Two failures from each of ``sources`` addresses: one brute force event each."""
    for i in range(1, sources + 1):
        fail_logins(node, f"10.9.0.{i}", f"mnt_bad-{i}", 2)


def national_events(nat: ChainNode, origin: str) -> dict[str, tuple[str, int]]:
    rows = query(nat.db, "SELECT event_id, kind, severity FROM fed_events WHERE origin = ?",
                 origin)
    return {str(i): (str(k), int(str(s))) for i, k, s in rows}


def enterprise_event_ids(node: ChainNode, source_prefix: str) -> set[str]:
    rows = query(node.db, "SELECT id FROM security_events WHERE kind = 'auth.brute_force' "
                          "AND source LIKE ?", source_prefix + "%")
    return {f"se-{r[0]}" for r in rows}


def test_three_level_chain(chain: Chain) -> None:
    check_brute_force_reaches_national(chain.nat, chain.a)
    check_secondary_crash_mid_stream(chain.nat, chain.sec, chain.a)
    check_advisory_round_trip(chain)
    check_enterprise_cannot_speak_for_another(chain)


def check_brute_force_reaches_national(nat: ChainNode, a: ChainNode) -> None:
    """(a) 20 failed logins from one address: a high auth.brute_force event at the top."""
    fail_logins(a, "127.0.0.1", "mnt_not-a-token", 20)

    def arrived() -> bool:
        return any(kind == "auth.brute_force" and severity >= 3
                   for kind, severity in national_events(nat, a.name).values())
    wait_for("the brute force event at the national node", arrived)


def check_secondary_crash_mid_stream(nat: ChainNode, sec: ChainNode, a: ChainNode) -> None:
    """(b) a stream of events (one per attacking address) while the secondary is killed with
    SIGKILL and restarted: every event reaches the national node, each applied once."""
    with ThreadPoolExecutor(1) as pool:
        stream = pool.submit(attack, a, STREAM)
        wait_for("events at the national node",
                 lambda: len(applications(nat.db, a.name)) >= 10)
        sec.kill()
        time.sleep(1.0)
        sec.start()
        stream.result(timeout=60)
    wait_for("every event stored at the enterprise",
             lambda: len(enterprise_event_ids(a, "10.9.0.")) == STREAM)
    sent = enterprise_event_ids(a, "10.9.0.")
    wait_for("every event at the national node",
             lambda: sent <= {e for _, e in applications(nat.db, a.name)}, timeout=60)
    applied = applications(nat.db, a.name)
    assert {n for (_, e), n in applied.items() if e in sent} == {1}, "an event applied twice"
    assert sent <= set(national_events(nat, a.name))


def create_device(node: ChainNode, admin: str, description: str) -> None:
    """A device under a new tenant's tree, through the enterprise's API."""
    headers = {"authorization": f"Bearer {admin}"}
    with httpx.Client(base_url=node.url + "/api/v1", headers=headers, timeout=10) as client:
        r = client.post("/tenants", json={"name": "acme"})
        assert r.status_code == 201, r.text
        tenant, parent = r.json()["id"], None
        for kind in ("enterprise", "site", "area", "line", "device"):
            r = client.post("/assets", json={
                "parent_id": parent, "kind": kind, "name": f"{kind}-1", "tenant_id": tenant,
                "description": description if kind == "device" else None})
            assert r.status_code == 201, r.text
            parent = r.json()["id"]


def check_advisory_round_trip(chain: Chain) -> None:
    """(c) an advisory from the top reaches both enterprises through the secondary; A's
    matching device and B's empty answer come back up."""
    nat, a, b = chain.nat, chain.a, chain.b
    create_device(a, chain.admin["a"], "Press PLC vendor=Siemens model=S7-1200 firmware=V4.2.1")
    advisory = {"id": "CNVD-2026-0042", "title": "S7-1200 web server", "severity": "high",
                "published": "2026-11-01T00:00:00Z",
                "affected": [{"cpe": "cpe:2.3:h:siemens:s7-1200:*:*:*:*:*:*:*:*",
                              "versionEndExcluding": "4.5"}]}
    headers = {"authorization": f"Bearer {chain.admin['nat']}"}
    r = httpx.post(nat.url + "/api/v1/federation/advisories", json=advisory, headers=headers,
                   timeout=10)
    assert r.status_code == 201, r.text

    def replies() -> dict[str, int]:
        rows = query(nat.db, "SELECT origin, affected FROM fed_advisory_replies "
                             "WHERE advisory_id = ?", advisory["id"])
        return {str(o): int(str(n)) for o, n in rows}
    wait_for("both answers at the national node", lambda: len(replies()) == 2)
    assert replies() == {a.name: 1, b.name: 0}
    for e in (a, b):
        assert query(e.db, "SELECT id FROM fed_advisories") == [(advisory["id"],)]
    matches = query(nat.db, "SELECT origin, vendor, product, version FROM "
                            "fed_advisory_matches WHERE advisory_id = ?", advisory["id"])
    assert matches == [(a.name, "siemens", "s7-1200", "V4.2.1")]


def check_enterprise_cannot_speak_for_another(chain: Chain) -> None:
    """(d) with A's key: a batch claiming B's origin is refused, a batch claiming to be B
    fails its signature, and A's exchange never carries what waits for B."""
    nat, sec, a, b = chain.nat, chain.sec, chain.a, chain.b
    a.kill()  # its link would race the forged seqs
    b.kill()  # so that what the secondary holds for B waits in its outbox
    order = {"id": "RO-2026-0001", "targets": [b.name], "title": "patch",
             "action": "update the firmware", "deadline": "2030-01-01T00:00:00Z"}
    headers = {"authorization": f"Bearer {chain.admin['nat']}"}
    r = httpx.post(nat.url + "/api/v1/federation/orders", json=order, headers=headers,
                   timeout=10)
    assert r.status_code == 201, r.text
    waiting_for_b = "SELECT kind FROM federation_outbox WHERE peer = ? AND kind = 'order'"
    wait_for("the order relayed toward B", lambda: bool(query(sec.db, waiting_for_b, b.name)))
    rejected_before = _rejected(sec, a.name)

    answer = forged_exchange(a, sec, claim_sender=a.name, origin=b.name, event_id="forged-1")
    assert answer.status == 200
    assert all(m.kind != "order" and b.name not in json.dumps(m.body) for m in answer.messages)
    assert _rejected(sec, a.name) == rejected_before + 1
    assert query(sec.db, "SELECT * FROM fed_events WHERE event_id = 'forged-1'") == []
    impostor = forged_exchange(a, sec, claim_sender=b.name, origin=b.name, event_id="forged-2")
    assert impostor.status == 401 and "bad_signature" in impostor.text
    assert query(sec.db, waiting_for_b, b.name) == [("order",)]  # still B's, still waiting
    time.sleep(1.5)  # a heartbeat of the secondary: nothing forged went further up
    assert query(nat.db, "SELECT * FROM fed_events WHERE event_id LIKE 'forged-%'") == []


def _rejected(node: ChainNode, peer: str) -> int:
    rows = query(node.db, "SELECT rejected FROM federation_inbox_state WHERE peer = ?", peer)
    return int(str(rows[0][0])) if rows else 0
