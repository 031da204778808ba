"""Administration over the native protocol, authenticated by challenge-response (HS_SECKEY),
against real UDP and TCP sockets and a SQLite store."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import struct
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypedDict

import pytest

from millnet.identifiers.core.delegation import bootstrap_prefix
from millnet.identifiers.core.service import IdentifierService
from millnet.identifiers.core.store import IdentifierStore
from millnet.identifiers.hierarchy.client import (
    Server,
    admin_request,
    request,
    request_tcp,
    request_udp,
    resolution_request,
)
from millnet.identifiers.native import handler as native
from millnet.identifiers.native.handler import NativeHandler
from millnet.identifiers.wire.auth import (
    MAC_PBKDF2_HMAC_SHA1,
    MAC_SHA1,
    AuthenticationTimeout,
    ChallengeTable,
    ServerBusy,
    challenge_version,
    check_secret_key,
    sign_secret_key,
)
from millnet.identifiers.wire.transport import NativeServer
from millnet.protocols.handle import (
    AddValueRequest,
    Challenge,
    ChallengeAnswer,
    CreateHandleRequest,
    CreateHandleResponse,
    DeleteHandleRequest,
    DigestAlgorithm,
    Envelope,
    ErrorResponse,
    HandleValue,
    Header,
    ListHandlesRequest,
    ListHandlesResponse,
    Message,
    ModifyValueRequest,
    OpCode,
    OpFlag,
    RemoveValueRequest,
    RequestDigest,
    ResolutionResponse,
    ResponseCode,
    ServerRecord,
    SiteInfo,
    VerifyChallengeRequest,
    VerifyChallengeResponse,
    address_octets,
    decode_message,
    encode_message,
)


class Admin(TypedDict):
    key_handle: str
    key_index: int
    secret: str


ADMIN5 = Admin(key_handle="88.100.5/ADMIN", key_index=300, secret="s3cret-five")
ADMIN6 = Admin(key_handle="88.100.6/ADMIN", key_index=300, secret="s3cret-six")
URL = HandleValue(1, "URL", b"https://plant.example/pumps/1")
MODEL = HandleValue(2, "MODEL", b"P-200")
SITE = SiteInfo(servers=(ServerRecord(1, address_octets("127.0.0.1")),))


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


Scenario = Callable[[Server, FakeClock], Awaitable[None]]


def _run(tmp_path: Path, scenario: Scenario) -> None:
    store = IdentifierStore.open(f"sqlite:///{tmp_path / 'ids.sqlite'}")
    bootstrap_prefix(store, "88.100.5", ADMIN5["secret"], SITE)
    bootstrap_prefix(store, "88.100.6", ADMIN6["secret"], SITE)
    service = IdentifierService(store, ["88.100.5", "88.100.6"])
    clock = FakeClock()
    handler = NativeHandler(service, SITE, challenges=ChallengeTable(timeout=30, clock=clock))

    async def main() -> None:
        async with NativeServer(handler, udp_port=0, tcp_port=0) as srv:
            await scenario(Server("127.0.0.1", srv.udp_port, srv.tcp_port), clock)

    try:
        asyncio.run(main())
    finally:
        store.close()


async def _values(where: Server, handle: str) -> tuple[HandleValue, ...]:
    answer = await request(resolution_request(handle), where)
    assert isinstance(answer.body, ResolutionResponse), answer.body
    return answer.body.values


def _strip(values: tuple[HandleValue, ...]) -> list[tuple[int, str, bytes]]:
    return [(v.index, v.type, v.data) for v in values]


def test_admin_lifecycle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(native, "LIST_BATCH", 2)  # several CN messages for LIST_HANDLE

    async def scenario(where: Server, clock: FakeClock) -> None:
        handle = "88.100.5/PUMP-1"
        created = await admin_request(CreateHandleRequest(handle, (URL,)), where, **ADMIN5)
        assert isinstance(created.body, CreateHandleResponse)
        assert created.body.handle is None
        assert created.opcode == OpCode.CREATE_HANDLE
        # Unauthenticated resolution still works and sees the new handle (plus its HS_ADMIN).
        assert (1, "URL", URL.data) in _strip(await _values(where, handle))

        again = await admin_request(CreateHandleRequest(handle, (URL,)), where, **ADMIN5)
        assert again.response_code == ResponseCode.HANDLE_ALREADY_EXIST
        replaced = await admin_request(CreateHandleRequest(handle, (MODEL,)), where,
                                       opflags=int(OpFlag.OW), **ADMIN5)
        assert replaced.response_code == ResponseCode.SUCCESS
        assert [v.type for v in await _values(where, handle) if v.type != "HS_ADMIN"] == \
            ["MODEL"]

        added = await admin_request(AddValueRequest(handle, (URL,)), where, **ADMIN5)
        assert added.response_code == ResponseCode.SUCCESS
        assert added.opcode == OpCode.ADD_VALUE
        new_url = HandleValue(1, "URL", b"https://plant.example/pumps/1b")
        modified = await admin_request(ModifyValueRequest(handle, (new_url,)), where, **ADMIN5)
        assert modified.response_code == ResponseCode.SUCCESS
        assert (1, "URL", new_url.data) in _strip(await _values(where, handle))
        removed = await admin_request(RemoveValueRequest(handle, (2,)), where, **ADMIN5)
        assert removed.response_code == ResponseCode.SUCCESS
        assert 2 not in [v.index for v in await _values(where, handle)]

        minted = await admin_request(CreateHandleRequest("88.100.5/", (URL,)), where,
                                     opflags=int(OpFlag.MINT), **ADMIN5)
        assert isinstance(minted.body, CreateHandleResponse)
        assert minted.body.handle is not None
        assert minted.body.handle.startswith("88.100.5/")
        stem = await admin_request(CreateHandleRequest("88.100.5/batch-", (URL,)), where,
                                   opflags=int(OpFlag.MINT), **ADMIN5)
        assert isinstance(stem.body, CreateHandleResponse)
        assert stem.body.handle is not None
        assert stem.body.handle.startswith("88.100.5/batch-")

        listed = await admin_request(ListHandlesRequest("0.NA/88.100.5"), where, **ADMIN5)
        assert isinstance(listed.body, ListHandlesResponse)
        assert set(listed.body.handles) == {"88.100.5/ADMIN", handle, minted.body.handle,
                                            stem.body.handle}

        deleted = await admin_request(DeleteHandleRequest(handle), where, **ADMIN5)
        assert deleted.response_code == ResponseCode.SUCCESS
        gone = await request(resolution_request(handle), where)
        assert gone.response_code == ResponseCode.HANDLE_NOT_FOUND

        # A 2.5 client answers with keyed SHA-1 instead of PBKDF2: accepted as well.
        old = await admin_request(CreateHandleRequest("88.100.5/OLD", (URL,)), where,
                                  version=(2, 5), **ADMIN5)
        assert old.response_code == ResponseCode.SUCCESS

    _run(tmp_path, scenario)


def test_refusals(tmp_path: Path) -> None:
    async def scenario(where: Server, clock: FakeClock) -> None:
        wrong: Admin = {**ADMIN5, "secret": "not-the-secret"}
        failed = await admin_request(CreateHandleRequest("88.100.5/X", (URL,)), where, **wrong)
        assert failed.response_code == ResponseCode.AUTHEN_FAILED
        assert failed.opcode == OpCode.CREATE_HANDLE
        unknown_key: Admin = {**ADMIN5, "key_index": 301}
        no_key = await admin_request(CreateHandleRequest("88.100.5/X", (URL,)), where,
                                     **unknown_key)
        assert no_key.response_code == ResponseCode.AUTHEN_FAILED

        # An admin of 88.100.6 is authenticated but has no rights under 88.100.5, and back.
        made = await admin_request(CreateHandleRequest("88.100.5/KEEP", (URL,)), where, **ADMIN5)
        assert made.response_code == ResponseCode.SUCCESS
        for body in (CreateHandleRequest("88.100.5/Y", (URL,)),
                     AddValueRequest("88.100.5/KEEP", (MODEL,)),
                     DeleteHandleRequest("88.100.5/KEEP"),
                     ListHandlesRequest("0.NA/88.100.5")):
            denied = await admin_request(body, where, **ADMIN6)
            assert denied.response_code == ResponseCode.NOT_AUTHORIZED, body
        foreign = await admin_request(CreateHandleRequest("88.100.6/Z", (URL,)), where, **ADMIN5)
        assert foreign.response_code == ResponseCode.NOT_AUTHORIZED
        minted = await admin_request(CreateHandleRequest("88.100.6/", (URL,)), where,
                                     opflags=int(OpFlag.MINT), **ADMIN5)
        assert minted.response_code == ResponseCode.NOT_AUTHORIZED
        assert _strip(await _values(where, "88.100.5/KEEP"))[0] == (1, "URL", URL.data)

        # Prefixes nobody serves are refused before any challenge.
        nobody = await request_tcp(Message(CreateHandleRequest("99.1/X", (URL,)),
                                           envelope=Envelope(request_id=5)), where)
        assert nobody.response_code == ResponseCode.SERVER_NOT_RESP

    _run(tmp_path, scenario)


async def _challenge(where: Server, body: DeleteHandleRequest | CreateHandleRequest,
                     request_id: int) -> Message:
    challenge = await request_tcp(Message(body, envelope=Envelope(request_id=request_id)), where)
    assert isinstance(challenge.body, Challenge)
    assert challenge.opcode == body.opcode
    assert challenge.envelope.request_id == request_id
    assert challenge.envelope.session_id != 0
    assert challenge.request_digest is not None
    assert len(challenge.body.nonce) == 16
    return challenge


def _answer(challenge: Message, secret: str, request_id: int) -> Message:
    assert isinstance(challenge.body, Challenge)
    assert challenge.request_digest is not None
    signed = sign_secret_key(secret.encode(), challenge.body.nonce,
                             challenge.request_digest.digest, challenge_version(challenge))
    return Message(ChallengeAnswer("HS_SECKEY", "88.100.5/ADMIN", 300, signed),
                   envelope=Envelope(session_id=challenge.envelope.session_id,
                                     request_id=request_id))


def test_answers_are_used_once_and_expire(tmp_path: Path) -> None:
    async def scenario(where: Server, clock: FakeClock) -> None:
        # hdllib style: the answer comes on a new TCP connection with a new request id.
        challenge = await _challenge(where, CreateHandleRequest("88.100.5/A", (URL,)), 11)
        answer = _answer(challenge, ADMIN5["secret"], 12)
        done = await request_tcp(answer, where)
        assert done.response_code == ResponseCode.SUCCESS
        assert done.opcode == OpCode.CREATE_HANDLE
        assert done.envelope.request_id == 12
        replayed = await request_tcp(answer, where)
        assert replayed.response_code == ResponseCode.AUTHEN_TIMEOUT

        late = await _challenge(where, DeleteHandleRequest("88.100.5/A"), 13)
        clock.now += 31
        expired = await request_tcp(_answer(late, ADMIN5["secret"], 14), where)
        assert expired.response_code == ResponseCode.AUTHEN_TIMEOUT

        stray = Message(ChallengeAnswer("HS_SECKEY", "88.100.5/ADMIN", 300, b"\x02" + b"0" * 20),
                        envelope=Envelope(session_id=123456, request_id=15))
        unknown = await request_tcp(stray, where)
        assert unknown.response_code == ResponseCode.AUTHEN_TIMEOUT

        pubkey = await _challenge(where, DeleteHandleRequest("88.100.5/A"), 16)
        as_pubkey = Message(ChallengeAnswer("HS_PUBKEY", "88.100.5/ADMIN", 300, b"sig"),
                            envelope=Envelope(session_id=pubkey.envelope.session_id,
                                              request_id=17))
        no_key = await request_tcp(as_pubkey, where)  # no HS_PUBKEY at 300: not valid
        assert no_key.response_code == ResponseCode.AUTHEN_FAILED
        other = await _challenge(where, DeleteHandleRequest("88.100.5/A"), 18)
        as_sm9 = Message(ChallengeAnswer("HS_SM9KEY", "88.100.5/ADMIN", 300, b"sig"),
                         envelope=Envelope(session_id=other.envelope.session_id,
                                           request_id=19))
        unable = await request_tcp(as_sm9, where)
        assert unable.response_code == ResponseCode.UNABLE_TO_AUTHEN
        assert isinstance(unable.body, ErrorResponse)

        # Over UDP the same exchange works, keyed by session id; RD asks for a digest of
        # the answer in the result.
        create = Message(CreateHandleRequest("88.100.5/UDP", (URL,)), Header(int(OpFlag.RD)),
                         Envelope(request_id=18))
        udp_challenge = await request_udp(create, where)
        assert udp_challenge is not None
        assert udp_challenge.response_code == ResponseCode.AUTHEN_NEEDED
        udp_answer = _answer(udp_challenge, ADMIN5["secret"], 19)
        udp_answer = Message(udp_answer.body, Header(int(OpFlag.RD)), udp_answer.envelope)
        udp_done = await request_udp(udp_answer, where)
        assert udp_done is not None
        assert udp_done.response_code == ResponseCode.SUCCESS
        assert udp_done.request_digest is not None
        assert _strip(await _values(where, "88.100.5/UDP"))[0] == (1, "URL", URL.data)

    _run(tmp_path, scenario)


def test_secret_key_macs_as_hdllib_computes_them() -> None:
    nonce, digest, secret = b"n" * 16, b"d" * 32, b"s3cret-\xe9"
    salt = bytes(range(16))
    signed = sign_secret_key(secret, nonce, digest, (2, 10), salt=salt)
    # PBKDF2-HMAC-SHA1 with the secret as Java turns it into a password (octets widened to
    # chars, then UTF-8), 10,000 iterations, 160 bits; then HMAC-SHA1 over nonce || digest.
    key = hashlib.pbkdf2_hmac("sha1", b"s3cret-\xc3\xa9", salt, 10_000, 20)
    mac = hmac.new(key, nonce + digest, "sha1").digest()
    assert signed == (bytes((MAC_PBKDF2_HMAC_SHA1,)) + struct.pack(">I", 16) + salt
                      + struct.pack(">III", 10_000, 160, 20) + mac)
    assert check_secret_key(secret, nonce, digest, signed)
    assert not check_secret_key(b"other", nonce, digest, signed)
    assert not check_secret_key(None, nonce, digest, signed)
    assert not check_secret_key(secret, b"N" * 16, digest, signed)

    sha1 = sign_secret_key(secret, nonce, digest, (2, 5))
    assert sha1 == bytes((MAC_SHA1,)) + hashlib.sha1(secret + nonce + digest + secret).digest()
    assert check_secret_key(secret, nonce, digest, sha1)
    md5 = hashlib.md5(secret + nonce + digest + secret).digest()
    assert not check_secret_key(secret, nonce, digest, md5)  # MD5 answers are refused
    assert not check_secret_key(secret, nonce, digest, b"\x01" + md5)
    greedy = (bytes((MAC_PBKDF2_HMAC_SHA1,)) + struct.pack(">I", 16) + salt
              + struct.pack(">III", 10**9, 160, 20) + mac)
    assert not check_secret_key(secret, nonce, digest, greedy)  # iterations are bounded
    assert not check_secret_key(secret, nonce, digest, b"")


def test_verify_response_for_other_servers(tmp_path: Path) -> None:
    async def scenario(where: Server, clock: FakeClock) -> None:
        nonce, digest = b"n" * 16, RequestDigest(DigestAlgorithm.SHA256, b"d" * 32)
        signed = sign_secret_key(ADMIN5["secret"].encode(), nonce, digest.digest, (2, 10))
        for secret_ok, signature in ((True, signed), (False, signed[:-1] + b"\0")):
            ask = Message(VerifyChallengeRequest("88.100.5/ADMIN", 300, nonce, digest,
                                                 signature), envelope=Envelope(request_id=3))
            verdict = await request_tcp(ask, where)
            assert isinstance(verdict.body, VerifyChallengeResponse)
            assert verdict.body.valid is secret_ok
        # Not over UDP (a forged source could make the node hash for anyone), and guesses
        # are throttled like every other secret check (found by review: an open oracle).
        ask = Message(VerifyChallengeRequest("88.100.5/ADMIN", 300, nonce, digest, signed),
                      envelope=Envelope(request_id=4))
        over_udp = await request_udp(ask, where)
        assert over_udp is not None and over_udp.response_code == ResponseCode.OPERATION_DENIED
        wrong = Message(VerifyChallengeRequest("88.100.5/ADMIN", 300, nonce, digest,
                                               signed[:-1] + b"\1"),
                        envelope=Envelope(request_id=5))
        codes = [(await request_tcp(wrong, where)).response_code for _ in range(25)]
        assert codes[0] == ResponseCode.SUCCESS  # "not valid" is an answer
        assert ResponseCode.AUTHEN_FAILED in codes  # then the host is refused for a while
        refused = await request_tcp(ask, where)  # even with the right answer
        assert refused.response_code == ResponseCode.AUTHEN_FAILED

    _run(tmp_path, scenario)


def test_challenge_table_bounds() -> None:
    clock = FakeClock()
    table = ChallengeTable(timeout=10, max_per_host=2, max_pending=3, clock=clock)
    wire = encode_message(Message(DeleteHandleRequest("88.100.5/A"),
                                  envelope=Envelope(request_id=1)))
    req = decode_message(wire)
    sessions = [table.challenge(req, "10.0.0.1", now=0).envelope.session_id for _ in range(2)]
    with pytest.raises(ServerBusy):
        table.challenge(req, "10.0.0.1", now=0)  # per host
    table.challenge(req, "10.0.0.2", now=0)
    with pytest.raises(ServerBusy):
        table.challenge(req, "10.0.0.3", now=0)  # in all
    with pytest.raises(AuthenticationTimeout):
        table.take(sessions[0], "10.0.0.9")  # another host cannot answer it
    assert table.take(sessions[0], "10.0.0.1").request == req
    clock.now += 11
    table.challenge(req, "10.0.0.3", now=0)  # the expired ones made room
    assert len(table) == 1
    with pytest.raises(AuthenticationTimeout):
        table.take(sessions[1], "10.0.0.1")


def test_challenges_of_forged_udp_sources_cannot_crowd_out_tcp_admins() -> None:
    """Found by review: 4,096 forged UDP requests, or 33 one-megabyte creates from one host,
    filled the table and every admin got SERVER_BUSY."""
    table = ChallengeTable(max_udp=3, max_host_bytes=1000)
    small = decode_message(encode_message(Message(DeleteHandleRequest("88.100.5/A"),
                                                  envelope=Envelope(request_id=1))))
    for i in range(3):
        table.challenge(small, f"10.0.1.{i}", now=0, udp=True)
    with pytest.raises(ServerBusy):
        table.challenge(small, "10.0.1.9", now=0, udp=True)  # the UDP places are taken
    admin = table.challenge(small, "10.0.2.1", now=0)  # a TCP admin still gets one
    big = decode_message(encode_message(Message(
        CreateHandleRequest("88.100.5/B", (HandleValue(1, "URL", b"x" * 600),)),
        envelope=Envelope(request_id=2))))
    table.challenge(big, "10.0.3.1", now=0)
    with pytest.raises(ServerBusy):
        table.challenge(big, "10.0.3.1", now=0)  # that host's bytes are spent
    table.take(admin.envelope.session_id, "10.0.2.1")
    assert len(table) == 4
