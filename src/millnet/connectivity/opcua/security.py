"""The node's own OPC UA application certificate, and the explicit trust in a server's.

On first use with Sign & Encrypt the node creates a self-signed application instance
certificate (RSA 2048, SHA-256, one year; OPC 10000-6 6.2.2) under ``<data_dir>/pki/own/``:
``cert.der`` and ``key.pem`` (mode 0600, written so that it is never readable by others, even
for an instant). It is renewed when it expires within 30 days. Operators trust it on the server
side (copy ``cert.der`` into the server's trusted folder).

The server's certificate is never trusted on first use: the spec names the one file to trust,
and before opening a secure channel the endpoint's certificate is compared with it byte for
byte; a different one is refused with :class:`UntrustedServer`.
"""

from __future__ import annotations

import datetime
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from asyncua import ua
from asyncua.crypto import cert_gen
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

from millnet.errors import PermissionDenied

APPLICATION_URI = "urn:millnet:node:opcua-client"
POLICY_URI = "http://opcfoundation.org/UA/SecurityPolicy#Basic256Sha256"
_RENEW_BEFORE = datetime.timedelta(days=30)


class UntrustedServer(PermissionDenied):
    """The server presented a certificate other than the one trusted for it."""


@dataclass(frozen=True, slots=True)
class OwnCertificate:
    cert: Path
    key: Path


def ensure_own_certificate(data_dir: Path, host_name: str | None = None) -> OwnCertificate:
    """The node's certificate and key, created on first use (blocking: run it in a thread)."""
    own = data_dir / "pki" / "own"
    own.mkdir(parents=True, exist_ok=True, mode=0o700)
    cert_path, key_path = own / "cert.der", own / "key.pem"
    if key_path.is_file() and cert_path.is_file() and _still_valid(cert_path):
        return OwnCertificate(cert_path, key_path)
    key = cert_gen.generate_private_key()
    _write_private(key_path, cert_gen.dump_private_key_as_pem(key))
    host = host_name or socket.gethostname()
    cert = cert_gen.generate_self_signed_app_certificate(
        key, "millnet node", {"organizationName": "millnet"},
        [x509.UniformResourceIdentifier(APPLICATION_URI), x509.DNSName(host)],
        [ExtendedKeyUsageOID.CLIENT_AUTH], days=365)
    tmp = cert_path.with_suffix(".tmp")
    tmp.write_bytes(cert.public_bytes(Encoding.DER))
    os.replace(tmp, cert_path)
    return OwnCertificate(cert_path, key_path)


def _still_valid(path: Path) -> bool:
    try:
        cert = x509.load_der_x509_certificate(path.read_bytes())
    except ValueError:
        return False
    now = datetime.datetime.now(datetime.UTC)
    return cert.not_valid_after_utc - now > _RENEW_BEFORE


def _write_private(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def load_der(path: Path) -> bytes:
    """A certificate file (DER or PEM) as DER bytes."""
    data = path.read_bytes()
    if data.lstrip().startswith(b"-----BEGIN"):
        return x509.load_pem_x509_certificate(data).public_bytes(Encoding.DER)
    return x509.load_der_x509_certificate(data).public_bytes(Encoding.DER)


def first_certificate(blob: bytes) -> bytes:
    """The leading DER certificate of a (possibly chained) blob."""
    if len(blob) < 4 or blob[0] != 0x30 or blob[1] != 0x82:
        return blob
    return blob[:4 + int.from_bytes(blob[2:4], "big")]


def check_trusted(endpoints: list[ua.EndpointDescription], trusted_der: bytes,
                  endpoint_url: str) -> None:
    """Refuse the server unless its Basic256Sha256 Sign & Encrypt endpoint presents exactly the
    trusted certificate."""
    secure = [e for e in endpoints if e.SecurityPolicyUri == POLICY_URI
              and e.SecurityMode == ua.MessageSecurityMode.SignAndEncrypt]
    if not secure:
        raise UntrustedServer(f"{endpoint_url}: the server offers no Basic256Sha256 "
                              "Sign & Encrypt endpoint")
    for ep in secure:
        if ep.ServerCertificate and first_certificate(ep.ServerCertificate) == trusted_der:
            return
    raise UntrustedServer(f"{endpoint_url}: the server's certificate is not the trusted one "
                          "(server_certificate); refusing to connect")
