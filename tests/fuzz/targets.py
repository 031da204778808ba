"""Fuzz targets over what millnet reads off the network, for atheris (``tests/fuzz/run.py``)
and for the test suite (``tests/unit/test_fuzz_targets.py``, hypothesis-generated inputs).

Each target takes arbitrary bytes and must neither raise nor break its invariants:

* ``udp``: a datagram into the node's UDP protocol exactly as the server runs it (fast path,
  reassembly, codec, handler over a real SQLite store with a prefix, handles and hidden
  values), answers going to a recording transport. Invariants: every datagram sent fits a
  Handle UDP packet, and what one request makes the node send stays within the amplification
  budget (4 times the request, at least 512 bytes) unless it is a single packet; nothing sent
  decodes to a message carrying a value without PUBLIC_READ.
* ``tcp``: a byte stream into the node's TCP protocol (framing, codec, handler).
* ``rest_json``: a request body for ``PUT /api/handles/...`` through the Handle.Net JSON
  parser.
* ``rest_put``: the same body sent by the handle's admin to the node's HTTP API (uvicorn in a
  thread, over a real SQLite store; the first byte picks create, overwrite=false,
  index=various with and without overwrite, or mintNewSuffix). Invariants: never a 5xx; a
  refusal carries a message, and a 400 names the field it is about; a refusal leaves the
  stored handles exactly as they were; what is accepted is stored in canonical form (HS_ types
  upper case, no secret value public).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import re
import tempfile
from pathlib import Path
from typing import Any

import httpx
import msgspec

from millnet.errors import MillnetError, ProtocolError
from millnet.identifiers.core.delegation import admin_record_value, bootstrap_prefix
from millnet.identifiers.core.fastpath import FastResolver
from millnet.identifiers.core.service import IdentifierService
from millnet.identifiers.core.store import IdentifierStore
from millnet.identifiers.core.values import canonical_value, check_values
from millnet.identifiers.http.rest import _DECODE, create_handle_app
from millnet.identifiers.http.rest_json import parse_values
from millnet.identifiers.native.handler import NativeHandler
from millnet.identifiers.wire.transport import _TcpProtocol, _UdpProtocol
from millnet.protocols.handle import (
    HandleValue,
    Permission,
    ResolutionResponse,
    ServerRecord,
    SiteInfo,
    ValueReference,
    address_octets,
    decode_message,
)
from millnet.protocols.handle.constants import UDP_PACKET_SIZE
from tests.support.webserver import ThreadedServer

NOW = 1_790_000_000
SITE = SiteInfo(servers=(ServerRecord(1, address_octets("127.0.0.1")),))
SECRET_DATA = b"fuzz-secret-value"
PEER = ("127.0.0.1", 40_000)
AMPLIFICATION = 4
ENVELOPE = 20


class _Sink:
    """The transport side of a protocol object: records what the node sends."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.closed = False
        self.reading = True

    def sendto(self, data: bytes, addr: Any = None) -> None:
        self.sent.append(bytes(data))

    def write(self, data: bytes) -> None:
        self.sent.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return PEER if name == "peername" else default


class NativeTarget:
    """A node's native request path over a real store in a temporary directory."""

    def __init__(self) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="millnet-fuzz-")
        database = Path(self._dir.name) / "ids.sqlite"
        self.store = IdentifierStore.open(f"sqlite:///{database}")
        bootstrap_prefix(self.store, "88.100.5", "fuzz-admin-secret", SITE, now=NOW)
        hidden = HandleValue(2, "NOTE", SECRET_DATA,
                             permissions=int(Permission.ADMIN_READ | Permission.ADMIN_WRITE))
        admin = admin_record_value(ValueReference("88.100.5/ADMIN", 300))
        self.store.create_handle("88.100.5/PUMP-1", [
            HandleValue(1, "URL", b"https://plant.example/pumps/1"), hidden, admin])
        self.store.create_many([(f"88.100.5/B{i}", [HandleValue(1, "URL", b"x" * 300)])
                                for i in range(5)])
        service = IdentifierService(self.store, ["88.100.5"], clock=lambda: NOW)
        self.handler = NativeHandler(service, SITE, clock=lambda: NOW)
        self.fast = FastResolver(database, service.served, clock=lambda: NOW)
        self.loop = asyncio.new_event_loop()
        self._tasks: set[asyncio.Task[None]] = set()

    def close(self) -> None:
        self.loop.close()
        self.fast.close()
        self.store.close()
        self._dir.cleanup()

    def udp(self, data: bytes) -> list[bytes]:
        """One datagram; the datagrams sent back."""
        sink = _Sink()

        async def run() -> None:
            proto = _UdpProtocol(self.handler, AMPLIFICATION, self._tasks, self.fast)
            proto.connection_made(sink)  # type: ignore[arg-type]
            proto.datagram_received(data, PEER)
            await _settle(self._tasks)

        self.loop.run_until_complete(run())
        budget = max(len(data) * AMPLIFICATION, UDP_PACKET_SIZE)
        for packet in sink.sent:
            assert len(packet) <= UDP_PACKET_SIZE + ENVELOPE, len(packet)
        assert len(sink.sent) <= 1 or sum(map(len, sink.sent)) <= budget + ENVELOPE * len(
            sink.sent), (len(data), [len(p) for p in sink.sent])
        _no_secret(sink.sent)
        return sink.sent

    def tcp(self, data: bytes) -> list[bytes]:
        """A connection that sends ``data`` and closes; what the node wrote."""
        sink = _Sink()

        async def run() -> None:
            proto = _TcpProtocol(self.handler, 60.0, self._tasks)
            proto.connection_made(sink)  # type: ignore[arg-type]
            for start in range(0, len(data), 700):  # arbitrary segment boundaries
                if sink.closed:
                    break
                proto.data_received(data[start:start + 700])
            await _settle(self._tasks)
            proto.connection_lost(None)

        self.loop.run_until_complete(run())
        _no_secret(sink.sent)
        return sink.sent


async def _settle(tasks: set[asyncio.Task[None]]) -> None:
    for _ in range(3):
        await asyncio.sleep(0)
    if tasks:
        await asyncio.wait(list(tasks), timeout=5)


def _no_secret(sent: list[bytes]) -> None:
    """Nobody authenticated, so no answer may carry the restricted value."""
    for data in sent:
        with contextlib.suppress(ProtocolError):
            msg = decode_message(data)
            if isinstance(msg.body, ResolutionResponse):
                assert all(v.data != SECRET_DATA for v in msg.body.values), msg


def rest_json(data: bytes) -> None:
    """A PUT body as the API decodes it (msgspec JSON, then the Handle.Net value parser):
    values, or a MillnetError naming what is wrong; nothing else."""
    try:
        body = _DECODE(data)
    except (msgspec.DecodeError, RecursionError):
        return  # the API answers 400 "invalid JSON" / "nested too deeply"
    with contextlib.suppress(MillnetError):
        values, _ = parse_values(body)
        assert all(isinstance(v, HandleValue) for v in values)
        check_values(values)


class RestTarget:
    """``PUT /api/handles/...`` of the node's HTTP API, as the prefix's admin, over a real
    store in a temporary directory; the target handle is put back before each request."""

    HANDLE = "88.100.5/TARGET"
    #: what the first byte of an input picks (the rest is the body)
    TARGETS = (HANDLE, f"{HANDLE}?overwrite=false", f"{HANDLE}?index=various",
               f"{HANDLE}?index=various&overwrite=false", "88.100.5/M-?mintNewSuffix=true")
    #: a 400's message starts with the field it is about: values[2].data.value.index, body...
    FIELD = re.compile(r"^[A-Za-z][\w.\[\]-]*: ")

    def __init__(self) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="millnet-fuzz-rest-")
        self.store = IdentifierStore.open(f"sqlite:///{Path(self._dir.name) / 'ids.sqlite'}")
        bootstrap_prefix(self.store, "88.100.5", "fuzz-admin-secret", SITE, now=NOW)
        self.baseline = (
            HandleValue(1, "URL", b"https://plant.example/target"),
            HandleValue(2, "NOTE", SECRET_DATA,
                        permissions=int(Permission.ADMIN_READ | Permission.ADMIN_WRITE)),
            admin_record_value(ValueReference("88.100.5/ADMIN", 300)))
        service = IdentifierService(self.store, ["88.100.5"], clock=lambda: NOW)
        self.server = ThreadedServer(create_handle_app(self.store, service)).__enter__()
        self.client = httpx.Client(base_url=self.server.url)
        token = base64.b64encode(b"300%3A88.100.5%2FADMIN:fuzz-admin-secret").decode()
        self.headers = {"Authorization": f"Basic {token}", "Content-Type": "application/json"}
        #: the message of the last refusal ("" after a success)
        self.last_message = ""

    def close(self) -> None:
        self.client.close()
        self.server.__exit__()
        self.store.close()
        self._dir.cleanup()

    def put(self, data: bytes) -> int:
        """One PUT; its HTTP status."""
        target = self.TARGETS[data[0] % len(self.TARGETS)] if data else self.HANDLE
        self.store.create_handle(self.HANDLE, self.baseline, overwrite=True)
        before = self.store.get(self.HANDLE), self.store.count("88.100.5")
        answer = self.client.put(f"/api/handles/{target}", content=data[1:],
                                 headers=self.headers)
        assert answer.status_code < 500, (answer.status_code, answer.text, data)
        self.last_message = ""
        if answer.status_code >= 400:
            message = self.last_message = answer.json()["message"]
            assert message, answer.text
            assert answer.status_code != 400 or self.FIELD.match(message), message
            assert (self.store.get(self.HANDLE), self.store.count("88.100.5")) == before, \
                (answer.status_code, message)
        else:
            stored = self.store.get(self.HANDLE)
            assert all(canonical_value(v) == v for v in stored), stored
        return answer.status_code
