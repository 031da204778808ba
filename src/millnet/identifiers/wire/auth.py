"""Challenge-response authentication of the native protocol (RFC 3652 section 3.5, as hdllib
does it).

An administrative request arrives without a session: the server answers 402 AUTHEN_NEEDED with
a :class:`~millnet.protocols.handle.Challenge` (16 random octets and the digest of the request)
under a fresh session id, and keeps the request in a :class:`ChallengeTable`. The client answers
with a CHALLENGE_RESPONSE (opcode 200) carrying that session id and a *new* request id (hdllib
and the CAICT SDK both do so, and hdllib opens a new TCP connection for it): so pending
challenges are keyed by session id, not by connection or request id. Each is answered once and
expires after ``timeout`` seconds.

HS_SECKEY answers (:func:`sign_secret_key`, :func:`check_secret_key`) are what hdllib's
``SecretKeyAuthenticationInfo.authenticate`` and ``Util.doMac`` compute over
``nonce || request digest`` (the digest octets, without their algorithm octet), choosing by the
lower of the challenge's version and its suggested version:

* 2.7 and later: octet 0x22 (PBKDF2-HMAC-SHA1) then ``salt`` (u32 length + octets), iterations
  (u32), key length in bits (u32), MAC (u32 length + octets); the MAC is HMAC-SHA1 keyed by
  PBKDF2-HMAC-SHA1(secret, salt, iterations, key length). Java's PBKDF2 takes the secret as
  chars (each octet widened) and encodes them as UTF-8, which :func:`_java_password` mirrors.
  hdllib uses a random 16-octet salt, 10,000 iterations, 160 bits.
* 2.1 to 2.6: octet 0x02 then SHA-1(secret || message || secret).
* older: MD5(secret || message || secret) with no octet: refused here (MD5), as are 0x00/0x01.

``Util.doMac`` also defines 0x03 (SHA-256 of secret || message || secret), 0x12 HMAC-SHA1 and
0x13 HMAC-SHA256, which no hdllib client sends for challenges; they are accepted.

HS_PUBKEY answers (and the IDIS LOGIN_ID_SYSTEM 2001 that uses the same challenge) plug in as
another :data:`Verifier` keyed by auth type; none is registered yet.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import ClassVar

from millnet.errors import MillnetError, ProtocolError, Unauthenticated
from millnet.protocols.handle import (
    Challenge,
    Message,
    ResponseCode,
    make_response,
)
from millnet.protocols.handle.wire import U32, Reader, put_octets

NONCE_SIZE = 16  # hdllib Common.CHALLENGE_NONCE_SIZE
SECRET_KEY_TYPE = "HS_SECKEY"  # noqa: S105 - an auth type name, not a secret
PUBLIC_KEY_TYPE = "HS_PUBKEY"

MAC_MD5_OLD = 0x00
MAC_MD5 = 0x01
MAC_SHA1 = 0x02
MAC_SHA256 = 0x03
MAC_HMAC_SHA1 = 0x12
MAC_HMAC_SHA256 = 0x13
MAC_PBKDF2_HMAC_SHA1 = 0x22

PBKDF2_ITERATIONS = 10_000  # hdllib's default
PBKDF2_KEY_BITS = 160
PBKDF2_SALT_SIZE = 16
#: Bounds on what a client may ask the server to compute (the iterations are its choice).
# What hdllib sends is 10,000 iterations and 160 bits; each doubling of either doubles the
# work an unauthenticated answer can make the server do (found by review: 20,000 and 512 bits
# cost about 20 ms of the event loop per datagram).
MAX_PBKDF2_ITERATIONS = 10_000
MAX_PBKDF2_KEY_BITS = 160
MAX_PBKDF2_SALT = 256


class AuthenticationTimeout(Unauthenticated):
    """The answer names no pending challenge: expired, already answered, or never issued."""

    code: ClassVar[ResponseCode] = ResponseCode.AUTHEN_TIMEOUT


class UnableToAuthenticate(Unauthenticated):
    """An authentication type this server cannot check (yet)."""

    code: ClassVar[ResponseCode] = ResponseCode.UNABLE_TO_AUTHEN


class ServerBusy(MillnetError):
    code: ClassVar[ResponseCode] = ResponseCode.SERVER_BUSY


#: Checks a signed response: (key handle, key index, nonce, request digest, signed response)
#: -> True when valid. One per auth type ("HS_SECKEY", later "HS_PUBKEY").
Verifier = Callable[[str, int, bytes, bytes, bytes], bool]


# ----------------------------------------------------------------------- HS_SECKEY MACs

def mac_algorithm(version: tuple[int, int]) -> int:
    """The MAC hdllib answers a challenge of ``version`` with (the lower of the challenge's
    version and the version it suggests)."""
    if version >= (2, 7):
        return MAC_PBKDF2_HMAC_SHA1
    if version >= (2, 1):
        return MAC_SHA1
    return MAC_MD5_OLD


def challenge_version(challenge: Message) -> tuple[int, int]:
    env = challenge.envelope
    return min(env.version, env.suggested_version)


def _java_password(secret: bytes) -> bytes:
    """hdllib widens each octet to a char; Java's PBKDF2 encodes those chars as UTF-8."""
    return secret.decode("latin-1").encode("utf-8")


def _pbkdf2_mac(secret: bytes, message: bytes, salt: bytes, iterations: int,
                key_bits: int) -> bytes:
    key = hashlib.pbkdf2_hmac("sha1", _java_password(secret), salt, iterations, key_bits // 8)
    return hmac.digest(key, message, "sha1")


def sign_secret_key(secret: bytes, nonce: bytes, digest: bytes, version: tuple[int, int], *,
                    salt: bytes | None = None, iterations: int = PBKDF2_ITERATIONS,
                    key_bits: int = PBKDF2_KEY_BITS) -> bytes:
    """The signed response of an HS_SECKEY ChallengeAnswer, as hdllib builds it."""
    message = nonce + digest
    algorithm = mac_algorithm(version)
    if algorithm == MAC_PBKDF2_HMAC_SHA1:
        salt = secrets.token_bytes(PBKDF2_SALT_SIZE) if salt is None else salt
        buf = bytearray((MAC_PBKDF2_HMAC_SHA1,))
        put_octets(buf, salt)
        buf += U32.pack(iterations)
        buf += U32.pack(key_bits)
        put_octets(buf, _pbkdf2_mac(secret, message, salt, iterations, key_bits))
        return bytes(buf)
    if algorithm == MAC_SHA1:
        # The protocol's keyed SHA-1 for 2.1 to 2.6 peers; newer ones get PBKDF2 + HMAC.
        return bytes((MAC_SHA1,)) + hashlib.sha1(secret + message + secret).digest()  # noqa: S324
    raise ValueError(f"protocol {version[0]}.{version[1]} answers with MD5, which is refused")


_KEYED_DIGESTS = {MAC_SHA1: "sha1", MAC_SHA256: "sha256"}
_HMACS = {MAC_HMAC_SHA1: "sha1", MAC_HMAC_SHA256: "sha256"}


def _expected(secret: bytes, message: bytes, signed: bytes) -> tuple[bytes, bytes]:
    """(what the MAC should be, the MAC given); ProtocolError when malformed or refused."""
    if not signed:
        raise ProtocolError("signed_response: empty")
    algorithm, r = signed[0], Reader(signed, 1)
    if algorithm == MAC_PBKDF2_HMAC_SHA1:
        salt = r.octets("signed_response.salt")
        iterations = r.u32("signed_response.iterations")
        key_bits = r.u32("signed_response.key_length")
        given = r.octets("signed_response.mac")
        r.done("signed_response")
        if not 1 <= iterations <= MAX_PBKDF2_ITERATIONS or len(salt) > MAX_PBKDF2_SALT \
                or key_bits % 8 or not 64 <= key_bits <= MAX_PBKDF2_KEY_BITS:
            raise ProtocolError("signed_response: PBKDF2 parameters out of bounds")
        return _pbkdf2_mac(secret, message, salt, iterations, key_bits), given
    if algorithm in _KEYED_DIGESTS:
        return hashlib.new(_KEYED_DIGESTS[algorithm], secret + message + secret).digest(), \
            r.rest()
    if algorithm in _HMACS:
        return hmac.digest(secret, message, _HMACS[algorithm]), r.rest()
    raise ProtocolError(f"signed_response: MAC algorithm {algorithm:#04x} is not accepted")


def check_secret_key(secret: bytes | None, nonce: bytes, digest: bytes,
                     signed_response: bytes) -> bool:
    """Whether ``signed_response`` proves knowledge of ``secret`` for this challenge. Without
    a secret (unknown key) the same work is done against a random one, then False."""
    key = secret if secret is not None else secrets.token_bytes(20)
    try:
        expected, given = _expected(key, nonce + digest, signed_response)
    except ProtocolError:
        return False
    return hmac.compare_digest(expected, given) and secret is not None


# ----------------------------------------------------------------------- pending challenges

@dataclass(frozen=True, slots=True)
class Pending:
    request: Message
    nonce: bytes
    digest: bytes
    host: str
    deadline: float
    udp: bool = False


class TooManyFailures(Unauthenticated):
    """A host that failed authentication too often is refused for a while (AUTHEN_FAILED,
    without checking the credentials: guessing stays slow)."""

    code: ClassVar[ResponseCode] = ResponseCode.AUTHEN_FAILED


def client_key(host: str) -> str:
    """Whom failures are counted against: an IPv4 address, or the /64 network of an IPv6
    address (one end site has a whole /64: counting single addresses would give an attacker
    2**64 fresh tries; found by review)."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


class AuthThrottle:
    """Failed authentications per client host in a sliding window: beyond ``limit`` in
    ``window`` seconds the host's attempts are refused until old failures age out. Bounded to
    ``max_hosts`` (the least recently failing host is forgotten first). Thread-safe: the REST
    API checks credentials in worker threads."""

    def __init__(self, *, limit: int = 20, window: float = 60.0, max_hosts: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limit, self.window, self.max_hosts, self._clock = limit, window, max_hosts, clock
        self._failures: OrderedDict[str, list[float]] = OrderedDict()
        self._lock = threading.Lock()
        #: ``on_failure(host, reason, fingerprint)``: the security monitor's, set by the node.
        self.on_failure: Callable[[str, str, str], None] | None = None

    def check(self, host: str) -> None:
        """Raise TooManyFailures while ``host`` is over the limit."""
        host = client_key(host)
        with self._lock:
            recent = self._recent(host)
        if len(recent) >= self.limit:
            raise TooManyFailures(f"too many failed authentications from {host}; "
                                  f"wait up to {self.window:.0f} s")

    def failed(self, host: str) -> None:
        if self.on_failure is not None:
            self.on_failure(host, "invalid", "")
        host = client_key(host)
        with self._lock:
            recent = self._recent(host)
            recent.append(self._clock())
            self._failures[host] = recent
            self._failures.move_to_end(host)
            while len(self._failures) > self.max_hosts:
                self._failures.popitem(last=False)

    def _recent(self, host: str) -> list[float]:
        cutoff = self._clock() - self.window
        recent = [t for t in self._failures.get(host, ()) if t > cutoff]
        if not recent:
            self._failures.pop(host, None)
        return recent


class ChallengeTable:
    """Challenges sent and not yet answered, by session id; bounded in number and age.

    An answer must come from the host the challenged request came from (any port: hdllib
    answers over a new TCP connection). ``take`` removes the entry, so a nonce is answered
    once, right or wrong.

    Bounds, so that no client can keep others from administering (found by review): a host
    holds at most ``max_per_host`` challenges and ``max_host_bytes`` of requests; requests
    that came over UDP, whose source address anyone can forge, share ``max_udp`` places of
    their own, so forged datagrams can fill those but never the places of TCP clients."""

    def __init__(self, *, timeout: float = 60.0, max_pending: int = 4096,
                 max_per_host: int = 64, max_bytes: int = 32 << 20,
                 max_host_bytes: int = 2 << 20, max_udp: int = 512,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.timeout = timeout
        self.max_pending = max_pending
        self.max_per_host = max_per_host
        self.max_bytes = max_bytes  # of the requests held (a create may carry a megabyte)
        self.max_host_bytes = max_host_bytes
        self.max_udp = max_udp
        self._clock = clock
        self._pending: OrderedDict[int, Pending] = OrderedDict()  # oldest first
        self._per_host: dict[str, int] = {}
        self._host_bytes: dict[str, int] = {}
        self._bytes = 0
        self._udp = 0

    def __len__(self) -> int:
        return len(self._pending)

    def challenge(self, request: Message, host: str, *, now: int, udp: bool = False) -> Message:
        """The 402 response to ``request`` (``now``: Unix seconds for its expiration),
        remembered under a new session id. ServerBusy when too many are pending."""
        self._purge()
        size = len(request.signed_part)
        if len(self._pending) >= self.max_pending or self._bytes + size > self.max_bytes \
                or self._per_host.get(host, 0) >= self.max_per_host \
                or self._host_bytes.get(host, 0) + size > self.max_host_bytes \
                or (udp and self._udp >= self.max_udp):
            raise ServerBusy("too many unanswered challenges")
        session_id = self._new_session_id()
        nonce = secrets.token_bytes(NONCE_SIZE)
        reply = make_response(request, Challenge(request.opcode, nonce), now=now)
        reply = replace(reply, envelope=replace(reply.envelope, session_id=session_id))
        assert reply.request_digest is not None  # make_response always digests a Challenge
        self._pending[session_id] = Pending(request, nonce, reply.request_digest.digest, host,
                                            self._clock() + self.timeout, udp)
        self._per_host[host] = self._per_host.get(host, 0) + 1
        self._host_bytes[host] = self._host_bytes.get(host, 0) + size
        self._bytes += size
        self._udp += udp
        return reply

    def take(self, session_id: int, host: str) -> Pending:
        """The pending challenge of ``session_id`` (removed); AuthenticationTimeout when
        there is none for this host or it expired."""
        pending = self._pending.get(session_id)
        if pending is None or pending.host != host:
            self._purge()
            raise AuthenticationTimeout(
                f"no pending challenge for session {session_id} (expired, already answered "
                "or never sent)")
        self._forget(session_id, pending)
        if self._clock() > pending.deadline:
            raise AuthenticationTimeout(f"the challenge of session {session_id} expired")
        return pending

    def _new_session_id(self) -> int:
        while True:
            session_id = secrets.randbelow(0x7FFFFFFF) + 1
            if session_id not in self._pending:
                return session_id

    def _forget(self, session_id: int, pending: Pending) -> None:
        del self._pending[session_id]
        size = len(pending.request.signed_part)
        self._bytes -= size
        self._udp -= pending.udp
        left = self._per_host[pending.host] - 1
        if left:
            self._per_host[pending.host] = left
            self._host_bytes[pending.host] -= size
        else:
            del self._per_host[pending.host]
            del self._host_bytes[pending.host]

    def _purge(self) -> None:
        now = self._clock()
        while self._pending:
            session_id, pending = next(iter(self._pending.items()))
            if pending.deadline >= now:
                return
            self._forget(session_id, pending)
