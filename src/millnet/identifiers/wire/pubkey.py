"""HS_PUBKEY: public keys in handle values, and challenge answers signed with the private key.

Layouts as hdllib has them (``Util.getBytesFromPublicKey``, ``PublicKeyAuthenticationInfo``):

* HS_PUBKEY data: key type (``RSA_PUB_KEY``, ``DSA_PUB_KEY``), 2 reserved octets, then the key's
  parts as length-prefixed Java BigInteger octets (RSA: exponent, modulus; DSA: q, p, g, y).
* A signed challenge answer: the hash algorithm id (u32 length + ``SHA-256``, ``SHA-1``, their
  ``SHA256``/``SHA1`` spellings, or one octet 2 / 3), then the signature (u32 length + octets)
  over ``nonce || request digest``. hdllib signs SHA256withRSA from protocol 2.7 on (SHA1 before),
  and SHA1withDSA before 2.11; DSA signatures are DER (r, s), RSA ones PKCS #1 v1.5.

Ed25519 is a millnet extension (Handle.Net has no Ed25519 key type): key type
``ED25519_PUB_KEY`` with the 32-octet raw public key as its one part, and hash id ``Ed25519``
(the message is signed as is). MD5 signatures are refused.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dsa, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from millnet.errors import ProtocolError
from millnet.protocols.handle import PublicKeyRecord, decode_pubkey, encode_pubkey
from millnet.protocols.handle.values import java_bigint
from millnet.protocols.handle.wire import Reader, put_octets, put_u16, put_utf8

ED25519_KEY_TYPE = "ED25519_PUB_KEY"
ED25519_HASH = b"Ed25519"
_SHA1 = (b"SHA-1", b"SHA1", b"\x02")
_SHA256 = (b"SHA-256", b"SHA256", b"\x03")

VerifiableKey = rsa.RSAPublicKey | dsa.DSAPublicKey | ed25519.Ed25519PublicKey
SigningKey = rsa.RSAPrivateKey | dsa.DSAPrivateKey | ed25519.Ed25519PrivateKey


class UnsupportedKey(ValueError):
    pass


def pubkey_data(key: PublicKeyTypes) -> bytes:
    """The HS_PUBKEY value data of ``key`` (RSA, DSA or Ed25519)."""
    if isinstance(key, rsa.RSAPublicKey):
        numbers = key.public_numbers()
        return encode_pubkey(PublicKeyRecord("RSA_PUB_KEY", (java_bigint(numbers.e),
                                                             java_bigint(numbers.n))))
    if isinstance(key, dsa.DSAPublicKey):
        n = key.public_numbers()
        p = n.parameter_numbers
        return encode_pubkey(PublicKeyRecord("DSA_PUB_KEY", tuple(
            java_bigint(v) for v in (p.q, p.p, p.g, n.y))))
    if isinstance(key, ed25519.Ed25519PublicKey):
        raw = key.public_bytes(Encoding.Raw, PublicFormat.Raw)
        buf = bytearray()
        put_utf8(buf, ED25519_KEY_TYPE)
        put_u16(buf, 0)
        put_octets(buf, raw)
        return bytes(buf)
    raise UnsupportedKey(f"{type(key).__name__} keys are not supported (RSA, DSA, Ed25519)")


def load_pubkey(data: bytes) -> VerifiableKey:
    """The key an HS_PUBKEY value holds; UnsupportedKey / ProtocolError when it cannot be
    used."""
    record = decode_pubkey(data)
    if record.key_type == "RSA_PUB_KEY":
        return rsa.RSAPublicNumbers(record.integer("exponent"),
                                    record.integer("modulus")).public_key()
    if record.key_type == "DSA_PUB_KEY":
        params = dsa.DSAParameterNumbers(record.integer("p"), record.integer("q"),
                                         record.integer("g"))
        return dsa.DSAPublicNumbers(record.integer("y"), params).public_key()
    if record.key_type == ED25519_KEY_TYPE:
        r = Reader(record.opaque)
        raw = r.octets("ed25519")
        r.done("ed25519")
        return ed25519.Ed25519PublicKey.from_public_bytes(raw)
    raise UnsupportedKey(f"HS_PUBKEY of type {record.key_type!r} cannot verify signatures here")


def sign_challenge(key: PrivateKeyTypes, nonce: bytes, digest: bytes,
                   version: tuple[int, int]) -> bytes:
    """The signed answer hdllib sends for ``key`` in protocol ``version``."""
    message = nonce + digest
    sha256 = version >= (2, 7)
    if isinstance(key, rsa.RSAPrivateKey):
        algorithm: hashes.HashAlgorithm = hashes.SHA256() if sha256 else hashes.SHA1()  # noqa: S303
        signature = key.sign(message, padding.PKCS1v15(), algorithm)
        hash_id = b"SHA-256" if sha256 else b"SHA-1"
    elif isinstance(key, dsa.DSAPrivateKey):
        dsa256 = version >= (2, 11)
        signature = key.sign(message, hashes.SHA256() if dsa256 else hashes.SHA1())  # noqa: S303
        hash_id = b"SHA-256" if dsa256 else b"SHA-1"
    elif isinstance(key, ed25519.Ed25519PrivateKey):
        signature, hash_id = key.sign(message), ED25519_HASH
    else:
        raise UnsupportedKey(f"{type(key).__name__} keys cannot sign (RSA, DSA, Ed25519)")
    buf = bytearray()
    put_octets(buf, hash_id)
    put_octets(buf, signature)
    return bytes(buf)


def verify_challenge(key_data: bytes | None, nonce: bytes, digest: bytes,
                     signed: bytes) -> bool:
    """Whether ``signed`` is a valid signature of ``nonce || digest`` by the HS_PUBKEY
    ``key_data``. Malformed answers and unusable keys are simply not valid."""
    if key_data is None:
        return False
    try:
        key = load_pubkey(key_data)
        r = Reader(signed)
        hash_id = r.octets("hash")
        signature = r.octets("signature")
        r.done("signed response")
    except (ProtocolError, UnsupportedKey, ValueError):
        return False
    message = nonce + digest
    try:
        if isinstance(key, ed25519.Ed25519PublicKey):
            if hash_id != ED25519_HASH:
                return False
            key.verify(signature, message)
            return True
        algorithm = _hash(hash_id)
        if algorithm is None:
            return False
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, message, padding.PKCS1v15(), algorithm)
        else:
            key.verify(signature, message, algorithm)
    except InvalidSignature:
        return False
    return True


def _hash(hash_id: bytes) -> hashes.HashAlgorithm | None:
    if hash_id in _SHA256:
        return hashes.SHA256()
    if hash_id in _SHA1:
        return hashes.SHA1()  # noqa: S303 - what hdllib signs before protocol 2.7
    return None  # MD5 and unknown ids are refused
