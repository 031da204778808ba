"""Enrollment tokens and identities (issue 13)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from millnet.errors import ConfigError, Conflict, InvalidInput, PermissionDenied, Unauthenticated
from millnet.federation.enroll import ParentPin, _pin, issue_token, token_hash
from millnet.federation.identity import NodeIdentity, verify
from millnet.federation.links import FederationLinks
from millnet.federation.schema import federation_tokens
from tests.support.federation import enroll_request, node


@pytest.fixture
def parent(tmp_path: Path) -> Iterator[FederationLinks]:
    links = node(tmp_path, "prov-32", "secondary")
    yield links
    links.close()


def token(parent: FederationLinks, name: str = "plant-a", **kw: str) -> str:
    args = {"role": "enterprise", "region": "320500", "sector": "C38", "prefix": "88.100.5"}
    args.update(kw)
    return issue_token(parent.engine, name, args["role"], args["region"], args["sector"],
                       args["prefix"], 3600)


def test_the_key_file_is_created_once_with_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "data" / "federation.key"
    first = NodeIdentity.load_or_create(path, "plant-a")
    assert os.stat(path).st_mode & 0o777 == 0o600
    again = NodeIdentity.load_or_create(path, "plant-a")
    assert again.public_key_bytes == first.public_key_bytes
    assert verify(first.public_key_bytes, again.sign(b"x"), b"x")
    assert path.read_bytes().decode() not in repr(first)
    os.chmod(path, 0o644)
    with pytest.raises(ConfigError, match="readable by others"):
        NodeIdentity.load_or_create(path, "plant-a")
    with pytest.raises(InvalidInput):
        NodeIdentity.generate("no spaces")


def test_a_token_enrolls_once(parent: FederationLinks) -> None:
    child = NodeIdentity.generate("plant-a")
    secret = token(parent)
    answer = parent.service.enroll(enroll_request(child, secret))
    assert (answer.node_id, answer.role) == ("prov-32", "secondary")
    assert parent.children.get("plant-a").prefix == "88.100.5"
    with pytest.raises(Conflict, match="already used"):
        parent.service.enroll(enroll_request(child, secret))
    # Only the hash is stored.
    with parent.engine.begin() as conn:
        stored = conn.execute(federation_tokens.select()).one()
    assert stored.token_hash == token_hash(secret) and secret.encode() not in bytes(stored[1])


def test_an_expired_token_or_another_name_is_refused(parent: FederationLinks) -> None:
    secret = token(parent)
    with pytest.raises(PermissionDenied, match="enrolls 'plant-a'"):
        parent.service.enroll(enroll_request(NodeIdentity.generate("plant-z"), secret))
    with parent.engine.begin() as conn:
        conn.execute(update(federation_tokens).values(
            expires_at=datetime.now(UTC) - timedelta(seconds=1)))
    with pytest.raises(Unauthenticated, match="expired"):
        parent.service.enroll(enroll_request(NodeIdentity.generate("plant-a"), secret))
    with pytest.raises(Unauthenticated, match="unknown"):
        parent.service.enroll(enroll_request(NodeIdentity.generate("plant-a"), "mnf_guess"))


def test_the_proof_must_be_made_by_the_enrolled_key(parent: FederationLinks) -> None:
    secret = token(parent)
    request = enroll_request(NodeIdentity.generate("plant-a"), secret)
    forged = request.model_copy(update={
        "public_key": enroll_request(NodeIdentity.generate("plant-a"), secret).public_key})
    with pytest.raises(Unauthenticated, match="proof"):
        parent.service.enroll(forged)
    parent.service.enroll(request)  # the token was not consumed by the failed attempt


def test_token_fields_are_validated(parent: FederationLinks) -> None:
    for field, value in (("region", "3205"), ("region", "990000"), ("sector", "Z"),
                         ("sector", "C1"), ("prefix", "88..1"), ("role", "national")):
        with pytest.raises(InvalidInput) as caught:
            token(parent, **{field: value})
        assert caught.value.field == field


def test_the_parents_key_is_pinned(tmp_path: Path) -> None:
    child = node(tmp_path, "plant-a", "enterprise")
    first = NodeIdentity.generate("prov-32")
    _pin(child.engine, ParentPin("prov-32", "secondary", first.public_key_bytes, "http://p"))
    _pin(child.engine, ParentPin("prov-32", "secondary", first.public_key_bytes, "http://q"))
    with pytest.raises(Conflict, match="pinned"):
        _pin(child.engine, ParentPin("prov-32", "secondary",
                                     NodeIdentity.generate("prov-32").public_key_bytes, "http://p"))
    child.close()


def test_enrolling_again_continues_from_the_childs_outbox(parent: FederationLinks) -> None:
    child = NodeIdentity.generate("plant-a")
    parent.service.enroll(enroll_request(child, token(parent)))
    parent.children.remove("plant-a")
    parent.service.enroll(enroll_request(child, token(parent), next_seq=42))
    assert parent.children.get("plant-a").applied_up == 41
