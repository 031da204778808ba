"""Replay of a live session of China's national-system SDK (CAICT ID-SDK 2.0.3, compiled from
its sources with javac) against a millnet node, captured by a logging TCP proxy: the SDK's own
bytes are sent again to a fresh node and its answers checked against what the SDK accepted.

Connection 1: GET_SITEINFO, RESOLUTION, LOGIN 2000 (user and secret), CREATE_HANDLE,
RESOLUTION, ADD_VALUE, REMOVE_VALUE, DELETE_HANDLE. Connection 2: GET_SITEINFO,
LOGIN_ID_SYSTEM 2001 (RSA key) answered with a signed challenge, CREATE_HANDLE. Every request
is in protocol 2.3 suggesting 2.10. The 2001 challenge carries a fresh nonce on each run, so
the replay signs it with a key of its own in the layout the SDK used (hash id ``SHA-256``, a
256-octet RSA signature), checked against the captured answer.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import rsa

from millnet.identifiers import IdentifierService, IdentifierStore, bootstrap_prefix
from millnet.identifiers.core.delegation import admin_record_value
from millnet.identifiers.native.handler import NativeHandler
from millnet.identifiers.wire.auth import challenge_version
from millnet.identifiers.wire.pubkey import pubkey_data, sign_challenge
from millnet.identifiers.wire.transport import NativeServer
from millnet.protocols.handle import (
    Challenge,
    ChallengeAnswer,
    HandleValue,
    Message,
    ResolutionResponse,
    ServerRecord,
    SiteInfo,
    TcpFramer,
    ValueReference,
    address_octets,
    encode_message,
)
from millnet.protocols.handle.wire import Reader

CAPTURE = Path(__file__).parent.parent / "data" / "caict-id-sdk-2.0.3.jsonl"
#: a second live session (2026-12-02, on the one-record store): MODIFY_VALUE, found and missing
MODIFY_CAPTURE = CAPTURE.with_name("caict-id-sdk-2.0.3-modify.jsonl")
SECRET = "sdk-admin-secret-1"  # the admin secret of the captured session (test data)


def _messages(conn: int, direction: str,
              capture: Path = CAPTURE) -> tuple[list[bytes], list[Message]]:
    """The raw chunks and the decoded messages of one side of one captured connection."""
    rows = [json.loads(line) for line in capture.read_text().splitlines()]
    chunks = [bytes.fromhex(r["hex"]) for r in rows
              if r["conn"] == conn and r["dir"] == direction]
    framer = TcpFramer()
    return chunks, [m for chunk in chunks for m in framer.receive_data(chunk)]


def _node(tmp_path: Path, key: rsa.RSAPrivateKey) -> NativeHandler:
    site = SiteInfo(servers=(ServerRecord(1, address_octets("127.0.0.1")),))
    store = IdentifierStore.open(f"sqlite:///{tmp_path / 'ids.sqlite'}")
    bootstrap_prefix(store, "88.100.5", SECRET, site)
    service = IdentifierService(store, ["88.100.5"])
    # As the live session's setup made it: through the service, which adds an HS_ADMIN.
    service.create_handle(ValueReference("88.100.5/ADMIN", 300), "88.100.5/PUMP-1",
                          [HandleValue(1, "URL", b"https://plant.example/pumps/1")])
    store.create_handle("88.100.5/SDKUSER", [HandleValue(300, "HS_PUBKEY",
                                                         pubkey_data(key.public_key()))])
    store.add_values("0.NA/88.100.5", [
        admin_record_value(ValueReference("88.100.5/SDKUSER", 300), index=101)])
    return NativeHandler(service, site)


class Replay:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer, self.framer = reader, writer, TcpFramer()
        self.pending: list[Message] = []

    async def send(self, data: bytes) -> Message:
        self.writer.write(data)
        while not self.pending:
            chunk = await asyncio.wait_for(self.reader.read(65536), 5)
            assert chunk, "the node closed the connection"
            self.pending += self.framer.receive_data(chunk)
        return self.pending.pop(0)


def _same_answer(got: Message, sdk_saw: Message) -> None:
    assert (got.opcode, got.response_code, type(got.body)) == \
        (sdk_saw.opcode, sdk_saw.response_code, type(sdk_saw.body))
    assert got.envelope.version == sdk_saw.envelope.version == (2, 10)
    assert got.envelope.request_id == sdk_saw.envelope.request_id
    if isinstance(got.body, ResolutionResponse):
        assert isinstance(sdk_saw.body, ResolutionResponse)
        assert [(v.index, v.type, v.data) for v in got.body.values] == \
            [(v.index, v.type, v.data) for v in sdk_saw.body.values]


def test_the_sdk_session_replays(tmp_path: Path) -> None:
    key = rsa.generate_private_key(65537, 2048)
    handler = _node(tmp_path, key)
    chunks1, requests1 = _messages(1, "c2s")
    _, answers1 = _messages(1, "s2c")
    _, requests2 = _messages(2, "c2s")
    _, answers2 = _messages(2, "s2c")
    assert [m.opcode for m in requests1] == [2, 1, 2000, 100, 1, 102, 103, 101]
    assert [m.opcode for m in requests2] == [2, 2001, 200, 100]

    async def scenario() -> None:
        async with NativeServer(handler, udp_port=0, tcp_port=0) as server:
            # Connection 1: the SDK's bytes, message by message, exactly as it sent them.
            conn = Replay(*await asyncio.open_connection("127.0.0.1", server.tcp_port))
            sent = [encode_message(m) for m in requests1]
            assert b"".join(sent) == b"".join(chunks1)  # the codec re-encodes them exactly
            for data, sdk_saw in zip(sent, answers1, strict=True):
                _same_answer(await conn.send(data), sdk_saw)
            conn.writer.close()

            # Connection 2: the public-key login; its challenge is new, so is the signature.
            conn = Replay(*await asyncio.open_connection("127.0.0.1", server.tcp_port))
            _same_answer(await conn.send(encode_message(requests2[0])), answers2[0])
            challenge = await conn.send(encode_message(requests2[1]))
            _same_answer(challenge, answers2[1])
            assert isinstance(challenge.body, Challenge) and challenge.request_digest is not None
            captured = requests2[2].body
            assert isinstance(captured, ChallengeAnswer)
            signed = sign_challenge(key, challenge.body.nonce, challenge.request_digest.digest,
                                    challenge_version(challenge))
            ours, theirs = Reader(signed), Reader(captured.signed_response)
            assert ours.octets("hash") == theirs.octets("hash") == b"SHA-256"
            assert len(ours.octets("sig")) == len(theirs.octets("sig")) == 256
            answer = replace(requests2[2], body=replace(captured, signed_response=signed),
                             envelope=replace(requests2[2].envelope,
                                              session_id=challenge.envelope.session_id))
            _same_answer(await conn.send(encode_message(answer)), answers2[2])
            _same_answer(await conn.send(encode_message(requests2[3])), answers2[3])
            conn.writer.close()

    asyncio.run(scenario())
    store = handler._service.store
    assert store.exists("88.100.5/SDK-2")  # created after the public-key login
    assert not store.exists("88.100.5/SDK-1")  # created, then deleted, on connection 1


def test_the_sdk_modify_session_replays(tmp_path: Path) -> None:
    """LOGIN 2000, CREATE_HANDLE, MODIFY_VALUE of index 1, MODIFY_VALUE of a missing index 9
    (VALUE_NOT_FOUND), RESOLUTION showing the modified value, DELETE_HANDLE."""
    handler = _node(tmp_path, rsa.generate_private_key(65537, 2048))
    chunks, requests = _messages(1, "c2s", MODIFY_CAPTURE)
    _, answers = _messages(1, "s2c", MODIFY_CAPTURE)
    assert [m.opcode for m in requests] == [2, 2000, 100, 104, 104, 1, 101]
    assert [m.response_code for m in answers] == [1, 1, 1, 1, 200, 1, 1]
    lookup = answers[5].body
    assert isinstance(lookup, ResolutionResponse)
    assert lookup.values[0].data == b"https://plant.example/sdk/mod-moved"

    async def scenario() -> None:
        async with NativeServer(handler, udp_port=0, tcp_port=0) as server:
            conn = Replay(*await asyncio.open_connection("127.0.0.1", server.tcp_port))
            sent = [encode_message(m) for m in requests]
            assert b"".join(sent) == b"".join(chunks)
            for data, sdk_saw in zip(sent, answers, strict=True):
                _same_answer(await conn.send(data), sdk_saw)
            conn.writer.close()

    asyncio.run(scenario())
    assert not handler._service.store.exists("88.100.5/SDK-MOD")
