"""The parent's exchange service: exactly-once apply, gaps, rejections, isolation between
children, origins of forwarded messages (issue 13). Batches are built and signed as a child
sends them; no HTTP here (tests/integration/test_federation_link*.py has the real thing)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
from sqlalchemy import Connection

from millnet.errors import InvalidInput, RejectedMessage
from millnet.federation import envelope
from millnet.federation.children import allowed_origins
from millnet.federation.identity import NodeIdentity
from millnet.federation.inbox import PeerInfo
from millnet.federation.links import FederationLinks
from millnet.protocols.federation import VERSION, Batch, Message, OutBatch, OutMessage
from tests.support.federation import EVENT, effects, enroll_in_process, node, record_effect


@pytest.fixture
def tree(tmp_path: Path) -> Iterator[tuple[FederationLinks, FederationLinks, FederationLinks]]:
    parent = node(tmp_path, "prov-32", "secondary")
    a = node(tmp_path, "plant-a", "enterprise")
    b = node(tmp_path, "plant-b", "enterprise")
    parent.inbox.register(EVENT, record_effect)
    enroll_in_process(parent, a)
    enroll_in_process(parent, b)
    yield parent, a, b
    for links in (parent, a, b):
        links.close()


def send(parent: FederationLinks, child: NodeIdentity, seqs: list[int], *, ack: int = 0,
         kind: str = EVENT, origin: str | None = None, sender: str | None = None,
         bodies: list[bytes] | None = None) -> Batch:
    bodies = bodies or [b'{"id":"%s-%d"}' % (child.node_id.encode(), s) for s in seqs]
    batch = OutBatch(
        v=VERSION, sender=sender or child.node_id, recipient=parent.identity.node_id,
        sent_at=envelope.now_ms(), nonce=envelope.new_nonce(), ack=ack,
        messages=[OutMessage(s, 1, kind, origin or child.node_id, msgspec.Raw(body))
                  for s, body in zip(seqs, bodies, strict=True)])
    answer = parent.service.exchange(envelope.seal(child, batch))
    return envelope.open_sealed(
        answer, me=child.node_id, key_of={parent.identity.node_id:
                                          parent.identity.public_key_bytes}.get,
        max_bytes=1 << 22, window_ms=120_000)


def test_each_message_takes_effect_once_whatever_is_resent(tree: tuple[FederationLinks, ...]
                                                           ) -> None:
    parent, a, _ = tree
    assert send(parent, a.identity, [1, 2, 3]).ack == 3
    assert send(parent, a.identity, [1, 2, 3, 4, 5]).ack == 5  # a resend after a lost answer
    assert send(parent, a.identity, [5, 4]).ack == 5
    assert [e[0] for e in effects(parent.engine)] == [f"plant-a-{i}" for i in range(1, 6)]
    assert parent.children.get("plant-a").applied_up == 5


def test_applying_stops_at_a_gap(tree: tuple[FederationLinks, ...]) -> None:
    parent, a, _ = tree
    assert send(parent, a.identity, [1, 2, 4, 5]).ack == 2
    assert len(effects(parent.engine)) == 2
    assert send(parent, a.identity, [3, 4, 5]).ack == 5


def test_bad_content_and_unknown_kinds_are_rejected_and_the_link_moves_on(
        tree: tuple[FederationLinks, ...]) -> None:
    parent, a, _ = tree
    seen: list[tuple[str, str, str]] = []
    parent.inbox.on_rejected = lambda *args: seen.append(args)

    def picky(conn: Connection, sender: PeerInfo, message: Message) -> None:
        record_effect(conn, sender, message)  # rolled back with the message
        raise InvalidInput("no good", "body.id")

    parent.inbox.register("test.picky", picky)
    send(parent, a.identity, [1], kind="test.picky")
    send(parent, a.identity, [2], kind="no.such.kind")
    send(parent, a.identity, [3], bodies=[b'{"no_id":1}'])  # the handler trips: KeyError
    assert send(parent, a.identity, [4]).ack == 4
    assert effects(parent.engine) == [("plant-a-4", "plant-a", "plant-a")]
    assert [(s, r) for s, r, _ in seen] == [("plant-a", "invalid_content"),
                                             ("plant-a", "unknown_kind"),
                                             ("plant-a", "handler_failed")]
    assert parent.children.get("plant-a").rejected == 3


def test_an_enterprise_speaks_only_for_itself(tree: tuple[FederationLinks, ...]) -> None:
    parent, a, _ = tree
    send(parent, a.identity, [1], origin="plant-b")
    assert effects(parent.engine) == []
    assert parent.inbox.rejections["origin_not_allowed"] == 1


def test_a_replayed_batch_is_refused(tree: tuple[FederationLinks, ...]) -> None:
    parent, a, _ = tree
    batch = OutBatch(v=VERSION, sender="plant-a", recipient="prov-32",
                     sent_at=envelope.now_ms(), nonce=envelope.new_nonce(), ack=0, messages=[])
    sealed = envelope.seal(a.identity, batch)
    parent.service.exchange(sealed)
    with pytest.raises(RejectedMessage) as caught:
        parent.service.exchange(sealed)
    assert caught.value.reason == "replay"
    assert parent.service.rejections["replay"] == 1


def test_child_a_can_neither_speak_as_b_nor_read_bs_messages(
        tree: tuple[FederationLinks, ...]) -> None:
    parent, a, b = tree
    parent.outbox_down("plant-b").enqueue("advisory", {"for": "b only"})
    parent.outbox_down("plant-a").enqueue("advisory", {"for": "a"})
    with pytest.raises(RejectedMessage) as caught:
        send(parent, a.identity, [1], sender="plant-b")
    assert caught.value.reason == "bad_signature"
    assert effects(parent.engine) == []
    answer = send(parent, a.identity, [])
    assert [m.body for m in answer.messages] == [{"for": "a"}]
    assert parent.outbox_down("plant-b").status().depth == 1
    # Acknowledging a's messages never touches b's outbox.
    send(parent, a.identity, [], ack=10**6)
    assert parent.outbox_down("plant-a").status().depth == 0
    assert parent.outbox_down("plant-b").status().depth == 1
    answer_b = send(parent, b.identity, [])
    assert [m.body for m in answer_b.messages] == [{"for": "b only"}]


def test_children_report_health_and_lag(tree: tuple[FederationLinks, ...]) -> None:
    parent, a, _ = tree
    assert parent.children.get("plant-a").status == "never"
    send(parent, a.identity, [1, 2])
    child = parent.children.get("plant-a")
    assert (child.status, child.applied_up, child.down_depth) == ("healthy", 2, 0)
    assert [c.node_id for c in parent.children.all()] == ["plant-a", "plant-b"]


def test_a_national_node_checks_origins_against_what_a_secondary_reported(
        tmp_path: Path) -> None:
    national = node(tmp_path, "national", "national")
    prov = node(tmp_path, "prov-32", "secondary")
    other = node(tmp_path, "prov-33", "secondary")
    plant = node(tmp_path, "plant-a", "enterprise")
    national.inbox.register(EVENT, record_effect)
    enroll_in_process(national, prov)
    enroll_in_process(national, other)
    enroll_in_process(prov, plant)  # prov-32 queues its children list upward
    pending = prov.outbox_up.pending(10, 10**6) if prov.outbox_up else []
    assert [p.kind for p in pending] == ["federation.children"]
    report = msgspec.json.decode(pending[0].body)
    assert [c["node_id"] for c in report["children"]] == ["plant-a"]

    prov.remove_child("plant-a")  # and when one leaves, the new list goes up too
    assert prov.outbox_up is not None
    again = prov.outbox_up.pending(10, 10**6)
    assert [msgspec.json.decode(p.body) for p in again[1:]] == [{"children": []}]
    send(national, prov.identity, [1], kind="federation.children", bodies=[pending[0].body])
    with national.engine.begin() as conn:
        assert allowed_origins(conn, "prov-32") == {"prov-32", "plant-a"}
        assert allowed_origins(conn, "prov-33") == {"prov-33"}
    send(national, prov.identity, [2], origin="plant-a", bodies=[b'{"id":"e1"}'])
    send(national, other.identity, [1], origin="plant-a", bodies=[b'{"id":"e2"}'])
    send(national, other.identity, [2], kind="federation.children",
         bodies=[pending[0].body])  # prov-33 claims prov-32's enterprise
    assert effects(national.engine) == [("e1", "plant-a", "prov-32")]
    assert national.inbox.rejections == {"origin_not_allowed": 1, "invalid_content": 1}
    for links in (national, prov, other, plant):
        links.close()


def test_one_bad_message_in_a_batch_costs_only_itself(tree: tuple[FederationLinks, ...]) -> None:
    parent, a, _ = tree
    bodies = [b'{"id":"one"}', b'{"no_id":0}', b'{"id":"three"}', b'{"id":"one"}']
    assert send(parent, a.identity, [1, 2, 3, 4], bodies=bodies).ack == 4
    assert [e[0] for e in effects(parent.engine)] == ["one", "three"]
    assert parent.inbox.rejections["handler_failed"] == 2  # no id; "one" again (primary key)
