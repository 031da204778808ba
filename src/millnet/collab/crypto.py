"""Sealing a share's payloads for the partner alone.

Each share has two X25519 key pairs made for it: the owner's (at ``share create``) and the
partner's (at accept). Each side keeps its secret in its own database and sends its public key
in the offer or the acceptance. Both derive the same 32-byte key, HKDF-SHA256 over the X25519
secret with the share's id, owner and partner as context, and payloads travel as
ChaCha20-Poly1305 boxes whose associated data names the share and the update number: the nodes
that relay them (the secondary, the national node) see sealed bytes only, and a box moved to
another share or replayed under another number does not open.
"""

from __future__ import annotations

import base64
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from millnet.errors import InvalidInput

NONCE = 12


def new_secret() -> bytes:
    """A fresh X25519 secret (32 raw bytes)."""
    return X25519PrivateKey.generate().private_bytes(Encoding.Raw, PrivateFormat.Raw,
                                                     NoEncryption())


def public_of(secret: bytes) -> bytes:
    return X25519PrivateKey.from_private_bytes(secret).public_key().public_bytes(
        Encoding.Raw, PublicFormat.Raw)


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def key_from_b64(text: object, field: str) -> bytes:
    """A 32-byte public key sent as base64."""
    try:
        raw = base64.b64decode(str(text), validate=True)
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise InvalidInput("a share key is 32 bytes, base64", field)
    return raw


def fingerprint(owner_key: bytes, partner_key: bytes | None) -> str:
    """What both admins can compare out of band (a relay that swapped keys shows here)."""
    digest = hashes.Hash(hashes.SHA256())
    digest.update(owner_key + (partner_key or b""))
    return digest.finalize()[:8].hex(":")


def share_key(secret: bytes, peer_public: bytes, share_id: str, owner: str,
              partner: str) -> bytes:
    shared = X25519PrivateKey.from_private_bytes(secret).exchange(
        X25519PublicKey.from_public_bytes(peer_public))
    return HKDF(hashes.SHA256(), 32, salt=None,
                info=f"millnet share {share_id} {owner} {partner}".encode()).derive(shared)


def _aad(share_id: str, owner: str, n: int) -> bytes:
    return f"{owner}/{share_id}#{n}".encode()


def seal(key: bytes, share_id: str, owner: str, n: int, plaintext: bytes) -> str:
    nonce = os.urandom(NONCE)
    return b64(nonce + ChaCha20Poly1305(key).encrypt(nonce, plaintext, _aad(share_id, owner, n)))


def open_box(key: bytes, share_id: str, owner: str, n: int, box: object) -> bytes:
    """The plaintext, or InvalidInput when the box does not open (wrong key, share, number)."""
    try:
        raw = base64.b64decode(str(box), validate=True)
        return ChaCha20Poly1305(key).decrypt(raw[:NONCE], raw[NONCE:], _aad(share_id, owner, n))
    except (ValueError, InvalidTag):
        raise InvalidInput("the sealed payload does not open with this share's key",
                           "sealed") from None
