"""IDIS logins as the CAICT SDK uses them: LOGIN (2000, user and secret) or LOGIN_ID_SYSTEM
(2001, a public key and a challenge) bind an identity to the TCP connection, and later
administrative requests on it need no challenge; never over UDP, never on another
connection."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from millnet.identifiers import IdentifierService, IdentifierStore, bootstrap_prefix
from millnet.identifiers.core.delegation import admin_record_value
from millnet.identifiers.native.handler import NativeHandler
from millnet.identifiers.wire.auth import AuthThrottle, TooManyFailures, challenge_version
from millnet.identifiers.wire.pubkey import pubkey_data, sign_challenge
from millnet.identifiers.wire.transport import NativeServer
from millnet.protocols.handle import (
    Body,
    Challenge,
    ChallengeAnswer,
    CreateHandleRequest,
    Envelope,
    HandleValue,
    Header,
    Message,
    OpFlag,
    PasswordLoginRequest,
    PublicKeyLoginRequest,
    ResolutionRequest,
    ResolutionResponse,
    ResponseCode,
    ServerRecord,
    SiteInfo,
    TcpFramer,
    ValueReference,
    address_octets,
    decode_message,
    encode_message,
)

SITE = SiteInfo(servers=(ServerRecord(1, address_octets("127.0.0.1")),))
URL = HandleValue(1, "URL", b"https://plant.example/x")
_ids = iter(range(1000, 10**6))


class Connection:
    """One TCP connection speaking the native protocol as the CAICT SDK does (2.3 -> 2.10)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer, self.framer = reader, writer, TcpFramer()
        self.pending: list[Message] = []

    @classmethod
    async def open(cls, port: int) -> Connection:
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def ask(self, body: Body, *, flags: int = int(OpFlag.RD),
                  session: int = 0) -> Message:
        msg = Message(body, Header(flags), Envelope(2, 3, 2, 10, session, next(_ids)))
        self.writer.write(encode_message(msg))
        while not self.pending:
            data = await asyncio.wait_for(self.reader.read(65536), 5)
            assert data, "connection closed"
            self.pending += self.framer.receive_data(data)
        return self.pending.pop(0)

    def close(self) -> None:
        self.writer.close()


def _node(tmp_path: Path, key: rsa.RSAPrivateKey) -> NativeHandler:
    store = IdentifierStore.open(f"sqlite:///{tmp_path / 'ids.sqlite'}")
    bootstrap_prefix(store, "88.100.5", "secret-5", SITE)
    bootstrap_prefix(store, "88.100.6", "secret-6", SITE)
    store.create_handle("88.100.5/KEYS", [HandleValue(300, "HS_PUBKEY",
                                                      pubkey_data(key.public_key()))])
    store.add_values("0.NA/88.100.5", [
        admin_record_value(ValueReference("88.100.5/KEYS", 300), index=101)])
    return NativeHandler(IdentifierService(store, ["88.100.5", "88.100.6"]), SITE)


def test_logins_bind_the_tcp_connection(tmp_path: Path) -> None:
    key = rsa.generate_private_key(65537, 2048)
    handler = _node(tmp_path, key)

    async def scenario() -> None:
        async with NativeServer(handler, udp_port=0, tcp_port=0) as server:
            port = server.tcp_port
            # LOGIN 2000 with user and secret, then create without a challenge.
            conn = await Connection.open(port)
            login = await conn.ask(PasswordLoginRequest("300:88.100.5/ADMIN", "secret-5"))
            assert login.response_code == ResponseCode.SUCCESS, login
            made = await conn.ask(CreateHandleRequest("88.100.5/BY-LOGIN", (URL,)))
            assert made.response_code == ResponseCode.SUCCESS, made
            # Restricted values: shown on the logged-in connection (unless PO asks for public
            # values only), never to an anonymous one.
            note = HandleValue(2, "NOTE", b"internal", permissions=0x0C)
            made = await conn.ask(CreateHandleRequest("88.100.5/RESTRICTED", (URL, note)))
            assert made.response_code == ResponseCode.SUCCESS
            full = await conn.ask(ResolutionRequest("88.100.5/RESTRICTED", (), ()), flags=0)
            assert isinstance(full.body, ResolutionResponse)
            assert [v.type for v in full.body.values] == ["URL", "NOTE", "HS_ADMIN"]
            public = await conn.ask(ResolutionRequest("88.100.5/RESTRICTED", (), ()),
                                    flags=int(OpFlag.PO))
            assert isinstance(public.body, ResolutionResponse)
            assert "NOTE" not in [v.type for v in public.body.values]
            anonymous = await Connection.open(port)
            seen = await anonymous.ask(ResolutionRequest("88.100.5/RESTRICTED", (), ()),
                                       flags=0)
            assert isinstance(seen.body, ResolutionResponse)
            assert "NOTE" not in [v.type for v in seen.body.values]
            anonymous.close()
            # The login names one admin: another prefix stays out of reach.
            foreign = await conn.ask(CreateHandleRequest("88.100.6/NO", (URL,)))
            assert foreign.response_code == ResponseCode.NOT_AUTHORIZED
            # Another connection is not logged in: it is challenged.
            other = await Connection.open(port)
            challenged = await other.ask(CreateHandleRequest("88.100.5/NO", (URL,)))
            assert isinstance(challenged.body, Challenge)
            # A wrong secret logs nothing in; the user name may leave the index out.
            wrong = await other.ask(PasswordLoginRequest("88.100.5/ADMIN", "guess"))
            assert wrong.response_code == ResponseCode.AUTHEN_FAILED
            still = await other.ask(CreateHandleRequest("88.100.5/NO", (URL,)))
            assert isinstance(still.body, Challenge)
            right = await other.ask(PasswordLoginRequest("88.100.5/ADMIN", "secret-5"))
            assert right.response_code == ResponseCode.SUCCESS
            other.close()
            conn.close()

            # LOGIN_ID_SYSTEM 2001: a challenge signed with the HS_PUBKEY's private key.
            conn = await Connection.open(port)
            asked = await conn.ask(PublicKeyLoginRequest("88.100.5/KEYS", 300))
            assert isinstance(asked.body, Challenge) and asked.request_digest is not None
            signed = sign_challenge(key, asked.body.nonce, asked.request_digest.digest,
                                    challenge_version(asked))
            done = await conn.ask(ChallengeAnswer("HS_PUBKEY", "88.100.5/KEYS", 300, signed),
                                  session=asked.envelope.session_id)
            assert done.response_code == ResponseCode.SUCCESS, done
            assert done.opcode == 2001
            made = await conn.ask(CreateHandleRequest("88.100.5/BY-KEY", (URL,)))
            assert made.response_code == ResponseCode.SUCCESS
            # A signature by another key logs nothing in.
            conn2 = await Connection.open(port)
            asked = await conn2.ask(PublicKeyLoginRequest("88.100.5/KEYS", 300))
            assert isinstance(asked.body, Challenge) and asked.request_digest is not None
            forged = sign_challenge(rsa.generate_private_key(65537, 2048), asked.body.nonce,
                                    asked.request_digest.digest, challenge_version(asked))
            bad = await conn2.ask(ChallengeAnswer("HS_PUBKEY", "88.100.5/KEYS", 300, forged),
                                  session=asked.envelope.session_id)
            assert bad.response_code == ResponseCode.AUTHEN_FAILED
            conn2.close()
            conn.close()
            await asyncio.sleep(0.2)
            assert not handler._logins  # every login ended with its connection

            # Over UDP a login is refused: a source address proves nothing.
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            udp.settimeout(5)
            msg = Message(PasswordLoginRequest("88.100.5/ADMIN", "secret-5"), Header(),
                          Envelope(2, 10, 2, 10, 0, 7))
            udp.sendto(encode_message(msg), ("127.0.0.1", server.udp_port))
            reply = decode_message(await asyncio.to_thread(udp.recv, 65536))
            udp.close()
            assert reply.response_code == ResponseCode.OPERATION_DENIED

    asyncio.run(scenario())
    assert handler._service.store.exists("88.100.5/BY-LOGIN")
    assert handler._service.store.exists("88.100.5/BY-KEY")
    assert not handler._service.store.exists("88.100.5/NO")
    assert not handler._service.store.exists("88.100.6/NO")


def test_repeated_failures_are_throttled(tmp_path: Path) -> None:
    handler = _node(tmp_path, rsa.generate_private_key(65537, 2048))
    handler.throttle = AuthThrottle(limit=3, window=60)

    async def scenario() -> None:
        async with NativeServer(handler, udp_port=0, tcp_port=0) as server:
            conn = await Connection.open(server.tcp_port)
            for _ in range(3):
                bad = await conn.ask(PasswordLoginRequest("88.100.5/ADMIN", "guess"))
                assert bad.response_code == ResponseCode.AUTHEN_FAILED
            # Now even the right secret is refused from this host, without being checked.
            blocked = await conn.ask(PasswordLoginRequest("88.100.5/ADMIN", "secret-5"))
            assert blocked.response_code == ResponseCode.AUTHEN_FAILED
            assert "too many failed" in str(blocked.body)
            conn.close()

    asyncio.run(scenario())


def test_throttle_window_and_bound() -> None:
    now = [1000.0]
    throttle = AuthThrottle(limit=2, window=10, max_hosts=2, clock=lambda: now[0])
    throttle.failed("10.0.0.1")
    throttle.check("10.0.0.1")
    throttle.failed("10.0.0.1")
    with pytest.raises(TooManyFailures):
        throttle.check("10.0.0.1")
    now[0] += 11  # the failures aged out
    throttle.check("10.0.0.1")
    for host in ("10.0.0.2", "10.0.0.3", "10.0.0.4"):
        throttle.failed(host)
        throttle.failed(host)
    throttle.check("10.0.0.2")  # forgotten: only the 2 most recent hosts are kept
    with pytest.raises(TooManyFailures):
        throttle.check("10.0.0.4")


def test_an_ipv6_site_counts_as_one_client() -> None:
    """Failures from anywhere in one /64 count together (found by review: single addresses
    gave an attacker 2**64 fresh tries); IPv4-mapped addresses count as their IPv4."""
    throttle = AuthThrottle(limit=2, window=60)
    throttle.failed("2001:db8:1:2::1")
    throttle.failed("2001:db8:1:2:ffff::9")
    with pytest.raises(TooManyFailures):
        throttle.check("2001:db8:1:2::abcd")
    throttle.check("2001:db8:1:3::1")  # the next /64 is another site
    throttle.failed("::ffff:10.0.0.7")
    throttle.failed("10.0.0.7")
    with pytest.raises(TooManyFailures):
        throttle.check("10.0.0.7")
