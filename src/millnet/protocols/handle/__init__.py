"""Sans-IO codec of the Handle System native protocol (RFC 3652), versions 2.1 to 2.11.

Bytes in, frozen dataclasses out, and back; no sockets, no clock. The pieces:

* :mod:`.codec` - :class:`Message` (envelope, header, body, credential),
  :func:`encode_message`, :func:`decode_message`;
* :mod:`.requests`, :mod:`.responses` - one body class per operation;
* :mod:`.values`, :mod:`.site` - handle values and the layouts of HS_ADMIN, HS_SITE,
  HS_VLIST, HS_SERV, HS_PUBKEY;
* :mod:`.framing` - :class:`TcpFramer` for streams, :class:`UdpReassembler` and
  :func:`udp_packets` for datagrams;
* :mod:`.replies` - responses built as Handle.Net builds them (version, digest, expiration);
* :mod:`.names` - :func:`normalize_handle`, the case rule.

Every decoding failure raises :class:`millnet.errors.ProtocolError` naming the field.
``docs/handle-protocol.md`` lists what was checked against which source.
"""

from .codec import (
    Envelope,
    Header,
    Message,
    MessageError,
    UnknownOperation,
    UnsupportedEnvelope,
    UnsupportedVersion,
    decode_envelope,
    decode_message,
    decode_payload,
    encode_envelope,
    encode_message,
)
from .constants import (
    ALL_ADMIN_PERMISSIONS,
    MAX_VERSION,
    MIN_VERSION,
    UDP_FRAGMENT_SIZE,
    AdminPermission,
    DigestAlgorithm,
    HashOption,
    OpCode,
    OpFlag,
    Permission,
    ResponseCode,
    ServiceType,
    TransportProtocol,
    TTLType,
)
from .credential import Credential, decode_credential, encode_credential
from .framing import (
    DEFAULT_MAX_MESSAGE,
    StreamError,
    TcpFramer,
    UdpReassembler,
    udp_packet_count,
    udp_packets,
)
from .names import MAX_HANDLE_BYTES, normalize_handle, prefix_handle, split_handle
from .replies import (
    compute_request_digest,
    digest_algorithm,
    error_reply,
    make_response,
    response_version,
)
from .requests import (
    AddValueRequest,
    ChallengeAnswer,
    CreateHandleRequest,
    DeleteHandleRequest,
    GetSiteInfoRequest,
    ListHandlesRequest,
    ModifyValueRequest,
    PasswordLoginRequest,
    PublicKeyLoginRequest,
    RemoveValueRequest,
    RequestDigest,
    ResolutionRequest,
    VerifyChallengeRequest,
)
from .responses import (
    Body,
    Challenge,
    CreateHandleResponse,
    ErrorResponse,
    GenericResponse,
    GetSiteInfoResponse,
    ListHandlesResponse,
    PasswordLoginResponse,
    ResolutionResponse,
    ServiceReferral,
    VerifyChallengeResponse,
)
from .site import ServerRecord, ServiceInterface, SiteInfo, address_octets, decode_site, encode_site
from .values import (
    AdminRecord,
    HandleValue,
    PublicKeyRecord,
    ValueReference,
    decode_admin,
    decode_pubkey,
    decode_serv,
    decode_value,
    decode_vlist,
    encode_admin,
    encode_pubkey,
    encode_serv,
    encode_value,
    encode_vlist,
    java_bigint,
    rsa_public_key,
)

__all__ = [
    "ALL_ADMIN_PERMISSIONS", "DEFAULT_MAX_MESSAGE", "MAX_HANDLE_BYTES", "MAX_VERSION",
    "MIN_VERSION", "UDP_FRAGMENT_SIZE", "AddValueRequest", "AdminPermission", "AdminRecord", "Body",
    "Challenge", "ChallengeAnswer", "CreateHandleRequest", "CreateHandleResponse",
    "Credential", "DeleteHandleRequest", "DigestAlgorithm", "Envelope", "ErrorResponse",
    "GenericResponse", "GetSiteInfoRequest", "GetSiteInfoResponse", "HandleValue",
    "HashOption", "Header", "ListHandlesRequest", "ListHandlesResponse", "Message",
    "MessageError", "ModifyValueRequest", "OpCode", "OpFlag", "PasswordLoginRequest",
    "PasswordLoginResponse", "Permission", "PublicKeyLoginRequest", "PublicKeyRecord",
    "RemoveValueRequest", "RequestDigest", "ResolutionRequest", "ResolutionResponse",
    "ResponseCode", "ServerRecord", "ServiceInterface", "ServiceReferral", "ServiceType",
    "SiteInfo", "StreamError", "TTLType", "TcpFramer", "TransportProtocol", "UdpReassembler",
    "UnknownOperation", "UnsupportedEnvelope", "UnsupportedVersion", "ValueReference",
    "VerifyChallengeRequest", "VerifyChallengeResponse", "address_octets",
    "compute_request_digest", "decode_admin", "decode_credential", "decode_envelope",
    "decode_message", "decode_payload", "decode_pubkey", "decode_serv", "decode_site",
    "decode_value", "decode_vlist", "digest_algorithm", "encode_admin", "encode_credential",
    "encode_envelope", "encode_message", "encode_pubkey", "encode_serv", "encode_site",
    "encode_value", "encode_vlist", "error_reply", "java_bigint", "make_response",
    "normalize_handle", "prefix_handle", "response_version", "rsa_public_key",
    "split_handle", "udp_packet_count", "udp_packets",
]
