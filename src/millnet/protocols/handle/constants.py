"""Numbers of the Handle native protocol: operation and response codes, flags, sizes.

Names follow RFC 3652 (section 2.2.2); codes the RFC does not list come from the Handle.Net
client library (hdllib) and from the IDIS SDKs of China's national system (CAICT ``ID-SDK``,
``id-pointer-sdk``). ``docs/handle-protocol.md`` says which source each one was checked against.
"""

from __future__ import annotations

import enum

ENVELOPE_SIZE = 20
HEADER_SIZE = 24

#: hdllib and the CAICT SDK cut UDP messages into datagrams of at most 512 octets; the
#: receiver places fragment ``n`` at offset ``n * UDP_FRAGMENT_SIZE``, so every fragment but
#: the last must carry exactly this many octets after its envelope.
UDP_PACKET_SIZE = 512
UDP_FRAGMENT_SIZE = UDP_PACKET_SIZE - ENVELOPE_SIZE

#: The oldest protocol version whose layouts this codec implements: 2.0 and the "5.0" of
#: very old clients put the request digest and error bodies elsewhere.
MIN_VERSION = (2, 1)
#: What we offer as the suggested version; 2.11 differs from 2.10 only in the default DSA
#: signature hash (SHA256withDSA), not in any layout.
MAX_VERSION = (2, 11)

#: hdllib's default message expiration: twelve hours after sending. The CAICT SDK rejects a
#: response whose expiration lies in the past, so responses must carry one.
DEFAULT_EXPIRATION_S = 12 * 60 * 60


class OpCode(enum.IntEnum):
    RESERVED = 0
    RESOLUTION = 1
    GET_SITEINFO = 2
    CREATE_HANDLE = 100
    DELETE_HANDLE = 101
    ADD_VALUE = 102
    REMOVE_VALUE = 103
    MODIFY_VALUE = 104
    LIST_HANDLE = 105
    LIST_NA = 106
    CHALLENGE_RESPONSE = 200
    VERIFY_RESPONSE = 201
    # hdllib: homing prefixes on a server
    HOME_NA = 300
    UNHOME_NA = 301
    LIST_HOMED_NA = 302
    SESSION_SETUP = 400
    SESSION_TERMINATE = 401
    SESSION_EXCHANGEKEY = 402
    # hdllib: replication between mirror servers
    GET_NEXT_TXN_ID = 1000
    RETRIEVE_TXN_LOG = 1001
    DUMP_HANDLES = 1002
    BACKUP_SERVER = 1003
    # IDIS (CAICT SDK 2.0.3): login with user and password, login with a public key
    LOGIN = 2000
    LOGIN_ID_SYSTEM = 2001


class ResponseCode(enum.IntEnum):
    RESERVED = 0  # a request
    SUCCESS = 1
    ERROR = 2
    SERVER_BUSY = 3
    PROTOCOL_ERROR = 4
    OPERATION_DENIED = 5
    RECUR_LIMIT_EXCEEDED = 6
    SERVER_BACKUP = 7  # hdllib; sent as 303 to clients older than 2.5
    HANDLE_NOT_FOUND = 100
    HANDLE_ALREADY_EXIST = 101
    INVALID_HANDLE = 102
    VALUE_NOT_FOUND = 200
    VALUE_ALREADY_EXIST = 201
    VALUE_INVALID = 202  # sent as 201 to clients older than 2.5
    EXPIRED_SITE_INFO = 300
    SERVER_NOT_RESP = 301
    SERVICE_REFERRAL = 302
    NA_DELEGATE = 303  # hdllib's RC_PREFIX_REFERRAL since 2.5
    NOT_AUTHORIZED = 400
    ACCESS_DENIED = 401
    AUTHEN_NEEDED = 402
    AUTHEN_FAILED = 403
    INVALID_CREDENTIAL = 404
    AUTHEN_TIMEOUT = 405
    UNABLE_TO_AUTHEN = 406
    RELOGIN = 407  # IDIS: already logged in
    LOGIN_FIRST = 408  # IDIS: log in before this operation
    SESSION_TIMEOUT = 500
    SESSION_FAILED = 501
    NO_SESSION_KEY = 502
    SESSION_NO_SUPPORT = 503
    SESSION_KEY_INVALID = 504
    SESSION_MESSAGE_REJECTED = 505  # hdllib: replayed session message
    CLIENT_CHANNEL_ERROR = 601  # id-pointer-sdk, client side only
    CLIENT_TIME_OUT = 602
    REQUEST_LIMIT_DAILY = 603  # IDIS quotas
    REGISTER_COUNT_LIMIT = 604
    PREFIX_LIMIT = 605
    TRYING = 900
    FORWARDED = 901
    QUEUED = 902
    VERIFY_CREDENTIAL_FAILED = 3001  # IDIS


class OpFlag(enum.IntFlag):
    """Header OpFlag bits (RFC 3652 2.2.2.3, plus low bits used by hdllib and IDIS)."""

    AT = 0x80000000  # authoritative
    CT = 0x40000000  # certified response wanted
    ENC = 0x20000000  # encrypted response wanted
    REC = 0x10000000  # recursive
    CA = 0x08000000  # cache-authenticated
    CN = 0x04000000  # continued: more messages follow for this request
    KA = 0x02000000  # keep the connection alive
    PO = 0x01000000  # public values only
    RD = 0x00800000  # request digest wanted (in a request) / present (in a response)
    OW = 0x00400000  # overwrite when the handle exists (create)
    MINT = 0x00200000  # mint a new suffix (create)
    DNRF = 0x00100000  # do not refer
    RECU_AUTH = 0x00000004  # hdllib: authenticate recursive requests
    TRUSTED_QUERY = 0x00000002  # IDIS: ask for a verified ("trusted") resolution
    TRUSTED_RESULT = 0x00000001  # IDIS: that verification succeeded


#: Flags a response copies from its request (hdllib ``takeValuesFrom``).
ECHOED_FLAGS = OpFlag.AT | OpFlag.CT | OpFlag.ENC | OpFlag.CA | OpFlag.PO | OpFlag.DNRF


class EnvelopeFlag(enum.IntFlag):
    """High bits of envelope octet 2; its two low bits carry the suggested major version."""

    CP = 0x80  # compressed
    EC = 0x40  # encrypted
    TC = 0x20  # truncated: one fragment of a message sent in several packets


SUGGESTED_MAJOR_MASK = 0x03


class DigestAlgorithm(enum.IntEnum):
    """Request digest algorithm octet; LEGACY is the pre-2.1 length-prefixed MD5."""

    LEGACY = 0
    MD5 = 1
    SHA1 = 2
    SHA256 = 3


DIGEST_SIZES: dict[int, int] = {
    DigestAlgorithm.MD5: 16, DigestAlgorithm.SHA1: 20, DigestAlgorithm.SHA256: 32}


class Permission(enum.IntFlag):
    """Per-value permission octet."""

    PUBLIC_WRITE = 0x1
    PUBLIC_READ = 0x2
    ADMIN_WRITE = 0x4
    ADMIN_READ = 0x8


#: a plain int: IntFlag operators on every value cost microseconds
DEFAULT_PERMISSIONS = int(Permission.ADMIN_READ | Permission.ADMIN_WRITE | Permission.PUBLIC_READ)


class TTLType(enum.IntEnum):
    RELATIVE = 0
    ABSOLUTE = 1


class AdminPermission(enum.IntFlag):
    """HS_ADMIN permission bits (hdllib ``Encoder.PERM_*``; bit 0 is add-handle)."""

    ADD_HANDLE = 0x0001
    DELETE_HANDLE = 0x0002
    ADD_NA = 0x0004  # add derived prefix
    DELETE_NA = 0x0008
    MODIFY_VALUE = 0x0010
    REMOVE_VALUE = 0x0020
    ADD_VALUE = 0x0040
    MODIFY_ADMIN = 0x0080
    REMOVE_ADMIN = 0x0100
    ADD_ADMIN = 0x0200
    READ_VALUE = 0x0400
    LIST_HANDLES = 0x0800


ALL_ADMIN_PERMISSIONS = AdminPermission(0x0FFF)


class ServiceType(enum.IntEnum):
    """HS_SITE interface: which operations a server interface accepts."""

    OUT_OF_SERVICE = 0
    ADMIN = 1
    QUERY = 2
    ADMIN_AND_QUERY = 3


class TransportProtocol(enum.IntEnum):
    UDP = 0
    TCP = 1
    HTTP = 2
    HTTPS = 3


class HashOption(enum.IntEnum):
    """HS_SITE: which part of a handle picks the server within a multi-server site."""

    BY_PREFIX = 0
    BY_SUFFIX = 1
    BY_HANDLE = 2


SITE_PRIMARY = 0x80
SITE_MULTI_PRIMARY = 0x40
