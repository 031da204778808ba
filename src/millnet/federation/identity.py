"""A node's federation identity: its name and an Ed25519 key kept in its data directory.

The private key is written once, on first start, to a file of mode 0600 (created with that mode:
never readable by others, not even for an instant) and never leaves the object: no repr, no log
line shows it.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
)

from millnet.errors import ConfigError, InvalidInput
from millnet.protocols.federation import NODE_ID_RE

KEY_SETTING = "federation.key_file"


def check_node_id(node_id: str, field: str = "node_id") -> str:
    if not isinstance(node_id, str) or not NODE_ID_RE.match(node_id):
        raise InvalidInput("a node id is 1 to 64 of A-Z a-z 0-9 . _ -", field)
    return node_id


def public_key_from_bytes(raw: bytes, field: str = "public_key") -> Ed25519PublicKey:
    if len(raw) != 32:
        raise InvalidInput("an Ed25519 public key is 32 bytes", field)
    return Ed25519PublicKey.from_public_bytes(raw)


def verify(public_key: bytes | Ed25519PublicKey, signature: bytes, data: bytes) -> bool:
    """Whether ``signature`` is ``public_key``'s over ``data``."""
    key = public_key_from_bytes(public_key) if isinstance(public_key, bytes) else public_key
    try:
        key.verify(signature, data)
    except InvalidSignature:
        return False
    return True


class NodeIdentity:
    """The node id (its configured name) and its signing key."""

    __slots__ = ("_key", "node_id", "public_key_bytes")

    def __init__(self, node_id: str, key: Ed25519PrivateKey) -> None:
        self.node_id = check_node_id(node_id, "node.name")
        self._key = key
        self.public_key_bytes = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    @classmethod
    def load_or_create(cls, path: Path | str, node_id: str) -> NodeIdentity:
        """The identity whose key is in ``path``, creating the key (mode 0600) when absent."""
        path = Path(path)
        try:
            pem = path.read_bytes()
        except FileNotFoundError:
            return cls(node_id, _create(path))
        except OSError as exc:
            raise ConfigError(KEY_SETTING, f"cannot read {path}: {exc.strerror}") from exc
        if path.stat().st_mode & 0o077:
            raise ConfigError(KEY_SETTING, f"{path} is readable by others: chmod 600 it")
        try:
            key = load_pem_private_key(pem, password=None)
        except (ValueError, TypeError) as exc:
            raise ConfigError(KEY_SETTING, f"{path} holds no usable private key") from exc
        if not isinstance(key, Ed25519PrivateKey):
            raise ConfigError(KEY_SETTING, f"{path} is not an Ed25519 key")
        return cls(node_id, key)

    @classmethod
    def generate(cls, node_id: str) -> NodeIdentity:
        """An identity that lives in memory only (tests, tools)."""
        return cls(node_id, Ed25519PrivateKey.generate())

    def sign(self, data: bytes) -> bytes:
        return self._key.sign(data)

    def __repr__(self) -> str:
        return f"NodeIdentity({self.node_id!r}, public_key={self.public_key_bytes.hex()[:16]}...)"


def _create(path: Path) -> Ed25519PrivateKey:
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # O_EXCL: two processes starting together must not both write (one key wins, the
        # other reads it); the mode is set at creation, never widened.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise ConfigError(KEY_SETTING, f"{path} appeared while creating it: start again") \
            from None
    except OSError as exc:
        raise ConfigError(KEY_SETTING, f"cannot create {path}: {exc.strerror}") from exc
    with os.fdopen(fd, "wb") as out:
        out.write(pem)
        out.flush()
        os.fsync(out.fileno())
    return key
