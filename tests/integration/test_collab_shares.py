"""Shares between two enterprises' databases, their messages carried by hand (the federation's
part is tested with real nodes in tests/e2e/test_collaboration.py): the handshake, consent,
sealed updates of exactly the scoped device, revocation and expiry deleting the partner's copy,
and updates that do not open or do not belong refused."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, select

from millnet.collab import crypto
from millnet.collab.common import parse_expiry
from millnet.collab.owner import OwnerShares
from millnet.collab.partner import PartnerShares
from millnet.collab.providers import kinds, machine_state
from millnet.collab.schema import collab_audit, collab_received
from millnet.errors import Conflict, InvalidInput, NotFound, RejectedMessage
from millnet.kpi.settings import KpiSection
from millnet.registry import Registry

Sent = list[tuple[str, dict[str, Any]]]


@dataclass
class Pair:
    a: OwnerShares
    b: PartnerShares
    to_b: Sent
    to_a: Sent
    data: dict[str, dict[str, Any]]
    regs: list[Registry]

    def deliver(self) -> None:
        """Every message queued so far, to its recipient, in order, until none is left."""
        while self.to_b or self.to_a:
            while self.to_b:
                kind, body = self.to_b.pop(0)
                with self.b.engine.begin() as conn:
                    self.b.apply(conn, "ent-a", kind, body)
            while self.to_a:
                kind, body = self.to_a.pop(0)
                with self.a.engine.begin() as conn:
                    self.a.apply_answer(conn, "ent-b", kind, body)


def _sender(box: Sent) -> Any:
    def send(conn: Connection, kind: str, body: dict[str, Any]) -> None:
        box.append((kind, json.loads(json.dumps(body))))

    return send


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[Pair]:
    reg_a, reg_b = (Registry.open(f"sqlite:///{tmp_path / n}.sqlite") for n in ("a", "b"))
    to_b: Sent = []
    to_a: Sent = []
    data = {"Plant/Press1": {"device": "Plant/Press1", "temp": 41.5},
            "Plant/Press2": {"device": "Plant/Press2", "temp": 99.0}}

    def provider(sources: Any) -> Any:
        def provide(tenant_id: int, target: str) -> dict[str, Any]:
            if target not in data:
                raise NotFound(f"no device {target!r}")
            return data[target]
        return provide

    a = OwnerShares(reg_a.engine, "ent-a", _sender(to_b), {"device-status": provider})
    a.attach(None)  # type: ignore[arg-type]  # the test provider reads no stores
    b = PartnerShares(reg_b.engine, "ent-b", _sender(to_a))
    yield Pair(a, b, to_b, to_a, data, [reg_a, reg_b])
    for r in (reg_a, reg_b):
        r.close()


def offer(p: Pair, target: str = "Plant/Press1", expires: str = "1h") -> str:
    share = p.a.create(1, "ent-b", f"device-status:{target}", parse_expiry(expires), "alice")
    p.deliver()
    return share.id


def test_offer_consent_updates_of_the_scope_only_then_revoke(pair: Pair) -> None:
    share_id = offer(pair)
    [seen] = pair.b.offers()
    assert seen.scope == "device-status:Plant/Press1" and seen.status == "offered"
    assert seen.fingerprint == pair.a.get(1, share_id).fingerprint
    assert pair.a.push() == 0  # no consent yet: nothing goes
    assert pair.b.shared(None) == []

    pair.b.answer(7, "ent-a", share_id, True, "bob")
    pair.deliver()
    assert pair.a.get(1, share_id).status == "active"
    assert pair.a.push() == 1
    [(kind, update)] = pair.to_b
    assert kind == "share.update" and set(update) == {"id", "owner", "partner", "n", "sealed"}
    assert "41.5" not in json.dumps(update) and "Press" not in json.dumps(update)
    pair.deliver()
    [got] = pair.b.shared(7)
    assert got.payload == {"device": "Plant/Press1", "temp": 41.5}
    assert pair.b.shared(8) == []  # another tenant of the partner
    assert pair.a.push() == 0  # unchanged: not sent again
    pair.data["Plant/Press1"]["temp"] = 42.0
    assert pair.a.push() == 1
    pair.deliver()
    assert pair.b.shared(7)[0].payload == {"device": "Plant/Press1", "temp": 42.0}

    pair.a.revoke(1, share_id, "alice")
    pair.deliver()
    assert pair.b.shared(None) == []
    with pair.b.engine.connect() as conn:
        row = conn.execute(select(collab_received)).one()
        events = [r.event for r in conn.execute(select(collab_audit).order_by(collab_audit.c.id))
                  if r.side == "partner"]
    assert row.status == "revoked" and row.payload is None and row.updates == 2
    assert events == ["offered", "accepted", "received", "revoked"]
    assert pair.a.push() == 0
    with pytest.raises(Conflict):
        pair.a.revoke(1, share_id, "alice")


def test_expiry_ends_the_share_on_both_sides(pair: Pair) -> None:
    share_id = offer(pair, expires="2s")
    pair.b.answer(7, "ent-a", share_id, True, "bob")
    pair.deliver()
    pair.a.push()
    pair.deliver()
    assert pair.b.shared(7)
    later = datetime.now(UTC) + timedelta(seconds=3)
    assert pair.b.expire(later) == 1  # by the partner's own clock, without a message
    assert pair.b.shared(7) == []
    assert pair.a.expire(later) == 1
    assert pair.a.get(1, share_id).status == "expired"
    pair.deliver()  # the owner's notice changes nothing more
    with pair.b.engine.connect() as conn:
        assert conn.execute(select(collab_received.c.payload)).scalar() is None


def test_the_partner_ends_its_consent(pair: Pair) -> None:
    share_id = offer(pair)
    pair.b.answer(7, "ent-a", share_id, True, "bob")
    pair.deliver()
    pair.a.push()
    pair.deliver()
    with pytest.raises(NotFound):  # another tenant's admin
        pair.b.leave(8, "ent-a", share_id, "eve")
    assert pair.b.leave(7, "ent-a", share_id, "bob").status == "ended"
    assert pair.b.shared(None) == []
    pair.deliver()
    assert pair.a.get(1, share_id).status == "declined"
    pair.data["Plant/Press1"]["temp"] = 50.0
    assert pair.a.push() == 0
    with pytest.raises(Conflict):
        pair.b.leave(7, "ent-a", share_id, "bob")


def test_declined_share_sends_nothing(pair: Pair) -> None:
    share_id = offer(pair)
    pair.b.answer(7, "ent-a", share_id, False, "bob")
    pair.deliver()
    assert pair.a.get(1, share_id).status == "declined"
    assert pair.a.push() == 0


def test_refusals(pair: Pair) -> None:
    with pytest.raises(NotFound):
        pair.a.create(1, "ent-b", "device-status:Plant/Nope", parse_expiry("1h"), "alice")
    with pytest.raises(InvalidInput):
        pair.a.create(1, "ent-b", "telemetry:Plant/Press1", parse_expiry("1h"), "alice")
    with pytest.raises(InvalidInput):
        pair.a.create(1, "ent-a", "device-status:Plant/Press1", parse_expiry("1h"), "alice")
    with pytest.raises(InvalidInput):
        parse_expiry("0s")
    share_id = offer(pair)
    pair.b.answer(7, "ent-a", share_id, True, "bob")
    pair.deliver()
    pair.a.push()
    [(_, update)] = pair.to_b
    pair.to_b.clear()
    with pair.b.engine.begin() as conn:
        with pytest.raises(RejectedMessage):  # another enterprise cannot speak for ent-a
            pair.b.apply(conn, "ent-c", "share.update", update)
        forged = {**update, "n": 5, "sealed": crypto.seal(b"k" * 32, share_id, "ent-a", 5,
                                                          b'{"device": "x"}')}
        with pytest.raises(InvalidInput):  # does not open with the share's key
            pair.b.apply(conn, "ent-a", "share.update", forged)
        moved = {**update, "n": 9}  # a box replayed under another number does not open
        with pytest.raises(InvalidInput):
            pair.b.apply(conn, "ent-a", "share.update", moved)
        with pytest.raises(RejectedMessage):  # for another partner
            pair.b.apply(conn, "ent-a", "share.update", {**update, "partner": "ent-c"})
    with pair.b.engine.begin() as conn:
        pair.b.apply(conn, "ent-a", "share.update", update)
        pair.b.apply(conn, "ent-a", "share.update", update)  # again: older than held, ignored
    assert pair.b.shared(7)[0].updates == 1


def test_kinds_and_machine_state() -> None:
    assert "device-status" in kinds()
    section = KpiSection()
    assert [machine_state(v, section) for v in (1, 3, 4, 0, None)] == \
        ["running", "setup", "fault", "down", None]


def test_relays_route_down_up_or_refuse(tmp_path: Path) -> None:
    """A national node passes ent-a's share (under sec-1) down to sec-2, where ent-b is; sec-1
    passes it up, not knowing ent-b; what names another sender, or nobody reachable, is
    refused."""
    from sqlalchemy import insert

    from millnet.collab.relay import register_relay
    from millnet.federation.inbox import Inbox, PeerInfo
    from millnet.federation.schema import federation_children, federation_origins
    from millnet.partners import routes_below
    from millnet.protocols.federation import Message

    def child(node_id: str, role: str) -> dict[str, Any]:
        return {"node_id": node_id, "role": role, "region": "320500", "sector": "C",
                "prefix": "88", "public_key": b"k" * 32, "enrolled_at": datetime.now(UTC),
                "child_depth": 0, "child_bytes": 0, "child_oldest_age_ms": 0,
                "child_refused": 0}

    body = {"id": "sh-0123456789abcdef", "owner": "ent-a", "partner": "ent-b", "n": 1,
            "sealed": "AAAA"}
    registries = [Registry.open(f"sqlite:///{tmp_path / n}.sqlite") for n in ("nat", "sec1")]
    try:
        nat, sec1 = (r.engine for r in registries)
        with nat.begin() as conn:
            conn.execute(insert(federation_children), [child("sec-1", "secondary"),
                                                       child("sec-2", "secondary")])
            conn.execute(insert(federation_origins), [
                {"origin": o, "child": c, "role": "enterprise", "region": "320500",
                 "sector": "C", "prefix": "88"} for o, c in (("ent-a", "sec-1"),
                                                             ("ent-b", "sec-2"))])
        with sec1.begin() as conn:
            conn.execute(insert(federation_children), [child("ent-a", "enterprise")])
        out: list[tuple[str, str | None]] = []
        inbox = Inbox()
        register_relay(inbox, lambda conn, peer, kind, body, origin: out.append(
            (peer, origin)), routes_below, True)
        for engine, sender, origin, kind, expected in (
                (nat, "sec-1", "ent-a", "share.update", ("sec-2", "ent-a")),
                (nat, "sec-2", "ent-b", "share.accept", ("sec-1", "ent-b")),
                (sec1, "ent-a", "ent-a", "share.update", ("parent", "ent-a")),
                (sec1, "nat", "ent-b", "share.key", ("ent-a", "ent-b"))):
            out.clear()
            with engine.begin() as conn:
                inbox.handler(kind)(conn, PeerInfo(sender, "secondary"),
                                    Message(1, 0, kind, origin, body))
            assert out == [expected], (sender, kind)
        inbox = Inbox()
        register_relay(inbox, lambda *args: None, routes_below, False)
        with nat.begin() as conn:
            with pytest.raises(RejectedMessage, match="share_origin"):
                inbox.handler("share.update")(conn, PeerInfo("sec-2", "secondary"),
                                              Message(1, 0, "share.update", "ent-b", body))
            lost = {**body, "partner": "ent-z"}
            with pytest.raises(RejectedMessage, match="share_unroutable"):
                inbox.handler("share.update")(conn, PeerInfo("sec-1", "secondary"),
                                              Message(1, 0, "share.update", "ent-a", lost))
    finally:
        for r in registries:
            r.close()


def test_a_kind_from_another_package_is_offered_when_it_provides_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from millnet.collab import providers

    (tmp_path / "fake_trace.py").write_text(
        "def share_provider(sources):\n    return lambda tenant_id, target: {'id': target}\n")
    (tmp_path / "no_provider.py").write_text("X = 1\n")
    (tmp_path / "broken.py").write_text("import does_not_exist_anywhere\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(providers, "OPTIONAL", {"trace": "fake_trace", "order": "no_provider",
                                                "other": "broken", "gone": "not_a_module"})
    found = providers.kinds()
    assert set(found) == {"device-status", "trace"}
    assert found["trace"](None)(1, "88.100/P-1") == {"id": "88.100/P-1"}  # type: ignore[arg-type]
    assert providers.parse_scope("trace:88.100/P-1") == ("trace", "88.100/P-1")
    with pytest.raises(InvalidInput):
        providers.parse_scope("order:42")
