"""The credential section that may follow a message body (RFC 3652 2.2.4).

:attr:`Message.credential` keeps it as raw octets (what a signature check needs); this module
reads the structure inside. Layout, as hdllib ``AbstractMessage.signMessage`` writes it::

    Version u8 (0), Reserved u8 (0), Options u16,
    Signer: handle UTF8-String + index u32 (hdllib 2.5+ puts its session counter there),
    Type UTF8-String ("HS_SIGNED", "HS_MAC"; "HS_DSAPUBKEY" from old peers),
    SignedInfo: u32 length, DigestAlgorithm UTF8-String, Signature octets.
"""

from __future__ import annotations

from dataclasses import dataclass

from millnet.errors import ProtocolError

from .wire import U32, Reader, fail, put_octets, put_u16, put_utf8


@dataclass(frozen=True, slots=True)
class Credential:
    signer_handle: str
    signer_index: int
    type: str
    digest_algorithm: str
    signature: bytes
    version: int = 0
    reserved: int = 0
    options: int = 0


def encode_credential(cred: Credential) -> bytes:
    buf = bytearray((cred.version, cred.reserved))
    put_u16(buf, cred.options)
    put_utf8(buf, cred.signer_handle)
    buf += U32.pack(cred.signer_index)
    put_utf8(buf, cred.type)
    signed = bytearray()
    put_utf8(signed, cred.digest_algorithm)
    put_octets(signed, cred.signature)
    put_octets(buf, bytes(signed))
    return bytes(buf)


def decode_credential(data: bytes) -> Credential:
    r = Reader(data)
    try:
        version, reserved, options = r.u8("version"), r.u8("reserved"), r.u16("options")
        signer_handle, signer_index = r.utf8("signer.handle"), r.u32("signer.index")
        type_ = r.utf8("type")
        signed_length = r.u32("signed_info.length")
        if signed_length != r.remaining():
            raise fail("signed_info.length", f"{signed_length} but {r.remaining()} bytes remain")
        algorithm, signature = r.utf8("digest_algorithm"), r.octets("signature")
        r.done("signed_info")
    except ProtocolError as exc:
        raise ProtocolError(f"credential.{exc}") from None
    return Credential(signer_handle, signer_index, type_, algorithm, signature, version,
                      reserved, options)
