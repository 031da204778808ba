"""Registry API tokens against real databases (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from millnet.errors import InvalidInput, NotFound
from millnet.registry import Registry, Role
from millnet.registry.schema import api_tokens
from tests.integration.registry_fixtures import registry, registry_url

__all__ = ["registry", "registry_url"]  # fixtures, imported to be found by pytest


def test_tokens_verify_until_revoked(registry: Registry) -> None:
    tenant_id = registry.create_tenant("acme").id
    plaintext, info = registry.create_token(tenant_id, Role.OPERATOR, "line HMI")
    prefix, secret = plaintext.split("_", 2)[1:]
    assert plaintext.startswith("mn_") and info.prefix == f"mn_{prefix}"
    assert len(secret) >= 43  # 32 random bytes, base64url
    assert (info.tenant_id, info.role, info.name, info.active) == (
        tenant_id, Role.OPERATOR, "line HMI", True)

    principal = registry.verify_token(plaintext)
    assert principal is not None
    assert (principal.token_id, principal.tenant_id, principal.role) == (
        info.id, tenant_id, Role.OPERATOR)
    assert registry.get_token(info.id).last_used_at is not None

    node_plain, node_info = registry.create_token(None, "admin", "ops")
    node_principal = registry.verify_token(node_plain)
    assert node_principal is not None and node_principal.tenant_id is None
    assert [t.id for t in registry.list_tokens(tenant_id)] == [info.id]
    assert [t.id for t in registry.list_tokens(None)] == [node_info.id]

    revoked = registry.revoke_token(info.id)
    assert revoked.revoked_at is not None and not revoked.active
    assert registry.verify_token(plaintext) is None
    assert registry.revoke_token(info.id).revoked_at == revoked.revoked_at
    assert registry.list_tokens(tenant_id) == [revoked]
    assert registry.verify_token(node_plain) == node_principal
    with pytest.raises(NotFound):
        registry.revoke_token(9999)


def test_wrong_and_malformed_tokens_are_rejected(registry: Registry) -> None:
    plaintext, _ = registry.create_token(None, Role.VIEWER, "dashboard")
    flipped = plaintext[:-1] + ("A" if plaintext[-1] != "A" else "B")
    other_prefix = "mn_00000000_" + plaintext.split("_", 2)[2]
    for wrong in (flipped, other_prefix, plaintext + "x", plaintext[:-1], "", "mn_", "Bearer x",
                  plaintext.upper(), "mn_" + "0" * 8 + "_" + "A" * 43):
        assert registry.verify_token(wrong) is None, wrong


def test_tokens_store_no_plaintext_and_show_none(registry: Registry) -> None:
    plaintext, info = registry.create_token(None, Role.ADMIN, "bootstrap")
    secret = plaintext.split("_", 2)[2]
    with registry.engine.connect() as conn:
        (row,) = conn.execute(select(api_tokens)).all()
    assert not any(secret in str(value) for value in row)
    assert row.token_hash not in repr(info) and secret not in repr(info)
    principal = registry.verify_token(plaintext)
    assert secret not in repr(principal) and secret not in repr(registry.list_tokens(None))


def test_create_token_validates_role_name_and_tenant(registry: Registry) -> None:
    with pytest.raises(InvalidInput) as err:
        registry.create_token(None, "root", "x")
    assert err.value.field == "role"
    with pytest.raises(InvalidInput) as err:
        registry.create_token(None, Role.ADMIN, "")
    assert err.value.field == "name"
    with pytest.raises(NotFound):
        registry.create_token(9999, Role.ADMIN, "ghost")
