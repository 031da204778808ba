"""Collaboration and the industrial park (issue 15 points 3 and 4) between real nodes (their
services as ``millnet node`` runs them, in this process, over HTTP): a national node, a
secondary in the park role with ``ent-a`` and ``ent-c``, another secondary with ``ent-b``.

Enterprise ``ent-a`` shares one press's status with ``ent-b`` through both secondaries and the
national node: ``ent-b`` sees that and nothing else (not the other press, not in its other
tenant), ``ent-c`` sees nothing, the relays pass sealed bytes and serve none of it; a share
message in another enterprise's name is refused on the share path; after revocation and after
expiry ``ent-b``'s API has nothing left of the data but its audit. ``ent-a`` reports shift
summaries (parts, energy integrated from power, OEE) to the park, which shows its members side
by side; what went up from ``ent-a`` carries no telemetry.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from millnet.bench.federation_chain import issue_token, query
from millnet.config import Settings, load_settings
from millnet.connectivity.broker import free_port
from millnet.federation import envelope
from millnet.federation.identity import NodeIdentity
from millnet.protocols.federation import VERSION, OutBatch, OutMessage
from millnet.services import build_services, serving

POWER = 27.182818  # kW on both presses: a value that must never leave ent-a in clear
OTHER = 61.803398  # the second press's temperature: never shared
LOG = """
CREATE TABLE IF NOT EXISTS test_sent (kind TEXT, origin TEXT, peer TEXT, body TEXT);
CREATE TRIGGER IF NOT EXISTS test_sent_log AFTER INSERT ON federation_outbox BEGIN
  INSERT INTO test_sent VALUES (NEW.kind, NEW.origin, NEW.peer, CAST(NEW.body AS TEXT));
END;
"""


def wait_for(what: str, check: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


@dataclass
class Node:
    """One node of the park, run by this process (its settings, data and API port)."""

    name: str
    role: str
    root: Path
    extra: dict[str, dict[str, Any]]
    port: int = field(default_factory=free_port)

    @property
    def data(self) -> Path:
        return self.root / self.name

    @property
    def db(self) -> Path:
        return self.data / "registry.sqlite"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def settings(self) -> Settings:
        overrides: dict[str, Any] = {
            "node": {"name": self.name, "role": self.role, "data_dir": str(self.data)},
            "api": {"port": self.port}, "mqtt": {"enabled": False},
            "federation": {"heartbeat_s": 0.5, "retry_first_s": 0.1, "retry_max_s": 1}}
        for section, values in self.extra.items():
            overrides[section] = {**overrides.get(section, {}), **values}
        return load_settings(None, environ={}, overrides=overrides)


def sent(node: Node) -> list[tuple[str, str, str, str]]:
    """What ``node`` queued to any peer (the outbox rows are deleted once acknowledged)."""
    return [(str(k), str(o), str(p), str(b)) for k, o, p, b in
            query(node.db, "SELECT kind, origin, peer, body FROM test_sent")]


@dataclass
class Park:
    nat: Node
    sec: Node
    sec2: Node
    a: Node
    b: Node
    c: Node
    tokens: dict[str, str]
    stop_c: Callable[[], None]

    def api(self, node: Node, who: str, method: str, path: str,
            body: Any = None) -> httpx.Response:
        return httpx.request(method, node.url + path, json=body, timeout=10,
                             headers={"authorization": f"Bearer {self.tokens[who]}"})

    def ok(self, node: Node, who: str, method: str, path: str, body: Any = None) -> Any:
        r = self.api(node, who, method, path, body)
        assert r.status_code in (200, 201, 202), (path, r.status_code, r.text)
        return r.json()


def _prepare(node: Node, tokens: dict[str, tuple[int | None, str]]) -> dict[str, str]:
    """The node's database migrated, its outbox logged, its tenants and API tokens made."""
    from millnet.registry import Registry

    node.data.mkdir(parents=True, exist_ok=True)
    registry = Registry.open(f"sqlite:///{node.db}")
    conn = sqlite3.connect(node.db, timeout=30)
    try:
        conn.executescript(LOG)
    finally:
        conn.close()
    try:
        registry.ensure_tenant("default")
        registry.ensure_tenant("other")
        return {who: registry.create_token(tenant, role, who)[0]
                for who, (tenant, role) in tokens.items()}
    finally:
        registry.close()


def _enroll(parent: Node, child: Node, token: str) -> None:
    from millnet.db.engine import create_db_engine
    from millnet.federation.enroll import enroll

    identity = NodeIdentity.load_or_create(child.data / "federation.key", child.name)
    engine = create_db_engine(f"sqlite:///{child.db}")
    try:
        enroll(parent.url, token, identity, engine)
    finally:
        engine.dispose()


class Running:
    """The nodes' services in one event loop of a thread of their own; each stops alone."""

    def __init__(self, nodes: list[Node]) -> None:
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._stops: dict[str, asyncio.Event] = {}
        self._nodes = nodes
        self._thread = threading.Thread(target=self._loop.run_until_complete,
                                        args=(self._main(),), daemon=True)
        self._failed: BaseException | None = None

    async def _main(self) -> None:
        try:
            async with asyncio.TaskGroup() as tg:
                for node in self._nodes:
                    self._stops[node.name] = asyncio.Event()
                    services = build_services(node.settings())
                    tg.create_task(self._serve(node, services))
                self._ready.set()
        except BaseException as exc:  # handed to the test's thread
            self._failed = exc
            self._ready.set()

    async def _serve(self, node: Node, services: Any) -> None:
        async with serving(services):
            await self._stops[node.name].wait()

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(120)
        if self._failed is not None:
            raise self._failed

    def stop(self, name: str | None = None) -> None:
        for key, event in self._stops.items():
            if name in (None, key):
                self._loop.call_soon_threadsafe(event.set)
        if name is None:
            self._thread.join(60)


def wait_ready(node: Node, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(node.url + "/api/v1/federation/children", timeout=2.0).status_code \
                    in (401, 403):
                return  # serving (the route wants a token)
        except httpx.HTTPError:
            pass  # not listening yet
        assert time.monotonic() < deadline, f"{node.name} not ready in {timeout:g} s"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def park(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Park]:
    """A national node over two secondaries: the park (``ent-a`` and ``ent-c``) and another
    (``ent-b``). The national node and the secondaries run no platform (the federation and
    its API), ``ent-a`` and ``ent-b`` their platforms, ``ent-c`` none (it only has to see
    nothing)."""
    root = tmp_path_factory.mktemp("park")
    no_platform = {"platform": False}
    nat = Node("nat", "national", root, {})
    sec = Node("park-sec", "secondary", root, {"node": no_platform, "park": {"enabled": True}})
    sec2 = Node("sec-2", "secondary", root, {"node": no_platform})
    a = Node("ent-a", "enterprise", root, {"park": {"report_every_s": 1}})
    b = Node("ent-b", "enterprise", root, {})
    c = Node("ent-c", "enterprise", root, {"node": no_platform})
    keys = {**_prepare(nat, {"nat": (None, "admin")}), **_prepare(sec, {"sec": (None, "admin")}),
            **_prepare(sec2, {"sec2": (None, "admin")}), **_prepare(a, {"a": (None, "admin")}),
            **_prepare(b, {"b": (None, "admin"), "b1": (1, "admin"), "b2": (2, "admin")}),
            **_prepare(c, {"c": (None, "admin")})}
    under = [(nat, sec, "320000", "C", "88.100", "secondary"),
             (nat, sec2, "310000", "C", "88.200", "secondary"),
             (sec, a, "320500", "C34", "88.100.1", "enterprise"),
             (sec, c, "320500", "C34", "88.100.3", "enterprise"),
             (sec2, b, "310115", "C38", "88.200.2", "enterprise")]
    tokens = {child.name: issue_token(parent, child.name, region, sector, prefix,  # type: ignore[arg-type]
                                      role=role)
              for parent, child, region, sector, prefix, role in under}
    running = Running([nat, sec, sec2, a, b, c])
    running.start()
    try:
        for parent, child, *_ in under:
            wait_ready(parent)
            _enroll(parent, child, tokens[child.name])  # their links retry until they are
        for node in (a, b, c):
            wait_ready(node)
        yield Park(nat, sec, sec2, a, b, c, keys, lambda: running.stop("ent-c"))
    finally:
        running.stop()


def ingest(p: Park, device: str, payload: list[dict[str, Any]], token: str) -> None:
    r = httpx.post(p.a.url + f"/api/v1/ingest?device={device}", content=json.dumps(payload),
                   headers={"authorization": f"Bearer {token}"}, timeout=10)
    assert r.status_code == 202, r.text


def plant(p: Park) -> dict[str, str]:
    """Two presses at ent-a, running and counting parts for the last minute; their paths."""
    made = p.ok(p.a, "a", "POST", "/api/v1/device-tokens", {"name": "plant", "tenant_id": 1})
    token = made["token"]
    now = int(time.time() * 1000)
    for press, temp in (("press1", 41.5), ("press2", OTHER)):
        ingest(p, f"s1/a1/l1/{press}", [{"ts": now - 60_000, "values": {
            "State": 1, "Parts/Good": 0, "Parts/Scrap": 0, "Power/Active": POWER,
            "Temp": temp}}], token)
    paths = {d["name"]: d["path"] for d in p.ok(p.a, "a", "GET", "/api/v1/devices?tenant_id=1")}
    for d in p.ok(p.a, "a", "GET", "/api/v1/devices?tenant_id=1"):
        p.ok(p.a, "a", "PATCH", f"/api/v1/assets/{d['id']}", {"asset_type": "press"})
    time.sleep(0.5)
    for press in ("press1", "press2"):  # a new point: the rules re-bind, the KPIs see types
        ingest(p, f"s1/a1/l1/{press}", [
            {"ts": now - 50_000, "values": {"State": 1, "Parts/Good": 0, "Parts/Scrap": 0,
                                            "Power/Active": POWER, "Mode": 1}},
            {"ts": now - 30_000, "values": {"Power/Active": POWER}},
            {"ts": now - 1_000, "values": {"State": 1, "Parts/Good": 40, "Parts/Scrap": 1,
                                           "Power/Active": POWER}}], token)
    return paths


def cli(p: Park, node: Node, who: str, *args: str) -> str:
    """``millnet ARGS`` against ``node``'s API, run in this process."""
    from typer.testing import CliRunner

    from millnet.cli import app

    done = CliRunner().invoke(app, list(args), env={"MILLNET_URL": node.url,
                                                    "MILLNET_TOKEN": p.tokens[who]})
    assert done.exit_code == 0, done.output
    return done.output


def owned(p: Park, share_id: str) -> dict[str, Any]:
    """The share as ent-a's API shows it."""
    found: dict[str, Any] = next(s for s in p.ok(p.a, "a", "GET", "/api/v1/shares")
                                 if s["id"] == share_id)
    return found


def shared(p: Park, node: Node, who: str) -> list[dict[str, Any]]:
    answer: list[dict[str, Any]] = p.ok(node, who, "GET", "/api/v1/shared")
    return answer


def test_share_a_device_status_with_a_partner_only(park: Park) -> None:
    p = park
    paths = plant(p)
    share = json.loads(cli(p, p.a, "a", "share", "create", "--partner", "ent-b", "--scope",
                           f"device-status:{paths['press1']}", "--expires", "1h",
                           "--tenant", "1", "--json"))
    assert share["status"] == "offered"
    # The other press, shared with ent-b's second tenant for a short while (see check_expiry).
    brief = p.ok(p.a, "a", "POST", "/api/v1/shares", {
        "partner": "ent-b", "scope": f"device-status:{paths['press2']}", "expires": "20s",
        "tenant_id": 1})
    assert p.api(p.a, "a", "POST", "/api/v1/shares", {
        "partner": "ent-b", "scope": "device-status:acme/nope", "expires": "1h",
        "tenant_id": 1}).status_code == 404

    def both_offers() -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = p.ok(p.b, "b", "GET", "/api/v1/shares/offers")
        return found if len(found) == 2 else []

    offers = wait_for("the offers at ent-b", both_offers)
    assert sorted((o["owner"], o["id"], o["scope"]) for o in offers) == sorted(
        [("ent-a", share["id"], f"device-status:{paths['press1']}"),
         ("ent-a", brief["id"], f"device-status:{paths['press2']}")])
    fingerprints = {s["id"]: s["fingerprint"] for s in p.ok(p.a, "a", "GET", "/api/v1/shares")}
    assert {o["id"]: o["fingerprint"] for o in offers} == fingerprints  # for the admins
    assert share["id"] in cli(p, p.b, "b", "share", "list")
    assert shared(p, p.b, "b1") == []  # no consent yet
    p.ok(p.b, "b1", "POST", f"/api/v1/shares/offers/ent-a/{share['id']}/accept", {})
    p.ok(p.b, "b", "POST", f"/api/v1/shares/offers/ent-a/{brief['id']}/accept",
         {"tenant_id": 2})

    got = wait_for("the press's status at ent-b",
                   lambda: [s for s in shared(p, p.b, "b1") if s["payload"]])
    payload = got[0]["payload"]
    assert payload["device"] == paths["press1"] and payload["machine_state"] == "running"
    assert payload["active_alarms"] == 0
    values = {v["name"]: v["value"] for v in payload["points"]}
    assert values["Power/Active"] == pytest.approx(POWER) and values["Temp"] == 41.5
    other = wait_for("the other press in ent-b's second tenant",
                     lambda: [s for s in shared(p, p.b, "b2") if s["payload"]])
    assert other[0]["payload"]["device"] == paths["press2"]
    # Outside the scope: the other press, another tenant of the partner, a third enterprise.
    assert str(OTHER) not in json.dumps(shared(p, p.b, "b1"))
    assert "press2" not in json.dumps(shared(p, p.b, "b1"))
    assert "press1" not in json.dumps(shared(p, p.b, "b2"))
    assert shared(p, p.c, "c") == [] and p.ok(p.c, "c", "GET", "/api/v1/shares/offers") == []
    # It went ent-a -> park-sec -> nat -> sec-2 -> ent-b (and the answers back): each relay
    # serves none of it, keeps none of it, and what it passed on was sealed, even the scope.
    for relay, who in ((p.sec, "sec"), (p.nat, "nat"), (p.sec2, "sec2")):
        assert p.api(relay, who, "GET", "/api/v1/shared").status_code == 404
        assert p.api(relay, who, "GET", "/api/v1/shares/offers").status_code == 404
        relayed = [r for r in sent(relay) if r[0].startswith("share.")]
        assert {r[0] for r in relayed} >= {"share.offer", "share.key", "share.scope",
                                           "share.accept", "share.update"}, relay.name
        assert all("press" not in r[3] and str(POWER) not in r[3] for r in relayed)
        tables = [str(t[0]) for t in query(relay.db, "SELECT name FROM sqlite_master "
                                           "WHERE type = 'table' AND name LIKE 'collab%'")]
        assert all(query(relay.db, f"SELECT COUNT(*) FROM {t}")[0][0] == 0
                   for t in tables)

    check_share_in_another_name_is_refused(p, share["id"])
    check_revoke_deletes_the_partners_copy(p, share["id"])
    check_expiry(p, brief["id"])


def check_share_in_another_name_is_refused(p: Park, share_id: str) -> None:
    """ent-c's real key, its own sender id, an update in ent-a's name: the link layer lets the
    batch in (signed, fresh), the share path refuses the message; replayed, the batch is
    refused whole. Signed by ent-c but claiming to be ent-a: refused at the signature."""
    p.stop_c()  # its next upward seq is the forger's to use
    time.sleep(1.0)
    identity = NodeIdentity.load_or_create(p.c.data / "federation.key", p.c.name)
    applied = query(p.sec.db, "SELECT applied_seq, rejected FROM federation_inbox_state "
                              "WHERE peer = ?", "ent-c")[0]
    body = {"id": share_id, "owner": "ent-a", "partner": "ent-b", "n": 99, "sealed": "AAAA"}

    def frame(sender: str, seq: int) -> bytes:
        now = envelope.now_ms()
        message = OutMessage(seq, now, "share.update", "ent-c",
                             msgspec.Raw(json.dumps(body).encode()))
        return envelope.seal(identity, OutBatch(v=VERSION, sender=sender, recipient=p.sec.name,
                                                sent_at=now, nonce=envelope.new_nonce(), ack=0,
                                                messages=[message]))

    def post(data: bytes) -> int:
        return httpx.post(p.sec.url + "/api/v1/federation/exchange", content=data, timeout=10,
                          headers={"content-type": "application/octet-stream"}).status_code

    before = shared(p, p.b, "b1")[0]["updates"]
    forged = frame("ent-c", int(str(applied[0])) + 1)
    assert post(forged) == 200
    after = query(p.sec.db, "SELECT applied_seq, rejected FROM federation_inbox_state "
                            "WHERE peer = ?", "ent-c")[0]
    assert int(str(after[1])) == int(str(applied[1])) + 1  # refused, counted
    wait_for("the refusal as a security event", lambda: any(
        "share_origin" in str(e[0]) for e in query(
            p.sec.db, "SELECT detail FROM security_events WHERE kind = 'federation.rejected'")),
        timeout=10)
    assert post(forged) == 409  # the same batch again: a replay
    assert post(frame("ent-a", 1)) == 401  # ent-c's key is not ent-a's
    assert shared(p, p.b, "b1")[0]["updates"] == before


def check_revoke_deletes_the_partners_copy(p: Park, share_id: str) -> None:
    p.ok(p.a, "a", "POST", f"/api/v1/shares/{share_id}/revoke")
    wait_for("the revocation at ent-b", lambda: shared(p, p.b, "b1") == [])
    audit = p.ok(p.b, "b1", "GET", "/api/v1/shared/audit")
    assert [e["event"] for e in audit][:1] == ["revoked"]
    assert {"offered", "accepted", "received", "revoked"} <= {e["event"] for e in audit}
    row = query(p.b.db, "SELECT status, payload FROM collab_received WHERE id = ?", share_id)
    assert row == [("revoked", None)]
    before = owned(p, share_id)["updates"]
    time.sleep(1.5)  # several push rounds: nothing more is sent
    assert owned(p, share_id)["updates"] == before
    assert before == sum(1 for r in sent(p.a) if r[0] == "share.update" and share_id in r[3])


def check_expiry(p: Park, share_id: str) -> None:
    """The short share ends by the clocks: gone from ent-b's second tenant, ended at ent-a."""
    wait_for("the expiry at ent-b", lambda: shared(p, p.b, "b2") == [], timeout=30)
    assert query(p.b.db, "SELECT status, payload FROM collab_received WHERE id = ?",
                 share_id) == [("expired", None)]
    wait_for("the expiry at ent-a", lambda: owned(p, share_id)["status"] == "expired")


def test_park_shows_its_members_side_by_side(park: Park) -> None:
    p = park
    if not p.ok(p.a, "a", "GET", "/api/v1/devices?tenant_id=1"):
        plant(p)

    def reported() -> list[dict[str, Any]]:
        members = p.ok(p.sec, "sec", "GET", "/api/v1/park/members")["members"]
        a = [m for m in members if m["node_id"] == "ent-a"]
        return members if a and a[0]["good"] >= 80 and a[0]["oee"] is not None else []

    members = {m["node_id"]: m for m in wait_for("ent-a's summary at the park", reported)}
    assert set(members) == {"ent-a", "ent-c"}  # ent-b is under another secondary
    a = members["ent-a"]
    assert a["good"] == 80 and a["scrap"] == 2  # two presses, 40 + 1 each
    # 27.18 kW for about a minute on each of two presses (whole minutes with samples count).
    assert 0.2 < a["energy_kwh"] < 2.5
    assert a["energy_per_good_part_kwh"] == pytest.approx(a["energy_kwh"] / 80)
    assert 0 < a["oee"] <= 1.5 and a["availability"] == pytest.approx(1.0)
    assert a["last_report"] is not None
    assert members["ent-c"]["periods"] == 0 and members["ent-c"]["last_report"] is None
    assert p.api(p.sec, "b1", "GET", "/api/v1/park/members").status_code == 401  # ent-b's key
    table = cli(p, p.sec, "sec", "park").splitlines()
    assert table[1].split()[:2] == ["member", "good"] and table[2].split()[:3] == \
        ["ent-a", "80", "2"]
    # Only summaries crossed: no raw value in anything ent-a sent up but sealed shares.
    up = sent(p.a)
    assert "park.summary" in {k for k, *_ in up}
    assert all(str(POWER) not in body for *_, body in up)
    summary = json.loads(next(body for k, _, _, body in up if k == "park.summary"))
    assert set(summary) == {"period_start", "period_end", "shift", "machines", "good",
                            "scrap", "energy_kwh", "planned_s", "availability",
                            "effectiveness", "quality", "oee", "produced_at"}
