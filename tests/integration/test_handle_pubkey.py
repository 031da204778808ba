"""HS_PUBKEY: key values as hdllib encodes them, challenge answers signed with RSA, DSA and
Ed25519 keys, and administrative operations over a real server authenticated that way."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dsa, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from millnet.identifiers import IdentifierService, IdentifierStore, bootstrap_prefix
from millnet.identifiers.core.delegation import admin_record_value
from millnet.identifiers.hierarchy.client import Server, admin_request
from millnet.identifiers.native.handler import NativeHandler
from millnet.identifiers.wire.pubkey import (
    load_pubkey,
    pubkey_data,
    sign_challenge,
    verify_challenge,
)
from millnet.identifiers.wire.transport import NativeServer
from millnet.protocols.handle import (
    CreateHandleRequest,
    DeleteHandleRequest,
    HandleValue,
    ResponseCode,
    ServerRecord,
    SiteInfo,
    ValueReference,
    address_octets,
    decode_pubkey,
)
from millnet.protocols.handle.wire import put_octets

SITE = SiteInfo(servers=(ServerRecord(1, address_octets("127.0.0.1")),))
PRIVATE = 0x0C  # admin read/write only


@pytest.fixture(scope="module")
def keys() -> dict[str, PrivateKeyTypes]:
    return {"rsa": rsa.generate_private_key(65537, 2048),
            "dsa": dsa.generate_private_key(2048),
            "ed25519": ed25519.Ed25519PrivateKey.generate()}


@pytest.mark.parametrize("kind", ["rsa", "dsa", "ed25519"])
@pytest.mark.parametrize("version", [(2, 1), (2, 7), (2, 10), (2, 11)])
def test_signed_answers_verify_against_the_key_value(keys: dict[str, PrivateKeyTypes],
                                                      kind: str, version: tuple[int, int],
                                                      ) -> None:
    key = keys[kind]
    data = pubkey_data(key.public_key())
    assert pubkey_data(load_pubkey(data)) == data  # round trip
    nonce, digest = secrets.token_bytes(16), secrets.token_bytes(32)
    signed = sign_challenge(key, nonce, digest, version)
    assert verify_challenge(data, nonce, digest, signed)
    assert not verify_challenge(data, secrets.token_bytes(16), digest, signed)
    assert not verify_challenge(data, nonce, digest, signed[:-1])
    assert not verify_challenge(data, nonce, digest, b"")
    assert not verify_challenge(None, nonce, digest, signed)
    other = keys["ed25519" if kind != "ed25519" else "rsa"]
    assert not verify_challenge(pubkey_data(other.public_key()), nonce, digest, signed)


def test_rsa_value_layout_is_hdllib_s(keys: dict[str, PrivateKeyTypes]) -> None:
    key = keys["rsa"].public_key()
    assert isinstance(key, rsa.RSAPublicKey)
    record = decode_pubkey(pubkey_data(key))
    assert record.key_type == "RSA_PUB_KEY" and record.flags == 0
    assert record.integer("exponent") == 65537
    assert record.integer("modulus") == key.public_numbers().n
    assert record.parts[1][0] == 0  # Java's BigInteger.toByteArray: a sign octet


def test_md5_and_unknown_hashes_are_refused(keys: dict[str, PrivateKeyTypes]) -> None:
    key = keys["rsa"]
    assert isinstance(key, rsa.RSAPrivateKey)
    nonce, digest = b"n" * 16, b"d" * 32
    for hash_id in (b"MD5", b"\x01", b"WHIRLPOOL"):
        signature = key.sign(nonce + digest, padding.PKCS1v15(), hashes.SHA256())
        buf = bytearray()
        put_octets(buf, hash_id)
        put_octets(buf, signature)
        assert not verify_challenge(pubkey_data(key.public_key()), nonce, digest, bytes(buf))


def test_admin_operations_authenticated_by_public_key(tmp_path: Path,
                                                      keys: dict[str, PrivateKeyTypes]) -> None:
    store = IdentifierStore.open(f"sqlite:///{tmp_path / 'ids.sqlite'}")
    bootstrap_prefix(store, "88.100.5", "secret-5", SITE)
    bootstrap_prefix(store, "88.100.6", "secret-6", SITE)
    # Key admins: 300:88.100.5/KEYS holds an RSA key, 301 an Ed25519 key; both named by the
    # prefix record's HS_ADMIN values. 88.100.6 has a key admin of its own.
    store.create_handle("88.100.5/KEYS", [
        HandleValue(300, "HS_PUBKEY", pubkey_data(keys["rsa"].public_key()), permissions=PRIVATE
                    | 0x02),
        HandleValue(301, "HS_PUBKEY", pubkey_data(keys["ed25519"].public_key()))])
    store.add_values("0.NA/88.100.5", [
        admin_record_value(ValueReference("88.100.5/KEYS", 300), index=101),
        admin_record_value(ValueReference("88.100.5/KEYS", 301), index=102)])
    store.create_handle("88.100.6/KEYS", [
        HandleValue(300, "HS_PUBKEY", pubkey_data(keys["dsa"].public_key()))])
    store.add_values("0.NA/88.100.6", [
        admin_record_value(ValueReference("88.100.6/KEYS", 300), index=101)])
    service = IdentifierService(store, ["88.100.5", "88.100.6"])
    url = HandleValue(1, "URL", b"https://plant.example/p")

    async def scenario() -> None:
        async with NativeServer(NativeHandler(service, SITE), udp_port=0, tcp_port=0) as srv:
            where = Server("127.0.0.1", srv.udp_port, srv.tcp_port)
            for index, kind in ((300, "rsa"), (301, "ed25519")):
                made = await admin_request(
                    CreateHandleRequest(f"88.100.5/BY-{kind}", (url,)), where,
                    key_handle="88.100.5/KEYS", key_index=index, private_key=keys[kind])
                assert made.response_code == ResponseCode.SUCCESS, made
            # A key that is not the one in the value: authentication fails.
            impostor = rsa.generate_private_key(65537, 2048)
            refused = await admin_request(CreateHandleRequest("88.100.5/BAD", (url,)), where,
                                          key_handle="88.100.5/KEYS", key_index=300,
                                          private_key=impostor)
            assert refused.response_code == ResponseCode.AUTHEN_FAILED
            # The admin of 88.100.6 authenticates, but may not touch 88.100.5.
            foreign = await admin_request(DeleteHandleRequest("88.100.5/BY-rsa"), where,
                                          key_handle="88.100.6/KEYS", key_index=300,
                                          private_key=keys["dsa"], version=(2, 11))
            assert foreign.response_code == ResponseCode.NOT_AUTHORIZED
            # A secret key answer at an index holding a public key does not pass either.
            mixed = await admin_request(CreateHandleRequest("88.100.5/MIX", (url,)), where,
                                        key_handle="88.100.5/KEYS", key_index=300,
                                        secret="whatever")
            assert mixed.response_code == ResponseCode.AUTHEN_FAILED

    asyncio.run(scenario())
    assert store.exists("88.100.5/BY-rsa") and store.exists("88.100.5/BY-ed25519")
    assert not store.exists("88.100.5/BAD") and not store.exists("88.100.5/MIX")
